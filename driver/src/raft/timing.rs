//! The group's heartbeat and election timeouts, chosen from how long this driver's disk takes
//! to make a small write durable (what every Raft commit waits for).
//!
//! openraft 0.9 starts an election after a leader lease (the longest election timeout) plus a
//! random election timeout of silence, and a voter refuses candidates until its own lease has
//! expired: a killed leader is replaced after about `election_max + election_min..max` less
//! the time since the last heartbeat. Shorter timeouts replace a leader faster; timeouts that
//! a slow commit can exceed start elections nobody needs. So the heartbeat is at least
//! [`MIN_HEARTBEAT`] and [`LATENCY_MULTIPLE`] times the median of a few synced writes
//! measured at start-up (the median: one stall while measuring must not slow the group for
//! its whole life), at most [`MAX_HEARTBEAT`], and the elections wait three and five
//! heartbeats after a lease of five.
//!
//! That is for a group on one host, whose Raft traffic crosses no link. Between hosts a
//! heartbeat can wait behind other traffic: on a 100 Mbit/s link busy with a job binary's
//! upload, queued and dropped packets held heartbeats past 40 ms intervals' 320 ms of
//! patience, and the group kept electing (`hosts.rs`). A group with a driver on another
//! host beats every [`MAX_HEARTBEAT`] (elections after 0.8-1 s of silence).
//!
//! Each driver measures its own disk, so the drivers of one group may choose differently.
//! openraft sends heartbeats on its tick, every 1.5 heartbeat intervals, and a follower
//! stands for election after 8 of its own intervals of silence: the bounds keep any two
//! drivers within a factor of 2.5, so the slowest leader's heartbeats (1.5 x 100 ms) arrive
//! at least twice within the quickest follower's patience (8 x 40 ms).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The shortest heartbeat interval chosen from a measurement: well above a loopback or LAN
/// round trip and a quiet SSD's commit, and the deadline openraft gives every AppendEntries
/// call.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(40);

/// The longest heartbeat interval chosen from a measurement (see the module's note on
/// drivers that choose differently), and the interval of every group with a driver on
/// another host.
pub const MAX_HEARTBEAT: Duration = Duration::from_millis(100);

/// How many times the median measured commit a heartbeat interval lasts.
pub const LATENCY_MULTIPLE: u32 = 20;

/// Synced writes measured at start-up.
const PROBES: usize = 8;

/// Sets the heartbeat interval in milliseconds instead of the measurement (the elections
/// still wait three and five heartbeats after a lease of five). Give every driver of a
/// group the same value.
pub const HEARTBEAT_VAR: &str = "RINGLEADER_RAFT_HEARTBEAT_MS";

/// The range [`HEARTBEAT_VAR`] may set, in milliseconds.
pub const HEARTBEAT_VAR_RANGE: std::ops::RangeInclusive<u64> = 10..=10_000;

/// The group's timing, in milliseconds as openraft takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval between the leader's heartbeats (openraft sends them on its tick, every 1.5
    /// intervals, when nothing else went out); also each AppendEntries call's deadline.
    pub heartbeat_ms: u64,
    /// Shortest silence after the leader lease before a follower stands for election.
    pub election_min_ms: u64,
    /// Longest such silence; also the leader lease.
    pub election_max_ms: u64,
}

/// Why a timing could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    /// [`HEARTBEAT_VAR`] is not a number of milliseconds in [`HEARTBEAT_VAR_RANGE`].
    #[error(
        "{HEARTBEAT_VAR}={value:?}: give a whole number of milliseconds from 10 to 10000 (or unset it to measure the disk)"
    )]
    BadVariable {
        /// What it was set to.
        value: String,
    },
    /// The synced writes could not be made in the data directory.
    #[error("measuring synced writes in {path}: {source}")]
    Probe {
        /// The scratch file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
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

    /// The timing for a disk whose median small commit took `latency`.
    pub fn for_commit_latency(latency: Duration) -> Timing {
        let heartbeat = (latency * LATENCY_MULTIPLE).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
        Timing::with_heartbeat(heartbeat)
    }

    /// The timing for a group whose drivers are all on this host (`across_hosts` false)
    /// and the disk under `dir`: [`HEARTBEAT_VAR`] when set, otherwise measured with a few
    /// synced writes in a scratch file there (removed after), together with the median write
    /// measured (none when it was not measured).
    pub fn choose(dir: &Path, across_hosts: bool) -> Result<(Timing, Option<Duration>), TimingError> {
        if let Ok(value) = std::env::var(HEARTBEAT_VAR) {
            return Ok((Timing::with_heartbeat(heartbeat_set_to(&value)?), None));
        }
        if across_hosts {
            return Ok((Timing::with_heartbeat(MAX_HEARTBEAT), None));
        }
        let latency = median_synced_write(dir)?;
        Ok((Timing::for_commit_latency(latency), Some(latency)))
    }
}

/// The heartbeat interval [`HEARTBEAT_VAR`]'s `value` sets.
fn heartbeat_set_to(value: &str) -> Result<Duration, TimingError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| HEARTBEAT_VAR_RANGE.contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| TimingError::BadVariable {
            value: value.to_string(),
        })
}

/// The median of [`PROBES`] 4 KiB writes each followed by `fdatasync`, in a scratch file
/// under `dir` (one name, so a driver killed while measuring leaves at most one behind).
pub fn median_synced_write(dir: &Path) -> Result<Duration, TimingError> {
    let path = dir.join(".commit-probe");
    let measured = probe(&path);
    let _ = std::fs::remove_file(&path);
    measured.map_err(|source| TimingError::Probe { path, source })
}

fn probe(path: &Path) -> std::io::Result<Duration> {
    let mut file = std::fs::File::create(path)?;
    let block = [0u8; 4096];
    let mut took = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(took[PROBES / 2])
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
        let slow = Timing::for_commit_latency(Duration::from_millis(3));
        assert_eq!(slow.heartbeat_ms, 60);
        assert_eq!(slow.election_max_ms, 300);
        let stalled = Timing::for_commit_latency(Duration::from_secs(3));
        assert_eq!(stalled.heartbeat_ms, 100);
    }

    #[test]
    fn any_two_chosen_timings_leave_the_slower_leaders_heartbeats_inside_the_quicker_followers_patience() {
        let (quick, slow) = (
            Timing::for_commit_latency(Duration::ZERO),
            Timing::for_commit_latency(Duration::from_secs(60)),
        );
        // openraft's tick, on which idle heartbeats go, runs every 1.5 intervals; a follower
        // waits a lease (the longest election timeout) plus at least the shortest.
        let slowest_gap = slow.heartbeat_ms * 3 / 2;
        let quickest_patience = quick.election_max_ms + quick.election_min_ms;
        assert!(
            slowest_gap * 2 <= quickest_patience,
            "{slowest_gap} ms between heartbeats against {quickest_patience} ms of patience"
        );
        for timing in [quick, slow] {
            assert!(
                openraft::Config {
                    heartbeat_interval: timing.heartbeat_ms,
                    election_timeout_min: timing.election_min_ms,
                    election_timeout_max: timing.election_max_ms,
                    ..Default::default()
                }
                .validate()
                .is_ok()
            );
        }
    }

    #[test]
    fn the_probe_measures_a_real_synced_write_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let latency = median_synced_write(dir.path()).expect("synced writes in it");
        assert!(latency > Duration::ZERO);
        let left = std::fs::read_dir(dir.path()).expect("its listing").count();
        assert_eq!(left, 0, "the probe left its file");
    }

    #[test]
    fn the_variable_takes_whole_milliseconds_in_range_and_names_itself_otherwise() {
        assert_eq!(heartbeat_set_to(" 40\n").expect("40"), Duration::from_millis(40));
        for bad in ["40ms", "", "-5", "9", "10001", "18446744073709551615"] {
            let error = heartbeat_set_to(bad).expect_err(bad).to_string();
            assert!(error.contains(HEARTBEAT_VAR), "{error}");
        }
    }

    #[test]
    fn a_probe_in_a_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let missing = dir.path().join("nope");
        let error = median_synced_write(&missing).expect_err("no directory").to_string();
        assert!(error.contains("nope/.commit-probe"), "{error}");
    }
}
