//! A cluster of separate hosts (network namespaces on one bridge, made by `ringleader-lan`): a
//! client, a driver and workers that share nothing but the network. Jobs run from the
//! client with its own local paths and with `ringleader://` datasets, and survive a
//! worker's link going down mid-job. Results are compared with a sequential computation.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use ringleader_lan::{ClusterSpec, LanCluster, LanError};

use super::helpers::{example, ringleader_bin, running, sorted_lines, target_dir};
use super::oracles::canonical;

/// A [`LanCluster`] with the tests' ways of running things on its client.
struct HostCluster(LanCluster);

impl Deref for HostCluster {
    type Target = LanCluster;
    fn deref(&self) -> &LanCluster {
        &self.0
    }
}

/// Skips a test (saying why; under `CI` it fails instead) where namespaces cannot be made;
/// fails it where they can but the cluster does not come up.
macro_rules! cluster_or_skip {
    ($drivers:expr, $workers:expr, $($driver_flag:expr),*) => {
        match HostCluster::up($drivers, $workers, &[$($driver_flag),*]) {
            Ok(c) => c,
            Err(LanError::Unavailable(why)) => {
                super::helpers::skip("a test on namespace hosts", &format!("cannot make test hosts here: {why}"));
                return;
            }
            Err(e) => panic!("the cluster of test hosts did not come up: {e}"),
        }
    };
}

impl HostCluster {
    fn up(drivers: usize, workers: usize, driver_flags: &[&str]) -> Result<HostCluster, LanError> {
        LanCluster::up(&ClusterSpec {
            ringleader: &ringleader_bin(),
            drivers,
            workers,
            slots: 2,
            driver_flags,
            visible: &[target_dir()],
        })
        .map(HostCluster)
    }

    /// Waits until `check` holds, at most `limit`; past it, fails the test with `what`.
    fn wait_for(&self, limit: Duration, what: &str, check: impl FnMut() -> bool) {
        if let Err(e) = self.lan.wait_for(limit, what, check) {
            panic!("{e}");
        }
    }

    /// Starts `program args` on the client in the background, with a progress line per
    /// stage event into `log`, and waits until the log shows `started`. Returns its pid.
    fn start(&self, program: &Path, args: &[&str], log: &str, started: &str) -> u32 {
        let mut job = self.client(program);
        job.args(args).env("RINGLEADER_PROGRESS", "1");
        let pid = self.lan.spawn(job, log).expect("spawn on the client");
        self.wait_for(Duration::from_secs(60), &format!("{log} shows {started:?}"), || {
            self.lan.log(log).contains(started)
        });
        pid
    }

    /// Runs `program args` on the client; returns (success, stdout, stderr).
    fn run(&self, program: &Path, args: &[&str]) -> (bool, String, String) {
        let mut command = self.client(program);
        command.args(args);
        let out = super::helpers::output_bounded(&mut command, Duration::from_secs(180));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cluster status --json` asked from the client: (driver rows, worker rows).
    fn status(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let mut all = vec!["cluster", "status", "--json", "--master"];
        all.push(&self.master);
        let (_, stdout, _) = self.run(&ringleader_bin(), &all);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let rows = |key: &str| json[key].as_array().cloned().unwrap_or_default();
        (rows("drivers"), rows("workers"))
    }

    /// Whether the worker on host `h` is alive in the leader's view.
    fn worker_alive(&self, h: usize) -> Option<bool> {
        let address = format!("{}:", self.lan.hosts[h].ip);
        self.status()
            .1
            .iter()
            .find(|w| w["address"].as_str().is_some_and(|a| a.starts_with(&address)))
            .and_then(|w| w["alive"].as_bool())
    }

    /// Runs the `ringleader` command on the client, which must succeed.
    fn ringleader(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--master", &self.master]);
        let (ok, stdout, stderr) = self.run(&ringleader_bin(), &all);
        assert!(ok, "ringleader {args:?} failed:\n{stderr}");
        stdout
    }
}

/// Text files of numbered words, and the word count a sequential program computes.
fn text_input(dir: &Path, files: usize, lines: usize) -> BTreeMap<String, u64> {
    std::fs::create_dir_all(dir).unwrap();
    let mut counts = BTreeMap::new();
    for f in 0..files {
        let mut text = String::new();
        for l in 0..lines {
            let line = format!("w{} x{} common y{}\n", (f * 31 + l * 7) % 997, l % 13, (l * l) % 101);
            for w in line.split_whitespace() {
                *counts.entry(w.to_string()).or_insert(0u64) += 1;
            }
            text.push_str(&line);
        }
        std::fs::write(dir.join(format!("text-{f:03}.txt")), text).unwrap();
    }
    counts
}

/// `word<TAB>count` lines of an output directory's `part-*` files.
fn read_counts(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for part in super::helpers::parts(dir) {
        for line in std::fs::read_to_string(&part).unwrap().lines() {
            let (w, n) = line.split_once('\t').expect("word<TAB>count");
            assert!(counts.insert(w.to_string(), n.parse().unwrap()).is_none(), "{w} twice");
        }
    }
    counts
}

/// Random gensort-like records (deterministic), and their sorted concatenation.
fn records_input(dir: &Path, files: usize, records: usize) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let mut all: Vec<[u8; 100]> = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for f in 0..files {
        let mut bytes = Vec::with_capacity(records * 100);
        for _ in 0..records {
            let mut r = [0u8; 100];
            for b in r.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = (x >> 24) as u8;
            }
            bytes.extend_from_slice(&r);
            all.push(r);
        }
        std::fs::write(dir.join(format!("part-{f:02}.dat")), bytes).unwrap();
    }
    all.sort_by(|a, b| a[..10].cmp(&b[..10]).then(a.cmp(b)));
    all.concat()
}

#[test]
fn jobs_with_local_paths_run_across_hosts_on_100_mbit_links() {
    let cluster = cluster_or_skip!(1, 3,);
    // Wi-Fi-like where the kernel has netem (2 ms each way); a 100 Mbit/s token bucket where not.
    match cluster.lan.cap_with_delay("100mbit", "2ms") {
        Ok(()) => eprintln!("links: 100 Mbit/s with 2 ms delay (netem)"),
        Err(LanError::Unavailable(why)) => {
            eprintln!("links: 100 Mbit/s, no added delay: {why}");
            cluster.lan.cap("100mbit").expect("tc tbf");
        }
        Err(e) => panic!("{e}"),
    }
    let expected = text_input(&cluster.client_dir().join("in"), 6, 3000);
    let (ok, stdout, stderr) = cluster.run(&example("wordcount"), &["--input", "/tmp/in", "--output", "/tmp/out"]);
    assert!(ok, "wordcount across hosts failed:\n{stderr}");
    assert!(stdout.contains("distinct words"), "{stdout}");
    assert_eq!(read_counts(&cluster.client_dir().join("out")), expected);
    assert!(cluster.client_dir().join("out/_SUCCESS").exists());
    // Parquet into a local directory: the rows travel back as Arrow and are rewritten here.
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &[
            "--input",
            "/tmp/in",
            "--output",
            "/tmp/outp",
            "--output-format",
            "parquet",
        ],
    );
    assert!(ok, "wordcount to Parquet across hosts failed:\n{stderr}");
    let parquet = super::outputs::word_counts(&super::outputs::read_parquet(&cluster.client_dir().join("outp")));
    assert_eq!(parquet.into_iter().collect::<BTreeMap<_, _>>(), expected);
    // The input never existed on the workers: they read what travelled.
    for w in (0..3).map(|w| cluster.worker_host(w)) {
        assert!(!cluster.lan.hosts[w].outside("in").exists());
    }
    // The temporary datasets (input and output) are gone once the job is over.
    let listed = cluster.ringleader(&["datasets"]);
    assert!(!listed.contains("tmp-"), "{listed}");

    let sorted = records_input(&cluster.client_dir().join("sortin"), 3, 4000);
    let (ok, _, stderr) = cluster.run(&example("sort"), &["--input", "/tmp/sortin", "--output", "/tmp/sorted"]);
    assert!(ok, "sort across hosts failed:\n{stderr}");
    let out = super::helpers::concat(&cluster.client_dir().join("sorted"));
    assert_eq!(canonical(&out), sorted);

    // An existing local output is refused before anything runs, and left as it was.
    let (ok, _, stderr) = cluster.run(&example("sort"), &["--input", "/tmp/sortin", "--output", "/tmp/sorted"]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    assert_eq!(super::helpers::concat(&cluster.client_dir().join("sorted")), out);
    // A local input that is nowhere is named.
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "/tmp/nowhere", "--output", "/tmp/o2"],
    );
    assert!(!ok && stderr.contains("/tmp/nowhere"), "{stderr}");
}

#[test]
fn stored_datasets_go_in_and_out_of_the_ring() {
    let cluster = cluster_or_skip!(1, 3,);
    let expected = text_input(&cluster.client_dir().join("in"), 4, 2000);
    // Drivers started by hand, no cluster directory on the client: status by address.
    let status = cluster.ringleader(&["cluster", "status"]);
    assert!(status.contains("leader"), "{status}");
    assert_eq!(
        status
            .lines()
            .filter(|l| l.contains(":7100") && l.contains(" yes "))
            .count(),
        3,
        "{status}"
    );
    let stored = cluster.ringleader(&["put", "--name", "tin", "--partitions", "3", "/tmp/in"]);
    assert!(stored.contains("tin: text, 3 partitions x 2 replicas"), "{stored}");

    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "ringleader://tin", "--output", "ringleader://tout"],
    );
    assert!(ok, "wordcount ringleader:// in and out failed:\n{stderr}");
    let listed = cluster.ringleader(&["datasets"]);
    assert!(listed.contains("tout: text,"), "{listed}");
    cluster.ringleader(&["get", "tout", "/tmp/got"]);
    assert_eq!(read_counts(&cluster.client_dir().join("got")), expected);
    // Each partition of the output is on 2 distinct workers.
    let on_disk = |name: &str| -> usize {
        (0..3)
            .map(|w| {
                let dir = cluster.lan.hosts[cluster.worker_host(w)].outside(&format!("worker/datasets/{name}"));
                super::helpers::files_under(&dir)
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
                    .count()
            })
            .sum()
    };
    assert_eq!(on_disk("tout"), 2 * read_parts(&listed, "tout"));

    // Bad input: an existing output dataset, get into an existing directory, a missing
    // dataset, a malformed URL: each a clear error, nothing changed.
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "ringleader://tin", "--output", "ringleader://tout"],
    );
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let mut all = vec!["get", "tout", "/tmp/got", "--master"];
    all.push(&cluster.master);
    let (ok, _, stderr) = cluster.run(&ringleader_bin(), &all);
    assert!(!ok && stderr.contains("exists"), "{stderr}");
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "ringleader://nosuch", "--output", "/tmp/x"],
    );
    assert!(
        !ok && stderr.contains("nosuch") && stderr.contains("ringleader datasets"),
        "{stderr}"
    );
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "ringleader://a/b", "--output", "/tmp/x"],
    );
    assert!(!ok && stderr.contains("not a dataset URL"), "{stderr}");

    // rm forgets it, and the workers delete its files.
    cluster.ringleader(&["rm", "tout"]);
    assert!(!cluster.ringleader(&["datasets"]).contains("tout"));
    cluster.wait_for(Duration::from_secs(15), "workers delete a removed dataset", || {
        on_disk("tout") == 0
    });
    assert!(on_disk("tin") > 0);
}

#[test]
fn a_worker_cut_off_mid_job_is_lost_the_job_finishes_and_healed_it_takes_work_again() {
    let cluster = cluster_or_skip!(1, 3, "--worker-timeout", "2");
    let sorted = records_input(&cluster.client_dir().join("sortin"), 4, 60_000);
    cluster.ringleader(&[
        "put",
        "--name",
        "sin",
        "--partitions",
        "6",
        "/tmp/sortin",
        "--format",
        "records",
    ]);
    let args = [
        "--input",
        "ringleader://sin",
        "--output",
        "/tmp/sorted",
        "--partitions",
        "6",
    ];
    let cut = cluster.worker_host(0);
    let pid = cluster.start(&example("sort"), &args, "sort.log", "stage");
    assert_eq!(cluster.worker_alive(cut), Some(true));
    cluster.lan.cut(cut).expect("cut");
    cluster.wait_for(Duration::from_secs(120), "the sort finishes", || {
        cluster.lan.log("sort.log").contains("records into") || !running(pid)
    });
    let log = cluster.lan.log("sort.log");
    assert!(log.contains("records into"), "the sort failed:\n{log}");
    let out = super::helpers::concat(&cluster.client_dir().join("sorted"));
    assert_eq!(canonical(&out), sorted);
    // The job went on without it: the driver counts it dead.
    assert_eq!(
        cluster.worker_alive(cut),
        Some(false),
        "the cut worker still counts as alive"
    );

    // The link comes back: the worker registers again and takes work without harm.
    cluster.lan.heal(cut).expect("heal");
    cluster.wait_for(Duration::from_secs(30), "the healed worker is alive again", || {
        cluster.worker_alive(cut) == Some(true)
    });
    // Twelve map tasks on six slots: every live worker gets some.
    let expected = text_input(&cluster.client_dir().join("in"), 12, 500);
    let (ok, _, stderr) = cluster.run(&example("wordcount"), &["--input", "/tmp/in", "--output", "/tmp/wc"]);
    assert!(ok, "{stderr}");
    assert_eq!(read_counts(&cluster.client_dir().join("wc")), expected);
    let logs = cluster.lan.hosts[cut].outside("worker/logs");
    let jobs_run: Vec<String> = std::fs::read_dir(&logs)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        jobs_run.iter().any(|j| j.starts_with("job-000002")),
        "the healed worker ran nothing of the next job: {jobs_run:?}"
    );
}

/// How many partitions `datasets` lists for `name`.
fn read_parts(listing: &str, name: &str) -> usize {
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .expect("listed");
    line.split(", ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("partitions")
}

#[test]
fn a_driver_leader_cut_off_mid_job_steps_down_and_the_new_leader_finishes_the_job() {
    let cluster = cluster_or_skip!(3, 2,);
    let expected = text_input(&cluster.client_dir().join("in"), 8, 60_000);
    cluster.ringleader(&["put", "--name", "tin", "--partitions", "8", "/tmp/in"]);
    let leader = cluster.leader();
    let args = ["--input", "ringleader://tin", "--output", "/tmp/out"];
    let pid = cluster.start(&example("wordcount"), &args, "wordcount.log", "accepted");
    cluster.lan.cut(leader).expect("cut");
    let log = format!("driver-{leader}.log");
    cluster.wait_for(Duration::from_secs(30), "the cut-off leader steps down", || {
        cluster.lan.log(&log).contains("stepping down")
    });
    cluster.wait_for(Duration::from_secs(120), "the job finishes", || !running(pid));
    let out = cluster.lan.log("wordcount.log");
    assert!(out.contains("distinct words"), "the job failed:\n{out}");
    assert_eq!(read_counts(&cluster.client_dir().join("out")), expected);
    assert_ne!(cluster.leader(), leader, "another driver leads");
    // Healed, the old leader rejoins as a follower of the new term, its log caught up, and
    // the group runs jobs again.
    cluster.lan.heal(leader).expect("heal");
    let term_of = |rows: &[serde_json::Value], id: usize| {
        rows.iter()
            .find(|r| r["id"].as_u64() == Some(id as u64))
            .and_then(|r| Some((r["role"].as_str()?.to_string(), r["term"].as_u64()?, r["lag"].as_u64()?)))
    };
    let new_leader = cluster.leader();
    cluster.wait_for(Duration::from_secs(30), "the healed leader follows", || {
        let (drivers, _) = cluster.status();
        match (term_of(&drivers, leader), term_of(&drivers, new_leader)) {
            (Some((role, term, lag)), Some((_, new_term, _))) => role == "follower" && term >= new_term && lag == 0,
            _ => false,
        }
    });
    let (ok, _, stderr) = cluster.run(
        &example("wordcount"),
        &["--input", "ringleader://tin", "--output", "/tmp/out2"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(read_counts(&cluster.client_dir().join("out2")), expected);
}

#[test]
fn put_streams_a_large_input_in_bounded_client_memory() {
    let cluster = cluster_or_skip!(1, 2,);
    // 300 MB of records: a client that loaded its input would need more than that.
    let input = cluster.client_dir().join("big");
    std::fs::create_dir_all(&input).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for f in 0..3 {
        let mut file = std::io::BufWriter::new(std::fs::File::create(input.join(format!("part-{f}.dat"))).unwrap());
        for _ in 0..100 {
            for b in block.iter_mut() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (x >> 56) as u8;
            }
            std::io::Write::write_all(&mut file, &block).unwrap();
        }
    }
    let mut put = cluster.client(&ringleader_bin());
    put.args([
        "put",
        "--name",
        "big",
        "--partitions",
        "4",
        "--replicas",
        "2",
        "/tmp/big",
        "--master",
    ]);
    put.arg(&cluster.master);
    let (ok, peak) = cluster
        .lan
        .run_measured(put, &ringleader_bin(), Duration::from_secs(300))
        .expect("put within 5 minutes");
    assert!(ok, "put of 300 MB failed");
    assert!(peak > 0, "the put's memory was never read");
    let listed = cluster.ringleader(&["datasets"]);
    assert!(
        listed.contains("big: records, 4 partitions x 2 replicas, 3145728 rows"),
        "{listed}"
    );
    assert!(
        peak < 150 << 20,
        "put of 300 MB peaked at {} MB of client memory",
        peak >> 20
    );
    eprintln!("put of 300 MB peaked at {} MB of client memory", peak >> 20);
}

/// An Arrow IPC file of two int64 columns, `id` and `qty`; returns the sum of `qty`.
fn two_columns(path: &Path, rows: i64) -> i64 {
    use arrow::array::Int64Array;
    use std::sync::Arc;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ids: Vec<i64> = (0..rows).collect();
    let qty: Vec<i64> = (0..rows).map(|i| (i * 31) % 1000 - 400).collect();
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as _),
        ("qty", Arc::new(Int64Array::from(qty.clone())) as _),
    ])
    .unwrap();
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(path).unwrap(), &batch.schema()).unwrap();
    for chunk in 0..4 {
        let len = batch.num_rows() / 4;
        writer.write(&batch.slice(chunk * len, len)).unwrap();
    }
    writer.finish().unwrap();
    qty.iter().sum()
}

#[test]
fn csv_inputs_travel_and_stored_columns_are_read_by_name() {
    let cluster = cluster_or_skip!(1, 2,);
    // CSV files the workers cannot see: parsed on the client, they travel as Arrow rows.
    let expected = crate::oracles::shop(&cluster.client_dir().join("shop"));
    let (ok, stdout, stderr) = cluster.run(
        &example("orders_by_city"),
        &[
            "--customers",
            "/tmp/shop/customers",
            "--orders",
            "/tmp/shop/orders",
            "--output",
            "/tmp/cities",
        ],
    );
    assert!(ok, "orders_by_city across hosts failed:\n{stderr}");
    assert!(stdout.contains(&format!("{} cities", expected.len())), "{stdout}");
    assert_eq!(sorted_lines(&cluster.client_dir().join("cities")), expected);
    assert!(!cluster.ringleader(&["datasets"]).contains("tmp-"));
    // A malformed value is named with its file and line, before anything runs.
    std::fs::write(
        cluster.client_dir().join("shop/orders/orders-9.csv"),
        "order_id,customer_id,amount\n1,2,3\n2,3,lots\n",
    )
    .unwrap();
    let (ok, _, stderr) = cluster.run(
        &example("orders_by_city"),
        &[
            "--customers",
            "/tmp/shop/customers",
            "--orders",
            "/tmp/shop/orders",
            "--output",
            "/tmp/c2",
        ],
    );
    assert!(!ok && stderr.contains("orders-9.csv"), "{stderr}");
    assert!(!cluster.client_dir().join("c2").exists());

    // A stored Arrow dataset of two columns: --column picks one by name.
    let qty = two_columns(&cluster.client_dir().join("cols/t.arrow"), 10_000);
    cluster.ringleader(&["put", "--name", "cols", "--partitions", "2", "/tmp/cols"]);
    let (ok, stdout, stderr) = cluster.run(&example("sum"), &["--input", "ringleader://cols", "--column", "qty"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().last(), Some(qty.to_string().as_str()));
    let (ok, _, stderr) = cluster.run(&example("sum"), &["--input", "ringleader://cols", "--column", "nope"]);
    assert!(
        !ok && stderr.contains("no column \"nope\"") && stderr.contains("id, qty"),
        "{stderr}"
    );
}

#[test]
fn a_job_with_a_4_mib_plan_commits_through_drivers_on_100_mbit_links() {
    let cluster = cluster_or_skip!(3, 2,);
    cluster.lan.cap("100mbit").expect("tc tbf");
    let expected = text_input(&cluster.client_dir().join("in"), 2, 2000);
    // Two map tasks, each carrying 2 MiB of state: a 4 MiB plan. Sent as one Raft entry it
    // would take about 340 ms to reach a follower, past openraft's deadline for an
    // AppendEntries call (one heartbeat interval, 40 ms here), and never commit.
    let ballast = (2usize << 20).to_string();
    let args = [
        "--input",
        "/tmp/in",
        "--output",
        "/tmp/out",
        "--ballast-bytes",
        &ballast,
    ];
    let (ok, stdout, stderr) = cluster.run(&example("chaos"), &args);
    assert!(ok, "the job with a large plan failed:\n{stderr}");
    assert!(stdout.contains("words"), "{stdout}");
    assert_eq!(read_counts(&cluster.client_dir().join("out")), expected);
    // Every driver has the job in its log, applied.
    cluster.wait_for(Duration::from_secs(30), "every driver caught up", || {
        let (drivers, _) = cluster.status();
        drivers.len() == 3 && drivers.iter().all(|d| d["lag"].as_u64() == Some(0))
    });
}
