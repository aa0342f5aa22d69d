//! The output formats a job's `--output-format` flag chooses between (see the examples).

/// How a job writes its rows: lines of text, Arrow IPC files or Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per row (`Dataset::save_text`): `part-00000`, …
    #[default]
    Text,
    /// Arrow IPC files (`Dataset::save_arrow`): `part-00000.arrow`, …
    Arrow,
    /// Parquet files (`Dataset::save_parquet`, with the `parquet` feature): `part-00000.parquet`, …
    Parquet,
}
