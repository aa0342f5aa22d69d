//! The changes the replicated state accepts ([`Command`]s, the Raft log's entries) and
//! what applying each produced ([`Outcome`]).

use std::collections::BTreeMap;

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use ringleader_core::plan::{JobPlan, TaskValue, Volume};
use serde::{Deserialize, Serialize};

use super::records::{DatasetRecord, PendingDataset};

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
        /// Its process's incarnation (see [`super::WorkerRecord::incarnation`]).
        incarnation: String,
    },
    /// A job binary is stored on a majority of the drivers.
    AddBinary {
        /// Its content hash.
        hash: String,
        /// The drivers (node ids) holding its bytes.
        holders: Vec<u64>,
        /// When it was uploaded, Unix milliseconds.
        at_ms: u64,
    },
    /// A job binary nobody used since `unused_since_ms` is forgotten (each driver then
    /// deletes its file), unless a running job uses it or a later upload or job did.
    ForgetBinary {
        /// Its content hash.
        hash: String,
        /// The last use the leader saw, Unix milliseconds.
        unused_since_ms: u64,
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
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// Worker id (not the one running the first attempt).
        worker: WorkerId,
    },
    /// A task was sent to a worker.
    StartTask {
        /// Job id.
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// Worker id.
        worker: WorkerId,
    },
    /// A task attempt finished.
    FinishTask {
        /// Job id.
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
        /// Its value.
        value: TaskValue,
        /// What it read.
        read: Volume,
        /// Its accumulator updates.
        accumulated: Vec<ringleader_core::plan::accumulator::Accumulated>,
    },
    /// A task attempt failed.
    FailTask {
        /// Job id.
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
        /// Why.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// Whether it counts toward [`super::MAX_ATTEMPTS`].
        counts: bool,
    },
    /// A write of a dataset generation is placed: its partitions may now be sent. Refused
    /// (a conflict) unless the name has the `expected` generation now.
    PlaceDataset(PendingDataset),
    /// A placed generation's partitions are stored: it becomes the dataset, if the name
    /// still has the generation its placement expected (compare-and-set).
    CommitDataset(DatasetRecord),
    /// A placed generation is given up (its writer failed, or it was abandoned).
    AbortDataset {
        /// The dataset's name.
        name: String,
        /// The generation placed.
        generation: String,
    },
    /// A stored dataset is forgotten (its workers delete its files), if it is still the
    /// `generation` the remover saw.
    RemoveDataset {
        /// Its name.
        name: String,
        /// The generation to remove.
        generation: String,
        /// The client's id of this removal (the same on its retries; empty: none).
        request: String,
    },
    /// A repair copied a partition: its holders are now `holders`, if the dataset is still
    /// `generation` (a copy of a replaced generation changes nothing).
    RepairDataset {
        /// The dataset's name.
        name: String,
        /// The generation the copies are of.
        generation: String,
        /// The partition.
        partition: u32,
        /// Its live holders, the new copies included.
        holders: Vec<WorkerId>,
    },
    /// The job stops (cancelled).
    CancelJob {
        /// Job id.
        job: JobId,
        /// Why.
        reason: String,
    },
    /// A new leader took over: every running task returns to pending without counting
    /// as a failure; it will be issued again with a new attempt number.
    RequeueRunning,
    /// A worker stopped heartbeating: its running tasks and needed map outputs go back to
    /// pending (see [`super::JobRecord::lose_worker`]).
    WorkerLost {
        /// Worker id.
        worker: WorkerId,
    },
    /// A task could not read map output from `worker`: the attempt goes back to pending
    /// without counting, and the outputs on that worker are recomputed.
    FetchFailed {
        /// Job id.
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
        /// The worker whose output could not be read.
        worker: WorkerId,
        /// What the reader saw.
        message: String,
    },
    /// Several commands in one log entry, applied in order.
    Batch(Vec<Command>),
    /// An attempt asks to place its stored partition (a job writing `ringleader://`):
    /// granted to one running attempt of the task at a time (see
    /// [`super::TaskState::grant_commit`]); only the granted attempt's success counts.
    AuthorizeCommit {
        /// Job id.
        job: JobId,
        /// Stage index.
        stage: StageId,
        /// Task index.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
    },
    /// A piece of a command too large for one log entry (see
    /// [`crate::raft::MAX_ENTRY_BYTES`]): kept until [`Command::Assemble`] names `key`.
    Part {
        /// The pieces' common key: the proposing leader's term, and its own counter.
        key: (u64, u64),
        /// The next bytes of the command's encoding.
        bytes: Vec<u8>,
        /// When the leader proposed it, Unix milliseconds (pieces never assembled expire).
        at_ms: u64,
    },
    /// The pieces under `key`, in order, are one command's encoding: apply that command,
    /// if they are all there (its length and content hash agree).
    Assemble {
        /// The pieces' key.
        key: (u64, u64),
        /// The encoding's length.
        len: u64,
        /// Its content hash ([`ringleader_core::net::binary::ContentHash`]).
        hash: String,
    },
}

impl Command {
    /// The job this command is about, if it is about one.
    pub fn job(&self) -> Option<&JobId> {
        match self {
            Command::StartTask { job, .. }
            | Command::FinishTask { job, .. }
            | Command::FailTask { job, .. }
            | Command::Speculate { job, .. }
            | Command::CancelJob { job, .. }
            | Command::AuthorizeCommit { job, .. }
            | Command::FetchFailed { job, .. } => Some(job),
            _ => None,
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing more to say.
    Done,
    /// The new worker's id.
    WorkerRegistered(WorkerId),
    /// The new job's id.
    JobSubmitted(JobId),
    /// The attempt number of the started task.
    TaskStarted(Attempt),
    /// The command referred to something stale (an old attempt, a finished job): ignored.
    Stale,
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<Outcome>),
    /// Tasks returned to pending (to run again, or to recompute lost output).
    Requeued(u32),
    /// A compare-and-set on a dataset's name lost: why (naming the generation that won).
    Conflict(String),
    /// An assembled command was not one (its pieces were lost or do not decode): why.
    Malformed(String),
    /// A commit was granted: the grant's number (see [`super::TaskHistory::grants`]).
    Granted(u32),
    /// A commit was not granted: why.
    Refused(String),
}
