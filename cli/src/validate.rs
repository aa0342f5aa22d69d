//! `ringleader validate sort`: valsort's checks on a sort's output.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ringleader_datasets::validate::validate_sort;

/// What to validate.
#[derive(Debug, Subcommand)]
pub enum ValidateCommand {
    /// OUT's part-* files, concatenated in name order, are sorted and a permutation of IN.
    Sort(SortArgs),
}

/// `validate sort`.
#[derive(Debug, Args)]
pub struct SortArgs {
    /// The sort's input (a record file or a directory of them).
    #[arg(long)]
    pub input: PathBuf,
    /// The sort's output directory.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs a `validate` subcommand; exit status 1 when the output is wrong.
pub fn run(command: ValidateCommand) -> anyhow::Result<ExitCode> {
    let ValidateCommand::Sort(a) = command;
    let report = validate_sort(&a.input, &a.output)
        .with_context(|| format!("validating {} against {}", a.output.display(), a.input.display()))?;
    println!(
        "input:      {} records, checksum {:x}",
        report.input.records, report.input.checksum
    );
    println!(
        "output:     {} records, checksum {:x} ({} files)",
        report.output.records,
        report.output.checksum,
        report.files.len()
    );
    println!("duplicates: {}", report.duplicates);
    if let Some(v) = &report.first_violation {
        println!(
            "unsorted:   {} record {} (byte offset {}) is smaller than the record before it",
            v.file.display(),
            v.record,
            v.offset()
        );
    }
    if report.input.records != report.output.records {
        println!(
            "mismatch:   the output has {} records, the input {}",
            report.output.records, report.input.records
        );
    } else if report.input.checksum != report.output.checksum {
        println!("mismatch:   same record count, but the checksums differ (records were changed)");
    }
    if report.ok() {
        println!("SUCCESS: the output is sorted and holds exactly the input's records");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILURE");
        Ok(ExitCode::FAILURE)
    }
}
