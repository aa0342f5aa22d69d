//! Reading Parquet files by row group.

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::data::{CHUNK_ROWS, Chunk, ChunkStream};
use crate::error::{Error, Result};

/// Number of row groups in `path`.
pub fn row_groups(path: &Path) -> Result<usize> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::format(path, e))?;
    Ok(builder.metadata().num_row_groups())
}

/// Streams the given row groups of `path`.
pub fn open(path: &Path, row_groups: &[usize]) -> Result<ChunkStream> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::format(path, e))?;
    // The parquet reader indexes its row groups unchecked (a panic): check them here.
    let groups = builder.metadata().num_row_groups();
    if let Some(g) = row_groups.iter().find(|&&g| g >= groups) {
        return Err(Error::format(
            path,
            format!("has {groups} row groups, not a group {g}: it changed while the job ran"),
        ));
    }
    let reader = builder
        .with_row_groups(row_groups.to_vec())
        .with_batch_size(CHUNK_ROWS)
        .build()
        .map_err(|e| Error::format(path, e))?;
    let path = path.to_path_buf();
    let mut reader = reader;
    Ok(Box::new(std::iter::from_fn(move || {
        super::guarded(&path, || Ok(reader.next()))
            .transpose()
            .map(|b| b.and_then(|b| b.map(Chunk::Arrow).map_err(|e| Error::format(&path, e))))
    })))
}
