//! `ringleader bench embedded`: runs the shipped examples (sort, sum, wordcount) on
//! generated data and, in the same invocation, plain single-process Rust baselines of the
//! same work (and with `--peers` DuckDB and Polars); prints a table of times, throughputs,
//! ratios and peak memory, and writes JSON and an SVG plot.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Args;

use super::inputs::{BenchPlaces, ensure_numbers_input, ensure_sort_input, ensure_text_input, warm};
use super::measure::{Measured, alternate, gb, io_flags, last_line, measure, median, rate, with};
use crate::generate::parse_size;

/// `bench embedded`.
#[derive(Debug, Args)]
pub struct EmbeddedArgs {
    /// Records to sort (100 bytes each).
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// int64 values to sum.
    #[arg(long, default_value_t = 100_000_000)]
    pub rows: u64,
    /// Bytes of text to count words in (suffixes K, M, G accepted).
    #[arg(long, default_value = "160M", value_parser = parse_size)]
    pub text_bytes: u64,
    /// Runs of each measurement; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: BenchPlaces,
    /// Also run DuckDB and Polars on the same data (their Python packages are installed
    /// into a virtual environment under target/py when missing).
    #[arg(long)]
    pub peers: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-embedded.json")]
    pub json: PathBuf,
    /// Where to write the plot of throughput per workload (SVG).
    #[arg(long, default_value = "bench-embedded.svg")]
    pub plot: PathBuf,
}

pub(super) struct Row {
    name: String,
    bytes: u64,
    ringleader: Measured,
    baseline: Measured,
    /// DuckDB's and Polars's runs, with `--peers`.
    peers: Vec<(&'static str, Measured)>,
}

impl Row {
    fn published(&self) -> super::peers::Published {
        let systems = [("ringleader", &self.ringleader), ("plain Rust", &self.baseline)]
            .into_iter()
            .chain(self.peers.iter().map(|(name, m)| (*name, m)));
        super::peers::Published::of(&self.name, self.bytes, systems)
    }
}

/// With `peers`, runs each of DuckDB and Polars `runs` times on `workload`; their medians,
/// each checked by `agrees` against Ringleader's result (the last line of stdout).
pub(super) fn run_peers(
    peers: Option<&super::peers::Peers>,
    runs: usize,
    workload: &str,
    input: &Path,
    output: Option<&Path>,
    agrees: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(&'static str, Measured)>> {
    let Some(peers) = peers else {
        return Ok(Vec::new());
    };
    let mut measured = Vec::new();
    for engine in super::peers::ENGINES {
        let mut all = Vec::new();
        for i in 0..runs {
            eprintln!("{workload}: {engine} run {}/{runs}", i + 1);
            all.push(peers.run(engine, workload, input, output)?);
        }
        let m = median(all);
        if !agrees(&last_line(&m.stdout)) {
            bail!(
                "{engine}'s {workload} disagrees with Ringleader's: {}",
                last_line(&m.stdout)
            );
        }
        measured.push((engine, m));
    }
    Ok(measured)
}

pub(super) fn embedded(args: EmbeddedArgs) -> anyhow::Result<ExitCode> {
    let examples = args.places.examples()?;
    let base = args.places.dir();
    let exe = std::env::current_exe()?;
    let sort_in = base.join(format!("sort-{}", args.records));
    let sum_in = base.join(format!("numbers-{}", args.rows));
    let text_in = base.join(format!("text-{}", args.text_bytes));
    ensure_sort_input(&sort_in, args.records)?;
    ensure_numbers_input(&sum_in, args.rows)?;
    ensure_text_input(&text_in, args.text_bytes, 4, 100_000, 42)?;
    let runs = args.runs.max(1);
    let mut rows = Vec::new();
    let peers = if args.peers {
        Some(super::peers::Peers::prepare(&base)?)
    } else {
        None
    };
    let peer_out = base.join("out-peer");

    let sort_bytes = warm(&sort_in)?;
    let sort_out = base.join("out-sort");
    let sort_base_out = base.join("out-sort-baseline");
    let (rl, bl) = alternate(
        runs,
        "sort",
        || {
            measure(&mut with(
                Command::new(examples.join("sort")),
                io_flags(&sort_in, &sort_out),
            ))
        },
        || {
            measure(
                Command::new(&exe)
                    .args(["baseline", "sort", "--input"])
                    .arg(&sort_in)
                    .arg("--output")
                    .arg(&sort_base_out),
            )
        },
    )?;
    let report = ringleader_datasets::validate::validate_sort(&sort_in, &sort_out)?;
    if !report.ok() {
        bail!("the sort's output does not validate: {report:?}");
    }
    let records = args.records.to_string();
    let peers_ran = run_peers(peers.as_ref(), runs, "sort", &sort_in, Some(&peer_out), |l| {
        l == records
    })?;
    rows.push(Row {
        name: format!("sort {} records", args.records),
        bytes: sort_bytes,
        ringleader: rl,
        baseline: bl,
        peers: peers_ran,
    });

    let sum_bytes = warm(&sum_in)?;
    let (rl, bl) = alternate(
        runs,
        "sum",
        || measure(Command::new(examples.join("sum")).arg("--input").arg(&sum_in)),
        || measure(Command::new(&exe).args(["baseline", "sum", "--input"]).arg(&sum_in)),
    )?;
    let (a, b) = (last_line(&rl.stdout), last_line(&bl.stdout));
    if a != b {
        bail!("sum disagrees with the baseline: {a} vs {b}");
    }
    let peers_ran = run_peers(peers.as_ref(), runs, "sum", &sum_in, None, |l| l == a)?;
    rows.push(Row {
        name: format!("sum {} int64", args.rows),
        bytes: sum_bytes,
        ringleader: rl,
        baseline: bl,
        peers: peers_ran,
    });

    let text_bytes = warm(&text_in)?;
    let wc_out = base.join("out-wordcount");
    let wc_base_out = base.join("out-wordcount-baseline");
    let (rl, bl) = alternate(
        runs,
        "wordcount",
        || {
            measure(&mut with(
                Command::new(examples.join("wordcount")),
                io_flags(&text_in, &wc_out),
            ))
        },
        || {
            measure(
                Command::new(&exe)
                    .args(["baseline", "wordcount", "--input"])
                    .arg(&text_in)
                    .arg("--output")
                    .arg(&wc_base_out),
            )
        },
    )?;
    let distinct = last_line(&rl.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let peers_ran = run_peers(peers.as_ref(), runs, "wordcount", &text_in, Some(&peer_out), |l| {
        l == distinct
    })?;
    rows.push(Row {
        name: "wordcount".to_string(),
        bytes: text_bytes,
        ringleader: rl,
        baseline: bl,
        peers: peers_ran,
    });
    let _ = std::fs::remove_file(&peer_out);

    print_table(&rows, runs);
    let published: Vec<_> = rows.iter().map(Row::published).collect();
    super::peers::write_json(&args.json, runs, &published)?;
    let title = format!("Ringleader embedded, 2 cores: throughput, median of {runs} runs");
    std::fs::write(&args.plot, super::peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {}; plot: {}", args.json.display(), args.plot.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_table(rows: &[Row], runs: usize) {
    println!();
    println!("Embedded engine vs plain single-process Rust, median of {runs} runs (ratio > 1: Ringleader is faster)");
    println!();
    let peers: Vec<&str> = rows
        .first()
        .map_or(Vec::new(), |r| r.peers.iter().map(|(n, _)| *n).collect());
    let mut header =
        "| workload | input | ringleader | throughput | baseline | throughput | ratio | peak mem ringleader | peak mem baseline |"
            .to_string();
    let mut rule = "|---|---|---|---|---|---|---|---|---|".to_string();
    for peer in &peers {
        header += &format!(" {peer} (ratio, peak) |");
        rule += "---|";
    }
    println!("{header}");
    println!("{rule}");
    for r in rows {
        let (t1, t2) = (r.ringleader.elapsed, r.baseline.elapsed);
        let mut line = format!(
            "| {} | {} | {:.3} s | {} | {:.3} s | {} | {:.2}x | {} | {} |",
            r.name,
            gb(r.bytes),
            t1.as_secs_f64(),
            rate(r.bytes, t1),
            t2.as_secs_f64(),
            rate(r.bytes, t2),
            t2.as_secs_f64() / t1.as_secs_f64(),
            gb(r.ringleader.peak_bytes),
            gb(r.baseline.peak_bytes),
        );
        for (_, m) in &r.peers {
            line += &format!(
                " {:.3} s ({:.2}x, {}) |",
                m.elapsed.as_secs_f64(),
                m.elapsed.as_secs_f64() / t1.as_secs_f64(),
                gb(m.peak_bytes)
            );
        }
        println!("{line}");
    }
}
