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
//! - [`config`]: [`Config`], engine settings and their `RINGLEADER_*` variables.
//! - `node`, `planner`, `embedded`, `progress`: the lazy DAG, cutting it into stages,
//!   running them in-process, showing progress.
//! - [`cli`]: the `ringleader` command (generators, validation, benchmarks).

pub mod cli;
pub mod config;
pub mod context;
pub mod dataset;
mod embedded;
mod node;
mod planner;
mod progress;

use std::process::ExitCode;

/// Jobs allocate a small object per row in many pipelines (a `String` per word); glibc's
/// allocator spent 40% of a word count in malloc/free, mimalloc a fraction of that. Turn
/// the `mimalloc` feature off to keep the system allocator (or to set your own).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use config::Config;
pub use context::{Context, TextOptions};
pub use dataset::{Dataset, Output, PartitionRows, Saved, Summable};
pub use ringleader_core::data::Data;
pub use ringleader_core::record::Record;
pub use ringleader_core::{Error, Result};

/// Runs a job: builds a [`Context`] from the environment and calls `job` with it. Errors
/// are printed with their causes and give exit status 1.
///
/// Parse your flags inside `job`: in cluster mode the same binary also serves as the task
/// executor, and everything before `run` runs there too.
pub fn run<F>(job: F) -> ExitCode
where
    F: FnOnce(&Context) -> anyhow::Result<()>,
{
    if let Some(master) = std::env::var_os("RINGLEADER_MASTER") {
        eprintln!(
            "error: RINGLEADER_MASTER={} is set, but this build of Ringleader runs jobs embedded only; \
             unset RINGLEADER_MASTER to run in-process",
            master.to_string_lossy()
        );
        return ExitCode::from(2);
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
