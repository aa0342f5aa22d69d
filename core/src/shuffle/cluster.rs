//! Shuffle across processes. A map task attempt writes one Arrow IPC file per non-empty
//! reduce partition, and an index naming them, into a temporary directory of its own that
//! is renamed into place when the attempt succeeds: each attempt's output is
//! committed whole or not at all, and never replaces another attempt's. A reducer reads the
//! attempt the driver recorded as the map task's, directly when it is local and with Arrow
//! Flight `do_get` from the worker daemon that holds it otherwise. A partition the index
//! does not name is empty; a named file that is missing, or a missing index, is a fetch
//! failure (the map output is recomputed), never an empty block.
//!
//! A reducer may start before its map stage is done (pipelined): the map outputs not done
//! when it started have no location, and it reads the outputs in map order, waiting for
//! each until the driver says where it is (an update on the executor's task stream, also
//! repeated every few seconds while the map stage runs). Silence for [`UPDATE_SILENCE`]
//! ends the attempt as superseded: the driver let it go (a new leader requeued it), or
//! it runs another attempt.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_ipc::writer::FileWriter;

use crate::data::{BatchStream, Chunk};
use crate::error::{Error, Result};
use crate::ids::{Attempt, JobId, ShuffleId, TaskId};
use crate::net::ticket::BlockId;
use crate::shuffle::{BlockWriter, ShuffleService};

/// Where a worker keeps shuffle files:
/// `{root}/{job}/shuffle-{s}/map-{m}.attempt-{a}/part-{p}.arrow` and `…/index`.
#[derive(Debug, Clone)]
pub struct ShuffleFiles {
    root: PathBuf,
}

/// The file of a committed map output naming its non-empty partitions, one per line.
const INDEX: &str = "index";

impl ShuffleFiles {
    /// Shuffle files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> ShuffleFiles {
        ShuffleFiles { root: root.into() }
    }

    /// The shuffle directory itself.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The directory of a job's shuffle files.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.root.join(job)
    }

    fn map_dir(&self, job: &str, shuffle: ShuffleId, map: TaskId, attempt: Attempt) -> PathBuf {
        self.job_dir(job)
            .join(format!("shuffle-{shuffle}"))
            .join(format!("map-{map}.attempt-{attempt}"))
    }

    /// Reads a block of a committed map output. A partition its index does not name is
    /// empty; no committed output, or a named file that is gone, is a fetch failure.
    pub fn read_block(&self, block: &BlockId) -> Result<BatchStream> {
        let dir = self.map_dir(&block.job, block.shuffle, block.map, block.attempt);
        let failed = |message: String| Error::FetchFailed {
            location: self.root.display().to_string(),
            message,
        };
        let index = std::fs::read_to_string(dir.join(INDEX)).map_err(|_| {
            failed(format!(
                "no committed output of map task {} (attempt {}) of shuffle {} here",
                block.map, block.attempt, block.shuffle
            ))
        })?;
        let wanted = block.partition.to_string();
        if !index.lines().any(|line| line == wanted) {
            return Ok(Box::new(std::iter::empty()));
        }
        let path = dir.join(format!("part-{}.arrow", block.partition));
        if !path.exists() {
            return Err(failed(format!("{} is listed in its index but gone", path.display())));
        }
        if !crate::io::mapped::in_task() {
            // Served to another worker: read batch by batch, never mapped (nobody here would
            // notice pages of a file that shrank).
            let (_, batches) = crate::io::store::read_ipc_file(&path)?;
            return Ok(Box::new(batches));
        }
        // A reducer's own read: memory-mapped and decoded in place, no copy between the page
        // cache and the reducer.
        let chunks = crate::io::source::ipc::open(&path, 0, usize::MAX, None)?;
        Ok(Box::new(chunks.map(|c| match c? {
            Chunk::Arrow(batch) => Ok(batch),
            Chunk::Rows(_) => Err(Error::Plan("an IPC file yielded rows".into())),
        })))
    }
}

/// Writes one map task's output, one IPC file per reduce partition.
struct FileBlockWriter {
    final_dir: PathBuf,
    temp_dir: PathBuf,
    writers: BTreeMap<u32, FileWriter<BufWriter<File>>>,
}

impl BlockWriter for FileBlockWriter {
    fn write(&mut self, partition: u32, batch: RecordBatch) -> Result<()> {
        if !self.writers.contains_key(&partition) {
            std::fs::create_dir_all(&self.temp_dir).map_err(|e| Error::io(&self.temp_dir, e))?;
            let path = self.temp_dir.join(format!("part-{partition}.arrow"));
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), batch.schema().as_ref())?;
            self.writers.insert(partition, writer);
        }
        if let Some(w) = self.writers.get_mut(&partition) {
            w.write(&batch)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.temp_dir).map_err(|e| Error::io(&self.temp_dir, e))?;
        let mut index = String::new();
        for (partition, mut w) in std::mem::take(&mut self.writers) {
            w.finish()?;
            index.push_str(&format!("{partition}\n"));
        }
        let index_path = self.temp_dir.join(INDEX);
        std::fs::write(&index_path, index).map_err(|e| Error::io(&index_path, e))?;
        // Not synced: map output lives only as long as its worker process. A worker that
        // crashes comes back as a new incarnation, and the driver recomputes every map
        // output the old one held, so no reader ever sees what a crash left half-written.
        // Attempt numbers are never reused, so nothing of another attempt is in the way.
        std::fs::rename(&self.temp_dir, &self.final_dir).map_err(|e| Error::io(&self.final_dir, e))
    }
}

impl Drop for FileBlockWriter {
    fn drop(&mut self) {
        if self.temp_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.temp_dir);
        }
    }
}

/// Set to `0` to make reducers fetch every remote block over Flight even when its worker
/// shares this host (for tests of the network path, and for comparison).
pub const HOST_LOCAL_VAR: &str = "RINGLEADER_HOST_LOCAL_SHUFFLE";

/// Where one map task's output lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSource {
    /// The worker holding it (serves it over Flight).
    pub address: String,
    /// That worker's shuffle directory: on the same machine, read straight from disk.
    pub shuffle_dir: String,
    /// That worker's machine identity ([`crate::net::machine`]).
    pub machine: String,
    /// The map task's attempt whose output the driver recorded.
    pub attempt: Attempt,
}

/// Where each map task's output of each shuffle is, by map task index (an empty address:
/// not done yet).
pub type Inputs = HashMap<ShuffleId, Vec<BlockSource>>;

/// Whether a task's shuffle inputs name a map output not done yet (an empty location): it
/// is a reducer started before its map stage was done, waiting to be told of it.
pub fn waits_for_map_outputs(inputs: &[crate::proto::ShuffleInput]) -> bool {
    inputs
        .iter()
        .any(|input| input.outputs.iter().any(|o| o.address.is_empty()))
}

impl From<&crate::proto::MapOutput> for BlockSource {
    fn from(o: &crate::proto::MapOutput) -> BlockSource {
        BlockSource {
            address: o.address.clone(),
            shuffle_dir: o.shuffle_dir.clone(),
            machine: o.machine.clone(),
            attempt: Attempt(o.attempt),
        }
    }
}

/// The longest a reducer waits for a map output with no word from the driver: it repeats
/// where outputs are every [`UPDATE_SILENCE`] / 6 while reducers wait.
pub const UPDATE_SILENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The shuffle service of one task running in a cluster executor.
pub struct ClusterShuffle {
    files: ShuffleFiles,
    job: JobId,
    attempt: Attempt,
    /// This worker's address: blocks located here are read from disk.
    local_address: String,
    /// Shuffle -> where each map task's output is, by map task index.
    inputs: HashMap<ShuffleId, Vec<BlockSource>>,
    runtime: tokio::runtime::Handle,
    /// The executor's memory budget.
    memory: Option<std::sync::Arc<crate::memory::MemoryPool>>,
    /// Where map outputs not done at the start are, as the driver tells it later.
    updates: Option<tokio::sync::watch::Receiver<Inputs>>,
}

impl ClusterShuffle {
    /// The same service, its tasks running under `pool`.
    pub fn with_memory(mut self, pool: std::sync::Arc<crate::memory::MemoryPool>) -> ClusterShuffle {
        self.memory = Some(pool);
        self
    }

    /// The same service, told where the map outputs not done yet are through `updates`.
    pub fn with_updates(mut self, updates: tokio::sync::watch::Receiver<Inputs>) -> ClusterShuffle {
        self.updates = Some(updates);
        self
    }

    /// A task's shuffle service.
    pub fn new(
        files: ShuffleFiles,
        job: JobId,
        attempt: Attempt,
        local_address: String,
        inputs: Inputs,
        runtime: tokio::runtime::Handle,
    ) -> ClusterShuffle {
        ClusterShuffle {
            files,
            job,
            attempt,
            local_address,
            inputs,
            runtime,
            memory: None,
            updates: None,
        }
    }
}

/// Streams one block from the worker at `address` with Flight `do_get`.
pub fn fetch_block(runtime: &tokio::runtime::Handle, address: &str, block: &BlockId) -> Result<BatchStream> {
    crate::net::flight::fetch_blocking(
        runtime,
        address,
        crate::net::ticket::FlightTicket::Block(block.clone()).encode(),
    )
}

impl ShuffleService for ClusterShuffle {
    fn memory(&self) -> Option<std::sync::Arc<crate::memory::MemoryPool>> {
        self.memory.clone()
    }

    fn writer(&self, shuffle: ShuffleId, map_task: TaskId) -> Box<dyn BlockWriter + '_> {
        let final_dir = self.files.map_dir(&self.job, shuffle, map_task, self.attempt);
        let temp_dir = final_dir.with_file_name(format!("map-{map_task}.attempt-{}.tmp", self.attempt));
        Box::new(FileBlockWriter {
            final_dir,
            temp_dir,
            writers: BTreeMap::new(),
        })
    }

    fn read(&self, shuffle: ShuffleId, partition: TaskId) -> Result<BatchStream> {
        let sources = self
            .inputs
            .get(&shuffle)
            .ok_or_else(|| Error::Plan(format!("no locations for shuffle {shuffle}")))?
            .clone();
        let (files, job, local, runtime, mut updates) = (
            self.files.clone(),
            self.job.clone(),
            self.local_address.clone(),
            self.runtime.clone(),
            self.updates.clone(),
        );
        // Each block is opened when the reducer reaches it: one Flight stream (and the
        // serving worker's read-ahead) per reducer at a time, not one per map task.
        Ok(Box::new(sources.into_iter().enumerate().flat_map(
            move |(map, source)| -> BatchStream {
                let source = match current_location(&runtime, updates.as_mut(), shuffle, map, source) {
                    Ok(source) => source,
                    Err(e) => return Box::new(std::iter::once(Err(e))),
                };
                let block = BlockId {
                    job: JobId::from(job.as_str()),
                    shuffle,
                    map: TaskId::from(map),
                    attempt: source.attempt,
                    partition,
                };
                match open_block(&files, &local, &runtime, &source, &block) {
                    Ok(stream) => stream,
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            },
        )))
    }
}

/// Where map task `map`'s output of `shuffle` is now, as the driver last said (the
/// assignment's place at first; a map task run again elsewhere since has its new one); not
/// done yet (or lost and being computed again), once the driver says: waits for updates,
/// at most [`UPDATE_SILENCE`] between two. Without updates, where it was at the start.
fn current_location(
    runtime: &tokio::runtime::Handle,
    updates: Option<&mut tokio::sync::watch::Receiver<Inputs>>,
    shuffle: ShuffleId,
    map: usize,
    at_start: BlockSource,
) -> Result<BlockSource> {
    let Some(updates) = updates else {
        if at_start.address.is_empty() {
            return Err(Error::Plan(format!(
                "map task {map} of shuffle {shuffle} has no output location and nothing will say where it is"
            )));
        }
        return Ok(at_start);
    };
    let told = |updates: &mut tokio::sync::watch::Receiver<Inputs>| {
        updates
            .borrow_and_update()
            .get(&shuffle)
            .and_then(|sources| sources.get(map))
            .filter(|s| !s.address.is_empty())
            .cloned()
    };
    runtime.block_on(async {
        loop {
            if let Some(source) = told(updates) {
                return Ok(source);
            }
            match tokio::time::timeout(UPDATE_SILENCE, updates.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => {
                    return Err(Error::Superseded(format!(
                        "no word from the driver for {} s about map task {map} of shuffle {shuffle}: this attempt was let go (another runs if the task is still wanted)",
                        UPDATE_SILENCE.as_secs()
                    )));
                }
            }
        }
    })
}

/// Opens one map task's block for a reducer: from this worker's disk, from the disk of
/// another worker on this machine, or over Flight.
fn open_block(
    files: &ShuffleFiles,
    local_address: &str,
    runtime: &tokio::runtime::Handle,
    source: &BlockSource,
    block: &BlockId,
) -> Result<BatchStream> {
    if source.address == local_address {
        return files.read_block(block);
    }
    // Another worker on this machine (a laptop cluster): read its file directly, as
    // Spark's host-local shuffle reads do, rather than through its Flight server.
    // Only the machine identity decides: a worker on another machine may have a
    // directory of the same name, holding something else.
    let host_local = ShuffleFiles::new(&source.shuffle_dir);
    let allowed = std::env::var(HOST_LOCAL_VAR).map_or(true, |v| v != "0");
    if allowed
        && !source.machine.is_empty()
        && source.machine == crate::net::machine::identity()
        && !source.shuffle_dir.is_empty()
        && let Ok(stream) = host_local.read_block(block)
    {
        return Ok(stream);
    }
    fetch_block(runtime, &source.address, block)
}

/// Removes a job's shuffle files.
pub fn remove_job(files: &ShuffleFiles, job: &str) {
    let dir = files.job_dir(job);
    if dir.starts_with(&files.root) && dir != files.root {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(values.to_vec())) as _)]).expect("batch")
    }

    fn service(root: &std::path::Path, attempt: u32, runtime: &tokio::runtime::Runtime) -> ClusterShuffle {
        ClusterShuffle::new(
            ShuffleFiles::new(root),
            "job-000001".into(),
            Attempt(attempt),
            "127.0.0.1:1".into(),
            HashMap::new(),
            runtime.handle().clone(),
        )
    }

    fn block(attempt: u32, partition: u32) -> BlockId {
        BlockId {
            job: "job-000001".into(),
            shuffle: ShuffleId(0),
            map: TaskId(0),
            attempt: Attempt(attempt),
            partition: TaskId(partition),
        }
    }

    fn values(files: &ShuffleFiles, block: &BlockId) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for b in files.read_block(block)? {
            let b = b?;
            let column = b.column(0).as_any().downcast_ref::<Int64Array>().expect("int64");
            out.extend((0..column.len()).map(|i| column.value(i)));
        }
        Ok(out)
    }

    #[test]
    fn each_attempt_commits_its_own_output_and_a_reader_gets_the_one_it_names() {
        let dir = tempfile::tempdir().expect("dir");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for (attempt, rows) in [(1, vec![1, 2, 3]), (2, vec![4, 5])] {
            let shuffle = service(dir.path(), attempt, &runtime);
            let mut writer = shuffle.writer(ShuffleId(0), TaskId(0));
            writer.write(0, batch(&rows)).expect("write");
            writer.finish().expect("commit");
        }
        let files = ShuffleFiles::new(dir.path());
        assert_eq!(values(&files, &block(1, 0)).expect("attempt 1"), [1, 2, 3]);
        assert_eq!(values(&files, &block(2, 0)).expect("attempt 2"), [4, 5]);
        // A partition the index does not name is empty, explicitly.
        assert_eq!(
            values(&files, &block(1, 7)).expect("empty partition"),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn a_missing_block_is_a_fetch_failure_never_an_empty_block() {
        let dir = tempfile::tempdir().expect("dir");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let shuffle = service(dir.path(), 1, &runtime);
        let mut writer = shuffle.writer(ShuffleId(0), TaskId(0));
        writer.write(0, batch(&[1, 2])).expect("write");
        writer.finish().expect("commit");
        drop(writer);
        // An attempt that never committed (its writer dropped) has no output here.
        let second = service(dir.path(), 2, &runtime);
        let mut unfinished = second.writer(ShuffleId(0), TaskId(0));
        unfinished.write(0, batch(&[9])).expect("write");
        drop(unfinished);
        let files = ShuffleFiles::new(dir.path());
        assert!(matches!(values(&files, &block(2, 0)), Err(Error::FetchFailed { .. })));
        // A committed output whose file is gone (a wiped disk) is not read as empty.
        let part = dir.path().join("job-000001/shuffle-0/map-0.attempt-1/part-0.arrow");
        std::fs::remove_file(&part).expect("remove");
        assert!(matches!(values(&files, &block(1, 0)), Err(Error::FetchFailed { .. })));
    }

    #[test]
    fn a_reducer_started_before_a_map_output_was_done_waits_until_it_is_told_where_it_is() {
        let dir = tempfile::tempdir().expect("dir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // Two map tasks' outputs, committed here.
        for (map, rows) in [(0u32, vec![1, 2]), (1, vec![3])] {
            let shuffle = service(dir.path(), 1, &runtime);
            let mut writer = shuffle.writer(ShuffleId(0), TaskId(map));
            writer.write(0, batch(&rows)).expect("write");
            writer.finish().expect("commit");
        }
        let here = BlockSource {
            address: "127.0.0.1:1".into(),
            shuffle_dir: String::new(),
            machine: String::new(),
            attempt: Attempt(1),
        };
        let pending = BlockSource {
            address: String::new(),
            attempt: Attempt(0),
            ..here.clone()
        };
        // When the reducer starts, map task 1 is not done: no location.
        let at_start: Inputs = HashMap::from([(ShuffleId(0), vec![here.clone(), pending])]);
        let (tell, updates) = tokio::sync::watch::channel(at_start.clone());
        let reducer = ClusterShuffle::new(
            ShuffleFiles::new(dir.path()),
            "job-000001".into(),
            Attempt(1),
            "127.0.0.1:1".into(),
            at_start,
            runtime.handle().clone(),
        )
        .with_updates(updates);
        let told = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            tell.send_replace(HashMap::from([(ShuffleId(0), vec![here.clone(), here])]));
            tell
        });
        let started = std::time::Instant::now();
        let mut read = Vec::new();
        for b in reducer.read(ShuffleId(0), TaskId(0)).expect("read") {
            let b = b.expect("block");
            let column = b.column(0).as_any().downcast_ref::<Int64Array>().expect("int64");
            read.extend((0..column.len()).map(|i| column.value(i)));
        }
        assert_eq!(read, [1, 2, 3], "map outputs in map order, the late one included");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(150),
            "read map task 1's output before being told where it was"
        );
        // The driver goes silent for good (the executor drops the attempt's channel):
        // a reducer still waiting ends as stopped, not with a partial input.
        drop(told.join().expect("teller"));
        let (tell, updates) = tokio::sync::watch::channel(HashMap::from([(
            ShuffleId(0),
            vec![BlockSource {
                address: String::new(),
                shuffle_dir: String::new(),
                machine: String::new(),
                attempt: Attempt(0),
            }],
        )]));
        let waiting = service(dir.path(), 1, &runtime).with_updates(updates);
        let waiting = ClusterShuffle {
            inputs: tell.borrow().clone(),
            ..waiting
        };
        drop(tell);
        let outcome: Vec<_> = waiting.read(ShuffleId(0), TaskId(0)).expect("read").collect();
        assert!(matches!(outcome.as_slice(), [Err(Error::Stopped)]), "{outcome:?}");
    }
}
