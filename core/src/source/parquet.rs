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
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::format(path, e))?
        .with_row_groups(row_groups.to_vec())
        .with_batch_size(CHUNK_ROWS)
        .build()
        .map_err(|e| Error::format(path, e))?;
    let path = path.to_path_buf();
    Ok(Box::new(reader.map(move |b| {
        b.map(Chunk::Arrow).map_err(|e| Error::format(&path, e))
    })))
}
