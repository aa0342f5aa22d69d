//! The cluster directory (`~/.ringleader/cluster` unless given): `cluster.json`, naming
//! the processes `cluster up` started, and the cluster's token; and how a client (`submit`,
//! `put`/`get`, `jobs`, the benchmarks) finds the cluster and its token from it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The default cluster directory: `~/.ringleader/cluster`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".ringleader/cluster")
}

/// One process `up` started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeProcess {
    /// Its address.
    pub address: String,
    /// Its process id.
    pub pid: u32,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// What `up` records in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    /// The drivers.
    pub drivers: Vec<NodeProcess>,
    /// The workers.
    pub workers: Vec<NodeProcess>,
    /// The CA certificate clients trust, when the cluster speaks TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
}

impl ClusterFile {
    /// Drivers known only by their addresses (started by hand; pid 0: unknown).
    pub fn of_drivers(master: &str) -> anyhow::Result<ClusterFile> {
        let drivers = ringleader::client::parse_masters(master)?
            .into_iter()
            .map(|address| NodeProcess {
                address,
                pid: 0,
                data_dir: PathBuf::new(),
            })
            .collect();
        Ok(ClusterFile {
            drivers,
            workers: Vec::new(),
            tls_ca: None,
        })
    }

    /// Reads `dir/cluster.json`.
    pub fn read(dir: &Path) -> anyhow::Result<ClusterFile> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no cluster recorded in {} (start one with `ringleader cluster up`)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a cluster file", path.display()))
    }

    /// The drivers' addresses, comma-separated (a value for `RINGLEADER_MASTER`).
    pub fn masters(&self) -> String {
        self.drivers
            .iter()
            .map(|d| d.address.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Writes `dir/cluster.json` (see [`write_whole`]).
pub fn write_file(dir: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    write_whole(&dir.join("cluster.json"), serde_json::to_string_pretty(file)?)
}

/// Writes `contents` to `path` beside it first, then renames: a reader (a test, `cluster
/// up` waiting for a node's address) never sees half of it.
pub fn write_whole(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, contents).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

/// The token file `cluster up` writes in its directory.
pub fn token_path(dir: &Path) -> PathBuf {
    dir.join("token")
}

/// Makes the token of the cluster in `dir` this process's, unless the environment names
/// one (`RINGLEADER_TOKEN`, `RINGLEADER_TOKEN_FILE`).
pub fn use_cluster_token(dir: &Path) -> anyhow::Result<()> {
    let from_env = std::env::var_os(ringleader_core::security::auth::TOKEN_ENV).is_some()
        || std::env::var_os(ringleader_core::security::auth::TOKEN_FILE_ENV).is_some();
    let path = token_path(dir);
    if !from_env && path.exists() {
        ringleader_core::security::auth::set_token(Some(ringleader_core::security::auth::read_token_file(&path)?));
    }
    if std::env::var_os(ringleader_core::security::tls::CA_ENV).is_none()
        && let Ok(file) = ClusterFile::read(dir)
        && let Some(ca) = &file.tls_ca
    {
        ringleader_core::security::tls::trust(ca)?;
    }
    Ok(())
}

/// The driver address to use: the flag, else `RINGLEADER_MASTER`, else the cluster in `dir`.
/// Also takes the cluster token from `dir` when the environment gives none.
pub fn resolve_master(flag: Option<String>, dir: &Path) -> anyhow::Result<String> {
    use_cluster_token(dir)?;
    match flag.or_else(|| std::env::var("RINGLEADER_MASTER").ok().filter(|m| !m.is_empty())) {
        Some(m) => Ok(m),
        None => Ok(ClusterFile::read(dir)?.masters()),
    }
}
