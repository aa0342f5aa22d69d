//! The Raft-replicated driver group with real processes on loopback: `cluster up --drivers 3`,
//! then leaders killed (`kill -9`), stopped (SIGSTOP) and restarted mid-job. Every job's
//! result is checked against the same example run embedded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringleader_datasets::gensort;

use crate::helpers::{
    LocalCluster, Tmpfs, args, concat, embedded, example, numbered_text, ok, ringleader_bin, running, signal,
    sorted_lines, wait_bounded,
};

/// A driver group and its workers, started for one test and stopped when dropped.
struct Group {
    cluster: LocalCluster,
    /// Each driver's address and command line (to restart it from its directory).
    drivers: Vec<(String, Vec<OsString>)>,
    /// Processes this test started besides `cluster up`'s (restarted drivers).
    restarted: Mutex<Vec<Child>>,
}

impl Group {
    fn up(drivers: u32, workers: u32) -> Group {
        Group::up_with(drivers, workers, &[])
    }

    fn up_with(drivers: u32, workers: u32, extra: &[&str]) -> Group {
        let cluster = LocalCluster::up_with(drivers, workers, 2, extra);
        let drivers = (0..drivers as usize)
            .map(|i| {
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", cluster.driver_pid(i))).unwrap();
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
            restarted: Mutex::new(Vec::new()),
        }
    }

    /// The token file `cluster up` wrote.
    fn token(&self) -> PathBuf {
        self.cluster.token()
    }

    fn pid(&self, driver: usize) -> u32 {
        self.cluster.driver_pid(driver)
    }

    /// `cluster status --json`'s driver rows.
    fn drivers_status(&self) -> Vec<serde_json::Value> {
        let out = Command::new(ringleader_bin())
            .args(["cluster", "status", "--json", "--dir"])
            .arg(self.cluster.dir.path())
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status["drivers"].as_array().cloned().unwrap_or_default()
    }

    /// The index of the driver that leads in a term above `after`, waiting for one.
    fn leader(&self, after: u64) -> (usize, u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.drivers_status();
            if let Some((i, row)) = rows
                .iter()
                .enumerate()
                .find(|(_, r)| r["role"] == "leader" && r["term"].as_u64().unwrap_or(0) > after)
            {
                return (i, row["term"].as_u64().unwrap());
            }
            assert!(Instant::now() < deadline, "no leader after term {after}: {rows:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts driver `i` from its directory, as `cluster up` started it, once the process
    /// `cluster up` started is gone (a killed process holds its files until it has exited);
    /// its new pid.
    fn restart(&self, i: usize) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(self.pid(i)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::File::options()
            .append(true)
            .open(self.cluster.dir.path().join(format!("driver-{}/log", i + 1)))
            .unwrap();
        let child = Command::new(ringleader_bin())
            .args(&self.drivers[i].1)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.restarted.lock().unwrap().push(child);
        pid
    }

    /// Kills the drivers this test restarted.
    fn kill_restarted(&self) {
        for child in self.restarted.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn run(&self, name: &str, args: &[OsString]) -> Output {
        self.command(name, args).output().unwrap()
    }

    fn command(&self, name: &str, args: &[OsString]) -> Command {
        let mut command = Command::new(example(name));
        command
            .args(args)
            .env("RINGLEADER_MASTER", &self.cluster.master)
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .env("RINGLEADER_PROGRESS", "1");
        command
    }

    /// `ringleader jobs` asked of the driver at `master` only.
    fn jobs_on(&self, master: &str) -> String {
        ok(self.jobs_command(master), "ringleader jobs")
    }

    fn jobs_command(&self, master: &str) -> Output {
        Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(["jobs", "--master", master])
            .output()
            .unwrap()
    }

    /// `ringleader jobs` asked of the driver at `master`, once it lists `succeeded` succeeded
    /// jobs: a follower's replica may be a heartbeat behind the leader's.
    /// A driver just restarted may not be listening yet: it is asked again.
    fn jobs_eventually(&self, master: &str, succeeded: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.jobs_command(master);
            let jobs = if out.status.success() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                String::from_utf8_lossy(&out.stderr).into_owned()
            };
            if out.status.success() && jobs.matches(" succeeded ").count() == succeeded {
                return jobs;
            }
            assert!(
                Instant::now() < deadline,
                "{master} never listed {succeeded} succeeded jobs: {jobs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_restarted();
    }
}

/// Counts, per line id, how many times the chaos job's marker files say it ran.
fn runs_per_line(markers: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut runs = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(markers).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let line = name.split('.').next().unwrap().to_string();
        *runs.entry(line).or_default() += 1;
    }
    runs
}

/// The first job id a client's progress lines name.
fn job_id_from(stderr_path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stderr_path).ok()?;
    text.split_whitespace()
        .find(|w| w.starts_with("job-"))
        .map(|w| w.trim_end_matches(':').to_string())
}

fn wait_for_job_id(stderr_path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(id) = job_id_from(stderr_path) {
            return id;
        }
        assert!(Instant::now() < deadline, "the client never printed its job id");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `name` on the group in the background, its stderr in `log`.
fn spawn_client(group: &Group, name: &str, args: &[OsString], log: &Path) -> Child {
    group
        .command(name, args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
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
    let wc = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "30"];
    let mut cluster_args = wc(&d("wc-cluster")).to_vec();
    cluster_args.extend(args!["--run-marker", d("markers")]);
    let client = spawn_client(&group, "chaos", &cluster_args, &d("wc.log"));
    let job = wait_for_job_id(&d("wc.log"));
    group.cluster.wait_for_stage(&job, 0, |done, _| done >= 3);
    let (leader, term) = group.leader(0);
    let killed_at = Instant::now();
    signal(group.pid(leader), libc::SIGKILL);
    let (new_leader, new_term) = group.leader(term);
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
    ok(embedded("chaos", &wc(&d("wc-embedded"))), "embedded word count");
    assert_eq!(sorted_lines(&d("wc-cluster")), sorted_lines(&d("wc-embedded")));
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

    // Sort: the (new) leader killed while it runs; the output is byte-identical to embedded.
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
    let sort = |out: &Path| args!["--input", d("records"), "--output", out, "--partitions", "8"];
    let client = spawn_client(&group, "sort", &sort(&d("sorted-cluster")), &d("sort.log"));
    wait_for_job_id(&d("sort.log"));
    let (leader, term) = group.leader(0);
    signal(group.pid(leader), libc::SIGKILL);
    group.leader(term);
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("sort.log")).unwrap();
    assert!(status.success(), "the sort failed after the leader died:\n{log}");
    ok(embedded("sort", &sort(&d("sorted-embedded"))), "embedded sort");
    assert_eq!(concat(&d("sorted-cluster")), concat(&d("sorted-embedded")));
}

#[test]
fn a_follower_killed_and_restarted_catches_up() {
    // A snapshot every 10 entries, so the log is compacted within a few jobs.
    let group = Group::up_with(3, 2, &["--snapshot-every", "10"]);
    let (leader, term) = group.leader(0);
    let follower = (leader + 1) % 3;
    let fixtures = crate::helpers::fixtures("numbers");
    let sum = args!["--input", fixtures];
    let expected = ok(embedded("sum", &sum), "embedded sum");
    let run_sums = || {
        for _ in 0..3 {
            assert_eq!(ok(group.run("sum", &sum), "sum"), expected);
        }
    };
    let wait_caught_up = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = group.drivers_status();
            let caught_up = rows.get(follower).is_some_and(|r| {
                r["role"] == "follower" && r["lag"] == 0 && r["last_log_index"] == rows[leader]["last_log_index"]
            });
            if caught_up {
                return;
            }
            assert!(Instant::now() < deadline, "{what} never caught up: {rows:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    run_sums();

    // Killed: two of three drivers still make a majority, so jobs run; restarted from its
    // directory, it catches up with the jobs it missed.
    signal(group.pid(follower), libc::SIGKILL);
    run_sums();
    group.restart(follower);
    wait_caught_up("the restarted follower");
    group.jobs_eventually(&group.drivers[follower].0, 6);
    assert_eq!(
        group.leader(0).1,
        term,
        "restarting a follower does not disturb the leader"
    );

    // Its directory lost: it rejoins empty and catches up from the leader's snapshot (the
    // leader's log no longer starts at 1).
    group.kill_restarted();
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
    let hash = ringleader_core::binary::hash_file(binary).unwrap();
    let token = ringleader_core::auth::read_token_file(token_file).unwrap();
    let mut request = tonic::Request::new(ringleader_core::proto::BinaryId { hash });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = ringleader_core::driver_group::driver_channel(address).unwrap();
        let mut driver = ringleader_core::proto::driver_client::DriverClient::new(channel);
        let mut stream = driver.fetch_binary(request).await.unwrap().into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            bytes.extend_from_slice(&chunk.data);
        }
        bytes
    })
}

#[test]
fn the_whole_group_restarts_from_disk_with_its_history() {
    let group = Group::up(3, 1);
    let fixtures = crate::helpers::fixtures("numbers");
    let sum = args!["--input", fixtures];
    let expected = ok(embedded("sum", &sum), "embedded sum");
    assert_eq!(ok(group.run("sum", &sum), "sum"), expected);
    let before = group.jobs_eventually(&group.drivers[0].0, 1);
    for i in 0..3 {
        signal(group.pid(i), libc::SIGKILL);
    }
    for i in 0..3 {
        group.restart(i);
    }
    group.leader(0);
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
    let (leader, _) = group.leader(0);
    let full = (leader + 1) % 3;
    // Move a follower's directory onto a tmpfs of its own, then fill that tmpfs.
    signal(group.pid(full), libc::SIGKILL);
    let dir = group.cluster.dir.path().join(format!("driver-{}", full + 1));
    let aside = group.cluster.dir.path().join("aside");
    let copy = |from: &Path, to: &Path| {
        let out = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
        assert!(out.status.success(), "cp: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::thread::sleep(Duration::from_millis(200));
    copy(&dir, &aside);
    let size = format!("{}k", (2 * bytes_under(&dir) + (32 << 20)) / 1024);
    let tmpfs = match Tmpfs::mount(&dir, &size) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    copy(&aside.join("."), &dir);
    let pid = group.restart(full);
    // Filled once it follows again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !group
        .drivers_status()
        .get(full)
        .is_some_and(|row| row["role"] == "follower" && row["lag"] == 0)
    {
        assert!(Instant::now() < deadline, "the moved driver never followed again");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let embedded_words = args![
        "--input",
        data.path().join("text"),
        "--output",
        data.path().join("embedded")
    ];
    ok(embedded("wordcount", &embedded_words), "embedded wordcount");
    assert_eq!(
        sorted_lines(&data.path().join("out")),
        sorted_lines(&data.path().join("embedded"))
    );
    // The full driver stopped, saying why.
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "the driver with a full disk still runs:\n{}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
fn a_stopped_leader_is_replaced_and_steps_down_when_resumed() {
    let group = Group::up(3, 2);
    let (leader, term) = group.leader(0);
    signal(group.pid(leader), libc::SIGSTOP);
    let (new_leader, new_term) = group.leader(term);
    assert_ne!(new_leader, leader);
    let fixtures = crate::helpers::fixtures("numbers");
    let sum = args!["--input", fixtures];
    let expected = ok(embedded("sum", &sum), "embedded sum");
    assert_eq!(ok(group.run("sum", &sum), "sum with the old leader stopped"), expected);
    signal(group.pid(leader), libc::SIGCONT);
    // The old leader learns the new term and follows; its log matches the new leader's.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = group.drivers_status();
        let old = &rows[leader];
        if old["role"] == "follower" && old["term"].as_u64() >= Some(new_term) && old["lag"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed leader never stepped down: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ok(group.run("sum", &sum), "sum after the resume"), expected);
    group.jobs_eventually(&group.drivers[leader].0, 2);
}

#[test]
fn jobs_submitted_while_leaders_are_killed_finish_once_or_fail_clearly() {
    const CLIENTS: usize = 4;
    const JOBS_PER_CLIENT: usize = 25;
    let group = Group::up(3, 2);
    let fixtures = crate::helpers::fixtures("numbers");
    let sum = args!["--input", fixtures];
    let expected = ok(embedded("sum", &sum), "embedded sum");
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
        // Kill the leader every 2 s and restart it half a second later, until the clients
        // are done (bounded: at most 40 kills).
        let mut kills = 0;
        while done.load(std::sync::atomic::Ordering::SeqCst) < CLIENTS && kills < 40 {
            std::thread::sleep(Duration::from_millis(1500));
            let rows = group.drivers_status();
            if let Some(leader) = rows.iter().position(|r| r["role"] == "leader") {
                let pid = group
                    .restarted
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|c| {
                        std::fs::read(format!("/proc/{}/cmdline", c.id()))
                            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&format!("driver-{}", leader + 1)))
                    })
                    .map_or_else(|| group.pid(leader), Child::id);
                signal(pid, libc::SIGKILL);
                kills += 1;
                std::thread::sleep(Duration::from_millis(500));
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
    // None lost, none twice: the group recorded exactly one job per submission, and
    // exactly the ones whose clients saw success succeeded.
    let (leader, _) = group.leader(0);
    let jobs = group.jobs_on(&group.drivers[leader].0);
    let records = jobs.lines().filter(|l| l.starts_with("job-")).count();
    for (ok, _, stderr) in &outcomes {
        if !ok {
            eprintln!("CLIENT FAILED: {stderr}");
        }
    }
    assert_eq!(records, 1 + CLIENTS * JOBS_PER_CLIENT, "{jobs}");
    assert_eq!(jobs.matches(" succeeded ").count(), 1 + succeeded, "{jobs}");
    eprintln!("{succeeded} of {records} jobs succeeded through {kills} leader kills");
}

/// Free loopback addresses for drivers started by hand.
fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect()
}

/// A driver started by hand, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Runs a driver that must refuse to start; returns its stderr.
fn refused(mut command: Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "the driver started: {stderr}");
    stderr
}

#[test]
fn drivers_refuse_a_bad_group_and_leave_their_data_alone() {
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    let a = free_addresses(4);
    let peers = format!("1={},2={},3={}", a[0], a[1], a[2]);

    // Two nodes with one id: driver 2 of this list listens elsewhere.
    let stderr = refused(driver(2, &a[3], &peers, &d("same-id")));
    assert!(
        stderr.contains("puts driver 2 at") && stderr.contains(&a[3]),
        "{stderr}"
    );
    let twice = refused(driver(1, &a[0], &format!("1={},1={}", a[0], a[1]), &d("dup")));
    assert!(twice.contains("names node 1 twice"), "{twice}");

    // Peer lists that disagree: driver 1 runs with one list; driver 2, told another, refuses.
    let one = Driver(
        driver(1, &a[0], &peers, &d("d1"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let other = format!("1={},2={},3={}", a[0], a[1], a[3]);
    let stderr = refused(driver(2, &a[1], &other, &d("d2")));
    assert!(
        stderr.contains("disagrees") && stderr.contains(&peers) && stderr.contains(&other),
        "{stderr}"
    );
    drop(one);

    // A data directory from another group is refused, byte for byte untouched.
    let store = d("d1").join("raft.redb");
    let before = std::fs::read(&store).unwrap();
    let solo = free_addresses(1);
    let stderr = refused(driver(1, &solo[0], &format!("1={},2={}", solo[0], a[3]), &d("d1")));
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
    let fixtures = crate::helpers::fixtures("numbers");
    // The client's environment travels in the job's log entry: a marker to find it by.
    let marker = "RINGLEADER_TEST_MARKER_qzxv";
    let out = group
        .command("sum", &args!["--input", fixtures])
        .env(marker, "1")
        .output()
        .unwrap();
    ok(out, "sum");
    signal(group.pid(0), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
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
