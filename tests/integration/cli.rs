//! The `ringleader` command's benchmarks and daemons (its flags, generators and validator
//! are tested in `cli/tests/command.rs`).

use std::process::Command;

use crate::helpers::{Bounded, ringleader_bin};

#[test]
fn bench_embedded_runs_at_small_scale_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let peers = python_peers_installed();
    let mut args = vec![
        "embedded",
        "--records",
        "20000",
        "--rows",
        "100000",
        "--text-bytes",
        "200K",
        "--runs",
        "1",
    ];
    args.extend(peers.then_some("--peers"));
    let stdout = bench(dir.path(), &args);
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
    // Ringleader and plain Rust on every core and pinned to one (COST), and the peers.
    let systems = if peers { 6 } else { 4 };
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

#[test]
fn bench_dbbench_answers_every_question_on_every_system_alike() {
    let dir = tempfile::tempdir().unwrap();
    let peers = python_peers_installed();
    let mut args = vec!["dbbench", "--rows", "2e4", "--groups", "10", "--workers", "1"];
    args.extend(peers.then_some("--peers"));
    // Success means every system's checksums agreed with the embedded engine's.
    let stdout = bench(dir.path(), &args);
    for needle in [
        "q10 sum v3 count by id1:id6",
        "q5 big inner on int",
        "questions (data in memory)",
        "load from CSV + questions",
        "ringleader cluster",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("bench.json")).unwrap()).unwrap();
    let workloads = json["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 15, "ten groupby and five join questions");
    let systems = if peers { 4 } else { 2 };
    assert!(
        workloads
            .iter()
            .all(|w| w["systems"].as_array().unwrap().len() == systems)
    );
    if peers {
        assert!(stdout.contains("ringleader/duckdb"), "{stdout}");
    }
}

/// Runs `ringleader bench ARGS` with its data under `dir`, the debug examples, and its JSON
/// and plot at `dir/bench.json` and `dir/bench.svg`; its stdout (it must succeed).
fn bench(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(ringleader_bin())
        .arg("bench")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--examples")
        .arg(crate::helpers::target_dir().join("examples"))
        .arg("--json")
        .arg(dir.join("bench.json"))
        .arg("--plot")
        .arg(dir.join("bench.svg"))
        .bounded();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether this build's `target/py` has DuckDB, Polars and pyarrow (.ci/run installs them):
/// `bench embedded --peers` runs them.
fn python_peers_installed() -> bool {
    let python = crate::helpers::target_dir().parent().unwrap().join("py/bin/python");
    let found = Command::new(python)
        .args(["-c", "import duckdb, polars, pyarrow, numpy"])
        .try_bounded()
        .is_some_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        ".ci/run installs them into target/py"
    );
    found
}

#[test]
fn bench_cluster_runs_at_small_scale_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = bench(
        dir.path(),
        &[
            "cluster",
            "--records",
            "20000",
            "--rows",
            "100000",
            "--runs",
            "1",
            "--trivial-runs",
            "3",
        ],
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

/// The log a driver writes until it leads (its status says so) and its log satisfies
/// `until`, with `RUST_LOG` set to `level` (or unset).
fn driver_log(level: Option<&str>, until: impl Fn(&str) -> bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (mut driver, address) = crate::helpers::lone_driver(dir.path(), |c| {
        c.stderr(std::fs::File::create(&log).unwrap()).env_remove("RUST_LOG");
        if let Some(level) = level {
            c.env("RUST_LOG", level);
        }
    });
    let leads = || {
        let mut status = Command::new(ringleader_bin());
        status.args(["cluster", "status", "--json", "--master", &address]);
        let out = crate::helpers::output_bounded(&mut status, std::time::Duration::from_secs(30));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        json["drivers"][0]["role"] == "leader"
    };
    crate::helpers::eventually(
        std::time::Duration::from_secs(20),
        "the driver leads and logs what the test awaits",
        || leads() && until(&std::fs::read_to_string(&log).unwrap_or_default()),
    );
    let _ = driver.kill();
    let _ = driver.wait();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn daemons_log_through_tracing_at_the_levels_rust_log_gives() {
    let default = driver_log(None, |log| log.contains("leading in term"));
    assert!(
        default
            .lines()
            .any(|l| l.contains(" INFO ") && l.ends_with("leading in term 1")),
        "{default}"
    );
    assert!(!default.contains("DEBUG"), "debug lines by default:\n{default}");
    let quiet = driver_log(Some("warn"), |_| true);
    assert!(!quiet.contains("INFO") && !quiet.contains("listening"), "{quiet}");
    let verbose = driver_log(Some("debug"), |log| log.contains("DEBUG"));
    assert!(verbose.contains("DEBUG"), "{verbose}");
}
