//! Out-of-core building blocks of the reduce side, for when a partition outgrows its task's
//! memory budget: sorted runs on disk merged k ways ([`Runs`], the external sort), and rows
//! hashed into partitions on disk that are then processed one at a time ([`Partitions`],
//! for aggregation and joins). Spill files live in a directory of the task, removed when
//! the operator's output is dropped (when the task ends, failed or not).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};
use std::path::PathBuf;
use std::sync::Arc;

use crate::data::{BatchStream, Chunk, ChunkStream, Data, decode};
use crate::error::Result;
use crate::memory::MemoryPool;
use crate::spill::{SpillWriter, read};

/// Sorted runs of one task, written as the sort's buffer fills.
pub struct Runs {
    pool: Arc<MemoryPool>,
    dir: Option<tempfile::TempDir>,
    paths: Vec<PathBuf>,
    /// Merge passes made so far (names the runs they write).
    passes: usize,
}

impl Runs {
    /// No runs yet; spill files go under `pool`'s spill root.
    pub fn new(pool: &Arc<MemoryPool>) -> Runs {
        Runs {
            pool: pool.clone(),
            dir: None,
            paths: Vec::new(),
            passes: 0,
        }
    }

    /// Whether nothing was spilled.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Writes one sorted run.
    pub fn write<T: Data>(&mut self, sorted: ChunkStream) -> Result<()> {
        let dir = match &self.dir {
            Some(d) => d.path().to_path_buf(),
            None => self.dir.insert(self.pool.spill_dir()?).path().to_path_buf(),
        };
        let mut run = SpillWriter::new(&dir, &format!("run-{}.arrow", self.paths.len()));
        for chunk in sorted {
            run.write_rows(&chunk?.into_rows::<T>()?)?;
        }
        if let Some(path) = run.finish_in(&self.pool)? {
            self.paths.push(path);
        }
        Ok(())
    }

    /// Merges the runs by `key`: ties go to the earlier run, so rows with equal keys keep
    /// the order in which they arrived. At most [`MAX_MERGE_FAN_IN`] runs are read at once
    /// (fewer when the pool has room for fewer read buffers, at least [`MIN_MERGE_FAN_IN`]): more are first
    /// merged in groups of consecutive runs into longer runs, pass after pass. The runs'
    /// read buffers count in the pool while they are open.
    pub fn merge<T: Data, K: Ord + Send + 'static>(
        mut self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Result<ChunkStream> {
        let per_run = run_buffer_bytes::<T>();
        let fan_in = (self.pool.available() / per_run).clamp(MIN_MERGE_FAN_IN, MAX_MERGE_FAN_IN);
        let key = Arc::new(key);
        while self.paths.len() > fan_in {
            let groups: Vec<Vec<PathBuf>> = self.paths.chunks(fan_in).map(<[PathBuf]>::to_vec).collect();
            let dir = self.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
            let mut merged = Vec::with_capacity(groups.len());
            for (g, group) in groups.into_iter().enumerate() {
                if group.len() == 1 {
                    merged.extend(group);
                    continue;
                }
                let mut reservation = self.pool.reservation();
                reservation.grow(per_run * group.len());
                let key = key.clone();
                let rows = merge_paths::<T, K>(&group, move |row| key(row))?;
                let name = format!("pass-{}-run-{g}.arrow", self.passes);
                let mut run = SpillWriter::new(&dir, &name);
                for chunk in rows {
                    run.write_rows(&chunk?.into_rows::<T>()?)?;
                }
                merged.extend(run.finish_in(&self.pool)?);
                for path in &group {
                    let _ = std::fs::remove_file(path);
                }
            }
            self.passes += 1;
            self.paths = merged;
        }
        let mut reservation = self.pool.reservation();
        reservation.grow(per_run * self.paths.len());
        let dir = self.dir.take();
        let rows = merge_paths::<T, K>(&self.paths, move |row| key(row))?;
        Ok(Box::new(rows.inspect(move |_| {
            let _ = (&dir, &reservation);
        })))
    }
}

/// The most sorted runs one merge reads at once (each open run holds a decoded batch).
pub const MAX_MERGE_FAN_IN: usize = 64;

/// The fewest runs one merge reads at once however full the pool is (fewer would rewrite
/// the runs pass after pass: 100 runs two at a time take 7 passes, 16 at a time 2).
pub const MIN_MERGE_FAN_IN: usize = 16;

/// About what one open run's read buffer takes: a batch of [`super::chunk_rows`] rows.
fn run_buffer_bytes<T: 'static>() -> usize {
    super::chunk_rows::<T>() * (std::mem::size_of::<T>() + 16)
}

/// Merges the sorted runs at `paths` by `key` (ties to the earlier run).
fn merge_paths<T: Data, K: Ord + Send + 'static>(
    paths: &[PathBuf],
    key: impl Fn(&T) -> K + Send + 'static,
) -> Result<ChunkStream> {
    let mut readers = Vec::with_capacity(paths.len());
    for path in paths {
        readers.push(RowReader::<T>::new(read(path)?));
    }
    let mut heads: Vec<Option<T>> = Vec::with_capacity(readers.len());
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, reader) in readers.iter_mut().enumerate() {
        let head = reader.next().transpose()?;
        if let Some(row) = &head {
            heap.push(Reverse((key(row), i)));
        }
        heads.push(head);
    }
    let size = super::chunk_rows::<T>();
    let mut failed = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut out: Vec<T> = Vec::with_capacity(size);
        while out.len() < size {
            let Some(mut top) = heap.peek_mut() else { break };
            let i = (top.0).1;
            if let Some(row) = heads[i].take() {
                out.push(row);
            }
            match readers[i].next() {
                Some(Ok(row)) => {
                    // The run's next row takes its place at the top: one sift down, not a
                    // pop and a push (the heap was a tenth of a spilling sort's time).
                    *top = Reverse((key(&row), i));
                    heads[i] = Some(row);
                }
                Some(Err(e)) => {
                    failed = true;
                    return Some(Err(e));
                }
                None => {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            }
        }
        (!out.is_empty()).then(|| Ok(Chunk::from_rows(out)))
    })))
}

/// The rows of a spill file, decoded a batch at a time.
struct RowReader<T> {
    batches: BatchStream,
    rows: std::vec::IntoIter<T>,
}

impl<T: Data> RowReader<T> {
    fn new(batches: BatchStream) -> Self {
        RowReader {
            batches,
            rows: Vec::new().into_iter(),
        }
    }
}

impl<T: Data> Iterator for RowReader<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(row) = self.rows.next() {
                return Some(Ok(row));
            }
            match self.batches.next()? {
                Ok(batch) => match decode::<T>(&batch) {
                    Ok(rows) => self.rows = rows.into_iter(),
                    Err(e) => return Some(Err(e)),
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// How many partitions rows are spread over when a hash table outgrows its budget: each
/// is then about this much smaller than the whole.
pub const SPILL_PARTITIONS: usize = 16;

/// Rows of one task spread over [`SPILL_PARTITIONS`] spill files by a hash of their key.
pub struct Partitions {
    pool: Arc<MemoryPool>,
    dir: tempfile::TempDir,
    /// One writer per (side, partition).
    writers: Vec<Vec<SpillWriter>>,
}

/// The spill partition of `key`: a hash unlike the shuffle's (which made every key of one
/// reduce task agree on some bits).
pub fn partition_of<K: Hash>(key: &K) -> usize {
    (rustc_hash::FxBuildHasher.hash_one(key).rotate_left(29) as usize) % SPILL_PARTITIONS
}

/// The files of one partition, per side.
pub type PartitionFiles = Vec<Option<PathBuf>>;

impl Partitions {
    /// Empty partitions for `sides` inputs (1 for an aggregation, 2 for a join).
    pub fn new(pool: &Arc<MemoryPool>, sides: usize) -> Result<Partitions> {
        let dir = pool.spill_dir()?;
        let writers = (0..sides)
            .map(|side| {
                (0..SPILL_PARTITIONS)
                    .map(|p| SpillWriter::new(dir.path(), &format!("side-{side}-part-{p}.arrow")))
                    .collect()
            })
            .collect();
        Ok(Partitions {
            pool: pool.clone(),
            dir,
            writers,
        })
    }

    /// Writes `rows` of `side`, each to the partition `partition` gives it (see
    /// [`partition_of`]).
    pub fn write<T: Data>(&mut self, side: usize, rows: Vec<T>, partition: impl Fn(&T) -> usize) -> Result<()> {
        let mut split: Vec<Vec<T>> = (0..SPILL_PARTITIONS).map(|_| Vec::new()).collect();
        for row in rows {
            split[partition(&row) % SPILL_PARTITIONS].push(row);
        }
        for (p, rows) in split.into_iter().enumerate() {
            if !rows.is_empty() {
                self.writers[side][p].write_rows(&rows)?;
            }
        }
        Ok(())
    }

    /// Closes the files: per partition, each side's file (if it got rows), and the
    /// directory that holds them (keep it until the partitions are read).
    pub fn finish(self) -> Result<(Vec<PartitionFiles>, tempfile::TempDir)> {
        let mut files: Vec<PartitionFiles> = (0..SPILL_PARTITIONS).map(|_| Vec::new()).collect();
        for side in self.writers {
            for (p, writer) in side.into_iter().enumerate() {
                files[p].push(writer.finish_in(&self.pool)?);
            }
        }
        Ok((files, self.dir))
    }
}

/// The bytes of a spilled partition's files: about what its rows take once read back
/// (Arrow columns hold them in memory much as on disk).
pub fn partition_bytes(files: &[Option<PathBuf>]) -> usize {
    files
        .iter()
        .flatten()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len() as usize)
        .sum()
}

/// The rows of one side of a spilled partition (none if it got no rows).
pub fn partition_rows<T: Data>(file: &Option<PathBuf>) -> Result<Box<dyn Iterator<Item = Result<T>> + Send>> {
    Ok(match file {
        Some(path) => Box::new(RowReader::<T>::new(read(path)?)),
        None => Box::new(std::iter::empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_runs_merge_in_passes_of_a_bounded_fan_in_stably_and_counted_in_the_pool() {
        let root = tempfile::tempdir().expect("dir");
        // Room for the read buffers of the fewest runs a merge reads at once.
        let limit = MIN_MERGE_FAN_IN * run_buffer_bytes::<(u64, u64)>();
        let pool = MemoryPool::new(limit, root.path().join("spill"));
        let mut runs = Runs::new(&pool);
        let mut all = Vec::new();
        for r in 0..40u64 {
            // Keys repeat across runs; the second field says which run a row came from.
            let mut run: Vec<(u64, u64)> = (0..50).map(|i| ((i * 7 + r) % 30, r)).collect();
            run.sort_by_key(|row| row.0);
            all.extend(run.iter().copied());
            let chunk: ChunkStream = Box::new(std::iter::once(Ok(Chunk::from_rows(run))));
            runs.write::<(u64, u64)>(chunk).expect("run");
        }
        let merged: Vec<(u64, u64)> = runs
            .merge::<(u64, u64), u64>(|row| row.0)
            .expect("merge")
            .flat_map(|c| c.expect("chunk").into_rows::<(u64, u64)>().expect("rows"))
            .collect();
        // A stable sort of the runs in the order written: ties in run order.
        all.sort_by_key(|row| row.0);
        assert_eq!(merged, all);
        assert!(
            pool.peak() > 0 && pool.peak() <= limit,
            "read buffers not counted within the budget: peak {} of {limit}",
            pool.peak()
        );
        // Each pass's inputs were deleted as it went: only the spill root is left.
        assert_eq!(pool.used(), 0);
    }
}
