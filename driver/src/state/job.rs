//! A job's lifecycle: `Running -> Succeeded | Failed(reason) | Cancelled(reason)`, its
//! tasks stage by stage, the limits that fail it, and what it leaves behind (its result
//! values, the dataset it stored).

use std::collections::BTreeMap;

use ringleader_core::ids::{Attempt, JobId, ShuffleId, StageId, TaskId, WorkerId};
use ringleader_core::plan::accumulator::Accumulated;
use ringleader_core::plan::{JobPlan, StageOutput, TaskInput, TaskValue};
use serde::{Deserialize, Serialize};

use super::records::{DatasetRecord, WorkerRecord};
use super::task::{TaskHistory, TaskState};

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// Fetch failures a job survives (each recomputes the lost map output) before it fails.
pub const MAX_FETCH_FAILURES: u32 = 8;

/// A job's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum JobState {
    /// Tasks are being scheduled.
    Running,
    /// Every task finished.
    Succeeded,
    /// A task failed for good.
    Failed(String),
    /// The client went away or asked to stop.
    Cancelled(String),
}

impl JobState {
    /// A short name for status listings.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed(_) => "failed",
            JobState::Cancelled(_) => "cancelled",
        }
    }
}

/// A submitted job and the state of each of its tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id (`job-NNNNNN`).
    pub id: JobId,
    /// A name for listings (the binary's file name).
    pub name: String,
    /// Content hash of its binary.
    pub binary: String,
    /// The job's arguments, for its executors.
    pub args: Vec<String>,
    /// Environment for its executors.
    pub env: BTreeMap<String, String>,
    /// Working directory for its executors.
    pub working_dir: String,
    /// The plan.
    pub plan: JobPlan,
    /// `tasks[stage][task]`.
    pub tasks: Vec<Vec<TaskState>>,
    /// What earlier attempts did, `history[stage][task]`.
    pub history: Vec<Vec<TaskHistory>>,
    /// Where the job is.
    pub state: JobState,
    /// The client's submission id (a resubmission with it finds this job).
    pub submission: String,
    /// When it was accepted, Unix milliseconds.
    pub submitted_ms: u64,
    /// Whether its values were dropped (see [`super::KEPT_RESULTS`]).
    #[serde(default)]
    pub results_dropped: bool,
    /// Fetch failures so far (see [`MAX_FETCH_FAILURES`]).
    #[serde(default)]
    pub fetch_failures: u32,
    /// Task failures that did not count toward their task's attempts (see
    /// [`max_uncounted_failures`]).
    #[serde(default)]
    pub uncounted_failures: u32,
    /// Whether the job ended and its plan's data was dropped (see
    /// [`ringleader_core::plan::JobPlan::forget_data`]).
    #[serde(default)]
    pub plan_data_dropped: bool,
    /// The accumulator updates of each task that finished, from its first recorded success
    /// (a retried, recomputed or speculated task counts once): `(stage, task)` to updates.
    #[serde(default)]
    pub accumulated: BTreeMap<(StageId, TaskId), Vec<Accumulated>>,
}

/// How many task failures that count toward no task's attempts (tasks lost with an executor
/// that another task of theirs made exit) a job survives: 32, or one per task beyond that.
pub fn max_uncounted_failures(job: &JobRecord) -> u32 {
    let tasks: usize = job.tasks.iter().map(Vec::len).sum();
    (tasks as u32).max(32)
}

impl JobRecord {
    /// Each accumulator's total over the job's finished tasks, each task counted once.
    pub fn accumulator_totals(&self) -> Vec<Accumulated> {
        ringleader_core::plan::accumulator::totals(self.accumulated.values())
    }

    /// Returns `worker`'s map outputs that a stage still to finish will read to pending, so
    /// they are computed again from the plan (only those outputs, not the whole stage), and
    /// with `running` also its running tasks; neither counts as a failure. Returns how many
    /// tasks went back.
    pub fn lose_worker(&mut self, worker: &str, running: bool) -> u32 {
        let stages = &self.plan.stages;
        let needed: Vec<bool> = stages
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                matches!(stage.output, StageOutput::Shuffle { .. })
                    && stages
                        .iter()
                        .enumerate()
                        .any(|(c, child)| child.parents.contains(&StageId::from(s)) && !self.stage_done(c))
            })
            .collect();
        let mut lost = 0;
        for (s, tasks) in self.tasks.iter_mut().enumerate() {
            for task in tasks {
                lost += u32::from(task.lose_worker(worker, running, needed[s]));
            }
        }
        lost
    }

    /// Whether every task of `stage` is done.
    pub fn stage_done(&self, stage: usize) -> bool {
        self.tasks[stage].iter().all(|t| t.is_done())
    }

    /// Whether the tasks of `stage` may start: every stage it waits for is done, or, with
    /// `pipelined`, those it only reads the shuffle output of have every task started (its
    /// reducers then fetch each map output as it lands, told of it on their task stream;
    /// see `ringleader_core::shuffle::cluster`). A stage whose sink state comes from another
    /// waits for that one to be done.
    pub fn stage_ready(&self, stage: usize, pipelined: bool) -> bool {
        let plan = &self.plan.stages[stage];
        plan.parents.iter().all(|&p| {
            let p = p.index();
            self.stage_done(p)
                || (pipelined
                    && plan.state_from != Some(StageId::from(p))
                    && self.reads_shuffle_of(stage, p)
                    && self.tasks[p].iter().all(|t| *t != TaskState::Pending))
        })
    }

    /// Whether `stage`'s tasks read the shuffle stage `producer` writes.
    pub fn reads_shuffle_of(&self, stage: usize, producer: usize) -> bool {
        let StageOutput::Shuffle { shuffle, .. } = &self.plan.stages[producer].output else {
            return false;
        };
        self.plan.stages[stage].tasks.iter().any(|t| match &t.input {
            TaskInput::Shuffle(read) => read.shuffles.contains(shuffle),
            _ => false,
        })
    }

    /// (done, total) tasks over all stages.
    pub fn progress(&self) -> (u32, u32) {
        let total = self.tasks.iter().map(Vec::len).sum::<usize>() as u32;
        let done = self.tasks.iter().flatten().filter(|t| t.is_done()).count() as u32;
        (done, total)
    }

    /// The values of the final stage's tasks, in partition order (once succeeded).
    pub fn result(&self) -> Vec<TaskValue> {
        self.tasks
            .last()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| match t {
                        TaskState::Done { value, .. } => Some(value.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For each shuffle a task of `stage` reads: the worker holding each map task's output
    /// and the attempt that wrote it (a default worker id for a map task not done yet).
    pub fn shuffle_inputs(&self, stage: usize, task: usize) -> Vec<(ShuffleId, Vec<(WorkerId, Attempt)>)> {
        let Some(TaskInput::Shuffle(read)) = self.plan.stages[stage].tasks.get(task).map(|t| &t.input) else {
            return Vec::new();
        };
        read.shuffles
            .iter()
            .map(|&shuffle| {
                let producer = self
                    .plan
                    .stages
                    .iter()
                    .position(|s| matches!(&s.output, StageOutput::Shuffle { shuffle: id, .. } if *id == shuffle));
                let workers = producer
                    .map(|p| {
                        self.tasks[p]
                            .iter()
                            .map(|t| match t {
                                TaskState::Done { worker, attempt, .. } => (worker.clone(), *attempt),
                                _ => (WorkerId::default(), Attempt(0)),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (shuffle, workers)
            })
            .collect()
    }
}

/// The dataset a job that just succeeded wrote, to commit with its success (if the name
/// still has the generation its placement expected): `Ok(None)` if it wrote none, an error
/// (the job fails) if a partition lacks its replicas.
pub(super) fn stored_output(
    job: &JobRecord,
    workers: &BTreeMap<WorkerId, WorkerRecord>,
) -> Result<Option<DatasetRecord>, String> {
    let Some(spec) = &job.plan.store else {
        return Ok(None);
    };
    let mut record = DatasetRecord {
        name: spec.dataset.clone(),
        generation: spec.generation.clone(),
        format: spec.format,
        replicas: spec.replicas,
        placement: Vec::new(),
        rows: Vec::new(),
        bytes: Vec::new(),
    };
    for (p, value) in job.result().into_iter().enumerate() {
        let TaskValue::Stored { rows, bytes, holders } = value else {
            return Err(format!("partition {p} of {} was not stored", spec.dataset));
        };
        let ids: Vec<WorkerId> = holders
            .iter()
            .filter_map(|a| workers.values().find(|w| w.address == *a).map(|w| w.id.clone()))
            .collect();
        if (ids.len() as u32) < spec.replicas {
            return Err(format!(
                "partition {p} of {} has {} of {} replicas",
                spec.dataset,
                ids.len(),
                spec.replicas
            ));
        }
        record.placement.push(ids);
        record.rows.push(rows);
        record.bytes.push(bytes);
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use ringleader_core::plan::Volume;

    use super::*;

    fn record(tasks: usize) -> JobRecord {
        let plan = crate::scheduler::tests::job(tasks);
        JobRecord {
            id: "job-000001".into(),
            name: "t".into(),
            binary: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: String::new(),
            tasks: vec![vec![TaskState::Pending; tasks]],
            history: vec![vec![TaskHistory::default(); tasks]],
            plan,
            state: JobState::Running,
            submission: String::new(),
            submitted_ms: 0,
            results_dropped: false,
            fetch_failures: 0,
            uncounted_failures: 0,
            plan_data_dropped: false,
            accumulated: BTreeMap::new(),
        }
    }

    #[test]
    fn progress_and_results_follow_the_tasks() {
        let mut job = record(3);
        for (t, worker) in ["w1", "w2", "w1"].into_iter().enumerate() {
            job.tasks[0][t].start(&mut job.history[0][t], worker.into());
        }
        assert_eq!(job.progress(), (0, 3));
        assert!(job.tasks[0][1].finish(Attempt(1), TaskValue::Count(5), Volume::default()));
        assert_eq!(job.progress(), (1, 3));
        assert!(!job.stage_done(0));
        // A lost worker takes back what ran there; a final stage's output is needed by none.
        assert_eq!(job.lose_worker("w1", true), 2);
        assert_eq!(job.lose_worker("w2", true), 0, "its task is done");
        for t in [0, 2] {
            assert_eq!(
                job.tasks[0][t].start(&mut job.history[0][t], "w2".into()),
                Some(Attempt(2))
            );
            assert!(job.tasks[0][t].finish(Attempt(2), TaskValue::Count(t as u64), Volume::default()));
        }
        assert!(job.stage_done(0));
        assert_eq!(
            job.result(),
            vec![TaskValue::Count(0), TaskValue::Count(5), TaskValue::Count(2)]
        );
    }

    #[test]
    fn a_job_bounds_the_failures_no_task_is_blamed_for() {
        assert_eq!(max_uncounted_failures(&record(3)), 32);
        assert_eq!(max_uncounted_failures(&record(100)), 100);
    }

    #[test]
    fn states_have_short_names() {
        let names: Vec<&str> = [
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed("x".into()),
            JobState::Cancelled("y".into()),
        ]
        .iter()
        .map(JobState::name)
        .collect();
        assert_eq!(names, ["running", "succeeded", "failed", "cancelled"]);
    }
}
