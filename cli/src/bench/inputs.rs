//! Where a benchmark keeps its data and finds the example binaries, and its inputs,
//! generated once (by a `ringleader gen` child) and kept between invocations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::Args;

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

pub(crate) fn examples_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
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

pub(super) fn data_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
