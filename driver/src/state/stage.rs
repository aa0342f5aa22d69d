//! A stage of a job: its tasks, each with its state and the history of its attempts, and
//! the stage's lifecycle drawn from them.
//!
//! ```text
//!             parents done (or, pipelined, every map task of the
//!             shuffles it reads started)
//!   Waiting ───────────────────────────────────────────▶ Runnable
//!                                                          │  ▲
//!                                       an attempt starts  │  │ its running attempts lost
//!                                                          ▼  │ (worker lost, failed, requeued)
//!                                                        Running
//!                                                          │
//!                                      its last task done  ▼
//!                                                         Done ──▶ Runnable
//!                                                (a map output a later stage still
//!                                                 needs is lost with its worker)
//!
//!   any stage not Done ──(its job fails or is cancelled)──▶ Failed
//! ```
//!
//! The lifecycle is derived from the tasks, never stored beside them: a stage cannot be in
//! a state its tasks contradict, and a snapshot carries only the tasks.

use ringleader_core::ids::{Attempt, WorkerId};
use ringleader_core::plan::TaskValue;
use serde::{Deserialize, Serialize};

use super::task::{TaskHistory, TaskState};

/// One task of a stage: where it is, and what its earlier attempts did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskRecord {
    /// Its state now.
    pub state: TaskState,
    /// Its attempts so far.
    pub history: TaskHistory,
}

/// A stage's tasks, index for index with its plan's tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// One per partition.
    pub tasks: Vec<TaskRecord>,
}

/// Where a stage is in its lifecycle (see the module's drawing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    /// It waits for the stages it reads.
    Waiting,
    /// It may run and has a pending task, none running.
    Runnable,
    /// An attempt of one of its tasks runs.
    Running,
    /// Every task finished.
    Done,
    /// Its job ended before it finished.
    Failed,
}

impl StageState {
    /// A short name for listings and the status page.
    pub fn name(self) -> &'static str {
        match self {
            StageState::Waiting => "waiting",
            StageState::Runnable => "runnable",
            StageState::Running => "running",
            StageState::Done => "done",
            StageState::Failed => "failed",
        }
    }
}

impl StageRecord {
    /// A stage of `tasks` pending tasks.
    pub fn new(tasks: usize) -> StageRecord {
        StageRecord {
            tasks: vec![TaskRecord::default(); tasks],
        }
    }

    /// Where the stage is: `ready` when the stages it reads let it run, `job_running` while
    /// its job runs.
    pub fn state(&self, ready: bool, job_running: bool) -> StageState {
        if self.is_done() {
            StageState::Done
        } else if !job_running {
            StageState::Failed
        } else if self.states().any(|t| matches!(t, TaskState::Running { .. })) {
            StageState::Running
        } else if ready {
            StageState::Runnable
        } else {
            StageState::Waiting
        }
    }

    /// Its tasks' states, in partition order.
    pub fn states(&self) -> impl Iterator<Item = &TaskState> {
        self.tasks.iter().map(|t| &t.state)
    }

    /// Whether every task finished.
    pub fn is_done(&self) -> bool {
        self.states().all(TaskState::is_done)
    }

    /// Whether every task has started at least once and is not pending now.
    pub fn all_started(&self) -> bool {
        self.states().all(|t| *t != TaskState::Pending)
    }

    /// How many tasks finished.
    pub fn done(&self) -> u32 {
        self.states().filter(|t| t.is_done()).count() as u32
    }

    /// Attempts started over all tasks (speculative copies included).
    pub fn attempts(&self) -> u32 {
        self.tasks.iter().map(|t| t.history.attempts).sum()
    }

    /// The finished tasks' values, in partition order (those not finished left out).
    pub fn values(&self) -> impl Iterator<Item = &TaskValue> {
        self.states().filter_map(|t| match t {
            TaskState::Done { value, .. } => Some(value),
            _ => None,
        })
    }

    /// Where each task's output is, as its map output: the worker and the attempt that
    /// wrote it (a default worker id and attempt 0 for a task not finished yet).
    pub fn map_outputs(&self) -> Vec<(WorkerId, Attempt)> {
        self.states()
            .map(|t| match t {
                TaskState::Done { worker, attempt, .. } => (worker.clone(), *attempt),
                _ => (WorkerId::default(), Attempt(0)),
            })
            .collect()
    }

    /// `worker` is lost: its running attempts (with `running`) and, when `needed` by a
    /// stage still to finish, the outputs of tasks done there go back to pending. How many
    /// tasks did.
    pub fn lose_worker(&mut self, worker: &str, running: bool, needed: bool) -> u32 {
        self.tasks
            .iter_mut()
            .map(|t| u32::from(t.state.lose_worker(worker, running, needed)))
            .sum()
    }

    /// A new leader took over: every running task is pending again.
    pub fn requeue(&mut self) {
        self.tasks.iter_mut().for_each(|t| t.state.requeue());
    }
}

#[cfg(test)]
mod tests {
    use ringleader_core::plan::Volume;

    use super::*;

    fn start(stage: &mut StageRecord, t: usize, worker: &str) -> Attempt {
        let TaskRecord { state, history } = &mut stage.tasks[t];
        state.start(history, worker.into()).expect("pending")
    }

    #[test]
    fn a_stage_waits_then_runs_then_is_done() {
        let mut stage = StageRecord::new(2);
        assert_eq!(stage.state(false, true), StageState::Waiting);
        assert_eq!(stage.state(true, true), StageState::Runnable);
        let first = start(&mut stage, 0, "w1");
        assert_eq!(stage.state(true, true), StageState::Running);
        assert!(!stage.all_started());
        start(&mut stage, 1, "w2");
        assert!(stage.all_started());
        assert!(
            stage.tasks[0]
                .state
                .finish(first, TaskValue::Count(3), Volume::default())
        );
        assert_eq!((stage.done(), stage.state(true, true)), (1, StageState::Running));
        assert!(
            stage.tasks[1]
                .state
                .finish(Attempt(1), TaskValue::Count(4), Volume::default())
        );
        assert_eq!(stage.state(true, true), StageState::Done);
        assert_eq!(
            stage.state(true, false),
            StageState::Done,
            "done stays done when its job ends"
        );
        let values: Vec<&TaskValue> = stage.values().collect();
        assert_eq!(values, [&TaskValue::Count(3), &TaskValue::Count(4)]);
        assert_eq!(stage.attempts(), 2);
    }

    #[test]
    fn a_lost_worker_takes_a_running_stage_back_to_runnable() {
        let mut stage = StageRecord::new(2);
        start(&mut stage, 0, "w1");
        start(&mut stage, 1, "w1");
        assert_eq!(stage.lose_worker("w2", true, true), 0, "nothing ran there");
        assert_eq!(stage.lose_worker("w1", true, true), 2);
        assert_eq!(stage.state(true, true), StageState::Runnable);
        assert_eq!(stage.attempts(), 2, "the lost attempts stay in the history");
    }

    #[test]
    fn a_done_stage_whose_needed_output_is_lost_runs_again() {
        let mut stage = StageRecord::new(2);
        for (t, worker) in ["w1", "w2"].into_iter().enumerate() {
            let attempt = start(&mut stage, t, worker);
            assert!(
                stage.tasks[t]
                    .state
                    .finish(attempt, TaskValue::Count(1), Volume::default())
            );
        }
        assert_eq!(
            stage.map_outputs(),
            [("w1".into(), Attempt(1)), ("w2".into(), Attempt(1))]
        );
        assert_eq!(
            stage.lose_worker("w1", true, false),
            0,
            "an output no stage needs stays"
        );
        assert_eq!(stage.state(true, true), StageState::Done);
        assert_eq!(stage.lose_worker("w1", true, true), 1);
        assert_eq!(stage.state(true, true), StageState::Runnable);
        assert_eq!(stage.map_outputs()[0], (WorkerId::default(), Attempt(0)));
    }

    #[test]
    fn a_requeued_stage_is_runnable_and_a_stage_of_an_ended_job_failed() {
        let mut stage = StageRecord::new(1);
        start(&mut stage, 0, "w1");
        stage.requeue();
        assert_eq!(stage.state(true, true), StageState::Runnable);
        assert_eq!(stage.state(true, false), StageState::Failed);
        assert_eq!(stage.state(false, false), StageState::Failed);
    }

    #[test]
    fn states_have_short_names() {
        let names: Vec<&str> = [
            StageState::Waiting,
            StageState::Runnable,
            StageState::Running,
            StageState::Done,
            StageState::Failed,
        ]
        .into_iter()
        .map(StageState::name)
        .collect();
        assert_eq!(names, ["waiting", "runnable", "running", "done", "failed"]);
    }
}
