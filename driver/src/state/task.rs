//! A task's lifecycle: `Pending -> Running { attempt, worker, copy } -> Done { .. }`.
//!
//! A running task may have a speculative copy (a second attempt on another worker beside a
//! straggler): the first of the two to finish wins, and when one fails or its worker is lost
//! the other carries on as the task's attempt. A failed attempt returns the task to
//! `Pending` while attempts remain; a new leader requeues every running task (`Pending`),
//! and a lost worker's running tasks and needed map outputs go back to `Pending` too.
//! Each transition is a method here, refusing (`None` / `false`) a report about an attempt
//! that is not the task's current one: such a report is stale.

use ringleader_core::ids::{Attempt, WorkerId};
use ringleader_core::plan::{TaskValue, Volume};
use serde::{Deserialize, Serialize};

/// A task's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub enum TaskState {
    /// Waiting for a slot.
    #[default]
    Pending,
    /// Sent to a worker.
    Running {
        /// Which attempt.
        attempt: Attempt,
        /// On which worker.
        worker: WorkerId,
        /// A speculative copy running beside it on another worker, if any.
        copy: Option<Speculative>,
    },
    /// Finished; its output (for map tasks) lives on `worker`.
    Done {
        /// The attempt that finished.
        attempt: Attempt,
        /// Where it ran.
        worker: WorkerId,
        /// What it returned.
        value: TaskValue,
        /// What it read.
        read: Volume,
    },
}

/// A speculative attempt: the first of it and the original to finish wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Speculative {
    /// Its attempt number.
    pub attempt: Attempt,
    /// Where it runs.
    pub worker: WorkerId,
}

/// A task's past attempts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskHistory {
    /// Attempts started (speculative copies included).
    pub attempts: u32,
    /// Workers on which an attempt failed: the next attempt avoids them when another
    /// worker can take it.
    pub failed_on: Vec<WorkerId>,
    /// Failures that count toward [`super::MAX_ATTEMPTS`]: not those of a lost worker, a
    /// leader change, a lost map output or a speculative copy's loss.
    pub failures: u32,
    /// The attempt granted the commit of the task's stored partition, if one was (see
    /// [`TaskState::grant_commit`]).
    #[serde(default)]
    pub committer: Option<Attempt>,
    /// Commits granted so far: the last grant's number, which fences its copies (a later
    /// grant always fences greater, whichever attempt numbers the two have).
    #[serde(default)]
    pub grants: u32,
}

/// Why an attempt is refused the commit of its task's stored partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRefused {
    /// Another attempt finished the task first.
    #[error("attempt {0} already finished the task")]
    AlreadyFinished(Attempt),
    /// The attempt is no longer running (failed, lost, or stopped).
    #[error("attempt {0} is no longer one of the task's running attempts")]
    NotRunning(Attempt),
    /// Another running attempt holds the grant.
    #[error("attempt {0} of the task holds the commit")]
    HeldBy(Attempt),
}

impl TaskState {
    /// Starts a pending task on `worker`: its attempt number, or `None` if it is not pending.
    pub fn start(&mut self, history: &mut TaskHistory, worker: WorkerId) -> Option<Attempt> {
        if *self != TaskState::Pending {
            return None;
        }
        history.attempts += 1;
        let attempt = Attempt(history.attempts);
        *self = TaskState::Running {
            attempt,
            worker,
            copy: None,
        };
        Some(attempt)
    }

    /// Starts a speculative copy of a running task on `worker` (not the original's, and
    /// only one copy): its attempt number. Speculation is not a failure: it uses up no
    /// attempts toward the limit.
    pub fn speculate(&mut self, history: &mut TaskHistory, worker: WorkerId) -> Option<Attempt> {
        match self {
            TaskState::Running {
                worker: original,
                copy: copy @ None,
                ..
            } if *original != worker => {
                history.attempts += 1;
                let attempt = Attempt(history.attempts);
                *copy = Some(Speculative { attempt, worker });
                Some(attempt)
            }
            _ => None,
        }
    }

    /// The attempts of this task running now: the original and its speculative copy.
    pub fn live_attempts(&self) -> Vec<Attempt> {
        match self {
            TaskState::Running { attempt, copy, .. } => std::iter::once(*attempt)
                .chain(copy.as_ref().map(|c| c.attempt))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Grants `attempt` the commit of the task's stored partition: only a running attempt,
    /// and only while no other running attempt holds the grant (a holder that failed or was
    /// lost no longer does). The grant's number (asked again by its holder, the same), or why
    /// not.
    pub fn grant_commit(&self, history: &mut TaskHistory, attempt: Attempt) -> Result<u32, CommitRefused> {
        let live = self.live_attempts();
        if !live.contains(&attempt) {
            return Err(match self {
                TaskState::Done { attempt: winner, .. } => CommitRefused::AlreadyFinished(*winner),
                _ => CommitRefused::NotRunning(attempt),
            });
        }
        match history.committer {
            Some(holder) if holder == attempt => Ok(history.grants),
            Some(other) if live.contains(&other) => Err(CommitRefused::HeldBy(other)),
            _ => {
                history.grants += 1;
                history.committer = Some(attempt);
                Ok(history.grants)
            }
        }
    }

    /// `attempt` finished with `value`: the task is done on that attempt's worker. The first
    /// of an original and its copy to finish wins; `false` for a stale report.
    pub fn finish(&mut self, attempt: Attempt, value: TaskValue, read: Volume) -> bool {
        let winner = match self {
            TaskState::Running { attempt: a, worker, .. } if *a == attempt => worker.clone(),
            TaskState::Running { copy: Some(c), .. } if c.attempt == attempt => c.worker.clone(),
            _ => return false,
        };
        *self = TaskState::Done {
            attempt,
            worker: winner,
            value,
            read,
        };
        true
    }

    /// `attempt` failed: the worker it ran on, or `None` for a stale report. A copy running
    /// beside it carries on as the task's attempt; otherwise the task is pending again.
    /// The failure is noted in `history` (and, if it `counts`, toward the attempt limit).
    pub fn fail(&mut self, history: &mut TaskHistory, attempt: Attempt, counts: bool) -> Option<WorkerId> {
        let failed_on = match self {
            TaskState::Running {
                attempt: a,
                worker,
                copy,
            } if *a == attempt => {
                let failed_on = worker.clone();
                self.drop_original();
                failed_on
            }
            TaskState::Running { copy, .. } if copy.as_ref().is_some_and(|c| c.attempt == attempt) => {
                copy.take().map(|c| c.worker).unwrap_or_default()
            }
            _ => return None,
        };
        history.failed_on.push(failed_on.clone());
        if counts {
            history.failures += 1;
        }
        Some(failed_on)
    }

    /// `attempt` could not read its input. The original's failure makes the task wait,
    /// pending, for the lost map output (its copy reads the same output, and is dropped);
    /// a copy's failure drops the copy and leaves the original running. `false` for a
    /// stale report.
    pub fn fetch_failed(&mut self, attempt: Attempt) -> bool {
        match self {
            TaskState::Running { attempt: a, .. } if *a == attempt => {
                *self = TaskState::Pending;
                true
            }
            TaskState::Running { copy, .. } if copy.as_ref().is_some_and(|c| c.attempt == attempt) => {
                *copy = None;
                true
            }
            _ => false,
        }
    }

    /// A new leader took over: a running task is pending again (its copy forgotten), not
    /// as a failure; it will be issued again with a new attempt number.
    pub fn requeue(&mut self) {
        if matches!(self, TaskState::Running { .. }) {
            *self = TaskState::Pending;
        }
    }

    /// `worker` is lost: a copy there is forgotten, an original there leaves its copy
    /// running alone; with no copy, a task running there (when `running`) or done there
    /// (when its output is `needed`) is pending again. Whether it went back to pending.
    pub fn lose_worker(&mut self, worker: &str, running: bool, needed: bool) -> bool {
        match self {
            TaskState::Running {
                worker: original, copy, ..
            } if running => {
                if copy.as_ref().is_some_and(|c| c.worker == worker) {
                    *copy = None;
                }
                if original != worker {
                    return false;
                }
                self.drop_original()
            }
            TaskState::Done { worker: w, .. } if needed && w == worker => {
                *self = TaskState::Pending;
                true
            }
            _ => false,
        }
    }

    /// The original attempt of a running task is gone: its copy, if any, carries on alone as
    /// the task's attempt; otherwise the task is pending again. Whether it went pending.
    fn drop_original(&mut self) -> bool {
        let TaskState::Running { copy, .. } = self else {
            return false;
        };
        *self = match copy.take() {
            Some(c) => TaskState::Running {
                attempt: c.attempt,
                worker: c.worker,
                copy: None,
            },
            None => TaskState::Pending,
        };
        *self == TaskState::Pending
    }

    /// Every attempt now running: the original, then its copy, each with its worker.
    pub fn running_attempts(&self) -> impl Iterator<Item = (Attempt, &str)> {
        let (original, copy) = match self {
            TaskState::Running { attempt, worker, copy } => (
                Some((*attempt, worker.as_str())),
                copy.as_ref().map(|c| (c.attempt, c.worker.as_str())),
            ),
            _ => (None, None),
        };
        original.into_iter().chain(copy)
    }

    /// The attempt running beside `attempt` (its copy, or the original its copy runs
    /// beside), with its worker: what loses if `attempt` finishes.
    pub fn rival(&self, attempt: Attempt) -> Option<(WorkerId, Attempt)> {
        let TaskState::Running {
            attempt: a,
            worker,
            copy: Some(copy),
        } = self
        else {
            return None;
        };
        if *a == attempt {
            Some((copy.worker.clone(), copy.attempt))
        } else if copy.attempt == attempt {
            Some((worker.clone(), *a))
        } else {
            None
        }
    }

    /// Whether the task finished.
    pub fn is_done(&self) -> bool {
        matches!(self, TaskState::Done { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(attempt: u32, worker: &str, copy: Option<(u32, &str)>) -> TaskState {
        TaskState::Running {
            attempt: Attempt(attempt),
            worker: worker.into(),
            copy: copy.map(|(attempt, worker)| Speculative {
                attempt: Attempt(attempt),
                worker: worker.into(),
            }),
        }
    }

    #[test]
    fn a_task_starts_once_and_finishes_on_its_current_attempt_only() {
        let (mut task, mut history) = (TaskState::Pending, TaskHistory::default());
        assert_eq!(task.start(&mut history, "w1".into()), Some(Attempt(1)));
        assert_eq!(task.start(&mut history, "w2".into()), None, "already running");
        assert!(
            !task.finish(Attempt(2), TaskValue::Count(1), Volume::default()),
            "a stale attempt"
        );
        assert!(task.finish(Attempt(1), TaskValue::Count(1), Volume::default()));
        assert!(matches!(&task, TaskState::Done { worker, attempt: Attempt(1), .. } if worker == "w1"));
        assert!(
            !task.finish(Attempt(1), TaskValue::Count(1), Volume::default()),
            "done once"
        );
    }

    #[test]
    fn the_first_of_a_straggler_and_its_copy_to_finish_wins() {
        let mut history = TaskHistory {
            attempts: 1,
            ..Default::default()
        };
        let mut task = running(1, "w1", None);
        assert_eq!(
            task.speculate(&mut history, "w1".into()),
            None,
            "not on the same worker"
        );
        assert_eq!(task.speculate(&mut history, "w2".into()), Some(Attempt(2)));
        assert_eq!(task.speculate(&mut history, "w3".into()), None, "one copy at a time");
        assert_eq!(
            task.running_attempts().collect::<Vec<_>>(),
            vec![(Attempt(1), "w1"), (Attempt(2), "w2")]
        );
        assert_eq!(task.rival(Attempt(1)), Some(("w2".into(), Attempt(2))));
        assert_eq!(task.rival(Attempt(2)), Some(("w1".into(), Attempt(1))));
        assert!(task.finish(Attempt(2), TaskValue::Count(1), Volume::default()));
        assert!(matches!(&task, TaskState::Done { worker, .. } if worker == "w2"));
        assert_eq!(history.failures, 0, "speculation is not a failure");
    }

    #[test]
    fn when_one_of_two_attempts_fails_the_other_carries_on() {
        let mut history = TaskHistory::default();
        let mut task = running(1, "w1", Some((2, "w2")));
        assert_eq!(task.fail(&mut history, Attempt(1), true), Some("w1".into()));
        assert_eq!(task, running(2, "w2", None));
        assert_eq!(
            (history.failures, history.failed_on.clone()),
            (1, vec![WorkerId::from("w1")])
        );

        let mut task = running(1, "w1", Some((2, "w2")));
        assert_eq!(task.fail(&mut history, Attempt(2), false), Some("w2".into()));
        assert_eq!(task, running(1, "w1", None));
        assert_eq!(history.failures, 1, "an uncounted failure");

        assert_eq!(task.fail(&mut history, Attempt(7), true), None, "a stale attempt");
        assert_eq!(task.fail(&mut history, Attempt(1), true), Some("w1".into()));
        assert_eq!(task, TaskState::Pending);
    }

    #[test]
    fn a_lost_worker_takes_what_ran_or_is_needed_there() {
        let mut task = running(1, "w1", Some((2, "w2")));
        assert!(!task.lose_worker("w1", true, false), "the copy carries on alone");
        assert_eq!(task, running(2, "w2", None));
        assert!(task.lose_worker("w2", true, false));
        assert_eq!(task, TaskState::Pending);

        let mut task = running(1, "w1", Some((2, "w2")));
        assert!(!task.lose_worker("w2", true, false));
        assert_eq!(task, running(1, "w1", None), "the copy is forgotten");
        assert!(
            !task.lose_worker("w1", false, true),
            "a fetch failure leaves running tasks"
        );

        let done = |task: &mut TaskState| task.finish(Attempt(1), TaskValue::Count(1), Volume::default());
        assert!(done(&mut task));
        assert!(!task.lose_worker("w1", true, false), "output no stage needs stays");
        assert!(task.lose_worker("w1", false, true), "needed output is computed again");
        assert_eq!(task, TaskState::Pending);
    }

    #[test]
    fn fetch_failures_and_a_new_leader_requeue_running_tasks() {
        let mut task = running(3, "w1", Some((4, "w2")));
        assert!(!task.fetch_failed(Attempt(1)), "a stale attempt");
        assert!(task.fetch_failed(Attempt(4)));
        assert_eq!(
            task,
            running(3, "w1", None),
            "the copy is dropped, the original runs on"
        );
        assert!(task.fetch_failed(Attempt(3)));
        assert_eq!(task, TaskState::Pending);
        let mut task = running(3, "w1", None);
        task.requeue();
        assert_eq!(task, TaskState::Pending);
        let mut done = TaskState::Pending;
        done.start(&mut TaskHistory::default(), "w1".into());
        assert!(done.finish(Attempt(1), TaskValue::Count(1), Volume::default()));
        done.requeue();
        assert!(done.is_done(), "a finished task stays done");
    }
}
