//! Shared helpers: engines with small settings, temp inputs, paths of built binaries.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringleader::{Config, Context};

/// An embedded engine with `threads` threads and `partitions` shuffle partitions.
pub fn engine(threads: usize, partitions: u32) -> Context {
    Context::new(Config {
        threads,
        shuffle_partitions: partitions,
        progress: false,
        ..Config::default()
    })
    .expect("engine")
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// The repository's fixture `name` (`datasets/fixtures/NAME`; `""` for all of them).
pub fn fixtures(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository above tests/");
    root.join("datasets/fixtures").join(name)
}

/// The directory holding this build's executables (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// A built example binary.
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; cargo test builds examples",
        path.display()
    );
    path
}

/// The `ringleader` binary (the `ringleader-cli` crate's, built beside these tests by
/// `cargo test --workspace`).
pub fn ringleader_bin() -> PathBuf {
    let path = target_dir().join("ringleader");
    assert!(
        path.exists(),
        "{} is not built; `cargo test --workspace` builds it (or `cargo build -p ringleader-cli`)",
        path.display()
    );
    path
}

/// Names of the `part-*` files of an output directory, sorted.
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    files.sort();
    files
}

/// Every line of an output directory's `part-*` files, sorted.
pub fn sorted_lines(dir: &Path) -> Vec<String> {
    sorted_lines_of(&parts(dir))
}

/// Every line of `files`, sorted.
pub fn sorted_lines_of(files: &[PathBuf]) -> Vec<String> {
    let mut lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Command-line arguments from anything path- or string-like.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*] };
}
pub(crate) use args;

/// Runs an example embedded (no cluster), without progress lines.
pub fn embedded(name: &str, args: &[OsString]) -> Output {
    Command::new(example(name))
        .args(args)
        .env_remove("RINGLEADER_MASTER")
        .env("RINGLEADER_PROGRESS", "0")
        .bounded()
}

/// The stdout of a successful run; a failed run fails the test with its stderr.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The concatenated part files of an output directory, in name order.
pub fn concat(dir: &Path) -> Vec<u8> {
    parts(dir).iter().flat_map(|p| std::fs::read(p).unwrap()).collect()
}

/// A text input whose every line starts with its own id (`l<file>_<line>`), for counting
/// how often each line ran.
pub fn numbered_text(dir: &Path, files: usize, lines: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..files {
        let text: String = (0..lines)
            .map(|l| format!("l{f}_{l} alpha beta w{} gamma w{}\n", l % 7, (f * l) % 5))
            .collect();
        std::fs::write(dir.join(format!("part-{f:02}.txt")), text).unwrap();
    }
}

/// Waits for `child` at most `limit`; past it, kills it and fails the test (no test waits
/// forever on a hung job).
pub fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a job did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `sig` to `pid`, a process this test started that must still run: a signal that
/// cannot be delivered fails the test (a fault injected into nothing proves nothing).
pub fn signal(pid: u32, sig: i32) {
    assert!(
        running(pid),
        "process {pid} is not running: signal {sig} would hit nothing"
    );
    // SAFETY: kill(2) on a process this test started.
    let sent = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(sent, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// Sends `sig` to `pid` if it still exists (cleanup: a process that already ended is fine).
pub fn signal_if_alive(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Kills `pid` (which must run) with SIGKILL and waits (at most 10 s) until it is gone.
pub fn kill_now(pid: u32) {
    signal(pid, libc::SIGKILL);
    eventually(
        std::time::Duration::from_secs(10),
        &format!("process {pid} dies"),
        || !running(pid),
    );
}

/// Stops `pid` (which must run) with SIGSTOP and waits (at most 10 s) until it is stopped.
pub fn stop_now(pid: u32) {
    signal(pid, libc::SIGSTOP);
    eventually(
        std::time::Duration::from_secs(10),
        &format!("process {pid} stops"),
        || process_state(pid) == Some('T'),
    );
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces): state,
/// parent pid, …, if the process exists.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// The state letter of process `pid` (`R`, `S`, `T`, `Z` …), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&child| stat_fields(child).is_some_and(|f| f.get(1) == Some(&pid.to_string())))
        .collect()
}

/// A process this test started, killed (and reaped) when dropped, also when the test fails.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How often each input line ran, by the line's first word, from the chaos job's
/// `--run-marker` files (`WORD.PID.N`).
pub fn runs_per_line(markers: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut runs = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(markers).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        *runs.entry(name.split('.').next().unwrap().to_string()).or_default() += 1;
    }
    runs
}

/// Waits (at most `limit`) for `child` and fails the test, with its log, unless it succeeded.
pub fn succeeds(mut child: std::process::Child, log: &Path, limit: std::time::Duration, what: &str) {
    let status = wait_bounded(&mut child, limit);
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{what}:\n{log}");
}

/// Waits until `check` holds, at most `limit`; past it, fails the test saying `what` did
/// not happen.
pub fn eventually(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How long any command a test runs may take before the test kills it and fails.
pub const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Running a command to its end within a time limit: no test waits forever on a process
/// that hangs.
pub trait Bounded {
    /// Runs it to its end and returns its output; past [`COMMAND_LIMIT`] it is killed and
    /// the test fails.
    fn bounded(&mut self) -> Output;
    /// [`Bounded::bounded`], or `None` when the program cannot be started (a probe for a
    /// tool that may be missing).
    fn try_bounded(&mut self) -> Option<Output>;
}

impl Bounded for Command {
    fn bounded(&mut self) -> Output {
        output_bounded(self, COMMAND_LIMIT)
    }

    fn try_bounded(&mut self) -> Option<Output> {
        try_output_bounded(self, COMMAND_LIMIT)
    }
}

/// Runs a command to its end, killing it past `limit` (no test waits forever on a hung
/// process); its output.
pub fn output_bounded(command: &mut Command, limit: std::time::Duration) -> Output {
    try_output_bounded(command, limit).unwrap_or_else(|| panic!("cannot start {command:?}"))
}

fn try_output_bounded(command: &mut Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = wait_bounded(&mut child, limit);
    Some(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Where a test that cannot run here says so. Under `CI` (which `.ci/run` sets up to run
/// everything) it fails instead; elsewhere it prints why and notes the skip in
/// `target/skipped-tests`, which `.ci/run` counts.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run here ({why}), and under CI every test must run"
    );
    eprintln!("skipped: {test}: {why}");
    let list = target_dir().parent().expect("target/").join("skipped-tests");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(list) {
        use std::io::Write;
        let _ = writeln!(file, "{test}: {why}");
    }
}

/// Starts `ringleader driver` alone on a free loopback port, its data and address file
/// under `dir`, after `configure` added its flags, output and environment; waits (at most
/// 10 s) until it listens. The process and its address.
pub fn lone_driver(dir: &Path, configure: impl FnOnce(&mut Command)) -> (std::process::Child, String) {
    let address_file = dir.join("address");
    let mut command = Command::new(ringleader_bin());
    command
        .args(["driver", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("driver"))
        .arg("--address-file")
        .arg(&address_file);
    configure(&mut command);
    let driver = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !address_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let address = std::fs::read_to_string(&address_file)
        .unwrap_or_else(|_| panic!("the driver in {} did not listen within 10 s", dir.display()));
    (driver, address.trim().to_string())
}

/// A cluster from `ringleader cluster up`, stopped (and any stopped process continued)
/// when dropped.
pub struct LocalCluster {
    /// Its directory.
    pub dir: tempfile::TempDir,
    /// Its drivers' addresses.
    pub master: String,
}

impl LocalCluster {
    /// `drivers` drivers and `workers` workers of 2 slots.
    pub fn up(drivers: u32, workers: u32) -> LocalCluster {
        LocalCluster::up_with(drivers, workers, 2, &[])
    }

    /// `drivers` drivers and `workers` workers of `slots` slots; `extra` flags for `cluster up`.
    pub fn up_with(drivers: u32, workers: u32, slots: u32, extra: &[&str]) -> LocalCluster {
        LocalCluster::up_env(drivers, workers, slots, extra, &[])
    }

    /// [`LocalCluster::up_with`], every node started with the variables `env` set (faults
    /// to inject, see `ringleader_core::fault_injection`).
    pub fn up_env(drivers: u32, workers: u32, slots: u32, extra: &[&str], env: &[(&str, &str)]) -> LocalCluster {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(ringleader_bin())
            .envs(env.iter().copied())
            .args(["cluster", "up", "--drivers", &drivers.to_string()])
            .args(["--workers", &workers.to_string(), "--slots", &slots.to_string()])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .bounded();
        assert!(
            out.status.success(),
            "cluster up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let master = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export RINGLEADER_MASTER="))
            .unwrap()
            .to_string();
        LocalCluster { dir, master }
    }

    /// The token file `cluster up` wrote.
    pub fn token(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    fn file(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("cluster.json")).unwrap()).unwrap()
    }

    /// Worker `i`'s pid.
    pub fn worker_pid(&self, i: usize) -> u32 {
        self.file()["workers"][i]["pid"].as_u64().unwrap() as u32
    }

    /// Driver `i`'s address (driver `i + 1` of the group).
    pub fn driver_address(&self, i: usize) -> String {
        self.file()["drivers"][i]["address"].as_str().unwrap().to_string()
    }

    /// Driver `i`'s pid.
    pub fn driver_pid(&self, i: usize) -> u32 {
        self.file()["drivers"][i]["pid"].as_u64().unwrap() as u32
    }

    /// `cluster status --json`'s driver rows (role, term, log indexes, lag).
    pub fn drivers_status(&self) -> Vec<serde_json::Value> {
        self.status_rows("drivers")
    }

    /// `cluster status --json`'s worker rows (address, alive, ring share).
    pub fn workers_status(&self) -> Vec<serde_json::Value> {
        self.status_rows("workers")
    }

    fn status_rows(&self, kind: &str) -> Vec<serde_json::Value> {
        let out = Command::new(ringleader_bin())
            .args(["cluster", "status", "--json", "--dir"])
            .arg(self.dir.path())
            .bounded();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status[kind].as_array().cloned().unwrap_or_default()
    }

    /// The index and term of the driver that leads in a term above `after`, waiting (at
    /// most 20 s) for one.
    pub fn leader_after(&self, after: u64) -> (usize, u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let rows = self.drivers_status();
            if let Some((i, row)) = rows
                .iter()
                .enumerate()
                .find(|(_, r)| r["role"] == "leader" && r["term"].as_u64().unwrap_or(0) > after)
            {
                return (i, row["term"].as_u64().unwrap_or(0));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no leader in a term above {after}: {rows:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A command for a job binary pointed at this cluster, with progress lines on.
    pub fn client(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("RINGLEADER_MASTER", &self.master)
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .env("RINGLEADER_PROGRESS", "1");
        command
    }

    /// Runs an example on this cluster to completion.
    pub fn run(&self, name: &str, args: &[OsString]) -> Output {
        self.client(&example(name))
            .args(args)
            .env("RINGLEADER_PROGRESS", "0")
            .bounded()
    }

    /// Runs an example with every remote shuffle block fetched over Flight (no host-local reads).
    pub fn run_over_flight(&self, name: &str, args: &[OsString]) -> Output {
        self.client(&example(name))
            .args(args)
            .env("RINGLEADER_PROGRESS", "0")
            .env("RINGLEADER_HOST_LOCAL_SHUFFLE", "0")
            .bounded()
    }

    /// Starts an example on this cluster in the background, its stderr (progress lines
    /// included) in `log`.
    pub fn spawn(&self, name: &str, args: &[OsString], log: &Path) -> std::process::Child {
        self.client(&example(name))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// `ringleader put` of `input` as dataset `name`.
    pub fn put(&self, name: &str, partitions: u32, replicas: u32, input: &Path) {
        let put = Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(["put", "--master", &self.master, "--name", name])
            .args([
                "--partitions",
                &partitions.to_string(),
                "--replicas",
                &replicas.to_string(),
            ])
            .arg(input)
            .bounded();
        assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    }

    /// How many of `workers` (1-based, as their directories are named) hold a copy of
    /// partition `partition` of dataset `name` on disk.
    pub fn holders(&self, name: &str, partition: u32, workers: &[usize]) -> usize {
        workers
            .iter()
            .filter(|w| {
                let dataset = self.dir.path().join(format!("worker-{w}/datasets/{name}"));
                // Under the dataset's generation directory (one, once old ones are gone).
                std::fs::read_dir(dataset).is_ok_and(|generations| {
                    generations
                        .flatten()
                        .any(|g| g.path().join(format!("part-{partition}.arrow")).exists())
                })
            })
            .count()
    }

    /// The columns of `stage`'s line in `ringleader job JOB`.
    fn stage_columns(&self, job: &str, stage: u32) -> Option<Vec<String>> {
        let out = Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(["job", job, "--master", &self.master])
            .bounded();
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let cols: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            (cols.first()? == &stage.to_string()).then_some(cols)
        })
    }

    /// (done, total, attempts) of `stage` of `job`, from `ringleader job`.
    pub fn stage(&self, job: &str, stage: u32) -> Option<(u32, u32, u32)> {
        let cols = self.stage_columns(job, stage)?;
        Some((
            cols.get(4)?.parse().ok()?,
            cols.get(6)?.parse().ok()?,
            cols.get(7)?.parse().ok()?,
        ))
    }

    /// Where `stage` of `job` is in its lifecycle (waiting, runnable, running, done,
    /// failed), from `ringleader job`.
    pub fn stage_state(&self, job: &str, stage: u32) -> Option<String> {
        self.stage_columns(job, stage)?.get(1).cloned()
    }

    /// When `stage` of `job` began and ended (its first attempt's start, its last one's
    /// end), in seconds after the submission, from `ringleader job`.
    pub fn stage_times(&self, job: &str, stage: u32) -> Option<(f64, f64)> {
        let cols = self.stage_columns(job, stage)?;
        Some((cols.get(14)?.parse().ok()?, cols.get(15)?.parse().ok()?))
    }

    /// (failed attempts, failures counted toward the attempt limit) of `stage` of `job`,
    /// from `ringleader job`.
    pub fn stage_failures(&self, job: &str, stage: u32) -> Option<(u32, u32)> {
        let cols = self.stage_columns(job, stage)?;
        Some((cols.get(12)?.parse().ok()?, cols.get(13)?.parse().ok()?))
    }

    /// (failed attempts, failures counted toward the attempt limit) over the first two
    /// stages of `job` (a map and a reduce stage).
    pub fn job_failures(&self, job: &str) -> (u32, u32) {
        (0..2)
            .filter_map(|stage| self.stage_failures(job, stage))
            .fold((0, 0), |(f, c), (failed, counted)| (f + failed, c + counted))
    }

    /// What `ringleader job JOB` prints (stages, and the failed attempts with their messages).
    pub fn job_text(&self, job: &str) -> String {
        ok(self.ringleader(&["job", job]), "ringleader job")
    }

    /// The value of the one sample of `metric` that worker `i` (0-based) serves at /metrics.
    pub fn worker_metric(&self, i: usize, metric: &str) -> f64 {
        self.metric(&format!("worker-{}", i + 1), metric)
    }

    /// The value of the one sample of `metric` that driver `i` (0-based) serves at /metrics.
    pub fn driver_metric(&self, i: usize, metric: &str) -> f64 {
        self.metric(&format!("driver-{}", i + 1), metric)
    }

    /// The value of the one sample of `metric` that the node in directory `node` serves.
    fn metric(&self, node: &str, metric: &str) -> f64 {
        let address = std::fs::read_to_string(self.dir.path().join(format!("{node}/http-address"))).unwrap();
        let token = std::fs::read_to_string(self.token()).unwrap();
        let (code, body) = http_get(
            address.trim(),
            "/metrics",
            &format!("Authorization: Bearer {}\r\n", token.trim()),
        );
        assert_eq!(code, 200, "{body}");
        body.lines()
            .find(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {metric} in {node}'s metrics:\n{body}"))
    }

    /// The log of driver `i` (0-based), as `cluster up` writes it.
    pub fn driver_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("driver-{}/log", i + 1))).unwrap_or_default()
    }

    /// The log of worker `i` (0-based), as `cluster up` writes it.
    pub fn worker_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("worker-{}/log", i + 1))).unwrap_or_default()
    }

    /// (rows in, bytes in, rows out, bytes out) of `stage` of `job`, from `ringleader job`.
    pub fn stage_volumes(&self, job: &str, stage: u32) -> Option<[u64; 4]> {
        let cols = self.stage_columns(job, stage)?;
        let n = |i: usize| cols.get(i)?.parse().ok();
        Some([n(8)?, n(9)?, n(10)?, n(11)?])
    }

    /// The state of `job` as `ringleader jobs` lists it (running, succeeded, failed, cancelled).
    pub fn job_state(&self, job: &str) -> Option<String> {
        let out = Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(["jobs", "--master", &self.master])
            .bounded();
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&job))
                .then(|| cols.get(2).map(|s| s.to_string()))
                .flatten()
        })
    }

    /// Runs `ringleader ARGS` against this cluster.
    pub fn ringleader(&self, args: &[&str]) -> Output {
        Command::new(ringleader_bin())
            .env("RINGLEADER_TOKEN_FILE", self.token())
            .args(args)
            .args(["--master", &self.master])
            .bounded()
    }

    /// Waits (at most a minute) until `stage` of `job` has `done` tasks done, and returns
    /// its (done, total, attempts) then.
    pub fn wait_for_stage(&self, job: &str, stage: u32, done: impl Fn(u32, u32) -> bool) -> (u32, u32, u32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some((d, total, attempts)) = self.stage(job, stage)
                && done(d, total)
            {
                return (d, total, attempts);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{job} stage {stage} never got there"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let file = self.file();
        for node in file["drivers"]
            .as_array()
            .into_iter()
            .chain(file["workers"].as_array())
            .flatten()
        {
            if let Some(pid) = node["pid"].as_u64() {
                signal_if_alive(pid as u32, libc::SIGCONT);
            }
        }
        let _ = Command::new(ringleader_bin())
            .args(["cluster", "down", "--dir"])
            .arg(self.dir.path())
            .try_bounded();
        // A failed test keeps the nodes' logs: the run that failed may not come again.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the cluster's directory (logs, state) is kept: {}",
                self.dir.path().display()
            );
        }
    }
}

/// The job id a client's progress lines (in `log`) name, waiting for it.
pub fn job_id(log: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(id) = text.split_whitespace().find(|w| w.starts_with("job-")) {
            return id.trim_end_matches(':').to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no job id in {}", log.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every file under `dir`, at any depth (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A tmpfs mounted at a path for the length of a test, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A `size` tmpfs at `path`, or why one cannot be mounted here (not root).
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .try_bounded()
            .ok_or("cannot run mount")?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(path.to_path_buf()))
    }

    /// A small read-only tmpfs at `path` (nobody, root included, can create a file in it),
    /// or why one cannot be mounted here.
    pub fn mount_read_only(path: &Path) -> Result<Tmpfs, String> {
        let mounted = Tmpfs::mount(path, "64k")?;
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(path)
            .try_bounded()
            .ok_or("cannot run mount")?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(mounted)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).try_bounded();
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn running(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z')
}

/// The pid of the chaos job's straggler (`--straggle-dir dir`), waiting (at most a minute)
/// until it has started.
pub fn straggler_pid(dir: &Path) -> u32 {
    let file = dir.join("straggled/pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(&file).ok().and_then(|p| p.trim().parse().ok()) {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "no task straggled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET of `path` at `address` with `headers` (each ending in CRLF): the
/// status code and the body. Bounded: 10 s to answer.
pub fn http_get(address: &str, path: &str, headers: &str) -> (u16, String) {
    let (code, _, body) = http_get_with_headers(address, path, headers);
    (code, body)
}

/// [`http_get`], with the response's header block too.
pub fn http_get_with_headers(address: &str, path: &str, headers: &str) -> (u16, String, String) {
    exchange(connect(address), address, path, headers)
}

/// A TCP connection to `address` whose reads give up after 10 s.
fn connect(address: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
}

/// [`http_get_with_headers`] over TLS, trusting the CA certificate (PEM) `ca`.
pub fn https_get_with_headers(address: &str, path: &str, headers: &str, ca: &Path) -> (u16, String, String) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("a usable CA certificate");
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let name = ServerName::try_from(host.to_string()).expect("a server name");
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("a TLS client");
    exchange(
        rustls::StreamOwned::new(connection, connect(address)),
        address,
        path,
        headers,
    )
}

/// Sends a GET over `stream` and reads the whole answer: (status, header block, body).
fn exchange(
    mut stream: impl std::io::Read + std::io::Write,
    address: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String) {
    // A peer that will not speak this protocol (plain HTTP to a TLS port) may close before
    // the request is written: no answer, status 0.
    if let Err(e) = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    ) {
        return (0, format!("the request could not be sent: {e}"), String::new());
    }
    let mut bytes = Vec::new();
    // A TLS peer may close without a close_notify once it answered: what arrived counts.
    if let Err(e) = stream.read_to_end(&mut bytes)
        && bytes.is_empty()
    {
        return (0, format!("no answer from {address}: {e}"), String::new());
    }
    let response = String::from_utf8_lossy(&bytes).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    (code, head.to_string(), body.to_string())
}
