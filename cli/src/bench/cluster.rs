//! `ringleader bench cluster`: a local cluster against the embedded engine (sort, sum, a
//! trivial job's latency), and what collecting rows adds to the driver's Raft log.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use super::inputs::{BenchPlaces, ensure_numbers_input, ensure_sort_input, ensure_text_input, warm};
use super::local_cluster::BenchCluster;
use super::measure::{Measured, alternate, gb, io_flags, last_line, measure, rate, with};
use crate::generate::parse_size;

/// `bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Records to sort (100 bytes each).
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// int64 values to sum.
    #[arg(long, default_value_t = 100_000_000)]
    pub rows: u64,
    /// Workers in the local cluster.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Runs of each measurement; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Runs of the trivial job.
    #[arg(long, default_value_t = 50)]
    pub trivial_runs: usize,
    /// Bytes of text lines collected to the client, to measure what they add to the driver's
    /// Raft log (suffixes K, M, G; 0: skip).
    #[arg(long, default_value = "100M", value_parser = parse_size)]
    pub collect_bytes: u64,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-cluster.json")]
    pub json: PathBuf,
    /// Where to write the plot of throughput per workload (SVG).
    #[arg(long, default_value = "bench-cluster.svg")]
    pub plot: PathBuf,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: BenchPlaces,
}

pub(super) fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let examples = args.places.examples()?;
    let base = args.places.dir();
    let sort_in = base.join(format!("sort-{}", args.records));
    let sum_in = base.join(format!("numbers-{}", args.rows));
    let tiny_in = base.join("numbers-1000");
    ensure_sort_input(&sort_in, args.records)?;
    ensure_numbers_input(&sum_in, args.rows)?;
    ensure_numbers_input(&tiny_in, 1000)?;
    let tiny_sort = base.join("sort-1000");
    ensure_sort_input(&tiny_sort, 1000)?;
    // Its nodes log each job's timeline (see `timeline`): a few lines a task.
    let cluster = BenchCluster::up_logging(base.join("cluster"), args.workers, super::timeline::LOG_FILTER)?;
    let on_cluster = |c: &mut Command| -> anyhow::Result<Measured> { measure(cluster.client(c)) };
    let embedded = |c: &mut Command| -> anyhow::Result<Measured> { measure(c.env_remove("RINGLEADER_MASTER")) };
    let runs = args.runs.max(1);
    let sort_out = base.join("out-sort-cluster");
    let sort = io_flags(&sort_in, &sort_out);
    let sum = |c: &mut Command| {
        c.arg("--input").arg(&sum_in);
    };
    let sort_bytes = warm(&sort_in)?;
    // Warm the cluster: the first run uploads and caches the binaries.
    on_cluster(Command::new(examples.join("sum")).arg("--input").arg(&tiny_in))?;
    on_cluster(&mut with(
        Command::new(examples.join("sort")),
        io_flags(&tiny_sort, &sort_out),
    ))?;
    let (c, e) = alternate(
        runs,
        "sort",
        || on_cluster(&mut with(Command::new(examples.join("sort")), sort)),
        || embedded(&mut with(Command::new(examples.join("sort")), sort)),
    )?;
    let report = ringleader_datasets::validate::validate_sort(&sort_in, &sort_out)?;
    if !report.ok() {
        bail!("the cluster sort's output does not validate: {report:?}");
    }
    let sum_bytes = warm(&sum_in)?;
    let (sc, se) = alternate(
        runs,
        "sum",
        || on_cluster(&mut with(Command::new(examples.join("sum")), sum)),
        || embedded(&mut with(Command::new(examples.join("sum")), sum)),
    )?;
    if last_line(&sc.stdout) != last_line(&se.stdout) {
        bail!(
            "cluster sum {} differs from embedded {}",
            last_line(&sc.stdout),
            last_line(&se.stdout)
        );
    }
    let mut whole: Vec<Duration> = Vec::new();
    for _ in 0..args.trivial_runs.clamp(1, 10) {
        whole.push(on_cluster(Command::new(examples.join("sum")).arg("--input").arg(&tiny_in))?.elapsed);
    }
    whole.sort();
    // One program submitting the trivial job again and again, each timed inside it.
    let jobs = args.trivial_runs.max(1);
    let program = on_cluster(
        Command::new(examples.join("sum"))
            .arg("--input")
            .arg(&tiny_in)
            .arg("--repeat")
            .arg((jobs + 1).to_string()),
    )?;
    let mut trivial: Vec<f64> = program
        .stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("job ")?
                .split_once(": ")?
                .1
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .collect();
    if trivial.is_empty() {
        bail!("the trivial program printed no job times: {}", program.stdout);
    }
    trivial.sort_by(f64::total_cmp);
    let pct = |p: usize| trivial[(trivial.len() * p / 100).min(trivial.len() - 1)];
    let timelines = super::timeline::read(&cluster.dir);
    let last = super::timeline::last_jobs(&timelines, trivial.len());
    println!();
    println!(
        "Local cluster ({} workers x 2 slots, 1 driver) vs embedded, median of {runs} runs (ratio: cluster time / embedded time)",
        args.workers
    );
    println!();
    println!("| workload | input | cluster | throughput | embedded | throughput | ratio | target |");
    println!("|---|---|---|---|---|---|---|---|");
    let measured = [
        (format!("sort {} records", args.records), sort_bytes, &c, &e, "<= 1.5x"),
        (format!("sum {} int64", args.rows), sum_bytes, &sc, &se, "<= 2x"),
    ];
    let published: Vec<_> = measured
        .iter()
        .map(|(name, bytes, c, e, _)| super::peers::Published::of(name, *bytes, [("cluster", *c), ("embedded", *e)]))
        .collect();
    for (name, bytes, c, e, target) in measured {
        println!(
            "| {name} | {} | {:.3} s | {} | {:.3} s | {} | {:.2}x | {target} |",
            gb(bytes),
            c.elapsed.as_secs_f64(),
            rate(bytes, c.elapsed),
            e.elapsed.as_secs_f64(),
            rate(bytes, e.elapsed),
            c.elapsed.as_secs_f64() / e.elapsed.as_secs_f64()
        );
    }
    println!();
    println!(
        "trivial job (sum of 1,000 rows, {} jobs of one program, submission to result): median {:.1} ms, p90 {:.1} ms, min {:.1} ms (target: median <= 5 ms, p90 <= 10 ms)",
        trivial.len(),
        pct(50),
        pct(90),
        trivial[0],
    );
    print_breakdown(&timelines, &last, pct(50));
    println!(
        "trivial program (a whole process: start, connect, one job; {} runs): median {:.1} ms",
        whole.len(),
        whole[whole.len() / 2].as_secs_f64() * 1e3
    );
    super::peers::write_json(&args.json, runs, &published)?;
    let title = format!(
        "Ringleader, local cluster of {} workers vs embedded: throughput",
        args.workers
    );
    std::fs::write(&args.plot, super::peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {}; plot: {}", args.json.display(), args.plot.display());
    if args.collect_bytes > 0 {
        collect_off_the_log(&examples, &base, &cluster, args.collect_bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects `bytes` of text lines to the client on `cluster` and prints how much that grew
/// the drivers' Raft logs (rows travel outside the log: the target is under 5 MB).
pub(super) fn collect_off_the_log(
    examples: &Path,
    base: &Path,
    cluster: &BenchCluster,
    bytes: u64,
) -> anyhow::Result<()> {
    let input = base.join(format!("text-{bytes}-collect"));
    ensure_text_input(&input, bytes, 4, 100_000, 11)?;
    let logs = || -> u64 {
        (1..=5)
            .filter_map(|i| std::fs::metadata(cluster.dir.join(format!("driver-{i}/raft.redb"))).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    let collect = |c: &mut Command| {
        c.arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(base.join("out-collect"))
            .arg("--collect");
    };
    let before = logs();
    let run = measure(cluster.client(&mut with(Command::new(examples.join("chaos")), collect)))?;
    let grown = logs().saturating_sub(before);
    let local = measure(with(Command::new(examples.join("chaos")), collect).env_remove("RINGLEADER_MASTER"))?;
    let said = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("collected"))
            .unwrap_or_default()
            .to_string()
    };
    if said(&run.stdout) != said(&local.stdout) {
        bail!(
            "the cluster {:?} differs from embedded {:?}",
            said(&run.stdout),
            said(&local.stdout)
        );
    }
    println!(
        "collect {} of text lines to the client (and count its words): {:.2} s; the driver's raft.redb grew by {:.1} MB (target: < 5 MB)",
        gb(bytes),
        run.elapsed.as_secs_f64(),
        grown as f64 / 1e6
    );
    Ok(())
}

/// The median of each phase of the trivial jobs, from the nodes' logs; the rest of the
/// client's `median_ms` is the client's own (submitting, receiving the result).
fn print_breakdown(timelines: &super::timeline::Timelines, jobs: &[String], median_ms: f64) {
    let phases = super::timeline::phase_medians(timelines, jobs);
    let Some(on_cluster) = super::timeline::median_on_cluster(timelines, jobs) else {
        println!("(no job timeline in the nodes' logs: was RUST_LOG overridden?)");
        return;
    };
    println!("where a trivial job's time goes (medians over its jobs, from the drivers' and workers' logs):");
    println!();
    println!("| phase | ms |");
    println!("|---|---|");
    for (phase, ms) in phases {
        println!("| {phase} | {ms:.2} |");
    }
    println!(
        "| client: submitting, the log's first commit, the result's way back | {:.2} |",
        (median_ms - on_cluster).max(0.0)
    );
    println!();
}
