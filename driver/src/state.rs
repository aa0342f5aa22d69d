//! The driver's state machine: everything the driver knows that must outlive a leader
//! (workers, binaries, jobs, stages, tasks). It changes only through [`Command`]s applied
//! in order, so that a Raft log can replicate exactly this type (issue 4); liveness
//! (heartbeats) is kept outside it, as leader-local soft state.
//!
//! A task's lifecycle: `Pending -> Running { attempt, worker } -> Done { .. }`; a failed
//! attempt returns to `Pending` while attempts remain, and otherwise fails the job.
//! A job: `Running -> Succeeded | Failed(reason) | Cancelled(reason)`.

use std::collections::BTreeMap;

use ringleader_core::plan::{JobPlan, StageOutput, TaskInput, TaskValue, Volume};
use ringleader_core::store::DatasetFormat;
use serde::{Deserialize, Serialize};

use crate::observed::AttemptKey;

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// Fetch failures a job survives (each recomputes the lost map output) before it fails.
pub const MAX_FETCH_FAILURES: u32 = 8;

/// Finished jobs kept for `ringleader jobs`; older ones are forgotten as new ones arrive.
pub const KEPT_JOBS: usize = 1000;

/// Finished jobs whose results (collected rows, partial values) are kept, for a client
/// that reconnects after a leader change; older ones keep only their history, so the
/// replicated state (and every snapshot) stays small.
pub const KEPT_RESULTS: usize = 16;

/// A registered worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerRecord {
    /// Its id (`worker-N`).
    pub id: String,
    /// Where its gRPC and Flight services listen.
    pub address: String,
    /// How many tasks it runs at once.
    pub slots: u32,
    /// Its process id (for `cluster status`).
    pub pid: u32,
    /// Its shuffle directory: reducers on the same machine read map output from it directly.
    pub shuffle_dir: String,
    /// Its filesystem identity ([`ringleader_core::machine`]): equal means the same files.
    pub machine: String,
    /// Its process's incarnation: another one at the same address is a restarted worker.
    #[serde(default)]
    pub incarnation: String,
}

/// A task's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TaskState {
    /// Waiting for a slot.
    Pending,
    /// Sent to a worker.
    Running {
        /// Which attempt.
        attempt: u32,
        /// On which worker.
        worker: String,
    },
    /// Finished; its output (for map tasks) lives on `worker`.
    Done {
        /// The attempt that finished.
        attempt: u32,
        /// Where it ran.
        worker: String,
        /// What it returned.
        value: TaskValue,
        /// What it read.
        read: Volume,
    },
}

/// A task's past attempts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskHistory {
    /// Attempts started.
    pub attempts: u32,
    /// Workers on which an attempt failed: the next attempt avoids them when another
    /// worker can take it.
    pub failed_on: Vec<String>,
    /// Failures that count toward [`MAX_ATTEMPTS`]: not those of a lost worker, a leader
    /// change, a lost map output or a speculative copy's loss.
    #[serde(default)]
    pub failures: u32,
    /// A second, speculative attempt running beside the first (a straggler's copy).
    #[serde(default)]
    pub speculative: Option<Speculative>,
}

/// A speculative attempt: the first of it and the original to finish wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Speculative {
    /// Its attempt number.
    pub attempt: u32,
    /// Where it runs.
    pub worker: String,
}

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
    pub id: String,
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
    /// Whether its values were dropped (see [`KEPT_RESULTS`]).
    #[serde(default)]
    pub results_dropped: bool,
    /// Fetch failures so far (see [`MAX_FETCH_FAILURES`]).
    #[serde(default)]
    pub fetch_failures: u32,
    /// Task failures that did not count toward their task's attempts (see
    /// [`max_uncounted_failures`]).
    #[serde(default)]
    pub uncounted_failures: u32,
}

/// How many task failures that count toward no task's attempts (tasks lost with an executor
/// that another task of theirs made exit) a job survives: 32, or one per task beyond that.
pub fn max_uncounted_failures(job: &JobRecord) -> u32 {
    let tasks: usize = job.tasks.iter().map(Vec::len).sum();
    (tasks as u32).max(32)
}

impl JobRecord {
    /// Returns `worker`'s map outputs that a stage still to finish will read to pending, so
    /// they are computed again from the plan (only those outputs, not the whole stage), and
    /// with `running` also its running tasks; neither counts as a failure. Returns how many
    /// tasks went back.
    pub fn lose_worker(&mut self, worker: &str, running: bool) -> u32 {
        let needed: Vec<bool> = (0..self.plan.stages.len())
            .map(|s| {
                matches!(self.plan.stages[s].output, StageOutput::Shuffle { .. })
                    && self
                        .plan
                        .stages
                        .iter()
                        .enumerate()
                        .any(|(c, stage)| stage.parents.contains(&(s as u32)) && !self.stage_done(c))
            })
            .collect();
        let mut lost = 0;
        for (s, (tasks, history)) in self.tasks.iter_mut().zip(&mut self.history).enumerate() {
            for (task, history) in tasks.iter_mut().zip(history) {
                if running && history.speculative.as_ref().is_some_and(|c| c.worker == worker) {
                    history.speculative = None;
                }
                if running
                    && matches!(task, TaskState::Running { worker: w, .. } if w == worker)
                    && let Some(copy) = history.speculative.take()
                {
                    // The copy carries on alone.
                    *task = TaskState::Running {
                        attempt: copy.attempt,
                        worker: copy.worker,
                    };
                    continue;
                }
                let on_worker = match task {
                    TaskState::Running { worker: w, .. } => running && w == worker,
                    TaskState::Done { worker: w, .. } => w == worker && needed[s],
                    TaskState::Pending => false,
                };
                if on_worker {
                    *task = TaskState::Pending;
                    lost += 1;
                }
            }
        }
        lost
    }

    /// Whether every task of `stage` is done.
    pub fn stage_done(&self, stage: usize) -> bool {
        self.tasks[stage].iter().all(|t| matches!(t, TaskState::Done { .. }))
    }

    /// (done, total) tasks over all stages.
    pub fn progress(&self) -> (u32, u32) {
        let total = self.tasks.iter().map(Vec::len).sum::<usize>() as u32;
        let done = self
            .tasks
            .iter()
            .flatten()
            .filter(|t| matches!(t, TaskState::Done { .. }))
            .count() as u32;
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
    /// and the attempt that wrote it.
    pub fn shuffle_inputs(&self, stage: usize, task: usize) -> Vec<(u32, Vec<(String, u32)>)> {
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
                                _ => (String::new(), 0),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (shuffle, workers)
            })
            .collect()
    }
}

/// A stored dataset: each partition on its ring owners.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetRecord {
    /// Its name.
    pub name: String,
    /// The committed generation: the directory its partitions live under on each worker.
    pub generation: String,
    /// What its rows are.
    pub format: DatasetFormat,
    /// Copies of each partition.
    pub replicas: u32,
    /// Worker ids holding each partition (primary first), by partition.
    pub placement: Vec<Vec<String>>,
    /// Rows per partition.
    pub rows: Vec<u64>,
    /// Bytes per partition (Arrow in-memory size).
    pub bytes: Vec<u64>,
}

/// The dataset a job that just succeeded wrote, to commit with its success: `Ok(None)` if
/// it wrote none, an error (the job fails) if a partition lacks its replicas or the name
/// was taken meanwhile without `overwrite`.
fn stored_output(
    job: &JobRecord,
    workers: &BTreeMap<String, WorkerRecord>,
    datasets: &BTreeMap<String, DatasetRecord>,
) -> Result<Option<DatasetRecord>, String> {
    let Some(spec) = &job.plan.store else {
        return Ok(None);
    };
    if datasets.contains_key(&spec.dataset) && !spec.overwrite {
        return Err(format!(
            "dataset {} was stored by another job meanwhile; pass --overwrite to replace it",
            spec.dataset
        ));
    }
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
        let ids: Vec<String> = holders
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

/// A change to the cluster's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// A worker joined.
    RegisterWorker {
        /// Its address.
        address: String,
        /// Its slots.
        slots: u32,
        /// Its pid.
        pid: u32,
        /// Its shuffle directory.
        shuffle_dir: String,
        /// Its filesystem identity.
        machine: String,
        /// Its process's incarnation (see [`WorkerRecord::incarnation`]).
        incarnation: String,
    },
    /// A job binary is stored on a majority of the drivers.
    AddBinary {
        /// Its content hash.
        hash: String,
        /// The drivers (node ids) holding its bytes.
        holders: Vec<u64>,
    },
    /// A job arrived.
    SubmitJob {
        /// Name for listings.
        name: String,
        /// Binary hash.
        binary: String,
        /// Arguments.
        args: Vec<String>,
        /// Environment.
        env: BTreeMap<String, String>,
        /// Working directory.
        working_dir: String,
        /// The plan.
        plan: JobPlan,
        /// The client's submission id: a second submission with it is the same job.
        submission: String,
        /// When the leader accepted it, Unix milliseconds.
        submitted_ms: u64,
    },
    /// A straggler gets a second, speculative attempt on another worker.
    Speculate {
        /// Job id.
        job: String,
        /// Stage index.
        stage: u32,
        /// Task index.
        task: u32,
        /// Worker id (not the one running the first attempt).
        worker: String,
    },
    /// A task was sent to a worker.
    StartTask {
        /// Job id.
        job: String,
        /// Stage index.
        stage: u32,
        /// Task index.
        task: u32,
        /// Worker id.
        worker: String,
    },
    /// A task attempt finished.
    FinishTask {
        /// Job id.
        job: String,
        /// Stage index.
        stage: u32,
        /// Task index.
        task: u32,
        /// The attempt.
        attempt: u32,
        /// Its value.
        value: TaskValue,
        /// What it read.
        read: Volume,
    },
    /// A task attempt failed.
    FailTask {
        /// Job id.
        job: String,
        /// Stage index.
        stage: u32,
        /// Task index.
        task: u32,
        /// The attempt.
        attempt: u32,
        /// Why.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// Whether it counts toward [`MAX_ATTEMPTS`].
        counts: bool,
    },
    /// A dataset's partitions are stored (replacing any dataset of that name).
    PutDataset(DatasetRecord),
    /// A stored dataset is forgotten (its workers delete its files).
    RemoveDataset {
        /// Its name.
        name: String,
    },
    /// The job stops (cancelled).
    CancelJob {
        /// Job id.
        job: String,
        /// Why.
        reason: String,
    },
    /// A new leader took over: every running task returns to pending without counting
    /// as a failure; it will be issued again with a new attempt number.
    RequeueRunning,
    /// A worker stopped heartbeating: its running tasks and needed map outputs go back to
    /// pending (see [`JobRecord::lose_worker`]).
    WorkerLost {
        /// Worker id.
        worker: String,
    },
    /// A task could not read map output from `worker`: the attempt goes back to pending
    /// without counting, and the outputs on that worker are recomputed.
    FetchFailed {
        /// Job id.
        job: String,
        /// Stage index.
        stage: u32,
        /// Task index.
        task: u32,
        /// The attempt.
        attempt: u32,
        /// The worker whose output could not be read.
        worker: String,
        /// What the reader saw.
        message: String,
    },
    /// Several commands in one log entry, applied in order.
    Batch(Vec<Command>),
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing more to say.
    Done,
    /// The new worker's id.
    WorkerRegistered(String),
    /// The new job's id.
    JobSubmitted(String),
    /// The attempt number of the started task.
    TaskStarted(u32),
    /// The command referred to something stale (an old attempt, a finished job): ignored.
    Stale,
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<Outcome>),
    /// Tasks returned to pending (to run again, or to recompute lost output).
    Requeued(u32),
}

/// The replicated state of a cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterState {
    /// Registered workers, by id.
    pub workers: BTreeMap<String, WorkerRecord>,
    /// Job binaries, by hash: the drivers holding their bytes.
    pub binaries: BTreeMap<String, Vec<u64>>,
    /// Jobs, by id (ids sort in submission order).
    pub jobs: BTreeMap<String, JobRecord>,
    /// Stored datasets, by name.
    pub datasets: BTreeMap<String, DatasetRecord>,
    /// Job ids by client submission id.
    pub submissions: BTreeMap<String, String>,
    next_worker: u64,
    next_job: u64,
    /// When this driver saw task attempts start and end (not replicated).
    #[serde(skip)]
    pub observed: crate::observed::Observed,
}

impl ClusterState {
    /// A state from a snapshot's bytes, refused unless its jobs agree with their plans (a
    /// snapshot that decodes is not yet one `apply` can work on).
    pub fn from_snapshot(bytes: &[u8]) -> Result<ClusterState, String> {
        let state: ClusterState = postcard::from_bytes(bytes).map_err(|e| format!("does not decode: {e}"))?;
        for (id, job) in &state.jobs {
            let stages = job.plan.stages.len();
            let shapes_agree = job.tasks.len() == stages
                && job.history.len() == stages
                && job.plan.stages.iter().enumerate().all(|(s, stage)| {
                    job.tasks[s].len() == stage.tasks.len() && job.history[s].len() == stage.tasks.len()
                });
            if !shapes_agree || *id != job.id {
                return Err(format!("job {id} does not agree with its plan"));
            }
        }
        Ok(state)
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let noted = Noted::of(&command);
        let outcome = self.apply_one(command);
        noted.record(self);
        outcome
    }

    fn apply_one(&mut self, command: Command) -> Outcome {
        match command {
            Command::RegisterWorker {
                address,
                slots,
                pid,
                shuffle_dir,
                machine,
                incarnation,
            } => {
                if let Some(w) = self.workers.values_mut().find(|w| w.address == address) {
                    // The same address registering again keeps its id. Another incarnation
                    // is a restarted process: what the old one ran or held is gone.
                    let restarted = w.incarnation != incarnation;
                    w.slots = slots;
                    w.pid = pid;
                    w.shuffle_dir = shuffle_dir;
                    w.machine = machine;
                    w.incarnation = incarnation;
                    let id = w.id.clone();
                    if restarted {
                        for job in self.jobs.values_mut().filter(|j| j.state == JobState::Running) {
                            job.lose_worker(&id, true);
                        }
                    }
                    return Outcome::WorkerRegistered(id);
                }
                self.next_worker += 1;
                let id = format!("worker-{}", self.next_worker);
                let record = WorkerRecord {
                    id: id.clone(),
                    address,
                    slots,
                    pid,
                    shuffle_dir,
                    machine,
                    incarnation,
                };
                self.workers.insert(id.clone(), record);
                Outcome::WorkerRegistered(id)
            }
            Command::AddBinary { hash, holders } => {
                let known = self.binaries.entry(hash).or_default();
                for h in holders {
                    if !known.contains(&h) {
                        known.push(h);
                    }
                }
                Outcome::Done
            }
            Command::SubmitJob {
                name,
                binary,
                args,
                env,
                working_dir,
                plan,
                submission,
                submitted_ms,
            } => {
                if let Some(existing) = self.submissions.get(&submission)
                    && !submission.is_empty()
                {
                    return Outcome::JobSubmitted(existing.clone());
                }
                self.forget_old_jobs();
                self.next_job += 1;
                let id = format!("job-{:06}", self.next_job);
                let tasks = plan
                    .stages
                    .iter()
                    .map(|s| vec![TaskState::Pending; s.tasks.len()])
                    .collect();
                let history = plan
                    .stages
                    .iter()
                    .map(|s| vec![TaskHistory::default(); s.tasks.len()])
                    .collect();
                let record = JobRecord {
                    id: id.clone(),
                    name,
                    binary,
                    args,
                    env,
                    working_dir,
                    plan,
                    tasks,
                    history,
                    state: JobState::Running,
                    submission: submission.clone(),
                    submitted_ms,
                    results_dropped: false,
                    fetch_failures: 0,
                    uncounted_failures: 0,
                };
                if !submission.is_empty() {
                    self.submissions.insert(submission, id.clone());
                }
                self.jobs.insert(id.clone(), record);
                Outcome::JobSubmitted(id)
            }
            Command::StartTask {
                job,
                stage,
                task,
                worker,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                if *slot != TaskState::Pending {
                    return Outcome::Stale;
                }
                history.attempts += 1;
                let attempt = history.attempts;
                *slot = TaskState::Running { attempt, worker };
                Outcome::TaskStarted(attempt)
            }
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                value,
                read,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                let winner = match &*slot {
                    TaskState::Running { attempt: a, worker } if *a == attempt => worker.clone(),
                    TaskState::Running { .. } => match &history.speculative {
                        Some(copy) if copy.attempt == attempt => copy.worker.clone(),
                        _ => return Outcome::Stale,
                    },
                    _ => return Outcome::Stale,
                };
                // The first attempt to finish wins; the other's report will be stale.
                history.speculative = None;
                *slot = TaskState::Done {
                    attempt,
                    worker: winner,
                    value,
                    read,
                };
                if let Some(j) = self.jobs.get_mut(&job)
                    && (0..j.tasks.len()).all(|s| j.stage_done(s))
                {
                    match stored_output(j, &self.workers, &self.datasets) {
                        Ok(Some(record)) => {
                            self.datasets.insert(record.name.clone(), record);
                            j.state = JobState::Succeeded;
                        }
                        Ok(None) => j.state = JobState::Succeeded,
                        Err(message) => j.state = JobState::Failed(message),
                    }
                }
                Outcome::Done
            }
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                retryable,
                counts,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                let failed_worker = match (&*slot, &history.speculative) {
                    (TaskState::Running { attempt: a, worker }, copy) if *a == attempt => {
                        let worker = worker.clone();
                        // A speculative copy carries on as the task's attempt.
                        *slot = match copy {
                            Some(copy) => TaskState::Running {
                                attempt: copy.attempt,
                                worker: copy.worker.clone(),
                            },
                            None => TaskState::Pending,
                        };
                        history.speculative = None;
                        worker
                    }
                    (TaskState::Running { .. }, Some(copy)) if copy.attempt == attempt => {
                        let worker = copy.worker.clone();
                        history.speculative = None;
                        worker
                    }
                    _ => return Outcome::Stale,
                };
                history.failed_on.push(failed_worker);
                if counts {
                    history.failures += 1;
                }
                let exhausted = history.failures >= MAX_ATTEMPTS;
                let Some(j) = self.jobs.get_mut(&job) else {
                    return Outcome::Done;
                };
                if !counts {
                    j.uncounted_failures += 1;
                }
                if !retryable || exhausted {
                    j.state = JobState::Failed(message);
                } else if j.uncounted_failures > max_uncounted_failures(j) {
                    j.state = JobState::Failed(format!(
                        "tasks were lost {} times without a task to blame (e.g. executors exiting under several tasks); the last: {message}",
                        j.uncounted_failures
                    ));
                }
                Outcome::Done
            }
            Command::Speculate {
                job,
                stage,
                task,
                worker,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                match &*slot {
                    TaskState::Running { worker: w, .. } if *w != worker && history.speculative.is_none() => {
                        // Speculation is not a failure: it does not use up attempts.
                        history.attempts += 1;
                        let attempt = history.attempts;
                        history.speculative = Some(Speculative { attempt, worker });
                        Outcome::TaskStarted(attempt)
                    }
                    _ => Outcome::Stale,
                }
            }
            Command::PutDataset(record) => {
                self.datasets.insert(record.name.clone(), record);
                Outcome::Done
            }
            Command::RemoveDataset { name } => match self.datasets.remove(&name) {
                Some(_) => Outcome::Done,
                None => Outcome::Stale,
            },
            Command::CancelJob { job, reason } => match self.jobs.get_mut(&job) {
                Some(j) if j.state == JobState::Running => {
                    j.state = JobState::Cancelled(reason);
                    Outcome::Done
                }
                _ => Outcome::Stale,
            },
            Command::RequeueRunning => {
                for job in self.jobs.values_mut().filter(|j| j.state == JobState::Running) {
                    for (tasks, history) in job.tasks.iter_mut().zip(&mut job.history) {
                        for (task, history) in tasks.iter_mut().zip(history) {
                            if matches!(task, TaskState::Running { .. }) {
                                *task = TaskState::Pending;
                            }
                            history.speculative = None;
                        }
                    }
                }
                Outcome::Done
            }
            Command::WorkerLost { worker } => {
                let lost: u32 = self
                    .jobs
                    .values_mut()
                    .filter(|j| j.state == JobState::Running)
                    .map(|j| j.lose_worker(&worker, true))
                    .sum();
                Outcome::Requeued(lost)
            }
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                match &*slot {
                    // Both attempts read the same lost output: the task waits for it.
                    TaskState::Running { attempt: a, .. } if *a == attempt => *slot = TaskState::Pending,
                    TaskState::Running { .. } if history.speculative.as_ref().is_some_and(|c| c.attempt == attempt) => {
                    }
                    _ => return Outcome::Stale,
                }
                history.speculative = None;
                let Some(j) = self.jobs.get_mut(&job) else {
                    return Outcome::Stale;
                };
                j.fetch_failures += 1;
                if j.fetch_failures > MAX_FETCH_FAILURES {
                    j.state = JobState::Failed(format!(
                        "map output could not be read {} times; the last: {message}",
                        j.fetch_failures
                    ));
                    return Outcome::Done;
                }
                Outcome::Requeued(j.lose_worker(&worker, false) + 1)
            }
            Command::Batch(commands) => Outcome::Batch(commands.into_iter().map(|c| self.apply(c)).collect()),
        }
    }

    /// Drops the oldest finished jobs beyond [`KEPT_JOBS`].
    fn forget_old_jobs(&mut self) {
        let finished: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.state != JobState::Running)
            .map(|j| j.id.clone())
            .collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEPT_JOBS - 1)) {
            if let Some(job) = self.jobs.remove(id) {
                self.submissions.remove(&job.submission);
            }
        }
        for id in finished.iter().rev().skip(KEPT_RESULTS) {
            let Some(job) = self.jobs.get_mut(id) else { continue };
            if job.results_dropped {
                break;
            }
            job.results_dropped = true;
            for task in job.tasks.iter_mut().flatten() {
                if let TaskState::Done { value, .. } = task
                    && matches!(value, TaskValue::Bytes(_) | TaskValue::Batches(_))
                {
                    *value = TaskValue::Bytes(Vec::new());
                }
            }
        }
    }

    /// A running job's task slot and its history.
    fn running_task(&mut self, job: &str, stage: u32, task: u32) -> Option<(&mut TaskState, &mut TaskHistory)> {
        let j = self.jobs.get_mut(job)?;
        if j.state != JobState::Running {
            return None;
        }
        let slot = j.tasks.get_mut(stage as usize)?.get_mut(task as usize)?;
        let history = j.history.get_mut(stage as usize)?.get_mut(task as usize)?;
        Some((slot, history))
    }

    /// The attempt of a task running beside `attempt` (its speculative copy, or the
    /// original its copy runs beside), with its worker: what loses if `attempt` finishes.
    pub fn rival_attempt(&self, job: &str, stage: u32, task: u32, attempt: u32) -> Option<(String, u32)> {
        let j = self.jobs.get(job).filter(|j| j.state == JobState::Running)?;
        let slot = j.tasks.get(stage as usize)?.get(task as usize)?;
        let copy = j
            .history
            .get(stage as usize)?
            .get(task as usize)?
            .speculative
            .as_ref()?;
        match slot {
            TaskState::Running { attempt: a, .. } if *a == attempt => Some((copy.worker.clone(), copy.attempt)),
            TaskState::Running { attempt: a, worker } if copy.attempt == attempt => Some((worker.clone(), *a)),
            _ => None,
        }
    }

    /// Dataset generations (`name/generation`) workers must keep: the committed ones and
    /// those running jobs are writing.
    pub fn live_datasets(&self) -> Vec<String> {
        let committed = self.datasets.values().map(|d| format!("{}/{}", d.name, d.generation));
        let writing = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.plan.store.as_ref())
            .map(|s| format!("{}/{}", s.dataset, s.generation));
        committed.chain(writing).collect()
    }

    /// The consistent-hash ring over the workers `include` accepts, weighted by slots.
    pub fn ring(&self, include: impl Fn(&str) -> bool) -> ringleader_core::ring::Ring<String> {
        let mut ring = ringleader_core::ring::Ring::new(ringleader_core::ring::DEFAULT_VNODES);
        for w in self.workers.values().filter(|w| include(&w.id)) {
            ring.add(w.id.clone(), w.slots);
        }
        ring
    }

    /// Attempts running on each worker (speculative copies included).
    pub fn running_per_worker(&self) -> BTreeMap<&str, u32> {
        let mut running: BTreeMap<&str, u32> = BTreeMap::new();
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            for (t, h) in job.tasks.iter().flatten().zip(job.history.iter().flatten()) {
                if let TaskState::Running { worker, .. } = t {
                    *running.entry(worker.as_str()).or_default() += 1;
                }
                if let Some(copy) = &h.speculative {
                    *running.entry(copy.worker.as_str()).or_default() += 1;
                }
            }
        }
        running
    }
}

/// A command's effect on task attempts, noted in [`ClusterState::observed`] once applied.
enum Noted {
    /// A task's attempt (its original, or a speculative copy) was started: its number is
    /// known once applied.
    Started {
        job: String,
        stage: u32,
        task: u32,
        speculative: bool,
    },
    /// An attempt ended (with its error if it failed).
    Ended(AttemptKey, Option<String>),
    /// Nothing about attempts.
    Nothing,
}

impl Noted {
    fn of(command: &Command) -> Noted {
        match command {
            Command::StartTask { job, stage, task, .. } | Command::Speculate { job, stage, task, .. } => {
                Noted::Started {
                    job: job.clone(),
                    stage: *stage,
                    task: *task,
                    speculative: matches!(command, Command::Speculate { .. }),
                }
            }
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), None),
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), Some(message.clone())),
            _ => Noted::Nothing,
        }
    }

    fn record(self, state: &mut ClusterState) {
        let (job, stage, task, speculative) = match self {
            Noted::Started {
                job,
                stage,
                task,
                speculative,
            } => (job, stage, task, speculative),
            Noted::Ended(key, error) => {
                state.observed.ended(&key, error);
                return;
            }
            Noted::Nothing => return,
        };
        let Some(record) = state.jobs.get(&job) else { return };
        let (s, t) = (stage as usize, task as usize);
        let started = if speculative {
            record
                .history
                .get(s)
                .and_then(|h| h.get(t))
                .and_then(|h| h.speculative.as_ref())
                .map(|sp| (sp.attempt, sp.worker.clone()))
        } else {
            match record.tasks.get(s).and_then(|ts| ts.get(t)) {
                Some(TaskState::Running { attempt, worker }) => Some((*attempt, worker.clone())),
                _ => None,
            }
        };
        if let Some((attempt, worker)) = started {
            state
                .observed
                .started(AttemptKey::new(&job, stage, task, attempt), &worker);
        }
    }
}
