//! A cluster started for a benchmark (`cluster up` as a child), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// A cluster started for a benchmark, stopped when dropped.
pub(crate) struct BenchCluster {
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
                ringleader_core::security::auth::TOKEN_FILE_ENV,
                crate::cluster_dir::token_path(&self.dir),
            )
            .env_remove(ringleader_core::security::auth::TOKEN_ENV)
    }
}

impl BenchCluster {
    /// `cluster up` with `workers` workers of 2 slots and one driver.
    pub(super) fn up(dir: PathBuf, workers: u32) -> anyhow::Result<BenchCluster> {
        BenchCluster::up_with(dir, workers, 1, None)
    }

    /// [`BenchCluster::up`] with its nodes logging under `filter` (`RUST_LOG`).
    pub(super) fn up_logging(dir: PathBuf, workers: u32, filter: &str) -> anyhow::Result<BenchCluster> {
        BenchCluster::start(dir, workers, 1, None, Some(filter))
    }

    /// `cluster up` with `workers` workers of 2 slots and `drivers` drivers.
    pub(crate) fn up_with(
        dir: PathBuf,
        workers: u32,
        drivers: u32,
        token: Option<&Path>,
    ) -> anyhow::Result<BenchCluster> {
        BenchCluster::start(dir, workers, drivers, token, None)
    }

    fn start(
        dir: PathBuf,
        workers: u32,
        drivers: u32,
        token: Option<&Path>,
        log: Option<&str>,
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
        if let Some(filter) = log {
            command.env("RUST_LOG", filter);
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
        let _ = crate::cluster::down(&self.dir);
    }
}
