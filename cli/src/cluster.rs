//! `ringleader cluster up|status|down`: a laptop cluster in one command. `up` starts real
//! driver and worker processes in the background, waits until every worker registered,
//! and records their addresses and pids in `DIR/cluster.json`; `status` asks the driver;
//! `down` stops exactly the processes recorded there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::cluster_dir::{ClusterFile, NodeProcess, default_dir, token_path, use_cluster_token, write_file};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

/// `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a driver and workers in the background and wait until they are ready.
    Up(UpArgs),
    /// Show the drivers and workers.
    Status(StatusArgs),
    /// Stop every process `up` started.
    Down(DirArgs),
}

/// The cluster's directory.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Where the cluster keeps its state, data and logs.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
}

/// `cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Driver processes: 1, or a Raft group of 3 or 5 that survives losing a minority.
    #[arg(long, default_value_t = 1)]
    pub drivers: u32,
    /// Task slots per worker.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    /// The most memory each worker's executors budget for (suffixes K, M, G) [default: half
    /// of this machine's RAM shared among the workers, at most 2 GiB each].
    #[arg(long, value_parser = super::generate::parse_size)]
    pub memory: Option<u64>,
    /// The token (default: a new one in the directory) and TLS certificates of every node.
    #[command(flatten)]
    pub security: super::nodes::SecurityArgs,
    /// Raft log entries between driver snapshots (the log is compacted at each).
    #[arg(long, default_value_t = ringleader_driver::raft::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Where stored datasets' partitions go (see `ringleader driver --placement`).
    #[arg(long, value_enum, default_value_t)]
    pub placement: ringleader_driver::placement::PlacementPolicy,
    /// Seconds a task attempt may run before it fails and runs again (0: no limit).
    #[arg(long, default_value_t = ringleader_driver::scheduler::DEFAULT_TASK_TIMEOUT.as_secs_f64())]
    pub task_timeout: f64,
    /// A task this many times slower than its stage's median gets a speculative copy (0: never).
    #[arg(long, default_value_t = 3.0)]
    pub speculation_multiplier: f64,
    /// Seconds without a heartbeat after which a worker counts as dead.
    #[arg(long, default_value_t = 3.0)]
    pub worker_timeout: f64,
    /// Seconds between each worker's heartbeats (at most a third of --worker-timeout).
    #[arg(long, default_value_t = super::nodes::DEFAULT_HEARTBEAT_SECS, value_parser = super::nodes::positive_seconds)]
    pub heartbeat: f64,
    /// Start executors without the Landlock sandbox (see `ringleader worker --no-sandbox`).
    #[arg(long)]
    pub no_sandbox: bool,
    /// The cluster directory.
    #[command(flatten)]
    pub dir: DirArgs,
}

/// `cluster status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The driver(s), host:port[,host:port…], for drivers started by hand (default: the
    /// cluster in --dir, else RINGLEADER_MASTER).
    #[arg(long)]
    pub master: Option<String>,
    /// The cluster directory.
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Runs a `cluster` subcommand.
pub fn run(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Status(a) => status(a),
        ClusterCommand::Down(a) => down(&a.dir),
    }
}

fn spawn(dir: &Path, name: &str, args: &[String]) -> anyhow::Result<(u32, PathBuf)> {
    use std::os::unix::process::CommandExt;
    let data = dir.join(name);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let log = std::fs::File::create(data.join("log")).context("creating a log file")?;
    let address_file = data.join("address");
    let _ = std::fs::remove_file(&address_file);
    let child = Command::new(std::env::current_exe()?)
        .args(args)
        .arg("--data-dir")
        .arg(&data)
        .arg("--address-file")
        .arg(&address_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal does not stop the cluster.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok((child.id(), address_file))
}

fn wait_for_address(file: &Path, pid: u32, what: &str, dir: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(a) = std::fs::read_to_string(file) {
            return Ok(a.trim().to_string());
        }
        if !alive(pid) {
            let log = std::fs::read_to_string(file.with_file_name("log")).unwrap_or_default();
            bail!(
                "{what} (pid {pid}) exited during start-up; its log in {}:\n{log}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "{what} (pid {pid}) did not start listening within 15 s; see {}",
        file.with_file_name("log").display()
    )
}

pub(super) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// Free loopback ports for the drivers (a group's peer list needs them before they start).
pub(super) fn free_ports(n: u32) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports for the drivers")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<anyhow::Result<Vec<u16>>>()
}

fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    if ![1, 3, 5].contains(&args.drivers) {
        bail!(
            "--drivers {}: a driver group has 1, 3 or 5 drivers (an even number tolerates no more failures than one fewer)",
            args.drivers
        );
    }
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.heartbeat * 3.0 > args.worker_timeout {
        bail!(
            "--heartbeat {} s with --worker-timeout {} s: a worker would count as dead between two heartbeats; give a worker timeout of at least three heartbeats",
            args.heartbeat,
            args.worker_timeout
        );
    }
    let dir = &args.dir.dir;
    if let Ok(existing) = ClusterFile::read(dir)
        && existing.drivers.iter().chain(&existing.workers).any(|n| alive(n.pid))
    {
        bail!(
            "a cluster is already running from {} (stop it with `ringleader cluster down --dir {}`)",
            dir.display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Old driver directories belong to the previous group: a new group starts empty.
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("driver-") {
            std::fs::remove_dir_all(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    let tls = super::nodes::SecurityArgs {
        token_file: None,
        tls_cert: absolute(args.security.tls_cert.as_deref())?,
        tls_key: absolute(args.security.tls_key.as_deref())?,
        tls_ca: absolute(args.security.tls_ca.as_deref())?,
    }
    .tls()?;
    let mut file = ClusterFile {
        drivers: Vec::new(),
        workers: Vec::new(),
        tls_ca: tls.as_ref().map(|t| t.ca.clone()),
    };
    let mut tls_args = Vec::new();
    if let Some(t) = &tls {
        ringleader_core::security::tls::trust(&t.ca)?;
        for (flag, path) in [("--tls-cert", &t.cert), ("--tls-key", &t.key), ("--tls-ca", &t.ca)] {
            tls_args.extend([flag.to_string(), path.display().to_string()]);
        }
    }
    let token = write_token(dir, args.security.token_file.as_deref())?;
    ringleader_core::security::auth::set_token(Some(ringleader_core::security::auth::read_token_file(&token)?));
    let ports = free_ports(args.drivers)?;
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let mut starting = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name = format!("driver-{}", i + 1);
        let mut driver_args = vec![
            "driver".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--id".into(),
            (i + 1).to_string(),
            "--snapshot-every".into(),
            args.snapshot_every.to_string(),
            "--task-timeout".into(),
            args.task_timeout.to_string(),
            "--speculation-multiplier".into(),
            args.speculation_multiplier.to_string(),
            "--worker-timeout".into(),
            args.worker_timeout.to_string(),
            "--placement".into(),
            clap::ValueEnum::to_possible_value(&args.placement)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            "--token-file".into(),
            token.display().to_string(),
            "--http".into(),
            "127.0.0.1:0".into(),
        ];
        driver_args.extend(tls_args.iter().cloned());
        if args.drivers > 1 {
            driver_args.extend(["--peers".to_string(), peers.join(",")]);
        }
        let (pid, address_file) = spawn(dir, &name, &driver_args)?;
        starting.push((name, pid, address_file));
    }
    for (name, pid, address_file) in starting {
        let address = wait_for_address(&address_file, pid, &name, dir)?;
        file.drivers.push(NodeProcess {
            address,
            pid,
            data_dir: dir.join(&name),
        });
        write_file(dir, &file)?;
    }
    let masters = file.masters();
    let worker_memory = args
        .memory
        .unwrap_or_else(|| (ringleader::config::machine_ram() / 2 / u64::from(args.workers.max(1))).min(2 << 30));
    for i in 1..=args.workers {
        let name = format!("worker-{i}");
        let mut worker_args = vec![
            "worker".into(),
            "--master".into(),
            masters.clone(),
            "--slots".into(),
            args.slots.to_string(),
            "--heartbeat".into(),
            args.heartbeat.to_string(),
            "--memory".into(),
            worker_memory.to_string(),
            "--token-file".into(),
            token.display().to_string(),
            "--http".into(),
            "127.0.0.1:0".into(),
            // The cluster's directory holds the token, the drivers' logs and every worker's
            // data: no executor reaches it but for its own job's places.
            "--private".into(),
            dir.display().to_string(),
        ];
        if args.no_sandbox {
            worker_args.push("--no-sandbox".into());
        }
        worker_args.extend(tls_args.iter().cloned());
        let (pid, address_file) = spawn(dir, &name, &worker_args)?;
        let worker_address = wait_for_address(&address_file, pid, &name, dir)?;
        file.workers.push(NodeProcess {
            address: worker_address,
            pid,
            data_dir: dir.join(&name),
        });
        write_file(dir, &file)?;
    }
    wait_registered(&file, args.workers as usize)?;
    println!(
        "cluster up: {} driver{} at {masters}, {} workers with {} slots each; logs and data in {}",
        args.drivers,
        if args.drivers == 1 { "" } else { "s" },
        args.workers,
        args.slots,
        dir.display()
    );
    println!("export RINGLEADER_MASTER={masters}");
    println!("export RINGLEADER_TOKEN_FILE={}", token.display());
    if let Some(t) = &tls {
        println!("export {}={}", ringleader_core::security::tls::CA_ENV, t.ca.display());
    }
    for (i, driver) in file.drivers.iter().enumerate() {
        let at = driver.data_dir.join(super::nodes::HTTP_ADDRESS_FILE);
        if let Ok(http) = std::fs::read_to_string(&at) {
            let token = ringleader_core::security::auth::read_token_file(&token)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            println!("web: {scheme}://{}/?token={token}  (driver {})", http.trim(), i + 1);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `path` made absolute (nodes may run elsewhere than here).
fn absolute(path: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    path.map(|p| std::fs::canonicalize(p).with_context(|| format!("{}", p.display())))
        .transpose()
}

/// Writes the cluster's token to `dir/token` (readable by this user only): the one in
/// `given`, else a new random one. Returns its path.
fn write_token(dir: &Path, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let token = match given {
        Some(path) => ringleader_core::security::auth::read_token_file(path)?,
        None => ringleader_core::security::auth::generate().context("generating a cluster token")?,
    };
    let path = token_path(dir);
    let temp = dir.join("token.tmp");
    let _ = std::fs::remove_file(&temp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    std::io::Write::write_all(&mut out, format!("{token}\n").as_bytes())?;
    std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One driver's own status (not redirected: every driver answers for itself).
pub(super) async fn fetch_status(master: &str) -> anyhow::Result<ringleader_core::proto::ClusterStatusReply> {
    let channel = ringleader_core::net::driver_group::driver_channel(master)?;
    let mut driver =
        ringleader_core::proto::driver_client::DriverClient::new(ringleader_core::security::auth::authorized(channel));
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        driver.cluster_status(ringleader_core::proto::ClusterStatusRequest {}),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{master}: no answer within 2 s"))??;
    Ok(reply.into_inner())
}

/// Every driver's status, in the cluster file's order (`None`: it does not answer).
fn fetch_all(file: &ClusterFile) -> anyhow::Result<Vec<Option<ringleader_core::proto::ClusterStatusReply>>> {
    block_on(async {
        let all = file
            .drivers
            .iter()
            .map(|d| async move { fetch_status(&d.address).await.ok() });
        futures::future::join_all(all).await
    })
}

/// The leader's reply among `replies`, else any reply.
fn leader_reply(
    replies: &[Option<ringleader_core::proto::ClusterStatusReply>],
) -> Option<&ringleader_core::proto::ClusterStatusReply> {
    let is_leader =
        |r: &&ringleader_core::proto::ClusterStatusReply| r.raft.as_ref().is_some_and(|s| s.role == "leader");
    replies
        .iter()
        .flatten()
        .find(is_leader)
        .or_else(|| replies.iter().flatten().next())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

fn wait_registered(file: &ClusterFile, workers: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let replies = fetch_all(file)?;
        if let Some(leader) = leader_reply(&replies)
            && leader.raft.as_ref().is_some_and(|r| r.role == "leader")
            && leader.workers.iter().filter(|w| w.alive).count() >= workers
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the drivers at {} did not elect a leader with {workers} registered workers within 20 s; see the logs in each node's directory",
                file.masters()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let from_env = || std::env::var("RINGLEADER_MASTER").ok().filter(|m| !m.is_empty());
    let file = match args.master.clone() {
        Some(master) => ClusterFile::of_drivers(&master)?,
        None => match (ClusterFile::read(&args.dir.dir), from_env()) {
            (Err(_), Some(master)) => ClusterFile::of_drivers(&master)?,
            (file, _) => file?,
        },
    };
    use_cluster_token(&args.dir.dir)?;
    let replies = fetch_all(&file)?;
    let leader = leader_reply(&replies);
    let leader_last = leader
        .and_then(|r| r.raft.as_ref())
        .filter(|r| r.role == "leader")
        .map(|r| r.last_log_index);
    let driver_rows: Vec<serde_json::Value> = file
        .drivers
        .iter()
        .zip(&replies)
        .enumerate()
        .map(|(i, (d, reply))| {
            let raft = reply.as_ref().and_then(|r| r.raft.clone());
            match raft {
                Some(r) => serde_json::json!({
                    "id": r.node_id, "address": d.address, "pid": (d.pid > 0).then_some(d.pid), "alive": true,
                    "role": r.role, "term": r.term, "leader": r.leader_id,
                    "last_log_index": r.last_log_index, "commit_index": r.commit_index,
                    "applied_index": r.applied_index, "snapshot_index": r.snapshot_index,
                    "purged_index": r.purged_index,
                    "lag": leader_last.map(|l| l.saturating_sub(r.last_log_index)),
                }),
                None => serde_json::json!({
                    "id": i + 1, "address": d.address, "pid": (d.pid > 0).then_some(d.pid), "alive": false, "role": "down",
                }),
            }
        })
        .collect();
    if args.json {
        let workers: Vec<serde_json::Value> = leader
            .iter()
            .flat_map(|r| &r.workers)
            .map(|w| {
                serde_json::json!({
                    "id": w.worker_id, "address": w.address, "pid": w.pid, "slots": w.slots,
                    "alive": w.alive, "ring_share": w.ring_share, "running_tasks": w.running_tasks,
                })
            })
            .collect();
        let jobs: Vec<serde_json::Value> = leader
            .iter()
            .flat_map(|r| &r.jobs)
            .map(|j| serde_json::json!({"id": j.job_id, "name": j.name, "state": j.state, "tasks_done": j.tasks_done, "tasks_total": j.tasks_total}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"drivers": driver_rows, "workers": workers, "jobs": jobs})
            )?
        );
        return Ok(if leader.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("drivers");
    println!(
        "  {:<3} {:<22} {:>8} {:<10} {:>5} {:>6} {:>9} {:>9} {:>5}",
        "id", "address", "pid", "role", "term", "leader", "last log", "committed", "lag"
    );
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for row in &driver_rows {
        println!(
            "  {:<3} {:<22} {:>8} {:<10} {:>5} {:>6} {:>9} {:>9} {:>5}",
            text(&row["id"]),
            text(&row["address"]),
            text(&row["pid"]),
            text(&row["role"]),
            text(&row["term"]),
            text(&row["leader"]),
            text(&row["last_log_index"]),
            text(&row["commit_index"]),
            text(&row["lag"]),
        );
    }
    let Some(reply) = leader else {
        println!("no driver answers (addresses: {})", file.masters());
        return Ok(ExitCode::FAILURE);
    };
    println!("workers");
    println!(
        "  {:<10} {:<22} {:>8} {:>5} {:<6} {:>6} {:>7}",
        "id", "address", "pid", "slots", "alive", "ring", "running"
    );
    for w in &reply.workers {
        println!(
            "  {:<10} {:<22} {:>8} {:>5} {:<6} {:>5.1}% {:>7}",
            w.worker_id,
            w.address,
            w.pid,
            w.slots,
            if w.alive { "yes" } else { "no" },
            w.ring_share * 100.0,
            w.running_tasks
        );
    }
    if !reply.jobs.is_empty() {
        println!("jobs (latest 10; `ringleader jobs` lists all)");
        for j in reply.jobs.iter().rev().take(10).rev() {
            println!(
                "  {:<12} {:<20} {:<10} {}/{} tasks",
                j.job_id, j.name, j.state, j.tasks_done, j.tasks_total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops the processes recorded in `dir`: workers first, then drivers; SIGTERM, then SIGKILL
/// after 5 s. Only pids whose command line is a `ringleader` node of this directory.
pub fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let file = ClusterFile::read(dir)?;
    let mut stopped = 0;
    for node in file.workers.iter().chain(&file.drivers) {
        if !alive(node.pid) || !is_our_node(node) {
            continue;
        }
        signal(node.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(node.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(node.pid) {
            signal(node.pid, libc::SIGKILL);
        }
        stopped += 1;
    }
    let _ = std::fs::remove_file(dir.join("cluster.json"));
    println!("cluster down: stopped {stopped} processes");
    Ok(ExitCode::SUCCESS)
}

fn is_our_node(node: &NodeProcess) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid)).unwrap_or_default();
    let needle = node.data_dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len().max(1)).any(|w| w == needle)
}

pub(super) fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid this cluster recorded (or the chaos nemesis started).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
