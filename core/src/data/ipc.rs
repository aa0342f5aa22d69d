//! Arrow IPC streams in memory: how batches travel as bytes (collect results, inline
//! sources, spilled shuffle blocks).

use std::io::Cursor;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

use crate::error::{Error, Result};

/// Writes batches (all of one schema) as an IPC stream; no batches gives empty bytes.
pub fn to_stream_bytes(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, first.schema().as_ref())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Reads every batch of an IPC stream; empty bytes give no batches.
pub fn from_stream_bytes(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(Error::from)
}
