//! The benchmark's peers and its published forms: DuckDB and Polars running the same work
//! as `bench embedded` (`benches/peers.py`, in a Python virtual environment under
//! `target/py` that is made when missing), results as JSON, and an SVG plot of throughput
//! per workload.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::measure::{Measured, measure};

/// The peers' script, built into this executable so that it runs from anywhere.
const SCRIPT: &str = include_str!("../../../benches/peers.py");

/// The Python packages the script imports.
const PACKAGES: [&str; 4] = ["duckdb", "polars", "pyarrow", "numpy"];

/// The engines the script runs.
pub(super) const ENGINES: [&str; 2] = ["duckdb", "polars"];

/// A Python that can run the peers, and the script written out for it.
pub(super) struct Peers {
    python: PathBuf,
    script: PathBuf,
}

impl Peers {
    /// `RINGLEADER_PYTHON` or `target/py/bin/python` if it has the packages; otherwise a
    /// virtual environment is made in `target/py` and they are installed into it. The
    /// script is written into `dir`.
    pub(super) fn prepare(dir: &Path) -> anyhow::Result<Peers> {
        let venv = target_dir()?.join("py");
        let given = std::env::var_os("RINGLEADER_PYTHON").map(PathBuf::from);
        let python = match given.iter().chain([&venv.join("bin/python")]).find(|p| has_packages(p)) {
            Some(p) => p.clone(),
            None => install(&venv)?,
        };
        std::fs::create_dir_all(dir)?;
        let script = dir.join("peers.py");
        std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
        Ok(Peers { python, script })
    }

    /// The Python that has the packages.
    pub(super) fn python(&self) -> &Path {
        &self.python
    }

    /// Runs `engine` on `workload` (sort, sum, wordcount) over `input`, writing `output`.
    pub(super) fn run(
        &self,
        engine: &str,
        workload: &str,
        input: &Path,
        output: Option<&Path>,
    ) -> anyhow::Result<Measured> {
        let mut command = Command::new(&self.python);
        command.arg(&self.script).args([engine, workload]).arg(input);
        if let Some(output) = output {
            command.arg(output);
        }
        measure(&mut command)
    }
}

/// `target/`: two levels above this executable (`target/release/ringleader`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("this executable has no target directory")
}

fn has_packages(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {}", PACKAGES.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes a virtual environment at `venv` with [`PACKAGES`]; its Python.
fn install(venv: &Path) -> anyhow::Result<PathBuf> {
    eprintln!(
        "installing {} into a Python virtual environment at {} ...",
        PACKAGES.join(", "),
        venv.display()
    );
    let made = Command::new("python3").args(["-m", "venv"]).arg(venv).status();
    if !made.is_ok_and(|s| s.success()) {
        bail!(
            "cannot make a Python virtual environment at {} (is python3 with its venv module installed? \
             On Debian: apt-get install python3-venv); or set RINGLEADER_PYTHON to a Python that has {}",
            venv.display(),
            PACKAGES.join(", ")
        );
    }
    let python = venv.join("bin/python");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status();
    if !installed.is_ok_and(|s| s.success()) || !has_packages(&python) {
        bail!(
            "cannot install {} from PyPI into {} (is the network reachable?); or set RINGLEADER_PYTHON \
             to a Python that has them",
            PACKAGES.join(", "),
            venv.display()
        );
    }
    Ok(python)
}

/// One workload's measured times, for the JSON file and the plot.
#[derive(Debug, Serialize)]
pub(super) struct Published {
    /// The workload.
    pub(super) workload: String,
    /// Bytes of input.
    pub(super) bytes: u64,
    /// Each system's median run: Ringleader first, then the baseline and the peers.
    pub(super) systems: Vec<SystemRun>,
}

impl Published {
    /// `workload` over `bytes` of input, with each named system's median run.
    pub(super) fn of<'a>(
        workload: &str,
        bytes: u64,
        runs: impl IntoIterator<Item = (&'a str, &'a Measured)>,
    ) -> Published {
        Published {
            workload: workload.to_string(),
            bytes,
            systems: runs
                .into_iter()
                .map(|(system, m)| SystemRun {
                    system: system.to_string(),
                    seconds: m.elapsed.as_secs_f64(),
                    peak_bytes: m.peak_bytes,
                })
                .collect(),
        }
    }
}

/// One system's median run of a workload.
#[derive(Debug, Serialize)]
pub(super) struct SystemRun {
    /// `ringleader`, `plain Rust`, `duckdb` or `polars`.
    pub(super) system: String,
    /// Wall time of the whole process.
    pub(super) seconds: f64,
    /// Peak resident memory.
    pub(super) peak_bytes: u64,
}

/// Writes `rows` as JSON to `path`.
pub(super) fn write_json(path: &Path, runs: usize, rows: &[Published]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct File<'a> {
        runs: usize,
        workloads: &'a [Published],
    }
    let text = serde_json::to_string_pretty(&File { runs, workloads: rows })?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// An SVG bar chart: per workload, one bar of throughput (MB/s) per system.
pub(super) fn plot(title: &str, rows: &[Published]) -> String {
    let colors = ["#1f77b4", "#7f7f7f", "#ff7f0e", "#2ca02c", "#d62728"];
    let mut systems: Vec<&str> = Vec::new();
    for row in rows {
        for run in &row.systems {
            if !systems.contains(&run.system.as_str()) {
                systems.push(&run.system);
            }
        }
    }
    let (bar, gap, margin, label) = (16.0, 14.0, 20.0, 150.0);
    let width = 720.0;
    let group = bar * systems.len() as f64 + gap;
    let height = margin * 3.0 + 30.0 + group * rows.len() as f64 + 18.0 * systems.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{margin}\" y=\"{margin}\" font-size=\"14\">{title}</text>\n"
    );
    let top = margin * 2.0;
    for (w, row) in rows.iter().enumerate() {
        let y0 = top + group * w as f64;
        let rates: Vec<(usize, f64)> = row
            .systems
            .iter()
            .filter_map(|r| {
                Some((
                    systems.iter().position(|x| *x == r.system)?,
                    row.bytes as f64 / 1e6 / r.seconds,
                ))
            })
            .collect();
        let most = rates.iter().map(|(_, r)| *r).fold(1.0, f64::max);
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            label - 8.0,
            y0 + group / 2.0,
            row.workload
        );
        for (s, rate) in rates {
            let length = rate / most * (width - label - 120.0);
            let y = y0 + bar * s as f64;
            svg += &format!(
                "<rect x=\"{label}\" y=\"{y:.1}\" width=\"{length:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\">{rate:.0} MB/s</text>\n",
                bar - 2.0,
                colors[s % colors.len()],
                label + length + 4.0,
                y + bar - 5.0
            );
        }
    }
    let legend = top + group * rows.len() as f64 + margin;
    for (s, name) in systems.iter().enumerate() {
        let y = legend + 18.0 * s as f64;
        svg += &format!(
            "<rect x=\"{label}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
            y,
            colors[s % colors.len()],
            label + 18.0,
            y + 10.0
        );
    }
    svg + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_a_bar_per_system_and_workload_and_the_json_reads_back() {
        let run = |system: &str, seconds: f64| SystemRun {
            system: system.into(),
            seconds,
            peak_bytes: 1,
        };
        let rows = [
            Published {
                workload: "sort".into(),
                bytes: 1_000_000_000,
                systems: vec![run("ringleader", 2.0), run("duckdb", 4.0)],
            },
            Published {
                workload: "sum".into(),
                bytes: 800_000_000,
                systems: vec![run("ringleader", 0.1)],
            },
        ];
        let svg = plot("t", &rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Three bars and two legend swatches, plus the background.
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 2);
        assert!(svg.contains("500 MB/s") && svg.contains("250 MB/s") && svg.contains("8000 MB/s"));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bench.json");
        write_json(&path, 3, &rows).expect("json");
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parse");
        assert_eq!(back["workloads"][0]["systems"][1]["system"], "duckdb");
        assert_eq!(back["workloads"][0]["systems"][1]["seconds"], 4.0);
        assert_eq!(back["runs"], 3);
    }
}
