//! Reading 100-byte gensort records: the split is memory-mapped and handed on as Arrow
//! `FixedSizeBinary(100)` chunks that point into the mapping, so records reach the first
//! operator without being copied.

use std::fs::File;
use std::path::Path;

use crate::data::record::RECORD_LEN;
use crate::data::{Chunk, ChunkStream, records_batch};
use crate::error::{Error, Result};

/// Records per chunk: 8 MB keeps a chunk large for the kernels and small for the cache.
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
    if end <= start {
        return Ok(Box::new(std::iter::empty()));
    }
    let record = RECORD_LEN as u64;
    let ranges: Vec<(u64, u64)> = match sample_windows {
        None => super::byte_ranges(end - start, RECORDS_PER_CHUNK * record, record),
        Some(w) => super::window_starts(0, end - start, w, record)
            .into_iter()
            .map(|s| (s, (s + SAMPLE_WINDOW_RECORDS * record).min(end - start)))
            .collect(),
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    super::check_extent(path, &file, end)?;
    // The whole split will be read: map its pages in one go rather than fault by fault.
    let buffer = crate::io::mapped::map(&file, path, start, (end - start) as usize, sample_windows.is_none())?;
    Ok(Box::new(ranges.into_iter().map(move |(a, b)| {
        let slice = buffer.slice_with_length(a as usize, (b - a) as usize);
        Ok(Chunk::Arrow(records_batch(slice)?))
    })))
}
