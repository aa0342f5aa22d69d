//! Faults on a cluster of real processes: workers killed mid-job. Results are checked
//! against the same job run embedded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{
    LocalCluster, args, embedded, example, job_id, numbered_text, ok, signal, sorted_lines, wait_bounded,
};

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

#[test]
fn a_worker_killed_after_the_map_stage_has_its_output_recomputed() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 9, 10);
    // A fast map stage and a slow reduce stage (30 ms per distinct word).
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--reduce-sleep-ms", "30"];
    // Reducers fetch over Flight (as across machines): a dead worker's files are unreadable.
    let client = chaos_over_flight(&cluster, &job_args(&d("cluster")), &d("client.log"));
    let job = job_id(&d("client.log"));
    let (maps, _, _) = cluster.wait_for_stage(&job, 0, |done, total| done == total);
    // Every worker holds map output (9 map tasks over 3 workers x 2 slots); one dies.
    signal(cluster.worker_pid(1), libc::SIGKILL);
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(status.success(), "the job failed after a worker died:\n{log}");
    ok(embedded("chaos", &job_args(&d("embedded"))), "embedded chaos");
    assert_eq!(sorted_lines(&d("cluster")), sorted_lines(&d("embedded")));
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
}

#[test]
fn a_worker_killed_mid_stage_has_its_running_tasks_run_elsewhere() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 10);
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "30"];
    let client = cluster.spawn("chaos", &job_args(&d("cluster")), &d("client.log"));
    let job = job_id(&d("client.log"));
    cluster.wait_for_stage(&job, 0, |done, _| done >= 2);
    signal(cluster.worker_pid(0), libc::SIGKILL);
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(status.success(), "the job failed after a worker died:\n{log}");
    ok(embedded("chaos", &job_args(&d("embedded"))), "embedded chaos");
    assert_eq!(sorted_lines(&d("cluster")), sorted_lines(&d("embedded")));
}

#[test]
fn a_lost_workers_dataset_partitions_are_copied_back_to_r_replicas() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    ringleader_datasets::text::generate(&input, 60_000, 3, 300, 5, false).unwrap();
    cluster.put("words", 4, 2, &input);
    // Worker 2 dies: every partition it held gets a copy on a surviving worker.
    signal(cluster.worker_pid(1), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..4).any(|p| cluster.holders("words", p, &[1, 3]) < 2) {
        assert!(Instant::now() < deadline, "the partitions were not re-replicated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = data.path().join("from-dataset");
    let mut job = cluster.client(&example("wordcount"));
    job.args(args!["--dataset", "words", "--output", out]);
    let mut child = job.stderr(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    assert!(wait_bounded(&mut child, Duration::from_secs(120)).success());
    ok(
        embedded(
            "wordcount",
            &args!["--input", input, "--output", data.path().join("embedded")],
        ),
        "embedded",
    );
    assert_eq!(sorted_lines(&out), sorted_lines(&data.path().join("embedded")));
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

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                // The fields after the command name (which may hold spaces): state, ppid.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == pid.to_string()))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// A process this test started; killed (by its pid) when dropped.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "300"];
    let client = cluster.spawn("chaos", &job_args(&d("cluster")), &d("client.log"));
    let job = job_id(&d("client.log"));
    let pid = cluster.worker_pid(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.stage(&job, 0).is_none_or(|(_, _, attempts)| attempts < 2) || children_of(pid).is_empty() {
        assert!(Instant::now() < deadline, "the map tasks did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
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
        signal(child, libc::SIGKILL);
    }
    signal(pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "the worker did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _restarted = Started(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d("worker.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    let worker_log = std::fs::read_to_string(d("worker.log")).unwrap();
    assert!(
        worker_log.contains("worker worker-1 listening"),
        "not the same worker: {worker_log}"
    );
    assert!(status.success(), "the job failed after its worker restarted:\n{log}");
    ok(embedded("chaos", &job_args(&d("embedded"))), "embedded chaos");
    assert_eq!(sorted_lines(&d("cluster")), sorted_lines(&d("embedded")));
}

/// Whether a process runs (not gone, not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Waits (bounded) until `check` holds.
fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cancel_and_ctrl_c_stop_a_job_and_its_tasks_and_a_vanished_client_gets_a_grace() {
    let cluster = LocalCluster::up(1, 1);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 4, 200);
    // Each map task takes about a minute: nothing ends on its own during the test.
    let slow = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "300"];
    let worker = cluster.worker_pid(0);
    let start = |name: &str| {
        let client = cluster.spawn("chaos", &slow(&d(name)), &d(&format!("{name}.log")));
        let job = job_id(&d(&format!("{name}.log")));
        eventually(Duration::from_secs(60), "the job's executor starts", || {
            !children_of(worker).is_empty()
        });
        (client, job)
    };

    // `ringleader cancel`: the client fails saying so, the executor is stopped.
    let (mut client, job) = start("cancelled");
    let executors = children_of(worker);
    ok(cluster.ringleader(&["cancel", &job]), "ringleader cancel");
    let status = wait_bounded(&mut client, Duration::from_secs(30));
    let log = std::fs::read_to_string(d("cancelled.log")).unwrap();
    assert!(!status.success() && log.contains("cancel"), "{log}");
    assert_eq!(cluster.job_state(&job).as_deref(), Some("cancelled"));
    eventually(Duration::from_secs(10), "the cancelled job's executor stops", || {
        executors.iter().all(|&pid| !running(pid))
    });
    // A second cancel, and one of an unknown job, are clear errors.
    let again = cluster.ringleader(&["cancel", &job]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not running"));
    let unknown = cluster.ringleader(&["cancel", "job-999999"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no job"));

    // Ctrl-C in the job's program cancels it on the cluster.
    let (mut client, job) = start("interrupted");
    signal(client.id(), libc::SIGINT);
    let status = wait_bounded(&mut client, Duration::from_secs(30));
    let log = std::fs::read_to_string(d("interrupted.log")).unwrap();
    assert!(!status.success() && log.contains("interrupted: cancelled"), "{log}");
    assert_eq!(cluster.job_state(&job).as_deref(), Some("cancelled"));

    // A client that vanishes (killed: its stream drops) leaves its job running for a
    // grace in which it could come back; then the job is cancelled.
    let (mut client, job) = start("vanished");
    signal(client.id(), libc::SIGKILL);
    let _ = client.wait();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.job_state(&job).as_deref(),
        Some("running"),
        "cancelled without a grace"
    );
    eventually(Duration::from_secs(40), "the unwatched job is cancelled", || {
        cluster.job_state(&job).as_deref() == Some("cancelled")
    });
}

#[test]
fn a_worker_stopped_while_reducers_fetch_from_it_is_lost_and_the_job_finishes() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 9, 10);
    // A fast map stage, a slow reduce stage; every block is fetched over Flight.
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--reduce-sleep-ms", "30"];
    let client = chaos_over_flight(&cluster, &job_args(&d("cluster")), &d("client.log"));
    let job = job_id(&d("client.log"));
    cluster.wait_for_stage(&job, 0, |done, total| done == total);
    cluster.wait_for_stage(&job, 1, |done, _| done >= 1);
    // Frozen mid-reduce: its Flight server neither answers nor closes its connections.
    let stopped = cluster.worker_pid(1);
    signal(stopped, libc::SIGSTOP);
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    signal(stopped, libc::SIGCONT);
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(
        status.success(),
        "the job failed with a worker stopped mid-fetch:\n{log}"
    );
    ok(embedded("chaos", &job_args(&d("embedded"))), "embedded chaos");
    assert_eq!(sorted_lines(&d("cluster")), sorted_lines(&d("embedded")));
}
