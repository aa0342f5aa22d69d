//! Running one task: open its input, pipe it through its steps, deliver its output. This is
//! the code both the embedded engine and a cluster executor run; only the
//! [`ShuffleService`] behind it differs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::data::{BatchStream, ChunkStream, batch_bytes};
use crate::error::{Error, Result};
use crate::ids::{Attempt, StageId, TaskId};
use crate::io::source;
use crate::plan::{ActionEnv, Ran, StageOutput, StagePlan, TaskInput, TaskPlan, TaskValue, Volume};
use crate::shuffle::ShuffleService;

/// Runs task `index` of `stage`; a panic in user code becomes [`Error::TaskPanicked`],
/// any other failure [`Error::TaskFailed`], both naming the stage and partition.
///
/// The plan must come from this executable: its shipped functions are resolved here.
pub fn run_task(stage: &StagePlan, index: usize, attempt: Attempt, shuffle: &dyn ShuffleService) -> Result<Ran> {
    let task = stage
        .tasks
        .get(index)
        .ok_or_else(|| Error::Plan(format!("stage {} has no task {index}", stage.id)))?;
    let unit = TaskUnit {
        stage: stage.id,
        partition: TaskId::from(index),
        task,
        output: &stage.output,
        stop: None,
    };
    run(&unit, attempt, shuffle)
}

/// One task cut out of its stage: all a cluster executor is sent.
#[derive(Debug, Clone, Copy)]
pub struct TaskUnit<'a> {
    /// The stage's id.
    pub stage: StageId,
    /// The task's index in its stage (its partition).
    pub partition: TaskId,
    /// The task.
    pub task: &'a TaskPlan,
    /// What the stage's tasks produce.
    pub output: &'a StageOutput,
    /// Set when the attempt is no longer wanted (another attempt of the task finished
    /// first): the task ends with [`Error::Stopped`] before its next chunk.
    pub stop: Option<&'a Arc<AtomicBool>>,
}

/// Runs one task, as [`run_task`] does, from the task alone.
pub fn run(unit: &TaskUnit<'_>, attempt: Attempt, shuffle: &dyn ShuffleService) -> Result<Ran> {
    let tally = Arc::new(Tally::default());
    let task = || {
        let run = || crate::io::mapped::watch_task(|| run_task_inner(unit, attempt, shuffle, &tally));
        match shuffle.memory() {
            Some(pool) => crate::memory::scope(pool, run),
            None => run(),
        }
    };
    match catch_unwind(AssertUnwindSafe(|| crate::plan::accumulator::gather(task))) {
        Ok((Ok(value), accumulated)) => Ok(Ran {
            value,
            read: tally.volume(),
            accumulated,
        }),
        Ok((Err(e), _)) => Err(Error::TaskFailed {
            stage: unit.stage,
            partition: unit.partition,
            cause: Box::new(e),
        }),
        Err(payload) => Err(Error::TaskPanicked {
            stage: unit.stage,
            partition: unit.partition,
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_string()
    }
}

fn run_task_inner(
    unit: &TaskUnit<'_>,
    attempt: Attempt,
    shuffle: &dyn ShuffleService,
    tally: &Arc<Tally>,
) -> Result<TaskValue> {
    let (task, index) = (unit.task, unit.partition);
    let mut stream: ChunkStream = match &task.input {
        TaskInput::Source { split, sample_windows } => {
            let tally = tally.clone();
            Box::new(source::open(split, *sample_windows)?.inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    tally.add(chunk.len(), chunk.data_bytes());
                }
            }))
        }
        TaskInput::Shuffle(read) => {
            let sides = read
                .shuffles
                .iter()
                .map(|&s| {
                    let side = shuffle.read_side(s, read.partition)?;
                    Ok(side.map_streams(|stream| tallied(stream, tally.clone())))
                })
                .collect::<Result<Vec<_>>>()?;
            // SAFETY: plans are only run by the executable that built them, and every
            // trampoline in a plan was recorded by the job API for a closure it was given
            // and checked (the trampolines' safety contract).
            let reduce = unsafe { read.reduce.resolve() }?;
            unsafe { reduce(&read.state, sides) }?
        }
    };
    for step in &task.steps {
        // SAFETY: as above.
        let f = unsafe { step.f.resolve() }?;
        // SAFETY: as above.
        stream = unsafe { f(&step.state, stream) }?;
    }
    if let Some(stop) = unit.stop {
        stream = stoppable(stream, stop.clone());
    }
    match unit.output {
        StageOutput::Shuffle {
            shuffle: id,
            sink,
            state,
            partitions,
        } => {
            // SAFETY: as above.
            let make_sink = unsafe { sink.resolve() }?;
            // SAFETY: as above.
            let mut sink = unsafe { make_sink(state, *partitions) }?;
            let mut writer = shuffle.writer(*id, index);
            let (mut rows, mut bytes) = (0u64, 0u64);
            let mut counting = CountingWriter {
                inner: writer.as_mut(),
                rows: &mut rows,
                bytes: &mut bytes,
            };
            for chunk in stream {
                sink.push(chunk?, &mut counting)?;
            }
            sink.finish(&mut counting)?;
            writer.finish()?;
            Ok(TaskValue::Shuffled { rows, bytes })
        }
        StageOutput::Action { f, state } => {
            // SAFETY: as above.
            let action = unsafe { f.resolve() }?;
            let env = ActionEnv {
                stage: unit.stage,
                partition: unit.partition,
                attempt,
            };
            // SAFETY: as above.
            unsafe { action(state, stream, &env) }
        }
    }
}

/// `stream`, ending with [`Error::Stopped`] at the first chunk asked for after `stop` is set.
fn stoppable(mut stream: ChunkStream, stop: Arc<AtomicBool>) -> ChunkStream {
    let mut stopped = false;
    // The flag is read before the next chunk is pulled: a stopped attempt reads nothing more.
    Box::new(std::iter::from_fn(move || {
        if stopped {
            return None;
        }
        if stop.load(Ordering::Relaxed) {
            stopped = true;
            return Some(Err(Error::Stopped));
        }
        stream.next()
    }))
}

/// Rows and bytes a task has read so far, counted as its input streams yield them.
#[derive(Default)]
struct Tally {
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    fn add(&self, rows: usize, bytes: u64) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn volume(&self) -> Volume {
        Volume {
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// `side`, counting the batches it yields into `tally`.
fn tallied(side: BatchStream, tally: Arc<Tally>) -> BatchStream {
    Box::new(side.inspect(move |batch| {
        if let Ok(batch) = batch {
            tally.add(batch.num_rows(), batch_bytes(batch));
        }
    }))
}

struct CountingWriter<'a> {
    inner: &'a mut dyn crate::shuffle::BlockWriter,
    rows: &'a mut u64,
    bytes: &'a mut u64,
}

impl crate::shuffle::BlockWriter for CountingWriter<'_> {
    fn write(&mut self, partition: u32, batch: arrow_array::RecordBatch) -> Result<()> {
        self.count(&batch);
        self.inner.write(partition, batch)
    }

    fn wants_sorted_runs(&self) -> bool {
        self.inner.wants_sorted_runs()
    }

    fn write_sorted_run(&mut self, partition: u32, batches: Vec<arrow_array::RecordBatch>) -> Result<()> {
        batches.iter().for_each(|batch| self.count(batch));
        self.inner.write_sorted_run(partition, batches)
    }
}

impl CountingWriter<'_> {
    fn count(&mut self, batch: &arrow_array::RecordBatch) {
        *self.rows += batch.num_rows() as u64;
        *self.bytes += batch_bytes(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Chunk;

    #[test]
    fn a_stopped_attempt_ends_before_its_next_chunk_and_reads_no_further() {
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = read.clone();
        let chunks: ChunkStream = Box::new((0..5i64).map(move |i| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(Chunk::from_rows(vec![i]))
        }));
        let mut stream = stoppable(chunks, stop.clone());
        assert!(matches!(stream.next(), Some(Ok(_))));
        stop.store(true, Ordering::Relaxed);
        assert!(matches!(stream.next(), Some(Err(Error::Stopped))));
        assert!(stream.next().is_none(), "a stopped stream ends");
        assert_eq!(read.load(Ordering::Relaxed), 1, "nothing was read after the stop");
    }
}
