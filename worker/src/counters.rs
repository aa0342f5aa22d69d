//! What a worker counts as it runs, for `/metrics`: the task reports it passes on (by
//! outcome, with what they read and shuffled), its executors' spilled bytes, Flight bytes,
//! and when the driver last answered its heartbeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ringleader_core::proto::{self, task_report::Outcome};
use ringleader_core::sync::lock;

/// What a worker counts as it runs.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Task attempts reported done.
    pub succeeded: AtomicU64,
    /// Task attempts reported failed.
    pub failed: AtomicU64,
    /// Rows the finished tasks read.
    pub rows_read: AtomicU64,
    /// Bytes the finished tasks read.
    pub bytes_read: AtomicU64,
    /// Bytes the finished map tasks wrote into shuffles.
    pub shuffled: AtomicU64,
    /// Bytes Flight sent (shuffle blocks, dataset partitions, held results).
    pub served: AtomicU64,
    /// Bytes Flight received (dataset partitions put here).
    pub received: AtomicU64,
    /// Flight `do_get` streams being served now.
    pub streams_open: AtomicU64,
    /// Housekeeping passes finished (deleting what finished jobs and dead datasets left).
    pub housekeeping_passes: std::sync::Arc<AtomicU64>,
    /// Each running job's executor's spilled bytes so far (its memory pool's running total).
    spilled: Mutex<HashMap<String, u64>>,
    /// What the executors of jobs that ended spilled, in all.
    spilled_by_ended: AtomicU64,
    /// When the driver last answered a heartbeat.
    heartbeat: Mutex<Option<Instant>>,
}

impl WorkerCounters {
    /// Counts a task report on its way to the driver.
    pub fn report(&self, report: &proto::TaskReport) {
        match &report.outcome {
            Some(Outcome::Value(_)) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                self.rows_read.fetch_add(report.read_rows, Ordering::Relaxed);
                self.bytes_read.fetch_add(report.read_bytes, Ordering::Relaxed);
                self.shuffled.fetch_add(report.shuffled_bytes, Ordering::Relaxed);
            }
            Some(Outcome::Error(_)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if report.spilled_bytes > 0 {
            let mut spilled = lock(&self.spilled);
            let total = spilled.entry(report.job_id.clone()).or_default();
            *total = (*total).max(report.spilled_bytes);
        }
    }

    /// Notes that the driver answered a heartbeat now.
    pub fn heartbeat_answered(&self) {
        *lock(&self.heartbeat) = Some(Instant::now());
    }

    /// Bytes the executors spilled, over the jobs seen.
    pub fn spilled(&self) -> u64 {
        lock(&self.spilled).values().sum::<u64>() + self.spilled_by_ended.load(Ordering::Relaxed)
    }

    /// Folds the per-job totals of jobs not in `active` into one (the map holds running
    /// jobs only, however many jobs the worker has seen).
    pub fn retain_jobs(&self, active: &[String]) {
        let mut spilled = lock(&self.spilled);
        let ended: u64 = spilled
            .iter()
            .filter(|(job, _)| !active.contains(job))
            .map(|(_, bytes)| bytes)
            .sum();
        spilled.retain(|job, _| active.contains(job));
        self.spilled_by_ended.fetch_add(ended, Ordering::Relaxed);
    }

    /// Seconds since the driver last answered a heartbeat (none: never).
    pub fn heartbeat_age(&self) -> Option<f64> {
        let at = *lock(&self.heartbeat);
        at.map(|at| at.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_count_by_outcome_and_spills_by_job() {
        let c = WorkerCounters::default();
        let value =
            postcard::to_stdvec(&ringleader_core::plan::TaskValue::Shuffled { rows: 3, bytes: 40 }).expect("encodes");
        let ok = |job: &str, spilled| proto::TaskReport {
            job_id: job.into(),
            outcome: Some(Outcome::Value(value.clone())),
            read_rows: 5,
            read_bytes: 50,
            spilled_bytes: spilled,
            shuffled_bytes: 40,
            ..Default::default()
        };
        c.report(&ok("a", 100));
        c.report(&ok("a", 70)); // an earlier total, arriving late
        c.report(&ok("b", 30));
        c.report(&proto::TaskReport {
            job_id: "a".into(),
            outcome: Some(Outcome::Error(proto::TaskError::default())),
            shuffled_bytes: 1000, // a failed attempt's writes are not counted
            ..Default::default()
        });
        assert_eq!(c.succeeded.load(Ordering::Relaxed), 3);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(c.rows_read.load(Ordering::Relaxed), 15);
        assert_eq!(c.shuffled.load(Ordering::Relaxed), 120);
        assert_eq!(c.spilled(), 130);
        // Job a ends: its total is kept, its entry goes.
        c.retain_jobs(&["b".to_string()]);
        assert_eq!(c.spilled(), 130);
        assert_eq!(lock(&c.spilled).len(), 1);
        assert_eq!(c.heartbeat_age(), None);
        c.heartbeat_answered();
        assert!(c.heartbeat_age().is_some_and(|a| a < 60.0));
    }
}
