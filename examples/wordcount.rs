//! Counts words: maximal runs of non-whitespace, case-sensitive. Writes `part-*` files of
//! `word<TAB>count` lines, each word exactly once.
//!
//! ```text
//! cargo run --release --example wordcount -- --input datasets/fixtures/text --output target/wordcount --overwrite
//! ```
//!
//! On a cluster, `--dataset NAME` reads a dataset stored with `ringleader put --name NAME`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::{Output, TextOptions};

/// Count the words of text files.
#[derive(Parser)]
struct Args {
    /// A text file, or a directory of them.
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    input: Option<PathBuf>,
    /// Or: a dataset stored on the cluster with `ringleader put --name NAME` (cluster mode).
    #[arg(long)]
    dataset: Option<String>,
    /// The output directory (refused if it exists, unless --overwrite).
    #[arg(long)]
    output: PathBuf,
    /// Replace an existing output directory once the new output is complete.
    #[arg(long)]
    overwrite: bool,
    /// Replace bytes that are not UTF-8 instead of failing.
    #[arg(long)]
    lossy: bool,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let lines = match (&args.input, &args.dataset) {
            (Some(input), _) => ctx.text_files_with(input, TextOptions { lossy: args.lossy })?,
            (None, Some(name)) => ctx.dataset::<String>(name)?,
            (None, None) => anyhow::bail!("give --input DIR or --dataset NAME"),
        };
        let saved = lines
            .flat_map(|line| {
                line.split_whitespace()
                    .map(|w| (w.to_string(), 1u64))
                    .collect::<Vec<_>>()
            })
            .reduce_by_key(|a, b| a + b)
            .map(|(word, count)| format!("{word}\t{count}"))
            .save_text(Output::new(&args.output).overwrite(args.overwrite))?;
        println!(
            "{} distinct words in {} files in {}",
            saved.rows,
            saved.files,
            args.output.display()
        );
        Ok(())
    })
}
