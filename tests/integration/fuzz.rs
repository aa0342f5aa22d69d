//! Garbage into every decoder: gRPC messages, the postcard-encoded job plan and task values,
//! record files, Arrow IPC files (random and corrupted), CSV. Each must answer with a value
//! or an error — never a panic, never a hang (every case runs on small inputs). And a CLI
//! given wrong flags prints its usage and exits 2.

use std::process::Command;

use proptest::prelude::*;
use prost::Message;
use ringleader_core::plan::{JobPlan, StageOutput, TaskPlan, TaskValue};
use ringleader_core::proto;
use serde::{Deserialize, Serialize};

use crate::helpers::{Bounded, engine, ringleader_bin, write};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    name: String,
    age: i64,
}

/// Decodes `bytes` as every gRPC message the services accept; only errors are allowed.
fn decode_every_message(bytes: &[u8]) {
    let _ = proto::TaskAssignment::decode(bytes);
    let _ = proto::TaskReport::decode(bytes);
    let _ = proto::SubmitJobRequest::decode(bytes);
    let _ = proto::JobEvent::decode(bytes);
    let _ = proto::RegisterWorkerRequest::decode(bytes);
    let _ = proto::HeartbeatRequest::decode(bytes);
    let _ = proto::BinaryChunk::decode(bytes);
    let _ = proto::DatasetInfo::decode(bytes);
    let _ = proto::RaftMessage::decode(bytes);
    let _ = proto::ClusterStatusReply::decode(bytes);
    let _ = postcard::from_bytes::<JobPlan>(bytes);
    let _ = postcard::from_bytes::<TaskPlan>(bytes);
    let _ = postcard::from_bytes::<StageOutput>(bytes);
    let _ = postcard::from_bytes::<TaskValue>(bytes);
}

/// A valid Arrow IPC file of two rows.
fn valid_ipc() -> Vec<u8> {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(StringArray::from(vec!["ada", "bob"])),
            std::sync::Arc::new(Int64Array::from(vec![36, 41])),
        ],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(&mut bytes, &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn garbage_grpc_messages_and_plans_decode_to_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_every_message(&bytes);
    }

    #[test]
    fn a_valid_message_with_flipped_bytes_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let assignment = proto::TaskAssignment {
            job_id: "job-000001".into(),
            binary_hash: "0".repeat(32),
            task_plan: vec![1, 2, 3],
            stage_output: vec![4, 5],
            task: 3,
            attempt: 1,
            ..Default::default()
        };
        let mut bytes = assignment.encode_to_vec();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        decode_every_message(&bytes);
    }
}

/// The engine turns a task's panic into an error: a decoder that panicked shows as one,
/// and fails the case (each decoder is also fuzzed directly in `core/tests/fuzz_decoders.rs`).
fn no_panic(result: ringleader_core::Result<()>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(!e.to_string().contains("panicked"), "a decoder panicked: {}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn garbage_record_files_are_errors_or_whole_records(bytes in proptest::collection::vec(any::<u8>(), 1..1000)) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "part-0.dat", &bytes);
        let counted = engine(2, 2).record_files(dir.path()).and_then(|d| d.count());
        match counted {
            Ok(n) => prop_assert_eq!(n as usize * 100, bytes.len()),
            Err(e) => prop_assert!(e.to_string().contains("part-0.dat"), "{}", e),
        }
    }

    #[test]
    fn garbage_and_corrupted_arrow_files_are_errors(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.arrow", &garbage);
        no_panic(engine(2, 2).arrow_files::<Row>(dir.path()).and_then(|d| d.collect()).map(drop))?;
        let mut corrupted = valid_ipc();
        for (at, x) in flips {
            let n = corrupted.len();
            corrupted[at % n] ^= x;
        }
        write(dir.path(), "a.arrow", &corrupted);
        no_panic(engine(2, 2).arrow_files::<Row>(dir.path()).and_then(|d| d.collect()).map(drop))?;
        no_panic(engine(2, 2).arrow_column(dir.path(), Some("age")).and_then(|d| d.sum()).map(drop))?;
    }

    #[test]
    fn garbage_csv_is_an_error_or_rows(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"name,age\n".to_vec();
        bytes.extend_from_slice(&body);
        write(dir.path(), "people.csv", &bytes);
        no_panic(engine(2, 2).csv_files::<Row>(dir.path()).and_then(|d| d.collect()).map(drop))?;
    }
}

#[test]
fn wrong_flags_print_usage_and_exit_2() {
    for args in [
        vec!["--no-such-flag"],
        vec!["cluster", "up", "--drivers", "many"],
        vec!["gen", "sort"],
        vec!["jobs", "--bogus"],
        vec!["driver", "--listen", "not-an-address", "--data-dir", "x"],
    ] {
        let out = Command::new(ringleader_bin()).args(&args).bounded();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr}");
    }
}
