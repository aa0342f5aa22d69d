//! Sources against sequential reads of the same files, with splits forced small so that
//! every boundary case (a line or record across a split edge) occurs.

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use ringleader::{Config, Context, Record};

use crate::helpers::{engine, write};

fn small_splits(split_size: u64) -> Context {
    Context::new(Config {
        threads: 2,
        split_size,
        progress: false,
        ..Config::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn text_splits_yield_every_line_once(lines in prop::collection::vec("[a-z ]{0,30}", 1..40), crlf in any::<bool>(), trailing in any::<bool>(), split in 1u64..64) {
        let dir = tempfile::tempdir().unwrap();
        let sep = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(sep);
        if trailing {
            text.push_str(sep);
        }
        write(dir.path(), "t.txt", &text);
        let got = small_splits(split).text_files(dir.path()).unwrap().collect().unwrap();
        let want: Vec<String> = text.lines().map(str::to_string).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn record_splits_yield_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Record> = (0..257u32)
        .map(|i| ringleader_datasets::gensort::record(7, i as u64, false))
        .collect();
    write(dir.path(), "a.dat", Record::slice_as_bytes(&records[..100]));
    write(dir.path(), "b.dat", Record::slice_as_bytes(&records[100..]));
    for split in [100, 300, 1000, 1 << 20] {
        let got = small_splits(split).record_files(dir.path()).unwrap().collect().unwrap();
        assert_eq!(got, records, "split size {split}");
    }
}

fn write_ipc(path: &std::path::Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(file, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

fn people(names: &[&str], ages: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("name", Arc::new(StringArray::from(names.to_vec())) as _),
        ("age", Arc::new(Int64Array::from(ages.to_vec())) as _),
    ])
    .unwrap()
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Person {
    name: String,
    age: i64,
}

#[test]
fn arrow_files_decode_rows_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    write_ipc(
        &dir.path().join("p.arrow"),
        &[people(&["ada", "bob"], &[36, 41]), people(&["cy"], &[7])],
    );
    let ctx = engine(2, 2);
    let rows = ctx.arrow_files::<Person>(dir.path()).unwrap().collect().unwrap();
    assert_eq!(rows.iter().map(|p| p.age).collect::<Vec<_>>(), vec![36, 41, 7]);
    assert_eq!(ctx.arrow_column(dir.path(), Some("age")).unwrap().sum().unwrap(), 84);
    assert_eq!(ctx.arrow_column(dir.path(), None).unwrap().count().unwrap(), 3);
    let wrong = ctx
        .arrow_column(dir.path(), Some("name"))
        .expect_err("name is not int64")
        .to_string();
    assert!(
        wrong.contains("p.arrow") && wrong.contains("\"name\"") && wrong.contains("not Int64"),
        "{wrong}"
    );
}

#[test]
fn parquet_files_decode_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("p.parquet")).unwrap();
    let batch = people(&["ada", "bob", "cy"], &[36, 41, 7]);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let ctx = engine(2, 2);
    let rows = ctx.parquet_files::<Person>(dir.path()).unwrap();
    assert_eq!(rows.map(|p| p.age).sum().unwrap(), 84);
    // Only the selected column is read, straight from the file.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Age {
        age: i64,
    }
    let ages = rows.select::<Age>();
    assert!(ages.explain().starts_with("source"), "{}", ages.explain());
    assert_eq!(ages.map(|a| a.age).sum().unwrap(), 84);
    assert_eq!(
        rows.collect().unwrap()[2],
        Person {
            name: "cy".into(),
            age: 7
        }
    );
}

/// A CSV field as RFC 4180 writes it: quoted, inner quotes doubled, when it needs quotes.
fn csv_field(field: &str) -> String {
    if field.contains(['"', ',', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Visit {
    city: String,
    name: String,
    age: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// A CSV file cut into splits of a few bytes (quoted commas, newlines and quotes in its
    /// fields, a column the row type does not name) yields every record once, in order: the
    /// generated rows are the oracle.
    #[test]
    fn csv_splits_yield_every_record_once(
        rows in prop::collection::vec(("[a-c\",\n ]{0,10}", "[a-z]{1,6}", -50i64..50), 0..40),
        split in 1u64..200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("age,note,name\n");
        for (name, note, age) in &rows {
            text.push_str(&format!("{age},{},{}\n", csv_field(&format!("{note}\n\"x\"")), csv_field(name)));
        }
        write(dir.path(), "p.csv", &text);
        let got = small_splits(split).csv_files::<Person>(dir.path()).unwrap().collect().unwrap();
        let want: Vec<Person> = rows.iter().map(|(name, _, age)| Person { name: name.clone(), age: *age }).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn csv_files_find_their_columns_by_name_and_parse_only_those() {
    let dir = tempfile::tempdir().unwrap();
    // "age" of the third row is no number: a row type without it never parses it.
    write(
        dir.path(),
        "v.csv",
        "age,name,city\n36,ada,Oslo\n41,bob,Lima\nold,cy,Pune\n",
    );
    let ctx = small_splits(8);
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Place {
        city: String,
        name: String,
    }
    let places = ctx.csv_files::<Place>(dir.path()).unwrap().collect().unwrap();
    assert_eq!(
        places.iter().map(|p| p.city.as_str()).collect::<Vec<_>>(),
        ["Oslo", "Lima", "Pune"]
    );
    // `select` right after the source reads only the selected columns too.
    let visits = ctx.csv_files::<Visit>(dir.path()).unwrap();
    let error = visits.count().expect_err("\"old\" is no age").to_string();
    assert!(error.contains("line 4, column \"age\""), "{error}");
    let selected = visits.select::<Place>();
    assert!(selected.explain().starts_with("source"), "{}", selected.explain());
    assert_eq!(selected.collect().unwrap(), places);
    // A column the file lacks fails before any task runs, naming it and the header.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Priced {
        price: i64,
    }
    let Err(error) = ctx.csv_files::<Priced>(dir.path()) else {
        panic!("a file without a price column was read");
    };
    let error = error.to_string();
    assert!(
        error.contains("v.csv") && error.contains("no column \"price\"") && error.contains("age, name, city"),
        "{error}"
    );
}

#[test]
fn smol_str_fields_read_and_group_as_strings_do() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
    struct Short {
        name: ringleader::SmolStr,
        age: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let long = "a name longer than twenty-three bytes";
    write(
        dir.path(),
        "s.csv",
        format!("name,age\nada,1\n{long},2\nada,3\n\"\",4\n"),
    );
    let ctx = small_splits(8);
    let short = ctx
        .csv_files::<Short>(dir.path())
        .unwrap()
        .map(|r| (r.name, r.age))
        .reduce_by_key(|a, b| a + b)
        .collect()
        .unwrap();
    let mut strings = ctx
        .csv_files::<Person>(dir.path())
        .unwrap()
        .map(|p| (p.name, p.age))
        .reduce_by_key(|a, b| a + b)
        .collect()
        .unwrap();
    strings.sort();
    let mut short: Vec<(String, i64)> = short.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
    short.sort();
    assert_eq!(short, strings);
    assert_eq!(strings, [(String::new(), 4), (long.into(), 2), ("ada".into(), 4)]);
}

#[test]
fn csv_files_decode_typed_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "name,age\nada,36\n\"b, ob\",41\n");
    let ctx = engine(2, 2);
    let rows = ctx.csv_files::<Person>(dir.path()).unwrap().collect().unwrap();
    assert_eq!(
        rows,
        vec![
            Person {
                name: "ada".into(),
                age: 36
            },
            Person {
                name: "b, ob".into(),
                age: 41
            }
        ]
    );
}
