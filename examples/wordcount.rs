//! Counts words: maximal runs of non-whitespace, case-sensitive. Writes `part-*` files of
//! `word<TAB>count` lines, each word exactly once (or, with `--output-format arrow|parquet`,
//! `part-*.arrow` / `part-*.parquet` files with columns `word` and `count`).
//!
//! ```text
//! cargo run --release --example wordcount -- --input datasets/fixtures/text --output target/wordcount --overwrite
//! ```
//!
//! On a cluster, `--input` and `--output` may also be `ringleader://NAME`, a dataset stored
//! on the workers (`ringleader put`, `ringleader get`); `--dataset NAME` is the same as
//! `--input ringleader://NAME`. Local paths work from any machine: when the workers cannot
//! see the client's files, the input travels to them and the output comes back.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::{Combiner, Output, OutputFormat, TextOptions};
use serde::{Deserialize, Serialize};

/// Count the words of text files.
#[derive(Parser)]
struct Args {
    /// A text file, a directory of them, or ringleader://NAME (a stored dataset).
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    input: Option<PathBuf>,
    /// Or: a dataset stored on the cluster with `ringleader put --name NAME` (cluster mode).
    #[arg(long)]
    dataset: Option<String>,
    /// The output directory, or ringleader://NAME (refused if it exists, unless --overwrite).
    #[arg(long)]
    output: PathBuf,
    /// Replace an existing output directory once the new output is complete.
    #[arg(long)]
    overwrite: bool,
    /// Replace bytes that are not UTF-8 instead of failing.
    #[arg(long)]
    lossy: bool,
    /// text: `word<TAB>count` lines; arrow, parquet: columns `word` and `count`.
    #[arg(long, value_enum, default_value_t)]
    output_format: OutputFormat,
}

/// One output row in the columnar formats.
#[derive(Serialize, Deserialize)]
struct WordCount {
    word: String,
    count: u64,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let lines = match (&args.input, &args.dataset) {
            (Some(input), _) => ctx.text_files_with(input, TextOptions { lossy: args.lossy })?,
            (None, Some(name)) => ctx.dataset::<String>(name)?,
            (None, None) => anyhow::bail!("give --input DIR or --dataset NAME"),
        };
        let counts = lines.flat_map_reduce(
            |line: &String, counts: &mut Combiner<String, u64>| {
                for word in line.split_whitespace() {
                    counts.add(word, 1);
                }
            },
            |a, b| a + b,
        );
        let output = Output::new(&args.output).overwrite(args.overwrite);
        let saved = match args.output_format {
            OutputFormat::Text => counts
                .map(|(word, count)| format!("{word}\t{count}"))
                .save_text(output)?,
            OutputFormat::Arrow => counts
                .map(|(word, count)| WordCount { word, count })
                .save_arrow(output)?,
            OutputFormat::Parquet => counts
                .map(|(word, count)| WordCount { word, count })
                .save_parquet(output)?,
        };
        println!(
            "{} distinct words, written to {} ({} part files)",
            saved.rows,
            args.output.display(),
            saved.files
        );
        if ctx.last_spilled_bytes() > 0 {
            println!("spilled {} bytes past the memory budget", ctx.last_spilled_bytes());
        }
        Ok(())
    })
}
