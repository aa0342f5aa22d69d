//! The `ringleader` command: generators are deterministic, the validator catches bad
//! output, wrong flags print usage.

use std::process::Command;

use crate::helpers::ringleader_bin;

fn ringleader(args: &[&str]) -> std::process::Output {
    Command::new(ringleader_bin())
        .args(args)
        .output()
        .expect("run ringleader")
}

fn gen_sort(dir: &std::path::Path, files: &str, extra: &[&str]) {
    let mut args = vec![
        "gen",
        "sort",
        "--records",
        "5000",
        "--files",
        files,
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ringleader(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn concat(dir: &std::path::Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn gen_sort_is_deterministic_per_seed_whatever_the_file_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    gen_sort(&a, "1", &[]);
    gen_sort(&b, "3", &[]);
    gen_sort(&c, "1", &["--seed", "7"]);
    let (a, b, c) = (concat(&a), concat(&b), concat(&c));
    assert_eq!(a.len(), 500_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // gensort's layout: 10-byte key, 00 11, row id in hex, 88 99 AA BB, filler, CC DD EE FF.
    let r = &a[100..200];
    assert_eq!(&r[10..12], &[0x00, 0x11]);
    assert_eq!(&r[12..44], b"00000000000000000000000000000001");
    assert_eq!(&r[44..48], &[0x88, 0x99, 0xAA, 0xBB]);
    assert_eq!(&r[96..100], &[0xCC, 0xDD, 0xEE, 0xFF]);
}

#[test]
fn skewed_records_have_hot_keys() {
    let dir = tempfile::tempdir().unwrap();
    gen_sort(dir.path(), "1", &["--skew"]);
    let bytes = concat(dir.path());
    let mut keys: Vec<&[u8]> = bytes.chunks(100).map(|r| &r[..10]).collect();
    keys.sort();
    let distinct = {
        let mut k = keys.clone();
        k.dedup();
        k.len()
    };
    assert!(distinct < 4000, "skew should repeat keys: {distinct} distinct of 5000");
}

/// Writes `records` as two part files under `dir/name`; returns the directory.
fn write_parts(dir: &std::path::Path, name: &str, records: &[Vec<u8>], split: usize) -> std::path::PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("part-00000"), records[..split].concat()).unwrap();
    std::fs::write(out.join("part-00001"), records[split..].concat()).unwrap();
    out
}

fn validate(input: &std::path::Path, output: &std::path::Path) -> std::process::Output {
    ringleader(&[
        "validate",
        "sort",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

#[test]
fn validate_accepts_sorted_output_and_reports_the_first_violation() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    gen_sort(&input, "2", &[]);
    let mut records: Vec<Vec<u8>> = concat(&input).chunks(100).map(<[u8]>::to_vec).collect();
    records.sort_by(|a, b| a[..10].cmp(&b[..10]));
    let out = validate(&input, &write_parts(dir.path(), "good", &records, 2000));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    records.swap(3000, 3001);
    let bad = write_parts(dir.path(), "bad", &records, 2000);
    let out = validate(&input, &bad);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("part-00001 record 1001") && stdout.contains("byte offset 100100"),
        "{stdout}"
    );
    let short = write_parts(dir.path(), "short", &records[..4999], 2000);
    assert!(String::from_utf8_lossy(&validate(&input, &short).stdout).contains("4999 records, the input 5000"));
}

#[test]
fn gen_refuses_a_non_empty_directory_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "keep").unwrap();
    let out = ringleader(&["gen", "numbers", "--rows", "10", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert!(dir.path().join("x").exists());
}

#[test]
fn wrong_flags_print_usage_and_exit_2() {
    for args in [
        &["gen", "sort", "--out", "x"][..],
        &["frobnicate"],
        &["validate", "sort", "--bogus"],
    ] {
        let out = ringleader(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"), "{args:?}");
    }
}

#[test]
fn bench_embedded_runs_at_small_scale_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let examples = crate::helpers::target_dir().join("examples");
    let peers = python_peers_installed();
    let out = Command::new(ringleader_bin())
        .args([
            "bench",
            "embedded",
            "--records",
            "20000",
            "--rows",
            "100000",
            "--text-bytes",
            "200K",
            "--runs",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .arg("--examples")
        .arg(&examples)
        .arg("--json")
        .arg(dir.path().join("bench.json"))
        .arg("--plot")
        .arg(dir.path().join("bench.svg"))
        .args(peers.then_some("--peers"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "| sort 20000 records",
        "| sum 100000 int64",
        "| wordcount",
        "MB/s",
        "ratio",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // The same figures as JSON, and a plot with a bar per system and workload.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bench.json")).unwrap()).unwrap();
    let systems = if peers { 4 } else { 2 };
    for workload in json["workloads"].as_array().unwrap() {
        let runs = workload["systems"].as_array().unwrap();
        assert_eq!(runs.len(), systems, "{workload}");
        assert!(runs.iter().all(|r| r["seconds"].as_f64().unwrap() > 0.0));
    }
    let svg = std::fs::read_to_string(dir.path().join("bench.svg")).unwrap();
    assert_eq!(svg.matches("MB/s</text>").count(), 3 * systems);
    if peers {
        assert!(stdout.contains("duckdb (ratio, peak)") && stdout.contains("polars (ratio, peak)"));
    }
}

/// Whether this build's `target/py` has DuckDB, Polars and pyarrow (.ci/run installs them):
/// `bench embedded --peers` runs them.
fn python_peers_installed() -> bool {
    let python = crate::helpers::target_dir().parent().unwrap().join("py/bin/python");
    let found = Command::new(python)
        .args(["-c", "import duckdb, polars, pyarrow, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        ".ci/run installs them into target/py"
    );
    found
}

#[test]
fn bench_cluster_runs_at_small_scale_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let examples = crate::helpers::target_dir().join("examples");
    let out = Command::new(ringleader_bin())
        .args([
            "bench",
            "cluster",
            "--records",
            "20000",
            "--rows",
            "100000",
            "--runs",
            "1",
            "--trivial-runs",
            "3",
            "--dir",
        ])
        .arg(dir.path())
        .arg("--examples")
        .arg(&examples)
        .arg("--json")
        .arg(dir.path().join("bench.json"))
        .arg("--plot")
        .arg(dir.path().join("bench.svg"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["| sort 20000 records", "| sum 100000 int64", "trivial job", "median"] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bench.json")).unwrap()).unwrap();
    let systems: Vec<&str> = json["workloads"][0]["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["cluster", "embedded"]);
    assert!(
        std::fs::read_to_string(dir.path().join("bench.svg"))
            .unwrap()
            .contains("MB/s")
    );
    // The benchmark's cluster is stopped again.
    assert!(!dir.path().join("cluster/cluster.json").exists());
}

/// The log a driver writes until it leads, with `RUST_LOG` set to `level` (or unset).
fn driver_log(level: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (mut driver, _) = crate::helpers::lone_driver(dir.path(), |c| {
        c.stderr(std::fs::File::create(&log).unwrap()).env_remove("RUST_LOG");
        if let Some(level) = level {
            c.env("RUST_LOG", level);
        }
    });
    // A lone driver leads within a second of listening (its log says so at INFO).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline
        && !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("leading in term")
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = driver.kill();
    let _ = driver.wait();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn daemons_log_through_tracing_at_the_levels_rust_log_gives() {
    let default = driver_log(None);
    assert!(
        default
            .lines()
            .any(|l| l.contains(" INFO ") && l.ends_with("leading in term 1")),
        "{default}"
    );
    assert!(!default.contains("DEBUG"), "debug lines by default:\n{default}");
    let quiet = driver_log(Some("warn"));
    assert!(!quiet.contains("INFO") && !quiet.contains("listening"), "{quiet}");
    let verbose = driver_log(Some("debug"));
    assert!(verbose.contains("DEBUG"), "{verbose}");
}
