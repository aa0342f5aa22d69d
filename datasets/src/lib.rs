//! # ringleader-datasets
//!
//! Generators for the benchmark inputs and the sort validator, used by the `ringleader gen`
//! and `ringleader validate` commands and by tests.
//!
//! ## Layout
//! - [`dbbench`]: the db-benchmark's groupby and join tables, as CSV and Parquet.
//! - [`gensort`]: 100-byte records in the Sort Benchmark's gensort layout, uniform or skewed.
//! - [`graph`]: an R-MAT (power-law) directed graph as text edge lists.
//! - [`numbers`]: an `int64` column in Arrow IPC files.
//! - [`text`]: lines of Zipf-distributed words.
//! - [`validate`]: valsort's checks on a sorted output.
//! - [`write`](mod@write): writing an output directory file by file, atomically, with progress.

pub mod dbbench;
pub mod gensort;
pub mod graph;
pub mod numbers;
pub mod text;
pub mod validate;
pub mod write;

use std::path::PathBuf;

/// Errors of generation and validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The output directory exists and is not empty.
    #[error("output {0} already exists and is not empty; pass --overwrite to replace it")]
    OutputExists(PathBuf),
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Reading an input failed.
    #[error(transparent)]
    Core(#[from] ringleader_core::Error),
    /// Writing Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// This crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The row range `[start, end)` of file `index` when `rows` are spread over `files` files.
pub fn file_rows(rows: u64, files: u64, index: u64) -> (u64, u64) {
    (rows * index / files, rows * (index + 1) / files)
}
