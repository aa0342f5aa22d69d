//! `ringleader put` and `ringleader datasets`: datasets stored on the cluster, each
//! partition on the ring's R distinct owners of (name, partition), read back by jobs with
//! `ctx.dataset("NAME")`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{FlightClient, FlightDescriptor};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use ringleader_core::proto;
use ringleader_core::record::{RECORD_LEN, Record};
use ringleader_core::source::{self, list_files};

use super::cluster::{default_dir, resolve_master};

/// How `put` reads its input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines of text (read back as `String`).
    Text,
    /// 100-byte gensort records (read back as `Record`).
    Records,
    /// Arrow IPC files (read back column by column into the row type).
    Arrow,
}

/// `ringleader put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The dataset's name (letters, digits, - and _).
    #[arg(long)]
    pub name: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Copies of each partition, on distinct workers.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Input format (default: arrow for *.arrow, records for *.dat, text otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The driver, host:port (default: RINGLEADER_MASTER, else the cluster in --dir).
    #[arg(long)]
    pub master: Option<String>,
    /// The cluster directory to read the driver address from.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// Input files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `ringleader datasets`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The driver, host:port (default: RINGLEADER_MASTER, else the cluster in --dir).
    #[arg(long)]
    pub master: Option<String>,
    /// The cluster directory to read the driver address from.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
}

fn guess_format(path: &Path) -> Format {
    if source::has_extension(path, "arrow") {
        Format::Arrow
    } else if source::has_extension(path, "dat") {
        Format::Records
    } else {
        Format::Text
    }
}

/// Reads every input file as batches of one schema.
fn read_inputs(paths: &[PathBuf], format: Option<Format>) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for path in paths {
        for (file, len) in list_files(path, |_| true)? {
            match format.unwrap_or_else(|| guess_format(&file)) {
                Format::Text => {
                    let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                    let text = String::from_utf8(text).map_err(|e| {
                        anyhow::anyhow!("{}: not UTF-8 at byte {}", file.display(), e.utf8_error().valid_up_to())
                    })?;
                    let lines: Vec<String> = text.lines().map(str::to_string).collect();
                    for chunk in lines.chunks(65_536) {
                        batches.push(ringleader_core::data::encode(chunk)?);
                    }
                }
                Format::Records => {
                    source::records::check_size(&file, len)?;
                    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                    for chunk in bytes.chunks(RECORD_LEN * 80_000) {
                        let records = Record::slice_from_bytes(chunk).context("torn record")?.to_vec();
                        batches.push(ringleader_core::data::encode_vec(records)?);
                    }
                }
                Format::Arrow => {
                    let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&file)?, None)
                        .with_context(|| format!("{} is not an Arrow IPC file", file.display()))?;
                    for b in reader {
                        batches.push(b.with_context(|| format!("reading {}", file.display()))?);
                    }
                }
            }
        }
    }
    if let Some(first) = batches.first() {
        let schema = first.schema();
        if let Some(other) = batches.iter().find(|b| b.schema() != schema) {
            bail!("the inputs disagree on their columns: {} vs {}", schema, other.schema());
        }
    }
    Ok(batches)
}

/// Cuts `batches` into `n` partitions of consecutive rows, as equal as can be.
fn split_rows(batches: &[RecordBatch], n: u32) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut parts: Vec<Vec<RecordBatch>> = (0..n).map(|_| Vec::new()).collect();
    let mut row = 0usize;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let p = (row * n as usize / total).min(n as usize - 1);
            let end_of_p = ((p + 1) * total).div_ceil(n as usize);
            let take = (end_of_p - row).min(batch.num_rows() - offset).max(1);
            parts[p].push(batch.slice(offset, take));
            offset += take;
            row += take;
        }
    }
    parts
}

async fn store(address: &str, name: &str, partition: u32, batches: Vec<RecordBatch>) -> anyhow::Result<()> {
    let channel = ringleader_worker::channel_to(address).map_err(anyhow::Error::msg)?;
    let mut client = FlightClient::new(channel);
    ringleader_core::auth::add_token(client.metadata_mut())?;
    let descriptor = FlightDescriptor::new_path(vec!["dataset".into(), name.to_string(), partition.to_string()]);
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let mut results = client
        .do_put(data)
        .await
        .with_context(|| format!("storing partition {partition} on {address}"))?;
    while let Some(r) = results.next().await {
        r.with_context(|| format!("storing partition {partition} on {address}"))?;
    }
    Ok(())
}

/// Runs `put`.
pub fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let master = resolve_master(args.master.clone(), &args.dir)?;
    let batches = read_inputs(&args.paths, args.format)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows < args.partitions as usize {
        bail!(
            "{rows} rows cannot fill {} partitions; use fewer --partitions",
            args.partitions
        );
    }
    let parts = split_rows(&batches, args.partitions.max(1));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let group = crate::cluster::driver_group(crate::cluster::parse_masters(&master)?)?;
        let request = proto::PlaceDatasetRequest {
            name: args.name.clone(),
            partitions: args.partitions,
            replicas: args.replicas,
        };
        let mut info = crate::cluster::call(&group, "placing the dataset", |mut d| {
            let request = request.clone();
            async move { d.place_dataset(request).await }
        })
        .await?;
        for (placement, batches) in info.partitions.iter_mut().zip(parts) {
            placement.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            for address in &placement.addresses {
                store(address, &args.name, placement.partition, batches.clone()).await?;
            }
        }
        crate::cluster::call(&group, "recording the dataset", |mut d| {
            let info = info.clone();
            async move { d.commit_dataset(info).await }
        })
        .await?;
        print!("stored ");
        print_dataset(&info);
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `datasets`.
pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let master = resolve_master(args.master, &args.dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let list = runtime.block_on(async {
        let group = crate::cluster::driver_group(crate::cluster::parse_masters(&master)?)?;
        anyhow::Ok(
            crate::cluster::call(&group, "listing datasets", |mut d| async move {
                d.list_datasets(proto::ListDatasetsRequest {}).await
            })
            .await?,
        )
    })?;
    if list.datasets.is_empty() {
        println!("no datasets (store one with `ringleader put --name NAME PATH…`)");
    }
    for d in &list.datasets {
        print_dataset(d);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a dataset's summary line and its placement, a line per partition.
fn print_dataset(d: &proto::DatasetInfo) {
    let rows: u64 = d.partitions.iter().map(|p| p.rows).sum();
    println!(
        "{}: {} partitions x {} replicas, {rows} rows",
        d.name,
        d.partitions.len(),
        d.replicas
    );
    for p in &d.partitions {
        println!(
            "  partition {:>3}: {:>10} rows on {}",
            p.partition,
            p.rows,
            p.workers.join(", ")
        );
    }
}
