//! Chaos tests: real processes on loopback, broken on purpose while a job runs (executors
//! that exit, tasks that stall, workers killed or stopped, the driver leader killed). Each
//! checks its job's output against the same job run embedded, and is bounded in time.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::helpers::{
    LocalCluster, args, embedded, job_id, numbered_text, ok, running, signal, sorted_lines, straggler_pid, wait_bounded,
};

/// Runs the chaos job on `cluster` with `extra` flags; its stderr goes to `log`.
fn run_chaos(cluster: &LocalCluster, input: &Path, out: &Path, extra: &[OsString], log: &Path) -> std::process::Child {
    let mut args = args!["--input", input, "--output", out].to_vec();
    args.extend_from_slice(extra);
    cluster.spawn("chaos", &args, log)
}

/// The embedded word count of `input` (no faults), as sorted lines.
fn expected(input: &Path, out: &Path) -> Vec<String> {
    ok(
        embedded("chaos", &args!["--input", input, "--output", out]),
        "embedded chaos",
    );
    sorted_lines(out)
}

fn finish(mut child: std::process::Child, log: &Path, what: &str) {
    let status = wait_bounded(&mut child, Duration::from_secs(180));
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{what} failed:\n{log}");
}

#[test]
fn executors_that_exit_and_tasks_that_stall_still_give_the_embedded_output() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 5);
    std::fs::create_dir(d("chaos")).unwrap();
    let extra = args!["--chaos-dir", d("chaos"), "--chaos-seed", "7"];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job with crashing executors");
    let crashed = std::fs::read_dir(d("chaos")).unwrap().count();
    assert!(crashed >= 1, "no executor exited: the test injected nothing");
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

#[test]
fn with_nothing_injected_each_map_task_runs_exactly_once() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 10);
    std::fs::create_dir(d("runs")).unwrap();
    let extra = args!["--run-marker", d("runs"), "--sleep-ms", "5"];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job");
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(d("runs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        *runs.entry(name.split('.').next().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(runs.len(), 120, "every line ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "lines that ran more than once (a duplicate attempt): {twice:?}"
    );
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

/// (worker, start, end) of each recorded piece of work on `side` ("map" or "reduce").
fn timeline(dir: &Path, side: &str) -> Vec<(String, u128, u128)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let mut parts = name.split('.');
            if parts.next()? != side {
                return None;
            }
            let worker = parts.next()?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            let (start, end) = text.split_once(' ')?;
            Some((worker, start.parse().ok()?, end.trim().parse().ok()?))
        })
        .collect()
}

fn overlap_across_workers(work: &[(String, u128, u128)]) -> bool {
    work.iter()
        .any(|(w1, s1, e1)| work.iter().any(|(w2, s2, e2)| w1 != w2 && s1 < e2 && s2 < e1))
}

#[test]
fn map_tasks_and_reduce_tasks_run_concurrently_on_two_workers() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("timeline")).unwrap();
    let extra = args![
        "--timeline",
        d("timeline"),
        "--sleep-ms",
        "40",
        "--reduce-sleep-ms",
        "20"
    ];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job");
    let maps = timeline(&d("timeline"), "map");
    let reduces = timeline(&d("timeline"), "reduce");
    assert_eq!(maps.len(), 40);
    assert!(
        overlap_across_workers(&maps),
        "no two map tasks ran at once on two workers"
    );
    assert!(
        overlap_across_workers(&reduces),
        "no two reduce tasks ran at once on two workers"
    );
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

#[test]
fn no_process_reports_the_job_done_before_its_output_is_complete_and_final() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 6, 5);
    let want = expected(&d("text"), &d("embedded"));
    let extra = args!["--sleep-ms", "10", "--reduce-sleep-ms", "10"];
    let mut client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    // While the job runs, the output directory is absent or already final, never partial.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut looked = 0;
    while client.try_wait().unwrap().is_none() {
        if d("cluster").exists() {
            assert!(
                d("cluster").join("_SUCCESS").exists(),
                "output visible before it was committed"
            );
            assert_eq!(sorted_lines(&d("cluster")), want, "output visible before it was final");
        }
        looked += 1;
        assert!(Instant::now() < deadline, "the job did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(looked > 10, "the job finished before it could be watched");
    finish(client, &d("log"), "the job");
    assert_eq!(sorted_lines(&d("cluster")), want);
}

#[test]
fn a_job_survives_a_killed_worker_a_stopped_worker_and_a_killed_leader() {
    let cluster = LocalCluster::up(3, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 10);
    let extra = args!["--sleep-ms", "30"];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    let job = job_id(&d("log"));
    cluster.wait_for_stage(&job, 0, |done, _| done >= 2);
    let leader = cluster.leader();
    signal(cluster.worker_pid(0), libc::SIGKILL);
    signal(cluster.worker_pid(1), libc::SIGSTOP);
    signal(cluster.driver_pid(leader), libc::SIGKILL);
    finish(
        client,
        &d("log"),
        "the job through a killed worker, a stopped worker and a killed leader",
    );
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

#[test]
fn a_straggler_gets_a_speculative_copy_and_the_job_does_not_wait_for_it() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("runs")).unwrap();
    std::fs::create_dir(d("straggler")).unwrap();
    let extra = args![
        "--sleep-ms",
        "20",
        "--run-marker",
        d("runs"),
        "--straggle",
        "l3_0",
        "--straggle-dir",
        d("straggler")
    ];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job with a straggler");
    assert!(
        !d("straggler").join("straggler-done").exists(),
        "the job waited for its straggler instead of a speculative copy"
    );
    let runs = std::fs::read_dir(d("runs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("l3_0."))
        .count();
    assert_eq!(runs, 2, "the straggling task ran once, and once more as its copy");
    // The losing attempt does not outlive its job: its executor is stopped.
    let pid = straggler_pid(&d("straggler"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "the straggler's executor (pid {pid}) still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

#[test]
fn a_losing_attempt_is_stopped_as_soon_as_its_copy_wins_not_when_the_job_ends() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("straggler")).unwrap();
    // The first attempt at l3_0 stalls for a minute; the reduce stage after it takes a
    // few seconds, so the job is still running when the copy has won.
    let extra = args![
        "--sleep-ms",
        "20",
        "--reduce-sleep-ms",
        "150",
        "--straggle",
        "l3_0",
        "--straggle-ms",
        "60000",
        "--straggle-dir",
        d("straggler")
    ];
    let mut client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    let pid = straggler_pid(&d("straggler"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(pid) {
        let log = || std::fs::read_to_string(d("log")).unwrap_or_default();
        assert!(
            client.try_wait().unwrap().is_none(),
            "the job ended while its losing attempt (pid {pid}) still ran:\n{}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "the losing attempt (pid {pid}) still runs:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!d("straggler").join("straggler-done").exists());
    finish(client, &d("log"), "the job with a stopped straggler");
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

#[test]
fn a_stalled_task_times_out_and_runs_again_when_speculation_is_off() {
    let cluster = LocalCluster::up_with(1, 2, 2, &["--task-timeout", "3", "--speculation-multiplier", "0"]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("straggler")).unwrap();
    // The first attempt to read l3_0 stalls for two minutes; nothing else would end it.
    let extra = args![
        "--straggle",
        "l3_0",
        "--straggle-ms",
        "120000",
        "--straggle-dir",
        d("straggler")
    ];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job with a stalled task");
    assert!(d("straggler").join("straggled").exists(), "no task stalled");
    assert!(
        !d("straggler").join("straggler-done").exists(),
        "the job waited for its stalled task"
    );
    assert_eq!(sorted_lines(&d("cluster")), expected(&d("text"), &d("embedded")));
}

/// Word counts of every file in `dir`, computed sequentially: `word<TAB>count` lines, sorted.
fn sequential_counts(dir: &Path) -> Vec<String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        for word in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .split_whitespace()
        {
            *counts.entry(word.to_string()).or_default() += 1;
        }
    }
    let mut lines: Vec<String> = counts.into_iter().map(|(w, n)| format!("{w}\t{n}")).collect();
    lines.sort();
    lines
}

#[test]
fn executors_exit_and_stall_at_random_in_both_phases_and_every_count_is_right_once() {
    // In the style of MIT 6.5840's test-mr.sh crash test: map and reduce closures exit their
    // executor or stall, decided at random per key, in several runs on 3 workers.
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 5);
    let want = sequential_counts(&d("text"));
    let (mut map_crashes, mut reduce_crashes) = (0, 0);
    for seed in [3, 11, 19] {
        let chaos = d(&format!("chaos-{seed}"));
        std::fs::create_dir(&chaos).unwrap();
        let out = d(&format!("out-{seed}"));
        let extra = args!["--chaos-dir", &chaos, "--chaos-seed", seed.to_string()];
        let log = d(&format!("log-{seed}"));
        let client = run_chaos(&cluster, &d("text"), &out, &extra, &log);
        finish(client, &log, &format!("the crash test with seed {seed}"));
        // A count twice (a task's output committed by two attempts) or missed shows here.
        assert_eq!(sorted_lines(&out), want, "seed {seed}");
        for marker in std::fs::read_dir(&chaos).unwrap() {
            let name = marker.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with("crashed-reduce-") {
                reduce_crashes += 1;
            } else {
                map_crashes += 1;
            }
        }
    }
    assert!(
        map_crashes >= 1 && reduce_crashes >= 1,
        "faults in both phases: {map_crashes} map, {reduce_crashes} reduce"
    );
}
