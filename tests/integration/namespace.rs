//! The stored-dataset namespace under concurrent writers and leader changes, on real
//! processes: every change to a name is a compare-and-set in the Raft log, so two writers of
//! one name never both win, an `rm` is never undone by a write that started before it, and
//! a write placed before a leader change keeps its partitions and commits through the new
//! leader. A `put` is held just before its commit (`RINGLEADER_TEST_COMMIT_HOLD`) to line the
//! races up the same way every time. A leader that dies between applying a removal and
//! answering (`RINGLEADER_TEST_REPLY_LOST`) shows that a retried removal is applied once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringleader_core::fault_injection::{COMMIT_HOLD, REPLY_LOST};

use crate::helpers::{
    Bounded, LocalCluster, eventually, files_under, kill_now, ok, ringleader_bin, running, wait_bounded,
};
use crate::oracles::lines_under;

/// Text files of `n` distinct lines tagged `tag` under `dir`.
fn tagged_text(dir: &Path, tag: &str, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = (0..n).map(|i| format!("{tag} line {i}\n")).collect();
    std::fs::write(dir.join(format!("{tag}.txt")), text).unwrap();
}

/// `ringleader put ARGS INPUT` on `cluster` in the background, held before its commit while
/// `hold` exists; its stderr in `log`.
fn put_held(cluster: &LocalCluster, args: &[&str], input: &Path, hold: &Path, log: &Path) -> Child {
    Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .env(COMMIT_HOLD, hold)
        .args(["put", "--master", &cluster.master])
        .args(args)
        .arg(input)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// `ringleader put ARGS INPUT` to its end.
fn put(cluster: &LocalCluster, args: &[&str], input: &Path) -> std::process::Output {
    Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .args(["put", "--master", &cluster.master])
        .args(args)
        .arg(input)
        .bounded()
}

/// The generation directories of dataset `name` on the workers' disks.
fn generations_on_disk(cluster: &LocalCluster, name: &str) -> Vec<String> {
    let mut generations: Vec<String> = std::fs::read_dir(cluster.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("worker-"))
        .flat_map(|w| {
            std::fs::read_dir(w.path().join("datasets").join(name))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|g| {
            files_under(&g.path())
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "arrow"))
        })
        .map(|g| g.file_name().to_string_lossy().into_owned())
        .collect();
    generations.sort();
    generations.dedup();
    generations
}

/// What `ringleader get NAME` writes, as sorted lines.
fn got(cluster: &LocalCluster, name: &str, into: &Path) -> Vec<String> {
    ok(
        cluster.ringleader(&["get", name, into.to_str().unwrap()]),
        "ringleader get",
    );
    lines_under(into)
}

/// The held put's log once it ended, which must be a failure.
fn failed(mut child: Child, log: &Path) -> String {
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!status.success(), "the put should have lost its race:\n{text}");
    text
}

#[test]
fn two_puts_of_one_name_without_overwrite_store_one_and_tell_the_other_which_won() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    tagged_text(&d("a"), "first", 2000);
    tagged_text(&d("b"), "second", 1500);
    std::fs::write(d("hold"), "").unwrap();
    // The first put places its write and sends its partitions, then waits before its commit.
    let first = put_held(&cluster, &["--name", "race"], &d("a"), &d("hold"), &d("first.log"));
    eventually(Duration::from_secs(60), "the first put's partitions are sent", || {
        generations_on_disk(&cluster, "race").len() == 1
    });
    // The second, placed while the name is still free, commits first.
    let second = put(&cluster, &["--name", "race"], &d("b"));
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    std::fs::remove_file(d("hold")).unwrap();
    let log = failed(first, &d("first.log"));
    assert!(
        log.contains("dataset race was stored by another writer meanwhile") && log.contains(" won)"),
        "{log}"
    );
    // The name holds the winner's rows, all of them, and only the winner's files stay.
    let want = lines_under(&d("b"));
    assert_eq!(got(&cluster, "race", &d("got")), want);
    eventually(Duration::from_secs(30), "the loser's partitions are deleted", || {
        generations_on_disk(&cluster, "race").len() == 1
    });
}

#[test]
fn an_overwrite_that_started_before_an_rm_does_not_bring_the_dataset_back() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    tagged_text(&d("old"), "old", 500);
    tagged_text(&d("new"), "new", 500);
    let stored = put(&cluster, &["--name", "gone"], &d("old"));
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    std::fs::write(d("hold"), "").unwrap();
    let overwrite = put_held(
        &cluster,
        &["--name", "gone", "--overwrite"],
        &d("new"),
        &d("hold"),
        &d("overwrite.log"),
    );
    eventually(Duration::from_secs(60), "the overwrite's partitions are sent", || {
        generations_on_disk(&cluster, "gone").len() == 2
    });
    ok(cluster.ringleader(&["rm", "gone"]), "ringleader rm");
    std::fs::remove_file(d("hold")).unwrap();
    let log = failed(overwrite, &d("overwrite.log"));
    assert!(log.contains("dataset gone was removed meanwhile"), "{log}");
    let listed = ok(cluster.ringleader(&["datasets"]), "datasets");
    assert!(!listed.contains("gone:"), "{listed}");
    eventually(Duration::from_secs(30), "both generations' files go", || {
        generations_on_disk(&cluster, "gone").is_empty()
    });
}

#[test]
fn a_put_whose_leader_changed_before_its_commit_keeps_its_partitions_and_commits() {
    let cluster = LocalCluster::up(3, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    tagged_text(&d("in"), "kept", 3000);
    std::fs::write(d("hold"), "").unwrap();
    let mut writer = put_held(&cluster, &["--name", "kept"], &d("in"), &d("hold"), &d("put.log"));
    eventually(Duration::from_secs(60), "the put's partitions are sent", || {
        generations_on_disk(&cluster, "kept").len() == 1
    });
    let (leader, term) = cluster.leader_after(0);
    kill_now(cluster.driver_pid(leader));
    cluster.leader_after(term);
    // Both workers clean up twice more by the lists of the new leader (a pass starts on a
    // heartbeat's answer: the first may still have started on the old leader's).
    let passes = |w: usize| cluster.worker_metric(w, "ringleader_worker_housekeeping_passes_total");
    let before: Vec<f64> = (0..2).map(passes).collect();
    eventually(
        Duration::from_secs(30),
        "the workers clean up by the new leader's lists",
        || (0..2).all(|w| passes(w) >= before[w] + 2.0),
    );
    assert_eq!(
        generations_on_disk(&cluster, "kept").len(),
        1,
        "the new leader let the workers delete a placed write"
    );
    std::fs::remove_file(d("hold")).unwrap();
    let status = wait_bounded(&mut writer, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("put.log")).unwrap_or_default();
    assert!(status.success(), "the put failed after the leader changed:\n{log}");
    assert_eq!(got(&cluster, "kept", &d("got")), lines_under(&d("in")));
}

#[test]
fn a_put_started_right_after_a_worker_died_places_its_partitions_on_the_next_owners() {
    // The driver would notice the dead worker only after a minute: the put meets it first.
    let cluster = LocalCluster::up_with(1, 3, 2, &["--worker-timeout", "60"]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    for tag in ["one", "two", "three"] {
        tagged_text(&d("in"), tag, 400);
    }
    kill_now(cluster.worker_pid(1));
    let stored = put(
        &cluster,
        &["--name", "around", "--partitions", "6", "--replicas", "2"],
        &d("in"),
    );
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
    let placements: Vec<&str> = listing.lines().filter(|l| l.contains("partition ")).collect();
    assert_eq!(placements.len(), 6, "{listing}");
    assert!(
        placements
            .iter()
            .all(|l| !l.contains("worker-2") && l.contains("worker-1") && l.contains("worker-3")),
        "a partition was placed on the dead worker, or on fewer than 2 workers:\n{listing}"
    );
    assert_eq!(got(&cluster, "around", &d("got")), lines_under(&d("in")));
    // With no second live owner left, the put says what it was doing and why.
    kill_now(cluster.worker_pid(2));
    let refused = put(&cluster, &["--name", "short", "--replicas", "2"], &d("in"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("uploading partition") && stderr.contains("of short") && stderr.contains("cannot be reached"),
        "{stderr}"
    );
}

#[test]
fn a_removal_whose_reply_was_lost_is_retried_as_done_and_applied_once() {
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    let fault = d("reply-lost");
    let cluster = LocalCluster::up_env(3, 2, 2, &[], &[(REPLY_LOST, fault.to_str().unwrap())]);
    tagged_text(&d("in"), "gone", 50);
    let stored = put(&cluster, &["--name", "gone", "--replicas", "2"], &d("in"));
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    let (leader, term) = cluster.leader_after(0);
    let leader_pid = cluster.driver_pid(leader);
    // The leader applies the removal, then dies before it answers: the client asks the next.
    std::fs::write(&fault, "").unwrap();
    let removed = cluster.ringleader(&["rm", "gone"]);
    assert!(!fault.exists(), "the fault did not fire");
    eventually(
        Duration::from_secs(10),
        "the leader that applied the removal exits",
        || !running(leader_pid),
    );
    let stdout = ok(
        removed,
        "rm of a dataset whose removal was applied before the reply was lost",
    );
    assert!(stdout.contains("removed gone"), "{stdout}");
    cluster.leader_after(term);
    // It is gone, once: a new write of the name stays.
    let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
    assert!(!listing.contains("gone:"), "{listing}");
    let again = put(&cluster, &["--name", "gone", "--replicas", "2"], &d("in"));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(got(&cluster, "gone", &d("got")), lines_under(&d("in")));
}

#[test]
fn a_driver_that_fell_behind_never_answers_a_read_from_its_stale_state() {
    let cluster = LocalCluster::up(3, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    tagged_text(&d("in"), "stale", 50);
    let stored = put(&cluster, &["--name", "stale", "--replicas", "2"], &d("in"));
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    let (leader, _) = cluster.leader_after(0);
    let behind = (leader + 1) % 3;
    // One follower misses the removal; then the leader stops, so nothing catches it up until
    // the other follower is elected.
    crate::helpers::stop_now(cluster.driver_pid(behind));
    let removed = cluster.ringleader(&["rm", "stale"]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    crate::helpers::stop_now(cluster.driver_pid(leader));
    crate::helpers::signal(cluster.driver_pid(behind), libc::SIGCONT);
    // Asked first, the driver that fell behind must not answer from its state, where the
    // dataset still exists: the read waits for a leader whose state has the removal.
    let got = Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .args(["get", "stale", d("got").to_str().unwrap()])
        .args(["--master", &cluster.driver_address(behind)])
        .bounded();
    crate::helpers::signal(cluster.driver_pid(leader), libc::SIGCONT);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(!got.status.success(), "a removed dataset was read: {stderr}");
    assert!(stderr.contains("no dataset named \"stale\""), "{stderr}");
}

#[test]
fn a_put_whose_owner_dies_mid_upload_copies_that_partition_to_another_owner() {
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // Each upload message waits 100 ms on its worker, so an upload is in flight long enough.
    let cluster = LocalCluster::up_env(
        1,
        3,
        2,
        &["--worker-timeout", "60"],
        &[(ringleader_core::fault_injection::STORE_RECEIVE_DELAY_MS, "100")],
    );
    for tag in ["one", "two", "three"] {
        tagged_text(&d("in"), tag, 400);
    }
    let mut put = Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .args(["put", "--master", &cluster.master, "--name", "midway"])
        .args(["--partitions", "6", "--replicas", "2"])
        .arg(d("in"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d("log")).unwrap())
        .spawn()
        .unwrap();
    // Worker 2 dies while it is receiving a partition (its temporary file is there).
    let receiving = || {
        files_under(&cluster.dir.path().join("worker-2/datasets"))
            .iter()
            .any(|f| f.to_string_lossy().contains(".tmp-"))
    };
    eventually(Duration::from_secs(60), "worker 2 receives a partition", receiving);
    kill_now(cluster.worker_pid(1));
    let status = wait_bounded(&mut put, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("log")).unwrap();
    assert!(status.success(), "the put failed when an owner died mid-upload:\n{log}");
    assert!(log.contains("copying it to another worker"), "{log}");
    // Read back whole, and soon every partition is on 2 live workers as the leader's audit
    // finds them (partitions the dead worker had taken whole are copied from the others).
    assert_eq!(got(&cluster, "midway", &d("got")), lines_under(&d("in")));
    eventually(Duration::from_secs(60), "every partition on 2 live workers", || {
        let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
        let placements: Vec<&str> = listing.lines().filter(|l| l.contains("partition ")).collect();
        placements.len() == 6 && placements.iter().all(|l| l.contains("(2/2 live)"))
    });
}

#[test]
fn a_put_is_acknowledged_only_on_holders_that_confirm_their_partitions() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    for tag in ["one", "two"] {
        tagged_text(&d("in"), tag, 300);
    }
    let hold = d("hold");
    std::fs::write(&hold, "").unwrap();
    let mut held = put_held(
        &cluster,
        &["--name", "unconfirmed", "--partitions", "3", "--replicas", "2"],
        &d("in"),
        &hold,
        &d("log"),
    );
    // Every partition is sent; before the commit, partition 0 vanishes from every disk.
    let copies = || -> Vec<PathBuf> {
        files_under(cluster.dir.path())
            .into_iter()
            .filter(|f| {
                let text = f.to_string_lossy();
                text.contains("/datasets/unconfirmed/") && text.ends_with("/part-0.arrow")
            })
            .collect()
    };
    eventually(Duration::from_secs(60), "partition 0 is on 2 disks", || {
        copies().len() == 2
    });
    eventually(Duration::from_secs(60), "every partition is sent", || {
        files_under(cluster.dir.path())
            .iter()
            .filter(|f| {
                f.to_string_lossy().contains("/datasets/unconfirmed/") && f.to_string_lossy().ends_with(".arrow")
            })
            .count()
            == 6
    });
    for copy in copies() {
        std::fs::remove_file(copy).unwrap();
    }
    std::fs::remove_file(&hold).unwrap();
    // The commit finds no holder for it: the put fails, and nothing is acknowledged.
    let status = wait_bounded(&mut held, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("log")).unwrap();
    assert!(
        !status.success(),
        "a put was acknowledged with a partition on no disk:\n{log}"
    );
    assert!(log.contains("no worker confirms partition 0 of unconfirmed"), "{log}");
    let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
    assert!(!listing.contains("unconfirmed"), "{listing}");
}

#[test]
fn a_jobs_output_partition_gone_from_its_holders_before_its_report_is_written_again() {
    let data = tempfile::tempdir().unwrap();
    let hold = data.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let hold_text = hold.to_str().unwrap();
    let cluster = LocalCluster::up_env(
        1,
        2,
        2,
        &[],
        &[(ringleader_core::fault_injection::STORED_REPORT_HOLD, hold_text)],
    );
    let input = data.path().join("in");
    crate::helpers::numbered_text(&input, 4, 50);
    let log = data.path().join("job.log");
    let mut job = cluster
        .client(&crate::helpers::example("wordcount"))
        .args(["--output", "ringleader://counts", "--input"])
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A task stored its partition on both workers and reported; before the driver confirms
    // it, every copy goes.
    let held = || {
        let log = cluster.driver_log(0);
        log.lines()
            .find_map(|l| l.split("holding the report of partition ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse::<u32>().ok())
    };
    eventually(Duration::from_secs(60), "a stored partition's report is held", || {
        held().is_some()
    });
    let partition = held().unwrap();
    let copies: Vec<PathBuf> = files_under(cluster.dir.path())
        .into_iter()
        .filter(|f| {
            let text = f.to_string_lossy();
            text.contains("/datasets/counts/") && text.ends_with(&format!("/part-{partition}.arrow"))
        })
        .collect();
    assert_eq!(copies.len(), 2, "partition {partition} on both workers: {copies:?}");
    for copy in &copies {
        std::fs::remove_file(copy).unwrap();
    }
    std::fs::remove_file(&hold).unwrap();
    // No worker confirms it: the task writes it again, and the job's output reads back whole.
    let status = wait_bounded(&mut job, Duration::from_secs(120));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    let got_dir = data.path().join("got");
    assert_eq!(got(&cluster, "counts", &got_dir), crate::oracles::word_counts(&input));
    let driver = cluster.driver_log(0);
    assert!(
        driver.contains(&format!("partition {partition} of counts"))
            && driver.contains("none confirm it on their disk"),
        "the lost partition was not noticed:\n{driver}"
    );
    assert!(said.contains("(1 retried)"), "{said}");
}

/// The lines of every copy of dataset `name` on the cluster's disks, by file.
fn copies_on_disk(cluster: &LocalCluster, name: &str) -> Vec<(PathBuf, Vec<String>)> {
    files_under(cluster.dir.path())
        .into_iter()
        .filter(|f| {
            let text = f.to_string_lossy();
            let staged = f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            text.contains(&format!("/datasets/{name}/")) && text.ends_with(".arrow") && !staged
        })
        .map(|f| {
            let (_, batches) = ringleader_core::io::store::read_ipc_file(&f).unwrap();
            let lines = batches
                .flat_map(|b| {
                    ringleader_core::data::Chunk::Arrow(b.unwrap())
                        .into_rows::<String>()
                        .unwrap()
                })
                .collect();
            (f, lines)
        })
        .collect()
}

#[test]
fn an_attempt_whose_worker_was_declared_lost_never_replaces_the_new_attempts_output() {
    let cluster = LocalCluster::up_with(1, 3, 2, &["--worker-timeout", "2"]);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    crate::helpers::numbered_text(&input, 4, 40);
    let marks = data.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let log = data.path().join("job.log");
    // Each output line names the executor that wrote it; the first attempt to write the
    // count of "gamma" sleeps 8 s there, then carries on to store its partition.
    let mut job = cluster
        .client(&crate::helpers::example("chaos"))
        .args([
            "--output",
            "ringleader://fenced",
            "--tag-writer",
            "--reduce-straggle",
            "gamma",
        ])
        .args(["--straggle-ms", "8000", "--input"])
        .arg(&input)
        .arg("--straggle-dir")
        .arg(&marks)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid_file = marks.join("reduce-straggled/pid");
    eventually(Duration::from_secs(60), "the reduce straggler sleeps", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    });
    let stale: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // Its worker (the executor's parent) stops answering: the driver declares it lost and
    // runs the task again elsewhere, while the stale attempt's executor sleeps on.
    let stat = std::fs::read_to_string(format!("/proc/{stale}/stat")).unwrap();
    let worker: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (0..3).any(|w| cluster.worker_pid(w) == worker),
        "{worker} is not a worker"
    );
    crate::helpers::stop_now(worker);
    let status = wait_bounded(&mut job, Duration::from_secs(180));
    let said = std::fs::read_to_string(&log).unwrap();
    crate::helpers::signal(worker, libc::SIGCONT);
    assert!(status.success(), "{said}");
    // The stale attempt woke and went on to store its partition (with its worker back).
    eventually(Duration::from_secs(60), "the stale attempt woke", || {
        marks.join("reduce-straggler-done").exists()
    });
    eventually(Duration::from_secs(60), "the stale executor ends", || !running(stale));
    // No copy on any disk holds a line the stale attempt wrote: every copy of "gamma"'s
    // partition is the new attempt's.
    let tag = format!("\t{stale}");
    let copies = copies_on_disk(&cluster, "fenced");
    let gamma: Vec<&(PathBuf, Vec<String>)> = copies
        .iter()
        .filter(|(_, lines)| lines.iter().any(|l| l.starts_with("gamma\t")))
        .collect();
    assert!(gamma.len() >= 2, "gamma's partition on fewer than 2 disks: {copies:?}");
    for (file, lines) in &gamma {
        assert!(
            !lines.iter().any(|l| l.starts_with("gamma\t") && l.ends_with(&tag)),
            "{} holds the stale attempt's copy: {lines:?}",
            file.display()
        );
    }
    // And what is read back is the word count.
    let got_dir = data.path().join("got");
    let counts: Vec<String> = got(&cluster, "fenced", &got_dir)
        .into_iter()
        .map(|l| l.rsplit_once('\t').map_or(l.clone(), |(line, _)| line.to_string()))
        .collect();
    let mut counts = counts;
    counts.sort();
    assert_eq!(counts, crate::oracles::word_counts(&input));
}
