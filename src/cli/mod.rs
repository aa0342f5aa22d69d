//! The `ringleader` command: generate datasets, validate a sort, run benchmarks. Each
//! subcommand lives in its own module; `main` only parses flags and reports errors.
//!
//! Modules: [`generate`] (`ringleader gen …`), [`validate`] (`ringleader validate sort`),
//! [`bench`] (`ringleader bench embedded`), [`cluster`] (`ringleader cluster up|status|down`),
//! [`submit`] (`ringleader submit`), [`datasets`] (`ringleader put|get|rm|datasets`), [`jobs`] (`ringleader jobs`, `ringleader job ID`), [`nodes`] (`ringleader driver`, `ringleader worker`).

pub mod bench;
pub mod bench_hosts;
pub mod bench_peers;
pub mod bench_raft;
pub mod bench_scale;
pub mod cluster;
pub mod datasets;
pub mod generate;
pub mod jobs;
pub mod nodes;
pub mod submit;
pub mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Ringleader: batch data processing with Rust closures.
#[derive(Debug, Parser)]
#[command(name = "ringleader", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Run a job binary on a cluster.
    Submit(submit::SubmitArgs),
    /// Store local files as a dataset on the cluster, partitioned by the ring (streamed).
    Put(datasets::PutArgs),
    /// Write a stored dataset's part-* files into a local directory (streamed).
    Get(datasets::GetArgs),
    /// Remove a stored dataset (its workers delete its files).
    Rm(datasets::RmArgs),
    /// List the datasets stored on the cluster and their placement.
    Datasets(datasets::ListArgs),
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
pub fn main() -> ExitCode {
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
        Command::Gen(c) => generate::run(c),
        Command::Validate(c) => validate::run(c),
        Command::Bench(c) => bench::run(c),
        Command::Baseline(a) => bench::baseline(a),
        Command::Cluster(c) => cluster::run(c),
        Command::Submit(a) => submit::run(a),
        Command::Put(a) => datasets::put(a),
        Command::Get(a) => datasets::get(a),
        Command::Rm(a) => datasets::rm(a),
        Command::Datasets(a) => datasets::list(a),
        Command::Jobs(a) => jobs::list(a),
        Command::Job(a) => jobs::show(a),
        Command::Cancel(a) => jobs::cancel(a),
        Command::Driver(a) => nodes::driver(a),
        Command::Worker(a) => nodes::worker(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
