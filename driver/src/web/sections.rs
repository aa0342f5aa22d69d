//! The parts the status pages are made of: the cluster page's tables (drivers, workers,
//! stored datasets, jobs) and a job page's stage and task tables. Text is escaped by the
//! templates; numbers are formatted here.

use maud::{Markup, html};
use ringleader_core::ids::{Attempt, WorkerId};
use ringleader_core::plan::Volume;
use ringleader_core::proto;

use super::charts::{bar, ring};
use crate::attempt_clock::AttemptSeen;
use crate::state::{JobRecord, TaskState};
use ringleader_core::ids::AttemptKey;

/// Says, on a follower, that its view is the leader's as replicated to it.
pub(super) fn follower_note(leader: Option<&str>) -> Markup {
    html! {
        p class="note" {
            @match leader {
                Some(leader) => { "This driver is a follower: its view is replicated from the leader at " (leader) "." }
                None => { "This driver is a follower; no leader is elected now." }
            }
        }
    }
}

/// The driver group as this driver sees it.
pub(super) fn drivers(raft: Option<&proto::RaftStatus>) -> Markup {
    let Some(r) = raft else {
        return html! {};
    };
    html! {
        h2 { "Drivers" }
        table {
            tr {
                th { "driver" } th { "role" } th { "term" } th { "leader" }
                th { "last log index" } th { "commit index" } th { "applied" } th { "snapshot" }
            }
            tr {
                td { (r.node_id) } td { (r.role) } td { (r.term) } td { (r.leader_address) }
                td { (r.last_log_index) } td { (r.commit_index) } td { (r.applied_index) } td { (r.snapshot_index) }
            }
            @for p in &r.peers {
                tr {
                    td { (p.node_id) }
                    td colspan="3" { (p.address) }
                    td colspan="4" { "log matched up to " (p.matched_index) }
                }
            }
        }
    }
}

/// The workers, and the ring drawn with each one's share.
pub(super) fn workers(workers: &[proto::WorkerStatus]) -> Markup {
    html! {
        h2 { "Workers" }
        table {
            tr {
                th { "worker" } th { "address" } th { "slots" } th { "running tasks" }
                th { "alive" } th { "share of the ring" }
            }
            @for w in workers {
                tr {
                    td { (w.worker_id) } td { (w.address) } td { (w.slots) } td { (w.running_tasks) }
                    td { @if w.alive { "yes" } @else { b { "no" } } }
                    td { (format!("{:.1}%", w.ring_share * 100.0)) }
                }
            }
        }
        (ring(workers))
    }
}

/// Stored datasets and where each partition's replicas live.
pub(super) fn datasets(datasets: &[proto::DatasetInfo]) -> Markup {
    html! {
        h2 { "Stored datasets" }
        table {
            tr {
                th { "name" } th { "format" } th { "partitions × replicas" } th { "rows" } th { "bytes" }
                th { "where each partition lives (primary first)" }
            }
            @for d in datasets {
                tr {
                    td { (d.name) } td { (d.format) }
                    td { (d.partitions.len()) " × " (d.replicas) }
                    td { (d.partitions.iter().map(|p| p.rows).sum::<u64>()) }
                    td { (human_bytes(d.partitions.iter().map(|p| p.bytes).sum())) }
                    td {
                        @for (i, p) in d.partitions.iter().enumerate() {
                            @if i > 0 { br; }
                            (p.partition) ": " (p.workers.join(", "))
                        }
                    }
                }
            }
        }
    }
}

/// The jobs the cluster remembers, newest first.
pub(super) fn jobs(jobs: &[proto::JobStatus]) -> Markup {
    html! {
        h2 { "Jobs" }
        table {
            tr { th { "job" } th { "name" } th { "state" } th { "submitted" } th { "tasks" } th { "stages" } }
            @for j in jobs.iter().rev() {
                tr {
                    td { a href={ "/jobs/" (j.job_id) } { (j.job_id) } }
                    td { (j.name) }
                    td class={ "state " (j.state) } { (j.state) }
                    td { (when(j.submitted_ms)) }
                    td { (j.tasks_done) " / " (j.tasks_total) " " (bar(j.tasks_done, j.tasks_total)) }
                    td { (j.stages) }
                }
            }
        }
    }
}

/// A job's stages: progress, and the rows and bytes they read and wrote.
pub(super) fn stages(stages: &[proto::StageStatus]) -> Markup {
    html! {
        table {
            tr {
                th { "stage" } th { "state" } th { "reads" } th { "output" } th { "after" } th { "progress" } th { "running" }
                th { "rows read" } th { "bytes read" } th { "rows out" } th { "bytes out" } th { "attempts" }
            }
            @for st in stages {
                tr class="stage" {
                    td { (st.stage) }
                    td class="stage-state" { (st.state) }
                    td class="input" { (st.input) }
                    td { (st.output) }
                    td { (st.parents.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")) }
                    td { span class="progress" { (st.done) "/" (st.total) } " " (bar(st.done, st.total)) }
                    td { (st.running) }
                    td { (st.read_rows) } td { (human_bytes(st.read_bytes)) }
                    td { (st.rows) } td { (human_bytes(st.bytes)) }
                    td { (st.attempts) }
                }
            }
        }
    }
}

/// A job's accumulators and their totals (each finished task counted once).
pub(super) fn accumulators(accumulators: &[proto::Accumulated]) -> Markup {
    html! {
        table {
            tr { th { "accumulator" } th { "value" } }
            @for a in accumulators {
                @let value = ringleader_core::plan::accumulator::Accumulated::from_proto(a).map(|a| a.amount.show()).unwrap_or_default();
                tr class="accumulator" { td { (a.name) } td { (value) } }
            }
        }
    }
}

/// One task as the job page lists it.
pub(super) struct TaskRow {
    stage: usize,
    partition: usize,
    state: &'static str,
    attempt: Attempt,
    worker: WorkerId,
    read: Option<Volume>,
    rows: Option<u64>,
    bytes: Option<u64>,
    attempts: u32,
    failures: u32,
    failed_on: Vec<WorkerId>,
    /// The current attempt's time so far, as this driver saw it.
    millis: Option<u64>,
    /// Why earlier attempts failed.
    errors: Vec<String>,
}

/// Every task of `job`, with what this driver saw of its attempts (`seen`).
pub(super) fn task_rows(job: &JobRecord, seen: &[(AttemptKey, AttemptSeen)]) -> Vec<TaskRow> {
    let now = ringleader_core::clock::now_ms();
    let mut rows = Vec::new();
    for (stage, record) in job.stages.iter().enumerate() {
        for (partition, task) in record.tasks.iter().enumerate() {
            let history = task.history.clone();
            let (state, attempt, worker, read, volume) = match &task.state {
                TaskState::Pending => ("pending", Attempt(0), WorkerId::default(), None, None),
                TaskState::Running { attempt, worker, .. } => ("running", *attempt, worker.clone(), None, None),
                TaskState::Done {
                    attempt,
                    worker,
                    value,
                    read,
                } => ("done", *attempt, worker.clone(), Some(*read), Some(value.volume())),
            };
            let of_task = seen
                .iter()
                .filter(|(k, _)| k.stage.index() == stage && k.task.index() == partition);
            let millis = of_task
                .clone()
                .find(|(k, _)| k.attempt == attempt)
                .map(|(_, s)| s.ended_ms.unwrap_or(now).saturating_sub(s.started_ms));
            let errors = of_task
                .filter_map(|(k, s)| Some(format!("attempt {}: {}", k.attempt, s.error.as_ref()?)))
                .collect();
            rows.push(TaskRow {
                millis,
                errors,
                stage,
                partition,
                state,
                attempt,
                worker,
                read,
                rows: volume.and_then(|v| v.0),
                bytes: volume.and_then(|v| v.1),
                attempts: history.attempts,
                failures: history.failures,
                failed_on: history.failed_on,
            });
        }
    }
    rows
}

/// A job's tasks: where each ran, how long, what it moved, and how earlier attempts failed.
pub(super) fn tasks(tasks: &[TaskRow]) -> Markup {
    html! {
        table {
            tr {
                th { "stage" } th { "partition" } th { "state" } th { "attempt" } th { "worker" } th { "duration" }
                th { "rows read" } th { "bytes read" } th { "rows out" } th { "bytes out" }
                th { "attempts started" } th { "failures" }
            }
            @for t in tasks {
                tr class={ "task " (t.state) } {
                    td { (t.stage) } td { (t.partition) } td { (t.state) } td { (t.attempt) } td { (t.worker) }
                    td { @if let Some(ms) = t.millis { (format!("{:.2} s", ms as f64 / 1000.0)) } }
                    td { @if let Some(r) = t.read { (r.rows) } }
                    td { @if let Some(r) = t.read { (human_bytes(r.bytes)) } }
                    td { @if let Some(r) = t.rows { (r) } }
                    td { @if let Some(b) = t.bytes { (human_bytes(b)) } }
                    td { (t.attempts) }
                    td {
                        (t.failures)
                        @if !t.failed_on.is_empty() { " (on " (t.failed_on.join(", ")) ")" }
                        @for e in &t.errors { br; small { (e) } }
                    }
                }
            }
        }
    }
}

/// `bytes` in B, KiB, MiB or GiB.
pub(super) fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A Unix time in milliseconds as UTC.
pub(super) fn when(ms: u64) -> String {
    format!("{} UTC", ringleader_core::clock::utc(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_and_sizes_binary() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_764_892_800_000 + 3_723_000), "2025-12-05 01:02:03 UTC");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn names_and_messages_are_escaped() {
        let job = proto::JobStatus {
            job_id: "job-000001".into(),
            name: "<script>alert(1)</script>".into(),
            state: "failed".into(),
            ..Default::default()
        };
        let html = jobs(&[job]).into_string();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
        assert!(html.contains("href=\"/jobs/job-000001\""), "{html}");
    }
}
