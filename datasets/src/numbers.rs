//! An `int64` column named `value` in Arrow IPC files, with values in ±10⁹ so that sums of
//! billions of rows stay far from overflow.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::write::{prepare_dir, progress, write_files};
use crate::{Error, Result, file_rows};

/// Rows per record batch (8 MiB of values).
pub const BATCH_ROWS: u64 = 1 << 20;

/// Writes `rows` values into `files` files `numbers-NNNNN.arrow` under `dir`; returns the
/// files and the sum of every value (computed while writing, for checking).
pub fn generate(dir: &Path, rows: u64, files: u64, seed: u64, overwrite: bool) -> Result<(Vec<PathBuf>, i128)> {
    if files == 0 {
        return Err(Error::Invalid("--files must be at least 1".into()));
    }
    prepare_dir(dir, overwrite)?;
    let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Int64, false)]));
    let bar = progress(rows * 8, "gen numbers");
    let sums = std::sync::Mutex::new(0i128);
    let paths = write_files(
        dir,
        files,
        |i| format!("numbers-{i:05}.arrow"),
        &bar,
        |i, out| {
            let (start, end) = file_rows(rows, files, i);
            let mut writer = FileWriter::try_new(out, &schema)?;
            let mut row = start;
            let mut sum = 0i128;
            while row < end {
                let stop = (row + BATCH_ROWS).min(end);
                // Seeded per batch, so the values do not depend on the file count's batch cuts
                // beyond batch alignment.
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let values: Vec<i64> = (row..stop)
                    .map(|_| rng.gen_range(-1_000_000_000..=1_000_000_000))
                    .collect();
                sum += values.iter().map(|&v| v as i128).sum::<i128>();
                let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])?;
                writer.write(&batch)?;
                bar.inc((stop - row) * 8);
                row = stop;
            }
            writer.finish()?;
            *sums.lock().unwrap_or_else(|e| e.into_inner()) += sum;
            Ok(())
        },
    )?;
    let total = *sums.lock().unwrap_or_else(|e| e.into_inner());
    Ok((paths, total))
}
