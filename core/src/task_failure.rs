//! Why a task attempt failed, in the kinds the driver acts on: each says whether another
//! attempt may succeed, whether the failure counts toward the task's attempt limit, and
//! whether map output must be recomputed first. Executors and workers report failures
//! only through here.

use crate::error::Error;
use crate::proto;

/// A failed attempt, by what the driver does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFailure {
    /// Another attempt would fail the same way (a panic, a bad record, a plan this binary
    /// cannot run): the job fails.
    Fatal(String),
    /// Another attempt may succeed (I/O: a full disk, a vanished file; an unreachable
    /// peer); the attempt counts toward the task's limit.
    Retryable(String),
    /// The executor running it died. Alone in it, the task caused the exit and the attempt
    /// counts; beside others, which of them did is unknown, so none counts (the driver
    /// bounds such losses per job instead).
    ExecutorLost {
        /// What happened to the executor.
        message: String,
        /// Whether this was the only task in it.
        alone: bool,
    },
    /// Another attempt of the task owns its output (see [`Error::Superseded`]): nothing
    /// went wrong, so it does not count; the driver ignores it unless this attempt is still
    /// the task's (then another runs).
    Superseded(String),
    /// Map output it needed could not be read from the worker at `location`: that output
    /// is recomputed and the task retried; not the task's fault, so it does not count.
    FetchFailed {
        /// What the fetch met.
        message: String,
        /// The worker the output was to come from.
        location: String,
    },
}

impl TaskFailure {
    /// The kind of `e`, the error a task ended with.
    pub fn of(e: &Error) -> TaskFailure {
        let cause = match e {
            Error::TaskFailed { cause, .. } => cause.as_ref(),
            other => other,
        };
        match cause {
            Error::FetchFailed { location, .. } => TaskFailure::FetchFailed {
                message: e.to_string(),
                location: location.clone(),
            },
            Error::Superseded(_) | Error::Stopped => TaskFailure::Superseded(e.to_string()),
            _ if cause.is_io() || matches!(cause, Error::Unreachable { .. }) => TaskFailure::Retryable(e.to_string()),
            _ => TaskFailure::Fatal(e.to_string()),
        }
    }

    /// The report of attempt `a` ending with this failure.
    pub fn report_for(&self, a: &proto::TaskAssignment) -> proto::TaskReport {
        proto::TaskReport {
            job_id: a.job_id.clone(),
            stage: a.stage_index,
            task: a.task,
            attempt: a.attempt,
            outcome: Some(proto::task_report::Outcome::Error(self.to_proto())),
            ..Default::default()
        }
    }

    /// As the protocol carries it.
    pub fn to_proto(&self) -> proto::TaskError {
        let (message, retryable, counts, fetch_location) = match self {
            TaskFailure::Fatal(m) => (m, false, true, None),
            TaskFailure::Retryable(m) => (m, true, true, None),
            TaskFailure::Superseded(m) => (m, true, false, None),
            TaskFailure::ExecutorLost { message, alone } => (message, true, *alone, None),
            TaskFailure::FetchFailed { message, location } => (message, true, false, Some(location)),
        };
        proto::TaskError {
            message: message.clone(),
            retryable,
            fetch_failure: fetch_location.is_some(),
            fetch_location: fetch_location.cloned().unwrap_or_default(),
            counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{StageId, TaskId};

    #[test]
    fn each_kind_says_what_the_driver_does() {
        let fetch = TaskFailure::of(&Error::TaskFailed {
            stage: StageId(1),
            partition: TaskId(0),
            cause: Box::new(Error::FetchFailed {
                location: "10.0.0.2:7000".into(),
                message: "gone".into(),
            }),
        })
        .to_proto();
        assert!(fetch.retryable && fetch.fetch_failure && !fetch.counts);
        assert_eq!(fetch.fetch_location, "10.0.0.2:7000");

        let io = TaskFailure::of(&Error::io("/x", std::io::Error::other("disk full"))).to_proto();
        assert!(io.retryable && io.counts && !io.fetch_failure);

        let panic = TaskFailure::of(&Error::TaskPanicked {
            stage: StageId(0),
            partition: TaskId(3),
            message: "boom".into(),
        })
        .to_proto();
        assert!(!panic.retryable && panic.counts && panic.message.contains("boom"));

        let lost = |alone| TaskFailure::ExecutorLost {
            message: "killed".into(),
            alone,
        };
        let superseded = TaskFailure::of(&Error::TaskFailed {
            stage: StageId(1),
            partition: TaskId(2),
            cause: Box::new(Error::Superseded("attempt 3 owns it".into())),
        })
        .to_proto();
        assert!(superseded.retryable && !superseded.counts && superseded.message.contains("attempt 3"));
        assert!(lost(true).to_proto().counts && !lost(false).to_proto().counts);
        assert!(lost(false).to_proto().retryable);
    }
}
