//! Where a small job's time goes on a cluster: the drivers' and workers' debug events
//! (`RUST_LOG=ringleader_driver=debug,ringleader_worker=debug`) of each job, read back from
//! their logs, cut into phases from submission to the last committed report.

use std::collections::BTreeMap;
use std::path::Path;

/// The log filter that makes nodes write the events read here.
pub(super) const LOG_FILTER: &str = "info,ringleader_driver=debug,ringleader_worker=debug";

/// Events of a job's timeline, in the order they happen, and the phase each one ends.
const PHASES: [(&str, &str); 6] = [
    ("submission committed", "submission committed in the log"),
    ("launch received", "tasks' start committed, sent to workers"),
    ("executor process started", "executor process spawned"),
    ("executor asks for tasks", "executor start-up (exec, runtime, connect)"),
    ("executor reported", "tasks run"),
    ("report committed", "reports sent and committed"),
];

/// For each job id, the last time (seconds of the day) each event of [`PHASES`] was seen.
pub(super) type Timelines = BTreeMap<String, [Option<f64>; PHASES.len()]>;

/// Reads every `log` file in the directories under `cluster_dir` (one per node).
pub(super) fn read(cluster_dir: &Path) -> Timelines {
    let mut timelines = Timelines::new();
    let Ok(nodes) = std::fs::read_dir(cluster_dir) else {
        return timelines;
    };
    for node in nodes.flatten() {
        if let Ok(text) = std::fs::read_to_string(node.path().join("log")) {
            add(&mut timelines, &text);
        }
    }
    timelines
}

/// Adds the events of one log's `text`.
fn add(timelines: &mut Timelines, text: &str) {
    for line in text.lines() {
        let Some((at, job, event)) = parse(line) else { continue };
        let Some(i) = PHASES.iter().position(|(e, _)| event.ends_with(e)) else {
            continue;
        };
        let slot = &mut timelines.entry(job.to_string()).or_insert([None; PHASES.len()])[i];
        // Several tasks, several workers: the phase ends with the last of them.
        *slot = Some(slot.map_or(at, |t: f64| t.max(at)));
    }
}

/// `(seconds of the day, job id, message)` of a log line like
/// `2026-12-07T08:05:24.462425Z DEBUG target: job-000040 stage 0 ...: launch received`.
fn parse(line: &str) -> Option<(f64, &str, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let time = stamp.split_once('T')?.1.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    let start = rest.find("job-")?;
    let message = &rest[start..];
    let job = message.split([' ', ':']).next()?;
    Some((h * 3600.0 + m * 60.0 + s, job, message))
}

/// The median of each phase over `jobs` (in milliseconds), with its name; jobs missing an
/// event are left out (a lost debug line, a job of another shape).
pub(super) fn phase_medians(timelines: &Timelines, jobs: &[String]) -> Vec<(&'static str, f64)> {
    let complete: Vec<[f64; PHASES.len()]> = jobs
        .iter()
        .filter_map(|j| timelines.get(j))
        .filter_map(|t| {
            let mut out = [0.0; PHASES.len()];
            for (o, v) in out.iter_mut().zip(t) {
                *o = (*v)?;
            }
            Some(out)
        })
        .collect();
    if complete.is_empty() {
        return Vec::new();
    }
    (1..PHASES.len())
        .map(|i| {
            let mut d: Vec<f64> = complete.iter().map(|t| (t[i] - t[i - 1]) * 1e3).collect();
            d.sort_by(f64::total_cmp);
            (PHASES[i].1, d[d.len() / 2])
        })
        .collect()
}

/// The median time from submission committed to the last report committed (ms).
pub(super) fn median_on_cluster(timelines: &Timelines, jobs: &[String]) -> Option<f64> {
    let mut d: Vec<f64> = jobs
        .iter()
        .filter_map(|j| timelines.get(j))
        .filter_map(|t| Some((t[PHASES.len() - 1]? - t[0]?) * 1e3))
        .collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied()
}

/// The ids of the last `n` jobs in `timelines` (job ids are numbered in submission order).
pub(super) fn last_jobs(timelines: &Timelines, n: usize) -> Vec<String> {
    let ids: Vec<String> = timelines.keys().cloned().collect();
    ids[ids.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRIVER: &str = "\
2026-12-07T08:05:24.462425Z DEBUG ringleader_driver::service: job-000040: submission committed
2026-12-07T08:05:24.471856Z DEBUG ringleader_driver::service: job-000040 stage 0 task 0 attempt 1: report committed
2026-12-07T08:05:24.472994Z DEBUG ringleader_driver::service: job-000040 stage 0 task 1 attempt 1: report committed
2026-12-07T08:05:24.473000Z  INFO ringleader_driver::service: something else";
    const WORKER: &str = "\
2026-12-07T08:05:24.463179Z DEBUG ringleader_worker::service: job-000040 stage 0 task 1 attempt 1: launch received
2026-12-07T08:05:24.464675Z DEBUG ringleader_worker::executors: job-000040: executor process started
2026-12-07T08:05:24.469451Z DEBUG ringleader_worker::service: job-000040: executor asks for tasks
2026-12-07T08:05:24.470952Z DEBUG ringleader_worker::service: job-000040 stage 0 task 0 attempt 1: executor reported";

    #[test]
    fn a_jobs_phases_are_cut_from_its_nodes_events() {
        let mut t = Timelines::new();
        add(&mut t, DRIVER);
        add(&mut t, WORKER);
        let jobs = last_jobs(&t, 5);
        assert_eq!(jobs, ["job-000040"]);
        let phases = phase_medians(&t, &jobs);
        let ms: Vec<f64> = phases.iter().map(|(_, ms)| (ms * 1000.0).round() / 1000.0).collect();
        // The last report committed ends the last phase.
        assert_eq!(ms, [0.754, 1.496, 4.776, 1.501, 2.042]);
        let total = median_on_cluster(&t, &jobs).expect("total");
        assert!((total - 10.569).abs() < 1e-6, "{total}");
    }

    #[test]
    fn a_job_missing_an_event_is_left_out() {
        let mut t = Timelines::new();
        add(&mut t, DRIVER);
        assert!(phase_medians(&t, &last_jobs(&t, 1)).is_empty());
    }
}
