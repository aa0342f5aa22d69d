//! Reading Arrow IPC files: memory-mapped and decoded without copying, so an `i64` column
//! reaches the sum kernel straight from the page cache.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{FileDecoder, read_footer_length};
use arrow_ipc::{Block, root_as_footer};
use arrow_schema::{DataType, SchemaRef};

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};

/// The bytes an Arrow IPC file starts and ends with.
const MAGIC: &[u8] = b"ARROW1";

/// What a file that is not Arrow IPC is told, with what to do.
const NOT_IPC: &str = "not an Arrow IPC file (it does not start and end with ARROW1): this input must be Arrow IPC files (*.arrow), such as `ringleader gen numbers` writes; text goes to a job that reads text (e.g. wordcount)";

/// Refuses a file that does not start and end with the Arrow IPC magic, before a reader
/// makes less of it ("does not contain correct footer").
fn check_magic(file: &mut File, path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| Error::io(path, e);
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 6];
    let mut tail = [0u8; 6];
    if len < 2 * MAGIC.len() as u64 {
        return Err(Error::format(path, NOT_IPC));
    }
    file.read_exact(&mut head).map_err(io)?;
    file.seek(SeekFrom::End(-(MAGIC.len() as i64))).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    if head != MAGIC || tail != MAGIC {
        return Err(Error::format(path, NOT_IPC));
    }
    Ok(())
}

/// What an Arrow IPC file's footer says: its schema and how many record batches it holds.
pub struct Footer {
    /// The file's schema.
    pub schema: SchemaRef,
    /// Number of record batches.
    pub batches: usize,
}

impl Footer {
    /// Reads the footer of `path` with plain reads (nothing mapped, no batch read): for
    /// planning, outside any task.
    pub fn read(path: &Path) -> Result<Footer> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        check_magic(&mut file, path)?;
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
            .map_err(|e| Error::format(path, e))?;
        Ok(Footer {
            schema: reader.schema(),
            batches: reader.num_batches(),
        })
    }
}

/// A memory-mapped Arrow IPC file with its footer parsed.
pub struct IpcFile {
    buffer: Buffer,
    schema: SchemaRef,
    blocks: Vec<Block>,
    dictionaries: Vec<Block>,
    version: arrow_ipc::MetadataVersion,
}

impl IpcFile {
    /// Maps and parses `path`; errors name the file.
    pub fn open(path: &Path) -> Result<IpcFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let len = usize::try_from(len).map_err(|_| Error::format(path, "too large to map"))?;
        if len < 10 {
            return Err(Error::format(path, NOT_IPC));
        }
        let buffer = crate::io::mapped::map(&file, path, 0, len, false)?;
        if buffer.len() < 2 * MAGIC.len() || !buffer.starts_with(MAGIC) || !buffer.ends_with(MAGIC) {
            return Err(Error::format(path, NOT_IPC));
        }
        let trailer_start = buffer.len() - 10;
        let trailer: [u8; 10] = buffer[trailer_start..]
            .try_into()
            .map_err(|_| Error::format(path, "short trailer"))?;
        let footer_len = read_footer_length(trailer).map_err(|e| Error::format(path, e))?;
        if footer_len > trailer_start {
            return Err(Error::format(path, "footer length exceeds the file"));
        }
        let footer = root_as_footer(&buffer[trailer_start - footer_len..trailer_start])
            .map_err(|e| Error::format(path, format!("bad footer: {e}")))?;
        let schema = footer
            .schema()
            .ok_or_else(|| Error::format(path, "footer has no schema"))
            .and_then(|s| try_fb_to_schema(s).map_err(|e| Error::format(path, e)))
            .map(Arc::new)?;
        let blocks = footer
            .recordBatches()
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        let dictionaries = footer
            .dictionaries()
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        let version = footer.version();
        Ok(IpcFile {
            buffer,
            schema,
            blocks,
            dictionaries,
            version,
        })
    }

    /// The file's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Number of record batches.
    pub fn num_batches(&self) -> usize {
        self.blocks.len()
    }

    fn decoder(&self, path: &Path, column: Option<usize>) -> Result<FileDecoder> {
        let mut decoder = FileDecoder::new(self.schema.clone(), self.version);
        if let Some(c) = column {
            decoder = decoder.with_projection(vec![c]);
        }
        for block in &self.dictionaries {
            let data = self.block_data(path, block)?;
            super::guarded(path, || {
                decoder
                    .read_dictionary(block, &data)
                    .map_err(|e| Error::format(path, e))
            })?;
        }
        Ok(decoder)
    }

    fn block_data(&self, path: &Path, block: &Block) -> Result<Buffer> {
        let start = usize::try_from(block.offset()).map_err(|_| Error::format(path, "negative block offset"))?;
        let body = usize::try_from(block.bodyLength()).map_err(|_| Error::format(path, "negative block length"))?;
        let meta =
            usize::try_from(block.metaDataLength()).map_err(|_| Error::format(path, "negative metadata length"))?;
        let len = body
            .checked_add(meta)
            .ok_or_else(|| Error::format(path, "block length overflows"))?;
        if start.checked_add(len).is_none_or(|e| e > self.buffer.len()) {
            return Err(Error::format(
                path,
                format!("block at offset {start} runs past the end of the file"),
            ));
        }
        Ok(self.buffer.slice_with_length(start, len))
    }
}

/// Index of `name` in `schema`, or of its first `Int64` column when `name` is `None`.
pub fn find_int64_column(path: &Path, schema: &SchemaRef, name: Option<&str>) -> Result<usize> {
    match name {
        Some(name) => {
            let (i, field) = schema
                .column_with_name(name)
                .ok_or_else(|| Error::format(path, format!("no column named {name:?}")))?;
            if field.data_type() != &DataType::Int64 {
                return Err(Error::format(
                    path,
                    format!("column {name:?} is {}, not Int64", field.data_type()),
                ));
            }
            Ok(i)
        }
        None => schema
            .fields()
            .iter()
            .position(|f| f.data_type() == &DataType::Int64)
            .ok_or_else(|| Error::format(path, "has no Int64 column")),
    }
}

/// Streams batches `[first, end)` of `path`, projected to `column` if given.
pub fn open(path: &Path, first: usize, end: usize, column: Option<usize>) -> Result<ChunkStream> {
    let file = IpcFile::open(path)?;
    let decoder = file.decoder(path, column)?;
    let path = path.to_path_buf();
    let end = end.min(file.num_batches());
    Ok(Box::new((first..end).map(move |i| {
        let block = file.blocks[i];
        let data = file.block_data(&path, &block)?;
        let batch = super::guarded(&path, || {
            decoder
                .read_record_batch(&block, &data)
                .map_err(|e| Error::format(&path, format!("batch {i}: {e}")))?
                .ok_or_else(|| Error::format(&path, format!("batch {i} is missing")))
        })?;
        Ok(Chunk::Arrow(batch))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_arrow_ipc_is_named_and_told_what_to_do() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let text = dir.path().join("in.txt");
        std::fs::write(&text, "hello world\nfoo bar\n".repeat(1000)).expect("write");
        let short = dir.path().join("short.arrow");
        std::fs::write(&short, "ARROW1").expect("write");
        for path in [&text, &short] {
            for error in [Footer::read(path).err(), IpcFile::open(path).err()] {
                let message = error.expect("refused").to_string();
                assert!(
                    message.starts_with(&path.display().to_string())
                        && message.contains("not an Arrow IPC file")
                        && message.contains("ringleader gen numbers"),
                    "{message}"
                );
            }
        }
    }
}
