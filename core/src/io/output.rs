//! Output commit: a job writes into a staging directory beside the output and renames it
//! into place only when every task succeeded, so a failed job never leaves `part-*` files
//! that look complete. Each task writes its part under a temporary name, syncs it and
//! renames it; the staging directory is synced before it is renamed, and an output being
//! overwritten is exchanged with the new one in one step, so the old output stays whole
//! until the new one is in (see [`replace_dir`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ids::Attempt;
use crate::io::writeback::{WritebackFile, durable};

/// Name of the marker file a committed output contains, as Hadoop writes it.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// A job's output directory in the making.
#[derive(Debug)]
pub struct OutputCommit {
    target: PathBuf,
    staging: PathBuf,
    overwrite: bool,
    done: bool,
}

impl OutputCommit {
    /// Prepares to write `target`; refuses an existing `target` unless `overwrite`.
    pub fn begin(target: &Path, overwrite: bool) -> Result<OutputCommit> {
        if target.exists() && !overwrite {
            return Err(Error::OutputExists(target.to_path_buf()));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::Config(format!("output {} has no directory name", target.display())))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        remove_abandoned_staging(&parent, &name.to_string_lossy());
        let staging = parent.join(format!(
            ".{}.ringleader-staging-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(OutputCommit {
            target: target.to_path_buf(),
            staging,
            overwrite,
            done: false,
        })
    }

    /// Where tasks write their parts.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Moves the finished output into place.
    pub fn commit(mut self) -> Result<()> {
        let marker = self.staging.join(SUCCESS_MARKER);
        File::create(&marker)
            .and_then(|f| if durable() { f.sync_all() } else { Ok(()) })
            .map_err(|e| Error::io(&marker, e))?;
        if durable() {
            sync_dir(&self.staging)?;
        }
        if self.target.exists() && !self.overwrite {
            return Err(Error::OutputExists(self.target.clone()));
        }
        replace_dir(&self.staging, &self.target)?;
        self.done = true;
        Ok(())
    }
}

/// Removes the staging directories of `name` in `parent` that a process which no longer
/// runs left behind (a client killed before it could clean up). Staging directories are
/// named after the process that made them, and never hold a committed output.
fn remove_abandoned_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.ringleader-staging-");
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if !crate::net::machine::process_runs(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Puts directory `new` at `target` and syncs their parent. An existing `target` is
/// exchanged with `new` in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`), then
/// removed from where `new` was: at every moment `target` holds a whole output, the old or
/// the new. Where the filesystem cannot exchange, the old output is renamed aside first.
pub fn replace_dir(new: &Path, target: &Path) -> Result<()> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if target.exists() {
        if exchange(new, target).is_ok() {
            // `new` now names the old output.
            remove_any(new);
        } else {
            let aside = new.with_extension("old");
            std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
            std::fs::rename(new, target).map_err(|e| Error::io(target, e))?;
            remove_any(&aside);
        }
    } else {
        std::fs::rename(new, target).map_err(|e| Error::io(target, e))?;
    }
    if durable() { sync_dir(parent) } else { Ok(()) }
}

/// Swaps two paths atomically.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
        let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Syncs a directory, so that the renames and new files in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn remove_any(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

impl Drop for OutputCommit {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// The file name of partition `partition`'s output.
pub fn part_name(partition: u32) -> String {
    format!("part-{partition:05}")
}

/// Writes one task's part file into `dir`: under a temporary name first, renamed once
/// `write` succeeded. Returns what `write` returned.
pub fn write_part<T>(
    dir: &Path,
    partition: u32,
    attempt: Attempt,
    write: impl FnOnce(&mut BufWriter<WritebackFile>) -> Result<T>,
) -> Result<T> {
    write_file(dir, &part_name(partition), attempt, write)
}

/// Writes the file `name` into `dir` as [`write_part`] writes a part file.
pub fn write_file<T>(
    dir: &Path,
    name: &str,
    attempt: Attempt,
    write: impl FnOnce(&mut BufWriter<WritebackFile>) -> Result<T>,
) -> Result<T> {
    let final_path = dir.join(name);
    let temp_path = dir.join(format!(".{name}.attempt-{attempt}.tmp"));
    let file = File::create(&temp_path).map_err(|e| Error::io(&temp_path, e))?;
    let mut out = BufWriter::with_capacity(4 << 20, WritebackFile::new(file));
    let result = write(&mut out).and_then(|value| {
        out.flush().map_err(|e| Error::io(&temp_path, e))?;
        if durable() {
            out.get_ref()
                .get_ref()
                .sync_all()
                .map_err(|e| Error::io(&temp_path, e))?;
        }
        Ok(value)
    });
    drop(out);
    match result {
        Ok(value) => {
            std::fs::rename(&temp_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
            Ok(value)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp_path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overwritten_output_is_replaced_whole_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().expect("dir");
        let target = dir.path().join("out");
        for (round, text) in ["old", "new"].iter().enumerate() {
            let commit = OutputCommit::begin(&target, round > 0).expect("begin");
            write_part(commit.staging(), 0, Attempt(1), |w| {
                w.write_all(text.as_bytes()).map_err(|e| Error::io(&target, e))
            })
            .expect("part");
            commit.commit().expect("commit");
        }
        assert_eq!(std::fs::read_to_string(target.join(part_name(0))).expect("part"), "new");
        assert!(target.join(SUCCESS_MARKER).exists());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["out"], "staging or the old output left behind");
        // Without --overwrite the existing output is refused and untouched.
        assert!(matches!(
            OutputCommit::begin(&target, false),
            Err(Error::OutputExists(_))
        ));
    }

    #[test]
    fn staging_left_by_a_process_that_is_gone_is_removed_and_a_running_ones_kept() {
        let dir = tempfile::tempdir().expect("dir");
        // A child that has exited (and been waited for) no longer exists.
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let gone = child.id();
        child.wait().expect("wait");
        let abandoned = dir.path().join(format!(".out.ringleader-staging-{gone}-1"));
        let running = dir
            .path()
            .join(format!(".out.ringleader-staging-{}-2", std::process::id()));
        let other = dir.path().join(format!(".other.ringleader-staging-{gone}-3"));
        for d in [&abandoned, &running, &other] {
            std::fs::create_dir(d).expect("staging");
            std::fs::write(d.join("part-00000"), "half").expect("part");
        }
        let commit = OutputCommit::begin(&dir.path().join("out"), false).expect("begin");
        assert!(!abandoned.exists(), "an abandoned staging directory was kept");
        assert!(running.exists(), "a running process's staging directory was removed");
        assert!(other.exists(), "another output's staging directory was removed");
        drop(commit);
    }

    #[test]
    fn exchanging_two_directories_swaps_them() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).expect("a");
        std::fs::create_dir(&b).expect("b");
        std::fs::write(a.join("x"), "from a").expect("x");
        if exchange(&a, &b).is_ok() {
            assert_eq!(std::fs::read_to_string(b.join("x")).expect("swapped"), "from a");
            assert!(!a.join("x").exists());
        }
    }
}
