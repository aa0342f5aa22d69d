//! Reading CSV files with a header line, parsed against the row type's schema so a value of
//! the wrong type is an error naming the file, line and column.

use std::fs::File;
use std::path::Path;

use arrow_schema::SchemaRef;

use crate::data::{CHUNK_ROWS, Chunk, ChunkStream};
use crate::error::{Error, Result};

/// Streams the rows of the CSV file `path`.
pub fn open(path: &Path, schema: SchemaRef) -> Result<ChunkStream> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = arrow_csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_batch_size(CHUNK_ROWS)
        .build(file)
        .map_err(|e| Error::format(path, e))?;
    let path = path.to_path_buf();
    let mut reader = reader;
    Ok(Box::new(std::iter::from_fn(move || {
        super::guarded(&path, || Ok(reader.next()))
            .transpose()
            .map(|b| b.and_then(|b| b.map(Chunk::Arrow).map_err(|e| Error::format(&path, e))))
    })))
}
