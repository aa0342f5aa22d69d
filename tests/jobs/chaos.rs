//! A word count that misbehaves on purpose, for the fault-injection tests: it can panic on
//! a word, or kill its own executor process on a word (once per marker directory, or
//! always), proving that failures are reported with their cause and retried where they may.
//!
//! ```text
//! cargo build --example chaos
//! target/debug/examples/chaos --input DIR --output OUT [--panic-on WORD] [--crash-on WORD [--crash-marker DIR]] [--sleep-ms N] [--run-marker DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::Output;
use serde::{Deserialize, Serialize};

/// Count words, failing on purpose.
#[derive(Parser)]
struct Args {
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// Panic in user code when this word is seen.
    #[arg(long)]
    panic_on: Option<String>,
    /// Exit the process (status 3) when this word is seen.
    #[arg(long)]
    crash_on: Option<String>,
    /// With --crash-on: crash only if this directory has no `crashed` file yet (then create it).
    #[arg(long)]
    crash_marker: Option<PathBuf>,
    /// Also collect every line to the client and print their count and bytes.
    #[arg(long)]
    collect: bool,
    /// Sleep this long per line (a slow job).
    #[arg(long, default_value_t = 0)]
    sleep_ms: u64,
    /// Sleep this long per distinct word after the reduce (a slow reduce stage).
    #[arg(long, default_value_t = 0)]
    reduce_sleep_ms: u64,
    /// Record each line's processing as an empty file `DIR/<first word>.<pid>.<n>` (to count
    /// how often each line, and so each task, ran).
    #[arg(long)]
    run_marker: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Faults {
    panic_on: Option<String>,
    crash_on: Option<String>,
    crash_marker: Option<PathBuf>,
    sleep_ms: u64,
    run_marker: Option<PathBuf>,
}

/// Distinguishes two runs of one line in one executor process.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let faults = Faults {
            panic_on: args.panic_on,
            crash_on: args.crash_on,
            crash_marker: args.crash_marker,
            sleep_ms: args.sleep_ms,
            run_marker: args.run_marker,
        };
        if args.collect {
            let lines = ctx.text_files(&args.input)?.collect()?;
            let bytes: usize = lines.iter().map(String::len).sum();
            println!("collected {} lines, {bytes} bytes", lines.len());
        }
        let saved = ctx
            .text_files(&args.input)?
            .map_with(faults, |faults, line| {
                std::thread::sleep(std::time::Duration::from_millis(faults.sleep_ms));
                if let Some(dir) = &faults.run_marker {
                    let key = line.split_whitespace().next().unwrap_or("empty");
                    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = std::fs::write(dir.join(format!("{key}.{}.{n}", std::process::id())), "");
                }
                for word in line.split_whitespace() {
                    if faults.panic_on.as_deref() == Some(word) {
                        panic!("chaos: refusing the word {word:?}");
                    }
                    if faults.crash_on.as_deref() == Some(word) {
                        let first = match &faults.crash_marker {
                            Some(dir) => std::fs::create_dir(dir.join("crashed")).is_ok(),
                            None => true,
                        };
                        if first {
                            eprintln!("chaos: crashing on the word {word:?}");
                            std::process::exit(3);
                        }
                    }
                }
                line
            })
            .flat_map(|line| {
                line.split_whitespace()
                    .map(|w| (w.to_string(), 1u64))
                    .collect::<Vec<_>>()
            })
            .reduce_by_key(|a, b| a + b)
            .map_with(args.reduce_sleep_ms, |ms, (w, n)| {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                format!("{w}\t{n}")
            })
            .save_text(Output::new(&args.output).overwrite(true))?;
        println!("{} words", saved.rows);
        Ok(())
    })
}
