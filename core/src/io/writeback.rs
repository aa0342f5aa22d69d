//! Durable files written at the disk's speed. A file that is synced before its commit
//! (outputs, stored partitions) starts its writeback while it is written: every
//! [`WRITEBACK_BYTES`] it asks the kernel to begin writing the bytes just written
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, as RocksDB's `bytes_per_sync` and
//! PostgreSQL's `*_flush_after` do), so the final `fsync` waits for the last stretch
//! instead of the whole file, and the disk works while the task still computes.

use std::fs::File;
use std::io::Write;

/// Set to `0` to skip syncing outputs (part files, stored partitions) before they are
/// committed: faster, but a machine that crashes may keep a committed output whose data
/// never reached its disk.
pub const FSYNC_VAR: &str = "RINGLEADER_FSYNC";

/// Whether outputs are synced before their commit (see [`FSYNC_VAR`]; on by default).
pub fn durable() -> bool {
    static DURABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DURABLE.get_or_init(|| std::env::var(FSYNC_VAR).map_or(true, |v| v != "0"))
}

/// Bytes written between two requests to start writeback.
pub const WRITEBACK_BYTES: u64 = 8 << 20;

/// A file being written that will be synced: starts writeback of each
/// [`WRITEBACK_BYTES`] as they are written (when outputs are durable, see
/// [`durable`]).
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    /// Bytes written so far, and the end of the last range handed to writeback.
    written: u64,
    started: u64,
    enabled: bool,
}

impl WritebackFile {
    /// Wraps `file`, newly created and empty; writeback starts early only when outputs are
    /// durable (with `RINGLEADER_FSYNC=0` nothing is ever synced, so nothing is pushed).
    pub fn new(file: File) -> WritebackFile {
        WritebackFile {
            file,
            written: 0,
            started: 0,
            enabled: durable(),
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// The file, unwrapped.
    pub fn into_inner(self) -> File {
        self.file
    }

    /// Asks the kernel to start writing the bytes not handed to writeback yet. Advisory:
    /// where the call is not offered (or fails), the final sync does all the work.
    fn start_writeback(&mut self) {
        if self.written == self.started {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (offset, length) = (self.started as i64, (self.written - self.started) as i64);
            // SAFETY: the descriptor is this file's, open for the call; the flag only
            // starts writeback of dirty pages in the range and touches no memory of ours.
            let _ =
                unsafe { libc::sync_file_range(self.file.as_raw_fd(), offset, length, libc::SYNC_FILE_RANGE_WRITE) };
        }
        self.started = self.written;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.enabled && self.written - self.started >= WRITEBACK_BYTES {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_reaches_the_file_and_writeback_keeps_pace() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let mut out = WritebackFile::new(File::create(&path).expect("create"));
        out.enabled = true;
        let chunk: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..20 {
            out.write_all(&chunk).expect("write");
        }
        // Writeback was asked for in steps, never past what was written.
        assert!(out.started > 0 && out.written - out.started < WRITEBACK_BYTES);
        out.flush().expect("flush");
        out.get_ref().sync_all().expect("sync");
        let back = std::fs::read(&path).expect("read");
        assert_eq!(back.len(), chunk.len() * 20);
        assert!(back.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
    }
}
