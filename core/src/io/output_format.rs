//! The formats of a job's output files: text lines, Arrow IPC or Parquet, each written
//! part file by part file (a stored dataset's format is [`crate::io::store::DatasetFormat`]).

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a job writes its rows into a directory of part files (a job's `--output-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per row (`Dataset::save_text`): `part-00000`, …
    #[default]
    Text,
    /// Arrow IPC files (`Dataset::save_arrow`): `part-00000.arrow`, …
    Arrow,
    /// Parquet files with Snappy-compressed pages (`Dataset::save_parquet`, with the `parquet` feature): `part-00000.parquet`, …
    Parquet,
}

impl OutputFormat {
    /// The part files' extension (none for text).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            OutputFormat::Text => None,
            OutputFormat::Arrow => Some("arrow"),
            OutputFormat::Parquet => Some("parquet"),
        }
    }

    /// Fails with [`Error::FeatureOff`] if this binary cannot write the format (Parquet
    /// without the `parquet` feature); a job checks it before any task runs.
    pub fn check_built(self) -> Result<()> {
        match self {
            OutputFormat::Parquet if !cfg!(feature = "parquet") => Err(Error::FeatureOff {
                what: "writing Parquet",
                feature: "parquet",
            }),
            _ => Ok(()),
        }
    }

    /// Writes `batches` of `schema` to `out` in this columnar format; the rows written (text
    /// is written row by row, never from batches: refused).
    pub fn write(
        self,
        path: &std::path::Path,
        out: &mut std::io::BufWriter<crate::io::writeback::WritebackFile>,
        schema: arrow_schema::SchemaRef,
        batches: impl Iterator<Item = Result<RecordBatch>>,
    ) -> Result<u64> {
        let failed = |e: &dyn std::fmt::Display| Error::io(path, std::io::Error::other(e.to_string()));
        match self {
            OutputFormat::Text => Err(Error::Plan(format!(
                "{}: text is written row by row (save_text), not from Arrow batches",
                path.display()
            ))),
            OutputFormat::Arrow => {
                let mut writer = arrow_ipc::writer::FileWriter::try_new(out, &schema).map_err(|e| failed(&e))?;
                let rows = write_each(batches, |b| writer.write(b).map_err(|e| failed(&e)))?;
                writer.finish().map_err(|e| failed(&e))?;
                Ok(rows)
            }
            #[cfg(not(feature = "parquet"))]
            OutputFormat::Parquet => self.check_built().map(|()| 0),
            #[cfg(feature = "parquet")]
            OutputFormat::Parquet => {
                let properties = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let mut writer =
                    parquet::arrow::ArrowWriter::try_new(out, schema, Some(properties)).map_err(|e| failed(&e))?;
                let rows = write_each(batches, |b| writer.write(b).map_err(|e| failed(&e)))?;
                writer.close().map_err(|e| failed(&e))?;
                Ok(rows)
            }
        }
    }
}

/// Hands every batch to `write`; the rows written.
fn write_each(
    batches: impl Iterator<Item = Result<RecordBatch>>,
    mut write: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<u64> {
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        write(&batch)?;
    }
    Ok(rows)
}
