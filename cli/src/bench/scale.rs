//! `ringleader bench scale`: how Ringleader does as data outgrows its memory budget. Sorts
//! 1, 2, 4 and 8 GB (by default) under `RINGLEADER_MEMORY=512M`, embedded and on a local
//! cluster, and word-counts a text whose vocabulary outgrows a smaller budget; prints time,
//! throughput, bytes spilled and peak memory per size, and writes an SVG plot of time
//! against size.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use clap::Args;

use super::inputs::{ensure_sort_input, ensure_text_input, warm};
use super::local_cluster::BenchCluster;
use super::measure::{gb, measure, rate};
use crate::generate::parse_size;

/// `bench scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Sort input sizes (comma-separated; suffixes K, M, G).
    #[arg(long, default_value = "1G,2G,4G,8G", value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Vec<u64>,
    /// The memory budget of the sorts (`RINGLEADER_MEMORY`; per executor on the cluster).
    #[arg(long, default_value = "512M")]
    pub memory: String,
    /// Bytes of text for the word count whose vocabulary outgrows its budget (0: skip it).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub text_bytes: u64,
    /// Distinct words in that text's vocabulary.
    #[arg(long, default_value_t = 20_000_000)]
    pub vocabulary: usize,
    /// The word count's memory budget.
    #[arg(long, default_value = "256M")]
    pub text_memory: String,
    /// Skip the local cluster (embedded only).
    #[arg(long)]
    pub no_cluster: bool,
    /// Workers of the local cluster.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: super::inputs::BenchPlaces,
    /// Where to write the plot of time against size.
    #[arg(long, default_value = "scale.svg")]
    pub plot: PathBuf,
    /// Keep each generated sort input for the next invocation (by default a size's input
    /// is removed once measured: all four take 16 GB).
    #[arg(long)]
    pub keep_inputs: bool,
}

/// One measured sort or word count.
struct Point {
    mode: &'static str,
    bytes: u64,
    seconds: f64,
    spilled: Option<u64>,
    peak: Option<u64>,
}

/// Runs the benchmark.
pub fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let examples = args.places.examples()?;
    let base = args.places.dir();
    let cluster = if args.no_cluster {
        None
    } else {
        let dir = base.join("scale-cluster");
        let _ = std::fs::remove_dir_all(&dir);
        Some(BenchCluster::up(dir, args.workers)?)
    };
    let mut points = Vec::new();
    for &size in &args.sizes {
        let records = (size / 100).max(1);
        let input = base.join(format!("sort-{records}"));
        ensure_sort_input(&input, records)?;
        let bytes = warm(&input)?;
        let output = base.join("out-scale");
        // The previous size's output goes first: an overwritten output stays until the
        // new one is complete, and the disk may not hold both.
        remove(&output)?;
        let sort = || {
            let mut command = Command::new(examples.join("sort"));
            command
                .arg("--input")
                .arg(&input)
                .arg("--output")
                .arg(&output)
                .arg("--overwrite")
                .env("RINGLEADER_MEMORY", &args.memory);
            command
        };
        // Each size starts with nothing left to write back (its input was maybe just
        // generated, the last size's output just removed).
        sync();
        let embedded = measure(&mut sort())?;
        remove(&output)?;
        points.push(Point {
            mode: "sort, embedded",
            bytes,
            seconds: embedded.elapsed.as_secs_f64(),
            spilled: Some(spilled(&embedded.stdout)),
            peak: Some(embedded.peak_bytes),
        });
        if let Some(cluster) = &cluster {
            let mut command = sort();
            sync();
            let executors = ExecutorPeaks::watch(&cluster.dir)?;
            let run = measure(cluster.client(&mut command))?;
            points.push(Point {
                mode: "sort, cluster",
                bytes,
                seconds: run.elapsed.as_secs_f64(),
                spilled: None,
                peak: Some(executors.stop()),
            });
            remove(&output)?;
        }
        if !args.keep_inputs {
            remove(&input)?;
        }
        for p in points.iter().filter(|p| p.bytes == bytes) {
            eprintln!("{}: {} in {:.2} s", p.mode, gb(p.bytes), p.seconds);
        }
    }
    if args.text_bytes > 0 {
        let input = base.join(format!("text-{}-vocabulary-{}", args.text_bytes, args.vocabulary));
        ensure_text_input(&input, args.text_bytes, 8, args.vocabulary, 7)?;
        let bytes = warm(&input)?;
        sync();
        let run = measure(
            Command::new(examples.join("wordcount"))
                .arg("--input")
                .arg(&input)
                .arg("--output")
                .arg(base.join("out-scale-words"))
                .arg("--overwrite")
                .env("RINGLEADER_MEMORY", &args.text_memory),
        )?;
        points.push(Point {
            mode: "wordcount, embedded",
            bytes,
            seconds: run.elapsed.as_secs_f64(),
            spilled: Some(spilled(&run.stdout)),
            peak: Some(run.peak_bytes),
        });
    }
    print_table(&points, &args);
    std::fs::write(&args.plot, plot(&points)).with_context(|| format!("writing {}", args.plot.display()))?;
    println!("plot of time against size: {}", args.plot.display());
    Ok(ExitCode::SUCCESS)
}

/// Samples the peak resident memory (`VmHWM`) of a local cluster's executors, the
/// workers' child processes, every 50 ms while a job runs.
struct ExecutorPeaks {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl ExecutorPeaks {
    /// Starts sampling the executors of the cluster `up` recorded in `dir`.
    fn watch(dir: &std::path::Path) -> anyhow::Result<ExecutorPeaks> {
        let workers: Vec<u32> = crate::cluster_dir::ClusterFile::read(dir)?
            .workers
            .iter()
            .map(|w| w.pid)
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                peak = children_of(&workers)
                    .into_iter()
                    .filter_map(high_water_mark)
                    .fold(peak, u64::max);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            peak
        });
        Ok(ExecutorPeaks { stop, sampler })
    }

    /// Stops sampling: the largest peak any one executor reached.
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap_or(0)
    }
}

/// Processes whose parent is one of `parents`.
fn children_of(parents: &[u32]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The parent is the field after the parenthesised command name.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    .is_some_and(|ppid| parents.contains(&ppid))
            })
        })
        .collect()
}

/// A process's peak resident memory in bytes, if it still exists.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Waits until the kernel has written every dirty page back to disk.
fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Removes `dir` if it exists.
fn remove(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The bytes an example said it spilled.
fn spilled(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("spilled ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn print_table(points: &[Point], args: &ScaleArgs) {
    println!(
        "sorts under RINGLEADER_MEMORY={} (per executor on the cluster), word count under {}:",
        args.memory, args.text_memory
    );
    println!(
        "{:<22} {:>9} {:>9} {:>11} {:>11} {:>11} {:>10}",
        "workload", "input", "time", "throughput", "spilled", "peak RSS", "vs 1st"
    );
    for p in points {
        let first = points
            .iter()
            .find(|q| q.mode == p.mode)
            .map_or(p.seconds, |q| q.seconds / q.bytes as f64 * p.bytes as f64);
        println!(
            "{:<22} {:>9} {:>8.2}s {:>11} {:>11} {:>11} {:>9.2}x",
            p.mode,
            gb(p.bytes),
            p.seconds,
            rate(p.bytes, std::time::Duration::from_secs_f64(p.seconds)),
            p.spilled.map_or("-".into(), mib),
            p.peak.map_or("-".into(), mib),
            p.seconds / first,
        );
    }
    println!("(\"vs 1st\": time over the smallest size's time scaled linearly to this size; 1.00x is linear;");
    println!(" peak RSS on the cluster: the largest one executor reached, sampled every 50 ms)");
}

/// An SVG line plot of seconds against input size, one line per workload.
fn plot(points: &[Point]) -> String {
    let (width, height, margin) = (640.0, 400.0, 60.0);
    let max_x = points.iter().map(|p| p.bytes as f64 / 1e9).fold(1.0, f64::max);
    let max_y = points.iter().map(|p| p.seconds).fold(1.0, f64::max) * 1.1;
    let x = |gb: f64| margin + gb / max_x * (width - 2.0 * margin);
    let y = |s: f64| height - margin - s / max_y * (height - 2.0 * margin);
    let colors = ["#1f77b4", "#d62728", "#2ca02c"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{margin}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{cx}\" y=\"{xl}\" text-anchor=\"middle\">input (GB)</text>\n\
         <text x=\"15\" y=\"{cy}\" transform=\"rotate(-90 15 {cy})\" text-anchor=\"middle\">time (s)</text>\n",
        b = height - margin,
        r = width - margin,
        cx = width / 2.0,
        xl = height - 15.0,
        cy = height / 2.0,
    );
    for i in 0..=4 {
        let (gx, sy) = (max_x * i as f64 / 4.0, max_y * i as f64 / 4.0);
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{gx:.1}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{sy:.1}</text>\n",
            x(gx),
            height - margin + 18.0,
            margin - 6.0,
            y(sy) + 4.0
        );
    }
    let mut modes: Vec<&str> = points.iter().map(|p| p.mode).collect();
    modes.dedup();
    for (i, mode) in modes.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.mode == *mode)
            .map(|p| (x(p.bytes as f64 / 1e9), y(p.seconds)))
            .collect();
        let coordinates: Vec<String> = line.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
        svg += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            coordinates.join(" ")
        );
        for (px, py) in &line {
            svg += &format!("<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{color}\"/>\n");
        }
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{mode}</text>\n",
            margin + 10.0,
            margin + 16.0 * i as f64
        );
    }
    svg + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_processs_children_and_their_peak_memory_are_found() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("spawn");
        let found = children_of(&[std::process::id()]);
        let pid = child.id();
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(found.contains(&pid), "{pid} not among {found:?}");
        assert!(!children_of(&[pid]).contains(&std::process::id()));
        assert!(high_water_mark(std::process::id()).is_some_and(|b| b > 1 << 20));
        assert_eq!(high_water_mark(pid), None, "gone once reaped");
    }

    #[test]
    fn the_plot_draws_one_line_per_workload_and_spills_are_read_back() {
        let points = [
            Point {
                mode: "sort, embedded",
                bytes: 1_000_000_000,
                seconds: 2.0,
                spilled: Some(0),
                peak: Some(1),
            },
            Point {
                mode: "sort, embedded",
                bytes: 2_000_000_000,
                seconds: 4.5,
                spilled: Some(5),
                peak: Some(1),
            },
            Point {
                mode: "sort, cluster",
                bytes: 1_000_000_000,
                seconds: 3.0,
                spilled: None,
                peak: None,
            },
        ];
        let svg = plot(&points);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(
            spilled("sorted 3 records\nspilled 1234 bytes past the memory budget\n"),
            1234
        );
        assert_eq!(spilled("sorted 3 records\n"), 0);
    }
}
