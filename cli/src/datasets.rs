//! `ringleader put`, `get`, `rm` and `datasets`: datasets stored on the cluster, each
//! partition on the ring's R distinct owners of (name, partition), read and written by jobs
//! as `ringleader://NAME`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::proto;

use super::cluster_dir::{default_dir, resolve_master};
use ringleader::transfer::{GetRequest, PutRequest};

/// Where the cluster is: flags every dataset command shares.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The driver(s), host:port[,host:port…] (default: RINGLEADER_MASTER, else the cluster in --dir).
    #[arg(long)]
    pub master: Option<String>,
    /// The cluster directory to read the driver addresses and token from.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
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
    pub format: Option<DatasetFormat>,
    /// Replace a dataset of that name (only once the new one is complete).
    #[arg(long)]
    pub overwrite: bool,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Input files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `ringleader get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The dataset (NAME or ringleader://NAME).
    pub name: String,
    /// The directory to write its part-* files into (must not exist, unless --overwrite).
    #[arg(value_name = "DIR")]
    pub target: PathBuf,
    /// Replace DIR if it exists (only once the dataset was written completely).
    #[arg(long)]
    pub overwrite: bool,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `ringleader rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The dataset (NAME or ringleader://NAME).
    pub name: String,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `ringleader datasets` (and `ringleader jobs`).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `ringleader datasets`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub list: ListArgs,
    /// Print JSON: {"datasets": [{"name", "generation", "replicas", "partitions": [{"index",
    /// "live_replicas", "holders"}]}]}.
    #[arg(long)]
    pub json: bool,
}

/// A dataset name given as NAME or ringleader://NAME.
fn dataset_name(arg: &str) -> anyhow::Result<String> {
    match ringleader_core::io::store::parse_url(std::path::Path::new(arg)) {
        Some(parsed) => Ok(parsed?),
        None if ringleader_core::ids::valid_dataset_name(arg) => Ok(arg.to_string()),
        None => anyhow::bail!("{arg:?} is not a dataset name (letters, digits, - and _)"),
    }
}

/// A runtime and the driver group the flags name.
fn connect(
    cluster: &ClusterArgs,
) -> anyhow::Result<(tokio::runtime::Runtime, ringleader_core::net::driver_group::DriverGroup)> {
    let master = resolve_master(cluster.master.clone(), &cluster.dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let group =
        runtime.block_on(async { ringleader::client::driver_group(ringleader::client::parse_masters(&master)?) })?;
    Ok((runtime, group))
}

/// Runs `put`.
pub fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let (runtime, group) = connect(&args.cluster)?;
    let request = PutRequest {
        name: dataset_name(&args.name)?,
        paths: args.paths,
        format: args.format,
        column: None,
        splits: Vec::new(),
        partitions: args.partitions,
        replicas: args.replicas,
        overwrite: args.overwrite,
        progress: true,
    };
    let info = runtime.block_on(ringleader::transfer::put(&group, request))?;
    print!("stored ");
    print_dataset(&info);
    Ok(ExitCode::SUCCESS)
}

/// Runs `get`.
pub fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let (runtime, group) = connect(&args.cluster)?;
    let request = GetRequest {
        name: dataset_name(&args.name)?,
        dir: args.target.clone(),
        overwrite: args.overwrite,
        progress: true,
    };
    let (rows, bytes) = runtime.block_on(ringleader::transfer::get(&group, request))?;
    println!("wrote {rows} rows ({bytes} bytes) into {}", args.target.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `rm`.
pub fn rm(args: RmArgs) -> anyhow::Result<ExitCode> {
    let (runtime, group) = connect(&args.cluster)?;
    let name = dataset_name(&args.name)?;
    runtime.block_on(ringleader::client::remove_dataset(&group, &name))?;
    println!("removed {name}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `datasets`.
pub fn list(args: DatasetsArgs) -> anyhow::Result<ExitCode> {
    let (runtime, group) = connect(&args.list.cluster)?;
    let list = runtime.block_on(ringleader::client::call(
        &group,
        "listing datasets",
        |mut d| async move { d.list_datasets(proto::ListDatasetsRequest {}).await },
    ))?;
    if args.json {
        let datasets: Vec<serde_json::Value> = list
            .datasets
            .iter()
            .map(|d| {
                let partitions: Vec<serde_json::Value> = d
                    .partitions
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "index": p.partition,
                            "live_replicas": audited(p).then_some(p.live_replicas),
                            "holders": p.workers,
                            "short_because": (!p.short_because.is_empty()).then_some(&p.short_because),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": d.name,
                    "generation": d.generation,
                    "format": d.format,
                    "replicas": d.replicas,
                    "partitions": partitions,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "datasets": datasets }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.datasets.is_empty() {
        println!("no datasets (store one with `ringleader put --name NAME PATH…`)");
    }
    for d in &list.datasets {
        print_dataset(d);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the leader's repair loop has audited partition `p` yet (an audited partition
/// with no live copy says why).
fn audited(p: &proto::PartitionPlacement) -> bool {
    p.live_replicas > 0 || !p.short_because.is_empty()
}

/// Prints a dataset's summary line and its placement, a line per partition.
fn print_dataset(d: &proto::DatasetInfo) {
    let rows: u64 = d.partitions.iter().map(|p| p.rows).sum();
    let bytes: u64 = d.partitions.iter().map(|p| p.bytes).sum();
    let short = d.partitions.iter().filter(|p| !p.short_because.is_empty()).count();
    let health = match short {
        _ if !d.partitions.iter().all(audited) => "replicas not audited yet".to_string(),
        0 => format!("replicas {}/{}", d.replicas, d.replicas),
        n => format!("{n} partitions short of {} replicas", d.replicas),
    };
    println!(
        "{}: {}, {} partitions x {} replicas, {rows} rows, {bytes} bytes; {health}",
        d.name,
        d.format,
        d.partitions.len(),
        d.replicas
    );
    for p in &d.partitions {
        println!(
            "  partition {:>3}: {:>10} rows {:>12} bytes on {} ({} live){}",
            p.partition,
            p.rows,
            p.bytes,
            p.workers.join(", "),
            if audited(p) {
                format!("{}/{}", p.live_replicas, d.replicas)
            } else {
                "?".to_string()
            },
            if p.short_because.is_empty() {
                String::new()
            } else {
                format!(": {}", p.short_because)
            }
        );
    }
}
