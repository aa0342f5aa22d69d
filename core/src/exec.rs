//! Running one task: open its input, pipe it through its steps, deliver its output. This is
//! the code both the embedded engine and a cluster executor run; only the
//! [`ShuffleService`] behind it differs.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::data::ChunkStream;
use crate::error::{Error, Result};
use crate::plan::{ActionEnv, StageOutput, StagePlan, TaskInput, TaskValue};
use crate::shuffle::ShuffleService;
use crate::source;

/// Runs task `index` of `stage`; a panic in user code becomes [`Error::TaskPanicked`],
/// any other failure [`Error::TaskFailed`], both naming the stage and partition.
///
/// The plan must come from this executable: its shipped functions are resolved here.
pub fn run_task(stage: &StagePlan, index: usize, attempt: u32, shuffle: &dyn ShuffleService) -> Result<TaskValue> {
    let partition = index as u32;
    match catch_unwind(AssertUnwindSafe(|| run_task_inner(stage, index, attempt, shuffle))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::TaskFailed {
            stage: stage.id,
            partition,
            source: Box::new(e),
        }),
        Err(payload) => Err(Error::TaskPanicked {
            stage: stage.id,
            partition,
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

fn run_task_inner(stage: &StagePlan, index: usize, attempt: u32, shuffle: &dyn ShuffleService) -> Result<TaskValue> {
    let task = stage
        .tasks
        .get(index)
        .ok_or_else(|| Error::Plan(format!("stage {} has no task {index}", stage.id)))?;
    let mut stream: ChunkStream = match &task.input {
        TaskInput::Source { split, sample_windows } => source::open(split, *sample_windows)?,
        TaskInput::Shuffle(read) => {
            let sides = read
                .shuffles
                .iter()
                .map(|&s| shuffle.read(s, read.partition))
                .collect::<Result<Vec<_>>>()?;
            // SAFETY: plans are only run by the executable that built them.
            let reduce = unsafe { read.reduce.resolve() };
            reduce(&read.state, sides)?
        }
    };
    for step in &task.steps {
        // SAFETY: as above.
        let f = unsafe { step.f.resolve() };
        stream = f(&step.state, stream)?;
    }
    match &stage.output {
        StageOutput::Shuffle {
            shuffle: id,
            sink,
            state,
            partitions,
        } => {
            // SAFETY: as above.
            let make_sink = unsafe { sink.resolve() };
            let mut sink = make_sink(state, *partitions)?;
            let mut writer = shuffle.writer(*id, index as u32);
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
            let action = unsafe { f.resolve() };
            let env = ActionEnv {
                stage: stage.id,
                partition: index as u32,
                attempt,
            };
            action(state, stream, &env)
        }
    }
}

struct CountingWriter<'a> {
    inner: &'a mut dyn crate::shuffle::BlockWriter,
    rows: &'a mut u64,
    bytes: &'a mut u64,
}

impl crate::shuffle::BlockWriter for CountingWriter<'_> {
    fn write(&mut self, partition: u32, batch: arrow::record_batch::RecordBatch) -> Result<()> {
        *self.rows += batch.num_rows() as u64;
        // The data's own size, not the buffers' capacity.
        *self.bytes += batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
            .sum::<usize>() as u64;
        self.inner.write(partition, batch)
    }
}
