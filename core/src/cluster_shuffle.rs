//! Shuffle across processes. A map task writes one Arrow IPC file per reduce partition
//! under its worker's directory (into a temporary directory, renamed when the task
//! succeeds, so a half-written output is never read). A reducer reads each map task's file
//! directly when it is local, and with Arrow Flight `do_get` from the worker daemon that
//! holds it otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use arrow_flight::{FlightClient, Ticket};
use futures::StreamExt;

use crate::data::{BatchStream, Chunk};
use crate::error::{Error, Result};
use crate::shuffle::{BlockWriter, ShuffleService};

/// Where a worker keeps shuffle files: `{root}/{job}/shuffle-{s}/map-{m}/part-{p}.arrow`.
#[derive(Debug, Clone)]
pub struct ShuffleFiles {
    root: PathBuf,
}

/// One block's coordinates, as a Flight ticket carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockId {
    /// The job.
    pub job: String,
    /// The shuffle within the job.
    pub shuffle: u32,
    /// The map task that wrote it.
    pub map: u32,
    /// The reduce partition.
    pub partition: u32,
}

impl BlockId {
    /// The Flight ticket naming this block.
    pub fn ticket(&self) -> String {
        format!("{}/{}/{}/{}", self.job, self.shuffle, self.map, self.partition)
    }

    /// Parses a ticket; rejects anything that could name a path outside the shuffle root.
    pub fn parse(ticket: &[u8]) -> Result<BlockId> {
        let bad = || {
            Error::Plan(format!(
                "malformed shuffle ticket {:?}",
                String::from_utf8_lossy(ticket)
            ))
        };
        let text = std::str::from_utf8(ticket).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split('/').collect();
        let [job, shuffle, map, partition] = parts[..] else {
            return Err(bad());
        };
        if !valid_job_id(job) {
            return Err(bad());
        }
        Ok(BlockId {
            job: job.to_string(),
            shuffle: shuffle.parse().map_err(|_| bad())?,
            map: map.parse().map_err(|_| bad())?,
            partition: partition.parse().map_err(|_| bad())?,
        })
    }
}

/// Whether `id` is a job id (letters, digits, `-`, `_`), safe to use as a directory name.
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ShuffleFiles {
    /// Shuffle files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> ShuffleFiles {
        ShuffleFiles { root: root.into() }
    }

    /// The directory of a job's shuffle files.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.root.join(job)
    }

    fn map_dir(&self, job: &str, shuffle: u32, map: u32) -> PathBuf {
        self.job_dir(job)
            .join(format!("shuffle-{shuffle}"))
            .join(format!("map-{map}"))
    }

    /// The file holding a block; `None` if its map task's output is not (or no longer) here.
    pub fn block_path(&self, block: &BlockId) -> Option<PathBuf> {
        let dir = self.map_dir(&block.job, block.shuffle, block.map);
        dir.is_dir()
            .then(|| dir.join(format!("part-{}.arrow", block.partition)))
    }

    /// Reads a block: no file in an existing map directory is an empty block.
    pub fn read_block(&self, block: &BlockId) -> Result<BatchStream> {
        let path = self.block_path(block).ok_or_else(|| Error::FetchFailed {
            location: self.root.display().to_string(),
            message: format!("no output of map task {} of shuffle {} here", block.map, block.shuffle),
        })?;
        if !path.exists() {
            return Ok(Box::new(std::iter::empty()));
        }
        // Memory-mapped and decoded in place: no copy between the page cache and the reducer.
        let chunks = crate::source::ipc::open(&path, 0, usize::MAX, None)?;
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
        for (_, mut w) in std::mem::take(&mut self.writers) {
            w.finish()?;
        }
        std::fs::create_dir_all(&self.temp_dir).map_err(|e| Error::io(&self.temp_dir, e))?;
        if self.final_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.final_dir);
        }
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
    /// That worker's machine identity ([`crate::machine`]).
    pub machine: String,
}

/// The shuffle service of one task running in a cluster executor.
pub struct ClusterShuffle {
    files: ShuffleFiles,
    job: String,
    attempt: u32,
    /// This worker's address: blocks located here are read from disk.
    local_address: String,
    /// Shuffle -> where each map task's output is, by map task index.
    inputs: HashMap<u32, Vec<BlockSource>>,
    runtime: tokio::runtime::Handle,
}

impl ClusterShuffle {
    /// A task's shuffle service.
    pub fn new(
        files: ShuffleFiles,
        job: String,
        attempt: u32,
        local_address: String,
        inputs: HashMap<u32, Vec<BlockSource>>,
        runtime: tokio::runtime::Handle,
    ) -> ClusterShuffle {
        ClusterShuffle {
            files,
            job,
            attempt,
            local_address,
            inputs,
            runtime,
        }
    }
}

/// Streams one block from the worker at `address` with Flight `do_get`.
pub fn fetch_block(runtime: &tokio::runtime::Handle, address: &str, block: &BlockId) -> Result<BatchStream> {
    fetch_ticket(runtime, address, block.ticket())
}

/// A Flight client of the worker at `address`, carrying the cluster token. Its channel
/// bounds every wait (see [`crate::tls::endpoint`]).
pub async fn flight_client(address: &str) -> Result<FlightClient> {
    let failed = |message: String| Error::FetchFailed {
        location: address.to_string(),
        message,
    };
    let channel = crate::tls::endpoint(address)
        .map_err(failed)?
        .connect()
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let mut client = FlightClient::new(channel);
    crate::auth::add_token(client.metadata_mut()).map_err(|e| failed(e.to_string()))?;
    Ok(client)
}

/// Streams the batches Flight `do_get` returns for `ticket` from the worker at `address`.
pub fn fetch_ticket(runtime: &tokio::runtime::Handle, address: &str, ticket: String) -> Result<BatchStream> {
    let mut stream = runtime.block_on(async {
        flight_client(address)
            .await?
            .do_get(Ticket::new(ticket))
            .await
            .map_err(|e| Error::FetchFailed {
                location: address.to_string(),
                message: e.to_string(),
            })
    })?;
    let runtime = runtime.clone();
    let address = address.to_string();
    Ok(Box::new(std::iter::from_fn(move || {
        runtime.block_on(stream.next()).map(|r| {
            r.map_err(|e| Error::FetchFailed {
                location: address.clone(),
                message: e.to_string(),
            })
        })
    })))
}

impl ShuffleService for ClusterShuffle {
    fn writer(&self, shuffle: u32, map_task: u32) -> Box<dyn BlockWriter + '_> {
        let final_dir = self.files.map_dir(&self.job, shuffle, map_task);
        let temp_dir = final_dir.with_file_name(format!("map-{map_task}.attempt-{}.tmp", self.attempt));
        Box::new(FileBlockWriter {
            final_dir,
            temp_dir,
            writers: BTreeMap::new(),
        })
    }

    fn read(&self, shuffle: u32, partition: u32) -> Result<BatchStream> {
        let sources = self
            .inputs
            .get(&shuffle)
            .ok_or_else(|| Error::Plan(format!("no locations for shuffle {shuffle}")))?
            .clone();
        let mut streams: Vec<BatchStream> = Vec::with_capacity(sources.len());
        for (map, source) in sources.iter().enumerate() {
            let block = BlockId {
                job: self.job.clone(),
                shuffle,
                map: map as u32,
                partition,
            };
            if source.address == self.local_address {
                streams.push(self.files.read_block(&block)?);
                continue;
            }
            // Another worker on this machine (a laptop cluster): read its file directly, as
            // Spark's host-local shuffle reads do, rather than through its Flight server.
            // Only the machine identity decides: a worker on another machine may have a
            // directory of the same name, holding something else.
            let host_local = ShuffleFiles::new(&source.shuffle_dir);
            let allowed = std::env::var(HOST_LOCAL_VAR).map_or(true, |v| v != "0");
            if allowed
                && !source.machine.is_empty()
                && source.machine == crate::machine::identity()
                && !source.shuffle_dir.is_empty()
                && host_local.block_path(&block).is_some()
                && let Ok(stream) = host_local.read_block(&block)
            {
                streams.push(stream);
                continue;
            }
            streams.push(fetch_block(&self.runtime, &source.address, &block)?);
        }
        Ok(Box::new(streams.into_iter().flatten()))
    }
}

/// Removes a job's shuffle files.
pub fn remove_job(files: &ShuffleFiles, job: &str) {
    let dir = files.job_dir(job);
    if dir.starts_with(&files.root) && dir != files.root {
        let _ = std::fs::remove_dir_all(dir);
    }
}
