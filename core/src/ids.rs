//! Ids with types of their own ([`JobId`], [`WorkerId`], [`StageId`], [`ShuffleId`],
//! [`TaskId`], [`Attempt`], and an attempt's whole name [`AttemptKey`]) so that one cannot be passed where another is meant, and the
//! names that become directory names on workers (job ids, dataset names): what each may be,
//! checked wherever one arrives from outside. An id serialises as the `String` or `u32` it
//! replaced (plans and the Raft log's format do not change with it).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a string id type: built from text, read as `&str`, shown as itself.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id `text` names.
            pub fn new(text: impl Into<String>) -> Self {
                $name(text.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                $name(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(text.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A job's id (`job-NNNNNN`), given by the driver group when it accepts the job.
    JobId
);

string_id!(
    /// A worker's id (`worker-N`), given by the driver group when the worker registers.
    WorkerId
);

/// Defines a numeric id type: a `u32` read as itself, an index where one is needed.
macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// As an index into a list.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u32> for $name {
            fn from(n: u32) -> Self {
                $name(n)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        impl From<usize> for $name {
            fn from(n: usize) -> Self {
                $name(n as u32)
            }
        }
    };
}

number_id!(
    /// A stage's index within its job.
    StageId
);

number_id!(
    /// A shuffle's number within its job: the map stage writing it and the stages reading it
    /// name it (numbered apart from the stages).
    ShuffleId
);

number_id!(
    /// A task's index within its stage (the partition it computes).
    TaskId
);

number_id!(
    /// An attempt's number within its task (from 1; speculative copies count too).
    Attempt
);

/// One attempt of one task of one job: what the driver (its timings, the attempts a
/// worker's heartbeat lists, the status page), the worker and the executor key attempts by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptKey {
    /// The job.
    pub job: JobId,
    /// The stage.
    pub stage: StageId,
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: Attempt,
}

impl AttemptKey {
    /// Attempt `attempt` of task `task` of stage `stage` of `job`.
    pub fn new(job: &str, stage: StageId, task: TaskId, attempt: Attempt) -> AttemptKey {
        AttemptKey {
            job: JobId::from(job),
            stage,
            task,
            attempt,
        }
    }

    /// The attempt a task assignment names (a task, an update of its inputs, a stop).
    pub fn of_assignment(a: &crate::proto::TaskAssignment) -> AttemptKey {
        AttemptKey::new(&a.job_id, StageId(a.stage_index), TaskId(a.task), Attempt(a.attempt))
    }

    /// The attempt a running-task message names (a heartbeat's, a stop order's).
    pub fn of_running(r: &crate::proto::RunningTask) -> AttemptKey {
        AttemptKey::new(&r.job_id, StageId(r.stage), TaskId(r.task), Attempt(r.attempt))
    }

    /// The running-task message naming this attempt.
    pub fn to_running(&self) -> crate::proto::RunningTask {
        crate::proto::RunningTask {
            job_id: self.job.to_string(),
            stage: self.stage.0,
            task: self.task.0,
            attempt: self.attempt.0,
        }
    }
}

/// Whether `name` is safe as one directory name: 1 to 64 letters, digits, `-` or `_`.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `id` is a job id (letters, digits, `-`, `_`; at most 64 bytes).
pub fn valid_job_id(id: &str) -> bool {
    safe_name(id)
}

/// Whether `name` can name a dataset (letters, digits, `-`, `_`; at most 64 bytes).
pub fn valid_dataset_name(name: &str) -> bool {
    safe_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_as_their_text_and_serialise_as_it() {
        let job = JobId::new("job-000007");
        assert_eq!(job, "job-000007");
        assert_eq!(format!("{job}"), "job-000007");
        assert!(job.starts_with("job-"));
        let as_string = postcard::to_stdvec(&"job-000007".to_string()).expect("encodes");
        assert_eq!(
            postcard::to_stdvec(&job).expect("encodes"),
            as_string,
            "the log's format is unchanged"
        );
        let mut by_id = std::collections::BTreeMap::new();
        by_id.insert(WorkerId::from("worker-1"), 1);
        assert_eq!(by_id.get("worker-1"), Some(&1), "looked up by text");
        let three = postcard::to_stdvec(&3u32).expect("encodes");
        assert_eq!(postcard::to_stdvec(&Attempt(3)).expect("encodes"), three);
        assert_eq!(StageId::from(2usize).index(), 2);
        assert_eq!(TaskId(7).to_string(), "7");
    }

    #[test]
    fn names_are_single_safe_path_components() {
        assert!(valid_job_id("job-000001") && valid_dataset_name("counts_2"));
        for bad in ["", "..", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_job_id(bad) && !valid_dataset_name(bad), "{bad:?}");
        }
    }
}
