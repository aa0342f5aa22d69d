//! Which processes share a filesystem view. Two processes may read each other's files (a
//! client's input, a worker's shuffle directory) only when they run on the same machine,
//! since the same boot, in the same mount namespace. Addresses cannot tell: `127.0.0.1` is
//! every machine, and one machine has many addresses. So every process computes this
//! identity and workers hand it to the driver when they register. Files named after a
//! process (a staging directory, a temporary partition) are told abandoned with
//! [`process_runs`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Set to override the identity (a test that wants two "machines" on one host, or a
/// deployment that knows better). Empty means unset.
pub const MACHINE_VAR: &str = "RINGLEADER_MACHINE";

/// This process's filesystem identity: a hash of the machine id, the boot id and the
/// mount namespace. Equal identities see the same files at the same paths.
pub fn identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        if let Ok(forced) = std::env::var(MACHINE_VAR)
            && !forced.trim().is_empty()
        {
            return forced.trim().to_string();
        }
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let host = read("/etc/machine-id");
        let host = if host.trim().is_empty() {
            read("/proc/sys/kernel/hostname")
        } else {
            host
        };
        let boot = read("/proc/sys/kernel/random/boot_id");
        let mounts = std::fs::read_link("/proc/self/ns/mnt")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let seed = format!("{}|{}|{}", host.trim(), boot.trim(), mounts);
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
    })
}

/// A fresh 128-bit id as 32 hex digits, unique across processes and machines: a hash of
/// the time, this process, a per-process counter and the machine identity.
pub fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{nanos}/{}/{n}/{}", std::process::id(), identity());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()))
}

/// Whether process `pid` runs on this machine (files named after a process can be told
/// abandoned by it).
pub fn process_runs(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    #[test]
    fn identity_is_stable_within_a_process() {
        assert_eq!(super::identity(), super::identity());
        assert!(!super::identity().is_empty());
    }

    #[test]
    fn unique_ids_differ() {
        assert_ne!(super::unique_id(), super::unique_id());
    }
}
