//! Spill files: what an operator writes when its memory reservation is refused. Each is an
//! Arrow IPC file in its task's spill directory (see [`crate::memory::MemoryPool::spill_dir`]),
//! written in small batches so that reading many of them back at once (a k-way merge, a
//! partition's rows) holds little, and read back batch by batch.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;

use crate::data::{BatchStream, Data, encode};
use crate::error::{Error, Result};
use crate::memory::MemoryPool;

/// Bytes per batch written to a spill file (rows are cut to about this size).
pub const SPILL_BATCH_BYTES: usize = 256 << 10;

/// Rows of `T` in a batch of about [`SPILL_BATCH_BYTES`].
pub fn rows_per_batch<T>() -> usize {
    (SPILL_BATCH_BYTES / std::mem::size_of::<T>().max(16)).max(1)
}

/// One spill file being written.
pub struct SpillWriter {
    path: PathBuf,
    writer: Option<FileWriter<BufWriter<File>>>,
}

impl SpillWriter {
    /// A spill file `name` in `dir` (created at the first batch).
    pub fn new(dir: &Path, name: &str) -> SpillWriter {
        SpillWriter {
            path: dir.join(name),
            writer: None,
        }
    }

    /// Appends one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let file = File::create(&self.path).map_err(|e| self.io_failed(e))?;
                let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 16, file), batch.schema().as_ref())
                    .map_err(|e| self.failed(e))?;
                self.writer.insert(writer)
            }
        };
        if let Err(e) = writer.write(batch) {
            return Err(self.failed(e));
        }
        Ok(())
    }

    /// Appends `rows`, cut into batches of about [`SPILL_BATCH_BYTES`].
    pub fn write_rows<T: Data>(&mut self, rows: &[T]) -> Result<()> {
        for slice in rows.chunks(rows_per_batch::<T>()) {
            self.write(&encode(slice)?)?;
        }
        Ok(())
    }

    /// Closes the file; its path, unless nothing was written, and its size in bytes.
    pub fn finish(mut self) -> Result<Option<(PathBuf, u64)>> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(None);
        };
        writer.finish().map_err(|e| self.failed(e))?;
        let mut file = writer.into_inner().map_err(|e| self.failed(e))?;
        std::io::Write::flush(&mut file).map_err(|e| self.io_failed(e))?;
        drop(file);
        let bytes = std::fs::metadata(&self.path)
            .map_err(|e| Error::io(&self.path, e))?
            .len();
        Ok(Some((self.path, bytes)))
    }

    /// Closes the file as [`SpillWriter::finish`] does, counting its bytes as spilled in `pool`.
    pub fn finish_in(self, pool: &MemoryPool) -> Result<Option<(PathBuf, u64)>> {
        Ok(self.finish()?.inspect(|(_, bytes)| pool.record_spill(*bytes)))
    }

    /// The writer's failure as an I/O error of this file.
    fn failed(&self, e: arrow_schema::ArrowError) -> Error {
        match e {
            arrow_schema::ArrowError::IoError(_, error) => self.io_failed(error),
            other => self.io_failed(std::io::Error::other(other.to_string())),
        }
    }

    /// An I/O error of this file; a full disk says what to do about it.
    fn io_failed(&self, error: std::io::Error) -> Error {
        if error.kind() != std::io::ErrorKind::StorageFull {
            return Error::io(&self.path, error);
        }
        let advice = format!(
            "{error}: the disk of the spill files is full; give them one with more room \
             (RINGLEADER_SPILL_DIR), or the job more memory (RINGLEADER_MEMORY: less is spilled)"
        );
        Error::io(&self.path, std::io::Error::new(error.kind(), advice))
    }
}

/// Reads a spill file back, batch by batch (the file may be removed once this returns).
pub fn read(path: &Path) -> Result<BatchStream> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader =
        FileReader::try_new(std::io::BufReader::with_capacity(1 << 16, file), None).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            error: std::io::Error::other(e.to_string()),
        })?;
    Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
}
