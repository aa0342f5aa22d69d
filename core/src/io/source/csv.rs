//! Reading CSV files with a header line, parsed against the row type's schema so a value of
//! the wrong type is an error naming the file, line and column.
//!
//! A large file is read by several tasks, each owning the records whose first byte lies in
//! its byte range. A newline ends a record only outside quotes, and whether a byte is inside
//! quotes depends on every quote before it (RFC 4180: a quote inside a quoted field is
//! doubled, which keeps the count even). So planning counts the quotes before each range's
//! edges once, at memory speed, and a task finds where its first and last records begin from
//! those counts alone: every record is read by exactly one task, quoted newlines included.
//!
//! Only the columns the row type names are parsed, found in the header by name.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{CHUNK_ROWS, Chunk, ChunkStream};
use crate::error::{Error, Result};

/// What one task reads of a CSV file: a byte range, the quote state at its edges, and which
/// of the file's columns become the row type's fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Piece {
    /// The range's first byte: the task reads the records that begin in `[start, end)`.
    pub start: u64,
    /// One past the range's last byte.
    pub end: u64,
    /// Whether byte `start - 1` lies inside quotes (an odd number of `"` before it).
    pub start_quoted: bool,
    /// Whether byte `end - 1` lies inside quotes.
    pub end_quoted: bool,
    /// The file's column of each of the row type's fields, in the fields' order.
    pub columns: Vec<u32>,
    /// How many columns the file has.
    pub width: u32,
}

/// Cuts the CSV file `path` (`len` bytes) into pieces of about `split` bytes, and finds each
/// field of the row type (`schema`) in the file's header by name: a missing one is an error
/// naming it and the header, before any task runs.
pub fn plan(path: &Path, len: u64, schema: &SchemaRef, split: u64) -> Result<Vec<Piece>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let header_end = record_start(path, &file, 1, false)?.min(len);
    let mut header = vec![0u8; header_end as usize];
    file.read_exact_at(&mut header, 0).map_err(|e| Error::io(path, e))?;
    let names = header_names(path, &header)?;
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            names
                .iter()
                .position(|name| name == field.name())
                .map(|c| c as u32)
                .ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "has no column {:?}, which the row type needs (its header names: {})",
                            field.name(),
                            names.join(", ")
                        ),
                    )
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    let ranges: Vec<(u64, u64)> = super::byte_ranges(len - header_end, split, 1)
        .into_iter()
        .map(|(start, end)| (header_end + start, header_end + end))
        .collect();
    let ranges = if ranges.is_empty() { vec![(len, len)] } else { ranges };
    // The quote state before each range's start (the first begins right after the header,
    // outside quotes), and before the end of the last.
    let edges: Vec<u64> = ranges.iter().map(|&(start, _)| start).chain([len]).collect();
    let quoted = quote_states(path, &edges)?;
    Ok(ranges
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| Piece {
            start,
            end,
            start_quoted: quoted[i],
            end_quoted: quoted[i + 1],
            columns: columns.clone(),
            width: names.len() as u32,
        })
        .collect())
}

/// The column names in a header line.
fn header_names(path: &Path, header: &[u8]) -> Result<Vec<String>> {
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(header, Some(0))
        .map_err(|e| Error::format(path, format!("has an unreadable header line: {e}")))?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

/// Whether byte `edge - 1` lies inside quotes, for each of the ascending `edges` (each at
/// least 1): the parity of the quotes before it, the stretches between edges counted in
/// parallel.
fn quote_states(path: &Path, edges: &[u64]) -> Result<Vec<bool>> {
    let stops: Vec<u64> = edges.iter().map(|edge| edge.saturating_sub(1)).collect();
    let counts = stops
        .par_iter()
        .enumerate()
        .map(|(i, &stop)| {
            let from = if i == 0 { 0 } else { stops[i - 1] };
            super::count_byte(path, from, stop, b'"')
        })
        .collect::<Result<Vec<u64>>>()?;
    let mut odd = false;
    Ok(counts
        .into_iter()
        .map(|count| {
            odd ^= count % 2 == 1;
            odd
        })
        .collect())
}

/// Where the first record beginning at or after byte `at` (at least 1) begins, given whether
/// byte `at - 1` lies inside quotes: just past the first newline outside quotes from byte
/// `at - 1` on, or the file's end.
fn record_start(path: &Path, file: &File, at: u64, quoted: bool) -> Result<u64> {
    let mut quoted = quoted;
    let mut pos = at.saturating_sub(1);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read_at(&mut buf, pos).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(pos.max(at));
        }
        for i in memchr::memchr2_iter(b'"', b'\n', &buf[..n]) {
            if buf[i] == b'"' {
                quoted = !quoted;
            } else if !quoted {
                return Ok(pos + i as u64 + 1);
            }
        }
        pos += n as u64;
    }
}

/// Streams the rows of one piece of the CSV file `path`, as the row type's `schema`.
pub fn open(path: &Path, schema: SchemaRef, piece: &Piece) -> Result<ChunkStream> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    super::check_extent(path, &file, piece.end)?;
    let first = record_start(path, &file, piece.start, piece.start_quoted)?;
    let last = record_start(path, &file, piece.end, piece.end_quoted)?.max(first);
    let file_schema = file_schema(path, &schema, piece)?;
    file.seek(SeekFrom::Start(first)).map_err(|e| Error::io(path, e))?;
    let body = BufReader::with_capacity(1 << 20, file.take(last - first));
    let mut reader = arrow_csv::ReaderBuilder::new(file_schema.clone())
        .with_header(false)
        .with_batch_size(CHUNK_ROWS)
        .with_projection(piece.columns.iter().map(|&c| c as usize).collect())
        .build_buffered(body)
        .map_err(|e| Error::format(path, e))?;
    let path = path.to_path_buf();
    Ok(Box::new(std::iter::from_fn(move || {
        super::guarded(&path, || Ok(reader.next())).transpose().map(|b| {
            b.and_then(|b| {
                let batch = b.map_err(|e| {
                    let lines_before = || super::count_byte(&path, 0, first, b'\n').unwrap_or(0);
                    Error::format(&path, explain(&e.to_string(), &file_schema, lines_before))
                })?;
                as_row_type(&path, batch, &schema).map(Chunk::Arrow)
            })
        })
    })))
}

/// A batch read with every column nullable, as the row type's `schema`: an empty value (which
/// arrow-csv reads as null) is an empty string in a text field, and an error naming the
/// column in any other field that is not an `Option`.
fn as_row_type(path: &Path, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if field.is_nullable() || column.null_count() == 0 {
                return Ok(column.clone());
            }
            match column.as_any().downcast_ref::<StringArray>() {
                Some(text) => {
                    Ok(Arc::new(text.iter().map(|v| Some(v.unwrap_or(""))).collect::<StringArray>()) as ArrayRef)
                }
                None => Err(Error::format(
                    path,
                    format!(
                        "column {:?} has an empty value, which a {} field cannot hold (make the field an Option)",
                        field.name(),
                        field.data_type()
                    ),
                )),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::format(path, e))
}

/// The schema of all the file's columns: the row type's fields where they are, and text
/// (never parsed, as they are not projected) elsewhere.
fn file_schema(path: &Path, schema: &SchemaRef, piece: &Piece) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = (0..piece.width)
        .map(|c| Field::new(format!("_{c}"), DataType::Utf8, true))
        .collect();
    if piece.columns.len() != schema.fields().len() {
        return Err(Error::format(
            path,
            "the plan's columns do not match the row type's fields",
        ));
    }
    for (field, &column) in schema.fields().iter().zip(&piece.columns) {
        let Some(slot) = fields.get_mut(column as usize) else {
            return Err(Error::format(path, "the plan names a column past the file's width"));
        };
        // Nullable here: an empty value is null to arrow-csv, settled in `as_row_type`.
        *slot = field.as_ref().clone().with_nullable(true);
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// A parse error of arrow-csv in the user's terms: the file's line (arrow counts the records
/// of a piece, which begins after `lines_before()` lines of the file) and the column's name,
/// not its index. Any other message is kept as it is.
fn explain(message: &str, schema: &SchemaRef, lines_before: impl FnOnce() -> u64) -> String {
    let value_error = (|| {
        let rest = message.split("Error while parsing value '").nth(1)?;
        let (value, rest) = rest.split_once("' as type '")?;
        let (kind, rest) = rest.split_once("' for column ")?;
        let (column, rest) = rest.split_once(" at line ")?;
        let line: u64 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        let index: usize = column.parse().ok()?;
        let name = schema.fields().get(index)?.name().clone();
        Some((line + 1, format!("column {name:?}: cannot read {value:?} as {kind}")))
    })();
    // "incorrect number of fields for line N, expected X got Y", N counted from 1.
    let width_error = || {
        let rest = message.split("incorrect number of fields for line ").nth(1)?;
        let (line, rest) = rest.split_once(", expected ")?;
        let line: u64 = line.parse().ok()?;
        let (expected, got) = rest.split_once(" got ")?;
        Some((line, format!("has {got} fields where the header has {expected}")))
    };
    match value_error.or_else(width_error) {
        Some((line, what)) => format!("line {}, {what}", lines_before() + line),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("age", DataType::Int64, false),
        ]))
    }

    /// Every row of every piece of `path` cut at `split` bytes, as "name:age".
    fn read_all(path: &Path, schema: &SchemaRef, split: u64) -> Result<Vec<String>> {
        let len = std::fs::metadata(path).expect("metadata").len();
        let mut rows = Vec::new();
        for piece in plan(path, len, schema, split)? {
            for chunk in open(path, schema.clone(), &piece)? {
                let Chunk::Arrow(batch) = chunk? else {
                    panic!("arrow chunks")
                };
                let names = arrow_array::cast::as_string_array(batch.column(0));
                let ages = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .expect("ints");
                rows.extend((0..batch.num_rows()).map(|i| format!("{}:{}", names.value(i), ages.value(i))));
            }
        }
        Ok(rows)
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_line_and_column_name() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "name,age\nada,36\nbob,forty\n").expect("write");
        let message = read_all(&path, &people(), 1 << 20).expect_err("an error").to_string();
        assert!(
            message.contains("people.csv")
                && message.contains("line 3, column \"age\": cannot read \"forty\" as Int64"),
            "{message}"
        );
        // Cut into pieces of a few bytes, the line is still the file's.
        let message = read_all(&path, &people(), 4).expect_err("an error").to_string();
        assert!(message.contains("line 3, column \"age\""), "{message}");
        std::fs::write(&path, "name,age\nada,36\nbob\n").expect("write");
        let message = read_all(&path, &people(), 4).expect_err("an error").to_string();
        assert!(
            message.contains("line 3, has 1 fields where the header has 2"),
            "{message}"
        );
    }

    #[test]
    fn columns_are_found_by_name_and_only_those_parsed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wide.csv");
        // "note" holds values no number parses from: it is not read.
        std::fs::write(&path, "age,note,name\n36,x y,ada\n41,\"a,\nb\",bob\n").expect("write");
        assert_eq!(read_all(&path, &people(), 1 << 20).expect("rows"), ["ada:36", "bob:41"]);
        let message = read_all(
            &path,
            &Arc::new(Schema::new(vec![Field::new("city", DataType::Utf8, false)])),
            8,
        )
        .expect_err("missing")
        .to_string();
        assert!(
            message.contains("no column \"city\"") && message.contains("age, note, name"),
            "{message}"
        );
    }

    #[test]
    fn quoted_newlines_and_quotes_are_read_once_whatever_the_cut() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("q.csv");
        let mut body = String::from("name,age\n");
        let mut expected = Vec::new();
        for i in 0..60 {
            let name = match i % 4 {
                0 => format!("plain{i}"),
                1 => format!("line\nbreak{i}"),
                2 => format!("say \"\"hi\"\"\n,{i}"),
                _ => format!("a,\r\nb{i}"),
            };
            let quoted = i % 4 != 0;
            body.push_str(&if quoted {
                format!("\"{name}\",{i}\n")
            } else {
                format!("{name},{i}\n")
            });
            expected.push(format!("{}:{i}", name.replace("\"\"", "\"")));
        }
        std::fs::write(&path, &body).expect("write");
        for split in [1, 2, 3, 5, 7, 16, 100, 1 << 20] {
            assert_eq!(
                read_all(&path, &people(), split).expect("rows"),
                expected,
                "split {split}"
            );
        }
    }

    /// A field as RFC 4180 writes it: quoted (inner quotes doubled) when it holds a quote,
    /// a comma or a line break.
    fn written(field: &str) -> String {
        if field.contains(['"', ',', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the cut, every record is read once and as it was written: the generator's
        /// own values are the oracle.
        #[test]
        fn any_cut_reads_every_record_once(
            names in proptest::collection::vec("[a-c\",\n\r ]{0,12}", 0..40),
            split in 1u64..300,
        ) {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("g.csv");
            let mut body = String::from("age,name\r\n");
            let mut expected = Vec::new();
            for (i, name) in names.iter().enumerate() {
                // A final \r of an unquoted-looking field would be read as a line end's.
                body.push_str(&format!("{i},{}\n", written(name)));
                expected.push(format!("{name}:{i}"));
            }
            std::fs::write(&path, &body).expect("write");
            let rows = read_all(&path, &people(), split).expect("rows");
            proptest::prop_assert_eq!(rows, expected);
        }
    }

    #[test]
    fn an_empty_value_is_empty_text_or_an_error_naming_its_column() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("e.csv");
        std::fs::write(&path, "name,age\n,3\n\"\",4\n").expect("write");
        assert_eq!(read_all(&path, &people(), 1 << 20).expect("rows"), [":3", ":4"]);
        std::fs::write(&path, "name,age\nada,\n").expect("write");
        let message = read_all(&path, &people(), 1 << 20).expect_err("empty age").to_string();
        assert!(message.contains("column \"age\" has an empty value"), "{message}");
    }

    #[test]
    fn a_file_of_only_a_header_or_nothing_has_no_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.csv");
        for body in ["name,age\n", "name,age"] {
            std::fs::write(&path, body).expect("write");
            assert!(read_all(&path, &people(), 2).expect("rows").is_empty(), "{body:?}");
        }
    }
}
