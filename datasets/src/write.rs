//! Writing generated files: each file under a temporary name, renamed when complete, with
//! a progress bar on stderr (when it is a terminal) counting bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::{Error, Result};

/// Creates `dir`, refusing a non-empty one unless `overwrite`.
pub fn prepare_dir(dir: &Path, overwrite: bool) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        if !overwrite {
            return Err(Error::OutputExists(dir.to_path_buf()));
        }
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// A byte-counting progress bar (hidden when stderr is not a terminal).
pub fn progress(total_bytes: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// Writes `files` files named by `name(i)` under `dir` in parallel; `fill(i, out, bar)`
/// writes file `i`. Each file appears under its name only once complete.
pub fn write_files(
    dir: &Path,
    files: u64,
    name: impl Fn(u64) -> String + Sync,
    bar: &ProgressBar,
    fill: impl Fn(u64, &mut BufWriter<File>) -> Result<()> + Sync,
) -> Result<Vec<PathBuf>> {
    let paths = (0..files)
        .into_par_iter()
        .map(|i| {
            let path = dir.join(name(i));
            let temp = dir.join(format!(".{}.tmp", name(i)));
            let file = File::create(&temp).map_err(|e| Error::io(&temp, e))?;
            let mut out = BufWriter::with_capacity(4 << 20, file);
            fill(i, &mut out)?;
            out.flush().map_err(|e| Error::io(&temp, e))?;
            drop(out);
            std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e))?;
            Ok(path)
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    paths
}
