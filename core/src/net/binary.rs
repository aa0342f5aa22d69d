//! Job binaries are content-addressed: a hash of the executable's bytes names it on the
//! driver and in every worker's cache, and a binary whose bytes no longer match its name
//! is refused.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};

/// Chunk size for streaming binaries over gRPC: far below tonic's 4 MiB message limit.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A marker compiled into every job binary (see `ringleader::run`), by which `submit`
/// tells a Ringleader job from any other executable.
pub const JOB_MARKER: &[u8] = b"RINGLEADER-JOB-BINARY-V1";

/// How long a job binary nobody submitted or ran stays stored on the drivers and cached
/// on the workers.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// [`DEFAULT_RETENTION`], or what a test set in [`crate::fault_injection::BINARY_RETENTION_MS`].
pub fn retention() -> Duration {
    crate::fault_injection::millis(crate::fault_injection::BINARY_RETENTION_MS).unwrap_or(DEFAULT_RETENTION)
}

/// Deletes the binaries in `dir` (files named by their hash) that `keep` refuses, given a
/// binary's hash and when its file last changed, and the temporary files of uploads whose
/// process is gone; returns the hashes deleted.
pub fn remove_unkept(dir: &Path, mut keep: impl FnMut(&str, SystemTime) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if let Some(pid) = temporary_writer(&name) {
            if !crate::net::machine::process_runs(pid) {
                let _ = std::fs::remove_file(entry.path());
            }
        } else if valid_hash(&name) && !keep(&name, modified) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The process writing `name`, if it is a [`BinaryWriter`]'s temporary file
/// (`.HASH.PID-N.tmp`).
fn temporary_writer(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (hash, writer) = rest.split_once('.')?;
    valid_hash(hash).then_some(())?;
    writer.split_once('-')?.0.parse().ok()
}

/// The content hash of the running executable: the one its worker verified when it set
/// [`crate::net::executor_env::VERIFIED_HASH`], else hashed from `/proc/self/exe`.
pub fn running_executable_hash() -> Result<String> {
    match std::env::var(crate::net::executor_env::VERIFIED_HASH) {
        Ok(hash) if valid_hash(&hash) => Ok(hash),
        _ => hash_file(&running_executable()?),
    }
}

/// Incremental content hash (xxh3-128, hex).
#[derive(Default)]
pub struct ContentHash(Xxh3);

impl ContentHash {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash as 32 hex digits.
    pub fn finish(&self) -> String {
        format!("{:032x}", self.0.digest128())
    }
}

/// The file of the running executable: on Linux `/proc/self/exe`, which names the image
/// this process runs even if its path was since replaced; elsewhere the path it started from.
pub fn running_executable() -> Result<std::path::PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().map_err(|e| Error::io("current executable", e))
}

/// The content hash of the file at `path`.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hash = ContentHash::default();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(hash.finish());
        }
        hash.update(&buf[..n]);
    }
}

/// Whether `hash` looks like a content hash (so it is safe as a file name).
pub fn valid_hash(hash: &str) -> bool {
    hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the file at `path` is a Ringleader job binary (contains [`JOB_MARKER`]).
pub fn is_job_binary(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(bytes.windows(JOB_MARKER.len()).any(|w| w == JOB_MARKER))
}

/// Writes a binary arriving in chunks into `dir/<hash>`: into a temporary file first,
/// hashing as it goes, renamed only if the bytes match the announced hash. Executable.
pub struct BinaryWriter {
    expected: String,
    temp: std::path::PathBuf,
    target: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hash: ContentHash,
    written: u64,
}

impl BinaryWriter {
    /// Starts writing the binary named `expected` under `dir`.
    pub fn create(dir: &Path, expected: &str) -> Result<BinaryWriter> {
        if !valid_hash(expected) {
            return Err(Error::Config(format!("{expected:?} is not a binary hash")));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let target = dir.join(expected);
        static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(".{expected}.{}-{n}.tmp", std::process::id()));
        let file = std::fs::File::create(&temp).map_err(|e| Error::io(&temp, e))?;
        Ok(BinaryWriter {
            expected: expected.to_string(),
            temp,
            target,
            file: std::io::BufWriter::with_capacity(CHUNK_BYTES, file),
            hash: ContentHash::default(),
            written: 0,
        })
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|e| Error::io(&self.temp, e))
    }

    /// Verifies the hash and moves the binary into place; returns its path.
    pub fn finish(mut self) -> Result<std::path::PathBuf> {
        use std::io::Write;
        self.file.flush().map_err(|e| Error::io(&self.temp, e))?;
        self.file.get_ref().sync_all().map_err(|e| Error::io(&self.temp, e))?;
        let actual = self.hash.finish();
        if actual != self.expected {
            let _ = std::fs::remove_file(&self.temp);
            return Err(Error::Config(format!(
                "binary {} arrived with hash {actual} ({} bytes): it changed since it was named; refusing it",
                self.expected, self.written
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.temp, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&self.temp, e))?;
        }
        std::fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        if let Some(dir) = self.target.parent() {
            crate::io::output::sync_dir(dir)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for BinaryWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// The file at `path` as a stream of chunks of at most [`CHUNK_BYTES`]; the first names
/// the binary (`hash`) and its size. A file that cannot be read ends the stream with the
/// error.
pub fn file_chunks(
    path: std::path::PathBuf,
    hash: String,
) -> impl futures::Stream<Item = std::io::Result<crate::proto::BinaryChunk>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let state = (None::<tokio::fs::File>, path, hash, true, false);
    futures::stream::unfold(state, |(file, path, hash, first, done)| async move {
        if done {
            return None;
        }
        let mut file = match file {
            Some(f) => f,
            None => match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => return Some((Err(e), (None, path, hash, first, true))),
            },
        };
        let total_size = if first {
            file.metadata().await.map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        let mut data = vec![0u8; CHUNK_BYTES];
        match file.read(&mut data).await {
            Ok(0) if !first => None,
            Ok(n) => {
                data.truncate(n);
                let chunk = crate::proto::BinaryChunk {
                    hash: if first { hash.clone() } else { String::new() },
                    total_size,
                    data,
                };
                Some((Ok(chunk), (Some(file), path, hash, false, n == 0)))
            }
            Err(e) => Some((Err(e), (Some(file), path, hash, first, true))),
        }
    })
}

/// A task report as a stream of messages whose `value` pieces are at most [`CHUNK_BYTES`].
pub fn report_chunks(report: crate::proto::TaskReport) -> Vec<crate::proto::TaskReport> {
    use crate::proto::task_report::Outcome;
    match &report.outcome {
        Some(Outcome::Value(bytes)) if bytes.len() > CHUNK_BYTES => bytes
            .chunks(CHUNK_BYTES)
            .map(|piece| crate::proto::TaskReport {
                outcome: Some(Outcome::Value(piece.to_vec())),
                ..report.clone()
            })
            .collect(),
        _ => vec![report],
    }
}

/// Joins a stream of report messages back into one report (values concatenated).
pub async fn join_report(
    mut parts: tonic::Streaming<crate::proto::TaskReport>,
) -> Result<crate::proto::TaskReport, tonic::Status> {
    use crate::proto::task_report::Outcome;
    let mut report = parts
        .message()
        .await?
        .ok_or_else(|| tonic::Status::invalid_argument("empty task report"))?;
    while let Some(more) = parts.message().await? {
        match (&mut report.outcome, more.outcome) {
            (Some(Outcome::Value(bytes)), Some(Outcome::Value(piece))) => bytes.extend_from_slice(&piece),
            _ => {
                return Err(tonic::Status::invalid_argument(
                    "a task report continues with something other than value bytes",
                ));
            }
        }
    }
    Ok(report)
}
