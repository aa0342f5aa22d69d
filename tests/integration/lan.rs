//! A LAN of test hosts on one machine: each host is a Linux network namespace with one veth
//! link to a bridge that lives in a namespace of its own, an address in the test-only subnet
//! 198.18.0.0/24 (RFC 2544's benchmarking range), and for its processes a mount namespace in
//! which `/tmp` is the host's own directory and `HOME` lies inside it. Hosts share nothing
//! but the network and the installed binaries. Links can be capped with a `tc` token bucket
//! (a LAN or Wi-Fi) and taken down (a partition). Everything made is removed on drop, also
//! when the test fails: the processes started (by pid), then the namespaces.
//!
//! Making namespaces needs root and iproute2; where they cannot be made, [`Lan::new`] says
//! why and the test returns early, reported by the test as skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The first three octets of every test host's address.
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
    /// A path inside the host, as the test (outside) sees it: `/tmp/x` on the host is
    /// `host.outside("x")`.
    pub fn outside(&self, inside_tmp: &str) -> PathBuf {
        self.root.join(inside_tmp)
    }
}

/// Test hosts on one bridge.
pub struct Lan {
    bridge: String,
    /// The hosts, in the order they were asked for.
    pub hosts: Vec<Host>,
    children: std::sync::Mutex<Vec<Child>>,
    /// Holds the hosts' directories and the logs; removed on drop.
    dir: tempfile::TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lan {
    /// `n` hosts on one bridge, or why they cannot be made here.
    pub fn new(n: usize) -> Result<Lan, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        if Command::new("unshare").arg("--version").output().is_err() {
            return Err("unshare (util-linux) is missing".into());
        }
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("rl{}x{id}", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix("ringleader-lan-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut lan = Lan {
            bridge: format!("{prefix}-br"),
            hosts: Vec::new(),
            children: Default::default(),
            dir,
        };
        ip(&["netns", "add", &lan.bridge])?;
        ip(&["-n", &lan.bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lan.bridge, "link", "set", "br0", "up"])?;
        for h in 0..n {
            let netns = format!("{prefix}-h{h}");
            let veth = format!("{prefix}v{h}");
            let address = format!("{SUBNET}.{}", h + 1);
            ip(&["netns", "add", &netns])?;
            let root = lan.dir.path().join(format!("host{h}"));
            std::fs::create_dir_all(root.join("home")).map_err(|e| e.to_string())?;
            lan.hosts.push(Host {
                netns: netns.clone(),
                ip: address.clone(),
                root,
                veth: veth.clone(),
            });
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])?;
            ip(&["link", "set", &veth, "netns", &lan.bridge])?;
            ip(&["-n", &lan.bridge, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// Caps every host's outgoing traffic at `rate` (a `tc` rate, e.g. `100mbit`) with a
    /// token bucket, as a LAN or Wi-Fi link would.
    pub fn cap(&self, rate: &str) -> Result<(), String> {
        for h in &self.hosts {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &h.netns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                ])
                .args(["rate", rate, "burst", "256kb", "latency", "100ms"])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("tc: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(())
    }

    /// Takes host `h`'s link down: a partition, not a crash (its processes keep running).
    pub fn cut(&self, h: usize) {
        ip(&["-n", &self.bridge, "link", "set", &self.hosts[h].veth, "down"]).expect("link down");
    }

    /// Brings host `h`'s link back.
    pub fn heal(&self, h: usize) {
        ip(&["-n", &self.bridge, "link", "set", &self.hosts[h].veth, "up"]).expect("link up");
    }

    /// A command that runs `program` on host `h`: in its network namespace, in a mount
    /// namespace of its own where `/tmp` is the host's directory and `HOME` is `/tmp/home`.
    pub fn command(&self, h: usize, program: &Path) -> Command {
        let host = &self.hosts[h];
        // The installed binaries stay visible: when they live under /tmp themselves (a
        // checkout there), their directory is bound into the host's /tmp at the same path.
        let binaries = super::helpers::target_dir();
        let under_tmp = binaries
            .strip_prefix("/tmp")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &host.netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
            ])
            .arg(concat!(
                r#"r="$1"; shift; "#,
                r#"if [ -n "$r" ]; then mkdir -p "$0/$r" && mount --bind "/tmp/$r" "$0/$r" || exit 1; fi; "#,
                r#"mount --rbind "$0" /tmp && cd /tmp && HOME=/tmp/home exec "$@""#
            ))
            .arg(&host.root)
            .arg(under_tmp)
            .arg(program)
            .env_remove("RINGLEADER_MASTER")
            .env_remove("RINGLEADER_TOKEN_FILE")
            .env_remove("RINGLEADER_TOKEN")
            .env("RINGLEADER_PROGRESS", "0");
        command
    }

    /// Starts `command` (from [`Lan::command`]) in the background, its output into `log`
    /// under the test's directory; it is ended when the LAN is dropped.
    pub fn spawn(&self, mut command: Command, log: &str) -> u32 {
        let log = self.dir.path().join(log);
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn on a test host");
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Runs `command` (from [`Lan::command`]) to its end, at most `limit` (then it is
    /// killed and the test fails); returns whether it succeeded and the peak resident
    /// memory of `program` in it, in bytes. The peak is the kernel's high-water mark of the
    /// program's own address space (`VmHWM`), read while it runs: `wait4`'s `ru_maxrss`
    /// would also count the test process, whose memory a spawned child shares until exec.
    pub fn run_measured(&self, mut command: Command, program: &Path, limit: Duration) -> (bool, u64) {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn on a test host");
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
            if let Some(status) = child.try_wait().expect("wait") {
                return (status.success(), peak);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("a command on a test host did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The text of a log written by [`Lan::spawn`].
    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
    }

    /// Waits until `check` holds, at most `limit`; past it, fails the test with `what`.
    pub fn wait_for(&self, limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(Instant::now() < deadline, "{what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
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
