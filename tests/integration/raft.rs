//! The Raft-replicated driver group with real processes on loopback: `cluster up --drivers 3`,
//! then leaders killed (`kill -9`), stopped (SIGSTOP) and restarted mid-job. Each test shows
//! its fault hit (a process that ran is gone, a later term leads) and checks every job's
//! result against a sequential computation of its input (`oracles`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringleader_datasets::gensort;

use crate::helpers::{
    Bounded, KillOnDrop, LocalCluster, Tmpfs, args, eventually, example, kill_now, numbered_text, ok, output_bounded,
    ringleader_bin, running, runs_per_line, signal, sorted_lines, stop_now, wait_bounded,
};
use crate::oracles::{assert_sorted, int64_sum, word_counts};

/// A driver group and its workers, started for one test and stopped when dropped.
struct Group {
    cluster: LocalCluster,
    /// Each driver's address and command line (to restart it from its directory).
    drivers: Vec<(String, Vec<OsString>)>,
    /// Variables every driver starts with, also when restarted.
    env: Vec<(String, String)>,
    /// The pid of each driver's current process (`cluster up`'s, or a restart's).
    pids: Mutex<Vec<u32>>,
    /// Processes this test started besides `cluster up`'s (restarted drivers), killed with
    /// the group.
    restarted: Mutex<Vec<KillOnDrop>>,
}

impl Group {
    fn up(drivers: u32, workers: u32) -> Group {
        Group::up_with(drivers, workers, &[])
    }

    fn up_with(drivers: u32, workers: u32, extra: &[&str]) -> Group {
        Group::up_env(drivers, workers, extra, &[])
    }

    /// A group whose drivers (also when restarted) and workers have the variables `env` set.
    fn up_env(drivers: u32, workers: u32, extra: &[&str], env: &[(&str, &str)]) -> Group {
        let cluster = LocalCluster::up_env(drivers, workers, 2, extra, env);
        let pids: Vec<u32> = (0..drivers as usize).map(|i| cluster.driver_pid(i)).collect();
        let drivers = pids
            .iter()
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
                let argv: Vec<OsString> = cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .skip(1)
                    .map(|a| OsString::from(String::from_utf8_lossy(a).into_owned()))
                    .collect();
                let at = argv.iter().position(|a| a == "--listen").unwrap();
                (argv[at + 1].to_string_lossy().into_owned(), argv)
            })
            .collect();
        Group {
            cluster,
            drivers,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            pids: Mutex::new(pids),
            restarted: Mutex::new(Vec::new()),
        }
    }

    /// The pid of driver `i`'s current process.
    fn pid(&self, driver: usize) -> u32 {
        self.pids.lock().unwrap()[driver]
    }

    /// Restarts driver `i` from its directory, as `cluster up` started it. Its current
    /// process must be gone (`kill_now` waits for that): a killed process holds its files
    /// until it has exited.
    fn restart(&self, i: usize) {
        let old = self.pid(i);
        assert!(!running(old), "driver {} still runs (pid {old})", i + 1);
        let log = std::fs::File::options()
            .append(true)
            .open(self.cluster.dir.path().join(format!("driver-{}/log", i + 1)))
            .unwrap();
        let child = Command::new(ringleader_bin())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.drivers[i].1)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.pids.lock().unwrap()[i] = child.id();
        self.restarted.lock().unwrap().push(KillOnDrop(child));
    }

    fn run(&self, name: &str, args: &[OsString]) -> Output {
        output_bounded(&mut self.command(name, args), Duration::from_secs(180))
    }

    fn command(&self, name: &str, args: &[OsString]) -> Command {
        let mut command = self.cluster.client(&example(name));
        command.args(args);
        command
    }

    /// `ringleader jobs` asked of the driver at `master` only.
    fn jobs_on(&self, master: &str) -> String {
        ok(self.jobs_command(master), "ringleader jobs")
    }

    fn jobs_command(&self, master: &str) -> Output {
        let mut command = Command::new(ringleader_bin());
        command
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(["jobs", "--master", master]);
        output_bounded(&mut command, Duration::from_secs(60))
    }

    /// `ringleader jobs` asked of the driver at `master`, once it lists `succeeded` succeeded
    /// jobs: a follower's replica may be a heartbeat behind the leader's.
    /// A driver just restarted may not be listening yet: it is asked again.
    fn jobs_eventually(&self, master: &str, succeeded: usize) -> String {
        let mut jobs = String::new();
        eventually(
            Duration::from_secs(20),
            &format!("{master} lists {succeeded} succeeded jobs"),
            || {
                let out = self.jobs_command(master);
                jobs =
                    String::from_utf8_lossy(if out.status.success() { &out.stdout } else { &out.stderr }).into_owned();
                out.status.success() && jobs.matches(" succeeded ").count() == succeeded
            },
        );
        jobs
    }
}

/// The cluster's own helpers (its status, leader, token, jobs) on a group.
impl std::ops::Deref for Group {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

/// The sum example's arguments and what it must print: the fixture's total, summed in
/// the test.
fn sum_of_fixture() -> (Vec<OsString>, String) {
    let fixtures = crate::helpers::fixtures("numbers");
    let (_, total) = int64_sum(&fixtures);
    (args!["--input", fixtures].to_vec(), format!("{total}\n"))
}

#[test]
fn the_leader_killed_mid_job_is_replaced_and_the_jobs_finish_correctly() {
    let group = Group::up(3, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };

    // Word count: slow map tasks (12 tasks x 10 lines x 30 ms on 4 slots), the leader
    // killed once three have finished.
    numbered_text(&d("text"), 12, 10);
    std::fs::create_dir(d("markers")).unwrap();
    let wc = args![
        "--input",
        d("text"),
        "--output",
        d("wc-cluster"),
        "--sleep-ms",
        "30",
        "--run-marker",
        d("markers")
    ];
    let client = group.spawn("chaos", &wc, &d("wc.log"));
    let job = crate::helpers::job_id(&d("wc.log"));
    let (done, total, _) = group.cluster.wait_for_stage(&job, 0, |done, _| done >= 3);
    assert!(done < total, "the map stage ended before the kill");
    let (leader, term) = group.leader_after(0);
    let killed_at = Instant::now();
    kill_now(group.pid(leader));
    let (new_leader, new_term) = group.leader_after(term);
    let elected_in = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    assert!(new_term > term);
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("wc.log")).unwrap();
    assert!(status.success(), "the word count failed after the leader died:\n{log}");
    assert!(
        log.contains("reconnecting"),
        "the client never noticed the leader change:\n{log}"
    );
    assert_eq!(sorted_lines(&d("wc-cluster")), word_counts(&d("text")));
    // Every line ran; only the tasks running at the kill (at most 4 slots' worth of
    // 10-line tasks) ran twice: tasks recorded as finished were not run again.
    let runs = runs_per_line(&d("markers"));
    assert_eq!(runs.len(), 120, "{runs:?}");
    let rerun = runs.values().filter(|n| **n > 1).count();
    assert!(
        rerun <= 40,
        "{rerun} lines ran more than once: finished tasks were re-run"
    );
    eprintln!("new leader elected {elected_in:?} after the kill");
    // Back to three drivers, so the group survives a second kill.
    group.restart(leader);

    // Sort: the (new) leader killed while it runs; the output is the input, sorted.
    gensort::generate(
        &d("records"),
        &gensort::SortSpec {
            records: 300_000,
            files: 6,
            seed: 5,
            skew: false,
        },
        false,
    )
    .unwrap();
    let sort = args![
        "--input",
        d("records"),
        "--output",
        d("sorted-cluster"),
        "--partitions",
        "8"
    ];
    let mut client = group.spawn("sort", &sort, &d("sort.log"));
    let job = crate::helpers::job_id(&d("sort.log"));
    let (leader, term) = group.leader_after(0);
    assert_eq!(group.cluster.job_state(&job).as_deref(), Some("running"));
    kill_now(group.pid(leader));
    group.leader_after(term);
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("sort.log")).unwrap();
    assert!(status.success(), "the sort failed after the leader died:\n{log}");
    assert!(log.contains("reconnecting"), "{log}");
    assert_sorted(&d("records"), &d("sorted-cluster"));
}

#[test]
fn a_killed_leader_restarted_mid_job_rejoins_without_starting_an_election() {
    // The killed leader, restarted from its directory (openraft brings it back as the leader
    // of its old term, with a log the new leader must cut back), hears of the newer term
    // and rejoins as a follower. Before the leader retried an unreachable driver within a
    // few heartbeats (openraft's default waited 500 ms, longer than the election timeout),
    // the restarted driver stood for election and the leader stepped down for its higher
    // term: one election more per restart. Heartbeats are set to this machine's 40 ms so a
    // slow CI disk does not choose longer ones that would hide it.
    let group = Group::up_env(3, 2, &[], &[("RINGLEADER_RAFT_HEARTBEAT_MS", "40")]);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 16, 50);
    let wc = args!["--input", d("text"), "--output", d("wc-cluster"), "--sleep-ms", "25"];
    let mut client = group.spawn("chaos", &wc, &d("wc.log"));
    let job = crate::helpers::job_id(&d("wc.log"));
    group.cluster.wait_for_stage(&job, 0, |done, _| done >= 1);
    for round in 0..6 {
        let (leader, term) = group.leader_after(0);
        kill_now(group.pid(leader));
        // A kill may take two elections (no pre-vote in openraft 0.9: a follower with a
        // shorter log can spend the term); the restart must take none.
        let (new_leader, new_term) = group.leader_after(term);
        group.restart(leader);
        eventually(
            Duration::from_secs(20),
            &format!("kill {round}: the restarted driver catches up"),
            || {
                let rows = group.drivers_status();
                rows.get(leader).is_some_and(|r| {
                    r["role"] == "follower" && r["last_log_index"] == rows[new_leader]["last_log_index"]
                })
            },
        );
        // Past the restarted driver's election timeout.
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            group.leader_after(0),
            (new_leader, new_term),
            "kill {round}: the restarted driver started an election"
        );
    }
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("wc.log")).unwrap();
    assert!(status.success(), "the word count failed through the kills:\n{log}");
    assert_eq!(sorted_lines(&d("wc-cluster")), word_counts(&d("text")));
}

#[test]
fn a_follower_killed_and_restarted_catches_up() {
    // A snapshot every 10 entries, so the log is compacted within a few jobs.
    let group = Group::up_with(3, 2, &["--snapshot-every", "10"]);
    let (leader, term) = group.leader_after(0);
    let follower = (leader + 1) % 3;
    let (sum, expected) = sum_of_fixture();
    let run_sums = || {
        for _ in 0..3 {
            assert_eq!(ok(group.run("sum", &sum), "sum"), expected);
        }
    };
    let wait_caught_up = |what: &str| {
        eventually(Duration::from_secs(20), &format!("{what} catches up"), || {
            let rows = group.drivers_status();
            rows.get(follower).is_some_and(|r| {
                r["role"] == "follower" && r["lag"] == 0 && r["last_log_index"] == rows[leader]["last_log_index"]
            })
        });
    };
    run_sums();

    // Killed: two of three drivers still make a majority, so jobs run; restarted from its
    // directory, it catches up with the jobs it missed.
    kill_now(group.pid(follower));
    run_sums();
    group.restart(follower);
    wait_caught_up("the restarted follower");
    group.jobs_eventually(&group.drivers[follower].0, 6);
    assert_eq!(
        group.leader_after(0).1,
        term,
        "restarting a follower does not disturb the leader"
    );

    // Its directory lost: it rejoins empty and catches up from the leader's snapshot (the
    // leader's log no longer starts at 1).
    kill_now(group.pid(follower));
    let purged = group.drivers_status()[leader]["purged_index"].as_u64().unwrap();
    assert!(purged > 0, "the leader's log was never compacted");
    let data_dir = group.cluster.dir.path().join(format!("driver-{}", follower + 1));
    for name in ["raft.redb", "raft-identity", "binaries"] {
        let path = data_dir.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    group.restart(follower);
    wait_caught_up("the emptied follower");
    group.jobs_eventually(&group.drivers[follower].0, 6);
    // Its copy of the job binary went with the directory; it serves it anyway (pulled from
    // a driver that holds it), as a new leader would to a worker that never cached it.
    assert_eq!(
        fetch_binary(&group.drivers[follower].0, &example("sum"), &group.token()),
        std::fs::read(example("sum")).unwrap()
    );
}

/// The bytes of `binary` as the driver at `address` serves them to workers.
fn fetch_binary(address: &str, binary: &Path, token_file: &Path) -> Vec<u8> {
    let hash = ringleader_core::net::binary::hash_file(binary).unwrap();
    let token = ringleader_core::security::auth::read_token_file(token_file).unwrap();
    let mut request = tonic::Request::new(ringleader_core::proto::BinaryId { hash });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = ringleader_core::net::driver_group::driver_channel(address).unwrap();
        let mut driver = ringleader_core::proto::driver_client::DriverClient::new(channel);
        let fetch = async {
            let mut stream = driver.fetch_binary(request).await.unwrap().into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await.unwrap() {
                bytes.extend_from_slice(&chunk.data);
            }
            bytes
        };
        tokio::time::timeout(Duration::from_secs(60), fetch)
            .await
            .expect("the binary within a minute")
    })
}

#[test]
fn the_whole_group_restarts_from_disk_with_its_history() {
    let group = Group::up(3, 1);
    let (sum, expected) = sum_of_fixture();
    assert_eq!(ok(group.run("sum", &sum), "sum"), expected);
    let before = group.jobs_eventually(&group.drivers[0].0, 1);
    for i in 0..3 {
        kill_now(group.pid(i));
    }
    for i in 0..3 {
        group.restart(i);
    }
    group.leader_after(0);
    // Every driver remembers the job, and the group takes new ones (the worker finds it).
    for (address, _) in &group.drivers {
        assert_eq!(group.jobs_eventually(address, 1), before, "{address} lost the history");
    }
    assert_eq!(ok(group.run("sum", &sum), "sum after the restart"), expected);
}

/// The bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    crate::helpers::files_under(dir)
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_driver_whose_disk_fills_up_stops_clearly_the_job_finishes_and_nothing_is_lost() {
    let group = Group::up(3, 2);
    let (leader, _) = group.leader_after(0);
    let full = (leader + 1) % 3;
    // Move a follower's directory onto a tmpfs of its own, then fill that tmpfs.
    kill_now(group.pid(full));
    let dir = group.cluster.dir.path().join(format!("driver-{}", full + 1));
    let aside = group.cluster.dir.path().join("aside");
    let copy = |from: &Path, to: &Path| {
        let out = Command::new("cp").arg("-a").arg(from).arg(to).bounded();
        assert!(out.status.success(), "cp: {}", String::from_utf8_lossy(&out.stderr));
    };
    copy(&dir, &aside);
    let size = format!("{}k", (2 * bytes_under(&dir) + (32 << 20)) / 1024);
    let tmpfs = match Tmpfs::mount(&dir, &size) {
        Ok(t) => t,
        Err(why) => {
            crate::helpers::skip("a driver whose disk fills up", &why);
            return;
        }
    };
    copy(&aside.join("."), &dir);
    group.restart(full);
    let pid = group.pid(full);
    // Filled once it follows again.
    eventually(Duration::from_secs(20), "the moved driver follows again", || {
        group
            .drivers_status()
            .get(full)
            .is_some_and(|row| row["role"] == "follower" && row["lag"] == 0)
    });
    let filler = dir.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        // Bounded: the tmpfs holds at most `size`.
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }
    // The job finishes on the other two drivers, with the right result.
    let data = tempfile::tempdir().unwrap();
    // Hundreds of tasks: their entries outgrow the space the log file already has.
    numbered_text(&data.path().join("text"), 400, 1);
    let words = args!["--input", data.path().join("text"), "--output", data.path().join("out")];
    ok(group.run("wordcount", &words), "wordcount with a driver's disk full");
    assert_eq!(
        sorted_lines(&data.path().join("out")),
        word_counts(&data.path().join("text"))
    );
    // The full driver stopped, saying why.
    eventually(Duration::from_secs(30), "the driver with a full disk stops", || {
        !running(pid)
    });
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(
        log.contains("No space left on device"),
        "its log does not say why it stopped:\n{log}"
    );
    // Space freed, it starts from its own files (nothing torn) and catches up on the job.
    std::fs::remove_file(&filler).unwrap();
    group.restart(full);
    group.jobs_eventually(&group.drivers[full].0, 1);
    drop(tmpfs);
}

#[test]
fn a_leader_stopped_mid_job_is_replaced_the_job_finishes_and_it_steps_down_when_resumed() {
    let group = Group::up(3, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // 12 map tasks of about 0.3 s on 4 slots.
    numbered_text(&d("text"), 12, 10);
    let wc = args!["--input", d("text"), "--output", d("out"), "--sleep-ms", "30"];
    let mut client = group.spawn("chaos", &wc, &d("client.log"));
    let job = crate::helpers::job_id(&d("client.log"));
    let (done, total, _) = group.cluster.wait_for_stage(&job, 0, |done, _| done >= 2);
    assert!(done < total, "the map stage ended before the leader stopped");
    let (leader, term) = group.leader_after(0);
    stop_now(group.pid(leader));
    let (new_leader, new_term) = group.leader_after(term);
    assert_ne!(new_leader, leader);
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(status.success(), "the job failed with its leader stopped:\n{log}");
    assert!(log.contains("reconnecting"), "{log}");
    assert_eq!(sorted_lines(&d("out")), word_counts(&d("text")));
    signal(group.pid(leader), libc::SIGCONT);
    // The old leader learns the new term and follows; its log matches the new leader's.
    eventually(Duration::from_secs(20), "the resumed leader steps down", || {
        let rows = group.drivers_status();
        let old = &rows[leader];
        old["role"] == "follower" && old["term"].as_u64() >= Some(new_term) && old["lag"] == 0
    });
    let (sum, expected) = sum_of_fixture();
    assert_eq!(ok(group.run("sum", &sum), "sum after the resume"), expected);
    group.jobs_eventually(&group.drivers[leader].0, 2);
}

#[test]
fn a_job_is_accepted_only_once_its_binary_is_on_a_majority_of_drivers() {
    let group = Group::up(3, 1);
    let (leader, _) = group.leader_after(0);
    let (down, full) = ((leader + 1) % 3, (leader + 2) % 3);
    // One follower is gone; the other cannot store binaries (a file where its binaries
    // directory would be). The log still commits on two of three drivers.
    kill_now(group.pid(down));
    let binaries = group.cluster.dir.path().join(format!("driver-{}/binaries", full + 1));
    let _ = std::fs::remove_dir_all(&binaries);
    std::fs::write(&binaries, "not a directory").unwrap();
    let (sum, expected) = sum_of_fixture();
    let refused = group.run("sum", &sum);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a job ran with its binary on one driver");
    assert!(stderr.contains("the binary reached only 1 of 3 drivers"), "{stderr}");
    let jobs = group.jobs_on(&group.drivers[leader].0);
    assert!(!jobs.contains("job-"), "a job was recorded: {jobs}");
    // With the directory back, the binary reaches a majority and the job runs.
    std::fs::remove_file(&binaries).unwrap();
    assert_eq!(ok(group.run("sum", &sum), "sum"), expected);
}

#[test]
fn jobs_submitted_while_leaders_are_killed_finish_once_or_fail_clearly() {
    const CLIENTS: usize = 4;
    const JOBS_PER_CLIENT: usize = 25;
    let group = Group::up(3, 2);
    let (sum, expected) = sum_of_fixture();
    // The group holds the job binary before the kills begin: what is under test is
    // submitting and finishing jobs, not a 64 MB upload racing a leader killed every 2 s.
    assert_eq!(ok(group.run("sum", &sum), "sum before the kills"), expected);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (outcomes, kills) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut outcomes = Vec::new();
                    for _ in 0..JOBS_PER_CLIENT {
                        let out = group.run("sum", &sum);
                        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                        outcomes.push((out.status.success(), stdout, stderr));
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    outcomes
                })
            })
            .collect();
        // Kill the leader every 2 s and restart it a quarter of a second later, until the clients
        // are done (bounded: at most 40 kills).
        let mut kills = 0;
        while done.load(std::sync::atomic::Ordering::SeqCst) < CLIENTS && kills < 40 {
            std::thread::sleep(Duration::from_millis(1500));
            let rows = group.drivers_status();
            if let Some(leader) = rows.iter().position(|r| r["role"] == "leader") {
                kill_now(group.pid(leader));
                kills += 1;
                // Back while the others still elect a leader (about 0.4 s).
                std::thread::sleep(Duration::from_millis(250));
                group.restart(leader);
            }
        }
        let outcomes: Vec<(bool, String, String)> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
        (outcomes, kills)
    });
    assert!(kills >= 2, "only {kills} leader kills happened");
    let succeeded = outcomes.iter().filter(|(ok, _, _)| *ok).count();
    for (ok, stdout, stderr) in &outcomes {
        if *ok {
            assert_eq!(stdout, &expected, "a job finished with a wrong result");
        } else {
            assert!(
                stderr.contains("error:") && (stderr.contains("driver") || stderr.contains("job failed")),
                "a failure without a clear message: {stderr}"
            );
        }
    }
    // A leader is back within about a second of each kill: most submissions get through.
    assert!(
        succeeded * 2 >= outcomes.len(),
        "only {succeeded} of {} jobs succeeded through {kills} leader kills",
        outcomes.len()
    );
    // None lost, none twice: the group recorded exactly one job per submission, and
    // exactly the ones whose clients saw success succeeded.
    let (leader, _) = group.leader_after(0);
    let jobs = group.jobs_on(&group.drivers[leader].0);
    let records = jobs.lines().filter(|l| l.starts_with("job-")).count();
    assert_eq!(records, 1 + CLIENTS * JOBS_PER_CLIENT, "{jobs}");
    assert_eq!(jobs.matches(" succeeded ").count(), 1 + succeeded, "{jobs}");
    eprintln!("{succeeded} of {records} jobs succeeded through {kills} leader kills");
}

fn driver(id: u64, listen: &str, peers: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(ringleader_bin());
    command
        .args([
            "driver",
            "--id",
            &id.to_string(),
            "--listen",
            listen,
            "--peers",
            peers,
            "--data-dir",
        ])
        .arg(data_dir);
    command
}

/// Runs a driver that must refuse to start (bounded); returns its stderr.
fn refused(mut command: Command) -> String {
    let out = output_bounded(&mut command, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "the driver started: {stderr}");
    stderr
}

/// Whether a driver's failure was only that another process took its port first.
fn port_taken(stderr: &str) -> bool {
    stderr.contains("Address already in use")
}

/// A loopback address that was free a moment ago. A driver listed in a peer list must
/// listen at its listed address, so the port is chosen before the driver binds it; callers
/// try again with another port when [`port_taken`] says they lost that race.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Up to five tries of `attempt` with a fresh address, until it is not refused for a port
/// taken by another process in the meantime; its stderr.
fn refused_with_fresh_port(attempt: impl Fn(&str) -> Command) -> String {
    (0..5)
        .map(|_| refused(attempt(&free_address())))
        .find(|stderr| !port_taken(stderr))
        .expect("five free ports were all taken before the driver bound them")
}

/// Starts `command` (a driver) with its stderr in `log` and waits (at most 20 s) until it
/// listens; `None` if it ended because another process took its port first.
fn listening(mut command: Command, log: &Path) -> Option<KillOnDrop> {
    let mut child = KillOnDrop(command.stderr(std::fs::File::create(log).unwrap()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("listening on") {
            return Some(child);
        }
        if child.0.try_wait().unwrap().is_some() {
            assert!(port_taken(&text), "the driver did not start:\n{text}");
            return None;
        }
        assert!(Instant::now() < deadline, "the driver never listened:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drivers_refuse_a_bad_group_and_leave_their_data_alone() {
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    // Addresses nobody listens at: these drivers are refused before they talk to a peer.
    let peers = "1=127.0.0.1:9,2=127.0.0.1:10,3=127.0.0.1:11";

    // Two nodes with one id: driver 2 of this list listens elsewhere (any free port).
    let stderr = refused(driver(2, "127.0.0.1:0", peers, &d("same-id")));
    assert!(
        stderr.contains("puts driver 2 at") && stderr.contains("127.0.0.1:10"),
        "{stderr}"
    );
    let twice = refused(driver(1, "127.0.0.1:0", "1=127.0.0.1:9,1=127.0.0.1:10", &d("dup")));
    assert!(twice.contains("names node 1 twice"), "{twice}");

    // Peer lists that disagree: driver 1 runs with one list; driver 2, told another, refuses.
    // Both listen at ports chosen first: a try whose port another process took is made again
    // with fresh ports and a fresh directory.
    let (d1, peers, other, stderr) = (0..5)
        .find_map(|attempt| {
            let a: Vec<String> = (0..4).map(|_| free_address()).collect();
            let (d1, d2) = (d(&format!("d1-{attempt}")), d(&format!("d2-{attempt}")));
            let peers = format!("1={},2={},3={}", a[0], a[1], a[2]);
            let other = format!("1={},2={},3={}", a[0], a[1], a[3]);
            let _one = listening(driver(1, &a[0], &peers, &d1), &d1.with_extension("log"))?;
            let stderr = refused(driver(2, &a[1], &other, &d2));
            (!port_taken(&stderr)).then_some((d1, peers, other, stderr))
        })
        .expect("free ports for drivers 1 and 2 within five tries");
    assert!(
        stderr.contains("disagrees") && stderr.contains(&peers) && stderr.contains(&other),
        "{stderr}"
    );

    // A data directory from another group is refused, byte for byte untouched.
    let store = d1.join("raft.redb");
    let before = std::fs::read(&store).unwrap();
    let stderr = refused_with_fresh_port(|solo| driver(1, solo, &format!("1={solo},2=127.0.0.1:10"), &d1));
    assert!(
        stderr.contains("belongs to another driver group") && stderr.contains("raft.redb"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&store).unwrap() == before,
        "{} was changed",
        store.display()
    );
}

#[test]
fn a_corrupted_log_entry_stops_the_driver_naming_the_file_and_entry() {
    let group = Group::up(1, 1);
    let (sum, _) = sum_of_fixture();
    // The client's environment travels in the job's log entry: a marker to find it by.
    let marker = "RINGLEADER_TEST_MARKER_qzxv";
    let mut command = group.command("sum", &sum);
    command.env(marker, "1");
    ok(output_bounded(&mut command, Duration::from_secs(120)), "sum");
    let pid = group.pid(0);
    signal(pid, libc::SIGTERM);
    eventually(Duration::from_secs(20), "the driver exits on SIGTERM", || !running(pid));
    let store = group.cluster.dir.path().join("driver-1/raft.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    let needle = marker.as_bytes();
    let mut flipped = 0;
    for at in 0..bytes.len().saturating_sub(needle.len()) {
        if &bytes[at..at + needle.len()] == needle {
            bytes[at + needle.len() - 1] ^= 0x20;
            flipped += 1;
        }
    }
    assert!(flipped > 0, "the marker is not in {}", store.display());
    std::fs::write(&store, &bytes).unwrap();
    let data_dir = group.cluster.dir.path().join("driver-1");
    let mut restart = Command::new(ringleader_bin());
    restart
        .args(["driver", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir);
    let stderr = refused(restart);
    assert!(
        stderr.contains("raft.redb") && stderr.contains("log entry") && stderr.contains("corrupt"),
        "{stderr}"
    );
}
