//! Shuffle: the map side's sink interface, the transport interface, and the embedded
//! transport (memory with a bound, spilling Arrow IPC files to a temporary directory).
//!
//! A map task pushes chunks into a [`ShuffleSink`] (built by a shipped trampoline, so it is
//! typed), which partitions rows and hands Arrow batches to a [`BlockWriter`]. Which
//! [`ShuffleService`] stores the blocks is the only thing that differs between the embedded
//! engine (this module's [`LocalShuffle`]) and the cluster (worker files served over Flight).
//!
//! Inside: [`cluster`] shuffle files on workers, read locally or over Flight.

pub mod cluster;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;

use crate::data::{BatchStream, Chunk};
use crate::error::{Error, Result};
use crate::ids::{ShuffleId, TaskId};
use crate::memory::spill::SpillWriter;
use crate::memory::{MemoryPool, Reservation};
use crate::sync::lock;

/// Where a map task's partitioned output goes.
pub trait BlockWriter {
    /// Stores one batch of reduce partition `partition`.
    fn write(&mut self, partition: u32, batch: RecordBatch) -> Result<()>;
    /// Makes the task's output final (e.g. closes and renames its files).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether this writer would rather take sorted runs ([`BlockWriter::write_sorted_run`])
    /// than blocks: a store that is spilling, whose reducer then merges the runs straight
    /// from disk instead of sorting the rows and writing them once more.
    fn wants_sorted_runs(&self) -> bool {
        false
    }
    /// Stores one run of reduce partition `partition` sorted by the sink's key, `batches`
    /// in order. A writer that keeps no runs stores them as blocks.
    fn write_sorted_run(&mut self, partition: u32, batches: Vec<RecordBatch>) -> Result<()> {
        for batch in batches {
            self.write(partition, batch)?;
        }
        Ok(())
    }
}

/// One shuffle input of a reduce task, in map-task order: stretches of blocks in no
/// particular order and runs sorted by the sink's key (only a sort's sink writes runs, only
/// into a store that keeps them).
pub struct Side {
    /// The stretches, in the order the map tasks wrote them.
    pub parts: Vec<SidePart>,
}

/// A stretch of a [`Side`].
pub enum SidePart {
    /// Blocks in no particular order.
    Blocks(BatchStream),
    /// One run, sorted by the key of the sink that wrote it, and about how many bytes it
    /// holds (to merge the cheapest runs first when there are too many to read at once).
    SortedRun(BatchStream, u64),
}

impl Side {
    /// A side whose batches are in no particular order.
    pub fn blocks(stream: BatchStream) -> Side {
        Side {
            parts: vec![SidePart::Blocks(stream)],
        }
    }

    /// Every batch, stretch after stretch (for a reducer that needs no order).
    pub fn into_stream(self) -> BatchStream {
        Box::new(self.parts.into_iter().flat_map(|part| match part {
            SidePart::Blocks(stream) | SidePart::SortedRun(stream, _) => stream,
        }))
    }

    /// The same side with `f` applied to each stretch's stream.
    pub fn map_streams(self, mut f: impl FnMut(BatchStream) -> BatchStream) -> Side {
        let parts = self
            .parts
            .into_iter()
            .map(|part| match part {
                SidePart::Blocks(stream) => SidePart::Blocks(f(stream)),
                SidePart::SortedRun(stream, bytes) => SidePart::SortedRun(f(stream), bytes),
            })
            .collect();
        Side { parts }
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
    /// The same blocks as [`ShuffleService::read`], with the sorted runs a store kept
    /// told apart.
    fn read_side(&self, shuffle: ShuffleId, partition: TaskId) -> Result<Side> {
        Ok(Side::blocks(self.read(shuffle, partition)?))
    }
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
    Memory(Vec<RecordBatch>, Reservation),
    Spilled(PathBuf),
}

/// A stored block or sorted run.
struct Stored {
    order: BlockOrder,
    /// For a run sorted by the sink's key, about its bytes (`None`: a block).
    run_bytes: Option<u64>,
    block: Block,
}

impl Stored {
    /// The same data for another read: batches shared, files left where they are.
    fn copy(&self, pool: &Arc<MemoryPool>) -> Stored {
        let block = match &self.block {
            Block::Memory(batches, _) => Block::Memory(batches.clone(), pool.reservation()),
            Block::Spilled(path) => Block::Spilled(path.clone()),
        };
        Stored { block, ..*self }
    }
}

/// The embedded shuffle: blocks stay in memory while the engine's budget allows, past
/// which they are written to Arrow IPC files in a temporary directory. A reduce
/// partition's blocks are handed over when it is read (embedded tasks run once), a block's
/// reservation released batch by batch as the reducer takes them (and reserves what it
/// keeps). While it spills, it asks a sort's map tasks for sorted runs
/// ([`BlockWriter::wants_sorted_runs`]), which a reducer then merges as they are.
pub struct LocalShuffle {
    blocks: Mutex<HashMap<PartitionKey, Vec<Stored>>>,
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

    fn store(
        &self,
        shuffle: ShuffleId,
        map_task: TaskId,
        partition: TaskId,
        batches: Vec<RecordBatch>,
        sorted: bool,
    ) -> Result<()> {
        let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut reservation = self.pool.reservation();
        let (block, bytes) = if !reservation.try_grow(size) {
            let kind = if sorted { "run" } else { "block" };
            let name = format!("shuffle-{shuffle}-part-{partition}-map-{map_task}-{kind}-{seq}.arrow");
            // A full spill disk names the file (and, being I/O, the task may run again).
            let mut file = SpillWriter::new(self.spill_dir.path(), &name);
            for batch in &batches {
                file.write(batch)?;
            }
            let Some((path, written)) = file.finish()? else {
                return Ok(());
            };
            self.spilled_blocks.fetch_add(written, Ordering::Relaxed);
            (Block::Spilled(path), written)
        } else {
            (Block::Memory(batches, reservation), size as u64)
        };
        lock(&self.blocks)
            .entry((shuffle, partition))
            .or_default()
            .push(Stored {
                order: (map_task, seq),
                run_bytes: sorted.then_some(bytes),
                block,
            });
        Ok(())
    }

    /// Whether blocks stored from now on are likely to spill: some already did, or under a
    /// quarter of the budget is left.
    fn spilling(&self) -> bool {
        self.spilled_blocks.load(Ordering::Relaxed) > 0 || self.pool.available() < self.pool.limit() / 4
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
        self.store
            .store(self.shuffle, self.map_task, TaskId(partition), vec![batch], false)
    }

    fn wants_sorted_runs(&self) -> bool {
        self.store.spilling()
    }

    fn write_sorted_run(&mut self, partition: u32, batches: Vec<RecordBatch>) -> Result<()> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if batches.is_empty() {
            return Ok(());
        }
        self.store
            .store(self.shuffle, self.map_task, TaskId(partition), batches, true)
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
        Ok(self.read_side(shuffle, partition)?.into_stream())
    }

    fn read_side(&self, shuffle: ShuffleId, partition: TaskId) -> Result<Side> {
        let last = {
            let mut left = lock(&self.reads_left);
            let n = left.entry((shuffle, partition)).or_insert(1);
            *n = n.saturating_sub(1);
            *n == 0
        };
        // The last read takes the blocks; another read of this partition is to come (a
        // self-join, a sort's sample of an upstream shuffle) gets copies and leaves them.
        let mut map = lock(&self.blocks);
        let mut blocks: Vec<Stored> = if last {
            map.remove(&(shuffle, partition)).unwrap_or_default()
        } else {
            map.get(&(shuffle, partition))
                .into_iter()
                .flatten()
                .map(|stored| stored.copy(&self.pool))
                .collect()
        };
        drop(map);
        blocks.sort_by_key(|stored| stored.order);
        // Consecutive blocks make one stretch; each run is one.
        let mut parts: Vec<SidePart> = Vec::new();
        let mut stretch: Vec<BatchStream> = Vec::new();
        for stored in blocks {
            let batches = stored_batches(stored.block, last);
            if let Some(bytes) = stored.run_bytes {
                if !stretch.is_empty() {
                    parts.push(SidePart::Blocks(Box::new(
                        std::mem::take(&mut stretch).into_iter().flatten(),
                    )));
                }
                parts.push(SidePart::SortedRun(batches, bytes));
            } else {
                stretch.push(batches);
            }
        }
        if !stretch.is_empty() || parts.is_empty() {
            parts.push(SidePart::Blocks(Box::new(stretch.into_iter().flatten())));
        }
        Ok(Side { parts })
    }

    fn memory(&self) -> Option<Arc<MemoryPool>> {
        Some(self.pool.clone())
    }
}

/// A stored block's batches. One in memory gives its reservation back batch by batch as
/// the reducer takes them (the reducer reserves what it keeps); a spilled one is opened
/// when first read (`last`: and its file removed then).
fn stored_batches(block: Block, last: bool) -> BatchStream {
    match block {
        Block::Memory(batches, mut reservation) => Box::new(batches.into_iter().map(move |batch| {
            reservation.shrink(batch.get_array_memory_size());
            Ok(batch)
        })),
        Block::Spilled(path) => Box::new(std::iter::once(()).flat_map(move |()| read_spill(path.clone(), last))),
    }
}

/// A spilled block, batch by batch; `last` removes its file once open (its last reader).
fn read_spill(path: PathBuf, last: bool) -> BatchStream {
    match crate::memory::spill::read(&path) {
        Ok(batches) => {
            if last {
                let _ = std::fs::remove_file(&path);
            }
            batches
        }
        Err(e) => Box::new(std::iter::once(Err(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{decode, encode};

    fn rows_of(stream: BatchStream) -> Vec<u64> {
        stream
            .flat_map(|batch| decode::<u64>(&batch.expect("batch")).expect("rows"))
            .collect()
    }

    #[test]
    fn a_spilling_store_asks_for_sorted_runs_and_hands_them_back_apart_in_map_order() {
        let root = tempfile::tempdir().expect("dir");
        let store = LocalShuffle::new(1 << 20, Some(root.path())).expect("store");
        let (shuffle, partition) = (ShuffleId(0), TaskId(0));
        let plain: Vec<u64> = (0..115_000).rev().collect();
        {
            let mut first = store.writer(shuffle, TaskId(0));
            assert!(!first.wants_sorted_runs(), "an empty store asked for sorted runs");
            // 920 KB of a 1 MiB budget: the store is past three quarters full.
            first.write(0, encode(&plain).expect("encode")).expect("block");
        }
        // The first run spills, the second fits in what is left.
        let runs: Vec<Vec<u64>> = vec![(0..30_000).collect(), (10..20).collect()];
        for (map, run) in runs.iter().enumerate() {
            let mut writer = store.writer(shuffle, TaskId(map as u32 + 1));
            assert!(
                writer.wants_sorted_runs(),
                "a store that spills did not ask for sorted runs"
            );
            let batches = run.chunks(1000).map(|rows| encode(rows).expect("encode")).collect();
            writer.write_sorted_run(0, batches).expect("run");
        }
        assert!(store.spilled_bytes() > 0, "the run past the budget did not spill");
        let side = store.read_side(shuffle, partition).expect("read");
        let mut parts = side.parts.into_iter();
        match parts.next() {
            Some(SidePart::Blocks(blocks)) => assert_eq!(rows_of(blocks), plain),
            _ => panic!("the first map task's block is not a stretch of blocks"),
        }
        for run in &runs {
            match parts.next() {
                Some(SidePart::SortedRun(stream, bytes)) => {
                    assert!(bytes >= run.len() as u64 * 8, "a run's size is {bytes} bytes");
                    assert_eq!(&rows_of(stream), run);
                }
                _ => panic!("a sorted run was not handed over as one"),
            }
        }
        assert!(parts.next().is_none(), "more stretches than were written");
        assert_eq!(store.pool().used(), 0, "the blocks' memory was not given back");
        let left = std::fs::read_dir(store.spill_dir.path()).expect("spill dir").count();
        assert_eq!(left, 0, "spilled runs left behind once read");
    }
}
