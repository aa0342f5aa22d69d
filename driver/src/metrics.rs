//! The driver's Prometheus metrics (`/metrics` on its web port): tasks and jobs by state,
//! workers and their heartbeat age, shuffle bytes written, under-replicated stored partitions,
//! Raft's term and indexes, and how long this driver's Raft commits take. Text exposition format 0.0.4, written here.

use ringleader_core::exposition::Family;
use ringleader_core::plan::TaskValue;

use crate::leader::DriverInner;
use crate::state::{JobState, TaskState};

/// The metrics of the driver `inner`, in Prometheus' text format.
pub fn render(inner: &DriverInner) -> String {
    let mut out = String::new();
    let metrics = inner.raft.metrics().borrow().clone();
    let leader = inner.require_leader().is_ok();
    Family::single(
        &mut out,
        "ringleader_driver_is_leader",
        "gauge",
        "1 on the leader of the driver group.",
        &[],
        f64::from(u8::from(leader)),
    );
    Family::single(
        &mut out,
        "ringleader_under_replicated_partitions",
        "gauge",
        "Stored dataset partitions the leader's last audit found on fewer live workers than their replicas (0 on other drivers).",
        &[],
        inner.under_replicated() as f64,
    );
    Family::single(
        &mut out,
        "ringleader_raft_term",
        "gauge",
        "The Raft term this driver is in.",
        &[],
        metrics.current_term as f64,
    );
    Family::start(
        &mut out,
        "ringleader_raft_index",
        "gauge",
        "Raft log indexes: last written, committed, applied.",
    )
    .sample(
        "ringleader_raft_index",
        &[("of", "last_log")],
        metrics.last_log_index.unwrap_or(0) as f64,
    )
    .sample(
        "ringleader_raft_index",
        &[("of", "commit")],
        inner.commit_index() as f64,
    )
    .sample(
        "ringleader_raft_index",
        &[("of", "applied")],
        metrics.last_applied.map_or(0, |l| l.index) as f64,
    );
    let commits = &inner.commits;
    Family::start(
        &mut out,
        "ringleader_raft_commit_seconds",
        "summary",
        "How long this driver's proposals took to commit.",
    )
    .sample("ringleader_raft_commit_seconds_count", &[], commits.count() as f64)
    .sample("ringleader_raft_commit_seconds_sum", &[], commits.total().as_secs_f64());
    Family::single(
        &mut out,
        "ringleader_raft_commit_seconds_max",
        "gauge",
        "The longest commit of this driver's proposals.",
        &[],
        commits.longest().as_secs_f64(),
    );
    let live = inner.live_workers();
    let state = inner.state();
    let mut workers = Family::start(
        &mut out,
        "ringleader_worker_up",
        "gauge",
        "1 for a worker heartbeating to the leader, 0 for one that stopped.",
    );
    for id in state.workers.keys() {
        workers.sample(
            "ringleader_worker_up",
            &[("worker", id)],
            f64::from(u8::from(live.contains(id))),
        );
    }
    let mut slots = Family::start(
        &mut out,
        "ringleader_worker_slots",
        "gauge",
        "Task slots of each worker.",
    );
    for w in state.workers.values() {
        slots.sample("ringleader_worker_slots", &[("worker", &w.id)], f64::from(w.slots));
    }
    let mut ages = Family::start(
        &mut out,
        "ringleader_worker_heartbeat_age_seconds",
        "gauge",
        "Time since each worker's last heartbeat (on the leader).",
    );
    for (id, age) in inner.heartbeat_ages() {
        ages.sample(
            "ringleader_worker_heartbeat_age_seconds",
            &[("worker", &id)],
            age.as_secs_f64(),
        );
    }
    let mut jobs: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    let (mut pending, mut running, mut done, mut attempts, mut shuffled) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for job in state.jobs.values() {
        *jobs.entry(job.state.name()).or_default() += 1;
        attempts += job.stages.iter().map(|s| u64::from(s.attempts())).sum::<u64>();
        for (_, _, task) in job.all_tasks() {
            match &task.state {
                TaskState::Done { value, .. } => {
                    if let TaskValue::Shuffled { bytes, .. } = value {
                        shuffled += bytes;
                    }
                    if job.state == JobState::Running {
                        done += 1;
                    }
                }
                TaskState::Running { .. } if job.state == JobState::Running => running += 1,
                TaskState::Pending if job.state == JobState::Running => pending += 1,
                _ => {}
            }
        }
    }
    let mut family = Family::start(
        &mut out,
        "ringleader_jobs",
        "gauge",
        "Jobs the cluster remembers, by state.",
    );
    for (name, n) in &jobs {
        family.sample("ringleader_jobs", &[("state", name)], *n as f64);
    }
    Family::start(
        &mut out,
        "ringleader_tasks",
        "gauge",
        "Tasks of running jobs, by state.",
    )
    .sample("ringleader_tasks", &[("state", "pending")], pending as f64)
    .sample("ringleader_tasks", &[("state", "running")], running as f64)
    .sample("ringleader_tasks", &[("state", "done")], done as f64);
    Family::single(
        &mut out,
        "ringleader_task_attempts_total",
        "counter",
        "Task attempts started, over the jobs the cluster remembers.",
        &[],
        attempts as f64,
    );
    Family::single(
        &mut out,
        "ringleader_shuffle_written_bytes_total",
        "counter",
        "Bytes map tasks wrote into shuffles, over the jobs the cluster remembers.",
        &[],
        shuffled as f64,
    );
    out
}
