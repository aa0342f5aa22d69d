//! Engine settings, with defaults that suit a laptop and `RINGLEADER_*` environment
//! variables to change them without touching the job.

use std::path::PathBuf;

use crate::{Error, Result};

/// How the embedded engine runs a job.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads of the task pool (`RINGLEADER_THREADS`; default: the number of cores).
    pub threads: usize,
    /// Partitions after a shuffle (`RINGLEADER_PARTITIONS`; default: 4 per thread).
    pub shuffle_partitions: u32,
    /// Bytes of shuffle data held in memory before spilling to disk
    /// (`RINGLEADER_MEMORY`, e.g. `512M`, `2G`; default: 2 GiB or a quarter of RAM,
    /// whichever is smaller).
    pub memory_limit: usize,
    /// Largest input split in bytes (`RINGLEADER_SPLIT_SIZE`; default 64 MiB).
    pub split_size: u64,
    /// Where spill files go (`RINGLEADER_SPILL_DIR`; default: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    /// Show per-stage progress on stderr when it is a terminal (`RINGLEADER_PROGRESS=0` turns it off).
    pub progress: bool,
    /// Copies of each partition of a stored dataset a job writes (`RINGLEADER_REPLICAS`;
    /// default 2).
    pub replicas: u32,
    /// A join sends its smaller side to every task instead of shuffling both when that
    /// side's estimated size is at most this many bytes (`RINGLEADER_BROADCAST_JOIN_BYTES`;
    /// default 4 MiB; 0 never).
    pub broadcast_join_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Config {
            threads,
            shuffle_partitions: (threads * 4) as u32,
            memory_limit: default_memory_limit(),
            split_size: 64 << 20,
            spill_dir: None,
            progress: true,
            replicas: 2,
            broadcast_join_bytes: 4 << 20,
        }
    }
}

fn default_memory_limit() -> usize {
    ((machine_ram() / 4) as usize).min(2 << 30)
}

/// This machine's RAM in bytes (8 GiB if /proc/meminfo cannot say).
pub fn machine_ram() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// Parses a byte size such as `1048576`, `64K`, `512M`, `2G` or `1GiB`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

impl Config {
    /// Defaults, overridden by any `RINGLEADER_*` variable that is set.
    pub fn from_env() -> Result<Config, Error> {
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// Defaults, overridden by the `RINGLEADER_*` variables `lookup` finds.
    pub(crate) fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let mut c = Config::default();
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let bad = |name: &str, v: &str, want: &str| Error::Config(format!("{name}={v:?}: expected {want}"));
        let positive = |name: &str| -> Result<Option<u32>, Error> {
            var(name)
                .map(|v| {
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad(name, &v, "a positive number"))
                })
                .transpose()
        };
        if let Some(n) = positive("RINGLEADER_THREADS")? {
            c.threads = n as usize;
            c.shuffle_partitions = n * 4;
        }
        if let Some(n) = positive("RINGLEADER_PARTITIONS")? {
            c.shuffle_partitions = n;
        }
        if let Some(n) = positive("RINGLEADER_REPLICAS")? {
            c.replicas = n;
        }
        if let Some(v) = var("RINGLEADER_MEMORY") {
            c.memory_limit =
                parse_bytes(&v).ok_or_else(|| bad("RINGLEADER_MEMORY", &v, "a size like 512M or 2G"))? as usize;
        }
        // An executor's worker caps its budget (its share of the machine).
        if let Some(cap) = var(ringleader_core::net::executor_env::WORKER_MEMORY).and_then(|v| parse_bytes(&v)) {
            c.memory_limit = c.memory_limit.min(cap as usize);
        }
        if let Some(v) = var("RINGLEADER_SPLIT_SIZE") {
            c.split_size = parse_bytes(&v)
                .filter(|&n| n > 0)
                .ok_or_else(|| bad("RINGLEADER_SPLIT_SIZE", &v, "a size like 64M"))?;
        }
        if let Some(v) = var("RINGLEADER_BROADCAST_JOIN_BYTES") {
            c.broadcast_join_bytes = parse_bytes(&v)
                .ok_or_else(|| bad("RINGLEADER_BROADCAST_JOIN_BYTES", &v, "a size like 4M, or 0 for never"))?;
        }
        if let Some(v) = var("RINGLEADER_SPILL_DIR") {
            c.spill_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("RINGLEADER_PROGRESS") {
            c.progress = !matches!(v.as_str(), "0" | "false" | "no" | "off");
        }
        Ok(c)
    }

    /// Refuses settings no job can work with: a memory budget too small to hold one batch,
    /// a spill directory that is missing or not writable (before any job starts).
    pub fn check(&self) -> Result<()> {
        use ringleader_core::memory::MIN_BUDGET;
        if self.memory_limit < MIN_BUDGET {
            return Err(Error::Config(format!(
                "RINGLEADER_MEMORY (the memory budget) is {} bytes, too small to hold one batch of rows: give at least {}K, e.g. RINGLEADER_MEMORY=512M",
                self.memory_limit,
                MIN_BUDGET >> 10
            )));
        }
        if let Some(dir) = &self.spill_dir {
            tempfile::Builder::new()
                .prefix(".ringleader-check-")
                .tempfile_in(dir)
                .map_err(|e| {
                    Error::Config(format!(
                        "RINGLEADER_SPILL_DIR {} cannot take spill files ({e}): give an existing, writable directory",
                        dir.display()
                    ))
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executors_budget_is_the_smaller_of_its_jobs_and_its_workers() {
        let with = |vars: &[(&str, &str)]| {
            let vars: std::collections::HashMap<String, String> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::from_vars(|name| vars.get(name).cloned()).expect("config")
        };
        let job_and_worker = with(&[("RINGLEADER_MEMORY", "1G"), ("RINGLEADER_WORKER_MEMORY", "64M")]);
        assert_eq!(job_and_worker.memory_limit, 64 << 20);
        let job_asks_less = with(&[("RINGLEADER_MEMORY", "8M"), ("RINGLEADER_WORKER_MEMORY", "64M")]);
        assert_eq!(job_asks_less.memory_limit, 8 << 20);
        let worker_only = with(&[("RINGLEADER_WORKER_MEMORY", "32M")]);
        assert_eq!(worker_only.memory_limit, (32 << 20).min(Config::default().memory_limit));
    }

    #[test]
    fn a_budget_too_small_and_an_unusable_spill_directory_are_named_before_any_job() {
        let tiny = Config {
            memory_limit: 512,
            ..Config::default()
        };
        let message = tiny.check().expect_err("512 bytes").to_string();
        assert!(message.contains("RINGLEADER_MEMORY"), "{message}");
        let missing = Config {
            spill_dir: Some(PathBuf::from("/nonexistent/ringleader-spill")),
            ..Config::default()
        };
        let message = missing.check().expect_err("a missing directory").to_string();
        assert!(
            message.contains("RINGLEADER_SPILL_DIR") && message.contains("/nonexistent/ringleader-spill"),
            "{message}"
        );
        assert!(crate::Context::new(missing).is_err(), "an engine started with it");
        let dir = tempfile::tempdir().expect("dir");
        let fine = Config {
            spill_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        fine.check().expect("a writable directory");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("read").count(),
            0,
            "the check left a file"
        );
    }
}
