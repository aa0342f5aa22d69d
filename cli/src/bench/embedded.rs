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
    /// Both again, pinned to one core with one thread (COST).
    one_core: OneCore,
    /// DuckDB's and Polars's runs, with `--peers`.
    peers: Vec<(&'static str, Measured)>,
}

impl Row {
    fn published(&self) -> super::peers::Published {
        let systems = [
            ("ringleader", &self.ringleader),
            ("plain Rust", &self.baseline),
            ("ringleader, one core", &self.one_core.ringleader),
            ("plain Rust, one core", &self.one_core.baseline),
        ]
        .into_iter()
        .chain(self.peers.iter().map(|(name, m)| (*name, m)));
        super::peers::Published::of(&self.name, self.bytes, systems)
    }
}

/// A workload's two commands pinned to one core, each with one thread.
pub(super) struct OneCore {
    ringleader: Measured,
    baseline: Measured,
}

/// Ringleader's and the baseline's commands (built anew for each run), `runs` times each,
/// alternating: first on every core, then pinned to one core with one thread.
fn measure_workload(
    runs: usize,
    what: &str,
    ringleader: impl Fn() -> Command,
    baseline: impl Fn() -> Command,
) -> anyhow::Result<(Measured, Measured, OneCore)> {
    let (rl, bl) = alternate(runs, what, || measure(&mut ringleader()), || measure(&mut baseline()))?;
    let (rl1, bl1) = alternate(
        runs,
        &format!("{what} on one core"),
        || measure(&mut on_one_core(ringleader())),
        || measure(&mut on_one_core(baseline())),
    )?;
    Ok((
        rl,
        bl,
        OneCore {
            ringleader: rl1,
            baseline: bl1,
        },
    ))
}

/// `command` pinned to the first core it may use, with one worker thread (Ringleader's
/// task pool and rayon's).
fn on_one_core(mut command: Command) -> Command {
    use std::os::unix::process::CommandExt as _;
    command.env("RINGLEADER_THREADS", "1").env("RAYON_NUM_THREADS", "1");
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (sched_getaffinity, sched_setaffinity) on plain data.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let first = (0..libc::CPU_SETSIZE as usize)
                .find(|&c| libc::CPU_ISSET(c, &set))
                .unwrap_or(0);
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(first, &mut set);
            if libc::sched_setaffinity(0, size, &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// COST (McSherry et al.): how many of this machine's cores Ringleader needs to be faster
/// than the plain-Rust baseline on one core.
fn cores_to_beat_one_core(row: &Row) -> String {
    let one = row.one_core.baseline.elapsed;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if row.one_core.ringleader.elapsed < one {
        "1".to_string()
    } else if row.ringleader.elapsed < one {
        cores.to_string()
    } else {
        format!("more than {cores}")
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
    let (rl, bl, one_core) = measure_workload(
        runs,
        "sort",
        || with(Command::new(examples.join("sort")), io_flags(&sort_in, &sort_out)),
        || baseline_command(&exe, "sort", &sort_in, Some(&sort_base_out)),
    )?;
    let report = ringleader_datasets::validate::validate_sort(&sort_in, &sort_out)?;
    if !report.ok() {
        bail!("the sort's output does not validate: {report:?}");
    }
    let records = args.records.to_string();
    let peers_ran = run_peers(peers.as_ref(), runs, "sort", &sort_in, Some(&peer_out), |l| {
        l == records
    })?;
    let sort_streams = part_files(&sort_out)?;
    let disk = super::disk::durable_write(&base, sort_bytes, sort_streams, runs)?;
    rows.push(Row {
        name: format!("sort {} records", args.records),
        bytes: sort_bytes,
        ringleader: rl,
        baseline: bl,
        one_core,
        peers: peers_ran,
    });

    let sum_bytes = warm(&sum_in)?;
    let (rl, bl, one_core) = measure_workload(
        runs,
        "sum",
        || {
            with(Command::new(examples.join("sum")), |c| {
                c.arg("--input").arg(&sum_in);
            })
        },
        || baseline_command(&exe, "sum", &sum_in, None),
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
        one_core,
        peers: peers_ran,
    });

    let text_bytes = warm(&text_in)?;
    let wc_out = base.join("out-wordcount");
    let wc_base_out = base.join("out-wordcount-baseline");
    let (rl, bl, one_core) = measure_workload(
        runs,
        "wordcount",
        || with(Command::new(examples.join("wordcount")), io_flags(&text_in, &wc_out)),
        || baseline_command(&exe, "wordcount", &text_in, Some(&wc_base_out)),
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
        one_core,
        peers: peers_ran,
    });
    let _ = std::fs::remove_file(&peer_out);

    print_table(&rows, runs);
    print_cost(&rows);
    print_disk(&rows[0], disk, sort_streams);
    let published: Vec<_> = rows.iter().map(Row::published).collect();
    super::peers::write_json(&args.json, runs, &published)?;
    let title = format!("Ringleader embedded, 2 cores: throughput, median of {runs} runs");
    std::fs::write(&args.plot, super::peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {}; plot: {}", args.json.display(), args.plot.display());
    Ok(ExitCode::SUCCESS)
}

/// The hidden `ringleader baseline KIND` command of this executable.
fn baseline_command(exe: &Path, kind: &str, input: &Path, output: Option<&Path>) -> Command {
    let mut command = Command::new(exe);
    command.args(["baseline", kind, "--input"]).arg(input);
    if let Some(output) = output {
        command.arg("--output").arg(output);
    }
    command
}

/// The number of `part-*` files in a finished output: the streams its job wrote.
fn part_files(output: &Path) -> anyhow::Result<usize> {
    let entries = std::fs::read_dir(output).with_context(|| format!("listing {}", output.display()))?;
    Ok(entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .count())
}

/// The COST table: each workload on one core against the baseline on one core.
fn print_cost(rows: &[Row]) {
    println!();
    println!("COST: the cores Ringleader needs to beat plain Rust on one core (both pinned to one core, one thread)");
    println!();
    println!(
        "| workload | plain Rust, one core | ringleader, one core | ringleader, every core | cores to beat one core |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.3} s | {:.3} s ({:.2}x) | {:.3} s ({:.2}x) | {} |",
            r.name,
            r.one_core.baseline.elapsed.as_secs_f64(),
            r.one_core.ringleader.elapsed.as_secs_f64(),
            r.one_core.baseline.elapsed.as_secs_f64() / r.one_core.ringleader.elapsed.as_secs_f64(),
            r.ringleader.elapsed.as_secs_f64(),
            r.one_core.baseline.elapsed.as_secs_f64() / r.ringleader.elapsed.as_secs_f64(),
            cores_to_beat_one_core(r),
        );
    }
}

/// The disk's own durable write of the sort's bytes, beside the sort.
fn print_disk(sort: &Row, disk: std::time::Duration, streams: usize) {
    let mode = if ringleader_core::io::writeback::durable() {
        "outputs synced before their commit (RINGLEADER_FSYNC=0 turns it off)"
    } else {
        "RINGLEADER_FSYNC=0: outputs not synced, the baselines neither"
    };
    println!();
    println!(
        "disk: {} written and synced in {streams} streams at once: {:.3} s ({}); the sort, reading, sorting and writing them: {:.3} s ({:.2}x the disk's write alone); {mode}",
        gb(sort.bytes),
        disk.as_secs_f64(),
        rate(sort.bytes, disk),
        sort.ringleader.elapsed.as_secs_f64(),
        sort.ringleader.elapsed.as_secs_f64() / disk.as_secs_f64(),
    );
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
