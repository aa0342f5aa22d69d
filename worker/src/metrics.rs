//! The worker's Prometheus metrics (`/metrics` on its `--http` port): its slots and running
//! tasks, the task reports it passed on (by outcome, with the rows and bytes they read and
//! shuffled), what its executors spilled, what Flight served and received, the shuffle and
//! dataset bytes on its disk, and how long ago the driver last answered its heartbeat.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ringleader_core::exposition::Family;
use ringleader_core::plan::TaskValue;
use ringleader_core::proto::{self, task_report::Outcome};

use crate::service::WorkerInner;

/// What a worker counts as it runs.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    rows_read: AtomicU64,
    bytes_read: AtomicU64,
    shuffled: AtomicU64,
    /// Bytes Flight sent (shuffle blocks, dataset partitions, held results).
    pub served: AtomicU64,
    /// Bytes Flight received (dataset partitions put here).
    pub received: AtomicU64,
    /// Each job's executor's spilled bytes so far (its memory pool's running total).
    spilled: Mutex<HashMap<String, u64>>,
    /// When the driver last answered a heartbeat.
    heartbeat: Mutex<Option<Instant>>,
}

impl WorkerCounters {
    /// Counts a task report on its way to the driver.
    pub fn report(&self, report: &proto::TaskReport) {
        match &report.outcome {
            Some(Outcome::Value(bytes)) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                self.rows_read.fetch_add(report.read_rows, Ordering::Relaxed);
                self.bytes_read.fetch_add(report.read_bytes, Ordering::Relaxed);
                if let Ok(TaskValue::Shuffled { bytes, .. }) = postcard::from_bytes(bytes) {
                    self.shuffled.fetch_add(bytes, Ordering::Relaxed);
                }
            }
            Some(Outcome::Error(_)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if report.spilled_bytes > 0 {
            let mut spilled = self.spilled.lock().unwrap_or_else(|e| e.into_inner());
            let total = spilled.entry(report.job_id.clone()).or_default();
            *total = (*total).max(report.spilled_bytes);
        }
    }

    /// Notes that the driver answered a heartbeat now.
    pub fn heartbeat_answered(&self) {
        *self.heartbeat.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn spilled(&self) -> u64 {
        self.spilled.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    fn heartbeat_age(&self) -> Option<f64> {
        let at = *self.heartbeat.lock().unwrap_or_else(|e| e.into_inner());
        at.map(|at| at.elapsed().as_secs_f64())
    }
}

/// Bytes of the files under `dir` (0 when it does not exist).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The metrics of the worker `inner` with `slots` slots, in Prometheus' text format.
pub fn render(inner: &WorkerInner, slots: u32) -> String {
    let mut out = String::new();
    let c = &inner.counters;
    let id = inner.worker_id();
    let me = [("worker", id.as_str())];
    let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
        Family::start(out, name, "gauge", help).sample(name, &me, value);
    };
    gauge(
        &mut out,
        "ringleader_worker_slots",
        "Tasks this worker runs at once.",
        f64::from(slots),
    );
    gauge(
        &mut out,
        "ringleader_worker_running_tasks",
        "Tasks running in this worker's executors.",
        f64::from(inner.executors.running()),
    );
    gauge(
        &mut out,
        "ringleader_worker_heartbeat_age_seconds",
        "Time since the driver last answered this worker's heartbeat (-1: never).",
        c.heartbeat_age().unwrap_or(-1.0),
    );
    gauge(
        &mut out,
        "ringleader_worker_shuffle_disk_bytes",
        "Bytes of shuffle files (map output, spills, held results) on this worker's disk now.",
        bytes_under(&inner.shuffle_dir()) as f64,
    );
    gauge(
        &mut out,
        "ringleader_worker_dataset_disk_bytes",
        "Bytes of stored dataset partitions on this worker's disk now.",
        bytes_under(&inner.dataset_dir()) as f64,
    );
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    Family::start(
        &mut out,
        "ringleader_worker_tasks_total",
        "counter",
        "Task attempts this worker's executors finished, by outcome.",
    )
    .sample(
        "ringleader_worker_tasks_total",
        &[me[0], ("outcome", "succeeded")],
        load(&c.succeeded),
    )
    .sample(
        "ringleader_worker_tasks_total",
        &[me[0], ("outcome", "failed")],
        load(&c.failed),
    );
    let counters = [
        (
            "ringleader_worker_read_rows_total",
            "Rows the finished tasks read (source or shuffle).",
            load(&c.rows_read),
        ),
        (
            "ringleader_worker_read_bytes_total",
            "Bytes the finished tasks read (source or shuffle).",
            load(&c.bytes_read),
        ),
        (
            "ringleader_worker_shuffle_written_bytes_total",
            "Bytes the finished map tasks wrote into shuffles.",
            load(&c.shuffled),
        ),
        (
            "ringleader_worker_spilled_bytes_total",
            "Bytes the executors spilled to disk past their memory budget.",
            c.spilled() as f64,
        ),
        (
            "ringleader_worker_flight_served_bytes_total",
            "Bytes sent over Arrow Flight (shuffle blocks, partitions, results).",
            load(&c.served),
        ),
        (
            "ringleader_worker_flight_received_bytes_total",
            "Bytes received over Arrow Flight (dataset partitions).",
            load(&c.received),
        ),
    ];
    for (name, help, value) in counters {
        Family::start(&mut out, name, "counter", help).sample(name, &me, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_count_by_outcome_and_spills_by_job() {
        let c = WorkerCounters::default();
        let value = postcard::to_stdvec(&TaskValue::Shuffled { rows: 3, bytes: 40 }).expect("encodes");
        let ok = |job: &str, spilled| proto::TaskReport {
            job_id: job.into(),
            outcome: Some(Outcome::Value(value.clone())),
            read_rows: 5,
            read_bytes: 50,
            spilled_bytes: spilled,
            ..Default::default()
        };
        c.report(&ok("a", 100));
        c.report(&ok("a", 70)); // an earlier total, arriving late
        c.report(&ok("b", 30));
        c.report(&proto::TaskReport {
            job_id: "a".into(),
            outcome: Some(Outcome::Error(proto::TaskError::default())),
            ..Default::default()
        });
        assert_eq!(c.succeeded.load(Ordering::Relaxed), 3);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(c.rows_read.load(Ordering::Relaxed), 15);
        assert_eq!(c.shuffled.load(Ordering::Relaxed), 120);
        assert_eq!(c.spilled(), 130);
        assert_eq!(c.heartbeat_age(), None);
        c.heartbeat_answered();
        assert!(c.heartbeat_age().is_some_and(|a| a < 60.0));
    }
}
