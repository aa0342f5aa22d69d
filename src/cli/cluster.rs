//! `ringleader cluster up|status|down`: a laptop cluster in one command. `up` starts real
//! driver and worker processes in the background, waits until every worker registered,
//! and records their addresses and pids in `DIR/cluster.json`; `status` asks the driver;
//! `down` stops exactly the processes recorded there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

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
    /// Driver processes (1 until the Raft-replicated driver group lands).
    #[arg(long, default_value_t = 1)]
    pub drivers: u32,
    /// Task slots per worker.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
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
    /// The cluster directory.
    #[command(flatten)]
    pub dir: DirArgs,
}

/// The default cluster directory: `~/.ringleader/cluster`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".ringleader/cluster")
}

/// One process `up` started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Its address.
    pub address: String,
    /// Its process id.
    pub pid: u32,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// What `up` records in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    /// The drivers.
    pub drivers: Vec<Node>,
    /// The workers.
    pub workers: Vec<Node>,
}

impl ClusterFile {
    /// Reads `dir/cluster.json`.
    pub fn read(dir: &Path) -> anyhow::Result<ClusterFile> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no cluster recorded in {} (start one with `ringleader cluster up`)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a cluster file", path.display()))
    }

    /// The drivers' addresses, comma-separated (a value for `RINGLEADER_MASTER`).
    pub fn masters(&self) -> String {
        self.drivers
            .iter()
            .map(|d| d.address.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
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

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    if args.drivers != 1 {
        bail!(
            "--drivers {}: a replicated driver group is not available yet; use --drivers 1",
            args.drivers
        );
    }
    if args.workers == 0 {
        bail!("--workers must be at least 1");
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
    let mut file = ClusterFile {
        drivers: Vec::new(),
        workers: Vec::new(),
    };
    let (pid, address_file) = spawn(
        dir,
        "driver-1",
        &["driver".into(), "--listen".into(), "127.0.0.1:0".into()],
    )?;
    let address = wait_for_address(&address_file, pid, "the driver", dir)?;
    file.drivers.push(Node {
        address: address.clone(),
        pid,
        data_dir: dir.join("driver-1"),
    });
    write_file(dir, &file)?;
    for i in 1..=args.workers {
        let name = format!("worker-{i}");
        let worker_args = [
            "worker".into(),
            "--master".into(),
            address.clone(),
            "--slots".into(),
            args.slots.to_string(),
        ];
        let (pid, address_file) = spawn(dir, &name, &worker_args)?;
        let worker_address = wait_for_address(&address_file, pid, &name, dir)?;
        file.workers.push(Node {
            address: worker_address,
            pid,
            data_dir: dir.join(&name),
        });
        write_file(dir, &file)?;
    }
    wait_registered(&address, args.workers as usize)?;
    println!(
        "cluster up: driver at {address}, {} workers with {} slots each; logs and data in {}",
        args.workers,
        args.slots,
        dir.display()
    );
    println!("export RINGLEADER_MASTER={}", file.masters());
    Ok(ExitCode::SUCCESS)
}

fn write_file(dir: &Path, file: &ClusterFile) -> anyhow::Result<()> {
    let path = dir.join("cluster.json");
    let temp = dir.join("cluster.json.tmp");
    std::fs::write(&temp, serde_json::to_string_pretty(file)?)?;
    std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))
}

async fn fetch_status(master: &str) -> anyhow::Result<ringleader_core::proto::ClusterStatusReply> {
    let mut driver = crate::cluster::connect_driver(&[master.to_string()]).await?;
    Ok(driver
        .cluster_status(ringleader_core::proto::ClusterStatusRequest {})
        .await?
        .into_inner())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

fn wait_registered(master: &str, workers: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Ok(s)) = block_on(fetch_status(master))
            && s.workers.iter().filter(|w| w.alive).count() >= workers
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not every worker registered with the driver at {master} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let file = ClusterFile::read(&args.dir.dir)?;
    let driver = file.drivers.first().context("the cluster file lists no driver")?;
    let reply = block_on(fetch_status(&driver.address))?;
    let (reachable, reply) = match reply {
        Ok(r) => (true, Some(r)),
        Err(_) => (false, None),
    };
    if args.json {
        let workers: Vec<serde_json::Value> = reply
            .iter()
            .flat_map(|r| &r.workers)
            .map(|w| {
                serde_json::json!({
                    "id": w.worker_id, "address": w.address, "pid": w.pid, "slots": w.slots,
                    "alive": w.alive, "ring_share": w.ring_share, "running_tasks": w.running_tasks,
                })
            })
            .collect();
        let drivers: Vec<serde_json::Value> = file
            .drivers
            .iter()
            .enumerate()
            .map(|(i, d)| {
                serde_json::json!({
                    "id": i + 1, "address": d.address, "pid": d.pid, "alive": alive(d.pid) && reachable,
                    "role": "leader", "term": 0,
                })
            })
            .collect();
        let jobs: Vec<serde_json::Value> = reply
            .iter()
            .flat_map(|r| &r.jobs)
            .map(|j| serde_json::json!({"id": j.job_id, "name": j.name, "state": j.state, "tasks_done": j.tasks_done, "tasks_total": j.tasks_total}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"drivers": drivers, "workers": workers, "jobs": jobs}))?
        );
        return Ok(if reachable {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("drivers");
    println!(
        "  {:<4} {:<22} {:>8} {:<8} {:>4}",
        "id", "address", "pid", "role", "term"
    );
    for (i, d) in file.drivers.iter().enumerate() {
        let role = if reachable { "leader" } else { "down" };
        println!("  {:<4} {:<22} {:>8} {:<8} {:>4}", i + 1, d.address, d.pid, role, 0);
    }
    let Some(reply) = reply else {
        println!("the driver at {} does not answer", driver.address);
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
        println!("jobs");
        for j in &reply.jobs {
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

fn is_our_node(node: &Node) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid)).unwrap_or_default();
    let needle = node.data_dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len().max(1)).any(|w| w == needle)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid this cluster recorded and verified by its command line.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// The driver address to use: the flag, else `RINGLEADER_MASTER`, else the cluster in `dir`.
pub fn resolve_master(flag: Option<String>, dir: &Path) -> anyhow::Result<String> {
    match flag.or_else(|| std::env::var("RINGLEADER_MASTER").ok().filter(|m| !m.is_empty())) {
        Some(m) => Ok(m),
        None => Ok(ClusterFile::read(dir)?.masters()),
    }
}
