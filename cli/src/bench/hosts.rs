//! `ringleader bench hosts`: the same cluster on separate hosts and on this one, in one
//! invocation. Three worker hosts (network namespaces on a bridge, each with its own `/tmp`,
//! links capped at 1 Gbit/s in both directions, made by `ringleader-lan`) with a client and
//! a driver on hosts of their own, beside `cluster up` with as many workers on this host.
//! Both sort 1 GB and sum 100 M int64 from a stored dataset into a stored dataset
//! (`ringleader://`), so both do the same work and only the network differs. For each run
//! on the hosts, the bytes every link carried are read from the kernel's counters: the
//! busiest link's bytes at the link rate are the least time the links allow, and the table
//! says how close the run came to it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use ringleader_lan::{ClusterSpec, LanCluster, LanError, Traffic};

use super::inputs::{ensure_numbers_input, ensure_sort_input, warm};
use super::local_cluster::BenchCluster;
use super::measure::{Measured, gb, last_line, measure, median, rate};

/// `bench hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Records to sort (100 bytes each).
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// int64 values to sum.
    #[arg(long, default_value_t = 100_000_000)]
    pub rows: u64,
    /// Worker hosts (and workers in the one-host cluster), 2 slots each.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Each host's link rate, as `tc` spells it (`1gbit`, `100mbit`, `500kbit`).
    #[arg(long, default_value = "1gbit", value_parser = parse_rate)]
    pub link: LinkRate,
    /// Runs of each measurement; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: super::inputs::BenchPlaces,
}

/// A link rate: as given, and in bytes per second.
#[derive(Debug, Clone)]
pub struct LinkRate {
    spelled: String,
    bytes_per_second: f64,
}

/// Parses a `tc` rate in bits per second with an SI suffix (`kbit`, `mbit`, `gbit`).
fn parse_rate(s: &str) -> Result<LinkRate, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n.to_string(), *scale)))
        .ok_or_else(|| format!("{s:?} is not a rate like 1gbit, 100mbit or 500kbit"))?;
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 1gbit, 100mbit or 500kbit"))?;
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("{s:?}: a rate must be positive"));
    }
    Ok(LinkRate {
        spelled: lower,
        bytes_per_second: value * scale / 8.0,
    })
}

/// One cluster under measurement: runs programs pointed at it.
trait Target {
    /// `program` as a client of this cluster.
    fn client(&self, program: &Path) -> Command;
}

impl Target for LanCluster {
    fn client(&self, program: &Path) -> Command {
        LanCluster::client(self, program)
    }
}

impl Target for BenchCluster {
    fn client(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        BenchCluster::client(self, &mut command);
        command
    }
}

/// A workload's medians on both clusters.
struct Row {
    name: String,
    bytes: u64,
    hosts: Measured,
    one_host: Measured,
    /// The bytes of the busiest link in the median run on the hosts.
    busiest_link: u64,
}

/// Runs `bench hosts`.
pub fn run(args: HostsArgs) -> anyhow::Result<ExitCode> {
    // Absolute paths: the hosts' processes start in their own /tmp.
    let examples = absolute(&args.places.examples()?)?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let base = args.places.dir();
    std::fs::create_dir_all(&base).with_context(|| format!("making {}", base.display()))?;
    let base = absolute(&base)?;
    let sort_in = base.join(format!("sort-{}", args.records));
    let sum_in = base.join(format!("numbers-{}", args.rows));
    ensure_sort_input(&sort_in, args.records)?;
    ensure_numbers_input(&sum_in, args.rows)?;
    let workers = args.workers.max(1);
    let visible = [
        exe.parent().context("executable has no directory")?.to_path_buf(),
        examples.clone(),
        base.clone(),
    ];
    eprintln!(
        "starting {workers} worker hosts, a driver host and a client host on {} links…",
        args.link.spelled
    );
    let hosts = LanCluster::up(&ClusterSpec {
        ringleader: &exe,
        drivers: 1,
        workers,
        slots: 2,
        driver_flags: &[],
        visible: &visible,
    })
    .map_err(|e| match e {
        LanError::Unavailable(why) => {
            anyhow::anyhow!("bench hosts makes network namespaces, which needs root, iproute2 and util-linux: {why}")
        }
        e => e.into(),
    })?;
    hosts.lan.cap(&args.link.spelled)?;
    eprintln!("starting the same cluster on this host…");
    let one_host = BenchCluster::up(base.join("cluster-hosts-bench"), workers as u32)?;

    let partitions = (workers * 2).to_string();
    for (name, input, format) in [
        ("bench-sort-in", &sort_in, "records"),
        ("bench-sum-in", &sum_in, "arrow"),
    ] {
        let put = |target: &dyn Target, on: &str| -> anyhow::Result<()> {
            eprintln!("putting {} into the {on}…", input.display());
            let mut command = target.client(&exe);
            command.args(["put", "--name", name, "--overwrite", "--format", format]);
            command.args(["--partitions", &partitions]).arg(input);
            measure(&mut command).with_context(|| format!("ringleader put on the {on}"))?;
            Ok(())
        };
        put(&hosts, "hosts")?;
        put(&one_host, "one-host cluster")?;
    }

    let runs = args.runs.max(1);
    let sort_args = [
        "--input",
        "ringleader://bench-sort-in",
        "--output",
        "ringleader://bench-sort-out",
        "--overwrite",
    ];
    let sort_bytes = warm(&sort_in)?;
    let sort = compare(&hosts, &one_host, runs, "sort", &examples.join("sort"), &sort_args)?;
    validate_sort(&hosts, &exe, &sort_in)?;
    let sum_bytes = warm(&sum_in)?;
    let sum = compare(
        &hosts,
        &one_host,
        runs,
        "sum",
        &examples.join("sum"),
        &["--input", "ringleader://bench-sum-in"],
    )?;
    let (a, b) = (last_line(&sum.0.stdout), last_line(&sum.1.stdout));
    if a != b {
        bail!("the sum on the hosts ({a}) differs from the one-host cluster's ({b})");
    }
    let rows = [
        row(format!("sort {} records", args.records), sort_bytes, sort),
        row(format!("sum {} int64", args.rows), sum_bytes, sum),
    ];
    print_table(&rows, &args.link, workers, runs);
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

fn row(name: String, bytes: u64, (hosts, one_host, busiest_link): (Measured, Measured, u64)) -> Row {
    Row {
        name,
        bytes,
        hosts,
        one_host,
        busiest_link,
    }
}

/// Alternates runs of `program args` on the hosts and on one host; the medians, and the
/// busiest link's bytes in the hosts' median run.
fn compare(
    hosts: &LanCluster,
    one_host: &BenchCluster,
    runs: usize,
    what: &str,
    program: &Path,
    args: &[&str],
) -> anyhow::Result<(Measured, Measured, u64)> {
    // An unmeasured run on each first: it ships the job's binary to the workers.
    eprintln!("{what}: warming up");
    measure(hosts.client(program).args(args)).with_context(|| format!("{what} on the hosts"))?;
    measure(Target::client(one_host, program).args(args)).with_context(|| format!("{what} on one host"))?;
    let mut on_hosts: Vec<(Measured, u64)> = Vec::new();
    let mut on_one = Vec::new();
    for i in 0..runs {
        eprintln!("{what}: run {}/{runs}", i + 1);
        let before = all_traffic(hosts)?;
        let measured = measure(hosts.client(program).args(args)).with_context(|| format!("{what} on the hosts"))?;
        let after = all_traffic(hosts)?;
        let carried: Vec<(u64, u64)> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.sent - b.sent, a.received - b.received))
            .collect();
        let busiest = carried
            .iter()
            .map(|&(sent, received)| sent.max(received))
            .max()
            .unwrap_or(0);
        let per_host: Vec<String> = carried
            .iter()
            .enumerate()
            .map(|(h, (sent, received))| {
                format!(
                    "host {h} sent {} MB, received {} MB",
                    sent / 1_000_000,
                    received / 1_000_000
                )
            })
            .collect();
        eprintln!(
            "  {:.3} s on the hosts; {}",
            measured.elapsed.as_secs_f64(),
            per_host.join("; ")
        );
        on_hosts.push((measured, busiest));
        on_one.push(
            measure(Target::client(one_host, program).args(args)).with_context(|| format!("{what} on one host"))?,
        );
    }
    on_hosts.sort_by_key(|(m, _)| m.elapsed);
    let (hosts_median, busiest) = on_hosts.swap_remove(on_hosts.len() / 2);
    Ok((hosts_median, median(on_one), busiest))
}

/// Every host's link counters.
fn all_traffic(hosts: &LanCluster) -> anyhow::Result<Vec<Traffic>> {
    Ok((0..hosts.lan.hosts.len())
        .map(|h| hosts.lan.traffic(h))
        .collect::<Result<_, _>>()?)
}

/// Brings the sort's stored output to the client host and checks it against the input.
fn validate_sort(hosts: &LanCluster, exe: &Path, input: &Path) -> anyhow::Result<()> {
    eprintln!("checking the sort on the hosts…");
    let mut get = hosts.client(exe);
    get.args(["get", "bench-sort-out", "/tmp/bench-sort-out", "--overwrite"]);
    measure(&mut get).context("ringleader get of the sort's output")?;
    let local = hosts.client_dir().join("bench-sort-out");
    let report = ringleader_datasets::validate::validate_sort(input, &local)?;
    std::fs::remove_dir_all(&local).ok();
    if !report.ok() {
        bail!("the sort on the hosts does not validate: {report:?}");
    }
    Ok(())
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn print_table(rows: &[Row], link: &LinkRate, workers: usize, runs: usize) {
    println!();
    println!(
        "{workers} worker hosts on {} links vs the same cluster on one host ({workers} workers x 2 slots, 1 driver), \
         stored input to stored output (2 replicas), median of {runs} runs",
        link.spelled
    );
    println!();
    println!(
        "| workload | input | hosts | throughput | one host | throughput | hosts / one host | busiest link carried | least time the links allow | of the hosts' time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let floor = Duration::from_secs_f64(r.busiest_link as f64 / link.bytes_per_second);
        // Under a megabyte (heartbeats, results), the links set no bound worth a figure.
        let (floor_text, share) = if r.busiest_link < 1_000_000 {
            ("none (no data crossed)".to_string(), "-".to_string())
        } else {
            (
                seconds(floor),
                format!("{:.0}%", 100.0 * floor.as_secs_f64() / r.hosts.elapsed.as_secs_f64()),
            )
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2}x | {:.0} MB | {floor_text} | {share} |",
            r.name,
            gb(r.bytes),
            seconds(r.hosts.elapsed),
            rate(r.bytes, r.hosts.elapsed),
            seconds(r.one_host.elapsed),
            rate(r.bytes, r.one_host.elapsed),
            r.hosts.elapsed.as_secs_f64() / r.one_host.elapsed.as_secs_f64(),
            r.busiest_link as f64 / 1e6,
        );
    }
    println!();
    println!(
        "The least time the links allow is the busiest link's bytes (either direction, from the kernel's counters) at {}; \
         100% would mean the job ran at link speed.",
        link.spelled
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bits_per_second_with_si_suffixes() {
        let bytes = |s: &str| parse_rate(s).map(|r| r.bytes_per_second);
        assert_eq!(bytes("1gbit"), Ok(125e6));
        assert_eq!(bytes("100Mbit"), Ok(12.5e6));
        assert_eq!(bytes("2.5mbit"), Ok(312_500.0));
        assert!(parse_rate("1gb").is_err());
        assert!(parse_rate("0mbit").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
