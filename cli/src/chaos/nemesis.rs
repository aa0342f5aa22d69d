//! The faults: kill the driver group's leader, kill a worker (some restarted with an emptied
//! data directory), pause a driver or a worker (`SIGSTOP`: to the others it looks cut off),
//! and on separate hosts cut a host's link; each healed before the next. [`Nodes`] injects
//! them into a cluster on this host (every process it starts again is recorded in
//! `cluster.json`, so `cluster down` stops it); `super::hosts` into one on namespace hosts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::Rng;

use crate::cluster_dir::{ClusterFile, NodeProcess, write_file};

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the leader, restart it after a while.
    KillLeader,
    /// `kill -9` worker `i`, restart it after a while (`wiped`: with its data directory
    /// emptied, as if its disk were replaced).
    KillWorker {
        /// Which worker (0-based).
        worker: usize,
        /// Whether its data directory is emptied before the restart.
        wiped: bool,
    },
    /// Stop driver `i` for a while (`SIGSTOP`), then let it go on.
    PauseDriver {
        /// Which driver (0-based).
        driver: usize,
    },
    /// Stop worker `i` for a while, then let it go on.
    PauseWorker {
        /// Which worker (0-based).
        worker: usize,
    },
    /// Take a driver's (`driver`) or a worker's host link down for a while, then up again.
    CutLink {
        /// Which node: drivers first (0-based), then workers.
        node: usize,
    },
}

impl Fault {
    /// A random fault among `drivers` drivers and `workers` workers (`cuts`: links can be
    /// cut, on separate hosts).
    pub fn pick(rng: &mut impl Rng, drivers: usize, workers: usize, cuts: bool) -> Fault {
        match rng.gen_range(0..13) {
            0..=2 if drivers > 1 => Fault::KillLeader,
            3..=5 => Fault::KillWorker {
                worker: rng.gen_range(0..workers),
                wiped: rng.gen_bool(0.5),
            },
            6..=7 if drivers > 1 => Fault::PauseDriver {
                driver: rng.gen_range(0..drivers),
            },
            10..=12 if cuts => Fault::CutLink {
                node: rng.gen_range(0..drivers + workers),
            },
            _ => Fault::PauseWorker {
                worker: rng.gen_range(0..workers),
            },
        }
    }

    /// Whether it takes a worker away (its partitions need copies before the next one).
    pub fn touches_workers(self, drivers: usize) -> bool {
        match self {
            Fault::KillWorker { .. } | Fault::PauseWorker { .. } => true,
            Fault::CutLink { node } => node >= drivers,
            _ => false,
        }
    }
}

/// A cluster the nemesis can hurt.
pub trait Target {
    /// How many drivers and workers it has.
    fn sizes(&self) -> (usize, usize);
    /// Whether links can be cut (separate hosts).
    fn cuts(&self) -> bool;
    /// Injects `fault`, holds it for `hold`, and heals it; says what it did.
    fn inject(
        &mut self,
        fault: Fault,
        hold: Duration,
    ) -> impl std::future::Future<Output = anyhow::Result<String>> + Send;
}

impl Target for Nodes {
    fn sizes(&self) -> (usize, usize) {
        Nodes::sizes(self)
    }
    fn cuts(&self) -> bool {
        false
    }
    fn inject(
        &mut self,
        fault: Fault,
        hold: Duration,
    ) -> impl std::future::Future<Output = anyhow::Result<String>> + Send {
        Nodes::inject(self, fault, hold)
    }
}

/// The cluster's processes, as the nemesis knows them.
pub struct Nodes {
    dir: PathBuf,
    file: ClusterFile,
    /// A copy of this executable, to restart nodes with the binary they ran even if the
    /// build is replaced during a long run.
    exe: PathBuf,
    /// Processes started again here (reaped at the end).
    restarted: Vec<Child>,
}

impl Nodes {
    /// The processes `cluster up` recorded in `dir`.
    pub fn of(dir: &Path) -> anyhow::Result<Nodes> {
        let exe = dir.join("ringleader");
        std::fs::copy(std::env::current_exe()?, &exe)
            .with_context(|| format!("copying this executable to {}", exe.display()))?;
        Ok(Nodes {
            dir: dir.to_path_buf(),
            file: ClusterFile::read(dir)?,
            exe,
            restarted: Vec::new(),
        })
    }

    /// The drivers' addresses.
    pub fn masters(&self) -> String {
        self.file.masters()
    }

    /// How many drivers and workers there are.
    pub fn sizes(&self) -> (usize, usize) {
        (self.file.drivers.len(), self.file.workers.len())
    }

    /// Injects `fault`, holds it for `hold`, and heals it. Returns what it did, for the log.
    pub async fn inject(&mut self, fault: Fault, hold: Duration) -> anyhow::Result<String> {
        match fault {
            Fault::KillLeader => {
                let Some(leader) = self.leader().await else {
                    return Ok("no leader to kill".into());
                };
                let node = self.file.drivers[leader].clone();
                let args = command_line(node.pid)?;
                kill(node.pid, libc::SIGKILL);
                wait_gone(node.pid).await?;
                tokio::time::sleep(hold).await;
                self.file.drivers[leader].pid = self.start(&node, args, None)?;
                write_file(&self.dir, &self.file)?;
                Ok(format!("killed leader driver-{}, restarted it", leader + 1))
            }
            Fault::KillWorker { worker, wiped } => {
                let node = self.file.workers[worker].clone();
                let args = command_line(node.pid)?;
                // The worker and its executors (its process group), as a machine that dies.
                kill_group(node.pid, libc::SIGKILL);
                wait_gone(node.pid).await?;
                tokio::time::sleep(hold).await;
                if wiped {
                    empty_data_directory(&node.data_dir)?;
                }
                self.file.workers[worker].pid = self.start(&node, args, Some(&node.address))?;
                write_file(&self.dir, &self.file)?;
                Ok(format!(
                    "killed worker-{}, restarted it{}",
                    worker + 1,
                    if wiped { " with an emptied data directory" } else { "" }
                ))
            }
            Fault::PauseDriver { driver } => {
                self.pause(self.file.drivers[driver].pid, hold).await;
                Ok(format!("paused driver-{} for {:.1} s", driver + 1, hold.as_secs_f64()))
            }
            Fault::PauseWorker { worker } => {
                self.pause(self.file.workers[worker].pid, hold).await;
                Ok(format!("paused worker-{} for {:.1} s", worker + 1, hold.as_secs_f64()))
            }
            Fault::CutLink { .. } => Ok("no link to cut on one host".into()),
        }
    }

    async fn pause(&self, pid: u32, hold: Duration) {
        kill(pid, libc::SIGSTOP);
        tokio::time::sleep(hold).await;
        kill(pid, libc::SIGCONT);
    }

    /// The leader's index among the drivers, if one says it leads.
    async fn leader(&self) -> Option<usize> {
        for (i, d) in self.file.drivers.iter().enumerate() {
            if let Ok(status) = crate::cluster::fetch_status(&d.address).await
                && status.raft.as_ref().is_some_and(|r| r.role == "leader")
            {
                return Some(i);
            }
        }
        None
    }

    /// Starts `node` again with its old command line (`listen`: on its old address, so a
    /// worker keeps its id), its output appended to its log. Returns the new pid.
    fn start(&mut self, node: &NodeProcess, mut args: Vec<OsString>, listen: Option<&str>) -> anyhow::Result<u32> {
        if let Some(address) = listen
            && !args.iter().any(|a| a == "--listen")
        {
            args.extend(["--listen".into(), address.into()]);
        }
        std::fs::create_dir_all(&node.data_dir)?;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(node.data_dir.join("log"))
            .with_context(|| format!("opening {}/log", node.data_dir.display()))?;
        let child = Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("restarting the node in {}", node.data_dir.display()))?;
        let pid = child.id();
        self.restarted.push(child);
        Ok(pid)
    }

    /// Lets every paused process go on (after an interrupted pause).
    pub fn resume_all(&self) {
        for node in self.file.drivers.iter().chain(&self.file.workers) {
            kill(node.pid, libc::SIGCONT);
        }
    }

    /// Stops the cluster (`cluster down`) and reaps the processes started here.
    pub fn down(mut self) -> anyhow::Result<()> {
        self.resume_all();
        crate::cluster::down(&self.dir)?;
        for child in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }
}

/// A process's arguments (without the program), as it was started.
pub(super) fn command_line(pid: u32) -> anyhow::Result<Vec<OsString>> {
    let raw =
        std::fs::read(format!("/proc/{pid}/cmdline")).with_context(|| format!("reading pid {pid}'s command line"))?;
    let mut args: Vec<OsString> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if args.is_empty() {
        bail!("pid {pid} has no command line (it exited)");
    }
    args.remove(0);
    Ok(args)
}

/// Signals the process group `pid` leads (every node here is started as a group leader).
pub(super) fn kill_group(pid: u32, signal: i32) {
    // kill(2) of a negative pid signals its process group.
    crate::cluster::signal(pid.wrapping_neg(), signal);
}

pub(super) use crate::cluster::signal as kill;

/// Waits (up to 10 s) until `pid` has exited: a killed node holds its files and port until then.
pub(super) async fn wait_gone(pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::cluster::alive(pid) {
        if Instant::now() > deadline {
            bail!("pid {pid} is still running 10 s after SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Removes everything in a node's data directory but its log, trying again for a few
/// seconds while a dying executor may still be writing there.
pub(super) fn empty_data_directory(dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match empty_once(dir) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn empty_once(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name() == "log" {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
