//! How long this driver's Raft proposals take to commit: a count, a total and the longest
//! (a Prometheus summary without quantiles), recorded by the leader and shown by
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Commit times, recorded from any thread.
#[derive(Debug, Default)]
pub struct CommitTimes {
    count: AtomicU64,
    total_micros: AtomicU64,
    max_micros: AtomicU64,
}

impl CommitTimes {
    /// Records one commit that took `took`.
    pub fn record(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// Commits recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their total time.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.total_micros.load(Ordering::Relaxed))
    }

    /// The longest of them.
    pub fn longest(&self) -> Duration {
        Duration::from_micros(self.max_micros.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_add_up() {
        let times = CommitTimes::default();
        times.record(Duration::from_millis(2));
        times.record(Duration::from_millis(5));
        assert_eq!(times.count(), 2);
        assert_eq!(times.total(), Duration::from_millis(7));
        assert_eq!(times.longest(), Duration::from_millis(5));
    }
}
