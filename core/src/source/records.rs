//! Reading 100-byte gensort records: large sequential reads straight into record buffers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};
use crate::record::{RECORD_LEN, Record};

/// Records per chunk: 8 MB reads keep the disk streaming and the chunk in one allocation.
pub const RECORDS_PER_CHUNK: u64 = 80_000;
/// Records read per sampling window.
const SAMPLE_WINDOW_RECORDS: u64 = 1000;

/// Checks that a record file is a whole number of records.
pub fn check_size(path: &Path, size: u64) -> Result<()> {
    if !size.is_multiple_of(RECORD_LEN as u64) {
        return Err(Error::PartialRecord {
            path: path.to_path_buf(),
            size,
            record_len: RECORD_LEN as u64,
            offset: size - size % RECORD_LEN as u64,
        });
    }
    Ok(())
}

/// Streams the records in `[start, end)` of `path`.
pub fn open(path: &Path, start: u64, end: u64, sample_windows: Option<u32>) -> Result<ChunkStream> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let ranges: Vec<(u64, u64)> = match sample_windows {
        None => super::byte_ranges(
            end - start,
            RECORDS_PER_CHUNK * RECORD_LEN as u64,
            RECORD_LEN as u64,
        )
        .into_iter()
        .map(|(a, b)| (start + a, start + b))
        .collect(),
        Some(w) => super::window_starts(start, end, w, RECORD_LEN as u64)
            .into_iter()
            .map(|s| (s, (s + SAMPLE_WINDOW_RECORDS * RECORD_LEN as u64).min(end)))
            .collect(),
    };
    let path = path.to_path_buf();
    Ok(Box::new(ranges.into_iter().map(move |(a, b)| {
        let mut records = Record::zeroed_vec(((b - a) / RECORD_LEN as u64) as usize);
        file.seek(SeekFrom::Start(a))
            .map_err(|e| Error::io(&path, e))?;
        file.read_exact(Record::slice_as_bytes_mut(&mut records))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Chunk::from_rows(records))
    })))
}
