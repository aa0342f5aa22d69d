//! Cluster mode with real processes on loopback: `ringleader cluster up` starts a driver
//! and workers; the examples run against it unchanged (only `RINGLEADER_MASTER` is set)
//! and their results are checked against sequential computations of the same input
//! (`oracles`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ringleader_datasets::{gensort, numbers, text};

use crate::helpers::{
    Bounded, LocalCluster, Tmpfs, args, concat, embedded, example, files_under, ok, ringleader_bin, sorted_lines,
    wait_bounded,
};

#[test]
fn executors_sort_past_their_memory_budget_and_the_output_is_the_input_sorted() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    let spec = gensort::SortSpec {
        records: 200_000,
        files: 4,
        seed: 5,
        skew: true,
    };
    gensort::generate(&d("records"), &spec, false).unwrap();
    let args = args!["--input", d("records"), "--output", d("cluster"), "--partitions", "2"];
    // 20 MB of records in two reduce partitions, each executor within 2 MiB: every
    // reducer sorts runs on disk and merges them.
    let out = cluster
        .client(&example("sort"))
        .args(args)
        .env("RINGLEADER_MEMORY", "2M")
        .bounded();
    ok(out, "cluster sort within 2 MiB per executor");
    crate::oracles::assert_sorted(&d("records"), &d("cluster"));
    let spilled: f64 = (0..2)
        .map(|w| cluster.worker_metric(w, "ringleader_worker_spilled_bytes_total"))
        .sum();
    assert!(spilled > 0.0, "no executor spilled under a 2 MiB budget");
    // Sampling was a stage of the sort's one job, not a job of its own.
    let jobs = ok(cluster.ringleader(&["jobs"]), "ringleader jobs");
    assert_eq!(jobs.matches(" succeeded ").count(), 1, "{jobs}");
    // The spill directories went with the job.
    let spills: Vec<PathBuf> = crate::helpers::files_under(cluster.dir.path())
        .into_iter()
        .filter(|f| {
            f.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("ringleader-spill-"))
        })
        .collect();
    assert!(spills.is_empty(), "spill files left behind: {spills:?}");
}

#[test]
fn collected_and_parallelized_rows_stay_out_of_the_driver_groups_log() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    let log_bytes = || {
        std::fs::metadata(cluster.dir.path().join("driver-1/raft.redb"))
            .unwrap()
            .len()
    };
    text::generate(&d("text"), 24 << 20, 4, 5000, 7, false).unwrap();
    // Warm up: the binary and one small job, so what follows measures rows only.
    let small = args!["--input", d("text"), "--output", d("warm")];
    ok(cluster.run("chaos", &small), "a first job");
    let before = log_bytes();
    let n = 1_000_000u64;
    let args = args![
        "--input",
        d("text"),
        "--output",
        d("out"),
        "--collect",
        "--parallelize",
        n.to_string()
    ];
    let out = ok(cluster.run("chaos", &args), "collect 24 MB and parallelize 8 MB");
    let collected = |s: &str| s.lines().find(|l| l.starts_with("collected")).map(str::to_string);
    assert_eq!(collected(&out), Some(crate::oracles::collected_lines(&d("text"))));
    assert!(out.contains(&format!("parallelized sum {}", n * (n - 1) / 2)), "{out}");
    let grown = log_bytes().saturating_sub(before);
    assert!(
        grown < 5 << 20,
        "the driver's log grew by {grown} bytes for 32 MB of rows"
    );
}

#[test]
fn results_lost_with_their_worker_before_the_client_fetched_them_are_computed_again() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    text::generate(&d("text"), 4 << 20, 4, 5000, 7, false).unwrap();
    let args = args!["--input", d("text"), "--output", d("out"), "--collect"];
    let (log, stdout) = (d("client.log"), d("client.out"));
    // The client waits 5 s between the job's success and fetching its held results:
    // take away a worker holding some of them in that time.
    let mut client = cluster
        .client(&crate::helpers::example("chaos"))
        .args(&args)
        .env("RINGLEADER_TEST_FETCH_DELAY_MS", "5000")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let workers: Vec<PathBuf> = (0..2)
        .map(|i| cluster.dir.path().join(format!("worker-{}", i + 1)))
        .collect();
    let started = std::time::Instant::now();
    let holder = loop {
        // Once the job succeeded (not before: a worker lost mid-job only has its tasks run
        // again), a worker holding some of its results.
        let succeeded = cluster.job_state("job-000001").as_deref() == Some("succeeded");
        let held = workers.iter().position(|w| {
            crate::helpers::files_under(w)
                .iter()
                .any(|f| f.components().any(|c| c.as_os_str() == ".results"))
        });
        if let (true, Some(i)) = (succeeded, held) {
            break i;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "no worker held results; client log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    crate::helpers::kill_now(cluster.worker_pid(holder));
    let status = crate::helpers::wait_bounded(&mut client, std::time::Duration::from_secs(180));
    let (err, out) = (
        std::fs::read_to_string(&log).unwrap(),
        std::fs::read_to_string(&stdout).unwrap(),
    );
    assert!(status.success(), "the client failed:\n{err}");
    assert!(err.contains("running the job again"), "{err}");
    let collected = |s: &str| s.lines().find(|l| l.starts_with("collected")).map(str::to_string);
    assert_eq!(
        collected(&out),
        Some(crate::oracles::collected_lines(&d("text"))),
        "{out}"
    );
}

#[test]
fn every_stage_reports_what_it_read_and_wrote_and_the_job_ends_with_a_summary() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let root = crate::helpers::fixtures("");

    // Word count: the map stage reads every line of the text; the reduce stage reads what
    // the map stage shuffled and writes one row per distinct word.
    let text = root.join("text");
    let run = cluster
        .client(&example("wordcount"))
        .args(args!["--input", text, "--output", data.path().join("words")])
        .bounded();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let lines: u64 = files_under(&text)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count() as u64)
        .sum();
    let [map_in, map_bytes_in, map_out, _] = cluster.stage_volumes("job-000001", 0).unwrap();
    let [reduce_in, _, reduce_out, _] = cluster.stage_volumes("job-000001", 1).unwrap();
    assert_eq!(map_in, lines, "the map stage read every line");
    assert!(map_bytes_in > 0);
    assert_eq!(reduce_in, map_out, "the reduce stage read what the map stage shuffled");
    assert_eq!(reduce_out, 1884, "one row per distinct word");
    // The job ends with a summary: the fixture's 1884 distinct words are the output; the
    // map side combined them first.
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("job-000001 done in "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    assert!(
        summary.contains(" 2 stages, ") && summary.contains("; 1884 rows, "),
        "{summary}"
    );
    assert!(
        summary.contains(" shuffled; ") && summary.ends_with(" out"),
        "{summary}"
    );
    // The client's own progress lines say what each stage read.
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("job-000001 stage 0: ") && l.contains(&format!(" tasks, read {lines} rows, "))),
        "{stderr}"
    );

    // Sum: a stage whose tasks return partial sums still says how many rows it read.
    let numbers = root.join("numbers");
    let out = ok(cluster.run("sum", &args!["--input", numbers]), "sum");
    let total: i64 = out.lines().last().unwrap().trim().parse().unwrap();
    let (rows, sum) = crate::oracles::int64_sum(&numbers);
    assert_eq!(total, sum);
    let [read, ..] = cluster.stage_volumes("job-000002", 0).unwrap();
    assert_eq!(read, rows, "the sum's stage read every row");
}

#[test]
fn examples_on_a_cluster_give_the_sequential_results() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };

    // sort: the input's records in key order, the same whether blocks are read from the
    // disk beside the reducer or over Flight.
    gensort::generate(
        &d("records"),
        &gensort::SortSpec {
            records: 12_000,
            files: 3,
            seed: 11,
            skew: true,
        },
        false,
    )
    .unwrap();
    let args = |out: &Path| args!["--input", d("records"), "--output", out, "--partitions", "6"];
    ok(cluster.run("sort", &args(&d("sorted-cluster"))), "cluster sort");
    ok(
        cluster.run_over_flight("sort", &args(&d("sorted-flight"))),
        "cluster sort over Flight",
    );
    assert_eq!(concat(&d("sorted-flight")), concat(&d("sorted-cluster")));
    crate::oracles::assert_sorted(&d("records"), &d("sorted-cluster"));

    // sum: the same total.
    numbers::generate(&d("numbers"), 200_000, 3, 3, false).unwrap();
    let input = args!["--input", d("numbers")];
    let (_, total) = crate::oracles::int64_sum(&d("numbers"));
    assert_eq!(
        ok(cluster.run("sum", &input), "cluster sum").lines().last(),
        Some(total.to_string().as_str())
    );

    // wordcount: the same lines.
    text::generate(&d("text"), 100_000, 2, 800, 5, false).unwrap();
    let wc = |out: &Path| args!["--input", d("text"), "--output", out];
    ok(cluster.run("wordcount", &wc(&d("wc-cluster"))), "cluster wordcount");
    let counts = crate::oracles::word_counts(&d("text"));
    assert_eq!(sorted_lines(&d("wc-cluster")), counts);
    // ... and the same counts written as Parquet by the executors.
    let wc_parquet = args![
        "--input",
        d("text"),
        "--output",
        d("wc-parquet"),
        "--output-format",
        "parquet"
    ];
    ok(cluster.run("wordcount", &wc_parquet), "cluster wordcount as Parquet");
    let mut from_parquet: Vec<String> = crate::outputs::word_counts(&crate::outputs::read_parquet(&d("wc-parquet")))
        .into_iter()
        .map(|(w, n)| format!("{w}\t{n}"))
        .collect();
    from_parquet.sort();
    assert_eq!(from_parquet, counts);

    // join and group_by_key.
    let shop = d("shop");
    let cities = crate::oracles::shop(&shop);
    let join = args![
        "--customers",
        shop.join("customers"),
        "--orders",
        shop.join("orders"),
        "--output",
        d("join-cluster")
    ];
    ok(cluster.run("orders_by_city", &join), "cluster join");
    assert_eq!(sorted_lines(&d("join-cluster")), cities);

    // Spark's first-week operators (outer joins, cogroup, aggregations, repartition,
    // sample, cartesian, ...), each checked inside the job against a sequential computation
    // of its input; the same checks as the embedded engine runs.
    let embedded_run = ok(embedded("operators", &args!["--seed", "5"]), "embedded operators");
    assert!(embedded_run.contains("checks passed"), "{embedded_run}");
    // Seed 5 with its small join sides broadcast, seed 6 with every join shuffled.
    for seed in ["5", "6"] {
        let threshold = if seed == "5" { "4M" } else { "0" };
        let run = ok(
            cluster
                .client(&example("operators"))
                .args(["--seed", seed])
                .env("RINGLEADER_PROGRESS", "0")
                .env("RINGLEADER_BROADCAST_JOIN_BYTES", threshold)
                .bounded(),
            "cluster operators",
        );
        assert_eq!(
            run.replace(&format!("seed {seed}"), "seed 5"),
            embedded_run,
            "the cluster ran other checks"
        );
    }

    // status lists three live workers sharing the ring (core/tests/ring.rs judges the
    // ring's balance by where keys land).
    let status = Command::new(ringleader_bin())
        .args(["cluster", "status", "--json", "--dir"])
        .arg(cluster.dir.path())
        .bounded();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let workers = json["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    assert!(workers.iter().all(|w| w["alive"] == true));
    let share: f64 = workers.iter().map(|w| w["ring_share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-6);
}

#[test]
fn two_jobs_at_once_both_finish_correctly() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    text::generate(&data.path().join("text"), 200_000, 2, 500, 9, false).unwrap();
    let input = data.path().join("text");
    let outs: Vec<PathBuf> = (0..2).map(|i| data.path().join(format!("out-{i}"))).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            Command::new(example("wordcount"))
                .arg("--input")
                .arg(&input)
                .arg("--output")
                .arg(out)
                .env("RINGLEADER_MASTER", &cluster.master)
                .env("RINGLEADER_TOKEN_FILE", cluster.token())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(wait_bounded(&mut c, Duration::from_secs(120)).success());
    }
    let want = crate::oracles::word_counts(&input);
    for out in &outs {
        assert_eq!(sorted_lines(out), want);
    }
}

#[test]
fn an_unreachable_master_is_a_clear_error_within_seconds() {
    let started = Instant::now();
    let fixtures = crate::helpers::fixtures("numbers");
    let out = Command::new(example("sum"))
        .arg("--input")
        .arg(&fixtures)
        .env("RINGLEADER_MASTER", "127.0.0.1:9")
        .bounded();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:9") && stderr.contains("cannot reach the driver"),
        "{stderr}"
    );
}

#[test]
fn submit_refuses_a_binary_that_is_not_a_job() {
    let out = Command::new(ringleader_bin())
        .args(["submit", "--master", "127.0.0.1:9", "/bin/true"])
        .bounded();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Ringleader job binary"));
}

#[test]
fn iterative_examples_on_a_cluster_read_their_caches_and_broadcasts_and_leave_nothing_behind() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let graph = data.path().join("graph");
    ringleader_datasets::graph::generate(&graph, 2000, 20_000, 3, 8, false).unwrap();
    let ranks = data.path().join("ranks");
    let out = ok(
        cluster.run(
            "pagerank",
            &args!["--input", &graph, "--output", &ranks, "--iterations", "4"],
        ),
        "cluster pagerank",
    );
    crate::oracles::assert_ranks_close(&sorted_lines(&ranks), &crate::oracles::pagerank(&graph, 4));
    assert_eq!(out.matches("(links read from the cache)").count(), 4, "{out}");
    // The job of every iteration has a stage reading the cached links (and the ranks the
    // iteration before cached) from the workers.
    let jobs = ok(cluster.ringleader(&["jobs"]), "ringleader jobs");
    let ids: Vec<String> = jobs
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("job-"))
        .map(str::to_string)
        .collect();
    let reading: Vec<&String> = ids
        .iter()
        .filter(|id| cluster.job_text(id).lines().any(|l| l.trim_end().ends_with("cache")))
        .collect();
    assert!(
        reading.len() >= 4,
        "{} of {} jobs read a cache:\n{jobs}",
        reading.len(),
        ids.len()
    );
    // k-means: centroids broadcast every round, an accumulator of moved points; the same
    // rounds and centroids as the embedded engine's.
    let kmeans = args!["--points", "6000", "--k", "4", "--dimensions", "3"];
    let on_cluster = ok(cluster.run("kmeans", &kmeans), "cluster kmeans");
    let embedded_run = ok(embedded("kmeans", &kmeans), "embedded kmeans");
    let rounds = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("iteration "))
            .map(|l| l.split(" in ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(rounds(&on_cluster), rounds(&embedded_run));
    let centroids = |out: &str| -> Vec<f64> {
        out.lines()
            .filter_map(|l| l.strip_prefix("centroid ")?.split_once(": "))
            .flat_map(|(_, xs)| xs.split(' ').map(|x| x.parse::<f64>().unwrap()).collect::<Vec<_>>())
            .collect()
    };
    let (a, b) = (centroids(&on_cluster), centroids(&embedded_run));
    assert_eq!(a.len(), 12, "{on_cluster}");
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {b:?}");
    // The programs ended: no cached partitions or broadcasts are left on the cluster.
    let datasets = ok(cluster.ringleader(&["datasets"]), "ringleader datasets");
    assert!(
        !datasets.contains("cache-") && !datasets.contains("broadcast-"),
        "{datasets}"
    );
}

#[test]
fn a_broadcast_value_reaches_every_task_of_two_jobs_without_the_driver_groups_log() {
    let cluster = LocalCluster::up(1, 3);
    let log_bytes = || {
        std::fs::metadata(cluster.dir.path().join("driver-1/raft.redb"))
            .unwrap()
            .len()
    };
    // Warm up: the binary's upload, so what follows measures the broadcast only.
    ok(
        cluster.run("operators", &args!["--broadcast-bytes", "10"]),
        "a small broadcast",
    );
    let before = log_bytes();
    let out = ok(
        cluster.run("operators", &args!["--broadcast-bytes", (8 << 20).to_string()]),
        "an 8 MiB broadcast",
    );
    // Every row of both jobs saw it whole; the accumulator counted each task once.
    assert!(
        out.contains("broadcast 8388608 bytes read whole by 2 jobs of 8 tasks; accumulated 1600 rows"),
        "{out}"
    );
    let grown = log_bytes().saturating_sub(before);
    assert!(
        grown < 2 << 20,
        "the driver's log grew by {grown} bytes for an 8 MiB broadcast"
    );
    // The program ended: its broadcast is gone from the workers.
    let datasets = ok(cluster.ringleader(&["datasets"]), "ringleader datasets");
    assert!(!datasets.contains("broadcast-"), "{datasets}");
}

#[test]
fn cached_partitions_lost_with_their_worker_are_computed_again_alone() {
    let cluster = LocalCluster::up(1, 3);
    let marks = tempfile::tempdir().unwrap();
    let log = marks.path().join("client.log");
    let stdout = marks.path().join("client.out");
    let client = cluster
        .client(&example("operators"))
        .arg("--cache-check")
        .arg(marks.path())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut client = crate::helpers::KillOnDrop(client);
    crate::helpers::eventually(Duration::from_secs(90), "the dataset is cached", || {
        marks.path().join("cached").exists()
    });
    // The first worker goes, with the cached partitions it computed; once the driver
    // knows it is gone, the program reads its cache again.
    let address = |json: &serde_json::Value| json["address"].as_str().unwrap_or_default().to_string();
    let status = || cluster.workers_status();
    let gone = address(&status()[0]);
    crate::helpers::kill_now(cluster.worker_pid(0));
    crate::helpers::eventually(Duration::from_secs(60), "the driver sees the worker lost", || {
        status().iter().any(|w| address(w) == gone && w["alive"] == false)
    });
    std::fs::write(marks.path().join("go"), "").unwrap();
    let status = wait_bounded(&mut client.0, Duration::from_secs(120));
    let (out, err) = (
        std::fs::read_to_string(&stdout).unwrap(),
        std::fs::read_to_string(&log).unwrap(),
    );
    assert!(status.success(), "the program failed:\n{err}");
    let again: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("cache check: both sums equal the sequential one; 40000 rows computed, then "))
        .and_then(|rest| rest.strip_suffix(" again")?.parse().ok())
        .unwrap_or_else(|| panic!("no cache check line:\n{out}\n{err}"));
    // Only the lost worker's partitions (some, not all eight of 5,000 rows) ran again.
    assert!(
        again > 0 && again < 40_000 && again.is_multiple_of(5000),
        "{again} rows computed again"
    );
    // A worker holding cached partitions gave the tasks reading them less memory.
    let budgets: Vec<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("cache check: task memory budget "))
        .map(|rest| rest.split(' ').filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| panic!("no budget line:\n{out}\n{err}"));
    assert!(
        budgets.len() == 2 && budgets[1] < budgets[0],
        "the cached partitions were not counted in a worker's memory: {budgets:?}"
    );
}

#[test]
fn a_killed_programs_caches_are_removed_and_a_live_ones_kept() {
    let expiry = [("RINGLEADER_TEST_SESSION_EXPIRY_MS", "2000")];
    let cluster = LocalCluster::up_env(1, 2, 2, &[], &expiry);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let spawn = |dir: &Path| {
        crate::helpers::KillOnDrop(
            cluster
                .client(&example("operators"))
                .arg("--cache-check")
                .arg(dir)
                .envs(expiry)
                .stdout(std::fs::File::create(dir.join("out")).unwrap())
                .stderr(std::fs::File::create(dir.join("log")).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let (mut live, killed) = (spawn(dirs[0].path()), spawn(dirs[1].path()));
    crate::helpers::eventually(Duration::from_secs(90), "both programs cached their dataset", || {
        dirs.iter().all(|d| d.path().join("cached").exists())
    });
    let caches = || {
        let listed = ok(cluster.ringleader(&["datasets"]), "ringleader datasets");
        listed.matches("cache-").count()
    };
    assert_eq!(caches(), 2);
    crate::helpers::kill_now(killed.0.id());
    crate::helpers::eventually(Duration::from_secs(30), "the killed program's cache is removed", || {
        caches() == 1
    });
    // Past the expiry again, the live program's cache is still whole: nothing is computed
    // again when it reads it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(caches(), 1);
    std::fs::write(dirs[0].path().join("go"), "").unwrap();
    assert!(wait_bounded(&mut live.0, Duration::from_secs(60)).success());
    let out = std::fs::read_to_string(dirs[0].path().join("out")).unwrap();
    assert!(out.contains("40000 rows computed, then 0 again"), "{out}");
    crate::helpers::eventually(Duration::from_secs(10), "the ended program removed its cache", || {
        caches() == 0
    });
}

fn chaos(cluster: &LocalCluster, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut a = args!["--input", input, "--output", output].to_vec();
    a.extend(extra.iter().map(OsString::from));
    cluster.run("chaos", &a)
}

#[test]
fn a_panic_on_a_worker_fails_the_job_with_message_partition_and_worker_and_spares_others() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.txt"), "fine words here\nand the poison word\nmore\n").unwrap();
    let runs = data.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let out = chaos(
        &cluster,
        &input,
        &data.path().join("out"),
        &["--panic-on", "poison", "--run-marker", runs.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing the word \"poison\"") && stderr.contains("partition 0") && stderr.contains("worker-"),
        "{stderr}"
    );
    assert!(!data.path().join("out").exists(), "a failed job leaves no output");
    // Not retried: the line that panics ran once, in the task's one attempt.
    let poisoned = crate::helpers::runs_per_line(&runs).get("and").copied().unwrap_or(0);
    assert_eq!(poisoned, 1, "the panicking line ran {poisoned} times");
    assert_eq!(cluster.stage("job-000001", 0).map(|(_, _, attempts)| attempts), Some(1));
    assert_eq!(cluster.stage_failures("job-000001", 0), Some((1, 1)));
    // The workers survive and the next job runs.
    let out = chaos(&cluster, &input, &data.path().join("out2"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sorted_lines(&data.path().join("out2")).len(), 8);
}

/// Reducers start before their map stage is done (pipelined): with one slow map task, the
/// reduce stage begins while it runs and fetches its output once told where it landed; the
/// counts equal a sequential count. With `RINGLEADER_PIPELINE=0` on the driver, the reduce
/// stage begins only once the map stage has ended.
#[test]
fn reducers_start_while_a_slow_map_task_runs_and_count_right() {
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("fast.txt"), "alpha beta\nbeta\n").unwrap();
    let slow: String = (0..25).map(|i| format!("w{} alpha\n", i % 7)).collect();
    std::fs::write(input.join("slow.txt"), &slow).unwrap();
    let mut want: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for word in format!("alpha beta\nbeta\n{slow}").split_whitespace() {
        *want.entry(word.to_string()).or_default() += 1;
    }
    let want: Vec<String> = want.iter().map(|(w, n)| format!("{w}\t{n}")).collect();
    for pipelined in [true, false] {
        let env: &[(&str, &str)] = if pipelined {
            &[]
        } else {
            &[("RINGLEADER_PIPELINE", "0")]
        };
        // One worker of 4 slots: the two map tasks, and room for reducers beside them.
        let cluster = LocalCluster::up_env(1, 1, 4, &[], env);
        let output = data.path().join(format!("out-{pipelined}"));
        let out = chaos(&cluster, &input, &output, &["--sleep-ms", "60"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(sorted_lines(&output), want, "pipelined: {pipelined}");
        let (_, maps_ended) = cluster.stage_times("job-000001", 0).expect("map stage times");
        let (reduce_began, _) = cluster.stage_times("job-000001", 1).expect("reduce stage times");
        let text = cluster.job_text("job-000001");
        if pipelined {
            // The slow map task takes 1.5 s; the reducers start once both map tasks run.
            assert!(
                reduce_began + 0.5 < maps_ended,
                "the reduce stage began at {reduce_began} s, the map stage ended at {maps_ended} s:\n{text}"
            );
        } else {
            assert!(
                reduce_began >= maps_ended,
                "the reduce stage began at {reduce_began} s before the map stage ended at {maps_ended} s:\n{text}"
            );
        }
    }
}

#[test]
fn an_executor_crash_is_retried_in_a_new_executor_and_reported_when_it_persists() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.txt"), "alpha beta\nboom gamma\nalpha\n").unwrap();
    let marker = data.path().join("marker");
    std::fs::create_dir(&marker).unwrap();
    let out = chaos(
        &cluster,
        &input,
        &data.path().join("out"),
        &["--crash-on", "boom", "--crash-marker", marker.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "a crash once must be retried: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.join("crashed").exists(), "the crash was injected");
    assert_eq!(
        sorted_lines(&data.path().join("out")),
        vec!["alpha\t2", "beta\t1", "boom\t1", "gamma\t1"]
    );
    // The crashed attempt reported nothing; its retry's updates count once.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accumulated 3 lines, 4 words"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Alone in its executor, the task is to blame for its death: the failure counts.
    assert_eq!(cluster.stage_failures("job-000001", 0), Some((1, 1)));
    let out = chaos(&cluster, &input, &data.path().join("out2"), &["--crash-on", "boom"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exit status: 3") && stderr.contains("crashing on the word"),
        "{stderr}"
    );
    // It failed once its counted failures reached the limit (4).
    assert_eq!(cluster.stage_failures("job-000002", 0), Some((4, 4)));
}

#[test]
fn an_executor_that_dies_under_several_tasks_blames_none_of_them() {
    // One worker of two slots: both map tasks run in its one executor of the job when the
    // task reading `boom` (once) exits it.
    let cluster = LocalCluster::up(1, 1);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.txt"), "a1 x\na2 x\nboom x\na4 x\n").unwrap();
    std::fs::write(
        input.join("b.txt"),
        (0..20).map(|i| format!("b{i} y\n")).collect::<String>(),
    )
    .unwrap();
    let marker = data.path().join("marker");
    std::fs::create_dir(&marker).unwrap();
    let out = chaos(
        &cluster,
        &input,
        &data.path().join("out"),
        &[
            "--crash-on",
            "boom",
            "--crash-marker",
            marker.to_str().unwrap(),
            "--sleep-ms",
            "100",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(marker.join("crashed").exists(), "the crash was injected");
    // Both tasks were lost with the executor, and neither counts toward its limit.
    assert_eq!(cluster.stage_failures("job-000001", 0), Some((2, 0)));
    let detail = cluster.job_text("job-000001");
    assert!(detail.contains("attempts lost without a task to blame: 2"), "{detail}");
    assert_eq!(
        sorted_lines(&data.path().join("out")),
        crate::oracles::word_counts(&input)
    );
}

#[test]
fn a_worker_started_after_the_job_began_takes_tasks_from_it() {
    let cluster = LocalCluster::up_with(1, 1, 1, &[]);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..8 {
        std::fs::write(input.join(format!("{i}.txt")), format!("w{i} common\nw{i} x\n")).unwrap();
    }
    let job_args = args![
        "--input",
        input,
        "--output",
        data.path().join("out"),
        "--sleep-ms",
        "150"
    ];
    let mut job = cluster.spawn("chaos", &job_args, &data.path().join("log"));
    // The job runs on the one worker before the second one starts.
    let id = crate::helpers::job_id(&data.path().join("log"));
    cluster.wait_for_stage(&id, 0, |done, _| done >= 1);
    let late_dir = data.path().join("late-worker");
    let late = Command::new(ringleader_bin())
        .args([
            "worker",
            "--listen",
            "127.0.0.1:0",
            "--slots",
            "2",
            "--master",
            &cluster.master,
            "--data-dir",
        ])
        .arg(&late_dir)
        .arg("--token-file")
        .arg(cluster.token())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let late = crate::helpers::KillOnDrop(late);
    let status = wait_bounded(&mut job, Duration::from_secs(120));
    drop(late);
    assert!(status.success());
    let logs: Vec<_> = std::fs::read_dir(late_dir.join("logs"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(
        !logs.is_empty(),
        "the late worker never started an executor for the running job"
    );
    let lines = sorted_lines(&data.path().join("out"));
    assert!(
        lines.contains(&"common\t8".to_string()) && lines.contains(&"x\t8".to_string()),
        "{lines:?}"
    );
}

#[test]
fn a_dataset_put_on_the_ring_is_placed_on_distinct_owners_and_read_by_a_job() {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    text::generate(&input, 120_000, 3, 400, 21, false).unwrap();
    cluster.put("words", 4, 2, &input);
    let listed = Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .args(["datasets", "--master", &cluster.master])
        .bounded();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("words: text, 4 partitions x 2 replicas"), "{listed}");
    // Each partition is on exactly two distinct workers' disks.
    for p in 0..4 {
        assert_eq!(cluster.holders("words", p, &[1, 2, 3]), 2, "partition {p}");
    }
    let out = data.path().join("from-dataset");
    ok(
        cluster.run("wordcount", &args!["--dataset", "words", "--output", out]),
        "wordcount --dataset",
    );
    assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
    // Embedded mode explains that stored datasets need a cluster.
    let out = embedded(
        "wordcount",
        &args!["--dataset", "words", "--output", data.path().join("x")],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stored datasets live on a cluster"));
}

#[test]
fn balanced_placement_spreads_a_datasets_partitions_evenly_over_the_workers_disks() {
    let cluster = LocalCluster::up_with(1, 3, 2, &["--placement", "balanced"]);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    text::generate(&input, 60_000, 3, 400, 22, false).unwrap();
    cluster.put("words", 12, 1, &input);
    // On disk: four partitions per worker (the ring puts 6 on worker-1).
    for worker in 1..=3 {
        let held = (0..12).filter(|&p| cluster.holders("words", p, &[worker]) == 1).count();
        assert_eq!(held, 4, "worker-{worker} holds {held} of the 12 partitions");
    }
    let out = data.path().join("from-dataset");
    ok(
        cluster.run("wordcount", &args!["--dataset", "words", "--output", out]),
        "wordcount --dataset",
    );
    assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
}

#[test]
fn a_worker_that_cannot_make_its_shuffle_directory_refuses_tasks_and_they_run_on_another() {
    let cluster = LocalCluster::up(1, 2);
    // Worker 1 cannot create its shuffle directory: a regular file stands in its way.
    let shuffle = cluster.dir.path().join("worker-1/shuffle");
    let _ = std::fs::remove_dir_all(&shuffle);
    std::fs::write(&shuffle, "not a directory").unwrap();
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    text::generate(&input, 50_000, 4, 300, 2, false).unwrap();
    let out = data.path().join("out");
    ok(
        cluster.run("wordcount", &args!["--input", input, "--output", out]),
        "wordcount with a broken worker",
    );
    assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
    // Worker 1 refused what it was sent (a failed launch, retryable and counted).
    let detail = cluster.job_text("job-000001");
    assert!(
        detail.contains(" on worker-1: worker ") && detail.contains("refused the task"),
        "{detail}"
    );
    let (failed, _) = cluster.job_failures("job-000001");
    assert!(failed >= 1, "{detail}");
}

/// Adds a cluster token to every request.
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type TokenClient = ringleader_core::proto::driver_client::DriverClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// A driver client carrying the token in `token_file`.
fn driver_client(master: &str, token_file: &Path) -> (tokio::runtime::Runtime, TokenClient) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = ringleader_core::security::auth::read_token_file(token_file).unwrap();
    let channel = runtime
        .block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{master}"))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let bearer = Bearer(format!("Bearer {token}").parse().unwrap());
    let client = ringleader_core::proto::driver_client::DriverClient::with_interceptor(channel, bearer);
    (runtime, client)
}

#[test]
fn calls_without_the_cluster_token_are_refused_and_nothing_runs() {
    use ringleader_core::proto;
    let cluster = LocalCluster::up(1, 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A bare gRPC call: refused before it does anything.
    let mut bare = runtime
        .block_on(proto::driver_client::DriverClient::connect(format!(
            "http://{}",
            cluster.master
        )))
        .unwrap();
    let refused = runtime.block_on(bare.list_jobs(proto::ListJobsRequest {})).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    // A job binary with a wrong token: a clear error, and no job was recorded or run.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-token\n").unwrap();
    let fixtures = crate::helpers::fixtures("numbers");
    let out = Command::new(example("sum"))
        .arg("--input")
        .arg(&fixtures)
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", wrong.path())
        .bounded();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster token"), "{stderr}");
    let (runtime, mut driver) = driver_client(&cluster.master, &cluster.token());
    let jobs = runtime.block_on(driver.list_jobs(proto::ListJobsRequest {})).unwrap();
    assert!(
        jobs.into_inner().jobs.is_empty(),
        "a job was recorded without the token"
    );
    // The same job with the token runs.
    ok(cluster.run("sum", &args!["--input", fixtures]), "sum with the token");
}

#[test]
fn the_driver_refuses_a_binary_that_changed_since_it_was_named_and_malformed_plans() {
    use ringleader_core::proto;
    let cluster = LocalCluster::up(1, 1);
    let (runtime, mut driver) = driver_client(&cluster.master, &cluster.token());
    let named = ringleader_core::net::binary::hash_file(&example("sum")).unwrap();
    let mut tampered = std::fs::read(example("sum")).unwrap();
    tampered[1000] ^= 0xff;
    let chunks: Vec<proto::BinaryChunk> = tampered
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, c)| proto::BinaryChunk {
            hash: if i == 0 { named.clone() } else { String::new() },
            total_size: 0,
            data: c.to_vec(),
        })
        .collect();
    let err = runtime
        .block_on(driver.upload_binary(futures::stream::iter(chunks)))
        .unwrap_err();
    assert!(
        err.message().contains("changed since it was named"),
        "{}",
        err.message()
    );
    let present = runtime
        .block_on(driver.has_binary(proto::BinaryId { hash: named.clone() }))
        .unwrap()
        .into_inner();
    assert!(!present.present, "a refused binary must not be stored");
    // A job naming a binary the driver lacks, and a malformed plan, are refused.
    let submit = |plan: Vec<u8>, hash: String| proto::SubmitJobRequest {
        binary_hash: hash,
        plan,
        ..Default::default()
    };
    let err = runtime
        .block_on(driver.submit_job(submit(vec![1, 2, 3], named.clone())))
        .err()
        .unwrap();
    assert!(err.message().contains("not uploaded"), "{}", err.message());
    // Upload the genuine binary, then send garbage as its plan.
    let genuine: Vec<proto::BinaryChunk> = std::fs::read(example("sum"))
        .unwrap()
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, c)| proto::BinaryChunk {
            hash: if i == 0 { named.clone() } else { String::new() },
            total_size: 0,
            data: c.to_vec(),
        })
        .collect();
    runtime
        .block_on(driver.upload_binary(futures::stream::iter(genuine)))
        .unwrap();
    let err = runtime
        .block_on(driver.submit_job(submit(vec![0xff; 64], named.clone())))
        .err()
        .unwrap();
    assert!(err.message().contains("malformed job plan"), "{}", err.message());
    let err = runtime
        .block_on(driver.report_task(futures::stream::iter(vec![proto::TaskReport {
            job_id: "job-000001".into(),
            outcome: Some(proto::task_report::Outcome::Value(vec![0xff; 9])),
            ..Default::default()
        }])))
        .unwrap_err();
    assert!(err.message().contains("malformed task value"), "{}", err.message());
    // The driver is still serving.
    let status = runtime
        .block_on(driver.cluster_status(proto::ClusterStatusRequest {}))
        .unwrap()
        .into_inner();
    assert_eq!(status.workers.len(), 1);
}

#[test]
fn submit_runs_a_job_binary_on_the_cluster_with_its_arguments() {
    let cluster = LocalCluster::up(1, 1);
    let fixtures = crate::helpers::fixtures("numbers");
    let out = Command::new(ringleader_bin())
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .args(["submit", "--master", &cluster.master])
        .arg(example("sum"))
        .arg("--")
        .arg("--input")
        .arg(&fixtures)
        .bounded();
    let stdout = ok(out, "submit");
    let (_, total) = crate::oracles::int64_sum(&fixtures);
    assert_eq!(stdout.lines().last(), Some(total.to_string().as_str()));
    // It ran on the cluster: the driver lists the job.
    let status = Command::new(ringleader_bin())
        .args(["cluster", "status", "--json", "--dir"])
        .arg(cluster.dir.path())
        .bounded();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        json["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["state"] == "succeeded" && j["name"] == "sum"),
        "{json}"
    );
}

#[test]
fn large_results_come_back_whole() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    // One 24 MB file in four splits: each partition's result (6 MB) exceeds gRPC's 4 MiB
    // message limit unless it travels in chunks.
    text::generate(&input, 24_000_000, 1, 5000, 4, false).unwrap();
    let file = std::fs::read_to_string(input.join("text-00000.txt")).unwrap();
    let want = format!(
        "collected {} lines, {} bytes",
        file.lines().count(),
        file.lines().map(str::len).sum::<usize>()
    );
    let out = ok(
        chaos(&cluster, &input, &data.path().join("out"), &["--collect"]),
        "collect",
    );
    assert!(out.contains(&want), "{out} vs {want}");
}

#[test]
fn a_job_with_no_live_worker_fails_after_the_timeout_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let (mut driver, master) = crate::helpers::lone_driver(dir.path(), |c| {
        c.args(["--no-worker-timeout", "1"]).stderr(std::process::Stdio::null());
    });
    let fixtures = crate::helpers::fixtures("numbers");
    let started = Instant::now();
    let out = Command::new(example("sum"))
        .arg("--input")
        .arg(&fixtures)
        .env("RINGLEADER_MASTER", &master)
        .bounded();
    let _ = driver.kill();
    let _ = driver.wait();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no live worker for 1 s"), "{stderr}");
}

#[test]
fn a_cluster_given_certificates_speaks_only_tls() {
    let certs = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = certs.path().join("cert.pem");
    let private = certs.path().join("key.pem");
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&private, key.signing_key.serialize_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let up = Command::new(ringleader_bin())
        .args(["cluster", "up", "--workers", "2", "--dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&private)
        .arg("--tls-ca")
        .arg(&cert)
        .bounded();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let cluster = LocalCluster {
        dir,
        master: String::from_utf8_lossy(&up.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export RINGLEADER_MASTER="))
            .unwrap()
            .to_string(),
    };
    let fixtures = crate::helpers::fixtures("numbers");
    let sum = args!["--input", fixtures];
    // A job trusting the CA runs (its executors talk TLS to their workers, and workers to
    // each other), with the embedded result.
    let out = Command::new(example("sum"))
        .args(&sum)
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .env("RINGLEADER_TLS_CA", &cert)
        .bounded();
    let (_, total) = crate::oracles::int64_sum(&fixtures);
    assert_eq!(ok(out, "sum over TLS"), format!("{total}\n"));
    // Plain HTTP/2 gets nowhere.
    let plain = Command::new(example("sum"))
        .args(&sum)
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .env_remove("RINGLEADER_TLS_CA")
        .bounded();
    assert!(!plain.status.success(), "a plain-text client got an answer");
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(
        said.contains("probably speaks TLS") && said.contains("Set RINGLEADER_TLS_CA"),
        "{said}"
    );
    // A client trusting another CA is told so.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_ca = certs.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let wrong = Command::new(example("sum"))
        .args(&sum)
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", cluster.token())
        .env("RINGLEADER_TLS_CA", &other_ca)
        .bounded();
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(said.contains("not signed by the CA this client trusts"), "{said}");
    // The CLI finds the CA in the cluster's directory.
    let jobs = Command::new(ringleader_bin())
        .args(["jobs", "--dir"])
        .arg(cluster.dir.path())
        .env_remove("RINGLEADER_MASTER")
        .bounded();
    assert!(ok(jobs, "ringleader jobs over TLS").contains("succeeded"));

    // The status page too is served over TLS, its link says https, and its cookie is Secure.
    let printed = String::from_utf8_lossy(&up.stdout).into_owned();
    let link = printed
        .lines()
        .find_map(|l| l.strip_prefix("web: https://"))
        .unwrap_or_else(|| panic!("no https link printed:\n{printed}"));
    let (address, token) = link.split_once("/?token=").expect("address and token");
    let token = token.split_whitespace().next().expect("token");
    let https = |path: &str, headers: &str| crate::helpers::https_get_with_headers(address, path, headers, &cert);
    let (code, head, _) = https(&format!("/?token={token}"), "");
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie set:\n{head}"));
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains(token), "the cookie carries the token: {cookie}");
    let session = cookie.split(';').next().expect("name=value");
    let (code, _, body) = https("/", &format!("Cookie: {session}\r\n"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("worker-1") && body.contains("job-"), "{body}");
    // Plain HTTP to the same port gets no page.
    let (code, _, body) = crate::helpers::http_get_with_headers(address, "/", &format!("Cookie: {session}\r\n"));
    assert_ne!(code, 200, "a page over plain HTTP: {body}");
    // A worker's /metrics too: over TLS with the token as a bearer token, never in plain text.
    let worker = std::fs::read_to_string(cluster.dir.path().join("worker-1/http-address")).expect("worker http");
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (code, _, body) = crate::helpers::https_get_with_headers(worker.trim(), "/metrics", &bearer, &cert);
    assert!(code == 200 && body.contains("ringleader_worker"), "{code} {body}");
    let (code, _, _) = crate::helpers::http_get_with_headers(worker.trim(), "/metrics", &bearer);
    assert_ne!(code, 200, "/metrics over plain HTTP");
}

#[test]
fn a_tls_client_of_a_plain_cluster_and_an_expired_certificate_are_named() {
    let certs = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(certs.path().join("ca.pem"), ca.cert.pem()).unwrap();
    let fixtures = crate::helpers::fixtures("numbers");
    // A client trusting a CA, against a cluster that speaks plain HTTP/2.
    let plain = LocalCluster::up(1, 1);
    let out = plain
        .client(&example("sum"))
        .args(args!["--input", &fixtures])
        .env("RINGLEADER_TLS_CA", certs.path().join("ca.pem"))
        .bounded();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("speaks plain HTTP/2, not TLS") && said.contains("unset RINGLEADER_TLS_CA"),
        "{said}"
    );
    // A driver whose certificate expired.
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let expired = params.self_signed(&key).unwrap();
    let (cert, private) = (certs.path().join("expired.pem"), certs.path().join("expired.key"));
    std::fs::write(&cert, expired.pem()).unwrap();
    std::fs::write(&private, key.serialize_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut driver, master) = crate::helpers::lone_driver(dir.path(), |c| {
        c.arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&private)
            .arg("--tls-ca")
            .arg(&cert)
            .stderr(std::process::Stdio::null());
    });
    let out = Command::new(example("sum"))
        .args(args!["--input", &fixtures])
        .env("RINGLEADER_MASTER", &master)
        .env("RINGLEADER_TLS_CA", &cert)
        .bounded();
    let _ = driver.kill();
    let _ = driver.wait();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("has expired"), "{said}");
}

#[test]
fn only_ringleaders_variables_and_the_named_ones_leave_the_client() {
    let cluster = LocalCluster::up(1, 1);
    let input = crate::helpers::fixtures("numbers");
    let out = cluster
        .client(&example("sum"))
        .args(args!["--input", input])
        .env("SECRET_NOT_SHIPPED", "value-a9f3e1")
        .env("WANTED_SHIPPED", "value-77c1d2")
        .env("RINGLEADER_SHIP_ENV", "WANTED_SHIPPED")
        .bounded();
    ok(out, "sum on the cluster");
    let logs: Vec<PathBuf> = crate::helpers::files_under(cluster.dir.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "raft.redb"))
        .collect();
    assert!(!logs.is_empty(), "no driver log found");
    let contains = |needle: &str| {
        logs.iter().any(|log| {
            std::fs::read(log)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
    };
    assert!(
        contains("value-77c1d2"),
        "the named variable was not shipped with the job"
    );
    assert!(
        !contains("value-a9f3e1"),
        "an unnamed variable of the client is in the driver's log"
    );
}

#[test]
fn a_cached_binary_replaced_by_another_job_binary_is_fetched_again_before_it_runs() {
    let cluster = LocalCluster::up(1, 1);
    let input = crate::helpers::fixtures("numbers");
    let first = ok(cluster.run("sum", &args!["--input", &input]), "sum on the cluster");
    // The worker's cached copy of the sum binary is replaced by another job binary (a
    // tampered or corrupted cache): its offsets would mean other functions. The worker
    // hashes a cached binary again whenever its file changed, so it never starts it (the
    // executor's own check, that it is the binary the plan was built for, stays behind it).
    let cached: Vec<PathBuf> = std::fs::read_dir(cluster.dir.path().join("worker-1/binaries"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // (Renamed over it: the file may be running in an executor still.)
    let swap = cached[0].with_extension("swap");
    std::fs::copy(example("wordcount"), &swap).unwrap();
    std::fs::rename(&swap, &cached[0]).unwrap();
    let second = ok(
        cluster.run("sum", &args!["--input", &input]),
        "sum after the cache was swapped",
    );
    assert_eq!(second, first);
    assert!(cluster.worker_log(0).contains("no longer matches its hash"));
    assert_eq!(
        ringleader_core::net::binary::hash_file(&cached[0]).unwrap(),
        ringleader_core::net::binary::hash_file(&example("sum")).unwrap()
    );
}

#[test]
fn a_worker_whose_disk_fills_up_fails_its_tasks_over_to_another_and_nothing_is_lost() {
    let cluster = LocalCluster::up(1, 2);
    // Worker 1's shuffle space: 64 KiB, far less than its map output.
    let full = match Tmpfs::mount(&cluster.dir.path().join("worker-1/shuffle"), "64k") {
        Ok(t) => t,
        Err(why) => {
            crate::helpers::skip("a worker whose disk fills up", &why);
            return;
        }
    };
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("in");
    text::generate(&input, 2_000_000, 4, 50_000, 3, false).unwrap();
    let out = data.path().join("out");
    let run = cluster.run("wordcount", &args!["--input", input, "--output", out]);
    ok(run, "wordcount with a full disk on one worker");
    assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
    // A write on worker 1 met ENOSPC, and the attempt failed as retryable (it counts).
    let log = cluster.worker_log(0);
    assert!(
        log.lines()
            .any(|l| l.contains("failed (retryable, counted)") && l.contains("No space left on device")),
        "worker 1's log shows no full disk:\n{log}"
    );
    let (_, counted) = cluster.job_failures("job-000001");
    assert!(counted >= 1, "{}", cluster.job_text("job-000001"));
    drop(full);
}

/// Files of stored dataset `name` on the cluster's workers' disks.
fn stored_files(cluster: &LocalCluster, name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(cluster.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("worker-"))
        .flat_map(|w| files_under(&w.path().join("datasets").join(name)))
        .collect()
}

#[test]
fn a_failed_or_cancelled_job_writing_a_stored_dataset_lists_nothing_and_leaves_no_files() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    crate::helpers::numbered_text(&d("text"), 4, 10);
    let listed = |name: &str| ok(cluster.ringleader(&["datasets"]), "datasets").contains(&format!("{name}:"));

    // Failed: a reduce task panics; the partitions other reduce tasks wrote go.
    let out = chaos(
        &cluster,
        &d("text"),
        Path::new("ringleader://failed"),
        &["--reduce-panic-on", "gamma", "--reduce-sleep-ms", "20"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("refusing to write the count"),
        "{stderr}"
    );
    assert!(!listed("failed"), "a failed job's dataset is listed");
    crate::helpers::eventually(Duration::from_secs(30), "the failed job's files go", || {
        stored_files(&cluster, "failed").is_empty()
    });

    // Cancelled in its reduce stage, once partitions were written on the workers.
    let job_args = args![
        "--input",
        d("text"),
        "--output",
        "ringleader://cancelled",
        "--reduce-sleep-ms",
        "300"
    ];
    let mut client = cluster.spawn("chaos", &job_args, &d("cancelled.log"));
    let job = crate::helpers::job_id(&d("cancelled.log"));
    cluster.wait_for_stage(&job, 1, |done, total| done >= 1 && done < total);
    assert!(
        !stored_files(&cluster, "cancelled").is_empty(),
        "no partition was written before the cancel"
    );
    ok(cluster.ringleader(&["cancel", &job]), "cancel");
    assert!(!wait_bounded(&mut client, Duration::from_secs(60)).success());
    assert!(!listed("cancelled"), "a cancelled job's dataset is listed");
    crate::helpers::eventually(Duration::from_secs(30), "the cancelled job's files go", || {
        stored_files(&cluster, "cancelled").is_empty()
    });
}

#[test]
fn a_stored_dataset_read_with_a_source_of_another_format_is_a_clear_error() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let text = data.path().join("text");
    crate::helpers::numbered_text(&text, 2, 5);
    cluster.put("words", 2, 2, &text);
    // The sort reads gensort records; `words` holds text lines.
    let out = cluster.run(
        "sort",
        &args!["--input", "ringleader://words", "--output", data.path().join("sorted")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "records read from a text dataset");
    assert!(
        stderr.contains("ringleader://words holds text rows, not records") && stderr.contains("record_files"),
        "{stderr}"
    );
    assert!(!data.path().join("sorted").exists());
    let jobs = ok(cluster.ringleader(&["jobs"]), "jobs");
    assert!(jobs.contains("no jobs yet"), "a job ran: {jobs}");
}

#[test]
fn a_worker_slow_to_delete_finished_jobs_files_keeps_heartbeating() {
    // Each housekeeping pass takes 5 s, longer than the 2 s after which the driver declares a
    // silent worker lost: passes must not hold up the heartbeats.
    let cluster = LocalCluster::up_env(
        1,
        1,
        2,
        &["--worker-timeout", "2"],
        &[(ringleader_core::fault_injection::HOUSEKEEPING_DELAY_MS, "5000")],
    );
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    crate::helpers::numbered_text(&input, 4, 20);
    for run in 0..3 {
        let out = data.path().join(format!("out-{run}"));
        ok(
            cluster.run("wordcount", &args!["--input", input, "--output", out]),
            "wordcount",
        );
        assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
    }
    // Housekeeping ran all along: the finished jobs' shuffle files go.
    crate::helpers::eventually(Duration::from_secs(60), "finished jobs' shuffle files go", || {
        (1..=3).all(|j| {
            !cluster
                .dir
                .path()
                .join(format!("worker-1/shuffle/job-00000{j}"))
                .exists()
        })
    });
    let log = cluster.driver_log(0);
    assert!(!log.contains("is lost"), "a live worker was declared lost:\n{log}");
}

/// The job binaries node directory `node` holds (files named by their hash).
fn cached_binaries(node: &Path) -> Vec<String> {
    std::fs::read_dir(node.join("binaries"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| ringleader_core::net::binary::valid_hash(n))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn job_binaries_nobody_uses_are_deleted_from_drivers_and_workers() {
    let cluster = LocalCluster::up_env(
        3,
        1,
        2,
        &[],
        &[(ringleader_core::fault_injection::BINARY_RETENTION_MS, "3000")],
    );
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    crate::helpers::numbered_text(&input, 3, 20);
    let cached = |node: &str| cached_binaries(&cluster.dir.path().join(node));
    let nodes = ["driver-1", "driver-2", "driver-3", "worker-1"];
    for run in 0..2 {
        let out = data.path().join(format!("out-{run}"));
        ok(
            cluster.run("wordcount", &args!["--input", input, "--output", out]),
            "wordcount",
        );
        assert_eq!(sorted_lines(&out), crate::oracles::word_counts(&input));
        // Unused for 3 s, the binary goes from every driver and from the worker's cache...
        crate::helpers::eventually(
            Duration::from_secs(60),
            "the unused binary is deleted everywhere",
            || nodes.iter().all(|n| cached(n).is_empty()),
        );
    }
    // ...and the group forgot it: the second run uploaded it again (and ran).
    let logs: String = (0..3).map(|d| cluster.driver_log(d)).collect();
    // A binary is on a majority of drivers before its job is accepted (the third may get
    // its copy later): at least two drivers deleted it after each of the two runs.
    assert!(
        logs.matches("deleted job binary").count() >= 4,
        "a majority of 3 drivers deleted it after each of 2 runs:\n{logs}"
    );
}

#[test]
fn a_program_whose_binary_the_cluster_forgot_between_two_jobs_uploads_it_again() {
    let cluster = LocalCluster::up_env(
        1,
        1,
        2,
        &[],
        &[(ringleader_core::fault_injection::BINARY_RETENTION_MS, "2000")],
    );
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    crate::helpers::numbered_text(&input, 3, 20);
    let lines = 3 * 20;
    let gate = data.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let log = data.path().join("client.log");
    let out = data.path().join("out");
    let mut client = crate::helpers::KillOnDrop(cluster.spawn(
        "chaos",
        &args!["--input", input, "--output", out, "--count-again-after", gate],
        &log,
    ));
    let held = || cached_binaries(&cluster.dir.path().join("driver-1")).len();
    // The first job ran, then its binary went unused past its retention and was deleted.
    crate::helpers::eventually(Duration::from_secs(60), "the first job's output", || {
        out.join("_SUCCESS").exists()
    });
    crate::helpers::eventually(Duration::from_secs(60), "the unused binary deleted", || held() == 0);
    std::fs::write(gate.join("go"), "").unwrap();
    crate::helpers::eventually(Duration::from_secs(60), "the program's end", || {
        client.0.try_wait().unwrap().is_some()
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(client.0.wait().unwrap().success(), "the program failed:\n{text}");
    assert!(
        text.contains(&format!("counted again {lines} lines")),
        "the second job did not count every line:\n{text}"
    );
}
