//! The worker's Prometheus metrics (`/metrics` on its `--http` port): its slots and running
//! tasks, the task reports it passed on (by outcome, with the rows and bytes they read and
//! shuffled), what its executors spilled, what Flight served and received (and the streams
//! it is serving now), the shuffle and
//! dataset bytes on its disk, and how long ago the driver last answered its heartbeat.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ringleader_core::exposition::Family;

use crate::service::WorkerInner;

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
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let gauges = [
        (
            "ringleader_worker_slots",
            "Tasks this worker runs at once.",
            f64::from(slots),
        ),
        (
            "ringleader_worker_running_tasks",
            "Tasks running in this worker's executors.",
            f64::from(inner.executors.running()),
        ),
        (
            "ringleader_worker_heartbeat_age_seconds",
            "Time since the driver last answered this worker's heartbeat (-1: never).",
            c.heartbeat_age().unwrap_or(-1.0),
        ),
        (
            "ringleader_worker_flight_streams_open",
            "Arrow Flight do_get streams (shuffle blocks, partitions, results) being served now.",
            load(&c.streams_open),
        ),
        (
            "ringleader_worker_shuffle_disk_bytes",
            "Bytes of shuffle files (map output, spills, held results) on this worker's disk now.",
            bytes_under(&inner.shuffle_dir()) as f64,
        ),
        (
            "ringleader_worker_dataset_disk_bytes",
            "Bytes of stored dataset partitions on this worker's disk now.",
            bytes_under(&inner.dataset_dir()) as f64,
        ),
    ];
    for (name, help, value) in gauges {
        Family::single(&mut out, name, "gauge", help, &me, value);
    }
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
            "ringleader_worker_housekeeping_passes_total",
            "Housekeeping passes finished (deleting finished jobs' files and dead dataset generations).",
            load(&c.housekeeping_passes),
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
        Family::single(&mut out, name, "counter", help, &me, value);
    }
    out
}
