//! Data of the shape of the db-benchmark's (the benchmark DuckDB Labs runs for DuckDB,
//! Polars, DataFusion, Spark and others), for its groupby and join questions.
//!
//! **groupby** (`G1_<rows>_<K>`), as its `groupby-datagen.R` draws it: `id1`, `id2` one of
//! K strings `id001`..; `id3` one of rows/K strings `id0000000001`..; `id4`, `id5` integers
//! in 1..=K; `id6` an integer in 1..=rows/K; `v1` in 1..=5; `v2` in 1..=15; `v3` a number
//! in [0, 100) with 6 decimals. Every column drawn uniformly and independently.
//!
//! **join** (`J1_<rows>`): a table `x` of `rows` rows joined with `small` (rows/10⁶ rows),
//! `medium` (rows/10³) and `big` (rows). Each lookup table holds every key of its size once
//! (`id1` in 1..=rows/10⁶, `id2` in 1..=rows/10³, `id3` in 1..=rows); `x` draws each of
//! its keys from a range a ninth larger, so about 90% of its rows find a match, as in the
//! benchmark. `id4`..`id6` are the keys as strings (`id<key>`), `v1`, `v2` numbers in
//! [0, 100) with 6 decimals.
//!
//! Both are written as CSV (a header line) and as Parquet, with the same rows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::write::prepare_dir;
use crate::{Error, Result};

/// Rows drawn and written at a time.
const BATCH: u64 = 1 << 18;

/// One column of a table being drawn.
enum Column {
    Text(Vec<String>),
    Int(Vec<i64>),
    Float(Vec<f64>),
}

impl Column {
    fn array(self) -> ArrayRef {
        match self {
            Column::Text(v) => Arc::new(StringArray::from(v)),
            Column::Int(v) => Arc::new(Int64Array::from(v)),
            Column::Float(v) => Arc::new(Float64Array::from(v)),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Column::Text(_) => DataType::Utf8,
            Column::Int(_) => DataType::Int64,
            Column::Float(_) => DataType::Float64,
        }
    }

    /// Row `i` as CSV text.
    fn write(&self, i: usize, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Column::Text(v) => out.write_all(v[i].as_bytes()),
            Column::Int(v) => write!(out, "{}", v[i]),
            Column::Float(v) => write!(out, "{}", v[i]),
        }
    }
}

/// A number in [0, 100) rounded to 6 decimals (R's `round(runif(n, max = 100), 6)`).
fn measure(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.r#gen::<f64>() * 100.0 * 1e6).round() / 1e6
}

/// Writes a table to `dir/<name>.csv` and `dir/<name>.parquet`, `rows` rows drawn a batch
/// at a time by `draw(rng, first, count)`; each file appears under its name once complete.
fn write_table(
    dir: &Path,
    name: &str,
    names: &[&str],
    rows: u64,
    seed: u64,
    draw: impl Fn(&mut Xoshiro256PlusPlus, u64, u64) -> Vec<Column>,
) -> Result<Vec<PathBuf>> {
    let csv_path = dir.join(format!("{name}.csv"));
    let parquet_path = dir.join(format!("{name}.parquet"));
    let (csv_temp, parquet_temp) = (
        dir.join(format!(".{name}.csv.tmp")),
        dir.join(format!(".{name}.parquet.tmp")),
    );
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| Error::io(&path, e)
    };
    let mut csv = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&csv_temp).map_err(io(&csv_temp))?);
    writeln!(csv, "{}", names.join(",")).map_err(io(&csv_temp))?;
    let mut parquet: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    let mut first = 0;
    while first < rows || (rows == 0 && parquet.is_none()) {
        let count = BATCH.min(rows - first);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (first / BATCH + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let columns = draw(&mut rng, first, count);
        for i in 0..count as usize {
            for (c, column) in columns.iter().enumerate() {
                if c > 0 {
                    csv.write_all(b",").map_err(io(&csv_temp))?;
                }
                column.write(i, &mut csv).map_err(io(&csv_temp))?;
            }
            csv.write_all(b"\n").map_err(io(&csv_temp))?;
        }
        let fields: Vec<Field> = names
            .iter()
            .zip(&columns)
            .map(|(n, c)| Field::new(*n, c.data_type(), false))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(Column::array).collect())?;
        let writer = match &mut parquet {
            Some(w) => w,
            None => {
                let file = std::fs::File::create(&parquet_temp).map_err(io(&parquet_temp))?;
                parquet.insert(
                    parquet::arrow::ArrowWriter::try_new(file, schema, None)
                        .map_err(|e| Error::Invalid(format!("{}: {e}", parquet_temp.display())))?,
                )
            }
        };
        writer
            .write(&batch)
            .map_err(|e| Error::Invalid(format!("{}: {e}", parquet_temp.display())))?;
        first += count;
        if rows == 0 {
            break;
        }
    }
    csv.flush().map_err(io(&csv_temp))?;
    if let Some(writer) = parquet {
        writer
            .close()
            .map_err(|e| Error::Invalid(format!("{}: {e}", parquet_temp.display())))?;
    }
    std::fs::rename(&csv_temp, &csv_path).map_err(io(&csv_path))?;
    std::fs::rename(&parquet_temp, &parquet_path).map_err(io(&parquet_path))?;
    Ok(vec![csv_path, parquet_path])
}

/// The groupby table `G1_<rows>_<groups>` (see the module's documentation) under `dir`.
pub fn groupby(dir: &Path, rows: u64, groups: u64, seed: u64, overwrite: bool) -> Result<Vec<PathBuf>> {
    if groups == 0 || rows < groups {
        return Err(Error::Invalid(format!(
            "--groups must be from 1 to --rows ({rows}), not {groups}"
        )));
    }
    prepare_dir(dir, overwrite)?;
    let small = (rows / groups).max(1);
    let names = ["id1", "id2", "id3", "id4", "id5", "id6", "v1", "v2", "v3"];
    write_table(dir, &format!("G1_{rows}_{groups}"), &names, rows, seed, |rng, _, n| {
        let mut ids = |range: u64, width: usize| -> Vec<String> {
            (0..n)
                .map(|_| format!("id{:0width$}", rng.gen_range(1..=range)))
                .collect()
        };
        let (id1, id2, id3) = (ids(groups, 3), ids(groups, 3), ids(small, 10));
        let mut ints = |range: i64| -> Vec<i64> { (0..n).map(|_| rng.gen_range(1..=range)).collect() };
        let (id4, id5, id6) = (ints(groups as i64), ints(groups as i64), ints(small as i64));
        let (v1, v2) = (ints(5), ints(15));
        let v3 = (0..n).map(|_| measure(rng)).collect();
        vec![
            Column::Text(id1),
            Column::Text(id2),
            Column::Text(id3),
            Column::Int(id4),
            Column::Int(id5),
            Column::Int(id6),
            Column::Int(v1),
            Column::Int(v2),
            Column::Float(v3),
        ]
    })
}

/// The join tables `J1_<rows>_x`, `_small`, `_medium` and `_big` (see the module's
/// documentation) under `dir`.
pub fn join(dir: &Path, rows: u64, seed: u64, overwrite: bool) -> Result<Vec<PathBuf>> {
    if rows == 0 {
        return Err(Error::Invalid("--rows must be at least 1".into()));
    }
    prepare_dir(dir, overwrite)?;
    let sizes = [(rows / 1_000_000).max(1), (rows / 1000).max(1), rows];
    // x's keys come from a range a ninth larger than the lookup tables': about 90% match.
    let wider = |n: u64| n + n.div_ceil(9);
    let key = |id: i64| format!("id{id}");
    let mut files = write_table(
        dir,
        &format!("J1_{rows}_x"),
        &["id1", "id2", "id3", "id4", "id5", "id6", "v1"],
        rows,
        seed,
        |rng, _, n| {
            let mut keys = |size: u64| -> Vec<i64> { (0..n).map(|_| rng.gen_range(1..=wider(size)) as i64).collect() };
            let (id1, id2, id3) = (keys(sizes[0]), keys(sizes[1]), keys(sizes[2]));
            let text = |ids: &[i64]| ids.iter().map(|&i| key(i)).collect::<Vec<_>>();
            let (id4, id5, id6) = (text(&id1), text(&id2), text(&id3));
            let v1 = (0..n).map(|_| measure(rng)).collect();
            vec![
                Column::Int(id1),
                Column::Int(id2),
                Column::Int(id3),
                Column::Text(id4),
                Column::Text(id5),
                Column::Text(id6),
                Column::Float(v1),
            ]
        },
    )?;
    // Each lookup table: every key of its size once, in order; `big` has each of x's three
    // keys (the smaller ones cycling).
    let tables: [(&str, &[&str], u64); 3] = [
        ("small", &["id1", "id4", "v2"], sizes[0]),
        ("medium", &["id1", "id2", "id4", "id5", "v2"], sizes[1]),
        ("big", &["id1", "id2", "id3", "id4", "id5", "id6", "v2"], sizes[2]),
    ];
    for (t, (name, names, size)) in tables.into_iter().enumerate() {
        let written = write_table(
            dir,
            &format!("J1_{rows}_{name}"),
            names,
            size,
            seed + 1 + t as u64,
            |rng, first, n| {
                let own: Vec<i64> = (first..first + n).map(|i| i as i64 + 1).collect();
                let cycle = |size: u64| own.iter().map(|&k| (k - 1) % size as i64 + 1).collect::<Vec<_>>();
                let text = |ids: &[i64]| ids.iter().map(|&i| key(i)).collect::<Vec<_>>();
                let v2: Vec<f64> = (0..n).map(|_| measure(rng)).collect();
                let mut columns = Vec::new();
                match t {
                    0 => {
                        columns.push(Column::Text(text(&own)));
                        columns.insert(0, Column::Int(own));
                    }
                    1 => {
                        let id1 = cycle(sizes[0]);
                        columns.extend([Column::Text(text(&id1)), Column::Text(text(&own))]);
                        columns.insert(0, Column::Int(own));
                        columns.insert(0, Column::Int(id1));
                    }
                    _ => {
                        let (id1, id2) = (cycle(sizes[0]), cycle(sizes[1]));
                        let texts = [text(&id1), text(&id2), text(&own)];
                        columns.extend([Column::Int(id1), Column::Int(id2), Column::Int(own)]);
                        columns.extend(texts.into_iter().map(Column::Text));
                    }
                }
                columns.push(Column::Float(v2));
                columns
            },
        )?;
        files.extend(written);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupby_data_has_the_benchmarks_columns_and_cardinalities_in_both_formats() {
        let dir = tempfile::tempdir().expect("dir");
        let files = groupby(dir.path(), 20_000, 10, 3, false).expect("generate");
        let csv = std::fs::read_to_string(&files[0]).expect("csv");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("id1,id2,id3,id4,id5,id6,v1,v2,v3"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 20_000);
        let distinct = |c: usize| {
            rows.iter()
                .map(|r| r[c])
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert_eq!((distinct(0), distinct(3), distinct(6), distinct(7)), (10, 10, 5, 15));
        assert!(distinct(2) > 1500 && distinct(2) <= 2000, "id3: {}", distinct(2));
        assert!(rows.iter().all(|r| r[0].len() == 5 && r[2].len() == 12));
        let parquet = std::fs::File::open(&files[1]).expect("parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(parquet)
            .expect("reader")
            .build()
            .expect("build");
        let read: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
        assert_eq!(read, 20_000);
    }

    #[test]
    fn about_nine_in_ten_of_xs_keys_find_their_lookup_row() {
        let dir = tempfile::tempdir().expect("dir");
        join(dir.path(), 30_000, 5, false).expect("generate");
        let column = |file: &str, c: usize| -> Vec<i64> {
            std::fs::read_to_string(dir.path().join(file))
                .expect("csv")
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(c).expect("column").parse().expect("int"))
                .collect()
        };
        let medium: std::collections::BTreeSet<i64> = column("J1_30000_medium.csv", 1).into_iter().collect();
        assert_eq!(medium.len(), 30);
        let x = column("J1_30000_x.csv", 1);
        let matched = x.iter().filter(|k| medium.contains(k)).count() as f64 / x.len() as f64;
        assert!((0.85..0.95).contains(&matched), "{matched}");
        assert_eq!(column("J1_30000_big.csv", 2).len(), 30_000);
    }
}
