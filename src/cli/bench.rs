//! `ringleader bench embedded`: runs the shipped examples (sort, sum, wordcount) on
//! generated data and, in the same invocation, plain single-process Rust baselines of the
//! same work; prints a table of times, throughputs, ratios and peak memory. Every run is a
//! separate process, so peak memory is that run's own (from `wait4`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use rayon::prelude::*;
use ringleader_core::record::Record;

use super::generate::parse_size;

/// Which benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The embedded engine on this machine: sort, sum and wordcount vs plain Rust.
    Embedded(EmbeddedArgs),
    /// A local cluster vs the embedded engine: sort, sum, and a trivial job's latency.
    Cluster(ClusterArgs),
    /// The driver group: metadata commits per second, leader kill to re-issued task, and a
    /// sort on 3 drivers vs 1.
    Raft(super::bench_raft::RaftArgs),
    /// Separate hosts (network namespaces, links capped at 1 Gbit/s) vs the same cluster on
    /// this host: sort and sum, and how close each comes to what the links allow. Needs root.
    Hosts(super::bench_hosts::HostsArgs),
    /// Data larger than the memory budget: sorts of 1-8 GB under 512 MiB, embedded and on a
    /// local cluster, and a word count whose vocabulary outgrows its budget; time,
    /// throughput, bytes spilled, peak memory, and an SVG plot of time against size.
    Scale(super::bench_scale::ScaleArgs),
}

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
    pub places: super::bench::BenchPlaces,
}

/// Where a benchmark keeps its data and finds the example binaries (flattened into each
/// `bench` subcommand).
#[derive(Debug, Args)]
pub struct BenchPlaces {
    /// Where generated inputs are kept between invocations, and outputs written (default:
    /// `$TMPDIR/ringleader-bench`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Directory of the built examples (default: `examples/` beside this executable,
    /// built with `cargo build --release --examples` if missing).
    #[arg(long)]
    pub examples: Option<PathBuf>,
}

impl BenchPlaces {
    /// The data directory.
    pub(super) fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ringleader-bench"))
    }

    /// The examples' directory, built first if needed.
    pub(super) fn examples(&self) -> anyhow::Result<PathBuf> {
        examples_dir(self.examples.clone())
    }
}

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
    pub places: super::bench::BenchPlaces,
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

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Embedded(args) => embedded(args),
        BenchCommand::Cluster(args) => cluster(args),
        BenchCommand::Raft(args) => super::bench_raft::run(args),
        BenchCommand::Hosts(args) => super::bench_hosts::run(args),
        BenchCommand::Scale(args) => super::bench_scale::run(args),
    }
}

/// A cluster started for a benchmark, stopped when dropped.
pub(super) struct BenchCluster {
    /// Its directory.
    pub(super) dir: PathBuf,
    /// Its drivers' addresses, for `RINGLEADER_MASTER`.
    pub(super) master: String,
}

impl BenchCluster {
    /// Points `command` (a job) at this cluster: its drivers and its token.
    pub(super) fn client<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env("RINGLEADER_MASTER", &self.master)
            .env(
                ringleader_core::auth::TOKEN_FILE_ENV,
                super::cluster::token_path(&self.dir),
            )
            .env_remove(ringleader_core::auth::TOKEN_ENV)
    }
}

impl BenchCluster {
    /// `cluster up` with `workers` workers of 2 slots and one driver.
    pub(super) fn up(dir: PathBuf, workers: u32) -> anyhow::Result<BenchCluster> {
        BenchCluster::up_with(dir, workers, 1, None)
    }

    /// `cluster up` with `workers` workers of 2 slots and `drivers` drivers.
    pub(super) fn up_with(
        dir: PathBuf,
        workers: u32,
        drivers: u32,
        token: Option<&Path>,
    ) -> anyhow::Result<BenchCluster> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(&exe);
        command
            .args([
                "cluster",
                "up",
                "--workers",
                &workers.to_string(),
                "--drivers",
                &drivers.to_string(),
                "--slots",
                "2",
                "--dir",
            ])
            .arg(&dir);
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        let out = command.output()?;
        if !out.status.success() {
            bail!("cluster up failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let master = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export RINGLEADER_MASTER=").map(str::to_string))
            .context("cluster up printed no master")?;
        Ok(BenchCluster { dir, master })
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        let _ = super::cluster::down(&self.dir);
    }
}

fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
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
    let cluster = BenchCluster::up(base.join("cluster"), args.workers)?;
    let on_cluster = |c: &mut Command| -> anyhow::Result<Measured> { measure(cluster.client(c)) };
    let embedded = |c: &mut Command| -> anyhow::Result<Measured> { measure(c.env_remove("RINGLEADER_MASTER")) };
    let runs = args.runs.max(1);
    let sort_out = base.join("out-sort-cluster");
    let sort = |c: &mut Command| {
        c.arg("--input")
            .arg(&sort_in)
            .arg("--output")
            .arg(&sort_out)
            .arg("--overwrite");
    };
    let sum = |c: &mut Command| {
        c.arg("--input").arg(&sum_in);
    };
    let sort_bytes = warm(&sort_in)?;
    // Warm the cluster: the first run uploads and caches the binaries.
    on_cluster(Command::new(examples.join("sum")).arg("--input").arg(&tiny_in))?;
    on_cluster(
        Command::new(examples.join("sort"))
            .arg("--input")
            .arg(&tiny_sort)
            .arg("--output")
            .arg(&sort_out)
            .arg("--overwrite"),
    )?;
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
    let mut trivial: Vec<Duration> = Vec::new();
    for _ in 0..args.trivial_runs.max(1) {
        trivial.push(on_cluster(Command::new(examples.join("sum")).arg("--input").arg(&tiny_in))?.elapsed);
    }
    trivial.sort();
    let pct = |p: usize| trivial[(trivial.len() * p / 100).min(trivial.len() - 1)];
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
        .map(|(name, bytes, c, e, _)| {
            super::bench_peers::Published::of(name, *bytes, [("cluster", *c), ("embedded", *e)])
        })
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
        "trivial job (sum of 1,000 rows, submit to result, {} runs): median {:.1} ms, p90 {:.1} ms, min {:.1} ms (target: median < 30 ms)",
        trivial.len(),
        pct(50).as_secs_f64() * 1e3,
        pct(90).as_secs_f64() * 1e3,
        trivial[0].as_secs_f64() * 1e3
    );
    super::bench_peers::write_json(&args.json, runs, &published)?;
    let title = format!(
        "Ringleader, local cluster of {} workers vs embedded: throughput",
        args.workers
    );
    std::fs::write(&args.plot, super::bench_peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {}; plot: {}", args.json.display(), args.plot.display());
    if args.collect_bytes > 0 {
        collect_off_the_log(&examples, &base, &cluster, args.collect_bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects `bytes` of text lines to the client on `cluster` and prints how much that grew
/// the drivers' Raft logs (rows travel outside the log: the target is under 5 MB).
fn collect_off_the_log(examples: &Path, base: &Path, cluster: &BenchCluster, bytes: u64) -> anyhow::Result<()> {
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

pub(super) fn with(mut c: Command, f: impl Fn(&mut Command)) -> Command {
    f(&mut c);
    c
}

/// One measured run.
pub(super) struct Measured {
    pub(super) elapsed: Duration,
    pub(super) peak_bytes: u64,
    pub(super) stdout: String,
}

/// Runs `command` to completion; its wall time and peak resident memory.
pub(super) fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RINGLEADER_PROGRESS", "0")
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    let (status, peak_bytes) = wait_with_peak(child.id() as i32)?;
    let elapsed = started.elapsed();
    if status != 0 {
        bail!("{command:?} failed (status {status}): {}", stderr.trim());
    }
    Ok(Measured {
        elapsed,
        peak_bytes,
        stdout,
    })
}

/// Reaps `pid`, returning its exit status and its peak resident set (`ru_maxrss`).
fn wait_with_peak(pid: i32) -> anyhow::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, zero-initialised; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that has not been reaped yet.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage.ru_maxrss as u64 * 1024))
}

pub(super) fn examples_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("executable has no directory")?.join("examples");
    if !dir.join("sort").exists() {
        eprintln!("building the examples (cargo build --release --examples) ...");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--examples"])
            .status()
            .context("running cargo to build the examples; build them yourself and pass --examples DIR")?;
        if !status.success() || !dir.join("sort").exists() {
            bail!(
                "the examples are not in {}; run `cargo build --release --examples` and pass --examples DIR",
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// Generates an input once with `ringleader gen KIND ARGS…`; later invocations reuse it
/// (marked by `_READY`). The generator runs in its own process: a child started from
/// this one inherits its peak resident memory in `ru_maxrss`, so this process stays small
/// for the peaks it measures to be the jobs' own.
pub(super) fn ensure_input(dir: &Path, what: &str, kind: &str, args: &[String]) -> anyhow::Result<()> {
    if dir.join("_READY").exists() {
        return Ok(());
    }
    eprintln!("generating {what} into {} ...", dir.display());
    let exe = std::env::current_exe().context("locating this executable")?;
    let out = Command::new(exe)
        .args(["gen", kind])
        .args(args)
        .arg("--out")
        .arg(dir)
        .arg("--overwrite")
        .output()
        .context("running ringleader gen")?;
    if !out.status.success() {
        bail!("generating {what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    File::create(dir.join("_READY"))?;
    Ok(())
}

/// Reads every file under `dir` once so that every run starts from a warm page cache.
pub(super) fn warm(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let mut f = File::open(&path)?;
            total += std::io::copy(&mut f, &mut std::io::sink())?;
        }
    }
    Ok(total)
}

/// `records` gensort records in 4 files (seed 42).
pub(super) fn ensure_sort_input(dir: &Path, records: u64) -> anyhow::Result<()> {
    let args = [
        "--records".to_string(),
        records.to_string(),
        "--files".into(),
        "4".into(),
        "--seed".into(),
        "42".into(),
    ];
    ensure_input(dir, "sort records", "sort", &args)
}

/// `rows` int64 values in up to 4 Arrow IPC files (seed 42).
pub(super) fn ensure_numbers_input(dir: &Path, rows: u64) -> anyhow::Result<()> {
    let files = 4.min(rows.max(1));
    let args = [
        "--rows".to_string(),
        rows.to_string(),
        "--files".into(),
        files.to_string(),
        "--seed".into(),
        "42".into(),
    ];
    ensure_input(dir, "int64 numbers", "numbers", &args)
}

/// About `bytes` of Zipf text from a vocabulary of `vocabulary` words, in `files` files.
pub(super) fn ensure_text_input(
    dir: &Path,
    bytes: u64,
    files: u64,
    vocabulary: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let args = [
        "--bytes".to_string(),
        bytes.to_string(),
        "--files".into(),
        files.to_string(),
        "--vocabulary".into(),
        vocabulary.to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    ensure_input(dir, "text", "text", &args)
}

pub(super) fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by_key(|m| m.elapsed);
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

struct Row {
    name: String,
    bytes: u64,
    ringleader: Measured,
    baseline: Measured,
    /// DuckDB's and Polars's runs, with `--peers`.
    peers: Vec<(&'static str, Measured)>,
}

impl Row {
    fn published(&self) -> super::bench_peers::Published {
        let systems = [("ringleader", &self.ringleader), ("plain Rust", &self.baseline)]
            .into_iter()
            .chain(self.peers.iter().map(|(name, m)| (*name, m)));
        super::bench_peers::Published::of(&self.name, self.bytes, systems)
    }
}

/// With `peers`, runs each of DuckDB and Polars `runs` times on `workload`; their medians,
/// each checked by `agrees` against Ringleader's result (the last line of stdout).
fn run_peers(
    peers: Option<&super::bench_peers::Peers>,
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
    for engine in super::bench_peers::ENGINES {
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

pub(super) fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

pub(super) fn rate(bytes: u64, d: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / d.as_secs_f64())
}

fn embedded(args: EmbeddedArgs) -> anyhow::Result<ExitCode> {
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
        Some(super::bench_peers::Peers::prepare(&base)?)
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
            measure(
                Command::new(examples.join("sort"))
                    .arg("--input")
                    .arg(&sort_in)
                    .arg("--output")
                    .arg(&sort_out)
                    .arg("--overwrite"),
            )
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
            measure(
                Command::new(examples.join("wordcount"))
                    .arg("--input")
                    .arg(&text_in)
                    .arg("--output")
                    .arg(&wc_out)
                    .arg("--overwrite"),
            )
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
    super::bench_peers::write_json(&args.json, runs, &published)?;
    let title = format!("Ringleader embedded, 2 cores: throughput, median of {runs} runs");
    std::fs::write(&args.plot, super::bench_peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {}; plot: {}", args.json.display(), args.plot.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn alternate(
    runs: usize,
    what: &str,
    mut ringleader: impl FnMut() -> anyhow::Result<Measured>,
    mut baseline: impl FnMut() -> anyhow::Result<Measured>,
) -> anyhow::Result<(Measured, Measured)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!("{what}: run {}/{runs}", i + 1);
        a.push(ringleader().with_context(|| format!("ringleader {what}"))?);
        b.push(baseline().with_context(|| format!("baseline {what}"))?);
    }
    Ok((median(a), median(b)))
}

pub(super) fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_string()
}

fn print_table(rows: &[Row], runs: usize) {
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

fn data_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(['_', '.']))
        })
        .collect();
    files.sort();
    Ok(files)
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
            println!("{}", counts.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
