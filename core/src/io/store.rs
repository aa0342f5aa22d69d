//! Stored datasets on workers: names and `ringleader://NAME` URLs, formats, where a
//! partition's file lives, and moving partitions between processes with Arrow Flight.
//!
//! A dataset's partitions are written under a fresh *generation* (a directory of its own,
//! `{datasets}/{name}/{generation}/part-{p}.arrow`), and the driver's state names the one
//! generation that is committed. Replacing a dataset writes a new generation beside the old
//! one, so readers never see a half-written dataset, and workers delete the generations
//! the driver no longer lists (a failed job's, a removed dataset's).

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_flight::FlightDescriptor;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::Attempt;
use crate::io::writeback::WritebackFile;
use crate::net::ticket::PartitionId;

/// Batches in flight between a reader and a writer of a stream: the memory a transfer
/// holds is about this many batches.
pub const READ_AHEAD: usize = 4;

/// Names of stored datasets that hold a program's cached partitions start with this.
pub const CACHE_PREFIX: &str = "cache-";

/// The stored dataset holding cache `id` of the program `session`.
pub fn cache_dataset(session: &str, id: u64) -> String {
    program_dataset(CACHE_PREFIX, session, id)
}

/// The name of a dataset of the program `session` that lives as long as it does (see
/// [`program_session`]): `PREFIX` `SESSION-ID`.
fn program_dataset(prefix: &str, session: &str, id: u64) -> String {
    format!("{prefix}{session}-{id}")
}

/// Names of stored datasets that hold a program's broadcast values start with this.
pub const BROADCAST_PREFIX: &str = "broadcast-";

/// The stored dataset holding broadcast `id` of the program `session`.
pub fn broadcast_dataset(session: &str, id: u64) -> String {
    program_dataset(BROADCAST_PREFIX, session, id)
}

/// Names of stored datasets a program passes data through (inputs its workers cannot see,
/// outputs fetched from workers on other machines) start with this.
pub const TEMPORARY_PREFIX: &str = "tmp-";

/// The temporary dataset `id` of the program `session`.
pub fn temporary_dataset(session: &str, id: u64) -> String {
    program_dataset(TEMPORARY_PREFIX, session, id)
}

/// The program a dataset belongs to, for one that lives only as long as its program (a
/// cache, a broadcast value or a temporary dataset): its session id.
pub fn program_session(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix(CACHE_PREFIX)
        .or_else(|| name.strip_prefix(BROADCAST_PREFIX))
        .or_else(|| name.strip_prefix(TEMPORARY_PREFIX))?;
    let (session, id) = rest.rsplit_once('-')?;
    (!session.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(session)
}

/// How often a running program tells the driver group it is alive.
pub const SESSION_PING: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the leader keeps a program's caches and broadcasts after its last sign of life
/// (a program killed before it could remove them): a minute, or
/// [`crate::fault_injection::SESSION_EXPIRY_MS`].
pub fn session_expiry() -> std::time::Duration {
    crate::fault_injection::millis(crate::fault_injection::SESSION_EXPIRY_MS)
        .unwrap_or(std::time::Duration::from_secs(60))
}

/// How a stored dataset is written and addressed in job arguments.
pub const URL_SCHEME: &str = "ringleader://";

/// A stored dataset a job writes (`ringleader://NAME` as an output).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreSpec {
    /// The dataset's name.
    pub dataset: String,
    /// The generation the job's tasks write (see [`crate::io::store`]).
    pub generation: String,
    /// What its rows are.
    pub format: DatasetFormat,
    /// Copies of each partition.
    pub replicas: u32,
    /// Whether it may replace a dataset of that name.
    pub overwrite: bool,
    /// Per partition, the workers (addresses) to write it to, ring owners first: a task
    /// writes the first `replicas` of them that accept it, itself first when it is one.
    pub owners: Vec<Vec<String>>,
}

/// What the rows of a stored dataset are, so the next job reads them typed (also how
/// `ringleader put --format` reads its input files; a job's output files have
/// [`crate::io::output_format::OutputFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum DatasetFormat {
    /// Lines of text (read back as `String` rows: `text_files`, `save_text`).
    Text,
    /// 100-byte gensort records (read back as `Record`: `record_files`, `save_records`).
    Records,
    /// Arrow IPC files (read back column by column into the row type: `arrow_files`, `save_arrow`).
    Arrow,
}

impl DatasetFormat {
    /// Its name in listings and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::Text => "text",
            DatasetFormat::Records => "records",
            DatasetFormat::Arrow => "arrow",
        }
    }

    /// Parses [`DatasetFormat::name`].
    pub fn parse(name: &str) -> Option<DatasetFormat> {
        match name {
            "text" => Some(DatasetFormat::Text),
            "records" => Some(DatasetFormat::Records),
            "arrow" => Some(DatasetFormat::Arrow),
            _ => None,
        }
    }
}

/// The dataset a `ringleader://NAME` path names: `None` for any other path, an error for
/// a malformed URL.
pub fn parse_url(path: &Path) -> Option<Result<String>> {
    let text = path.to_str()?;
    let name = text.strip_prefix(URL_SCHEME)?;
    let name = name.strip_suffix('/').unwrap_or(name);
    Some(if crate::ids::valid_dataset_name(name) {
        Ok(name.to_string())
    } else {
        Err(Error::Config(format!(
            "{text:?} is not a dataset URL: expected {URL_SCHEME}NAME, NAME of letters, digits, - and _ (at most 64)"
        )))
    })
}

/// A fresh generation id (unique per write of a dataset).
pub fn new_generation() -> String {
    format!("g{}", &crate::net::machine::unique_id()[..16])
}

impl PartitionId {
    /// Where this partition lives under a worker's datasets directory:
    /// `{root}/{dataset}/{generation}/part-{partition}.arrow`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(&self.dataset)
            .join(&self.generation)
            .join(format!("part-{}.arrow", self.partition))
    }
}

/// Streams `batches` (of `schema`) into partition `id` on the worker at `address` (Flight
/// `do_put`); the worker writes as it receives and renames the file into place at the end.
pub async fn put_partition(
    address: &str,
    id: &PartitionId,
    fence: Fence,
    schema: arrow_schema::SchemaRef,
    batches: futures::stream::BoxStream<'static, Result<RecordBatch>>,
) -> Result<()> {
    let mut client = crate::net::flight::client(address).await?;
    client
        .add_header(FENCE_HEADER, &fence.header())
        .map_err(|e| Error::Cluster(format!("storing {} partition {}: {e}", id.dataset, id.partition)))?;
    put_partition_with(client, address, id, schema, batches).await
}

/// [`put_partition`] over a client already connected to the worker at `address`.
pub async fn put_partition_with(
    mut client: arrow_flight::FlightClient,
    address: &str,
    id: &PartitionId,
    schema: arrow_schema::SchemaRef,
    batches: futures::stream::BoxStream<'static, Result<RecordBatch>>,
) -> Result<()> {
    let failed = |message: String| Error::FetchFailed {
        location: address.to_string(),
        message: format!("storing {} partition {}: {message}", id.dataset, id.partition),
    };
    // An executor shows the grant its worker gave it for its job's output.
    if let Ok(grant) = std::env::var(crate::net::executor_env::STORE_GRANT) {
        client
            .add_header(crate::security::auth::STORE_GRANT_HEADER, &grant)
            .map_err(|e| failed(e.to_string()))?;
    }
    let descriptor = FlightDescriptor::new_path(id.descriptor());
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .with_schema(schema)
        .build(batches.map(|b| b.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)))));
    // A holder that refuses the copy as stale answers `aborted`.
    let refused = |e: arrow_flight::error::FlightError| match &e {
        arrow_flight::error::FlightError::Tonic(status) if status.code() == tonic::Code::Aborted => {
            Error::Superseded(format!(
                "{address} refused partition {} of {}: {}",
                id.partition,
                id.dataset,
                status.message()
            ))
        }
        _ => failed(e.to_string()),
    };
    let mut results = client.do_put(data).await.map_err(refused)?;
    while let Some(r) = results.next().await {
        r.map_err(refused)?;
    }
    Ok(())
}

/// Streams partition `id` from the worker at `address` (Flight `do_get`). The stream
/// knows the partition's schema once its first message arrived (also when it has no rows).
pub async fn get_partition(address: &str, id: &PartitionId) -> Result<FlightRecordBatchStream> {
    crate::net::flight::fetch(
        address,
        crate::net::ticket::FlightTicket::Partition(id.clone()).encode(),
    )
    .await
}

/// Writes decoded Flight data into an Arrow IPC file at `path` as it arrives, on a blocking
/// thread at most [`READ_AHEAD`] batches behind (see [`write_ipc_file`]: the file appears
/// whole or not at all). A stream without rows writes an empty file of its schema. Errors
/// in the data are [`Error::Format`] naming `from`.
pub async fn write_flight(
    path: PathBuf,
    fence: Option<Fence>,
    mut stream: FlightRecordBatchStream,
    from: &str,
) -> Result<(u64, u64)> {
    let bad = |e: arrow_flight::error::FlightError| Error::format(from, e);
    // The schema message comes first: known once the first item is in.
    let first = stream.next().await.map(|b| b.map_err(bad));
    let schema = stream.schema().cloned();
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let writer = tokio::task::spawn_blocking(move || {
        write_ipc_file_fenced(&path, fence, || schema, std::iter::from_fn(|| rx.blocking_recv()))
    });
    let mut next = first;
    while let Some(batch) = next {
        let stop = batch.is_err();
        // A closed channel means the writer failed; its error is returned below.
        if tx.send(batch).await.is_err() || stop {
            break;
        }
        next = stream.next().await.map(|b| b.map_err(bad));
    }
    drop(tx);
    writer
        .await
        .map_err(|e| Error::Cluster(format!("writing {from}: {e}")))?
}

/// An Arrow IPC file's schema, and its batches read one at a time.
pub fn read_ipc_file(
    path: &Path,
) -> Result<(
    arrow_schema::SchemaRef,
    impl Iterator<Item = Result<RecordBatch>> + Send + 'static + use<>,
)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::with_capacity(1 << 20, file), None)
        .map_err(|e| Error::format(path, e))?;
    let name = path.to_path_buf();
    Ok((
        reader.schema(),
        reader.map(move |b| b.map_err(|e| Error::format(&name, e))),
    ))
}

/// The gRPC/Flight header carrying a write's [`Fence`] to the holder (`TERM.GRANT`).
pub const FENCE_HEADER: &str = "ringleader-fence";

/// Orders the writers of one stored partition: a holder places a copy only if no copy with
/// a greater fence is in place (a stale attempt never replaces a later one's copy). A task
/// attempt's fence is the driver's term when it granted the attempt the commit, and the
/// grant's number among the task's grants (counted in the replicated state, so a later grant
/// is always greater, whichever attempt numbers the two attempts have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fence {
    /// The leader's term when the commit was granted.
    pub term: u64,
    /// The grant's number among its task's grants.
    pub grant: u32,
}

impl Fence {
    /// A `put`'s upload: any task attempt's copy is later; a retried upload replaces it.
    pub const UPLOAD: Fence = Fence { term: 0, grant: 0 };
    /// A copy of a committed partition (repair, or an upload's copy to a replacement owner):
    /// nothing replaces it.
    pub const COPY: Fence = Fence {
        term: u64::MAX,
        grant: u32::MAX,
    };

    /// As the [`FENCE_HEADER`] carries it.
    pub fn header(self) -> String {
        format!("{}.{}", self.term, self.grant)
    }

    /// From the [`FENCE_HEADER`]'s text.
    pub fn parse(text: &str) -> Option<Fence> {
        let (term, grant) = text.trim().split_once('.')?;
        Some(Fence {
            term: term.parse().ok()?,
            grant: grant.parse().ok()?,
        })
    }

    /// Whose copy this fence marks, for messages.
    fn describe(self) -> String {
        match self {
            Fence::UPLOAD => "an upload".into(),
            Fence::COPY => "a copy of the committed partition".into(),
            Fence { term, grant } => format!("commit grant {grant} (term {term})"),
        }
    }
}

/// Where the fence of the copy at `path` is kept: `part-P.fence` beside `part-P.arrow`.
pub fn fence_path(path: &Path) -> PathBuf {
    path.with_extension("fence")
}

/// The fence file's text: fixed width, so one small write at its start replaces it whole.
fn fence_record(fence: Fence) -> String {
    format!("{:020}.{:010}\n", fence.term, fence.grant)
}

/// Renames `temp` to `path` unless the copy there has a greater fence than `fence`,
/// recording `fence` first (a crash between the two leaves a fence at least as great as the
/// copy's, so no older writer gets in); all under an exclusive lock of the fence file, so
/// two writers (an executor placing its own copy, the worker receiving one) never
/// interleave.
fn place_fenced(temp: &Path, path: &Path, fence: Fence) -> Result<()> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let fence_file = fence_path(path);
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&fence_file)
        .map_err(|e| Error::io(&fence_file, e))?;
    // SAFETY: flock on a descriptor this function owns; released when `file` closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(&fence_file, std::io::Error::last_os_error()));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| Error::io(&fence_file, e))?;
    if let Some(existing) = Fence::parse(&text).filter(|existing| *existing > fence)
        && path.exists()
    {
        return Err(Error::Superseded(format!(
            "{} holds the copy of {}, later than {}",
            path.display(),
            existing.describe(),
            fence.describe()
        )));
    }
    file.write_all_at(fence_record(fence).as_bytes(), 0)
        .map_err(|e| Error::io(&fence_file, e))?;
    if crate::io::writeback::durable() {
        file.sync_all().map_err(|e| Error::io(&fence_file, e))?;
    }
    std::fs::rename(temp, path).map_err(|e| Error::io(path, e))
}

/// A temporary name beside `path` that no other writer uses: this process's id and a number
/// it hands out once (two writers of one partition in one process never share a file).
fn unique_temp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("tmp-{}-{n}", std::process::id()))
}

/// Writes batches into an Arrow IPC file at `path` as they come: under a temporary name,
/// renamed into place only once all were written (a partial file is never visible) and
/// synced. Returns rows and bytes written. An empty stream writes a file with the schema
/// `empty` returns once the stream ended.
pub fn write_ipc_file(
    path: &Path,
    empty: impl FnOnce() -> Option<arrow_schema::SchemaRef>,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<(u64, u64)> {
    write_ipc_file_fenced(path, None, empty, batches)
}

/// [`write_ipc_file`] of a stored partition's copy: placed only if the copy at `path` has
/// no greater [`Fence`] (`None`: any file, placed unconditionally).
pub fn write_ipc_file_fenced(
    path: &Path,
    fence: Option<Fence>,
    empty: impl FnOnce() -> Option<arrow_schema::SchemaRef>,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<(u64, u64)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let temp = unique_temp(path);
    let result = (|| {
        let mut writer: Option<arrow_ipc::writer::FileWriter<std::io::BufWriter<WritebackFile>>> = None;
        let open = |schema: &arrow_schema::Schema| -> Result<_> {
            let file = std::fs::File::create(&temp).map_err(|e| Error::io(&temp, e))?;
            Ok(arrow_ipc::writer::FileWriter::try_new(
                std::io::BufWriter::with_capacity(1 << 20, WritebackFile::new(file)),
                schema,
            )?)
        };
        let (mut rows, mut bytes) = (0u64, 0u64);
        for batch in batches {
            let batch = batch?;
            if writer.is_none() {
                writer = Some(open(batch.schema().as_ref())?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch)?;
            }
            rows += batch.num_rows() as u64;
            bytes += batch.get_array_memory_size() as u64;
        }
        let mut writer = match (writer, empty()) {
            (Some(w), _) => w,
            (None, Some(schema)) => open(schema.as_ref())?,
            (None, None) => {
                return Err(Error::Plan(format!(
                    "{}: an empty partition needs a schema",
                    path.display()
                )));
            }
        };
        writer.finish()?;
        let file = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| Error::io(&temp, e.into_error()))?
            .into_inner();
        if crate::io::writeback::durable() {
            file.sync_all().map_err(|e| Error::io(&temp, e))?;
        }
        Ok((rows, bytes))
    })();
    match result {
        Ok(counts) => {
            let placed = match fence {
                Some(fence) => place_fenced(&temp, path, fence),
                None => std::fs::rename(&temp, path).map_err(|e| Error::io(path, e)),
            };
            if let Err(e) = placed {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            if let Some(parent) = path.parent().filter(|_| crate::io::writeback::durable()) {
                crate::io::output::sync_dir(parent)?;
            }
            Ok(counts)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Asks whoever runs this executor whether `attempt` of task `partition` of `stage` may
/// place its stored partition: the [`Fence`] its copies carry, or why not
/// ([`Error::Superseded`]: another attempt owns it).
pub type CommitGate = Box<dyn Fn(crate::ids::StageId, u32, Attempt) -> Result<Fence> + Send + Sync>;

static COMMIT_GATE: std::sync::OnceLock<CommitGate> = std::sync::OnceLock::new();

/// Sets this executor's [`CommitGate`] (once; later calls change nothing).
pub fn set_commit_gate(gate: CommitGate) {
    let _ = COMMIT_GATE.set(gate);
}

/// The fence of `attempt`, granted by the [`CommitGate`]; without one (a test running a
/// store action outside an executor), the attempt's own number in term 0.
fn granted_fence(stage: crate::ids::StageId, partition: u32, attempt: Attempt) -> Result<Fence> {
    match COMMIT_GATE.get() {
        Some(gate) => gate(stage, partition, attempt),
        None => Ok(Fence {
            term: 0,
            grant: attempt.0,
        }),
    }
}

/// Writes one task's partition of a stored dataset (in an executor): first to a staged file
/// under this worker's datasets directory; then, once the driver granted this attempt the
/// commit (see [`CommitGate`]), to the next owners until `spec.replicas` workers hold it,
/// and into place here when this worker is an owner, every copy fenced by the grant.
/// Returns rows, bytes and the holders' addresses; fewer than `replicas` reachable owners
/// is an error (retryable); a refused grant or a holder with a newer attempt's copy is
/// [`Error::Superseded`].
pub fn write_partition(
    spec: &StoreSpec,
    stage: crate::ids::StageId,
    partition: u32,
    attempt: Attempt,
    schema: arrow_schema::SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<(u64, u64, Vec<String>)> {
    let root = PathBuf::from(std::env::var(crate::net::executor_env::DATASET_DIR).map_err(|_| {
        Error::Config(format!(
            "{} is not set: stored datasets are written by cluster executors",
            crate::net::executor_env::DATASET_DIR
        ))
    })?);
    let me = std::env::var(crate::net::executor_env::EXECUTOR).unwrap_or_default();
    let candidates = spec
        .owners
        .get(partition as usize)
        .ok_or_else(|| Error::Plan(format!("no owners for partition {partition} of {}", spec.dataset)))?;
    let id = PartitionId {
        dataset: spec.dataset.clone(),
        generation: spec.generation.clone(),
        partition,
    };
    let local_owner = !me.is_empty() && candidates.contains(&me);
    // Staged beside where the partition goes: the one place under the datasets directory
    // this job's executor may write.
    let staged = root
        .join(&id.dataset)
        .join(&id.generation)
        .join(format!(".outgoing-{partition}-{attempt}-{}.arrow", std::process::id()));
    let (rows, bytes) = write_ipc_file(&staged, || Some(schema), batches)?;
    let placed = granted_fence(stage, partition, attempt)
        .and_then(|fence| place_copies(&id, &root, &staged, fence, candidates, &me, local_owner, spec.replicas));
    let _ = std::fs::remove_file(&staged);
    placed.map(|holders| (rows, bytes, holders))
}

/// Sends the staged copy to the other owners until `replicas` hold it (a holder with a
/// newer attempt's copy ends it: this attempt is stale), then moves it into place here if
/// this worker is an owner. Returns the holders.
#[allow(clippy::too_many_arguments)]
fn place_copies(
    id: &PartitionId,
    root: &Path,
    staged: &Path,
    fence: Fence,
    candidates: &[String],
    me: &str,
    local_owner: bool,
    replicas: u32,
) -> Result<Vec<String>> {
    let wanted_remote = replicas.saturating_sub(u32::from(local_owner));
    let mut holders = Vec::new();
    let mut failures = Vec::new();
    if wanted_remote > 0 && candidates.iter().any(|a| a != me) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Cluster(format!("cannot start a runtime to store {}: {e}", id.dataset)))?;
        for address in candidates.iter().filter(|a| *a != me) {
            if holders.len() as u32 >= wanted_remote {
                break;
            }
            let sent = read_ipc_file(staged).and_then(|(schema, batches)| {
                runtime.block_on(put_partition(
                    address,
                    id,
                    fence,
                    schema,
                    futures::stream::iter(batches).boxed(),
                ))
            });
            match sent {
                Ok(()) => holders.push(address.clone()),
                Err(e @ Error::Superseded(_)) => return Err(e),
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
    }
    if local_owner {
        let path = id.path(root);
        // A hard link keeps the staged file for the caller to remove (one name, one rename).
        let temp = unique_temp(&path);
        std::fs::hard_link(staged, &temp).map_err(|e| Error::io(&temp, e))?;
        place_fenced(&temp, &path, fence).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })?;
        if let Some(parent) = path.parent().filter(|_| crate::io::writeback::durable()) {
            crate::io::output::sync_dir(parent)?;
        }
        holders.insert(0, me.to_string());
    }
    if (holders.len() as u32) < replicas {
        return Err(Error::Unreachable {
            what: format!("storing dataset {} partition {}", id.dataset, id.partition),
            message: format!(
                "{} of {} replicas written; the others failed: {}",
                holders.len(),
                replicas,
                failures.join("; ")
            ),
        });
    }
    Ok(holders)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_programs_own_datasets_name_its_session_and_no_other_does() {
        let session = crate::net::machine::unique_id();
        assert_eq!(program_session(&cache_dataset(&session, 7)), Some(session.as_str()));
        assert_eq!(
            program_session(&broadcast_dataset(&session, 12)),
            Some(session.as_str())
        );
        assert_eq!(program_session(&temporary_dataset(&session, 3)), Some(session.as_str()));
        for other in ["words", "cache-", "cache-x-y", "broadcast-7", "tmp-3", "cached-x-1"] {
            assert_eq!(program_session(other), None, "{other}");
        }
    }

    use super::*;

    #[test]
    fn two_writers_of_one_partition_at_once_leave_one_whole_copy() {
        use arrow_array::Int64Array;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("part-0.arrow");
        let batch = |v: i64| {
            RecordBatch::try_from_iter([("v", std::sync::Arc::new(Int64Array::from(vec![v; 4096])) as _)])
                .expect("batch")
        };
        // Two writers in one process (two attempts in one executor, or a worker's do_put
        // beside a copy), each writing many batches of its own value, at the same time.
        std::thread::scope(|s| {
            for v in [1i64, 2] {
                let (path, batch) = (&path, &batch);
                s.spawn(move || {
                    for _ in 0..20 {
                        write_ipc_file(path, || None, (0..32).map(|_| Ok(batch(v)))).expect("write");
                    }
                });
            }
        });
        let (_, batches) = read_ipc_file(&path).expect("a whole file");
        let values: Vec<i64> = batches
            .flat_map(|b| {
                let b = b.expect("batch");
                let column = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64")
                    .clone();
                column.values().to_vec()
            })
            .collect();
        assert_eq!(values.len(), 32 * 4096, "one writer's rows, all of them");
        assert!(
            values.iter().all(|v| *v == values[0]),
            "rows of two writers in one file"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "temporary files left: {left:?}");
    }

    #[test]
    fn urls_name_datasets_and_malformed_ones_are_errors() {
        assert_eq!(
            parse_url(Path::new("ringleader://words")).map(|r| r.ok()),
            Some(Some("words".into()))
        );
        assert_eq!(
            parse_url(Path::new("ringleader://words/")).map(|r| r.ok()),
            Some(Some("words".into()))
        );
        assert!(parse_url(Path::new("data/words")).is_none());
        for bad in [
            "ringleader://",
            "ringleader://a/b",
            "ringleader://../x",
            "ringleader://a b",
        ] {
            assert!(matches!(parse_url(Path::new(bad)), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn partition_ids_refuse_paths_outside_the_datasets_directory() {
        let id = PartitionId::from_parts(&["words", "g1", "3"]).expect("valid");
        assert_eq!(
            (id.dataset.as_str(), id.generation.as_str(), id.partition),
            ("words", "g1", 3)
        );
        assert!(PartitionId::from_parts(&["..", "g1", "3"]).is_err());
        assert!(PartitionId::from_parts(&["w", "../g", "3"]).is_err());
        assert!(PartitionId::from_parts(&["w", "g", "x"]).is_err());
        assert!(PartitionId::from_parts(&["w", "g"]).is_err());
    }

    #[test]
    fn a_stale_attempts_copy_never_replaces_a_newer_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d/g/part-0.arrow");
        let write = |values: &[i64], fence: Fence| {
            let batch = crate::data::encode(values).expect("encode");
            write_ipc_file_fenced(&path, Some(fence), || None, vec![Ok(batch)])
        };
        let read = || -> Vec<i64> {
            let (_, batches) = read_ipc_file(&path).expect("read");
            batches
                .flat_map(|b| {
                    crate::data::Chunk::Arrow(b.expect("batch"))
                        .into_rows::<i64>()
                        .expect("rows")
                })
                .collect()
        };
        let (old, new) = (Fence { term: 2, grant: 3 }, Fence { term: 2, grant: 4 });
        write(&[1], Fence::UPLOAD).expect("an upload");
        write(&[4], new).expect("a newer attempt replaces an upload");
        let refused = write(&[3], old).expect_err("a stale attempt");
        assert!(matches!(refused, Error::Superseded(_)), "{refused}");
        assert_eq!(read(), vec![4]);
        // The same attempt again (a retried send) replaces its own copy; a copy of the
        // committed partition can be replaced by nothing.
        write(&[44], new).expect("the same attempt");
        assert_eq!(read(), vec![44]);
        write(&[9], Fence::COPY).expect("a repair copy");
        assert!(write(&[5], Fence { term: 9, grant: 9 }).is_err());
        assert_eq!(read(), vec![9]);
        // Nothing but the partition and its fence is left.
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("d/g"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["part-0.arrow", "part-0.fence"]);
        assert_eq!(
            Fence::parse(&Fence { term: 7, grant: 2 }.header()),
            Some(Fence { term: 7, grant: 2 })
        );
        assert_eq!(Fence::parse("7"), None);
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/part-0.arrow");
        let batch = crate::data::encode(&[1i64, 2, 3]).expect("encode");
        let err = write_ipc_file(&path, || None, vec![Ok(batch), Err(Error::Plan("broken".into()))]);
        assert!(err.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path().join("a")).expect("dir").count(), 0);
    }
}
