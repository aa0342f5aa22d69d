//! Faults on a cluster of real processes: workers killed, stopped or restarted mid-job,
//! shuffle blocks that cannot be read, jobs cancelled. Each test shows its fault hit the
//! running job, and checks results against a word count computed sequentially.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ringleader_core::fault_injection;

use crate::helpers::{
    KillOnDrop, LocalCluster, args, children_of, eventually, example, files_under, job_id, kill_now, numbered_text, ok,
    output_bounded, running, signal, sorted_lines, stop_now, succeeds, wait_bounded,
};
use crate::oracles::word_counts;

/// Starts the chaos job with `args`, every shuffle block fetched over Flight (as across
/// machines: a dead or stopped worker's files are unreadable), its stderr in `log`.
fn chaos_over_flight(cluster: &LocalCluster, args: &[std::ffi::OsString], log: &Path) -> std::process::Child {
    cluster
        .client(&example("chaos"))
        .args(args)
        .env("RINGLEADER_HOST_LOCAL_SHUFFLE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits (at most 2 minutes) for the job's client and fails the test unless it succeeded.
fn job_succeeds(client: std::process::Child, log: &Path, what: &str) {
    succeeds(client, log, Duration::from_secs(120), what);
}

/// Whether worker `w` (1-based, as its directory is named) holds map output of `job`.
fn holds_map_output(cluster: &LocalCluster, w: usize, job: &str) -> bool {
    files_under(&cluster.dir.path().join(format!("worker-{w}/shuffle/{job}")))
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "arrow"))
}

#[test]
fn a_worker_killed_after_the_map_stage_has_its_output_recomputed() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 9, 10);
    // A fast map stage and a slow reduce stage (30 ms per distinct word).
    let job_args = args![
        "--input",
        d("text"),
        "--output",
        d("cluster"),
        "--reduce-sleep-ms",
        "30"
    ];
    // Reducers fetch over Flight (as across machines): a dead worker's files are unreadable.
    let client = chaos_over_flight(&cluster, &job_args, &d("client.log"));
    let job = job_id(&d("client.log"));
    let (maps, _, _) = cluster.wait_for_stage(&job, 0, |done, total| done == total);
    // Worker 2 holds map output (9 map tasks over 3 workers x 2 slots) that the reducers
    // still need; it dies.
    assert!(holds_map_output(&cluster, 2, &job), "worker 2 held no map output");
    assert_eq!(cluster.job_state(&job).as_deref(), Some("running"));
    kill_now(cluster.worker_pid(1));
    job_succeeds(client, &d("client.log"), "the job failed after a worker died");
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
    // The lost worker's map outputs ran again, and only those: not the whole stage.
    let (_, _, attempts) = cluster.stage(&job, 0).unwrap();
    assert!(
        attempts > maps,
        "no map task ran again ({attempts} attempts for {maps} tasks)"
    );
    assert!(
        attempts < 2 * maps,
        "the whole map stage ran again ({attempts} attempts for {maps} tasks)"
    );
    assert_eq!(
        cluster.stage_failures(&job, 0).map(|(_, counted)| counted),
        Some(0),
        "recomputing a lost worker's output counted as a task failure"
    );
}

#[test]
fn a_worker_killed_mid_stage_has_its_running_tasks_run_elsewhere_uncounted() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // 12 map tasks of about 0.3 s on 6 slots.
    numbered_text(&d("text"), 12, 10);
    let job_args = args!["--input", d("text"), "--output", d("cluster"), "--sleep-ms", "30"];
    let client = cluster.spawn("chaos", &job_args, &d("client.log"));
    let job = job_id(&d("client.log"));
    eventually(Duration::from_secs(60), "worker 1 runs a map task", || {
        cluster.worker_metric(0, "ringleader_worker_running_tasks") >= 1.0
    });
    let (done, total, _) = cluster.stage(&job, 0).unwrap();
    assert!(done < total, "the map stage was over before the kill");
    let map_state = cluster.stage_state(&job, 0);
    assert!(
        matches!(map_state.as_deref(), Some("running" | "runnable")),
        "a map stage with tasks on a worker is {map_state:?}"
    );
    kill_now(cluster.worker_pid(0));
    job_succeeds(client, &d("client.log"), "the job failed after a worker died");
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
    for stage in [0, 1] {
        assert_eq!(
            cluster.stage_state(&job, stage).as_deref(),
            Some("done"),
            "stage {stage}"
        );
    }
    // Its tasks ran again, and those runs used up none of their attempts.
    let (_, total, attempts) = cluster.stage(&job, 0).unwrap();
    assert!(
        attempts > total,
        "no map task ran again ({attempts} attempts, {total} tasks)"
    );
    let (_, counted) = cluster.stage_failures(&job, 0).unwrap();
    assert_eq!(counted, 0, "a lost worker's tasks counted as failures");
    assert!(
        cluster.driver_log(0).contains("worker-1 is lost"),
        "{}",
        cluster.driver_log(0)
    );
}

#[test]
fn a_lost_workers_dataset_partitions_are_read_from_other_replicas_and_copied_back_to_r() {
    // The driver holds back the copying while the file `hold` exists, so the dataset is
    // read while one replica of each of the lost worker's partitions is missing.
    let data = tempfile::tempdir().unwrap();
    let hold = data.path().join("hold-repair");
    let cluster = LocalCluster::up_env(1, 3, 2, &[], &[(fault_injection::REPAIR_HOLD, hold.to_str().unwrap())]);
    let input = data.path().join("text");
    ringleader_datasets::text::generate(&input, 60_000, 3, 300, 5, false).unwrap();
    cluster.put("words", 4, 2, &input);
    // Worker 2 holds replicas (every partition is on 2 of 3 workers); it dies.
    let held: Vec<u32> = (0..4).filter(|&p| cluster.holders("words", p, &[2]) == 1).collect();
    assert!(!held.is_empty(), "worker 2 held no partition");
    std::fs::write(&hold, "").unwrap();
    kill_now(cluster.worker_pid(1));
    eventually(Duration::from_secs(30), "the driver declares worker 2 lost", || {
        cluster.driver_log(0).contains("worker-2 is lost")
    });
    // Read now: each of those partitions is on one live worker only.
    for &p in &held {
        assert_eq!(cluster.holders("words", p, &[1, 3]), 1, "partition {p}");
    }
    let out = data.path().join("from-dataset");
    let mut job = cluster.client(&example("wordcount"));
    job.args(args!["--dataset", "words", "--output", out]);
    let mut child = job.stderr(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    assert!(wait_bounded(&mut child, Duration::from_secs(120)).success());
    assert_eq!(sorted_lines(&out), word_counts(&input));
    for &p in &held {
        assert_eq!(
            cluster.holders("words", p, &[1, 3]),
            1,
            "partition {p} was copied before the read ended: the read proved nothing"
        );
    }
    // Let the repair go: every partition is back on two live workers.
    std::fs::remove_file(&hold).unwrap();
    eventually(Duration::from_secs(30), "the partitions are re-replicated", || {
        (0..4).all(|p| cluster.holders("words", p, &[1, 3]) == 2)
    });
    assert!(cluster.driver_log(0).contains("copied words partition"));
}

#[test]
fn a_stored_partition_that_no_replica_can_serve_fails_the_job_after_bounded_attempts() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    ringleader_datasets::text::generate(&input, 20_000, 2, 100, 9, false).unwrap();
    cluster.put("lost", 2, 2, &input);
    // Every copy of partition 0 disappears from the workers' disks (a wiped disk, by hand).
    for w in 1..=2 {
        let dataset = cluster.dir.path().join(format!("worker-{w}/datasets/lost"));
        for generation in std::fs::read_dir(&dataset).unwrap().flatten() {
            let part = generation.path().join("part-0.arrow");
            if part.exists() {
                std::fs::remove_file(part).unwrap();
            }
        }
    }
    assert_eq!(cluster.holders("lost", 0, &[1, 2]), 0);
    let out = data.path().join("out");
    let mut job = cluster.client(&example("wordcount"));
    job.args(args!["--input", "ringleader://lost", "--output", out]);
    let log = data.path().join("client.log");
    let mut child = job
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "the job succeeded without partition 0:\n{stderr}");
    assert!(stderr.contains("lost") && stderr.contains("partition 0"), "{stderr}");
    assert!(!out.exists(), "a failed job left an output");
}

#[test]
fn a_worker_stopped_with_sigterm_mid_job_stops_its_executors_and_exits_and_the_job_finishes_elsewhere() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // 8 map tasks of about 1 s on 4 slots.
    numbered_text(&d("text"), 8, 10);
    let job_args = args!["--input", d("text"), "--output", d("cluster"), "--sleep-ms", "100"];
    let client = cluster.spawn("chaos", &job_args, &d("client.log"));
    let pid = cluster.worker_pid(0);
    eventually(Duration::from_secs(60), "worker 1 runs the job's executor", || {
        !children_of(pid).is_empty() && cluster.worker_metric(0, "ringleader_worker_running_tasks") >= 1.0
    });
    let executors = children_of(pid);
    signal(pid, libc::SIGTERM);
    // Its executors stop at once, its requests in flight are answered, its background work
    // is waited for: well within the 5 s `cluster down` gives a node before SIGKILL.
    let began = Instant::now();
    eventually(Duration::from_secs(30), "the worker exits on SIGTERM", || !running(pid));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the worker took {:?} to exit",
        began.elapsed()
    );
    for executor in executors {
        assert!(!running(executor), "executor {executor} outlived its worker");
    }
    job_succeeds(client, &d("client.log"), "the job failed after a worker was stopped");
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
}

#[test]
fn a_worker_restarted_at_its_address_mid_job_has_its_running_tasks_run_again() {
    // A worker timeout far longer than the restart: the driver never sees it miss a
    // heartbeat, only a new process registering at its address.
    let cluster = LocalCluster::up_with(1, 1, 2, &["--worker-timeout", "60"]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 4, 10);
    // Each map task takes about 3 s: both slots are busy when the worker goes, so the
    // driver has nothing to send it that would find it gone.
    let job_args = args!["--input", d("text"), "--output", d("cluster"), "--sleep-ms", "300"];
    let client = cluster.spawn("chaos", &job_args, &d("client.log"));
    let job = job_id(&d("client.log"));
    let pid = cluster.worker_pid(0);
    eventually(Duration::from_secs(60), "the map tasks start", || {
        cluster.stage(&job, 0).is_some_and(|(_, _, attempts)| attempts >= 2) && !children_of(pid).is_empty()
    });
    // Killed and started again at the same address, well within the worker timeout.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let mut argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // `cluster up` let it pick a port: the new process takes the one it had.
    let address = std::fs::read_to_string(cluster.dir.path().join("worker-1/address")).unwrap();
    match argv.iter().position(|a| a == "--listen") {
        Some(flag) => argv[flag + 1] = address.trim().to_string(),
        None => argv.extend(["--listen".to_string(), address.trim().to_string()]),
    }
    // Its executors go with it, as when its machine or container restarts.
    for child in children_of(pid) {
        kill_now(child);
    }
    kill_now(pid);
    let _restarted = KillOnDrop(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d("worker.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    job_succeeds(client, &d("client.log"), "the job failed after its worker restarted");
    let worker_log = std::fs::read_to_string(d("worker.log")).unwrap();
    assert!(
        worker_log.contains("worker worker-1 listening"),
        "not the same worker: {worker_log}"
    );
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
    let detail = cluster.job_text(&job);
    let (_, total, attempts) = cluster
        .stage(&job, 0)
        .unwrap_or_else(|| panic!("no stage 0 in:\n{detail}"));
    assert!(
        attempts > total,
        "no map task ran again ({attempts} attempts, {total} tasks)"
    );
}

/// No output of `name` under `dir`: neither the directory nor a staging directory beside
/// it (`.NAME.ringleader-staging-…`).
fn assert_no_output(dir: &Path, name: &str) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == name || n.starts_with(&format!(".{name}.")))
        .collect();
    assert!(left.is_empty(), "a stopped job left {left:?}");
}

#[test]
fn cancel_and_ctrl_c_stop_a_job_and_its_executor_at_once_and_a_vanished_client_gets_a_grace() {
    // Heartbeats five minutes apart: an executor that stops within the test's bounds was
    // stopped by the driver's push, not told at a worker's next heartbeat.
    let cluster = LocalCluster::up_with(1, 1, 2, &["--heartbeat", "300", "--worker-timeout", "3000"]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 4, 200);
    // Each map task takes about a minute: nothing ends on its own during the test.
    let slow = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "300"];
    let worker = cluster.worker_pid(0);
    let start = |name: &str| {
        let client = cluster.spawn("chaos", &slow(&d(name)), &d(&format!("{name}.log")));
        let job = job_id(&d(&format!("{name}.log")));
        eventually(Duration::from_secs(60), "the job's executor runs its tasks", || {
            !children_of(worker).is_empty() && cluster.worker_metric(0, "ringleader_worker_running_tasks") >= 1.0
        });
        (client, job, children_of(worker))
    };
    // Stopped before any heartbeat could have said so: the worker's last answered
    // heartbeat is older than the stop order.
    let stopped_at_once = |executors: &[u32], since: Instant, what: &str| {
        eventually(Duration::from_secs(10), what, || {
            executors.iter().all(|&pid| !running(pid))
        });
        let took = since.elapsed();
        let age = cluster.worker_metric(0, "ringleader_worker_heartbeat_age_seconds");
        assert!(
            age >= took.as_secs_f64(),
            "{what}: a heartbeat came in between (age {age} s, stopped after {took:?})"
        );
        eprintln!("{what} in {took:?}");
    };

    // `ringleader cancel`: the client fails saying so, the executor is stopped at once.
    let (mut client, job, executors) = start("cancelled");
    let asked = Instant::now();
    ok(cluster.ringleader(&["cancel", &job]), "ringleader cancel");
    stopped_at_once(&executors, asked, "the cancelled job's executor stops");
    let status = wait_bounded(&mut client, Duration::from_secs(30));
    let log = std::fs::read_to_string(d("cancelled.log")).unwrap();
    assert!(!status.success() && log.contains("cancel"), "{log}");
    assert_eq!(cluster.job_state(&job).as_deref(), Some("cancelled"));
    assert_no_output(data.path(), "cancelled");
    // A second cancel, and one of an unknown job, are clear errors.
    let again = cluster.ringleader(&["cancel", &job]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not running"));
    let unknown = cluster.ringleader(&["cancel", "job-999999"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no job"));

    // Ctrl-C in the job's program cancels it on the cluster, and stops its executor.
    let (mut client, job, executors) = start("interrupted");
    let asked = Instant::now();
    signal(client.id(), libc::SIGINT);
    stopped_at_once(&executors, asked, "the interrupted job's executor stops");
    let status = wait_bounded(&mut client, Duration::from_secs(30));
    let log = std::fs::read_to_string(d("interrupted.log")).unwrap();
    assert!(!status.success() && log.contains("interrupted: cancelled"), "{log}");
    assert_eq!(cluster.job_state(&job).as_deref(), Some("cancelled"));
    assert_no_output(data.path(), "interrupted");

    // A client that vanishes (killed: its stream drops) leaves its job running for a
    // grace in which it could come back; then the job is cancelled.
    let (mut client, job, _) = start("vanished");
    let vanished = Instant::now();
    kill_now(client.id());
    let _ = client.wait();
    // Still running until the grace (15 s) is nearly over.
    while vanished.elapsed() < Duration::from_secs(10) {
        assert_eq!(
            cluster.job_state(&job).as_deref(),
            Some("running"),
            "cancelled without a grace"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eventually(Duration::from_secs(40), "the unwatched job is cancelled", || {
        cluster.job_state(&job).as_deref() == Some("cancelled")
    });
    // The killed client could not remove its staging directory (the next job writing
    // there does); nothing was committed.
    assert!(!d("vanished").exists(), "a cancelled job committed its output");
}

#[test]
fn a_worker_stopped_while_a_reducer_fetches_from_it_is_lost_and_the_job_finishes() {
    // Each batch of a shuffle block waits 400 ms before it is sent: a fetch stays in
    // flight long enough to stop its worker in the middle of it.
    let cluster = LocalCluster::up_env(1, 3, 2, &[], &[(fault_injection::SHUFFLE_SERVING, "slow:400")]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 9, 10);
    let job_args = args!["--input", d("text"), "--output", d("cluster")];
    let mut client = chaos_over_flight(&cluster, &job_args, &d("client.log"));
    let job = job_id(&d("client.log"));
    cluster.wait_for_stage(&job, 0, |done, total| done == total);
    assert!(holds_map_output(&cluster, 2, &job), "worker 2 held no map output");
    // A handful of streams at most: a gauge stuck high would prove nothing.
    eventually(Duration::from_secs(60), "a reducer fetches from worker 2", || {
        (1.0..=16.0).contains(&cluster.worker_metric(1, "ringleader_worker_flight_streams_open"))
    });
    // Frozen mid-fetch: its Flight server neither answers nor closes the connection.
    let stopped = cluster.worker_pid(1);
    stop_now(stopped);
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    signal(stopped, libc::SIGCONT);
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(
        status.success(),
        "the job failed with a worker stopped mid-fetch:\n{log}"
    );
    assert_eq!(sorted_lines(&d("cluster")), word_counts(&d("text")));
    // The fetch failed naming worker 2, whose output was computed again, and worker 2 was
    // declared lost.
    let detail = cluster.job_text(&job);
    assert!(
        detail.contains("could not read map output on worker-2"),
        "no fetch from worker 2 failed:\n{detail}"
    );
    assert!(
        cluster.driver_log(0).contains("worker-2 is lost"),
        "{}",
        cluster.driver_log(0)
    );
}

#[test]
fn a_job_whose_map_output_keeps_vanishing_fails_after_eight_fetch_failures() {
    let cluster = LocalCluster::up(1, 1);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 2, 5);
    // A disk that loses every committed map output (not the ones being written) as it
    // appears: no number of map reruns helps the reducers.
    let job_args = args!["--input", d("text"), "--output", d("out")];
    let mut client = cluster.spawn("chaos", &job_args, &d("client.log"));
    let shuffle = cluster.dir.path().join("worker-1/shuffle/job-000001");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut wiped = 0;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the job neither failed nor finished");
        for file in files_under(&shuffle) {
            let committed = file
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n.to_string_lossy().starts_with("map-") && !n.to_string_lossy().ends_with(".tmp"));
            if committed && std::fs::remove_file(&file).is_ok() {
                wiped += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(wiped > 0, "no map output was wiped");
    assert!(!status.success(), "a job succeeded without its map output:\n{log}");
    assert!(
        log.contains("map output could not be read 9 times"),
        "the failure does not say why:\n{log}"
    );
    let detail = cluster.job_text("job-000001");
    assert!(detail.contains("fetch failures: 9 "), "{detail}");
    assert_no_output(data.path(), "out");
}

#[test]
fn a_job_whose_executor_dies_while_its_last_report_is_on_its_way_still_ends_for_its_client() {
    // The driver takes half a second over each report after committing it (as a stop sent
    // to a slow worker does); the executor exits 100 ms after sending its report (as one
    // stopped for its last other attempt is). The worker's call, and the driver's handling
    // of it, must not be given up with the executor: the client hears that its job ended,
    // and the task's result is not lost and computed again.
    let cluster = LocalCluster::up_env(1, 1, 2, &[], &[(fault_injection::REPORT_DELAY_MS, "500")]);
    let data = tempfile::tempdir().unwrap();
    let numbers = data.path().join("numbers");
    ringleader_datasets::numbers::generate(&numbers, 20_000, 1, 3, false).unwrap();
    let (_, total) = crate::oracles::int64_sum(&numbers);
    let out = output_bounded(
        cluster
            .client(&example("sum"))
            .args(args!["--input", numbers])
            .env("RINGLEADER_PROGRESS", "0")
            .env(fault_injection::EXIT_AFTER_REPORT_MS, "100"),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().last(),
        Some(total.to_string().as_str())
    );
    let (done, total_tasks, attempts) = cluster.stage("job-000001", 0).unwrap();
    assert_eq!(
        (done, attempts),
        (total_tasks, total_tasks),
        "a task ran again: its report was lost"
    );
}
