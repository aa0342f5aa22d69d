//! Chaos tests: real processes on loopback, broken on purpose while a job runs (executors
//! that exit, tasks that stall, workers killed or stopped, the driver leader killed). Each
//! shows its faults fired while the job ran, checks its output against a word count
//! computed sequentially in the test (`oracles`), and is bounded in time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{
    LocalCluster, args, eventually, job_id, kill_now, numbered_text, running, runs_per_line, sorted_lines, stop_now,
    straggler_pid, succeeds,
};
use crate::oracles::word_counts;

/// Runs the chaos job on `cluster` with `extra` flags; its stderr goes to `log`.
fn run_chaos(cluster: &LocalCluster, input: &Path, out: &Path, extra: &[OsString], log: &Path) -> std::process::Child {
    let mut args = args!["--input", input, "--output", out].to_vec();
    args.extend_from_slice(extra);
    cluster.spawn("chaos", &args, log)
}

/// Waits (at most 3 minutes) for the job's client and fails the test unless it succeeded.
fn finish(child: std::process::Child, log: &Path, what: &str) {
    succeeds(child, log, Duration::from_secs(180), &format!("{what} failed"));
}

#[test]
fn executors_that_exit_and_tasks_that_stall_still_give_the_sequential_count() {
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
    let (failed, _) = cluster.job_failures("job-000001");
    assert!(failed >= 1, "no attempt failed although {crashed} executors exited");
    let counts = word_counts(&d("text"));
    assert_eq!(sorted_lines(&d("cluster")), counts);
    // Accumulators count each task once, also those that ran again after their executor
    // exited: the input's 60 lines, the output's words.
    assert_eq!(accumulator(&cluster, "job-000001", "lines"), "60");
    assert_eq!(accumulator(&cluster, "job-000001", "words"), counts.len().to_string());
}

/// The total of accumulator `name` that `ringleader job` lists for `job`.
fn accumulator(cluster: &LocalCluster, job: &str, name: &str) -> String {
    let text = cluster.job_text(job);
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("no accumulator {name} in:\n{text}"))
        .to_string()
}

#[test]
fn with_nothing_injected_each_map_task_runs_exactly_once() {
    // Tasks of about 1.2 s each, longer than speculation's 1 s minimum: nothing but the
    // rule "3x slower than the stage's median" keeps them from being copied.
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 10);
    std::fs::create_dir(d("runs")).unwrap();
    let extra = args!["--run-marker", d("runs"), "--sleep-ms", "120"];
    let client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    finish(client, &d("log"), "the job");
    let runs = runs_per_line(&d("runs"));
    assert_eq!(runs.len(), 120, "every line ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "lines that ran more than once (a duplicate attempt): {twice:?}"
    );
    let (_, total, attempts) = cluster.stage("job-000001", 0).unwrap();
    assert_eq!(attempts, total, "a map task had a second attempt (a speculative copy?)");
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
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
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
}

#[test]
fn no_process_reports_the_job_done_before_its_output_is_complete_and_final() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 6, 5);
    let want = word_counts(&d("text"));
    let extra = args!["--sleep-ms", "10", "--reduce-sleep-ms", "10"];
    let mut client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    // While the job runs, the output directory is absent or already final, never partial.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
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
        assert!(std::time::Instant::now() < deadline, "the job did not finish");
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
    // 12 map tasks of about 0.6 s on 6 slots.
    numbered_text(&d("text"), 12, 10);
    let extra = args!["--sleep-ms", "60"];
    let mut client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    let job = job_id(&d("log"));
    let (done, total, _) = cluster.wait_for_stage(&job, 0, |done, _| done >= 2);
    let (leader, term) = cluster.leader_after(0);
    // The faults land mid-stage: the map stage is not done, and the client still waits.
    assert!(
        done < total,
        "the map stage finished before the faults ({done}/{total})"
    );
    kill_now(cluster.worker_pid(0));
    stop_now(cluster.worker_pid(1));
    kill_now(cluster.driver_pid(leader));
    assert!(
        client.try_wait().unwrap().is_none(),
        "the job ended before its faults landed"
    );
    finish(
        client,
        &d("log"),
        "the job through a killed worker, a stopped worker and a killed leader",
    );
    // Another driver took over in a later term, and the client followed it.
    let (new_leader, new_term) = cluster.leader_after(term);
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let log = std::fs::read_to_string(d("log")).unwrap();
    assert!(
        log.contains("reconnecting"),
        "the client never noticed the leader change:\n{log}"
    );
    // Tasks lost with the two workers ran again.
    let (_, total, attempts) = cluster.stage(&job, 0).unwrap();
    assert!(
        attempts > total,
        "no map task ran again ({attempts} attempts, {total} tasks)"
    );
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
}

#[test]
fn a_straggler_gets_a_speculative_copy_and_the_job_does_not_wait_for_it() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // Map tasks of about 1.25 s (over speculation's 1 s minimum), one of which stalls.
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("runs")).unwrap();
    std::fs::create_dir(d("straggler")).unwrap();
    let extra = args![
        "--sleep-ms",
        "250",
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
        d("straggler").join("straggled").exists(),
        "no task straggled: the test injected nothing"
    );
    assert!(
        !d("straggler").join("straggler-done").exists(),
        "the job waited for its straggler instead of a speculative copy"
    );
    let runs = runs_per_line(&d("runs"));
    assert_eq!(
        runs.get("l3_0"),
        Some(&2),
        "the straggling task ran once, and once more as its copy"
    );
    // Its lines ran twice, but the task's updates count once.
    assert_eq!(accumulator(&cluster, "job-000001", "lines"), "40");
    // Exactly one copy, the straggler's (not one of the tasks of normal length), and no
    // failed attempt.
    let (_, total, attempts) = cluster.stage("job-000001", 0).unwrap();
    assert_eq!(attempts, total + 1, "one speculative copy in the stage");
    assert_eq!(cluster.stage_failures("job-000001", 0), Some((0, 0)));
    let driver = cluster.driver_log(0);
    assert!(
        driver.contains("job-000001 stage 0 task 3 is slow; attempt 2 on"),
        "the driver did not copy task 3 for being slow:\n{driver}"
    );
    // The losing attempt does not outlive its job: its executor is stopped.
    let pid = straggler_pid(&d("straggler"));
    eventually(Duration::from_secs(10), "the straggler's executor stops", || {
        !running(pid)
    });
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
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
    eventually(Duration::from_secs(60), "the losing attempt's executor stops", || {
        let log = std::fs::read_to_string(d("log")).unwrap_or_default();
        assert!(
            client.try_wait().unwrap().is_none(),
            "the job ended while its losing attempt (pid {pid}) still ran:\n{log}"
        );
        !running(pid)
    });
    assert!(!d("straggler").join("straggler-done").exists());
    finish(client, &d("log"), "the job with a stopped straggler");
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
}

#[test]
fn a_stalled_task_times_out_and_runs_again_when_speculation_is_off() {
    let cluster = LocalCluster::up_with(1, 2, 2, &["--task-timeout", "3", "--speculation-multiplier", "0"]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 8, 5);
    std::fs::create_dir(d("straggler")).unwrap();
    // The first attempt to read l3_0 stalls for two minutes; nothing else would end it. The
    // reduce stage takes seconds (100 ms a word), so the job runs on after the timeout.
    let extra = args![
        "--straggle",
        "l3_0",
        "--straggle-ms",
        "120000",
        "--straggle-dir",
        d("straggler"),
        "--reduce-sleep-ms",
        "100"
    ];
    let mut client = run_chaos(&cluster, &d("text"), &d("cluster"), &extra, &d("log"));
    // The timed-out attempt is stopped while the job still runs (it could otherwise write
    // output after the attempt that replaced it): its executor, running nothing else, ends.
    let stalled = crate::helpers::straggler_pid(&d("straggler"));
    crate::helpers::eventually(Duration::from_secs(60), "the stalled attempt's executor ends", || {
        !crate::helpers::running(stalled)
    });
    assert!(
        client.try_wait().unwrap().is_none(),
        "the job ended before its timed-out attempt was stopped"
    );
    finish(client, &d("log"), "the job with a stalled task");
    assert!(d("straggler").join("straggled").exists(), "no task stalled");
    assert!(
        !d("straggler").join("straggler-done").exists(),
        "the job waited for its stalled task"
    );
    // The stalled attempt failed for running too long, and that failure counted.
    assert_eq!(
        cluster.stage_failures("job-000001", 0),
        Some((1, 1)),
        "one failed attempt, counted"
    );
    let detail = cluster.job_text("job-000001");
    assert!(
        detail.contains("stage 0 task 3 attempt 1 on worker-")
            && detail.contains("ran longer than the task timeout (3 s)"),
        "{detail}"
    );
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
}

#[test]
fn executors_exit_and_stall_at_random_in_both_phases_and_every_count_is_right_once() {
    // In the style of MIT 6.5840's test-mr.sh crash test: map and reduce closures exit their
    // executor or stall, decided at random per key, in several runs on 3 workers.
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 5);
    let want = word_counts(&d("text"));
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
