//! Counts words: maximal runs of non-whitespace, case-sensitive. Writes `part-*` files of
//! `word<TAB>count` lines, each word exactly once.
//!
//! ```text
//! cargo run --release --example wordcount -- --input datasets/fixtures/text --output target/wordcount --overwrite
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::{Output, TextOptions};

/// Count the words of text files.
#[derive(Parser)]
struct Args {
    /// A text file, or a directory of them.
    #[arg(long)]
    input: PathBuf,
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
        let saved = ctx
            .text_files_with(&args.input, TextOptions { lossy: args.lossy })?
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
