//! A job's lifecycle: `Running -> Succeeded | Failed(reason) | Cancelled(reason)`, its
//! tasks stage by stage, the limits that fail it, and what it leaves behind (its result
//! values, the dataset it stored).

use std::collections::BTreeMap;

use ringleader_core::ids::{Attempt, AttemptKey, JobId, ShuffleId, StageId, TaskId, WorkerId};
use ringleader_core::plan::accumulator::Accumulated;
use ringleader_core::plan::{JobPlan, StageOutput, TaskInput, TaskValue};
use serde::{Deserialize, Serialize};

use super::records::{DatasetRecord, WorkerRecord};
use super::stage::{StageRecord, StageState, TaskRecord};

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
    /// Its stages' tasks, stage for stage with the plan's.
    pub stages: Vec<StageRecord>,
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
    let tasks: usize = job.stages.iter().map(|s| s.tasks.len()).sum();
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
        self.stages
            .iter_mut()
            .zip(needed)
            .map(|(stage, needed)| stage.lose_worker(worker, running, needed))
            .sum()
    }

    /// Whether every task of `stage` is done.
    pub fn stage_done(&self, stage: usize) -> bool {
        self.stages[stage].is_done()
    }

    /// Where `stage` is in its lifecycle (see [`StageState`]), reducers counted ready once
    /// their map tasks all started when `pipelined`.
    pub fn stage_state(&self, stage: usize, pipelined: bool) -> StageState {
        self.stages[stage].state(self.stage_ready(stage, pipelined), self.state == JobState::Running)
    }

    /// A task's record, if the job has it.
    pub fn task(&self, stage: StageId, task: TaskId) -> Option<&TaskRecord> {
        self.stages.get(stage.index())?.tasks.get(task.index())
    }

    /// A task's record to change, if the job has it.
    pub fn task_mut(&mut self, stage: StageId, task: TaskId) -> Option<&mut TaskRecord> {
        self.stages.get_mut(stage.index())?.tasks.get_mut(task.index())
    }

    /// Every task, with its stage and partition, stage by stage.
    pub fn all_tasks(&self) -> impl Iterator<Item = (StageId, TaskId, &TaskRecord)> {
        self.stages.iter().enumerate().flat_map(|(s, stage)| {
            stage
                .tasks
                .iter()
                .enumerate()
                .map(move |(t, task)| (StageId::from(s), TaskId::from(t), task))
        })
    }

    /// Every attempt running now (speculative copies included), with its worker.
    pub fn running_attempts(&self) -> impl Iterator<Item = (AttemptKey, &str)> {
        self.all_tasks().flat_map(move |(s, t, task)| {
            task.state
                .running_attempts()
                .map(move |(attempt, worker)| (AttemptKey::new(&self.id, s, t, attempt), worker))
        })
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
                    && self.stages[p].all_started())
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
        let total = self.stages.iter().map(|s| s.tasks.len()).sum::<usize>() as u32;
        let done = self.stages.iter().map(StageRecord::done).sum();
        (done, total)
    }

    /// The values of the final stage's tasks, in partition order (once succeeded).
    pub fn result(&self) -> Vec<TaskValue> {
        self.stages
            .last()
            .map(|stage| stage.values().cloned().collect())
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
                let workers = producer.map(|p| self.stages[p].map_outputs()).unwrap_or_default();
                (shuffle, workers)
            })
            .collect()
    }
}

/// Why a job's stored output cannot commit (the job fails with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputIncomplete {
    /// A final task returned no stored partition.
    #[error("partition {partition} of {dataset} was not stored")]
    NotStored {
        /// The dataset.
        dataset: String,
        /// The partition.
        partition: usize,
    },
    /// A partition is on fewer registered workers than the dataset's replicas.
    #[error("partition {partition} of {dataset} has {found} of {wanted} replicas")]
    TooFewReplicas {
        /// The dataset.
        dataset: String,
        /// The partition.
        partition: usize,
        /// Registered workers holding it.
        found: u32,
        /// The dataset's replicas.
        wanted: u32,
    },
}

/// The dataset a job that just succeeded wrote, to commit with its success (if the name
/// still has the generation its placement expected): `Ok(None)` if it wrote none, an error
/// (the job fails) if a partition lacks its replicas.
pub(super) fn stored_output(
    job: &JobRecord,
    workers: &BTreeMap<WorkerId, WorkerRecord>,
) -> Result<Option<DatasetRecord>, OutputIncomplete> {
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
            return Err(OutputIncomplete::NotStored {
                dataset: spec.dataset.clone(),
                partition: p,
            });
        };
        let ids: Vec<WorkerId> = holders
            .iter()
            .filter_map(|a| workers.values().find(|w| w.address == *a).map(|w| w.id.clone()))
            .collect();
        if (ids.len() as u32) < spec.replicas {
            return Err(OutputIncomplete::TooFewReplicas {
                dataset: spec.dataset.clone(),
                partition: p,
                found: ids.len() as u32,
                wanted: spec.replicas,
            });
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
            stages: vec![StageRecord::new(tasks)],
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
            let task = &mut job.stages[0].tasks[t];
            task.state.start(&mut task.history, worker.into());
        }
        assert_eq!(job.progress(), (0, 3));
        assert!(
            job.stages[0].tasks[1]
                .state
                .finish(Attempt(1), TaskValue::Count(5), Volume::default())
        );
        assert_eq!(job.progress(), (1, 3));
        assert!(!job.stage_done(0));
        // A lost worker takes back what ran there; a final stage's output is needed by none.
        assert_eq!(job.lose_worker("w1", true), 2);
        assert_eq!(job.lose_worker("w2", true), 0, "its task is done");
        for t in [0, 2] {
            let task = &mut job.stages[0].tasks[t];
            assert_eq!(task.state.start(&mut task.history, "w2".into()), Some(Attempt(2)));
            assert!(
                task.state
                    .finish(Attempt(2), TaskValue::Count(t as u64), Volume::default())
            );
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
