//! Reading Parquet files by row group (with the `parquet` feature; without it, both functions
//! fail with [`Error::FeatureOff`]).

#[cfg(feature = "parquet")]
use std::fs::File;
use std::path::Path;

#[cfg(feature = "parquet")]
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::data::ChunkStream;
#[cfg(feature = "parquet")]
use crate::data::{CHUNK_ROWS, Chunk};
use crate::error::{Error, Result};

/// What reading Parquet without the feature fails with.
#[cfg(not(feature = "parquet"))]
const OFF: Error = Error::FeatureOff {
    what: "reading Parquet",
    feature: "parquet",
};

/// Number of row groups in `path`.
#[cfg(not(feature = "parquet"))]
pub fn row_groups(_path: &Path) -> Result<usize> {
    Err(OFF)
}

/// Streams the given row groups of `path`, only the named top-level columns if given.
#[cfg(not(feature = "parquet"))]
pub fn open(_path: &Path, _row_groups: &[usize], _columns: Option<&[String]>) -> Result<ChunkStream> {
    Err(OFF)
}

/// Number of row groups in `path`.
#[cfg(feature = "parquet")]
pub fn row_groups(path: &Path) -> Result<usize> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::format(path, e))?;
    Ok(builder.metadata().num_row_groups())
}

/// Streams the given row groups of `path`, only the named top-level columns if given (a name
/// the file lacks is left to the row decoder, which names it).
#[cfg(feature = "parquet")]
pub fn open(path: &Path, row_groups: &[usize], columns: Option<&[String]>) -> Result<ChunkStream> {
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
    let builder = match columns {
        Some(names) => {
            let roots: Vec<usize> = builder
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, field)| names.contains(field.name()))
                .map(|(i, _)| i)
                .collect();
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
        None => builder,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::output_format::OutputFormat;

    /// A binary built without the `parquet` feature refuses Parquet with an error that names the
    /// feature (never a panic); one built with it reads, and fails on a missing file by its path.
    #[test]
    fn parquet_is_read_and_written_only_with_its_feature_and_the_error_says_so() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing.parquet");
        let error = row_groups(&path).expect_err("no such file");
        let opened = open(&path, &[0], None).err().expect("no such file");
        if cfg!(feature = "parquet") {
            assert!(matches!(error, Error::Io { .. }), "{error}");
            assert!(matches!(opened, Error::Io { .. }), "{opened}");
            assert!(OutputFormat::Parquet.check_built().is_ok());
        } else {
            for e in [
                error,
                opened,
                OutputFormat::Parquet.check_built().expect_err("not built"),
            ] {
                assert!(matches!(e, Error::FeatureOff { feature: "parquet", .. }), "{e}");
                assert!(e.to_string().contains("--features parquet"), "{e}");
            }
        }
        assert!(OutputFormat::Arrow.check_built().is_ok());
    }
}
