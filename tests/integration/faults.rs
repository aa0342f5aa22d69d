//! Faults on a cluster of real processes: workers killed mid-job. Results are checked
//! against the same job run embedded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{args, embedded, example, numbered_text, ok, ringleader_bin, sorted_lines, wait_bounded};

/// A cluster of one driver and `workers` workers, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    master: String,
}

impl Cluster {
    fn up(workers: u32) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(ringleader_bin())
            .args(["cluster", "up", "--workers", &workers.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let master = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export RINGLEADER_MASTER="))
            .unwrap()
            .to_string();
        Cluster { dir, master }
    }

    fn worker_pid(&self, i: usize) -> u32 {
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("cluster.json")).unwrap()).unwrap();
        file["workers"][i]["pid"].as_u64().unwrap() as u32
    }

    /// (done, total, attempts) of `stage` of `job`, from `ringleader job`.
    fn stage(&self, job: &str, stage: u32) -> Option<(u32, u32, u32)> {
        let out = Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.dir.path().join("token"))
            .args(["job", job, "--master", &self.master])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.first()? != &stage.to_string() {
                return None;
            }
            Some((
                cols.get(3)?.parse().ok()?,
                cols.get(5)?.parse().ok()?,
                cols.get(6)?.parse().ok()?,
            ))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(ringleader_bin())
            .args(["cluster", "down", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

fn kill(pid: u32) {
    // SAFETY: kill(2) on a worker this test's cluster started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// The job id the client's progress lines name, waiting for it.
fn job_id(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(id) = text.split_whitespace().find(|w| w.starts_with("job-")) {
            return id.trim_end_matches(':').to_string();
        }
        assert!(Instant::now() < deadline, "no job id in {}", log.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_worker_killed_after_the_map_stage_has_its_output_recomputed() {
    let cluster = Cluster::up(3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 9, 10);
    // A fast map stage and a slow reduce stage (30 ms per distinct word).
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--reduce-sleep-ms", "30"];
    let client = Command::new(example("chaos"))
        .args(job_args(&d("cluster")))
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", cluster.dir.path().join("token"))
        .env("RINGLEADER_PROGRESS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d("client.log")).unwrap())
        .spawn()
        .unwrap();
    let job = job_id(&d("client.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (maps, _, _) = loop {
        if let Some((done, total, attempts)) = cluster.stage(&job, 0)
            && done == total
        {
            break (done, total, attempts);
        }
        assert!(Instant::now() < deadline, "the map stage never finished");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Every worker holds map output (9 map tasks over 3 workers x 2 slots); one dies.
    kill(cluster.worker_pid(1));
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
    let cluster = Cluster::up(3);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 12, 10);
    let job_args = |out: &Path| args!["--input", d("text"), "--output", out, "--sleep-ms", "30"];
    let client = Command::new(example("chaos"))
        .args(job_args(&d("cluster")))
        .env("RINGLEADER_MASTER", &cluster.master)
        .env("RINGLEADER_TOKEN_FILE", cluster.dir.path().join("token"))
        .env("RINGLEADER_PROGRESS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d("client.log")).unwrap())
        .spawn()
        .unwrap();
    let job = job_id(&d("client.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.stage(&job, 0).is_none_or(|(done, _, _)| done < 2) {
        assert!(Instant::now() < deadline, "the map stage never progressed");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(cluster.worker_pid(0));
    let mut client = client;
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    let log = std::fs::read_to_string(d("client.log")).unwrap();
    assert!(status.success(), "the job failed after a worker died:\n{log}");
    ok(embedded("chaos", &job_args(&d("embedded"))), "embedded chaos");
    assert_eq!(sorted_lines(&d("cluster")), sorted_lines(&d("embedded")));
}
