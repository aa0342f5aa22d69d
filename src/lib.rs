//! # Ringleader
//!
//! Batch data processing with plain Rust closures. A job is an ordinary program:
//!
//! ```
//! fn main() -> std::process::ExitCode {
//!     ringleader::run(|ctx| {
//!         let words = ctx.parallelize(vec!["a b a".to_string()], 1)?
//!             .flat_map(|line| line.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>())
//!             .reduce_by_key(|a, b| a + b);
//!         println!("{} distinct words", words.count()?);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Run as it is, the job executes in-process (the embedded engine): stages run on a rayon
//! pool, shuffles go through memory and spill to disk past [`Config::memory_limit`].
//!
//! ## Layout
//! - [`context`]: [`Context`], the sources that start datasets.
//! - [`dataset`]: [`Dataset`], its transformations and actions.
//! - `engine`: what runs a plan (embedded or a cluster client): the seam between them;
//!   `inputs` and `outputs`: where a source's rows are read from and where a job's rows
//!   go (local files, a stored dataset, or travelling through one); `cache`:
//!   computing persisted datasets (its `registry` is what the engine keeps of them);
//!   `columns`: the columns a CSV or Parquet source reads.
//! - [`config`]: [`Config`], engine settings and their `RINGLEADER_*` variables.
//! - `lineage`, `planner`, `embedded`, `progress`: the lazy DAG of how datasets derive,
//!   cutting it into stages, running them in-process, showing progress.
//! - [`client`]: reaching a cluster's driver group (its leader, with bounded patience).
//! - `cluster`, `executor`: the client and executor sides of cluster mode (submitting a job
//!   and following it; running its tasks in a worker's executor).
//! - [`transfer`]: streaming datasets into the ring and out of it (`put`, `get`).
//!
//! A job's path: [`run`] builds a [`Context`] whose sources start [`Dataset`]s; their
//! transformations grow a `lineage` DAG; an action has the `planner` cut it into a job plan
//! and hands it to the context's `engine`, which runs it in-process (`embedded`) or submits
//! it to a cluster (`cluster`), whose workers start this same binary as an executor
//! (`executor`) to run its tasks.
//!
//! The `ringleader` command itself (cluster, driver and worker daemons, benchmarks) is the
//! `ringleader-cli` crate: a job binary links none of the daemons, Raft or redb.
//!
//! ## Features
//! - `mimalloc` (on by default): mimalloc as the job binary's allocator.
//! - `parquet` (off by default): Parquet sources and outputs ([`Context::parquet_files`],
//!   [`Dataset::save_parquet`]). Without it they fail before any task runs with
//!   [`Error::FeatureOff`], naming the feature; the parquet crate stays out of the build.

pub mod accumulator;
pub mod broadcast;
mod cache;
pub mod client;
mod cluster;
mod columns;
pub mod config;
pub mod context;
pub mod dataset;
mod embedded;
mod engine;
mod executor;
mod inputs;
mod lineage;
mod outputs;
mod planner;
mod progress;
pub mod transfer;

use std::process::ExitCode;

/// Jobs allocate a small object per row in many pipelines (a `String` per word); glibc's
/// allocator spent 40% of a word count in malloc/free, mimalloc a fraction of that. Turn
/// the `mimalloc` feature off to keep the system allocator (or to set your own).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use accumulator::{Accumulable, Accumulator};
pub use broadcast::Broadcast;
pub use config::Config;
pub use context::{Context, TextOptions};
pub use dataset::{Dataset, Output, PartitionRows, Saved, Summable};
pub use ringleader_core::data::Data;
pub use ringleader_core::data::record::Record;
pub use ringleader_core::io::output_format::OutputFormat;
pub use ringleader_core::ops::sinks::Combiner;
pub use ringleader_core::plan::cache::StorageLevel;
pub use ringleader_core::{Error, Result};
/// Text that does not allocate when short (up to 23 bytes) and clones without copying when
/// long: a row type's key fields (ids, codes, categories) as `SmolStr` instead of `String`
/// decode, hash and group without a heap allocation per field. It reads and writes as
/// text in every format.
pub use smol_str::SmolStr;

static JOB_MARKER: [u8; ringleader_core::net::binary::JOB_MARKER.len()] = {
    let mut out = [0u8; ringleader_core::net::binary::JOB_MARKER.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = ringleader_core::net::binary::JOB_MARKER[i];
        i += 1;
    }
    out
};

/// Runs a job: builds a [`Context`] from the environment and calls `job` with it. Errors
/// are printed with their causes and give exit status 1.
///
/// With `RINGLEADER_MASTER=host:port` set, the job's actions run on that cluster: the
/// binary uploads itself once and workers start it as their executor (with
/// `RINGLEADER_EXECUTOR` set, `run` then serves tasks and never calls `job`). Parse your
/// flags inside `job`: everything before `run` also runs in every executor.
pub fn run<F>(job: F) -> ExitCode
where
    F: FnOnce(&Context) -> anyhow::Result<()>,
{
    // The marker by which `ringleader submit` recognises a job binary.
    std::hint::black_box(&JOB_MARKER);
    if let Ok(worker) = std::env::var(ringleader_core::net::executor_env::EXECUTOR) {
        return executor::serve(worker);
    }
    let ctx = match Context::from_env() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match job(&ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
