//! What the state remembers besides jobs: registered workers and stored datasets.

use ringleader_core::ids::WorkerId;
use ringleader_core::store::DatasetFormat;
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
    /// Its filesystem identity ([`ringleader_core::machine`]): equal means the same files.
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
