//! Moving datasets between a client's files and the cluster, streamed in bounded memory:
//! [`put`] reads local files batch by batch and sends each partition to its ring owners as
//! it goes; [`get`] streams each partition from a worker holding it into `part-*` files.
//! `ringleader put`/`get` use them, and so does a job whose local input or output must
//! travel because the workers cannot see the client's files.

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::StreamExt;
use ringleader_core::data::Chunk;
use ringleader_core::data::record::{RECORD_LEN, Record};
use ringleader_core::fault_injection;
use ringleader_core::io::output::{OutputCommit, part_name};
use ringleader_core::io::source::{self, Split, list_files};
use ringleader_core::io::store::{DatasetFormat, READ_AHEAD, put_partition_with};
use ringleader_core::net::driver_group::DriverGroup;
use ringleader_core::net::ticket::PartitionId;
use ringleader_core::proto;
use ringleader_core::{Error, Result};
use tokio_stream::wrappers::ReceiverStream;

/// What to store: the input files and their format.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// The dataset's name.
    pub name: String,
    /// Files or directories to read.
    pub paths: Vec<PathBuf>,
    /// How to read them (`None`: by each file's extension).
    pub format: Option<DatasetFormat>,
    /// Arrow inputs only: keep just this column (by name).
    pub column: Option<String>,
    /// Instead of `paths`: splits of the job's own typed sources (CSV, Parquet), read here
    /// as Arrow batches and stored as an Arrow dataset, each with its share of the input
    /// bytes (which places it).
    pub splits: Vec<(Split, u64)>,
    /// Number of partitions.
    pub partitions: u32,
    /// Copies of each partition.
    pub replicas: u32,
    /// Replace a dataset of that name.
    pub overwrite: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl PutRequest {
    /// Splits of a job's own typed sources (read here as Arrow batches, each with its share
    /// of the input bytes), to store as a temporary Arrow dataset: name, partitions and
    /// replicas are filled in when it is uploaded.
    pub(crate) fn of_splits(splits: Vec<(Split, u64)>, progress: bool) -> PutRequest {
        PutRequest {
            name: String::new(),
            paths: Vec::new(),
            format: Some(DatasetFormat::Arrow),
            column: None,
            splits,
            partitions: 0,
            replicas: 0,
            overwrite: false,
            progress,
        }
    }
}

/// The format a file is read as when none is given: arrow for `*.arrow`/`*.ipc`, records
/// for `*.dat`, text otherwise.
pub(crate) fn guess_format(path: &Path) -> DatasetFormat {
    if source::has_extension(path, "arrow") || source::has_extension(path, "ipc") {
        DatasetFormat::Arrow
    } else if source::has_extension(path, "dat") {
        DatasetFormat::Records
    } else {
        DatasetFormat::Text
    }
}

/// Lists the input files of `request` and their one format; a mix of formats is an error.
fn input_files(request: &PutRequest) -> Result<(Vec<(PathBuf, u64)>, DatasetFormat)> {
    if !request.splits.is_empty() {
        let files = request
            .splits
            .iter()
            .map(|(split, bytes)| (PathBuf::from(split.describe()), *bytes))
            .collect();
        return Ok((files, DatasetFormat::Arrow));
    }
    let mut files = Vec::new();
    for path in &request.paths {
        files.extend(list_files(path, |_| true)?);
    }
    let format = match request.format {
        Some(f) => f,
        None => {
            let first = guess_format(&files[0].0);
            if let Some((other, _)) = files.iter().find(|(f, _)| guess_format(f) != first) {
                return Err(Error::Config(format!(
                    "{} would be read as {} but {} as {}; pass --format",
                    files[0].0.display(),
                    first.name(),
                    other.display(),
                    guess_format(other).name()
                )));
            }
            first
        }
    };
    if format == DatasetFormat::Records {
        for (file, len) in &files {
            source::records::check_size(file, *len)?;
        }
    }
    Ok((files, format))
}

/// One batch of input and the byte offset (over all files) where it starts.
type Positioned = (u64, RecordBatch);

/// Reads `files` as `format` (or, given, the `splits` in their place) with core's readers,
/// the ones a task's input is read with, sending batches in input order with their global
/// byte offsets, none crossing a multiple of `boundary` bytes (text and records are read in
/// splits cut at those multiples; an IPC file's batches are its unit, each placed by where
/// it starts). Runs on a blocking thread; a full queue makes it wait (the client's memory
/// stays bounded).
fn read_files(
    files: &[(PathBuf, u64)],
    splits: &[(Split, u64)],
    format: DatasetFormat,
    column: Option<&str>,
    boundary: u64,
    out: &tokio::sync::mpsc::Sender<Result<Positioned>>,
) -> Result<()> {
    let send = |offset: u64, batch: RecordBatch| -> Result<()> {
        out.blocking_send(Ok((offset, batch)))
            .map_err(|_| Error::Cluster("the upload stopped".into()))
    };
    // Each batch of `split` sent as starting at `offset` (or where `place` says).
    let send_split = |split: &Split, place: &dyn Fn(usize) -> u64| -> Result<()> {
        for (i, chunk) in source::open(split, None)?.enumerate() {
            let batch = match (chunk?, format) {
                (Chunk::Arrow(batch), _) => batch,
                (chunk, DatasetFormat::Records) => chunk.into_batch::<Record>()?,
                (chunk, DatasetFormat::Text) => chunk.into_batch::<String>()?,
                (_, DatasetFormat::Arrow) => {
                    return Err(Error::Config(format!(
                        "{} is not read as Arrow batches",
                        split.describe()
                    )));
                }
            };
            send(place(i), batch)?;
        }
        Ok(())
    };
    let mut base = 0u64;
    for (i, (file, len)) in files.iter().enumerate() {
        if let Some((split, _)) = splits.get(i) {
            // A typed source's split goes whole into the partition where it starts.
            send_split(split, &|_| base)?;
            base += len;
            continue;
        }
        match format {
            DatasetFormat::Text | DatasetFormat::Records => {
                for (start, end) in cut_at_boundaries(base, *len, boundary, format) {
                    let split = match format {
                        DatasetFormat::Records => Split::Records {
                            path: file.clone(),
                            start,
                            end,
                        },
                        _ => Split::Text {
                            path: file.clone(),
                            start,
                            end,
                            lossy: false,
                        },
                    };
                    send_split(&split, &|_| base + start)?;
                }
            }
            DatasetFormat::Arrow => {
                let footer = source::ipc::Footer::read(file)?;
                let column = match column {
                    Some(name) => Some(footer.schema.index_of(name).map_err(|_| {
                        Error::format(
                            file,
                            format!("no column {name:?} (columns: {})", column_names(&footer.schema)),
                        )
                    })?),
                    None => None,
                };
                // Read a few MiB of batches at a time: a split's pages stay mapped while its
                // batches are in flight.
                let batches = footer.batches.max(1) as u64;
                let per_split = (batches * UPLOAD_SPLIT_BYTES / (*len).max(1)).max(1) as usize;
                for first in (0..footer.batches).step_by(per_split) {
                    let split = Split::Ipc {
                        path: file.clone(),
                        first,
                        end: (first + per_split).min(footer.batches),
                        column,
                    };
                    send_split(&split, &|i| base + len * (first + i) as u64 / batches)?;
                }
            }
        }
        base += len;
    }
    Ok(())
}

/// The most bytes of input one split of an upload covers (about, for an IPC file's
/// batches): records and IPC splits are memory-mapped, and the batches in flight keep their
/// split's pages, so the client's memory stays within a few of these whatever the input's
/// size.
const UPLOAD_SPLIT_BYTES: u64 = 2 << 20;

/// Byte ranges of a file of `len` bytes starting at global offset `base`, cut at global
/// multiples of `boundary` and every [`UPLOAD_SPLIT_BYTES`] (a records file's cuts moved up
/// to whole records).
fn cut_at_boundaries(base: u64, len: u64, boundary: u64, format: DatasetFormat) -> Vec<(u64, u64)> {
    let record = RECORD_LEN as u64;
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < len {
        let cut = (((base + start) / boundary + 1) * boundary - base).min(start + UPLOAD_SPLIT_BYTES);
        let end = match format {
            DatasetFormat::Records => cut.div_ceil(record) * record,
            _ => cut,
        };
        let end = end.min(len);
        ranges.push((start, end));
        start = end;
    }
    ranges
}

fn column_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores the files of `request` as a dataset, streaming: partition *p* holds the rows that
/// start in the *p*-th equal share of the input's bytes, sent to its ring owners while it is
/// read. The dataset is listed only once every partition is on all its replicas.
pub async fn put(group: &DriverGroup, request: PutRequest) -> Result<proto::DatasetInfo> {
    let (files, format) = input_files(&request)?;
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let partitions = request.partitions.max(1);
    let place = proto::PlaceDatasetRequest {
        name: request.name.clone(),
        partitions,
        replicas: request.replicas,
        overwrite: request.overwrite,
        // Owners to fall back on when one cannot be reached (it died, and the driver does not
        // know yet).
        spare: SPARE_OWNERS,
    };
    let mut info = crate::client::call(group, "placing the dataset", |mut d| {
        let place = place.clone();
        async move { d.place_dataset(place).await }
    })
    .await?;
    info.format = format.name().to_string();
    let boundary = total.div_ceil(partitions as u64).max(1);
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let column = request.column.clone();
    let reader_files = files.clone();
    let splits = request.splits.clone();
    // Read like a task's input, mapped: a file that shrinks meanwhile fails the upload once
    // every batch was sent (the pages are read as they go out), before the commit.
    let reader = tokio::task::spawn_blocking(move || {
        let (result, watched) = ringleader_core::io::mapped::watch(|| {
            read_files(&reader_files, &splits, format, column.as_deref(), boundary, &tx)
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
        watched
    });
    let bar = progress_bar(request.progress, total, &format!("put {}", request.name));
    let mut input = Input {
        rx,
        next: None,
        schema: None,
    };
    input.next = input.rx.recv().await;
    for p in 0..partitions {
        let placement = &mut info.partitions[p as usize];
        let id = PartitionId {
            dataset: request.name.clone(),
            generation: info.generation.clone(),
            partition: p,
        };
        // The schema of the data so far (the first batch's) also describes an empty partition.
        if input.schema.is_none()
            && let Some(Ok((_, batch))) = &input.next
        {
            input.schema = Some(batch.schema());
        }
        let Some(schema) = input.schema.clone().or_else(|| empty_schema(format)) else {
            return Err(Error::Cluster("the input holds no rows".into()));
        };
        let owners = Fanout::open(placement, &id, info.replicas, schema).await?;
        let last = p + 1 == partitions;
        let sent = input
            .send_partition(&owners, |offset| last || offset / boundary <= p as u64, bar.as_ref())
            .await;
        let chosen = owners.chosen.clone();
        let closed = owners.close(sent.as_ref().err()).await;
        (placement.rows, placement.bytes) = sent?;
        let mut holders = closed?;
        // An owner lost mid-upload: the partition is copied from one that has it whole to the
        // next spare owner, so it is acknowledged on its R workers.
        if (holders.len() as u32) < info.replicas {
            let spares: Vec<usize> = (0..placement.addresses.len()).filter(|i| !chosen.contains(i)).collect();
            replace_lost_owners(placement, &id, info.replicas, &mut holders, &spares).await;
        }
        // The owners that took it are its holders (spares stand in for unreachable ones).
        placement.workers = holders.iter().map(|&i| placement.workers[i].clone()).collect();
        placement.addresses = holders.iter().map(|&i| placement.addresses[i].clone()).collect();
    }
    reader
        .await
        .map_err(|e| Error::Cluster(format!("reading the input: {e}")))?
        .check()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let held = std::time::Instant::now();
    while fault_injection::held(fault_injection::COMMIT_HOLD) && held.elapsed() < fault_injection::HOLD_LIMIT {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    crate::client::call(group, "recording the dataset", |mut d| {
        let info = info.clone();
        async move { d.commit_dataset(info).await }
    })
    .await?;
    Ok(info)
}

/// The read side of a `put`: positioned batches in input order, one looked ahead.
struct Input {
    rx: tokio::sync::mpsc::Receiver<Result<Positioned>>,
    /// The next batch, not yet sent.
    next: Option<Result<Positioned>>,
    /// The first batch's schema: every other batch must match it.
    schema: Option<SchemaRef>,
}

impl Input {
    /// Sends batches to `owners` while `belongs` accepts their offset; returns the rows and
    /// bytes sent.
    async fn send_partition(
        &mut self,
        owners: &Fanout,
        belongs: impl Fn(u64) -> bool,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(u64, u64)> {
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(item) = self.next.take() {
            let (offset, batch) = item?;
            if !belongs(offset) {
                self.next = Some(Ok((offset, batch)));
                break;
            }
            if let Some(s) = &self.schema
                && s.fields() != batch.schema().fields()
            {
                return Err(Error::Config(format!(
                    "the inputs disagree on their columns: {} vs {}",
                    column_names(s),
                    column_names(&batch.schema())
                )));
            }
            rows += batch.num_rows() as u64;
            bytes += batch.get_array_memory_size() as u64;
            if let Some(bar) = bar {
                bar.set_position(offset);
            }
            owners.send(&batch).await;
            self.next = self.rx.recv().await;
        }
        Ok((rows, bytes))
    }
}

/// One partition on its way to each of its owners: every batch goes to all of them, each
/// over its own Flight `do_put`.
struct Fanout {
    senders: Vec<tokio::sync::mpsc::Sender<Result<RecordBatch>>>,
    puts: Vec<tokio::task::JoinHandle<Result<()>>>,
    /// Which of the placement's owners take the partition (indexes, in ring order).
    chosen: Vec<usize>,
    /// What each chosen owner is called in errors: `partition P of NAME to worker W (ADDRESS)`.
    names: Vec<String>,
}

impl Fanout {
    /// Streams to the first `replicas` owners of `placement` (ring owners, then spares) that
    /// can be reached: an owner that died before the driver noticed is passed over.
    async fn open(
        placement: &proto::PartitionPlacement,
        id: &PartitionId,
        replicas: u32,
        schema: SchemaRef,
    ) -> Result<Fanout> {
        let mut fanout = Fanout {
            senders: Vec::new(),
            puts: Vec::new(),
            chosen: Vec::new(),
            names: Vec::new(),
        };
        let mut unreachable = Vec::new();
        for (i, address) in placement.addresses.iter().enumerate() {
            if fanout.chosen.len() as u32 == replicas {
                break;
            }
            let worker = placement.workers.get(i).cloned().unwrap_or_default();
            let name = format!("partition {} of {} to {worker} ({address})", id.partition, id.dataset);
            let client = match ringleader_core::net::flight::client(address).await {
                Ok(client) => client,
                Err(e) => {
                    unreachable.push(format!("{worker} ({address}): {}", message_of(&e)));
                    continue;
                }
            };
            let (send, receive) = tokio::sync::mpsc::channel(READ_AHEAD);
            let (address, id, schema) = (address.clone(), id.clone(), schema.clone());
            fanout.senders.push(send);
            fanout.puts.push(tokio::spawn(async move {
                put_partition_with(client, &address, &id, schema, ReceiverStream::new(receive).boxed()).await
            }));
            fanout.chosen.push(i);
            fanout.names.push(name);
        }
        if (fanout.chosen.len() as u32) < replicas {
            return Err(Error::Cluster(format!(
                "uploading partition {} of {}: {} of its {replicas} replicas could be placed, the other owners cannot be reached ({}); `ringleader cluster status` shows which workers are alive",
                id.partition,
                id.dataset,
                fanout.chosen.len(),
                unreachable.join("; ")
            )));
        }
        Ok(fanout)
    }

    async fn send(&self, batch: &RecordBatch) {
        for s in &self.senders {
            // A closed receiver means that put failed; `close` reports its error.
            let _ = s.send(Ok(batch.clone())).await;
        }
    }

    /// Ends every owner's stream (with `failed`, so no owner keeps a partial partition)
    /// and waits for them. Returns the owners (placement indexes) that stored it whole; an
    /// owner lost on the way is passed over with a warning, and only if none has it is the
    /// upload an error, naming what was being uploaded where.
    async fn close(self, failed: Option<&Error>) -> Result<Vec<usize>> {
        if let Some(e) = failed {
            for s in &self.senders {
                let _ = s.send(Err(Error::Cluster(e.to_string()))).await;
            }
        }
        drop(self.senders);
        let mut stored = Vec::new();
        let mut errors = Vec::new();
        for ((put, name), index) in self.puts.into_iter().zip(self.names).zip(self.chosen) {
            let done = put
                .await
                .map_err(|e| Error::Cluster(format!("uploading {name}: {e}")))
                .and_then(|r| r.map_err(|e| Error::Cluster(format!("uploading {name}: {}", message_of(&e)))));
            match done {
                Ok(()) => stored.push(index),
                Err(e) => errors.push(e),
            }
        }
        if failed.is_some() || stored.is_empty() {
            return Err(errors
                .into_iter()
                .next()
                .unwrap_or_else(|| Error::Cluster("the upload failed".into())));
        }
        for e in errors {
            eprintln!("warning: {e}; copying it to another worker");
        }
        Ok(stored)
    }
}

/// Copies partition `id` from its `holders` to `spares` of `placement` (in ring order) until
/// `replicas` hold it; what stays short is left to the driver's repair loop, with a warning.
async fn replace_lost_owners(
    placement: &proto::PartitionPlacement,
    id: &PartitionId,
    replicas: u32,
    holders: &mut Vec<usize>,
    spares: &[usize],
) {
    for &spare in spares {
        if holders.len() as u32 >= replicas {
            return;
        }
        let request = proto::CopyPartitionRequest {
            dataset: id.dataset.clone(),
            partition: id.partition,
            from: holders.iter().map(|&i| placement.addresses[i].clone()).collect(),
            generation: id.generation.clone(),
        };
        let address = &placement.addresses[spare];
        let copied = async {
            let channel = ringleader_core::security::tls::endpoint(address)
                .map_err(|e| Error::Cluster(e.to_string()))?
                .connect()
                .await
                .map_err(|e| Error::Cluster(format!("cannot connect: {e}")))?;
            let mut worker =
                proto::worker_client::WorkerClient::new(ringleader_core::security::auth::authorized(channel));
            worker
                .copy_partition(request)
                .await
                .map_err(|e| Error::Cluster(e.message().to_string()))
        };
        match tokio::time::timeout(std::time::Duration::from_secs(60), copied).await {
            Ok(Ok(_)) => holders.push(spare),
            Ok(Err(e)) => eprintln!(
                "warning: copying partition {} of {} to {address}: {e}",
                id.partition, id.dataset
            ),
            Err(_) => eprintln!(
                "warning: copying partition {} of {} to {address}: no answer within 60 s",
                id.partition, id.dataset
            ),
        }
    }
    if (holders.len() as u32) < replicas {
        eprintln!(
            "warning: partition {} of {} is on {} of its {replicas} workers; the cluster copies it to more once it can",
            id.partition,
            id.dataset,
            holders.len()
        );
    }
}

/// What went wrong, without the "fetching shuffle output" framing of a Flight failure.
fn message_of(e: &Error) -> String {
    match e {
        Error::FetchFailed { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Spare ring owners a `put` asks for per partition, beyond its replicas.
const SPARE_OWNERS: u32 = 2;

/// The schema of an empty partition of a dataset that holds no rows yet.
fn empty_schema(format: DatasetFormat) -> Option<SchemaRef> {
    match format {
        DatasetFormat::Text => ringleader_core::data::schema_of::<String>().ok(),
        DatasetFormat::Records => ringleader_core::data::schema_of::<Record>().ok(),
        DatasetFormat::Arrow => None,
    }
}

/// A progress bar over `total` bytes on stderr, when asked for and stderr is a terminal.
fn progress_bar(enabled: bool, total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    Some(bar)
}

/// Where a dataset's partitions go on the client.
pub struct GetRequest {
    /// The dataset.
    pub name: String,
    /// The directory to create.
    pub dir: PathBuf,
    /// Replace `dir` if it exists.
    pub overwrite: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Writes a stored dataset's partitions into `part-NNNNN` files under a new directory, in
/// the dataset's format (text lines, raw records, or `part-NNNNN.arrow`), streamed from a
/// worker holding each partition (the next one if it fails). The directory appears, with
/// `_SUCCESS`, only once every partition was written. Returns rows and bytes written.
pub async fn get(group: &DriverGroup, request: GetRequest) -> Result<(u64, u64)> {
    let commit = OutputCommit::begin(&request.dir, request.overwrite)?;
    let name = proto::DatasetName {
        name: request.name.clone(),
    };
    let info = crate::client::call(group, "looking up the dataset", |mut d| {
        let name = name.clone();
        async move { d.get_dataset(name).await }
    })
    .await?;
    let format = DatasetFormat::parse(&info.format)
        .ok_or_else(|| Error::Cluster(format!("dataset {} has an unknown format {:?}", info.name, info.format)))?;
    let total: u64 = info.partitions.iter().map(|p| p.bytes).sum();
    let bar = progress_bar(request.progress, total, &format!("get {}", info.name));
    let (mut rows, mut bytes) = (0u64, 0u64);
    for placement in &info.partitions {
        let id = PartitionId {
            dataset: info.name.clone(),
            generation: info.generation.clone(),
            partition: placement.partition,
        };
        let file_name = match format {
            DatasetFormat::Arrow => format!("{}.arrow", part_name(placement.partition)),
            _ => part_name(placement.partition),
        };
        let path = commit.staging().join(file_name);
        let mut failures = Vec::new();
        let mut done = None;
        for address in &placement.addresses {
            match get_one(address, &id, format, &path).await {
                Ok(counts) => {
                    done = Some(counts);
                    break;
                }
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
        let Some((r, b)) = done else {
            return Err(Error::Unreachable {
                what: format!("dataset {} partition {}", info.name, placement.partition),
                message: format!("no worker holding it answered: {}", failures.join("; ")),
            });
        };
        rows += r;
        bytes += b;
        if let Some(bar) = &bar {
            bar.inc(placement.bytes);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    commit.commit()?;
    Ok((rows, bytes))
}

/// Streams one partition from `address` into `path` (replacing a partial earlier try).
async fn get_one(address: &str, id: &PartitionId, format: DatasetFormat, path: &Path) -> Result<(u64, u64)> {
    let mut stream = ringleader_core::io::store::get_partition(address, id).await?;
    if format == DatasetFormat::Arrow {
        let (rows, _) = ringleader_core::io::store::write_flight(path.to_path_buf(), None, stream, address).await?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        return Ok((rows, bytes));
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::FetchFailed {
            location: address.to_string(),
            message: e.to_string(),
        })?;
        rows += batch.num_rows() as u64;
        match format {
            DatasetFormat::Records => {
                let records = ringleader_core::data::records_view(&batch)
                    .ok_or_else(|| Error::Cluster(format!("dataset {} holds no records", id.dataset)))?;
                let raw = Record::slice_as_bytes(records);
                out.write_all(raw).map_err(|e| Error::io(path, e))?;
                bytes += raw.len() as u64;
            }
            _ => {
                for line in ringleader_core::data::decode::<String>(&batch)? {
                    out.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))?;
                    out.write_all(b"\n").map_err(|e| Error::io(path, e))?;
                    bytes += line.len() as u64 + 1;
                }
            }
        }
    }
    out.flush().map_err(|e| Error::io(path, e))?;
    Ok((rows, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_cut_at_the_partitions_global_boundaries_and_records_stay_whole() {
        // A 250-byte text file after 100 bytes of others, partitions every 120 bytes.
        assert_eq!(
            cut_at_boundaries(100, 250, 120, DatasetFormat::Text),
            [(0, 20), (20, 140), (140, 250)]
        );
        // Records: a cut inside a record moves up to its end.
        assert_eq!(
            cut_at_boundaries(0, 500, 250, DatasetFormat::Records),
            [(0, 300), (300, 500)]
        );
        assert_eq!(cut_at_boundaries(0, 0, 10, DatasetFormat::Text), []);
        // A long share is cut into splits of at most UPLOAD_SPLIT_BYTES.
        let ranges = cut_at_boundaries(0, 5 * UPLOAD_SPLIT_BYTES, 100 << 20, DatasetFormat::Records);
        assert_eq!(ranges.len(), 5);
        assert!(
            ranges
                .iter()
                .all(|(a, b)| b - a <= UPLOAD_SPLIT_BYTES + 100 && a % 100 == 0)
        );
        assert_eq!(ranges.last().map(|r| r.1), Some(5 * UPLOAD_SPLIT_BYTES));
    }
}
