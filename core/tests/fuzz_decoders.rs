//! Every input decoder, fuzzed directly: records, Arrow IPC, CSV, Parquet, text, the job
//! plan and task values, Flight tickets, dataset URLs. Called outside the engine (whose
//! tasks turn a panic into an error), so a panic fails the test. Each case asserts a value
//! or an error naming the input, never a panic. Thousands of cases, from a fixed seed:
//! a failure reproduces.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ringleader_core::data::ChunkStream;
use ringleader_core::error::Result;
#[cfg(feature = "parquet")]
use ringleader_core::io::source::parquet;
use ringleader_core::io::source::{csv, ipc, records, text};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x5249_4e47),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Reads a whole stream; the first error ends it.
fn drain(stream: Result<ChunkStream>) -> Result<usize> {
    let mut chunks = 0;
    for chunk in stream? {
        chunk?;
        chunks += 1;
    }
    Ok(chunks)
}

/// An error must name the file it is about.
fn names(result: &Result<usize>, file: &str) -> bool {
    result.as_ref().err().is_none_or(|e| e.to_string().contains(file))
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
    ]))
}

fn batch() -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec!["ada", "bob", "cy"])),
            Arc::new(Int64Array::from(vec![36, 41, 7])),
        ],
    )
    .expect("batch")
}

fn valid_ipc() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(&mut bytes, &schema()).expect("writer");
    writer.write(&batch()).expect("write");
    writer.write(&batch()).expect("write");
    writer.finish().expect("finish");
    drop(writer);
    bytes
}

#[cfg(feature = "parquet")]
fn valid_parquet() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = ::parquet::arrow::ArrowWriter::try_new(&mut bytes, schema(), None).expect("writer");
    writer.write(&batch()).expect("write");
    writer.close().expect("close");
    bytes
}

fn corrupt(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let n = bytes.len();
    for &(at, x) in flips {
        bytes[at % n] ^= x;
    }
    bytes.truncate(n - cut % (n / 4).max(1));
    bytes
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn records_are_whole_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..700), start in 0u64..800, len in 0u64..800) {
        let dir = tempfile::tempdir().expect("dir");
        let path = file(dir.path(), "r.dat", &bytes);
        let end = start + len;
        let result = drain(records::open(&path, start, end, None));
        prop_assert!(names(&result, "r.dat"));
        if end <= bytes.len() as u64 && start < end {
            prop_assert!(result.is_ok());
        }
    }

    #[test]
    fn text_is_lines_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600), start in 0u64..700, lossy in any::<bool>()) {
        let dir = tempfile::tempdir().expect("dir");
        let path = file(dir.path(), "t.txt", &bytes);
        let result = drain(text::open(&path, start, bytes.len() as u64, lossy, None));
        prop_assert!(names(&result, "t.txt"));
        if lossy {
            prop_assert!(result.is_ok(), "lossy text never fails: {:?}", result.err());
        }
    }

    #[test]
    fn csv_is_rows_or_an_error(body in prop::collection::vec(any::<u8>(), 0..400), split in 1u64..500) {
        let dir = tempfile::tempdir().expect("dir");
        let mut bytes = b"name,age\n".to_vec();
        bytes.extend_from_slice(&body);
        let path = file(dir.path(), "p.csv", &bytes);
        let result = csv::plan(&path, bytes.len() as u64, &schema(), split).and_then(|pieces| {
            pieces.iter().map(|piece| drain(csv::open(&path, schema(), piece))).sum()
        });
        prop_assert!(names(&result, "p.csv"));
    }

    #[test]
    fn tickets_urls_plans_and_values_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = ringleader_core::net::ticket::FlightTicket::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let parts: Vec<&str> = text.split('/').collect();
        let _ = ringleader_core::net::ticket::PartitionId::from_parts(&parts);
        let _ = ringleader_core::io::store::parse_url(Path::new(text.as_ref()));
        let _ = postcard::from_bytes::<ringleader_core::plan::JobPlan>(&bytes);
        let _ = postcard::from_bytes::<ringleader_core::plan::TaskPlan>(&bytes);
        let _ = postcard::from_bytes::<ringleader_core::plan::StageOutput>(&bytes);
        let _ = postcard::from_bytes::<ringleader_core::plan::TaskValue>(&bytes);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn corrupted_arrow_ipc_is_rows_or_an_error(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        garbage in prop::collection::vec(any::<u8>(), 0..300),
        column in prop::option::of(0usize..3),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        for bytes in [corrupt(valid_ipc(), &flips, cut), garbage.clone()] {
            let path = file(dir.path(), "a.arrow", &bytes);
            let result = drain(ipc::open(&path, 0, usize::MAX, column));
            prop_assert!(names(&result, "a.arrow"));
        }
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn corrupted_parquet_is_rows_or_an_error(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        group in 0usize..3,
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let path = file(dir.path(), "p.parquet", &corrupt(valid_parquet(), &flips, cut));
        let _ = parquet::row_groups(&path);
        let result = drain(parquet::open(&path, &[group], None));
        prop_assert!(names(&result, "p.parquet"));
    }
}
