//! The job plan: stages of tasks, each task a source or shuffle read, a pipeline of shipped
//! steps, and an output (a shuffle write or the job's action). Everything here is plain
//! data (serde), so the same plan runs embedded or travels to a cluster.
//!
//! Inside: [`shipped`] closures as trampoline offsets; [`accumulator`] counters and sums
//! closures add to; [`cache`] the embedded engine's cached partitions.

pub mod accumulator;
pub mod cache;
pub mod shipped;

use serde::{Deserialize, Serialize};

use crate::data::ChunkStream;
use crate::error::Result;
use crate::ids::{Attempt, ShuffleId, StageId, TaskId};
use crate::io::source::Split;
use crate::io::store::StoreSpec;
use crate::plan::shipped::Shipped;
use crate::shuffle::ShuffleSink;

/// A narrow step: transforms one partition's stream of chunks (map, filter, flat_map, ...).
pub type StepFn = unsafe fn(state: &[u8], input: ChunkStream) -> Result<ChunkStream>;
/// Builds the map side of a shuffle for one task: partitions (and maybe combines) rows.
pub type SinkFn = unsafe fn(state: &[u8], partitions: u32) -> Result<Box<dyn ShuffleSink>>;
/// The reduce side of a shuffle: turns the blocks of one reduce partition (one
/// [`crate::shuffle::Side`] per shuffled parent) into the partition's rows.
pub type ReduceFn = unsafe fn(state: &[u8], sides: Vec<crate::shuffle::Side>) -> Result<ChunkStream>;
/// The job's action, run on each partition of the final stage.
pub type ActionFn = unsafe fn(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue>;

crate::__shippable!(StepFn, SinkFn, ReduceFn, ActionFn);

/// A whole job: stages in an order where every stage comes after the stages it reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPlan {
    /// All stages; the last one is the final stage whose output is the action.
    pub stages: Vec<StagePlan>,
    /// Set when the job writes a stored dataset: the driver commits it when the job
    /// succeeds, in the same step that records the success.
    pub store: Option<StoreSpec>,
}

/// One stage: tasks that share an output kind, cut from the next stage by a shuffle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagePlan {
    /// Index of the stage within its job.
    pub id: StageId,
    /// One task per partition.
    pub tasks: Vec<TaskPlan>,
    /// What each task does with its rows.
    pub output: StageOutput,
    /// Stages this stage waits for: those whose shuffle output it reads, and the one its
    /// sink state comes from.
    pub parents: Vec<StageId>,
    /// Set when the sink's state is made of an earlier stage's task values (a sort's key
    /// samples, from which each map task computes the same range bounds): that stage's
    /// id. See [`StagePlan::output_given`].
    #[serde(default)]
    pub state_from: Option<StageId>,
}

impl JobPlan {
    /// How many times each (shuffle, reduce partition) is read in this job: once per task
    /// reading it (more for a self-join, a union of one shuffled dataset with itself, a
    /// sort sampling an upstream shuffle).
    pub fn shuffle_reads(&self) -> std::collections::BTreeMap<(ShuffleId, TaskId), u32> {
        let mut reads = std::collections::BTreeMap::new();
        for task in self.stages.iter().flat_map(|s| &s.tasks) {
            if let TaskInput::Shuffle(read) = &task.input {
                for &shuffle in &read.shuffles {
                    *reads.entry((shuffle, read.partition)).or_insert(0) += 1;
                }
            }
        }
        reads
    }
}

impl JobPlan {
    /// Drops the data the plan carries (closure states, rows shipped by `parallelize`),
    /// keeping its shape (stages, tasks, inputs, what each stage writes): what a finished
    /// job's record needs, at a size bounded by its tasks. Returns the bytes dropped.
    pub fn forget_data(&mut self) -> usize {
        fn take(bytes: &mut Vec<u8>) -> usize {
            std::mem::take(bytes).len()
        }
        let mut dropped = 0;
        for stage in &mut self.stages {
            dropped += match &mut stage.output {
                StageOutput::Shuffle { state, .. } | StageOutput::Action { state, .. } => take(state),
            };
            for task in &mut stage.tasks {
                dropped += task.steps.iter_mut().map(|step| take(&mut step.state)).sum::<usize>();
                dropped += match &mut task.input {
                    TaskInput::Shuffle(read) => take(&mut read.state),
                    TaskInput::Source {
                        split: Split::Inline { ipc },
                        ..
                    } => take(ipc),
                    TaskInput::Source { .. } => 0,
                };
            }
        }
        dropped
    }
}

impl StagePlan {
    /// What this stage's tasks produce, given the task values of the stage named by
    /// `state_from` (ignored without one): the sink's state becomes their bytes, as a
    /// postcard `Vec<Vec<u8>>`.
    pub fn output_given<'a>(&self, values: impl IntoIterator<Item = &'a TaskValue>) -> Result<StageOutput> {
        let mut output = self.output.clone();
        if self.state_from.is_some()
            && let StageOutput::Shuffle { state, .. } = &mut output
        {
            let samples: Vec<&[u8]> = values
                .into_iter()
                .map(|v| match v {
                    TaskValue::Bytes(b) => Ok(b.as_slice()),
                    other => Err(crate::Error::Plan(format!(
                        "stage {} takes its state from byte values, got {other:?}",
                        self.id
                    ))),
                })
                .collect::<Result<_>>()?;
            *state = postcard::to_stdvec(&samples)?;
        }
        Ok(output)
    }
}

/// One task: where its rows come from and the steps they pass through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPlan {
    /// The task's input.
    pub input: TaskInput,
    /// Narrow steps pipelined over the input, in order.
    pub steps: Vec<Step>,
}

/// Where a task's rows come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TaskInput {
    /// A split of a stored input.
    Source {
        /// The split to read.
        split: Split,
        /// When set, read only this many evenly spaced windows (sampling for range bounds).
        sample_windows: Option<u32>,
    },
    /// One reduce partition of one or more shuffles.
    Shuffle(ShuffleRead),
}

/// The reduce side of a shuffle, as one task reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShuffleRead {
    /// The function that merges the partition's blocks into rows.
    pub reduce: Shipped<ReduceFn>,
    /// Its serialised state.
    pub state: Vec<u8>,
    /// The shuffles read, one per side (a join has two), each named by the stage that
    /// wrote it.
    pub shuffles: Vec<ShuffleId>,
    /// The reduce partition (the reading task's index).
    pub partition: TaskId,
}

/// A shipped narrow step and its serialised state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The trampoline.
    pub f: Shipped<StepFn>,
    /// Serialised data the closure needs (`map_with`), or empty.
    pub state: Vec<u8>,
}

/// What the tasks of a stage produce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StageOutput {
    /// Map output of a shuffle.
    Shuffle {
        /// The shuffle's id within the job.
        shuffle: ShuffleId,
        /// Builds the task's partitioning (and combining) sink.
        sink: Shipped<SinkFn>,
        /// The sink's serialised state (e.g. range bounds).
        state: Vec<u8>,
        /// Number of reduce partitions.
        partitions: u32,
    },
    /// The job's action (collect, count, save, ...).
    Action {
        /// The action's trampoline.
        f: Shipped<ActionFn>,
        /// Its serialised state (e.g. the output directory).
        state: Vec<u8>,
    },
}

/// What an action knows about the task it runs in.
#[derive(Debug, Clone)]
pub struct ActionEnv {
    /// The stage's id.
    pub stage: StageId,
    /// The partition this task computes.
    pub partition: TaskId,
    /// The attempt number (distinguishes retries' temporary files).
    pub attempt: Attempt,
}

/// Rows and bytes a task read from its input: its source split, or the shuffle blocks it
/// fetched (bytes are the data's Arrow size; text counts its lines' bytes).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// Rows read.
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
}

impl Volume {
    /// The sum of two volumes.
    pub fn plus(self, other: Volume) -> Volume {
        Volume {
            rows: self.rows + other.rows,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// What a task attempt returns: its value, what it read to make it, and its closures'
/// accumulator updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// What the task produced.
    pub value: TaskValue,
    /// What it read.
    pub read: Volume,
    /// Its accumulator updates.
    pub accumulated: Vec<crate::plan::accumulator::Accumulated>,
}

/// What a task returns to whoever runs the job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum TaskValue {
    /// A map task wrote its shuffle output.
    Shuffled {
        /// Rows written.
        rows: u64,
        /// Bytes written (Arrow in-memory size).
        bytes: u64,
    },
    /// A row count.
    Count(u64),
    /// A serialised value (a partial sum, a partial reduce, a sample of keys).
    Bytes(Vec<u8>),
    /// Rows as an Arrow IPC stream (collect, take).
    Batches(Vec<u8>),
    /// Rows too large for the control plane, left on the worker that made them (see
    /// [`crate::io::results`]): fetch them from `address` with Flight `ticket`.
    Held {
        /// The worker holding them.
        address: String,
        /// Their Flight ticket.
        ticket: String,
        /// Their size (an Arrow IPC stream).
        size: u64,
    },
    /// A partition of a stored dataset, written to `holders` (worker addresses).
    Stored {
        /// Rows written.
        rows: u64,
        /// Bytes written (Arrow in-memory size).
        bytes: u64,
        /// The workers holding a copy.
        holders: Vec<String>,
    },
    /// A file written to the job's staging directory.
    Written {
        /// Rows written.
        rows: u64,
        /// Bytes written.
        bytes: u64,
    },
}

impl TaskValue {
    /// The rows and bytes this value says its task moved, where it says: a partial result
    /// or a sample gives bytes only, a row count rows only.
    pub fn volume(&self) -> (Option<u64>, Option<u64>) {
        match self {
            TaskValue::Shuffled { rows, bytes }
            | TaskValue::Written { rows, bytes }
            | TaskValue::Stored { rows, bytes, .. } => (Some(*rows), Some(*bytes)),
            TaskValue::Count(n) => (Some(*n), None),
            TaskValue::Bytes(b) | TaskValue::Batches(b) => (None, Some(b.len() as u64)),
            TaskValue::Held { size, .. } => (None, Some(*size)),
        }
    }
}
