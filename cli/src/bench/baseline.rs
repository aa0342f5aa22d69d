//! The hidden `ringleader baseline` subcommand: one plain-Rust baseline (sort, sum, word
//! count) in its own process, so `bench embedded` measures its time and peak memory alone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use ringleader_core::data::record::Record;

use super::inputs::data_files;

/// A baseline to run in its own process.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Baseline {
    /// Read every record, rayon `par_sort_unstable` by key, write one file.
    Sort,
    /// Read every Arrow IPC file, add its int64 values in a plain loop.
    Sum,
    /// Read every text file, count words in one `HashMap`, write one file.
    Wordcount,
}

/// `ringleader baseline` (hidden): one baseline run.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Which baseline.
    #[arg(value_enum)]
    pub kind: Baseline,
    /// Input directory.
    #[arg(long)]
    pub input: PathBuf,
    /// Output file (sort, wordcount).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Syncs a baseline's output as Ringleader syncs its outputs (unless `RINGLEADER_FSYNC=0`),
/// so the two are compared at the same durability.
fn sync_like_ringleader(file: &File) -> std::io::Result<()> {
    if ringleader_core::io::writeback::durable() {
        file.sync_all()?;
    }
    Ok(())
}

/// Runs one baseline and prints its result as the last line of stdout.
pub fn baseline(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let files = data_files(&args.input)?;
    match args.kind {
        Baseline::Sort => {
            let mut bytes = Vec::new();
            for f in &files {
                File::open(f)?.read_to_end(&mut bytes)?;
            }
            let mut records = Record::slice_from_bytes(&bytes)
                .context("input is not whole records")?
                .to_vec();
            drop(bytes);
            records.par_sort_unstable_by(|a, b| a.0[..10].cmp(&b.0[..10]));
            let out = args.output.context("--output is required")?;
            let mut w = BufWriter::with_capacity(4 << 20, File::create(&out)?);
            w.write_all(Record::slice_as_bytes(&records))?;
            w.flush()?;
            sync_like_ringleader(w.get_ref())?;
            println!("{}", records.len());
        }
        Baseline::Sum => {
            let mut total: i64 = 0;
            for f in &files {
                let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(File::open(f)?), None)?;
                for batch in reader {
                    let batch = batch?;
                    let values = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .context("first column is not int64")?;
                    for &v in values.values().iter() {
                        total += v;
                    }
                }
            }
            println!("{total}");
        }
        Baseline::Wordcount => {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for f in &files {
                let text = std::fs::read_to_string(f)?;
                for word in text.split_whitespace() {
                    match counts.get_mut(word) {
                        Some(c) => *c += 1,
                        None => {
                            counts.insert(word.to_string(), 1);
                        }
                    }
                }
            }
            let out = args.output.context("--output is required")?;
            let mut w = BufWriter::new(File::create(&out)?);
            for (word, n) in &counts {
                writeln!(w, "{word}\t{n}")?;
            }
            w.flush()?;
            sync_like_ringleader(w.get_ref())?;
            println!("{}", counts.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
