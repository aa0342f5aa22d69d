//! # ringleader-cli
//!
//! The `ringleader` command: start and stop a laptop cluster, run the driver and worker
//! daemons, submit jobs, move datasets in and out of the ring, follow jobs, generate and
//! validate data, and benchmark. Each subcommand lives in its own module; `main` only
//! parses flags and reports errors. It is a crate of its own so that job binaries, which
//! depend on the `ringleader` library only, link none of the daemons, Raft or redb.
//!
//! ## Layout
//! - [`cluster`]: `ringleader cluster up|status|down`.
//! - [`cluster_dir`]: the cluster directory (its file and token) and how clients find the
//!   cluster from it.
//! - [`nodes`]: `ringleader driver`, `ringleader worker` (the daemons, from their crates).
//! - [`submit`]: `ringleader submit BINARY`.
//! - [`datasets`]: `ringleader put|get|rm|datasets`.
//! - [`jobs`]: `ringleader jobs`, `job ID`, `cancel ID`.
//! - [`generate`], [`validate`]: `ringleader gen …`, `ringleader validate sort`.
//! - [`chaos`]: `ringleader chaos`, a random history of dataset operations under faults, checked.
//! - [`bench`](mod@bench): `ringleader bench embedded|cluster|raft|hosts|scale` and its harness.

mod bench;
mod chaos;
mod cluster;
mod cluster_dir;
mod datasets;
mod generate;
mod jobs;
mod nodes;
mod submit;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Ringleader: batch data processing with Rust closures.
#[derive(Debug, Parser)]
#[command(name = "ringleader", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Generate a dataset (gensort records, an int64 column, Zipf text).
    #[command(subcommand)]
    Gen(generate::GenCommand),
    /// Check a job's output.
    #[command(subcommand)]
    Validate(validate::ValidateCommand),
    /// Measure throughput against plain-Rust baselines and print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Start, inspect or stop a laptop cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Test stored datasets under faults: a random history, recorded and checked.
    ///
    /// The way Jepsen checks databases: put, overwrite, get, rm and jobs from several clients
    /// on a cluster of its own while leaders and workers are killed and paused (and, with
    /// --hosts, links cut), recorded and checked: linearizable, no partial read, nothing
    /// acknowledged lost, back to R replicas.
    Chaos(chaos::ChaosArgs),
    /// Run a job binary on a cluster.
    Submit(submit::SubmitArgs),
    /// Store local files as a dataset on the cluster, partitioned by the ring (streamed).
    Put(datasets::PutArgs),
    /// Write a stored dataset's part-* files into a local directory (streamed).
    Get(datasets::GetArgs),
    /// Remove a stored dataset (its workers delete its files).
    Rm(datasets::RmArgs),
    /// List the datasets stored on the cluster and their placement.
    Datasets(datasets::DatasetsArgs),
    /// List the jobs the cluster remembers (any driver answers).
    Jobs(datasets::ListArgs),
    /// Show one job's stages and their progress.
    Job(jobs::JobArgs),
    /// Cancel a running job: every worker stops its tasks at once.
    Cancel(jobs::CancelArgs),
    /// Run a driver node by hand.
    Driver(nodes::DriverArgs),
    /// Run a worker node by hand.
    Worker(nodes::WorkerArgs),
    /// Runs one baseline measurement (used by `bench`; prints its figures as one line).
    #[command(hide = true)]
    Baseline(bench::BaselineArgs),
}

/// Entry point of the `ringleader` binary: parses flags, runs the subcommand, prints any
/// error with its causes. Exit status: 0 on success, 1 on failure, 2 for bad usage.
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Every usage error shows the usage (clap leaves it out of some, such as a
            // value of the wrong type) and exits 2; --help and --version exit 0.
            let _ = e.print();
            if e.use_stderr() && !e.to_string().contains("Usage:") {
                eprintln!("\n{}", Cli::command().render_usage());
            }
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let result = match cli.command {
        Verb::Gen(c) => generate::run(c),
        Verb::Validate(c) => validate::run(c),
        Verb::Bench(c) => bench::run(c),
        Verb::Baseline(a) => bench::baseline(a),
        Verb::Cluster(c) => cluster::run(c),
        Verb::Chaos(a) => chaos::run(a),
        Verb::Submit(a) => submit::run(a),
        Verb::Put(a) => datasets::put(a),
        Verb::Get(a) => datasets::get(a),
        Verb::Rm(a) => datasets::rm(a),
        Verb::Datasets(a) => datasets::list(a),
        Verb::Jobs(a) => jobs::list(a),
        Verb::Job(a) => jobs::show(a),
        Verb::Cancel(a) => jobs::cancel(a),
        Verb::Driver(a) => nodes::driver(a),
        Verb::Worker(a) => nodes::worker(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
