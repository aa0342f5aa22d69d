//! The driver group's consensus: openraft over [`Command`]s, with its log, vote and
//! snapshots in redb under the driver's data directory, and its RPCs over tonic in a
//! service of their own.
//!
//! - [`log_store`]: the Raft log, vote and commit index in redb, each entry checksummed.
//! - [`state_machine`]: [`ClusterState`](crate::state::ClusterState) as openraft's state
//!   machine, with snapshots in the same redb file.
//! - [`network`]: the client side of the Raft RPCs.
//! - [`transport`]: the server side, which refuses drivers of another group.
//! - [`group`]: who is in the group, and the fingerprint that names it.
//! - [`timing`]: heartbeat and election timeouts chosen from the disk's commit latency.

// openraft's traits fix the error types (`StorageError` is over 200 bytes); boxing them
// here would only add conversions at every call openraft makes.
#![allow(clippy::result_large_err)]

pub mod group;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod timing;
pub mod transport;

use std::io::Cursor;

use crate::state::{Command, Outcome};

openraft::declare_raft_types!(
    /// openraft's types for a Ringleader driver group.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft node of the driver group.
pub type Raft = openraft::Raft<TypeConfig>;

/// A storage failure as openraft reports it.
pub type StorageError = openraft::StorageError<u64>;

/// The largest command one log entry carries; a larger one is committed in pieces of this
/// size (see [`crate::leader::DriverInner::write`]).
pub const MAX_ENTRY_BYTES: usize = 128 << 10;

/// The entry bytes one AppendEntries call carries at most (one entry more when the first is
/// larger on its own). openraft gives each call the heartbeat interval (40 ms or more as
/// measured, see [`timing`]) to be answered and resends it forever when it is not: 256 KiB
/// take about 21 ms at 100 Mbit/s.
pub const MAX_APPEND_BYTES: usize = 256 << 10;

/// Log entries between snapshots unless told otherwise.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 2000;

/// The group's configuration: heartbeats and elections as [`timing::Timing`] says (on a quiet
/// SSD a 40 ms interval, elections after a 200 ms lease and 120–200 ms more of silence, so
/// a killed leader is replaced in about 0.4 s); a snapshot every `snapshot_every`
/// entries, after which all but a tenth of them are purged, keeps the log (and a restarted
/// driver's catch-up) short.
pub fn raft_config(snapshot_every: u64, timing: timing::Timing) -> Result<openraft::Config, openraft::ConfigError> {
    openraft::Config {
        cluster_name: "ringleader".into(),
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_min_ms,
        election_timeout_max: timing.election_max_ms,
        install_snapshot_timeout: 5000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: snapshot_every / 10,
        purge_batch_size: (snapshot_every / 4).clamp(1, 256),
        ..Default::default()
    }
    .validate()
}
