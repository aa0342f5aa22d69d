//! Inputs: listing files, cutting them into splits (at plan time, in the user's program, so
//! bad input fails before any task runs), and opening a split as a stream of chunks.
//!
//! Modules: [`text`] (lines, split on line boundaries), [`records`] (100-byte gensort
//! records), [`ipc`] (Arrow IPC files, memory-mapped), [`parquet`], [`csv`], [`stored`]
//! (dataset partitions on workers); inline data from
//! `parallelize` is an Arrow IPC stream inside the split itself.

pub mod csv;
pub mod ipc;
pub mod parquet;
pub mod records;
pub mod stored;
pub mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};
use crate::plan::shipped::Shipped;

/// The Arrow schema of a typed source (e.g. the columns a CSV file must have).
pub type SchemaFn = fn() -> Result<arrow_schema::SchemaRef>;

crate::__shippable!(SchemaFn);

/// One piece of input that one task reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Split {
    /// Lines of a text file whose first byte lies in `[start, end)`.
    Text {
        /// The file.
        path: PathBuf,
        /// First byte of the split.
        start: u64,
        /// One past the last byte of the split.
        end: u64,
        /// Replace invalid UTF-8 instead of failing.
        lossy: bool,
    },
    /// Whole 100-byte records in `[start, end)` (both multiples of 100).
    Records {
        /// The file.
        path: PathBuf,
        /// First byte of the split.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Record batches `[first, end)` of an Arrow IPC file, optionally one column only.
    Ipc {
        /// The file.
        path: PathBuf,
        /// Index of the first batch.
        first: usize,
        /// One past the last batch.
        end: usize,
        /// Read only this column (by index).
        column: Option<usize>,
    },
    /// Some row groups of a Parquet file.
    Parquet {
        /// The file.
        path: PathBuf,
        /// Row-group indices to read.
        row_groups: Vec<usize>,
        /// Read only these top-level columns (the row type's fields), if given.
        columns: Option<Vec<String>>,
    },
    /// The records of a CSV file with a header line that begin in a byte range, parsed
    /// against the schema of the row type.
    Csv {
        /// The file.
        path: PathBuf,
        /// The row type's schema.
        schema: Shipped<SchemaFn>,
        /// The byte range and the columns read.
        piece: csv::Piece,
    },
    /// One partition of a dataset stored on workers (`ringleader://NAME`).
    Stored {
        /// The dataset's name.
        dataset: String,
        /// Its committed generation (see [`crate::io::store`]).
        generation: String,
        /// The partition.
        partition: u32,
        /// Addresses of the workers holding it, primary first.
        locations: Vec<String>,
        /// Read only this column (by name).
        column: Option<String>,
    },
    /// Rows shipped inside the plan, as an Arrow IPC stream (`parallelize`).
    Inline {
        /// The encoded rows.
        ipc: Vec<u8>,
    },
    /// Several splits read one after the other (`coalesce`).
    Concat {
        /// The splits, in order.
        splits: Vec<Split>,
    },
    /// A partition of a dataset cached by this process (the embedded engine, see
    /// [`crate::plan::cache`]).
    Cached {
        /// The cache's id.
        cache: u64,
        /// The partition.
        partition: u32,
    },
}

impl Split {
    /// A short description for progress and error messages.
    pub fn describe(&self) -> String {
        match self {
            Split::Text { path, start, end, .. } | Split::Records { path, start, end } => {
                format!("{}[{start}..{end})", path.display())
            }
            Split::Ipc { path, first, end, .. } => format!("{} batches {first}..{end}", path.display()),
            Split::Parquet { path, row_groups, .. } => {
                format!("{} row groups {row_groups:?}", path.display())
            }
            Split::Csv { path, piece, .. } => format!("{}[{}..{})", path.display(), piece.start, piece.end),
            Split::Stored { dataset, partition, .. } => format!("dataset {dataset} partition {partition}"),
            Split::Inline { ipc } => format!("inline ({} bytes)", ipc.len()),
            Split::Concat { splits } => match (splits.first(), splits.len()) {
                (Some(first), 1) => first.describe(),
                (Some(first), n) => format!("{} and {} more", first.describe(), n - 1),
                (None, _) => "no splits".to_string(),
            },
            Split::Cached { cache, partition } => format!("cache {cache} partition {partition}"),
        }
    }
}

/// Opens a split; with `sample_windows`, reads only that many evenly spaced windows of it
/// where the format allows (text, records), and the whole split otherwise.
pub fn open(split: &Split, sample_windows: Option<u32>) -> Result<ChunkStream> {
    match split {
        Split::Text {
            path,
            start,
            end,
            lossy,
        } => text::open(path, *start, *end, *lossy, sample_windows),
        Split::Records { path, start, end } => records::open(path, *start, *end, sample_windows),
        Split::Ipc {
            path,
            first,
            end,
            column,
        } => ipc::open(path, *first, *end, *column),
        Split::Parquet {
            path,
            row_groups,
            columns,
        } => parquet::open(path, row_groups, columns.as_deref()),
        Split::Csv { path, schema, piece } => {
            // SAFETY: the plan was built by this executable (checked before it runs).
            let schema_fn = unsafe { schema.resolve() }?;
            csv::open(path, schema_fn()?, piece)
        }
        Split::Stored {
            dataset,
            generation,
            partition,
            locations,
            column,
        } => stored::open(
            &crate::net::ticket::PartitionId {
                dataset: dataset.clone(),
                generation: generation.clone(),
                partition: *partition,
            },
            locations,
            column.as_deref(),
        ),
        Split::Inline { ipc } => {
            let batches = crate::data::ipc::from_stream_bytes(ipc)?;
            Ok(Box::new(batches.into_iter().map(|b| Ok(Chunk::Arrow(b)))))
        }
        Split::Cached { cache, partition } => crate::plan::cache::store().read(*cache, *partition),
        Split::Concat { splits } => {
            // Each split is opened only when the one before it is read to the end.
            let mut pending = splits.clone().into_iter();
            let mut current: ChunkStream = Box::new(std::iter::empty());
            Ok(Box::new(std::iter::from_fn(move || {
                loop {
                    if let Some(chunk) = current.next() {
                        return Some(chunk);
                    }
                    match open(&pending.next()?, sample_windows) {
                        Ok(next) => current = next,
                        Err(e) => return Some(Err(e)),
                    }
                }
            })))
        }
    }
}

/// Lists the data files under `path`: the file itself, or the directory's files (not
/// hidden ones, nor names starting with `_` like `_SUCCESS`) that `accept` takes, sorted
/// by name. A missing path, or one with no data, is an error naming it.
pub fn list_files(path: &Path, accept: impl Fn(&Path) -> bool) -> Result<Vec<(PathBuf, u64)>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingInput(path.to_path_buf()),
        _ => Error::io(path, e),
    })?;
    let mut files = Vec::new();
    if meta.is_file() {
        files.push((path.to_path_buf(), meta.len()));
    } else {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') || !accept(&p) {
                continue;
            }
            // Follows symbolic links (data kept elsewhere); a dangling one is named.
            let m = std::fs::metadata(&p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::format(&p, "a symbolic link whose target is missing"),
                _ => Error::io(&p, e),
            })?;
            if m.is_file() {
                files.push((p, m.len()));
            }
        }
        files.sort();
    }
    if files.is_empty() || files.iter().all(|(_, len)| *len == 0) {
        return Err(Error::EmptyInput(path.to_path_buf()));
    }
    Ok(files)
}

/// Runs a third-party decoder step on input from `path`, turning a panic inside it (a
/// corrupt file the decoder does not check, e.g. an Arrow IPC buffer offset past its body)
/// into an error naming the file, instead of one that blames the job's closures.
pub fn guarded<T>(path: &Path, step: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(Error::format(
                path,
                format!("is corrupt (its decoder failed: {message})"),
            ))
        }
    }
}

/// Checks that `file` still reaches byte `end`: one truncated since the job was planned is
/// an error naming it, not a SIGBUS on a mapped page past its end.
pub fn check_extent(path: &Path, file: &std::fs::File, end: u64) -> Result<()> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < end {
        return Err(Error::format(
            path,
            format!("is {len} bytes, shorter than the {end} the job planned for: it changed while the job ran"),
        ));
    }
    Ok(())
}

/// How many times `byte` occurs in bytes `[from, to)` of the file `path`.
pub fn count_byte(path: &Path, from: u64, to: u64, byte: u8) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; (to.saturating_sub(from) as usize).min(1 << 20)];
    let (mut pos, mut count) = (from, 0u64);
    while pos < to {
        let want = buf.len().min((to - pos) as usize);
        let n = file.read_at(&mut buf[..want], pos).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        count += memchr::memchr_iter(byte, &buf[..n]).count() as u64;
        pos += n as u64;
    }
    Ok(count)
}

/// Whether a path has the given extension.
pub fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Byte ranges `[start, end)` cutting `len` bytes into pieces of about `split` bytes,
/// each boundary a multiple of `align`.
pub fn byte_ranges(len: u64, split: u64, align: u64) -> Vec<(u64, u64)> {
    let split = (split / align).max(1) * align;
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let end = (start + split).min(len);
        out.push((start, end));
        start = end;
    }
    out
}

/// Evenly spaced window starts for sampling `[start, end)`, each aligned to `align`.
pub(crate) fn window_starts(start: u64, end: u64, windows: u32, align: u64) -> Vec<u64> {
    let len = end - start;
    let windows = windows.max(1) as u64;
    (0..windows)
        .map(|i| start + (len * i / windows) / align * align)
        .collect()
}
