//! A LAN of hosts on one machine: each host is a Linux network namespace with one veth link
//! to a bridge that lives in a namespace of its own, an address in the test-only subnet
//! 198.18.0.0/24 (RFC 2544's benchmarking range), and for its processes a mount namespace in
//! which `/tmp` is the host's own directory and `HOME` lies inside it. Hosts share nothing
//! but the network and the directories made visible (the installed binaries). Links can be
//! capped with a `tc` token bucket (a LAN or Wi-Fi) and taken down (a partition). Everything
//! made is removed on drop, also when a test fails: the processes started (by pid), then
//! the namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::LanError;

/// The first three octets of every host's address.
pub const SUBNET: &str = "198.18.0";

/// A host of a [`Lan`].
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address.
    pub ip: String,
    /// Its directory, seen as `/tmp` by its processes.
    pub root: PathBuf,
    /// The bridge side of its link.
    veth: String,
}

impl Host {
    /// A path inside the host, as seen from outside: `/tmp/x` on the host is
    /// `host.outside("x")`.
    pub fn outside(&self, inside_tmp: &str) -> PathBuf {
        self.root.join(inside_tmp)
    }
}

/// Bytes a host's link has carried since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes the host sent.
    pub sent: u64,
    /// Bytes the host received.
    pub received: u64,
}

/// Hosts on one bridge.
pub struct Lan {
    bridge: String,
    /// The hosts, in the order they were asked for.
    pub hosts: Vec<Host>,
    /// Directories under `/tmp` that every host sees at the same path.
    visible: Vec<String>,
    children: Mutex<Vec<Child>>,
    /// Holds the hosts' directories and the logs; removed on drop.
    dir: tempfile::TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(program: &str, args: &[&str]) -> Result<String, LanError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(LanError::io(format!("running {program}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LanError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<(), LanError> {
    run("ip", args).map(drop)
}

/// The paths under `/tmp` among `paths`, relative to it, without those inside another.
fn under_tmp(paths: &[PathBuf]) -> Vec<String> {
    let mut relative: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("/tmp").ok())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    relative.sort();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in relative {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept.iter().map(|p| p.display().to_string()).collect()
}

impl Lan {
    /// `n` hosts on one bridge, or why they cannot be made here. Every host sees the
    /// directories in `visible` at their own paths (those outside `/tmp` are visible anyway).
    pub fn new(n: usize, visible: &[PathBuf]) -> Result<Lan, LanError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LanError::Unavailable("network namespaces need root".into()));
        }
        for (tool, package) in [("ip", "iproute2"), ("unshare", "util-linux"), ("tc", "iproute2")] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(LanError::Unavailable(format!("{tool} ({package}) is missing")));
            }
        }
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("rl{}x{id}", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix("ringleader-lan-")
            .tempdir()
            .map_err(LanError::io("making the hosts' directory"))?;
        let mut lan = Lan {
            bridge: format!("{prefix}-br"),
            hosts: Vec::new(),
            visible: under_tmp(visible),
            children: Default::default(),
            dir,
        };
        // The first namespace tells whether namespaces can be made at all.
        ip(&["netns", "add", &lan.bridge]).map_err(|e| LanError::Unavailable(e.to_string()))?;
        ip(&["-n", &lan.bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan.bridge, "link", "set", "br0", "up"])?;
        for h in 0..n {
            lan.add_host(h, &prefix)?;
        }
        Ok(lan)
    }

    fn add_host(&mut self, h: usize, prefix: &str) -> Result<(), LanError> {
        let netns = format!("{prefix}-h{h}");
        let veth = format!("{prefix}v{h}");
        let address = format!("{SUBNET}.{}", h + 1);
        ip(&["netns", "add", &netns])?;
        let root = self.dir.path().join(format!("host{h}"));
        std::fs::create_dir_all(root.join("home")).map_err(LanError::io("making a host's directory"))?;
        self.hosts.push(Host {
            netns: netns.clone(),
            ip: address.clone(),
            root,
            veth: veth.clone(),
        });
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        ip(&["link", "set", &veth, "netns", &self.bridge])?;
        ip(&["-n", &self.bridge, "link", "set", &veth, "master", "br0", "up"])?;
        ip(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])
    }

    /// Caps every host's link at `rate` (a `tc` rate, e.g. `1gbit`, `100mbit`) in both
    /// directions with a token bucket, as a switched LAN or Wi-Fi link would.
    pub fn cap(&self, rate: &str) -> Result<(), LanError> {
        let tbf = ["root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms"];
        for h in &self.hosts {
            // Out of the host: its eth0. Into the host: the bridge's side of its link.
            for (netns, dev) in [(&h.netns, "eth0"), (&self.bridge, h.veth.as_str())] {
                let mut args = vec!["-n", netns.as_str(), "qdisc", "replace", "dev", dev];
                args.extend(tbf);
                run("tc", &args)?;
            }
        }
        Ok(())
    }

    /// Caps every host's link at `rate` and delays its packets by `delay` (a `tc` time,
    /// e.g. `2ms`) in both directions with `netem`, as Wi-Fi would. Kernels without the
    /// `netem` queueing discipline refuse it: then [`LanError::Unavailable`] says so and the
    /// links are left as they were.
    pub fn cap_with_delay(&self, rate: &str, delay: &str) -> Result<(), LanError> {
        let netem = ["root", "netem", "delay", delay, "rate", rate, "limit", "10000"];
        for (i, h) in self.hosts.iter().enumerate() {
            for (netns, dev) in [(&h.netns, "eth0"), (&self.bridge, h.veth.as_str())] {
                let mut args = vec!["-n", netns.as_str(), "qdisc", "replace", "dev", dev];
                args.extend(netem);
                match run("tc", &args) {
                    Ok(_) => {}
                    Err(LanError::Command { stderr, .. }) if i == 0 && netns == &h.netns => {
                        return Err(LanError::Unavailable(format!("no netem in this kernel ({stderr})")));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Takes host `h`'s link down: a partition, not a crash (its processes keep running).
    pub fn cut(&self, h: usize) -> Result<(), LanError> {
        ip(&["-n", &self.bridge, "link", "set", &self.hosts[h].veth, "down"])
    }

    /// Brings host `h`'s link back.
    pub fn heal(&self, h: usize) -> Result<(), LanError> {
        ip(&["-n", &self.bridge, "link", "set", &self.hosts[h].veth, "up"])
    }

    /// The bytes host `h` has sent and received over its link.
    pub fn traffic(&self, h: usize) -> Result<Traffic, LanError> {
        // The bridge's side of the link receives what the host sends.
        let counter = |name: &str| -> Result<u64, LanError> {
            let path = format!("/sys/class/net/{}/statistics/{name}", self.hosts[h].veth);
            let text = run("ip", &["netns", "exec", &self.bridge, "cat", &path])?;
            text.trim().parse().map_err(|_| LanError::Command {
                command: format!("cat {path}"),
                stderr: format!("not a number: {text:?}"),
            })
        };
        Ok(Traffic {
            sent: counter("rx_bytes")?,
            received: counter("tx_bytes")?,
        })
    }

    /// A command that runs `program` on host `h`: in its network namespace, in a mount
    /// namespace of its own where `/tmp` is the host's directory (with the visible
    /// directories bound in at their paths) and `HOME` is `/tmp/home`. Ringleader's
    /// cluster variables of this process are not passed on.
    pub fn command(&self, h: usize, program: &Path) -> Command {
        let host = &self.hosts[h];
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &host.netns])
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(concat!(
                r#"root="$1"; shift; "#,
                r#"while [ "$1" != -- ]; do mkdir -p "$root/$1" && mount --bind "/tmp/$1" "$root/$1" || exit 1; shift; done; shift; "#,
                r#"mount --rbind "$root" /tmp && cd /tmp && HOME=/tmp/home exec "$@""#
            ))
            .arg("sh")
            .arg(&host.root)
            .args(&self.visible)
            .arg("--")
            .arg(program)
            .env_remove("RINGLEADER_MASTER")
            .env_remove("RINGLEADER_TOKEN_FILE")
            .env_remove("RINGLEADER_TOKEN")
            .env("RINGLEADER_PROGRESS", "0");
        command
    }

    /// Starts `command` (from [`Lan::command`]) in the background, its output into the
    /// file `log` in the LAN's directory; it is ended when the LAN is dropped. Returns its pid.
    pub fn spawn(&self, command: Command, log: &str) -> Result<u32, LanError> {
        let file = std::fs::File::create(self.dir.path().join(log)).map_err(LanError::io("making a log"))?;
        self.spawn_into(command, file)
    }

    /// [`Lan::spawn`], its output appended to `log` (a process started again, after the
    /// lines of the one before it).
    pub fn spawn_appending(&self, command: Command, log: &str) -> Result<u32, LanError> {
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(log))
            .map_err(LanError::io("opening a log"))?;
        self.spawn_into(command, file)
    }

    fn spawn_into(&self, mut command: Command, file: std::fs::File) -> Result<u32, LanError> {
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(LanError::io("making a log"))?)
            .stderr(file)
            .spawn()
            .map_err(LanError::io("starting a process on a host"))?;
        let pid = child.id();
        self.children.lock().unwrap_or_else(|e| e.into_inner()).push(child);
        Ok(pid)
    }

    /// Runs `command` (from [`Lan::command`]) to its end, at most `limit` (then it is
    /// killed); returns whether it succeeded and the peak resident memory of `program` in
    /// it, in bytes. The peak is the kernel's high-water mark of the program's own address
    /// space (`VmHWM`), read while it runs: `wait4`'s `ru_maxrss` would also count the
    /// caller, whose memory a spawned child shares until exec.
    pub fn run_measured(&self, mut command: Command, program: &Path, limit: Duration) -> Result<(bool, u64), LanError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(LanError::io("starting a process on a host"))?;
        let proc = PathBuf::from(format!("/proc/{}", child.id()));
        let deadline = Instant::now() + limit;
        let mut peak = 0u64;
        loop {
            // Before the `ip`/`unshare`/`sh` chain has exec'd the program, the pid is another.
            let running_program =
                std::fs::read_link(proc.join("exe")).is_ok_and(|exe| exe.file_name() == program.file_name());
            if running_program && let Ok(status) = std::fs::read_to_string(proc.join("status")) {
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                peak = peak.max(hwm.unwrap_or(0) * 1024);
            }
            if let Some(status) = child.try_wait().map_err(LanError::io("waiting for a process"))? {
                return Ok((status.success(), peak));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LanError::Timeout {
                    what: format!("{} to finish", program.display()),
                    limit,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The text of a log written by [`Lan::spawn`] (empty if there is none yet).
    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
    }

    /// Waits until `check` holds, at most `limit`; past it, a [`LanError::Timeout`] naming `what`.
    pub fn wait_for(&self, limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<(), LanError> {
        let deadline = Instant::now() + limit;
        while !check() {
            if Instant::now() >= deadline {
                return Err(LanError::Timeout {
                    what: what.to_string(),
                    limit,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // `ip netns exec` execs its command, so each pid is the host's process itself (or
        // the sh before it execs): end exactly those.
        for mut child in self.children.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for h in &self.hosts {
            let _ = ip(&["netns", "del", &h.netns]);
        }
        let _ = ip(&["netns", "del", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_tmp_are_bound_and_nested_ones_once() {
        let paths = [
            PathBuf::from("/tmp/a/target/release"),
            PathBuf::from("/tmp/a/target/release/examples"),
            PathBuf::from("/usr/bin"),
            PathBuf::from("/tmp"),
            PathBuf::from("/tmp/bench"),
        ];
        assert_eq!(under_tmp(&paths), ["a/target/release", "bench"]);
    }
}
