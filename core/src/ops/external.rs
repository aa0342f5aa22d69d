//! Out-of-core building blocks of the reduce side, for when a partition outgrows its task's
//! memory budget: sorted runs (the task's own on disk, and the map side's handed over by
//! the shuffle) merged k ways ([`Runs`], the external sort; records by a tree of losers
//! over integer keys), and rows hashed into partitions on disk that are then processed one
//! at a time ([`Partitions`], for aggregation and joins). Spill files live in a directory
//! of the task, removed when the operator's output is dropped (when the task ends, failed
//! or not).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash};
use std::path::PathBuf;
use std::sync::Arc;

use crate::data::record::{KEY_LEN, RECORD_LEN, Record, packed_key};
use crate::data::{BatchStream, Chunk, ChunkStream, Data, decode, is};
use crate::error::Result;
use crate::memory::MemoryPool;
use crate::memory::spill::{SpillWriter, read};

/// Sorted runs of one task: the ones it wrote as its sort's buffer filled, and runs the
/// shuffle handed it already sorted, in the order the rows arrived.
pub struct Runs {
    pool: Arc<MemoryPool>,
    dir: Option<tempfile::TempDir>,
    runs: Vec<Run>,
    /// Runs merged into longer ones so far (names the runs they write).
    passes: usize,
}

/// One sorted run to merge.
enum Run {
    /// A spill file this task wrote, of so many bytes (removed once merged into a longer run).
    File(PathBuf, u64),
    /// A run read as it is merged (a sorted run of the shuffle), of about so many bytes.
    Stream(BatchStream, u64),
}

impl Run {
    fn open(self) -> Result<BatchStream> {
        match self {
            Run::File(path, _) => read(&path),
            Run::Stream(stream, _) => Ok(stream),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Run::File(_, bytes) | Run::Stream(_, bytes) => *bytes,
        }
    }
}

impl Runs {
    /// No runs yet; spill files go under `pool`'s spill root.
    pub fn new(pool: &Arc<MemoryPool>) -> Runs {
        Runs {
            pool: pool.clone(),
            dir: None,
            runs: Vec::new(),
            passes: 0,
        }
    }

    /// Whether there is no run.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn dir(&mut self) -> Result<PathBuf> {
        Ok(match &self.dir {
            Some(d) => d.path().to_path_buf(),
            None => self.dir.insert(self.pool.spill_dir()?).path().to_path_buf(),
        })
    }

    /// Writes one sorted run.
    pub fn write<T: Data>(&mut self, sorted: ChunkStream) -> Result<()> {
        let name = format!("run-{}.arrow", self.runs.len());
        if let Some(run) = self.spill::<T>(&name, sorted)? {
            self.runs.push(run);
        }
        Ok(())
    }

    /// Writes `sorted` to the spill file `name`, counted as spilled (`None`: no rows).
    fn spill<T: Data>(&mut self, name: &str, sorted: ChunkStream) -> Result<Option<Run>> {
        let mut file = SpillWriter::new(&self.dir()?, name);
        for chunk in sorted {
            file.write_rows(&chunk?.into_rows::<T>()?)?;
        }
        Ok(file.finish_in(&self.pool)?.map(|(path, bytes)| Run::File(path, bytes)))
    }

    /// Adds a run of about `bytes` already sorted by the merge's key, read (in batches of
    /// about [`crate::memory::spill::SPILL_BATCH_BYTES`]) only as it is merged.
    pub fn add_sorted(&mut self, run: BatchStream, bytes: u64) {
        self.runs.push(Run::Stream(run, bytes));
    }

    /// Merges the runs by `key`: ties go to the earlier run, so rows with equal keys keep
    /// the order in which they arrived. At most [`MAX_MERGE_FAN_IN`] runs are read at once
    /// (fewer when the pool has room for fewer read buffers, at least
    /// [`MIN_MERGE_FAN_IN`]). With more runs than that, consecutive runs are first merged
    /// into longer ones, as few as bring the count down and the fewest bytes among those
    /// (a few small runs written when memory was short cost a small merge, not a pass
    /// over everything). The runs' read buffers count in the pool while they are open.
    pub fn merge<T: Data, K: Ord + Send + 'static>(
        mut self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Result<ChunkStream> {
        let per_run = RUN_BUFFER_BYTES;
        let fan_in = (self.pool.available() / per_run)
            .clamp(MIN_MERGE_FAN_IN, MAX_MERGE_FAN_IN)
            .min(open_file_room());
        let key = Arc::new(key);
        while self.runs.len() > fan_in {
            // Merging `group` runs into one takes the count down by `group - 1`.
            let group = (self.runs.len() - fan_in + 1).min(fan_in);
            let sizes: Vec<u64> = self.runs.iter().map(Run::bytes).collect();
            let start = (0..=sizes.len() - group)
                .min_by_key(|&s| sizes[s..s + group].iter().sum::<u64>())
                .unwrap_or(0);
            let merging: Vec<Run> = self.runs.drain(start..start + group).collect();
            let files: Vec<PathBuf> = merging
                .iter()
                .filter_map(|run| match run {
                    Run::File(path, _) => Some(path.clone()),
                    Run::Stream(..) => None,
                })
                .collect();
            let mut reservation = self.pool.reservation();
            reservation.grow(per_run * group);
            let key = key.clone();
            let rows = merge_runs::<T, K>(merging, move |row| key(row))?;
            let name = format!("merged-{}.arrow", self.passes);
            self.passes += 1;
            if let Some(run) = self.spill::<T>(&name, rows)? {
                self.runs.insert(start, run);
            }
            for path in &files {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut reservation = self.pool.reservation();
        reservation.grow(per_run * self.runs.len());
        let dir = self.dir.take();
        let rows = merge_runs::<T, K>(std::mem::take(&mut self.runs), move |row| key(row))?;
        Ok(Box::new(rows.inspect(move |_| {
            let _ = (&dir, &reservation);
        })))
    }
}

/// The most sorted runs one merge reads at once (each open run holds a batch and its
/// decoded rows).
pub const MAX_MERGE_FAN_IN: usize = 256;

/// The fewest runs one merge reads at once however full the pool is (fewer would merge
/// runs ahead again and again: 100 runs two at a time take 98 merges ahead, 16 at a time
/// one of 85).
pub const MIN_MERGE_FAN_IN: usize = 16;

/// The runs one merge may open given the process's limit on open files: an eighth of it
/// (tasks merge side by side, and hold other files), never below [`MIN_MERGE_FAN_IN`].
fn open_file_room() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let room = if known { (limit.rlim_cur / 8) as usize } else { 0 };
    room.max(MIN_MERGE_FAN_IN)
}

/// About what one open run's read buffer takes: a batch of about
/// [`crate::memory::spill::SPILL_BATCH_BYTES`], its decoded rows, and the file's read buffer.
const RUN_BUFFER_BYTES: usize = 2 * crate::memory::spill::SPILL_BATCH_BYTES + (1 << 16);

/// Merges the sorted `runs` by `key` (ties to the earlier run).
fn merge_runs<T: Data, K: Ord + Send + 'static>(
    runs: Vec<Run>,
    key: impl Fn(&T) -> K + Send + 'static,
) -> Result<ChunkStream> {
    if is::<T, Record>() && is::<K, [u8; KEY_LEN]>() {
        return merge_record_runs(runs, move |record: &Record| {
            // SAFETY: `T` is `Record` and `K` is `[u8; KEY_LEN]` (checked above), a `Copy`
            // type: these are casts to the types themselves.
            unsafe { std::mem::transmute_copy::<K, [u8; KEY_LEN]>(&key(&*std::ptr::from_ref(record).cast::<T>())) }
        });
    }
    let mut readers = Vec::with_capacity(runs.len());
    for run in runs {
        readers.push(RowReader::<T>::new(run.open()?));
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

/// Merges sorted runs of records by a 10-byte key (ties to the earlier run): each run's
/// next key, packed with the run's index into one `u128`, in a tree of losers (one
/// integer comparison per level for each record, where a heap's sift makes two); each
/// record copied once, from its run's batch into the output.
fn merge_record_runs(runs: Vec<Run>, key: impl Fn(&Record) -> [u8; KEY_LEN] + Send + 'static) -> Result<ChunkStream> {
    let packed = move |record: &Record, run: usize| packed_key(&key(record), run as u128);
    let mut cursors = Vec::with_capacity(runs.len());
    let mut keys = Vec::with_capacity(runs.len());
    for (i, run) in runs.into_iter().enumerate() {
        let mut cursor = RecordCursor {
            batches: run.open()?,
            records: Vec::new(),
            at: 0,
        };
        keys.push(cursor.current()?.map_or(EXHAUSTED, |record| packed(record, i)));
        cursors.push(cursor);
    }
    let mut tree = LoserTree::new(keys);
    let size = super::chunk_rows::<Record>();
    let mut failed = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut out: Vec<Record> = Vec::with_capacity(size);
        while out.len() < size {
            let Some(i) = tree.winner() else { break };
            let cursor = &mut cursors[i];
            out.push(cursor.records[cursor.at]);
            cursor.at += 1;
            match cursor.current() {
                Ok(next) => tree.replace_winner(next.map_or(EXHAUSTED, |record| packed(record, i))),
                Err(e) => {
                    failed = true;
                    return Some(Err(e));
                }
            }
        }
        (!out.is_empty()).then(|| Ok(Chunk::from_rows(out)))
    })))
}

/// The key of a run with no record left: above every packed key (whose low bits are a
/// run's index, never all ones).
const EXHAUSTED: u128 = u128::MAX;

/// A tournament tree of losers over distinct `u128` keys, one per input (Knuth, TAOCP
/// 5.4.1): node `n` holds the loser of the match between its children `2n` and `2n + 1`;
/// input `i` is leaf `k + i`. Replacing the winner's key replays only its path to the root.
struct LoserTree {
    keys: Vec<u128>,
    /// `losers[0]` is the overall winner; `losers[n]`, `n >= 1`, the loser at node `n`.
    losers: Vec<usize>,
}

impl LoserTree {
    fn new(keys: Vec<u128>) -> LoserTree {
        let k = keys.len();
        let mut winners = vec![0usize; 2 * k];
        let mut losers = vec![0usize; k.max(1)];
        for (i, slot) in winners[k..].iter_mut().enumerate() {
            *slot = i;
        }
        for n in (1..k).rev() {
            let (a, b) = (winners[2 * n], winners[2 * n + 1]);
            let (win, lose) = if keys[a] < keys[b] { (a, b) } else { (b, a) };
            winners[n] = win;
            losers[n] = lose;
        }
        if k > 0 {
            losers[0] = winners[1];
        }
        LoserTree { keys, losers }
    }

    /// The input with the least key, unless every input is exhausted.
    fn winner(&self) -> Option<usize> {
        let w = *self.losers.first()?;
        (self.keys.get(w).copied().unwrap_or(EXHAUSTED) != EXHAUSTED).then_some(w)
    }

    /// Gives the winner its next key and plays its path again.
    fn replace_winner(&mut self, key: u128) {
        let k = self.keys.len();
        let mut winner = self.losers[0];
        self.keys[winner] = key;
        let mut node = (winner + k) / 2;
        while node >= 1 {
            let loser = self.losers[node];
            // Both ways written out (no branch to mispredict: which key is less is a coin
            // toss).
            let swap = self.keys[loser] < self.keys[winner];
            self.losers[node] = if swap { winner } else { loser };
            winner = if swap { loser } else { winner };
            node /= 2;
        }
        self.losers[0] = winner;
    }
}

/// Where a record merge is in one run: its current batch's records and the next one's
/// index.
struct RecordCursor {
    batches: BatchStream,
    records: Vec<Record>,
    at: usize,
}

impl RecordCursor {
    /// The run's next record (reading its next batch if this one is done); `None` at its end.
    fn current(&mut self) -> Result<Option<&Record>> {
        while self.at >= self.records.len() {
            let Some(batch) = self.batches.next() else {
                return Ok(None);
            };
            self.records = decode::<Record>(&batch?)?;
            self.at = 0;
        }
        let record = &self.records[self.at];
        // The run wins again about as many records later as there are runs: fetch the
        // next record's cache lines (two or three, a record being 100 bytes) meanwhile.
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let next = std::ptr::from_ref(record).wrapping_add(1).cast::<i8>();
            for offset in [0, 64, RECORD_LEN - 1] {
                // SAFETY: a prefetch is only a hint, allowed at any address (even past the
                // batch's end), and SSE is part of every x86-64 target.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(offset)) };
            }
        }
        Ok(Some(record))
    }
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
pub fn spill_partition_of<K: Hash>(key: &K) -> usize {
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
    /// [`spill_partition_of`]).
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
                files[p].push(writer.finish_in(&self.pool)?.map(|(path, _)| path));
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

    /// Writes `run` (sorted) as one of the task's own runs.
    fn write_pairs(runs: &mut Runs, run: Vec<(u64, u64)>) {
        let chunk: ChunkStream = Box::new(std::iter::once(Ok(Chunk::from_rows(run))));
        runs.write::<(u64, u64)>(chunk).expect("run");
    }

    /// Every row of the runs, merged by the first field.
    fn merged_pairs(runs: Runs) -> Vec<(u64, u64)> {
        runs.merge::<(u64, u64), u64>(|row| row.0)
            .expect("merge")
            .flat_map(|c| c.expect("chunk").into_rows::<(u64, u64)>().expect("rows"))
            .collect()
    }

    #[test]
    fn many_runs_merge_in_passes_of_a_bounded_fan_in_stably_and_counted_in_the_pool() {
        let root = tempfile::tempdir().expect("dir");
        // Room for the read buffers of the fewest runs a merge reads at once.
        let limit = MIN_MERGE_FAN_IN * RUN_BUFFER_BYTES;
        let pool = MemoryPool::new(limit, root.path().join("spill"));
        let mut runs = Runs::new(&pool);
        let mut all = Vec::new();
        for r in 0..40u64 {
            // Keys repeat across runs; the second field says which run a row came from.
            let mut run: Vec<(u64, u64)> = (0..50).map(|i| ((i * 7 + r) % 30, r)).collect();
            run.sort_by_key(|row| row.0);
            all.extend(run.iter().copied());
            write_pairs(&mut runs, run);
        }
        let merged = merged_pairs(runs);
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

    proptest::proptest! {
        #[test]
        fn a_loser_tree_hands_out_every_key_of_its_sorted_inputs_in_order(
            inputs in proptest::collection::vec(proptest::collection::vec(0u128..50, 0..20), 0..40)
        ) {
            // Keys made distinct as the merge makes them: the input's index in the low bits.
            let mut lists: Vec<Vec<u128>> = inputs
                .iter()
                .enumerate()
                .map(|(i, keys)| {
                    let mut keys: Vec<u128> = keys.iter().map(|k| (k << 48) | i as u128).collect();
                    keys.sort();
                    keys
                })
                .collect();
            let mut want: Vec<u128> = lists.iter().flatten().copied().collect();
            want.sort();
            let firsts = lists.iter().map(|l| l.first().copied().unwrap_or(EXHAUSTED)).collect();
            let mut at = vec![0usize; lists.len()];
            let mut tree = LoserTree::new(firsts);
            let mut got = Vec::new();
            while let Some(i) = tree.winner() {
                got.push(lists[i][at[i]]);
                at[i] += 1;
                tree.replace_winner(lists[i].get(at[i]).copied().unwrap_or(EXHAUSTED));
            }
            lists.clear();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// A record whose key is `key` (big-endian in its first bytes) and whose last bytes say
    /// which run and row it came from.
    fn record(key: u64, run: u32, row: u32) -> Record {
        let mut bytes = [0u8; RECORD_LEN];
        bytes[2..KEY_LEN].copy_from_slice(&key.to_be_bytes());
        bytes[RECORD_LEN - 8..RECORD_LEN - 4].copy_from_slice(&run.to_be_bytes());
        bytes[RECORD_LEN - 4..].copy_from_slice(&row.to_be_bytes());
        Record(bytes)
    }

    #[test]
    fn record_runs_written_and_handed_over_merge_stably_by_key() {
        let root = tempfile::tempdir().expect("dir");
        let pool = MemoryPool::new(64 << 20, root.path().join("spill"));
        let mut runs = Runs::new(&pool);
        let mut all = Vec::new();
        for r in 0..9u32 {
            // Keys repeat across runs; a run's rows are in key order.
            let mut run: Vec<Record> = (0..3000u32)
                .map(|i| record(u64::from((i * 7 + r) % 500), r, i))
                .collect();
            run.sort_by_key(Record::key);
            all.extend(run.iter().copied());
            if r % 3 == 0 {
                // One run in three written by the task, the others handed over as streams
                // of small batches (as the shuffle hands over the map side's runs).
                let chunk: ChunkStream = Box::new(std::iter::once(Ok(Chunk::from_rows(run))));
                runs.write::<Record>(chunk).expect("run");
            } else {
                let batches: Vec<Result<arrow_array::RecordBatch>> = run.chunks(700).map(crate::data::encode).collect();
                runs.add_sorted(Box::new(batches.into_iter()), 70_000);
            }
        }
        let merged: Vec<Record> = runs
            .merge::<Record, [u8; KEY_LEN]>(Record::key)
            .expect("merge")
            .flat_map(|c| c.expect("chunk").into_rows::<Record>().expect("rows"))
            .collect();
        // A stable sort of the runs in the order given: ties in run order.
        all.sort_by_key(Record::key);
        assert!(merged == all, "the merge is not the stable sort of its runs");
    }

    #[test]
    fn too_many_runs_merge_the_cheapest_few_first_not_everything_again() {
        let root = tempfile::tempdir().expect("dir");
        // Room for the fewest runs one merge reads: 18 runs are 3 too many.
        let pool = MemoryPool::new(MIN_MERGE_FAN_IN * RUN_BUFFER_BYTES, root.path().join("spill"));
        let mut runs = Runs::new(&pool);
        let mut all = Vec::new();
        for r in 0..18u64 {
            let large = r < 12;
            let len = if large { 20_000 } else { 50 };
            let mut run: Vec<(u64, u64)> = (0..len).map(|i| ((i * 13 + r) % 997, r)).collect();
            run.sort_by_key(|row| row.0);
            all.extend(run.iter().copied());
            if large {
                // The shuffle's runs: large, handed over as streams.
                let batch = crate::data::encode(&run).expect("encode");
                runs.add_sorted(Box::new(std::iter::once(Ok(batch))), len * 16);
            } else {
                // Small runs the task wrote itself when memory was short.
                write_pairs(&mut runs, run);
            }
        }
        let written = pool.spilled();
        let merged = merged_pairs(runs);
        all.sort_by_key(|row| row.0);
        assert_eq!(merged, all);
        // Only small runs were merged ahead: they are written a second time, nothing else.
        assert!(
            pool.spilled() < 2 * written + 4096,
            "{} bytes spilled where the small runs took {written}",
            pool.spilled()
        );
    }
}
