//! Columnar outputs: `--output-format arrow|parquet` of the examples, read back with the
//! arrow and parquet crates and with DuckDB, against the text output and a sequential count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use ringleader_datasets::text;

use crate::helpers::{Bounded, example, ok, parts};

/// Runs word count on `input` into `output` in `format`.
fn wordcount(input: &Path, output: &Path, format: &str) {
    let out = Command::new(example("wordcount"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--output-format", format])
        .env("RINGLEADER_PROGRESS", "0")
        .bounded();
    ok(out, &format!("wordcount --output-format {format}"));
}

/// The output's files with `extension`, and nothing else but `_SUCCESS`.
fn files_with(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "_SUCCESS" {
            continue;
        }
        assert!(
            name.starts_with("part-") && name.ends_with(&format!(".{extension}")),
            "unexpected file {name} in {}",
            dir.display()
        );
        files.push(path);
    }
    assert!(!files.is_empty(), "no .{extension} files in {}", dir.display());
    files
}

fn read_arrow(dir: &Path) -> Vec<RecordBatch> {
    files_with(dir, "arrow")
        .into_iter()
        .flat_map(|f| {
            let file = std::fs::File::open(f).unwrap();
            arrow::ipc::reader::FileReader::try_new(file, None)
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn read_parquet(dir: &Path) -> Vec<RecordBatch> {
    files_with(dir, "parquet")
        .into_iter()
        .flat_map(|f| {
            let file = std::fs::File::open(f).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `word` and `count` columns into a map, each word once.
pub(crate) fn word_counts(batches: &[RecordBatch]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["word", "count"]);
        assert_eq!(schema.field(1).data_type(), &DataType::UInt64);
        let words = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let words = words.as_string::<i32>();
        let numbers = batch.column(1).as_primitive::<UInt64Type>();
        for i in 0..batch.num_rows() {
            let word = words.value(i).to_string();
            assert!(counts.insert(word.clone(), numbers.value(i)).is_none(), "{word} twice");
        }
    }
    counts
}

fn text_counts(dir: &Path) -> HashMap<String, u64> {
    parts(dir)
        .into_iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| {
                    let (w, n) = l.split_once('\t').unwrap();
                    (w.to_string(), n.parse().unwrap())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn wordcount_writes_the_same_counts_as_text_arrow_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    text::generate(&input, 300_000, 3, 2000, 11, false).unwrap();
    let mut want: HashMap<String, u64> = HashMap::new();
    for f in std::fs::read_dir(&input).unwrap() {
        for w in std::fs::read_to_string(f.unwrap().path()).unwrap().split_whitespace() {
            *want.entry(w.to_string()).or_default() += 1;
        }
    }
    let out = |f: &str| dir.path().join(format!("out-{f}"));
    for format in ["text", "arrow", "parquet"] {
        wordcount(&input, &out(format), format);
        assert!(out(format).join("_SUCCESS").exists(), "{format}: not committed");
    }
    assert_eq!(text_counts(&out("text")), want);
    assert_eq!(word_counts(&read_arrow(&out("arrow"))), want);
    assert_eq!(word_counts(&read_parquet(&out("parquet"))), want);
}

/// A Python with DuckDB: `target/py` (made by `.ci/run`), or `RINGLEADER_PYTHON`.
pub fn python_with_duckdb() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RINGLEADER_PYTHON").map(PathBuf::from),
        crate::helpers::target_dir().parent().map(|t| t.join("py/bin/python")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import duckdb"])
            .try_bounded()
            .is_some_and(|o| o.status.success())
    })
}

#[test]
fn duckdb_reads_the_parquet_word_count_and_gets_the_same_counts() {
    let Some(python) = python_with_duckdb() else {
        crate::helpers::skip(
            "DuckDB reads the Parquet word count",
            "no Python with duckdb (.ci/run installs one into target/py)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    text::generate(&input, 200_000, 2, 1500, 5, false).unwrap();
    wordcount(&input, &dir.path().join("text"), "text");
    wordcount(&input, &dir.path().join("parquet"), "parquet");
    let query = format!(
        "import duckdb\nfor word, count in duckdb.sql(\"select word, count from read_parquet('{}/*.parquet')\").fetchall():\n    print(f'{{word}}\\t{{count}}')\n",
        dir.path().join("parquet").display()
    );
    let out = Command::new(python).args(["-c", &query]).bounded();
    let printed = ok(out, "duckdb");
    let from_duckdb: HashMap<String, u64> = printed
        .lines()
        .map(|l| {
            let (w, n) = l.split_once('\t').unwrap();
            (w.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(from_duckdb, text_counts(&dir.path().join("text")));
}

#[test]
fn orders_by_city_in_parquet_has_one_typed_column_per_field() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let out = crate::examples::orders_by_city(&output)
        .args(["--output-format", "parquet"])
        .env("RINGLEADER_PROGRESS", "0")
        .bounded();
    ok(out, "orders_by_city --output-format parquet");
    let mut rows = Vec::new();
    for batch in read_parquet(&output) {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["city", "orders", "total", "names"]);
        let string = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8).unwrap();
        let (city, names) = (string(0), string(3));
        let orders = batch.column(1).as_primitive::<UInt64Type>();
        let total = batch.column(2).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.push(format!(
                "{}\t{}\t{}\t{}",
                city.as_string::<i32>().value(i),
                orders.value(i),
                total.value(i),
                names.as_string::<i32>().value(i)
            ));
        }
        assert_eq!(city.null_count(), 0);
    }
    rows.sort();
    assert_eq!(rows, crate::examples::SHOP_CITIES);
}

#[test]
fn an_unknown_output_format_is_a_usage_error() {
    let out = Command::new(example("wordcount"))
        .args(["--input", "in", "--output", "out", "--output-format", "csv"])
        .bounded();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'csv'") && stderr.contains("text, arrow, parquet"),
        "{stderr}"
    );
}

#[test]
fn rows_arrow_cannot_hold_are_refused_naming_their_type_before_any_output() {
    let ctx = ringleader::Context::embedded();
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![HashMap::from([("a".to_string(), 1u8)])];
    let out = dir.path().join("out");
    let err = ctx
        .parallelize(rows, 1)
        .unwrap()
        .save_parquet(&out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("HashMap<alloc::string::String, u8>"), "{err}");
    assert!(!out.exists(), "an output was started");
}
