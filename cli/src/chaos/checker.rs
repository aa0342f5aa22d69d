//! The history checker: is what the clients saw of each dataset name explainable by one
//! register changed atomically, one operation at a time, each at some instant between its
//! invocation and its reply (linearizability, as Jepsen's Knossos and Porcupine check it)?
//!
//! Each name is checked on its own (a register per name). An operation whose outcome is
//! unknown (a timeout, a lost connection) may have taken effect at any time after its
//! invocation, or never. The search is Wing and Gong's, with Lowe's memo of (linearized set,
//! state) pairs: depth-first over the operations that may go next. An operation of unknown
//! outcome is placed only where it takes effect (never placing it is its not happening), so
//! the search ends once every completed operation is placed. It is exponential in the worst
//! case, so it is bounded: past [`STEP_BUDGET`] steps it says it could not decide.

use std::collections::HashSet;

/// What the register holds: the id of the value written last, or nothing (no dataset).
pub type State = Option<u64>;

/// What an operation did to, or saw of, its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Replaced whatever was there (`put --overwrite`, a job's output with overwrite).
    Write(u64),
    /// Stored a value where there was none (`put` without `--overwrite`).
    Create(u64),
    /// Removed the dataset there was (`rm`).
    Remove,
    /// Saw this (`get`: a value, or "no dataset"; `rm` refused: nothing there).
    Read(State),
    /// Saw that some value was there (`put` refused: it already exists).
    ReadSome,
}

/// One operation on one name, as the checker needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedOp {
    /// Its index in the recorded history (for reports).
    pub index: usize,
    /// Seconds from the start when it was invoked.
    pub invoked: f64,
    /// Seconds from the start when its reply came; `None`: unknown outcome.
    pub completed: Option<f64>,
    /// What it did or saw.
    pub effect: Effect,
}

impl CheckedOp {
    /// The state of the register after this operation ran in `state`, if it can have run
    /// there.
    fn next_state(&self, state: State) -> Option<State> {
        match self.effect {
            Effect::Write(v) => Some(Some(v)),
            Effect::Create(v) => state.is_none().then_some(Some(v)),
            Effect::Remove => state.is_some().then_some(None),
            Effect::Read(seen) => (seen == state).then_some(state),
            Effect::ReadSome => state.is_some().then_some(state),
        }
    }

    /// When it returned, for ordering: never, if unknown.
    fn returned(&self) -> f64 {
        self.completed.unwrap_or(f64::INFINITY)
    }
}

/// How many search steps a check may take before it gives up.
pub const STEP_BUDGET: u64 = 20_000_000;

/// What the search found about a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some order explains every result.
    Linearizable,
    /// No order does.
    NotLinearizable,
    /// The search ran out of its step budget.
    Undecided,
}

/// Why a name's history is not linearizable: the shortest prefix of it that is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Whether the search proved it, or gave up.
    pub verdict: Verdict,
    /// The operations of the shortest failing prefix, by invocation.
    pub ops: Vec<CheckedOp>,
}

/// Checks one name's operations, starting from `initial`. On a failure, returns the
/// shortest prefix (cut at some operation's reply; operations still running then count as
/// of unknown outcome) that already cannot be explained, without the operations before it
/// that are not needed to show that: a suffix that no starting state explains.
pub fn check(ops: &[CheckedOp], initial: State) -> Result<(), Violation> {
    let verdict = linearizable(ops, initial);
    if verdict == Verdict::Linearizable {
        return Ok(());
    }
    let mut cuts: Vec<f64> = ops.iter().filter_map(|o| o.completed).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    // A history cut at time t fails whenever one cut earlier does: find the first failing cut.
    let (mut lo, mut hi) = (0, cuts.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if linearizable(&cut_at(ops, cuts[mid]), initial) == Verdict::Linearizable {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut ops = if lo < cuts.len() {
        cut_at(ops, cuts[lo])
    } else {
        ops.to_vec()
    };
    ops.sort_by(|a, b| a.invoked.total_cmp(&b.invoked));
    let start = needed_from(&ops);
    Err(Violation {
        verdict,
        ops: ops.split_off(start),
    })
}

/// The latest start of `ops` (by invocation) from which no starting state explains the rest,
/// found by bisection; 0 if every suffix is explained by some state.
fn needed_from(ops: &[CheckedOp]) -> usize {
    let mut states: Vec<State> = vec![None];
    for op in ops {
        if let Effect::Write(v) | Effect::Create(v) | Effect::Read(Some(v)) = op.effect {
            states.push(Some(v));
        }
    }
    states.sort();
    states.dedup();
    let unexplained = |from: usize| {
        states
            .iter()
            .all(|&s| linearizable(&ops[from..], s) == Verdict::NotLinearizable)
    };
    if ops.is_empty() || !unexplained(0) {
        return 0;
    }
    let (mut lo, mut hi) = (0, ops.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if unexplained(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The history as it stood at time `t`: operations invoked by then, those still running
/// of unknown outcome (a read still running constrains nothing and is left out).
fn cut_at(ops: &[CheckedOp], t: f64) -> Vec<CheckedOp> {
    ops.iter()
        .filter(|o| o.invoked <= t)
        .filter_map(|o| match o.completed {
            Some(c) if c <= t => Some(o.clone()),
            _ if matches!(o.effect, Effect::Read(_) | Effect::ReadSome) => None,
            _ => Some(CheckedOp {
                completed: None,
                ..o.clone()
            }),
        })
        .collect()
}

/// Whether some order of `ops`, each at an instant inside its interval, explains every
/// result.
pub fn linearizable(ops: &[CheckedOp], initial: State) -> Verdict {
    let mut search = Search {
        ops,
        done: vec![0; ops.len().div_ceil(64)],
        seen: HashSet::new(),
        to_place: ops.iter().filter(|o| o.completed.is_some()).count(),
        steps: 0,
    };
    match search.from(initial, 0) {
        true => Verdict::Linearizable,
        false if search.steps > STEP_BUDGET => Verdict::Undecided,
        false => Verdict::NotLinearizable,
    }
}

/// The depth-first search's state.
struct Search<'a> {
    ops: &'a [CheckedOp],
    /// Which operations are linearized (a bit each).
    done: Vec<u64>,
    /// (linearized set, state) pairs already explored and found dead ends.
    seen: HashSet<(Vec<u64>, State)>,
    /// How many completed operations there are: placing them all is success.
    to_place: usize,
    /// Steps taken so far.
    steps: u64,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    /// Whether the remaining completed operations can be linearized from `state`, `placed`
    /// of them being placed already.
    fn from(&mut self, state: State, placed: usize) -> bool {
        if placed == self.to_place {
            return true;
        }
        self.steps += 1;
        if self.steps > STEP_BUDGET || !self.seen.insert((self.done.clone(), state)) {
            return false;
        }
        // The next operation must have been invoked before the earliest pending reply.
        let earliest_reply = (0..self.ops.len())
            .filter(|&i| !self.is_done(i))
            .map(|i| self.ops[i].returned())
            .fold(f64::INFINITY, f64::min);
        for i in 0..self.ops.len() {
            if self.is_done(i) || self.ops[i].invoked > earliest_reply {
                continue;
            }
            let Some(next) = self.ops[i].next_state(state) else {
                continue;
            };
            let completed = usize::from(self.ops[i].completed.is_some());
            self.flip(i);
            let found = self.from(next, placed + completed);
            self.flip(i);
            if found {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(invoked: f64, completed: Option<f64>, effect: Effect) -> CheckedOp {
        CheckedOp {
            index: 0,
            invoked,
            completed,
            effect,
        }
    }

    #[test]
    fn sequential_writes_and_reads_pass() {
        let ops = [
            op(0.0, Some(1.0), Effect::Create(1)),
            op(2.0, Some(3.0), Effect::Read(Some(1))),
            op(4.0, Some(5.0), Effect::Write(2)),
            op(6.0, Some(7.0), Effect::Read(Some(2))),
            op(8.0, Some(9.0), Effect::Remove),
            op(10.0, Some(11.0), Effect::Read(None)),
        ];
        assert!(check(&ops, None).is_ok());
    }

    #[test]
    fn a_lost_acknowledged_write_is_found() {
        // Write 2 was acknowledged, then a read saw the older value 1.
        let ops = [
            op(0.0, Some(1.0), Effect::Create(1)),
            op(2.0, Some(3.0), Effect::Write(2)),
            op(4.0, Some(5.0), Effect::Read(Some(1))),
            op(6.0, Some(7.0), Effect::Read(Some(1))),
        ];
        let violation = check(&ops, None).expect_err("a lost write");
        // The shortest failing history: the write acknowledged, then the stale read.
        let shown: Vec<Effect> = violation.ops.iter().map(|o| o.effect).collect();
        assert_eq!(shown, [Effect::Write(2), Effect::Read(Some(1))], "{violation:?}");
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // A read overlapping a write may see the value before or after it.
        let ops = [
            op(0.0, Some(1.0), Effect::Create(1)),
            op(2.0, Some(5.0), Effect::Write(2)),
            op(3.0, Some(4.0), Effect::Read(Some(1))),
            op(3.5, Some(6.0), Effect::Read(Some(2))),
        ];
        assert!(check(&ops, None).is_ok());
        // But two reads after the write completed cannot go back to the old value.
        let ops = [
            op(0.0, Some(1.0), Effect::Create(1)),
            op(2.0, Some(5.0), Effect::Write(2)),
            op(5.5, Some(6.0), Effect::Read(Some(2))),
            op(6.5, Some(7.0), Effect::Read(Some(1))),
        ];
        assert!(check(&ops, None).is_err());
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let maybe = op(2.0, None, Effect::Write(2));
        let happened = [
            op(0.0, Some(1.0), Effect::Create(1)),
            maybe.clone(),
            op(9.0, Some(10.0), Effect::Read(Some(2))),
        ];
        let never = [
            op(0.0, Some(1.0), Effect::Create(1)),
            maybe.clone(),
            op(9.0, Some(10.0), Effect::Read(Some(1))),
        ];
        assert!(check(&happened, None).is_ok());
        assert!(check(&never, None).is_ok());
        // A value nobody wrote is never explained.
        let invented = [
            op(0.0, Some(1.0), Effect::Create(1)),
            maybe,
            op(9.0, Some(10.0), Effect::Read(Some(3))),
        ];
        assert!(check(&invented, None).is_err());
    }

    #[test]
    fn two_creates_cannot_both_succeed() {
        let ops = [
            op(0.0, Some(2.0), Effect::Create(1)),
            op(0.5, Some(2.5), Effect::Create(2)),
        ];
        assert!(check(&ops, None).is_err());
        // One of them refused ("already exists") is fine.
        let ops = [
            op(0.0, Some(2.0), Effect::Create(1)),
            op(0.5, Some(2.5), Effect::ReadSome),
        ];
        assert!(check(&ops, None).is_ok());
    }

    #[test]
    fn a_removal_of_nothing_is_refused() {
        let ops = [op(0.0, Some(1.0), Effect::Remove)];
        assert!(check(&ops, None).is_err());
        let ops = [
            op(0.0, Some(1.0), Effect::Read(None)),
            op(2.0, Some(3.0), Effect::ReadSome),
        ];
        assert!(check(&ops, None).is_err());
    }

    #[test]
    fn long_concurrent_histories_are_checked_quickly() {
        // 300 operations, a quarter of unknown outcome: the memo keeps it fast.
        let mut ops = Vec::new();
        let mut value = None;
        for i in 0..300u64 {
            let t = i as f64;
            let effect = match i % 4 {
                0 => {
                    value = Some(i);
                    Effect::Write(i)
                }
                1 => Effect::Read(value),
                2 => Effect::Write(1_000 + i),
                _ => Effect::Read(value),
            };
            // The third of every four is a write of unknown outcome, overlapping everything
            // after it; nobody reads what it wrote.
            let completed = if i % 4 == 2 { None } else { Some(t + 0.9) };
            ops.push(op(t, completed, effect));
        }
        let started = std::time::Instant::now();
        assert!(check(&ops, None).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
