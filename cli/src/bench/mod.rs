//! `ringleader bench`: each benchmark in its own module, on one harness.
//!
//! - [`embedded`](mod@embedded): the shipped examples against plain-Rust baselines (and `--peers`:
//!   DuckDB and Polars, [`peers`]); [`baseline`](mod@baseline) is the hidden subcommand a baseline runs in.
//! - [`cluster`](mod@cluster): a local cluster against the embedded engine.
//! - [`dbbench`](mod@dbbench): the db-benchmark's questions against DuckDB and Polars.
//! - [`raft`], [`hosts`], [`scale`]: the driver group, separate hosts, larger than memory.
//! - [`measure`]: running a command and timing it (wall time, peak memory from `wait4`).
//! - [`inputs`]: where data and examples are, generating inputs once.
//! - [`local_cluster`]: a cluster started for a benchmark, stopped when dropped.

pub mod baseline;
mod cluster;
mod dbbench;
mod disk;
mod embedded;
mod hosts;
mod inputs;
mod local_cluster;
mod measure;
mod peers;
mod raft;
mod scale;
mod timeline;

use std::process::ExitCode;

use clap::Subcommand;

pub use baseline::{BaselineArgs, baseline};
use cluster::{ClusterArgs, cluster};
use embedded::{EmbeddedArgs, embedded};
pub(crate) use inputs::examples_dir;
pub(crate) use local_cluster::BenchCluster;

/// Which benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The embedded engine on this machine: sort, sum and wordcount vs plain Rust.
    Embedded(EmbeddedArgs),
    /// A local cluster vs the embedded engine: sort, sum, and a trivial job's latency.
    Cluster(ClusterArgs),
    /// The db-benchmark's groupby and join questions: Ringleader embedded and on a local
    /// cluster, and with --peers DuckDB and Polars, on the same CSV files; answers checked.
    Dbbench(dbbench::DbbenchArgs),
    /// The driver group: metadata commits per second, leader kill to re-issued task, and a
    /// sort on 3 drivers vs 1.
    Raft(raft::RaftArgs),
    /// Separate hosts (network namespaces, links capped at 1 Gbit/s) vs the same cluster on
    /// this host: sort and sum, and how close each comes to what the links allow. Needs root.
    Hosts(hosts::HostsArgs),
    /// Data larger than the memory budget: sorts of 1-8 GB under 512 MiB, embedded and on a
    /// local cluster, and a word count whose vocabulary outgrows its budget; time,
    /// throughput, bytes spilled, peak memory, and an SVG plot of time against size.
    Scale(scale::ScaleArgs),
}

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Embedded(args) => embedded(args),
        BenchCommand::Cluster(args) => cluster(args),
        BenchCommand::Dbbench(args) => dbbench::dbbench(args),
        BenchCommand::Raft(args) => raft::run(args),
        BenchCommand::Hosts(args) => hosts::run(args),
        BenchCommand::Scale(args) => scale::run(args),
    }
}
