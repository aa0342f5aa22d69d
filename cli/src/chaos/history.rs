//! The recorded history: every operation's invocation and reply, as the clients saw them,
//! written out as JSON lines and turned into the checker's operations name by name.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checker::{CheckedOp, Effect};

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `put` of a value (`overwrite`: with `--overwrite`).
    Put {
        /// Whether it may replace a dataset.
        overwrite: bool,
    },
    /// A word-count job writing `ringleader://NAME`.
    Job {
        /// Whether it may replace a dataset.
        overwrite: bool,
    },
    /// `get`.
    Get,
    /// `rm`.
    Rm,
}

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Done as asked: a write stored, a removal made.
    Done,
    /// A read returned this whole value.
    Saw(u64),
    /// A read returned something no write stored whole.
    Broken(String),
    /// Refused: the name already has a dataset.
    Exists(String),
    /// Refused, or read: there is no dataset of that name.
    Missing(String),
    /// Refused without effect: it lost a compare-and-set race.
    Lost(String),
    /// Failed; it may or may not have taken effect.
    Unknown(String),
}

impl Reply {
    /// The reply an error's text means. Only refusals that the driver gives before anything
    /// changed are definite; anything else may have happened.
    pub fn of_error(message: String) -> Reply {
        if message.contains("already exists") {
            Reply::Exists(message)
        } else if message.contains("no dataset named") {
            Reply::Missing(message)
        } else if message.contains("meanwhile") {
            Reply::Lost(message)
        } else {
            Reply::Unknown(message)
        }
    }
}

/// One operation of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Its position in the history (by invocation).
    pub index: usize,
    /// The client that ran it (`final` reads are the last client's).
    pub client: usize,
    /// The dataset name.
    pub name: String,
    /// What it was.
    pub kind: Kind,
    /// The value it wrote, for writes.
    pub value: Option<u64>,
    /// Seconds from the start when it was invoked.
    pub invoked: f64,
    /// Seconds from the start when its reply came.
    pub completed: f64,
    /// How it ended.
    pub reply: Reply,
}

impl Record {
    /// What the checker makes of it: `None` when it constrains nothing (a definite refusal
    /// without effect, a failed read).
    pub fn checked(&self) -> Option<CheckedOp> {
        let known = |effect| {
            Some(CheckedOp {
                index: self.index,
                invoked: self.invoked,
                completed: Some(self.completed),
                effect,
            })
        };
        let unknown = |effect| {
            Some(CheckedOp {
                index: self.index,
                invoked: self.invoked,
                completed: None,
                effect,
            })
        };
        let write = |value: u64, overwrite: bool| match overwrite {
            true => Effect::Write(value),
            false => Effect::Create(value),
        };
        match (&self.kind, &self.reply, self.value) {
            (Kind::Put { overwrite } | Kind::Job { overwrite }, reply, Some(value)) => match reply {
                Reply::Done => known(write(value, *overwrite)),
                Reply::Exists(_) if !overwrite => known(Effect::ReadSome),
                Reply::Lost(_) => None,
                _ => unknown(write(value, *overwrite)),
            },
            (Kind::Get, Reply::Saw(value), _) => known(Effect::Read(Some(*value))),
            (Kind::Get | Kind::Rm, Reply::Missing(_), _) => known(Effect::Read(None)),
            (Kind::Rm, Reply::Done, _) => known(Effect::Remove),
            (Kind::Rm, Reply::Unknown(_) | Reply::Exists(_), _) => unknown(Effect::Remove),
            _ => None,
        }
    }

    /// One line of the report.
    pub fn describe(&self) -> String {
        let what = match (self.kind, self.value) {
            (Kind::Put { overwrite }, Some(v)) => format!("put{} v{v}", if overwrite { " --overwrite" } else { "" }),
            (Kind::Job { overwrite }, Some(v)) => format!("job{} j{v}", if overwrite { " --overwrite" } else { "" }),
            (Kind::Get, _) => "get".into(),
            (Kind::Rm, _) => "rm".into(),
            (_, None) => "?".into(),
        };
        let reply = match &self.reply {
            Reply::Done => "ok".to_string(),
            Reply::Saw(v) => format!("saw {v}"),
            Reply::Broken(why) => format!("BROKEN READ: {why}"),
            Reply::Exists(_) => "refused: exists".into(),
            Reply::Missing(_) => "no dataset".into(),
            Reply::Lost(_) => "lost a race".into(),
            Reply::Unknown(why) => format!("unknown: {}", why.lines().next().unwrap_or("")),
        };
        format!(
            "#{:<4} client {} {:>8.3}-{:<8.3} {} {what} -> {reply}",
            self.index, self.client, self.invoked, self.completed, self.name
        )
    }
}

/// The history as it is recorded, by clients running at once.
pub struct History {
    started: Instant,
    records: Mutex<Vec<Record>>,
}

/// An operation invoked but not yet completed.
pub struct Pending {
    client: usize,
    name: String,
    kind: Kind,
    value: Option<u64>,
    invoked: f64,
}

impl History {
    /// An empty history; times count from now.
    pub fn new() -> History {
        History {
            started: Instant::now(),
            records: Mutex::new(Vec::new()),
        }
    }

    /// Seconds since the start.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Notes an operation's invocation.
    pub fn invoke(&self, client: usize, name: &str, kind: Kind, value: Option<u64>) -> Pending {
        Pending {
            client,
            name: name.to_string(),
            kind,
            value,
            invoked: self.now(),
        }
    }

    /// Notes its reply.
    pub fn complete(&self, pending: Pending, reply: Reply) -> Record {
        let record = Record {
            index: 0,
            client: pending.client,
            name: pending.name,
            kind: pending.kind,
            value: pending.value,
            invoked: pending.invoked,
            completed: self.now(),
            reply,
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        record
    }

    /// The records, by invocation, numbered in that order.
    pub fn records(&self) -> Vec<Record> {
        numbered(self.records.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// `records` by invocation, each numbered with its position.
pub fn numbered(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by(|a, b| a.invoked.total_cmp(&b.invoked));
    for (i, r) in records.iter_mut().enumerate() {
        r.index = i;
    }
    records
}

/// The records of each name.
pub fn by_name(records: &[Record]) -> BTreeMap<&str, Vec<&Record>> {
    let mut names: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        names.entry(r.name.as_str()).or_default().push(r);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_definite_and_other_errors_are_not() {
        assert!(matches!(
            Reply::of_error("dataset x already exists; pass --overwrite".into()),
            Reply::Exists(_)
        ));
        assert!(matches!(
            Reply::of_error("no dataset named \"x\"".into()),
            Reply::Missing(_)
        ));
        assert!(matches!(
            Reply::of_error("dataset x was replaced by another writer meanwhile (generation g2 won)".into()),
            Reply::Lost(_)
        ));
        assert!(matches!(
            Reply::of_error("cannot reach the driver group".into()),
            Reply::Unknown(_)
        ));
    }

    #[test]
    fn an_unknown_write_may_have_happened_and_a_lost_one_did_not() {
        let record = |reply| Record {
            index: 0,
            client: 0,
            name: "a".into(),
            kind: Kind::Put { overwrite: true },
            value: Some(4),
            invoked: 1.0,
            completed: 2.0,
            reply,
        };
        assert_eq!(record(Reply::Done).checked().expect("checked").effect, Effect::Write(4));
        assert_eq!(
            record(Reply::Unknown("x".into())).checked().expect("checked").completed,
            None
        );
        assert_eq!(record(Reply::Lost("x".into())).checked(), None);
    }
}
