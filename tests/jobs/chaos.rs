//! A word count that misbehaves on purpose, for the fault-injection tests: it can panic on
//! a word, or kill its own executor process on a word (once per marker directory, or
//! always), proving that failures are reported with their cause and retried where they may.
//!
//! ```text
//! cargo build --example chaos
//! target/debug/examples/chaos --input DIR --output OUT [--panic-on WORD] [--reduce-panic-on WORD] [--crash-on WORD [--crash-marker DIR]] [--sleep-ms N] [--run-marker DIR]
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
    /// Panic in user code on the reduce side when this word's count is written.
    #[arg(long)]
    reduce_panic_on: Option<String>,
    /// Record each line's processing as an empty file `DIR/<first word>.<pid>.<n>` (to count
    /// how often each line, and so each task, ran).
    #[arg(long)]
    run_marker: Option<PathBuf>,
    /// Random faults, decided per input file by the seed: on the first line of a file
    /// (a word ending in `_0`), one task in three exits its executor (once: a marker in this
    /// directory remembers it) and another one in three sleeps up to 5 s; and the same on
    /// the reduce side for those words (up to 2.5 s).
    #[arg(long)]
    chaos_dir: Option<PathBuf>,
    /// Seed of the random faults.
    #[arg(long, default_value_t = 1)]
    chaos_seed: u64,
    /// Record when each line (map side) and each word (reduce side) was processed, by which
    /// worker and process: a file `DIR/<map|reduce>.<worker>.<pid>.<n>` holding
    /// `start_ns end_ns`.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// A straggler: the first attempt to see the line starting with this word sleeps
    /// `--straggle-ms` (once: a directory `straggled` in `--straggle-dir`, holding its
    /// process id in `pid`, remembers it), then writes `straggler-done` there.
    #[arg(long)]
    straggle: Option<String>,
    /// How long the straggler sleeps.
    #[arg(long, default_value_t = 30_000)]
    straggle_ms: u64,
    /// Where the straggler's markers go.
    #[arg(long)]
    straggle_dir: Option<PathBuf>,
    /// Also sum the numbers 0..N given to `parallelize` and print the sum.
    #[arg(long)]
    parallelize: Option<u64>,
    /// A reduce-side straggler: the first attempt to write the count of this word sleeps
    /// `--straggle-ms` (once: a directory `reduce-straggled` in `--straggle-dir`, holding
    /// its executor's process id in `pid`, remembers it), then writes
    /// `reduce-straggler-done` there and carries on.
    #[arg(long)]
    reduce_straggle: Option<String>,
    /// End each output line with a tab and the id of the executor process that wrote it.
    #[arg(long)]
    tag_writer: bool,
    /// Carry this many bytes of state in the map step (every map task's plan holds them),
    /// checked on every line: a job with a large plan.
    #[arg(long, default_value_t = 0)]
    ballast_bytes: usize,
    /// After the word count, wait (up to 2 minutes) for a file `go` in this directory, then
    /// count the input's lines in a second job of this program and print them on stderr
    /// (`counted again N lines`): a program that outlives what the cluster kept for it.
    #[arg(long)]
    count_again_after: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Faults {
    panic_on: Option<String>,
    crash_on: Option<String>,
    crash_marker: Option<PathBuf>,
    sleep_ms: u64,
    run_marker: Option<PathBuf>,
    chaos_dir: Option<PathBuf>,
    chaos_seed: u64,
    timeline: Option<PathBuf>,
    straggle: Option<String>,
    straggle_ms: u64,
    straggle_dir: Option<PathBuf>,
    ballast: Vec<u8>,
    /// Counts the lines mapped (each task once, however often it ran).
    lines: ringleader::Accumulator<u64>,
}

/// The `i`th byte of the ballast: a pattern that a truncated or shifted copy breaks.
fn ballast_byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 7) as u8
}

#[derive(Serialize, Deserialize)]
struct ReduceSide {
    straggle: Option<String>,
    straggle_ms: u64,
    straggle_dir: Option<PathBuf>,
    tag_writer: bool,
    sleep_ms: u64,
    panic_on: Option<String>,
    timeline: Option<PathBuf>,
    chaos_dir: Option<PathBuf>,
    chaos_seed: u64,
    /// Counts the words written (each task once, however often it ran).
    words: ringleader::Accumulator<u64>,
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Records that this process worked on something from `start` until now.
fn record(timeline: &Option<PathBuf>, side: &str, start: u128) {
    if let Some(dir) = timeline {
        let worker = std::env::var("RINGLEADER_WORKER_ID").unwrap_or_else(|_| "embedded".into());
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{side}.{worker}.{}.{n}", std::process::id());
        let _ = std::fs::write(dir.join(name), format!("{start} {}", now_ns()));
    }
}

/// The random fault for the first line of a file: 0 crash, 1 sleep, 2 none.
fn chaos(seed: u64, key: &str) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, key).hash(&mut h);
    let v = h.finish();
    (v % 3, (v >> 8) % 5000)
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
            chaos_dir: args.chaos_dir.clone(),
            chaos_seed: args.chaos_seed,
            timeline: args.timeline.clone(),
            straggle: args.straggle,
            straggle_ms: args.straggle_ms,
            straggle_dir: args.straggle_dir.clone(),
            ballast: (0..args.ballast_bytes).map(ballast_byte).collect(),
            lines: ctx.accumulator("lines"),
        };
        let lines = faults.lines.clone();
        let reduce_side = ReduceSide {
            straggle: args.reduce_straggle,
            straggle_ms: args.straggle_ms,
            straggle_dir: args.straggle_dir.clone(),
            tag_writer: args.tag_writer,
            sleep_ms: args.reduce_sleep_ms,
            panic_on: args.reduce_panic_on,
            timeline: args.timeline,
            chaos_dir: args.chaos_dir.clone(),
            chaos_seed: args.chaos_seed,
            words: ctx.accumulator("words"),
        };
        let words = reduce_side.words.clone();
        if let Some(n) = args.parallelize {
            let total: u64 = ctx.parallelize((0..n).collect::<Vec<u64>>(), 4)?.sum()?;
            println!("parallelized sum {total}");
        }
        if args.collect {
            let lines = ctx.text_files(&args.input)?.collect()?;
            let bytes: usize = lines.iter().map(String::len).sum();
            println!("collected {} lines, {bytes} bytes", lines.len());
        }
        let saved = ctx
            .text_files(&args.input)?
            .map_with(faults, |faults, line| {
                let start = now_ns();
                if let Some(i) = faults.ballast.len().checked_sub(1)
                    && faults.ballast[i] != ballast_byte(i)
                {
                    panic!("chaos: the ballast arrived damaged");
                }
                std::thread::sleep(std::time::Duration::from_millis(faults.sleep_ms));
                let key = line.split_whitespace().next().unwrap_or("empty");
                if let Some(dir) = &faults.chaos_dir
                    && key.ends_with("_0")
                {
                    match chaos(faults.chaos_seed, key) {
                        (0, _) if std::fs::create_dir(dir.join(format!("crashed-{key}"))).is_ok() => {
                            eprintln!("chaos: exiting the executor on {key}");
                            std::process::exit(3);
                        }
                        (1, ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                        _ => {}
                    }
                }
                if let Some(dir) = &faults.run_marker {
                    let key = line.split_whitespace().next().unwrap_or("empty");
                    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = std::fs::write(dir.join(format!("{key}.{}.{n}", std::process::id())), "");
                }
                if faults.straggle.as_deref() == Some(key)
                    && let Some(dir) = &faults.straggle_dir
                    && std::fs::create_dir(dir.join("straggled")).is_ok()
                {
                    let _ = std::fs::write(dir.join("straggled").join("pid"), std::process::id().to_string());
                    std::thread::sleep(std::time::Duration::from_millis(faults.straggle_ms));
                    let _ = std::fs::write(dir.join("straggler-done"), "");
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
                record(&faults.timeline, "map", start);
                faults.lines.add(1);
                line
            })
            .flat_map(|line| {
                line.split_whitespace()
                    .map(|w| (w.to_string(), 1u64))
                    .collect::<Vec<_>>()
            })
            .reduce_by_key(|a, b| a + b)
            .map_with(reduce_side, |side, (w, n)| {
                let start = now_ns();
                std::thread::sleep(std::time::Duration::from_millis(side.sleep_ms));
                if side.panic_on.as_deref() == Some(w.as_str()) {
                    panic!("chaos: refusing to write the count of {w:?}");
                }
                // The same faults on the reduce side, for the words that are first-line keys.
                if let Some(dir) = &side.chaos_dir
                    && w.ends_with("_0")
                {
                    match chaos(side.chaos_seed, &format!("reduce:{w}")) {
                        (0, _) if std::fs::create_dir(dir.join(format!("crashed-reduce-{w}"))).is_ok() => {
                            eprintln!("chaos: exiting the executor on reduce key {w}");
                            std::process::exit(3);
                        }
                        (1, ms) => std::thread::sleep(std::time::Duration::from_millis(ms / 2)),
                        _ => {}
                    }
                }
                if side.straggle.as_deref() == Some(w.as_str())
                    && let Some(dir) = &side.straggle_dir
                    && std::fs::create_dir(dir.join("reduce-straggled")).is_ok()
                {
                    let _ = std::fs::write(dir.join("reduce-straggled").join("pid"), std::process::id().to_string());
                    std::thread::sleep(std::time::Duration::from_millis(side.straggle_ms));
                    let _ = std::fs::write(dir.join("reduce-straggler-done"), "");
                }
                record(&side.timeline, "reduce", start);
                side.words.add(1);
                if side.tag_writer {
                    format!("{w}\t{n}\t{}", std::process::id())
                } else {
                    format!("{w}\t{n}")
                }
            })
            .save_text(Output::new(&args.output).overwrite(true))?;
        println!("{} words", saved.rows);
        // Every task counted once, whatever ran again: the input's lines, the output's words.
        println!("accumulated {} lines, {} words", lines.value(), words.value());
        if let Some(dir) = &args.count_again_after {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !dir.join("go").exists() {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "no `go` in {} within 2 minutes",
                    dir.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            eprintln!("counted again {} lines", ctx.text_files(&args.input)?.count()?);
        }
        Ok(())
    })
}
