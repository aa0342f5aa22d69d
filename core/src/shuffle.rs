//! Shuffle: the map side's sink interface, the transport interface, and the embedded
//! transport (memory with a bound, spilling Arrow IPC files to a temporary directory).
//!
//! A map task pushes chunks into a [`ShuffleSink`] (built by a shipped trampoline, so it is
//! typed), which partitions rows and hands Arrow batches to a [`BlockWriter`]. Which
//! [`ShuffleService`] stores the blocks is the only thing that differs between the embedded
//! engine (this module's [`LocalShuffle`]) and the cluster (worker files served over Flight).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;

use crate::data::{BatchStream, Chunk};
use crate::error::{Error, Result};
use crate::ids::{ShuffleId, TaskId};
use crate::memory::{MemoryPool, Reservation};
use crate::spill::SpillWriter;
use crate::sync::lock;

/// Where a map task's partitioned output goes.
pub trait BlockWriter {
    /// Stores one batch of reduce partition `partition`.
    fn write(&mut self, partition: u32, batch: RecordBatch) -> Result<()>;
    /// Makes the task's output final (e.g. closes and renames its files).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The map side of a shuffle for one task: partitions (and perhaps combines) rows.
pub trait ShuffleSink: Send {
    /// Takes one chunk of the task's rows; may write blocks as buffers fill.
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()>;
    /// Writes whatever is still buffered.
    fn finish(self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()>;
}

/// The storage and transport of shuffle blocks.
pub trait ShuffleService: Send + Sync {
    /// A writer for the output of map task `map_task` of shuffle `shuffle`.
    fn writer(&self, shuffle: ShuffleId, map_task: TaskId) -> Box<dyn BlockWriter + '_>;
    /// Every block of reduce partition `partition` of shuffle `shuffle`, in map-task order.
    fn read(&self, shuffle: ShuffleId, partition: TaskId) -> Result<BatchStream>;
    /// The memory budget tasks using this service run under (none: unbounded).
    fn memory(&self) -> Option<Arc<MemoryPool>> {
        None
    }
}

/// (shuffle, reduce partition).
type PartitionKey = (ShuffleId, TaskId);
/// (map task, write sequence): the order in which a reducer sees blocks.
type BlockOrder = (TaskId, u64);

enum Block {
    /// In memory, holding its share of the budget until the reducer takes it.
    Memory(RecordBatch, Reservation),
    Spilled(PathBuf),
}

/// The embedded shuffle: blocks stay in memory while the engine's budget allows, past
/// which they are written to Arrow IPC files in a temporary directory. A reduce
/// partition's blocks are handed over when it is read (embedded tasks run once), each
/// block's reservation released as the reducer takes the block (and reserves it itself).
pub struct LocalShuffle {
    blocks: Mutex<HashMap<PartitionKey, Vec<(BlockOrder, Block)>>>,
    pool: Arc<MemoryPool>,
    spill_dir: tempfile::TempDir,
    sequence: AtomicU64,
    /// Bytes of blocks written to spill files.
    spilled_blocks: AtomicU64,
    /// Reads still to come, per partition (see [`LocalShuffle::expect_reads`]; one if
    /// not told).
    reads_left: Mutex<HashMap<PartitionKey, u32>>,
}

impl LocalShuffle {
    /// A store holding at most `limit` bytes in memory, spilling under `spill_parent`
    /// (the system temporary directory if `None`).
    pub fn new(limit: usize, spill_parent: Option<&std::path::Path>) -> Result<Self> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("ringleader-spill-");
            b
        };
        let spill_dir = match spill_parent {
            Some(p) => builder.tempdir_in(p).map_err(|e| Error::io(p, e))?,
            None => builder.tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?,
        };
        let pool = MemoryPool::new(limit, spill_dir.path().join("operators"));
        Ok(LocalShuffle {
            blocks: Mutex::new(HashMap::new()),
            pool,
            spill_dir,
            sequence: AtomicU64::new(0),
            spilled_blocks: AtomicU64::new(0),
            reads_left: Mutex::new(HashMap::new()),
        })
    }

    /// Bytes written to spill files so far (shuffle blocks and operators' spills).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_blocks.load(Ordering::Relaxed) + self.pool.spilled()
    }

    /// Bytes operators (sorts, hash tables) wrote to spill files so far.
    pub fn operator_spilled_bytes(&self) -> u64 {
        self.pool.spilled()
    }

    /// Partition `partition` of `shuffle` is read `reads` times in the job (see
    /// [`crate::plan::JobPlan::shuffle_reads`]): its blocks go only with the last read.
    pub fn expect_reads(&self, shuffle: ShuffleId, partition: TaskId, reads: u32) {
        self.reads_left
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((shuffle, partition), reads.max(1));
    }

    /// The engine's memory pool.
    pub fn pool(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    fn store(&self, shuffle: ShuffleId, map_task: TaskId, partition: TaskId, batch: RecordBatch) -> Result<()> {
        let size = batch.get_array_memory_size();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut reservation = self.pool.reservation();
        let block = if !reservation.try_grow(size) {
            let name = format!("shuffle-{shuffle}-part-{partition}-map-{map_task}-{seq}.arrow");
            // A full spill disk names the file (and, being I/O, the task may run again).
            let mut file = SpillWriter::new(self.spill_dir.path(), &name);
            file.write(&batch)?;
            let Some((path, written)) = file.finish()? else {
                return Ok(());
            };
            self.spilled_blocks.fetch_add(written, Ordering::Relaxed);
            Block::Spilled(path)
        } else {
            Block::Memory(batch, reservation)
        };
        self.blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((shuffle, partition))
            .or_default()
            .push(((map_task, seq), block));
        Ok(())
    }
}

struct LocalWriter<'a> {
    store: &'a LocalShuffle,
    shuffle: ShuffleId,
    map_task: TaskId,
}

impl BlockWriter for LocalWriter<'_> {
    fn write(&mut self, partition: u32, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.store.store(self.shuffle, self.map_task, TaskId(partition), batch)
    }
}

impl ShuffleService for LocalShuffle {
    fn writer(&self, shuffle: ShuffleId, map_task: TaskId) -> Box<dyn BlockWriter + '_> {
        Box::new(LocalWriter {
            store: self,
            shuffle,
            map_task,
        })
    }

    fn read(&self, shuffle: ShuffleId, partition: TaskId) -> Result<BatchStream> {
        let last = {
            let mut left = lock(&self.reads_left);
            let n = left.entry((shuffle, partition)).or_insert(1);
            *n = n.saturating_sub(1);
            *n == 0
        };
        let mut map = lock(&self.blocks);
        if !last {
            // Another read of this partition is to come (a self-join, a sort's sample of
            // an upstream shuffle): hand over copies and keep the blocks.
            let mut copies: Vec<(BlockOrder, Option<RecordBatch>, Option<PathBuf>)> = map
                .get(&(shuffle, partition))
                .into_iter()
                .flatten()
                .map(|(order, block)| match block {
                    Block::Memory(batch, _) => (*order, Some(batch.clone()), None),
                    Block::Spilled(path) => (*order, None, Some(path.clone())),
                })
                .collect();
            drop(map);
            copies.sort_by_key(|(order, _, _)| *order);
            return Ok(Box::new(copies.into_iter().flat_map(
                |(_, batch, path)| -> BatchStream {
                    match (batch, path) {
                        (Some(batch), _) => Box::new(std::iter::once(Ok(batch))),
                        (None, Some(path)) => read_spill(path, false),
                        (None, None) => Box::new(std::iter::empty()),
                    }
                },
            )));
        }
        let mut blocks = map.remove(&(shuffle, partition)).unwrap_or_default();
        drop(map);
        blocks.sort_by_key(|(order, _)| *order);
        Ok(Box::new(blocks.into_iter().flat_map(|(_, block)| -> BatchStream {
            match block {
                // The block's reservation goes as the reducer takes it.
                Block::Memory(batch, reservation) => {
                    drop(reservation);
                    Box::new(std::iter::once(Ok(batch)))
                }
                Block::Spilled(path) => read_spill(path, true),
            }
        })))
    }

    fn memory(&self) -> Option<Arc<MemoryPool>> {
        Some(self.pool.clone())
    }
}

/// A spilled block, batch by batch; `last` removes its file once open (its last reader).
fn read_spill(path: PathBuf, last: bool) -> BatchStream {
    match crate::spill::read(&path) {
        Ok(batches) => {
            if last {
                let _ = std::fs::remove_file(&path);
            }
            batches
        }
        Err(e) => Box::new(std::iter::once(Err(e))),
    }
}
