//! A Ringleader cluster spread over the hosts of a [`Lan`]: a client on host 0, drivers on
//! the hosts after it, then workers, each on a host of its own, with one token file copied
//! to every host (as a user copies it to each machine).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Lan, LanError};

/// The port every driver listens on (each host has its own addresses).
const DRIVER_PORT: u16 = 7077;
/// The port every worker listens on.
const WORKER_PORT: u16 = 7100;
/// How long a worker is given to register.
const REGISTER_LIMIT: Duration = Duration::from_secs(30);

/// What to start.
pub struct ClusterSpec<'a> {
    /// The `ringleader` executable.
    pub ringleader: &'a Path,
    /// Drivers (1, 3 or 5).
    pub drivers: usize,
    /// Workers.
    pub workers: usize,
    /// Task slots per worker.
    pub slots: u32,
    /// Extra flags for every driver (e.g. `--worker-timeout 2`).
    pub driver_flags: &'a [&'a str],
    /// Directories every host must see (the binaries, the inputs), see [`Lan::new`].
    pub visible: &'a [PathBuf],
}

/// A client (host 0), drivers (hosts 1…) and workers (the hosts after them) on a LAN.
pub struct LanCluster {
    /// The hosts.
    pub lan: Lan,
    /// The drivers' addresses, for `RINGLEADER_MASTER` or `--master`.
    pub master: String,
    /// The pid of each driver's process, then each worker's, as started.
    pub pids: Vec<u32>,
    drivers: usize,
    workers: usize,
}

impl LanCluster {
    /// The client's host.
    pub const CLIENT: usize = 0;

    /// Makes the hosts and starts the drivers and workers; returns once every worker has
    /// registered.
    pub fn up(spec: &ClusterSpec) -> Result<LanCluster, LanError> {
        let lan = Lan::new(1 + spec.drivers + spec.workers, spec.visible)?;
        let token = random_token()?;
        for host in &lan.hosts {
            let path = host.outside("token");
            std::fs::write(&path, &token).map_err(LanError::io("writing the token file"))?;
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(&path, mode).map_err(LanError::io("writing the token file"))?;
        }
        let addresses: Vec<String> = (1..=spec.drivers)
            .map(|d| format!("{}:{DRIVER_PORT}", lan.hosts[d].ip))
            .collect();
        let peers: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let master = addresses.join(",");
        let mut pids = Vec::new();
        for (i, address) in addresses.iter().enumerate() {
            let mut driver = lan.command(1 + i, spec.ringleader);
            driver
                .args(["driver", "--listen", address, "--data-dir", "/tmp/driver"])
                .args(["--token-file", "/tmp/token"])
                .args(["--id", &(i + 1).to_string(), "--peers", &peers.join(",")])
                .args(spec.driver_flags);
            pids.push(lan.spawn(driver, &format!("driver-{}.log", i + 1))?);
        }
        let mut cluster = LanCluster {
            lan,
            master,
            pids,
            drivers: spec.drivers,
            workers: spec.workers,
        };
        for w in 0..spec.workers {
            let h = cluster.worker_host(w);
            let listen = format!("{}:{WORKER_PORT}", cluster.lan.hosts[h].ip);
            let mut worker = cluster.lan.command(h, spec.ringleader);
            worker
                .args(["worker", "--listen", &listen, "--master", &cluster.master])
                .args(["--data-dir", "/tmp/worker", "--token-file", "/tmp/token"])
                .args(["--slots", &spec.slots.to_string()]);
            let pid = cluster.lan.spawn(worker, &format!("worker-{w}.log"))?;
            cluster.pids.push(pid);
        }
        for w in 0..spec.workers {
            let log = format!("worker-{w}.log");
            cluster
                .lan
                .wait_for(REGISTER_LIMIT, &format!("worker {w} registering"), || {
                    cluster.lan.log(&log).contains("registered with")
                })
                .map_err(|e| cluster.explain(e, &log))?;
        }
        Ok(cluster)
    }

    /// `error`, with the tail of `log` (why a process did not come up).
    fn explain(&self, error: LanError, log: &str) -> LanError {
        let text = self.lan.log(log);
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        LanError::Command {
            command: error.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    /// The host of worker `w` (0-based).
    pub fn worker_host(&self, w: usize) -> usize {
        1 + self.drivers + w
    }

    /// The hosts of the workers.
    pub fn worker_hosts(&self) -> std::ops::Range<usize> {
        1 + self.drivers..1 + self.drivers + self.workers
    }

    /// The driver (1-based, also its host) that most recently said it leads.
    pub fn leader(&self) -> usize {
        let term_led = |d: usize| -> Option<u64> {
            self.lan
                .log(&format!("driver-{d}.log"))
                .lines()
                .filter_map(|l| l.split("leading in term ").nth(1))
                .filter_map(|t| t.trim().parse().ok())
                .max()
        };
        (1..=self.drivers).max_by_key(|&d| term_led(d)).unwrap_or(1)
    }

    /// `program` on the client host, pointed at the cluster.
    pub fn client(&self, program: &Path) -> Command {
        let mut command = self.lan.command(Self::CLIENT, program);
        command
            .env("RINGLEADER_MASTER", &self.master)
            .env("RINGLEADER_TOKEN_FILE", "/tmp/token");
        command
    }

    /// The client host's directory (its `/tmp`), seen from outside.
    pub fn client_dir(&self) -> &Path {
        &self.lan.hosts[Self::CLIENT].root
    }
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> Result<String, LanError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(LanError::io("reading /dev/urandom for a token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
