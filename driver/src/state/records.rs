//! What the state remembers besides jobs: registered workers, stored datasets, and the
//! dataset writes placed but not yet committed.

use ringleader_core::ids::WorkerId;
use ringleader_core::io::store::DatasetFormat;
use serde::{Deserialize, Serialize};

/// A registered worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerRecord {
    /// Its id (`worker-N`).
    pub id: WorkerId,
    /// Where its gRPC and Flight services listen.
    pub address: String,
    /// How many tasks it runs at once.
    pub slots: u32,
    /// Its process id (for `cluster status`).
    pub pid: u32,
    /// Its shuffle directory: reducers on the same machine read map output from it directly.
    pub shuffle_dir: String,
    /// Its filesystem identity ([`ringleader_core::net::machine`]): equal means the same files.
    pub machine: String,
    /// Its process's incarnation: another one at the same address is a restarted worker.
    #[serde(default)]
    pub incarnation: String,
}

/// A stored dataset: each partition on its ring owners.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetRecord {
    /// Its name.
    pub name: String,
    /// The committed generation: the directory its partitions live under on each worker.
    pub generation: String,
    /// What its rows are.
    pub format: DatasetFormat,
    /// Copies of each partition.
    pub replicas: u32,
    /// Worker ids holding each partition (primary first), by partition.
    pub placement: Vec<Vec<WorkerId>>,
    /// Rows per partition.
    pub rows: Vec<u64>,
    /// Bytes per partition (Arrow in-memory size).
    pub bytes: Vec<u64>,
}

/// A write of a stored dataset placed but not yet committed (a `put` uploading, or a job
/// writing a `ringleader://` output): replicated before its first byte is sent, so every
/// driver knows its partitions are on their way and workers keep them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingDataset {
    /// The dataset's name.
    pub name: String,
    /// The generation being written.
    pub generation: String,
    /// The generation the name had when the write was placed (`None`: no dataset of that
    /// name): the commit applies only if the name still has it.
    pub expected: Option<String>,
    /// When it was placed, Unix milliseconds (a write abandoned for long is dropped).
    pub placed_ms: u64,
}

impl PendingDataset {
    /// Its key in [`super::ClusterState::pending`]: `name/generation`.
    pub fn key(&self) -> String {
        pending_key(&self.name, &self.generation)
    }
}

/// The key of a pending write of `generation` of dataset `name`.
pub fn pending_key(name: &str, generation: &str) -> String {
    format!("{name}/{generation}")
}
