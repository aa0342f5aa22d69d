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
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(CHUNK_ROWS)
        .build(file)
        .map_err(|e| Error::format(path, e))?;
    let path = path.to_path_buf();
    let mut reader = reader;
    Ok(Box::new(std::iter::from_fn(move || {
        super::guarded(&path, || Ok(reader.next())).transpose().map(|b| {
            b.and_then(|b| {
                b.map(Chunk::Arrow)
                    .map_err(|e| Error::format(&path, explain(&e.to_string(), &schema)))
            })
        })
    })))
}

/// A parse error of arrow-csv in the user's terms: the file's line (arrow counts records
/// from 0, the header being 0) and the column's name, not its index. Any other message is
/// kept as it is.
fn explain(message: &str, schema: &SchemaRef) -> String {
    let parsed = (|| {
        let rest = message.split("Error while parsing value '").nth(1)?;
        let (value, rest) = rest.split_once("' as type '")?;
        let (kind, rest) = rest.split_once("' for column ")?;
        let (column, rest) = rest.split_once(" at line ")?;
        let line: usize = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        let index: usize = column.parse().ok()?;
        let name = schema.fields().get(index)?.name().clone();
        Some(format!(
            "line {}, column {name:?}: cannot read {value:?} as {kind}",
            line + 1
        ))
    })();
    parsed.unwrap_or_else(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_line_and_column_name() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "name,age\nada,36\nbob,forty\n").expect("write");
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("age", DataType::Int64, false),
        ]));
        let error = open(&path, schema.clone())
            .expect("opens")
            .find_map(|chunk| chunk.err())
            .expect("an error");
        let message = error.to_string();
        assert!(
            message.contains("people.csv")
                && message.contains("line 3, column \"age\": cannot read \"forty\" as Int64"),
            "{message}"
        );
        // The first row after the header is the file's line 2.
        std::fs::write(&path, "name,age\nbob,forty\n").expect("write");
        let error = open(&path, schema.clone())
            .expect("opens")
            .find_map(|chunk| chunk.err())
            .expect("an error");
        assert!(error.to_string().contains("line 2, column \"age\""), "{error}");
    }
}
