//! `ringleader chaos --hosts`: the same history on separate hosts. A client host, 3 driver
//! hosts and 3 worker hosts (network namespaces on a bridge, each with its own `/tmp`, made
//! by `ringleader-lan`); the clients run on the client host (this executable again, with
//! `--attach`), the nemesis here, where it can also take a host's link down and bring it
//! back. The two meet in the run's directory, which every host sees:
//!
//! - `run/health`: the clients' process writes, every half second, whether every partition
//!   is on R live workers (the nemesis waits on it after taking a worker away);
//! - `run/clients-done`: the clients' operations are over (the nemesis stops and heals);
//! - `run/healed`: the faults are healed (the clients' process waits for R replicas and
//!   reads every name a last time, then writes `run/history.jsonl` and `run/recovered`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use ringleader_lan::{ClusterSpec, LanCluster};

use super::nemesis::{Fault, Target, command_line, empty_data_directory, kill, wait_gone};
use super::{ChaosArgs, Settle};

/// How long the clients' process waits for the faults to be healed once its operations end.
const HEAL_LIMIT: Duration = Duration::from_secs(300);

/// The drivers and workers on their hosts, as the nemesis knows them.
struct HostNodes {
    cluster: LanCluster,
    /// The executable the nodes run (restarted nodes too).
    exe: PathBuf,
    drivers: usize,
    workers: usize,
}

impl HostNodes {
    /// The host of node `n` (drivers first, then workers).
    fn host(&self, n: usize) -> usize {
        if n < self.drivers {
            1 + n
        } else {
            self.cluster.worker_host(n - self.drivers)
        }
    }

    /// Kills node `n`, waits `hold`, optionally empties its data directory, and starts it
    /// again on its host with its old command line.
    async fn restart(&mut self, n: usize, hold: Duration, wipe: Option<&str>) -> anyhow::Result<()> {
        let pid = self.cluster.pids[n];
        let args: Vec<OsString> = command_line(pid)?;
        kill(pid, libc::SIGKILL);
        wait_gone(pid).await?;
        tokio::time::sleep(hold).await;
        let host = self.host(n);
        if let Some(dir) = wipe {
            empty_data_directory(&self.cluster.lan.hosts[host].outside(dir))?;
        }
        let mut command = self.cluster.lan.command(host, &self.exe);
        command.args(args);
        // Into the log `LanCluster` started it with (the leader is found from those logs).
        let log = if n < self.drivers {
            format!("driver-{}.log", n + 1)
        } else {
            format!("worker-{}.log", n - self.drivers)
        };
        self.cluster.pids[n] = self.cluster.lan.spawn_appending(command, &log)?;
        Ok(())
    }
}

impl Target for HostNodes {
    fn sizes(&self) -> (usize, usize) {
        (self.drivers, self.workers)
    }

    fn cuts(&self) -> bool {
        true
    }

    async fn inject(&mut self, fault: Fault, hold: Duration) -> anyhow::Result<String> {
        let pause = |pid: u32| async move {
            kill(pid, libc::SIGSTOP);
            tokio::time::sleep(hold).await;
            kill(pid, libc::SIGCONT);
        };
        Ok(match fault {
            Fault::KillLeader => {
                let leader = self.cluster.leader();
                self.restart(leader - 1, hold, None).await?;
                format!("killed leader driver-{leader}, restarted it")
            }
            Fault::KillWorker { worker, wiped } => {
                let n = self.drivers + worker;
                self.restart(n, hold, wiped.then_some("worker")).await?;
                format!(
                    "killed worker-{}, restarted it{}",
                    worker + 1,
                    if wiped { " with an emptied data directory" } else { "" }
                )
            }
            Fault::PauseDriver { driver } => {
                pause(self.cluster.pids[driver]).await;
                format!("paused driver-{} for {:.1} s", driver + 1, hold.as_secs_f64())
            }
            Fault::PauseWorker { worker } => {
                pause(self.cluster.pids[self.drivers + worker]).await;
                format!("paused worker-{} for {:.1} s", worker + 1, hold.as_secs_f64())
            }
            Fault::CutLink { node } => {
                let host = self.host(node);
                self.cluster.lan.cut(host)?;
                tokio::time::sleep(hold).await;
                self.cluster.lan.heal(host)?;
                let name = if node < self.drivers {
                    format!("driver-{}", node + 1)
                } else {
                    format!("worker-{}", node - self.drivers + 1)
                };
                format!("cut {name}'s link for {:.1} s", hold.as_secs_f64())
            }
        })
    }
}

/// Whether the health file says every partition was on R live workers at some moment after
/// `since`.
pub fn healthy_since(path: &Path, since: SystemTime) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut words = text.split_whitespace();
    let (Some(state), Some(at)) = (words.next(), words.next().and_then(|t| t.parse::<u128>().ok())) else {
        return false;
    };
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    state == "ok" && at > since
}

/// Milliseconds since the epoch.
fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The nemesis's side of `--hosts`: makes the hosts and the cluster, starts the clients'
/// process on the client host, injects faults until it is done, and checks what it recorded.
pub async fn run_on_hosts(args: &ChaosArgs, dir: &Path, examples: &Path) -> anyhow::Result<bool> {
    // Its own copy of this executable: the build may be replaced during a long run.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let exe = bin.join("ringleader");
    std::fs::copy(std::env::current_exe()?, &exe)
        .with_context(|| format!("copying this executable to {}", exe.display()))?;
    let spec = ClusterSpec {
        ringleader: &exe,
        drivers: 3,
        workers: 3,
        slots: 2,
        driver_flags: &[],
        visible: &[bin.clone(), examples.to_path_buf(), dir.to_path_buf()],
    };
    let cluster = LanCluster::up(&spec).context("making the hosts (this needs root)")?;
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    let mut clients = cluster.client(&exe);
    clients
        .arg("chaos")
        .args(["--attach", &cluster.master])
        .args(["--seed", &args.seed.to_string(), "--ops", &args.ops.to_string()])
        .args([
            "--clients",
            &args.clients.to_string(),
            "--names",
            &args.names.to_string(),
        ])
        .args(["--recovery-seconds", &args.recovery_seconds.to_string()])
        .arg("--examples")
        .arg(examples)
        .arg("--dir")
        .arg(&run);
    let clients_pid = cluster.lan.spawn(clients, "clients.log")?;
    let mut nodes = HostNodes {
        cluster,
        exe,
        drivers: 3,
        workers: 3,
    };
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let finished = run.join("clients-done");
        tokio::spawn(async move {
            while !finished.exists() && crate::cluster::alive(clients_pid) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let faults = if args.no_faults {
        Vec::new()
    } else {
        let every = Duration::from_secs_f64(args.fault_every.max(0.1));
        let health = run.join("health");
        super::nemesis(
            &mut nodes,
            super::fault_rng(args),
            every,
            Settle::HealthFile(&health),
            &done,
        )
        .await?
    };
    watcher.await?;
    println!("{} faults: {}", faults.len(), super::summarize(&faults));
    for pid in &nodes.cluster.pids {
        kill(*pid, libc::SIGCONT);
    }
    std::fs::write(run.join("healed"), "")?;
    let deadline = Instant::now() + Duration::from_secs(args.recovery_seconds) + HEAL_LIMIT;
    while crate::cluster::alive(clients_pid) {
        if Instant::now() > deadline {
            bail!(
                "the clients' process did not end; its log:\n{}",
                nodes.cluster.lan.log("clients.log")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = run.join("history.jsonl");
    if !history.exists() {
        bail!(
            "the clients' process ended without a history; its log:\n{}",
            nodes.cluster.lan.log("clients.log")
        );
    }
    let records = super::read_history(&history)?;
    let recovered = match std::fs::read_to_string(run.join("recovered")) {
        Ok(text) => match text.trim().strip_prefix("ok ") {
            Some(seconds) => Ok(seconds.parse().unwrap_or(0.0)),
            None => Err(text.trim().to_string()),
        },
        Err(e) => Err(format!("no recovery report: {e}")),
    };
    Ok(super::conclude(&records, &history, &recovered, args))
}

/// The clients' side of `--hosts` (on the client host): runs the operations, keeps the
/// health file, and after the faults are healed reads every name a last time.
pub async fn run_attached(args: &ChaosArgs, masters: &str, dir: &Path, examples: &Path) -> anyhow::Result<()> {
    let token = std::env::var_os(ringleader_core::security::auth::TOKEN_FILE_ENV)
        .map(PathBuf::from)
        .context("the clients' process needs RINGLEADER_TOKEN_FILE")?;
    let shared = super::workload(masters, &token, dir, examples)?;
    let health = {
        let shared = shared.clone();
        let path = dir.join("health");
        tokio::spawn(async move {
            loop {
                let state = match super::wait_replicated(&shared.group, Duration::ZERO).await {
                    Ok(()) => "ok",
                    Err(_) => "short",
                };
                let _ = crate::cluster_dir::write_whole(&path, format!("{state} {}\n", now_millis()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    super::run_clients(&shared, args).await?;
    std::fs::write(dir.join("clients-done"), "")?;
    let healed = dir.join("healed");
    let deadline = Instant::now() + HEAL_LIMIT;
    while !healed.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    health.abort();
    let recovered = super::final_phase(&shared, args).await?;
    let records = shared.history.records();
    super::write_history(&dir.join("history.jsonl"), &records)?;
    let report = match recovered {
        Ok(seconds) => format!("ok {seconds:.1}\n"),
        Err(short) => format!("short: {short}\n"),
    };
    crate::cluster_dir::write_whole(&dir.join("recovered"), report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_file_counts_only_when_healthy_after_the_fault() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("health");
        let fault = SystemTime::now();
        assert!(!healthy_since(&path, fault), "no file yet");
        let at = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).expect("epoch").as_millis();
        let before = at(fault - Duration::from_secs(1));
        let after = at(fault + Duration::from_secs(1));
        std::fs::write(&path, format!("ok {before}\n")).expect("write");
        assert!(!healthy_since(&path, fault), "healthy only before the fault");
        std::fs::write(&path, format!("short {after}\n")).expect("write");
        assert!(!healthy_since(&path, fault), "short after the fault");
        std::fs::write(&path, format!("ok {after}\n")).expect("write");
        assert!(healthy_since(&path, fault));
        std::fs::write(&path, "garbage").expect("write");
        assert!(!healthy_since(&path, fault));
    }
}
