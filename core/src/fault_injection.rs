//! Faults Ringleader's own tests inject on purpose, each an environment variable set on one
//! process (a client, a driver, a worker) and read where the fault applies. None is set in
//! production; each opens a window a test needs (room to take a worker away, a fetch held
//! in flight, a copy not yet made) or breaks one path the same way every time. A test that
//! sets one also shows that the fault fired.

use std::time::Duration;

/// Client: milliseconds to wait between a job's success and fetching its held results.
pub const FETCH_DELAY_MS: &str = "RINGLEADER_TEST_FETCH_DELAY_MS";

/// Worker: how its Flight service serves shuffle blocks: `slow:MS` makes each batch of a
/// block wait MS milliseconds before it is sent, so a fetch stays in flight.
pub const SHUFFLE_SERVING: &str = "RINGLEADER_TEST_SHUFFLE_SERVING";

/// Driver: a file; while it exists (at most [`HOLD_LIMIT`]), the copying of a lost
/// worker's stored dataset partitions to other workers waits.
pub const REPAIR_HOLD: &str = "RINGLEADER_TEST_REPAIR_HOLD";

/// Worker: milliseconds each housekeeping pass (deleting finished jobs' files) takes longer,
/// as deleting a large tree does.
pub const HOUSEKEEPING_DELAY_MS: &str = "RINGLEADER_TEST_HOUSEKEEPING_DELAY_MS";

/// Client: a file; while it exists (at most [`HOLD_LIMIT`]), a `put` whose partitions are
/// all sent waits before it commits them.
pub const COMMIT_HOLD: &str = "RINGLEADER_TEST_COMMIT_HOLD";

/// Driver: a file; when it exists as this driver has applied a dataset removal, the driver
/// removes the file and exits at once, without replying (a leader killed between applying a
/// change and answering for it), so the client's retry meets the next leader.
pub const REPLY_LOST: &str = "RINGLEADER_TEST_REPLY_LOST";

/// Takes the one-shot fault `var` names: whether its file existed (it is removed, so one
/// process of many sharing the variable takes it).
pub fn take(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|path| std::fs::remove_file(path).is_ok())
}

/// Worker: milliseconds each message of a Flight `do_put` (a partition being stored) waits
/// before it is written, so an upload stays in flight.
pub const STORE_RECEIVE_DELAY_MS: &str = "RINGLEADER_TEST_STORE_RECEIVE_DELAY_MS";

/// Milliseconds a job binary nobody uses stays stored on drivers and cached on workers,
/// instead of [`crate::net::binary::DEFAULT_RETENTION`] (a test watches them go).
pub const BINARY_RETENTION_MS: &str = "RINGLEADER_TEST_BINARY_RETENTION_MS";

/// Milliseconds the leader keeps a silent program's caches and broadcasts, instead of a
/// minute (a test watches a killed program's go).
pub const SESSION_EXPIRY_MS: &str = "RINGLEADER_TEST_SESSION_EXPIRY_MS";

/// A file whose existence holds back the driver's confirmation of a task's stored
/// partition (a job writing `ringleader://`), so a test can take the copies away first.
pub const STORED_REPORT_HOLD: &str = "RINGLEADER_TEST_STORED_REPORT_HOLD";

/// Executor: milliseconds after sending a task's report at which the executor exits, without
/// waiting for its worker's reply (an executor killed while its report is on its way, as a
/// stop of its last other attempt does).
pub const EXIT_AFTER_REPORT_MS: &str = "RINGLEADER_TEST_EXIT_AFTER_REPORT_MS";

/// Driver: milliseconds a task report's handling waits after its commit, before it stops the
/// task's rival attempt and tells the job's client (as a stop sent to a slow worker waits).
pub const REPORT_DELAY_MS: &str = "RINGLEADER_TEST_REPORT_DELAY_MS";

/// The longest a fault that holds something back holds it.
pub const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// Whether the file that `var` names exists (a hold is on).
pub fn held(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|path| std::path::Path::new(&path).exists())
}

/// The duration in milliseconds that `var` holds, if it is set to a number.
pub fn millis(var: &str) -> Option<Duration> {
    std::env::var(var).ok()?.trim().parse().ok().map(Duration::from_millis)
}

/// How a worker serves shuffle blocks ([`SHUFFLE_SERVING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShuffleServing {
    /// As it should.
    Normal,
    /// Each batch waits this long before it is sent.
    Slow(Duration),
}

impl ShuffleServing {
    /// What [`SHUFFLE_SERVING`] asks of this process (an unknown value is ignored).
    pub fn from_env() -> ShuffleServing {
        ShuffleServing::parse(&std::env::var(SHUFFLE_SERVING).unwrap_or_default())
    }

    fn parse(text: &str) -> ShuffleServing {
        match text.trim().strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
            Some(ms) => ShuffleServing::Slow(Duration::from_millis(ms)),
            None => ShuffleServing::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_serving_parses_its_faults_and_ignores_the_rest() {
        assert_eq!(
            ShuffleServing::parse("slow:250"),
            ShuffleServing::Slow(Duration::from_millis(250))
        );
        for normal in ["", "slow:", "slow:x", "refuse"] {
            assert_eq!(ShuffleServing::parse(normal), ShuffleServing::Normal, "{normal:?}");
        }
    }
}
