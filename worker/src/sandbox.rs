//! What a job's executor may touch on this worker, enforced by the kernel (Landlock), so one
//! job's code cannot reach the cluster's secrets or another job's files.
//!
//! An executor gets the worker user's access to the machine's files (the job's own local
//! inputs and outputs are the user's files), except beneath the *private* paths: this
//! worker's data directory, the cluster token file, the TLS key, and any directory given
//! with `--private` (`cluster up` names its cluster directory, which holds the drivers' logs
//! and every worker's data). Beneath them it reaches only its own job's places:
//!
//! | place                                   | access              |
//! |-----------------------------------------|---------------------|
//! | `shuffle/JOB/`, `shuffle/.results/JOB/` | read, write         |
//! | `tmp/JOB/` (its `TMPDIR`, spills)       | read, write         |
//! | `datasets/` (stored datasets)           | read                |
//! | `datasets/NAME/GENERATION/` it writes   | read, write         |
//! | `binaries/HASH` (its own binary)        | read, execute       |
//!
//! Nothing else there: not other jobs' shuffle blocks or held results, not the cached
//! binaries (so no job can change another's code), not the token. Landlock also keeps the
//! executor from signalling or tracing processes outside its sandbox (ABI 6 and later scope
//! signals), such as the worker. The rules are made in the worker and applied in the child
//! between `fork` and `exec` ([`apply_in_child`]), so the job's code never runs unconfined.
//!
//! Where the kernel has no Landlock, [`Sandbox::prepare`] says so and executors run as the
//! worker's user with its access (the README says what does not hold then).

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{ABI, Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope};

/// The newest Landlock ABI this code knows; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V6;

/// Why an executor's sandbox could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A Landlock call failed.
    #[error("making the executor's sandbox: {0}")]
    Landlock(String),
    /// A place of the job could not be made.
    #[error("making {path} for the executor: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What one executor may reach, before it is made into rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Paths beneath which nothing is reachable but what the other fields grant.
    pub private: Vec<PathBuf>,
    /// Directories (created if missing) it may read and write.
    pub read_write: Vec<PathBuf>,
    /// Paths it may read.
    pub read: Vec<PathBuf>,
    /// Files it may read and execute.
    pub execute: Vec<PathBuf>,
}

/// A made ruleset, waiting for a child to apply it.
#[derive(Debug)]
pub struct Sandbox {
    ruleset: OwnedFd,
}

impl Sandbox {
    /// What a kernel of Landlock ABI `abi` cannot enforce of the sandbox (empty: all of it).
    pub fn gaps(abi: i32) -> Vec<&'static str> {
        let mut gaps = Vec::new();
        if abi < 2 {
            gaps.push("renaming and linking files between directories (ABI 2)");
        }
        if abi < 3 {
            gaps.push("truncating files by path, the token file among them (ABI 3)");
        }
        if abi < 6 {
            gaps.push("signals to the worker and other processes (ABI 6)");
        }
        gaps
    }

    /// The Landlock ABI this kernel offers (`None`: no Landlock).
    pub fn kernel_abi() -> Option<i32> {
        // SAFETY: landlock_create_ruleset with a null attribute and the VERSION flag only
        // returns the ABI version (or an error); it touches no memory.
        let version = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
        (version > 0).then_some(version as i32)
    }

    /// Makes the rules of `policy`, or `None` when this kernel has no Landlock.
    pub fn prepare(policy: &Policy) -> Result<Option<Sandbox>, SandboxError> {
        if Sandbox::kernel_abi().is_none() {
            return Ok(None);
        }
        for dir in &policy.read_write {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let all = AccessFs::from_all(ABI_WANTED);
        let read = AccessFs::from_read(ABI_WANTED);
        // In its own places beneath the private paths, regular files and directories only:
        // no symbolic link (the worker, which is not sandboxed, would follow one out of the
        // job's places when it writes or serves a file there), no FIFO (the worker would
        // block opening it), no socket or device; nothing to execute.
        let own = all
            & !(AccessFs::MakeSym
                | AccessFs::MakeFifo
                | AccessFs::MakeSock
                | AccessFs::MakeChar
                | AccessFs::MakeBlock
                | AccessFs::Execute
                | AccessFs::IoctlDev);
        let landlock = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
        let mut ruleset = Ruleset::default()
            .handle_access(all)
            .map_err(landlock)?
            .scope(Scope::Signal)
            .map_err(landlock)?
            .create()
            .map_err(landlock)?;
        let private: Vec<PathBuf> = policy.private.iter().map(|p| canonical(p)).collect();
        for path in everything_but(&private) {
            ruleset = add(ruleset, &path, all)?;
        }
        for path in &policy.read_write {
            ruleset = add(ruleset, path, own)?;
        }
        for path in &policy.read {
            ruleset = add(ruleset, path, read)?;
        }
        for path in &policy.execute {
            ruleset = add(ruleset, path, read | AccessFs::Execute)?;
        }
        let fd: Option<OwnedFd> = ruleset.into();
        Ok(fd.map(|ruleset| Sandbox { ruleset }))
    }

    /// The ruleset's descriptor, for [`apply_in_child`].
    pub fn raw_fd(&self) -> i32 {
        self.ruleset.as_raw_fd()
    }
}

/// Adds a rule granting `access` beneath `path`; a path that does not exist grants nothing.
fn add(
    ruleset: landlock::RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<landlock::RulesetCreated, SandboxError> {
    let Ok(fd) = PathFd::new(path) else {
        return Ok(ruleset);
    };
    // A file takes only the rights that apply to files.
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_WANTED)
    };
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(|e| SandboxError::Landlock(format!("a rule for {}: {e}", path.display())))
}

/// Applies the sandbox `ruleset_fd` to this process: for the child between `fork` and
/// `exec`, so it makes only the two system calls that needs (no allocation, no lock).
///
/// # Safety
/// Only to be called in a `pre_exec` hook, with the descriptor of a live [`Sandbox`].
pub unsafe fn apply_in_child(ruleset_fd: i32) -> std::io::Result<()> {
    // SAFETY: prctl and landlock_restrict_self are async-signal-safe system calls on
    // integers; the descriptor is the parent's, inherited by this child.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `path` with its symbolic links resolved (as given when it does not exist).
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Paths whose hierarchies together hold every file but those beneath `private`: the
/// siblings of each private path and of each of its ancestors. (Landlock only grants, so
/// "all but" is spelled as the parts around what is left out.)
fn everything_but(private: &[PathBuf]) -> Vec<PathBuf> {
    let ancestors: BTreeSet<PathBuf> = private
        .iter()
        .flat_map(|p| p.ancestors().skip(1).map(Path::to_path_buf))
        .collect();
    let is_private = |p: &Path| private.iter().any(|x| p.starts_with(x));
    let mut granted = Vec::new();
    let mut walk = vec![PathBuf::from("/")];
    while let Some(dir) = walk.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_private(&path) {
                continue;
            }
            if ancestors.contains(&path) {
                walk.push(path);
                continue;
            }
            // A link into a private place grants nothing there.
            let target = canonical(&path);
            if is_private(&target) || ancestors.contains(&target) {
                continue;
            }
            granted.push(path);
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_kernel_is_told_what_it_cannot_enforce() {
        assert!(Sandbox::gaps(7).is_empty());
        assert!(Sandbox::gaps(6).is_empty());
        let five = Sandbox::gaps(5);
        assert_eq!(five.len(), 1);
        assert!(five[0].contains("signals"));
        let one = Sandbox::gaps(1);
        assert_eq!(one.len(), 3);
        assert!(one.iter().any(|g| g.contains("truncating")));
    }

    #[test]
    fn everything_but_leaves_out_the_private_paths_and_covers_their_siblings() {
        let root = tempfile::tempdir().expect("dir");
        let root = canonical(root.path());
        for dir in ["a/secret", "a/open", "b"] {
            std::fs::create_dir_all(root.join(dir)).expect("dir");
        }
        std::fs::write(root.join("a/file"), "x").expect("file");
        std::os::unix::fs::symlink(root.join("a/secret"), root.join("b/link")).expect("link");
        let granted = everything_but(&[root.join("a/secret")]);
        assert!(granted.contains(&root.join("a/open")));
        assert!(granted.contains(&root.join("a/file")));
        assert!(granted.contains(&root.join("b")));
        assert!(!granted.iter().any(|g| g.starts_with(root.join("a/secret"))));
        // Ancestors are walked, never granted whole.
        assert!(!granted.contains(&root.join("a")) && !granted.contains(&root));
    }
}
