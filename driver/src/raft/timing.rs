//! The group's heartbeat and election timeouts, chosen from how long this driver's disk takes
//! to make a small write durable (what every Raft commit waits for).
//!
//! openraft 0.9 starts an election after a leader lease (the longest election timeout) plus a
//! random election timeout of silence, and a voter refuses candidates until its own lease has
//! expired: a killed leader is replaced after about `election_max + election_min..max` less
//! the time since the last heartbeat. Shorter timeouts replace a leader faster; timeouts that
//! a slow commit can exceed start elections nobody needs. So the heartbeat is at least
//! [`MIN_HEARTBEAT`] and at least [`LATENCY_MULTIPLE`] times the slowest of a few synced
//! writes measured at start-up, and the elections wait three and five heartbeats.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shortest heartbeat interval: well above a loopback or LAN round trip and a quiet
/// SSD's commit, and the deadline openraft gives every AppendEntries call.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(40);

/// The longest heartbeat interval chosen from a measurement: a disk slower than this allows
/// makes a group that fails over in seconds, not one that never elects.
pub const MAX_HEARTBEAT: Duration = Duration::from_millis(500);

/// How many times the slowest measured commit a heartbeat interval lasts.
pub const LATENCY_MULTIPLE: u32 = 10;

/// Synced writes measured at start-up.
const PROBES: usize = 8;

/// Sets the heartbeat interval in milliseconds instead of the measurement (the elections
/// still wait three and five heartbeats).
pub const HEARTBEAT_VAR: &str = "RINGLEADER_RAFT_HEARTBEAT_MS";

/// The group's timing, in milliseconds as openraft takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval between the leader's heartbeats; also each AppendEntries call's deadline.
    pub heartbeat_ms: u64,
    /// Shortest silence after the leader lease before a follower stands for election.
    pub election_min_ms: u64,
    /// Longest such silence; also the leader lease.
    pub election_max_ms: u64,
}

impl Timing {
    /// The timing for a heartbeat interval: elections after three to five of them.
    pub fn with_heartbeat(heartbeat: Duration) -> Timing {
        let heartbeat_ms = (heartbeat.as_millis() as u64).max(1);
        Timing {
            heartbeat_ms,
            election_min_ms: heartbeat_ms * 3,
            election_max_ms: heartbeat_ms * 5,
        }
    }

    /// The timing for a disk whose slowest small commit took `latency`.
    pub fn for_commit_latency(latency: Duration) -> Timing {
        let heartbeat = (latency * LATENCY_MULTIPLE).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
        Timing::with_heartbeat(heartbeat)
    }

    /// The timing for the disk under `dir`: [`HEARTBEAT_VAR`] when set, otherwise measured
    /// with a few synced writes in a scratch file there (removed after), together with the
    /// slowest write measured (none when the variable decided).
    pub fn choose(dir: &Path) -> std::io::Result<(Timing, Option<Duration>)> {
        if let Some(ms) = std::env::var(HEARTBEAT_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            return Ok((Timing::with_heartbeat(Duration::from_millis(ms)), None));
        }
        let latency = slowest_synced_write(dir)?;
        Ok((Timing::for_commit_latency(latency), Some(latency)))
    }
}

/// The slowest of [`PROBES`] 4 KiB writes each followed by `fdatasync`, in a scratch file
/// under `dir`.
pub fn slowest_synced_write(dir: &Path) -> std::io::Result<Duration> {
    let path = dir.join(format!(".commit-probe-{}", std::process::id()));
    let measured = probe(&path);
    let _ = std::fs::remove_file(&path);
    measured
}

fn probe(path: &Path) -> std::io::Result<Duration> {
    let mut file = std::fs::File::create(path)?;
    let block = [0u8; 4096];
    let mut slowest = Duration::ZERO;
    for _ in 0..PROBES {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        slowest = slowest.max(started.elapsed());
    }
    Ok(slowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_disk_gets_the_shortest_timing_and_a_slow_one_proportionally_longer() {
        let fast = Timing::for_commit_latency(Duration::from_micros(300));
        assert_eq!(
            fast,
            Timing {
                heartbeat_ms: 40,
                election_min_ms: 120,
                election_max_ms: 200
            }
        );
        let slow = Timing::for_commit_latency(Duration::from_millis(20));
        assert_eq!(slow.heartbeat_ms, 200);
        assert_eq!(slow.election_max_ms, 1000);
        let stalled = Timing::for_commit_latency(Duration::from_secs(3));
        assert_eq!(stalled.heartbeat_ms, 500);
    }

    #[test]
    fn the_probe_measures_a_real_synced_write_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let latency = slowest_synced_write(dir.path()).expect("synced writes in it");
        assert!(latency > Duration::ZERO);
        let left = std::fs::read_dir(dir.path()).expect("its listing").count();
        assert_eq!(left, 0, "the probe left its file");
    }
}
