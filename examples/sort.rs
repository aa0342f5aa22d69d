//! Sorts gensort records by their 10-byte key, TeraSort-style: sample the keys, cut the key
//! space into ranges, send each record to its range's partition, sort each partition.
//! `part-00000`, `part-00001`, … concatenated in name order are every input record, sorted.
//!
//! ```text
//! cargo run --release --example sort -- --input datasets/fixtures/sort --output target/sorted --overwrite
//! cargo run --release -- validate sort --input datasets/fixtures/sort --output target/sorted
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::{Output, Record};

/// Sort gensort records by key.
#[derive(Parser)]
struct Args {
    /// A record file, a directory of them, or ringleader://NAME (a stored dataset).
    #[arg(long)]
    input: PathBuf,
    /// The output directory, or ringleader://NAME (refused if it exists, unless --overwrite).
    #[arg(long)]
    output: PathBuf,
    /// Number of output files (default: the engine's shuffle partitions).
    #[arg(long)]
    partitions: Option<u32>,
    /// Replace an existing output directory once the new output is complete.
    #[arg(long)]
    overwrite: bool,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let partitions = args.partitions.unwrap_or(ctx.config().shuffle_partitions);
        let saved = ctx
            .record_files(&args.input)?
            .sort_by_key_into(partitions, Record::key)
            .save_records(Output::new(&args.output).overwrite(args.overwrite))?;
        println!(
            "sorted {} records into {} files in {}",
            saved.rows,
            saved.files,
            args.output.display()
        );
        if ctx.last_spilled_bytes() > 0 {
            println!("spilled {} bytes past the memory budget", ctx.last_spilled_bytes());
        }
        Ok(())
    })
}
