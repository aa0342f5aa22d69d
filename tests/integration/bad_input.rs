//! Bad input gets a clear error naming what is at fault, and loses nothing: a failed job
//! leaves no output that looks complete.

use ringleader::Output;

use crate::helpers::{engine, write};

fn error_text<T: std::fmt::Debug>(r: ringleader::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn missing_and_empty_inputs_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = engine(2, 2);
    let missing = dir.path().join("nope");
    let e = error_text(ctx.text_files(&missing));
    assert!(e.contains("does not exist") && e.contains("nope"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = error_text(ctx.record_files(&empty));
    assert!(e.contains("no data files") && e.contains("empty"), "{e}");
    write(&empty, "zero.dat", b"");
    assert!(error_text(ctx.record_files(&empty)).contains("no data files"));
}

#[test]
fn torn_record_file_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.dat", vec![1u8; 200]);
    write(dir.path(), "torn.dat", vec![1u8; 250]);
    let e = error_text(engine(2, 2).record_files(dir.path()));
    assert!(e.contains("torn.dat") && e.contains("byte offset 200"), "{e}");
}

#[test]
fn invalid_utf8_names_file_and_line_unless_lossy() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.txt", b"fine\nalso fine\nbro\xffken\nlast\n");
    let ctx = engine(2, 2);
    let e = error_text(ctx.text_files(dir.path()).unwrap().count());
    assert!(
        e.contains("bad.txt:3") && e.contains("UTF-8") && e.contains("lossy"),
        "{e}"
    );
    let lossy = ctx
        .text_files_with(dir.path(), ringleader::TextOptions { lossy: true })
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(lossy[2], "bro\u{fffd}ken");
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Row {
    name: String,
    age: i64,
}

#[test]
fn csv_value_of_wrong_type_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "people.csv", "name,age\nada,36\nbob,forty\n");
    let e = error_text(engine(2, 2).csv_files::<Row>(dir.path()).unwrap().count());
    assert!(
        e.contains("people.csv") && e.contains("line 3, column \"age\"") && e.contains("\"forty\""),
        "{e}"
    );
    // Printed with its causes, as `ringleader::run` prints a job's error: said once.
    let error = engine(2, 2).csv_files::<Row>(dir.path()).unwrap().count().unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert_eq!(chain.matches("\"forty\"").count(), 1, "{chain}");
}

#[test]
fn existing_output_is_refused_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    write(&out, "keep.txt", "precious");
    let ctx = engine(2, 2);
    let ds = ctx.parallelize(vec![1i64, 2, 3], 2).unwrap();
    let e = error_text(ds.save_text(&out));
    assert!(e.contains("already exists") && e.contains("--overwrite"), "{e}");
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "precious");
    ds.save_text(Output::new(&out).overwrite(true)).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("_SUCCESS").exists());
}

#[test]
fn panicking_closure_fails_the_job_with_message_and_partition_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = engine(2, 2);
    let ds = ctx.parallelize((0..100i64).collect(), 4).unwrap().map(|x| {
        if x == 77 {
            panic!("bad row {x}");
        }
        x
    });
    let e = error_text(ds.save_text(&out));
    assert!(
        e.contains("bad row 77") && e.contains("partition 3") && e.contains("panicked"),
        "{e}"
    );
    assert!(!out.exists(), "a failed job must leave no output directory");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn sum_overflow_is_an_error_not_a_wrap() {
    let ctx = engine(2, 2);
    let e = error_text(ctx.parallelize(vec![i64::MAX - 1, 1, 1], 3).unwrap().sum());
    assert!(e.contains("overflow"), "{e}");
}
