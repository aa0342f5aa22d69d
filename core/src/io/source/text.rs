//! Reading text files as lines. A split owns the lines whose first byte lies inside it, as
//! Hadoop's line reader does: a split that starts mid-line skips to the next line, and the
//! last line of a split may run past its end.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::data::{CHUNK_ROWS, Chunk, ChunkStream};
use crate::error::{Error, Result};

/// Lines read per sampling window.
const SAMPLE_WINDOW_LINES: usize = 200;
/// A chunk closes at this many bytes of text even if it has fewer than CHUNK_ROWS lines.
const CHUNK_BYTES: usize = 1 << 20;
/// The longest line read (64 MiB): a longer one is an error naming the file and line, not
/// an unbounded allocation (a binary file or one without newlines read as text).
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// The error for a line longer than [`MAX_LINE_BYTES`] starting at byte `line_start`.
pub fn line_too_long(path: &Path, line_start: u64) -> Error {
    let line = line_number(path, line_start).map_or_else(|_| "?".to_string(), |n| n.to_string());
    Error::format(
        path,
        format!(
            "line {line} (at byte {line_start}) is longer than {} MiB without a newline: is this a text file? (read records with record_files, Arrow with arrow_files)",
            MAX_LINE_BYTES >> 20
        ),
    )
}

struct LineReader {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
    end: u64,
    lossy: bool,
}

impl LineReader {
    fn seek_to(&mut self, start: u64) -> Result<()> {
        let from = start.saturating_sub(1);
        self.reader
            .seek(SeekFrom::Start(from))
            .map_err(|e| Error::io(&self.path, e))?;
        self.pos = from;
        if start > 0 {
            // Skip the rest of the line that began before `start`; if byte start-1 is a
            // newline, this consumes just that byte and the line at `start` is ours.
            loop {
                let buf = self.reader.fill_buf().map_err(|e| Error::io(&self.path, e))?;
                if buf.is_empty() {
                    break;
                }
                let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                self.reader.consume(n);
                self.pos += n as u64;
                if found {
                    break;
                }
                if self.pos - from > MAX_LINE_BYTES {
                    return Err(line_too_long(&self.path, from));
                }
            }
        }
        Ok(())
    }

    fn next_line(&mut self) -> Result<Option<String>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(64);
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        let line_start = self.pos;
        if n as u64 > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            return Err(line_too_long(&self.path, line_start));
        }
        self.pos += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        match String::from_utf8(buf) {
            Ok(s) => Ok(Some(s)),
            Err(e) if self.lossy => Ok(Some(String::from_utf8_lossy(e.as_bytes()).into_owned())),
            Err(e) => {
                let offset = line_start + e.utf8_error().valid_up_to() as u64;
                Err(Error::InvalidUtf8 {
                    path: self.path.clone(),
                    line: line_number(&self.path, line_start)?,
                    offset,
                })
            }
        }
    }
}

/// 1-based number of the line starting at byte `line_start` (only computed for errors).
fn line_number(path: &Path, line_start: u64) -> Result<u64> {
    Ok(super::count_byte(path, 0, line_start, b'\n')? + 1)
}

struct TextSplit {
    lines: LineReader,
    /// Window starts still to visit when sampling.
    windows: VecDeque<u64>,
    sampling: bool,
    done: bool,
}

impl Iterator for TextSplit {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Result<Chunk>> {
        if self.done {
            return None;
        }
        let result = (|| {
            let mut rows: Vec<String> = Vec::new();
            let mut bytes = 0;
            if self.sampling {
                while let Some(start) = self.windows.pop_front() {
                    self.lines.seek_to(start)?;
                    for _ in 0..SAMPLE_WINDOW_LINES {
                        match self.lines.next_line()? {
                            Some(line) => rows.push(line),
                            None => break,
                        }
                    }
                }
                self.done = true;
                return Ok(rows);
            }
            while rows.len() < CHUNK_ROWS && bytes < CHUNK_BYTES {
                match self.lines.next_line()? {
                    Some(line) => {
                        bytes += line.len() + 1;
                        rows.push(line);
                    }
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            Ok(rows)
        })();
        match result {
            Ok(rows) if rows.is_empty() && self.done => None,
            Ok(rows) => Some(Ok(Chunk::from_rows(rows))),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Streams the lines of `path` that start in `[start, end)`.
pub fn open(path: &Path, start: u64, end: u64, lossy: bool, sample_windows: Option<u32>) -> Result<ChunkStream> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut lines = LineReader {
        path: path.to_path_buf(),
        reader: BufReader::with_capacity(1 << 20, file),
        pos: 0,
        end,
        lossy,
    };
    let windows = match sample_windows {
        Some(w) => super::window_starts(start, end, w, 1).into(),
        None => {
            lines.seek_to(start)?;
            VecDeque::new()
        }
    };
    Ok(Box::new(TextSplit {
        lines,
        windows,
        sampling: sample_windows.is_some(),
        done: false,
    }))
}
