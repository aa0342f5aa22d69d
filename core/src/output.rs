//! Output commit: a job writes into a staging directory beside the output and renames it
//! into place only when every task succeeded, so a failed job never leaves `part-*` files
//! that look complete. Each task writes its part under a temporary name and renames it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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
        File::create(&marker).map_err(|e| Error::io(&marker, e))?;
        let mut old = None;
        if self.target.exists() {
            if !self.overwrite {
                return Err(Error::OutputExists(self.target.clone()));
            }
            let trash = self.staging.with_extension("old");
            std::fs::rename(&self.target, &trash).map_err(|e| Error::io(&self.target, e))?;
            old = Some(trash);
        }
        std::fs::rename(&self.staging, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.done = true;
        if let Some(trash) = old {
            remove_any(&trash);
        }
        Ok(())
    }
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
    attempt: u32,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let final_path = dir.join(part_name(partition));
    let temp_path = dir.join(format!(".{}.attempt-{attempt}.tmp", part_name(partition)));
    let file = File::create(&temp_path).map_err(|e| Error::io(&temp_path, e))?;
    let mut out = BufWriter::with_capacity(4 << 20, file);
    let result = write(&mut out).and_then(|value| {
        out.flush().map_err(|e| Error::io(&temp_path, e))?;
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
