//! Inputs that once panicked, overflowed, allocated without bound or killed the process are
//! now errors that name the file: reversed record ranges, files shorter than planned, Arrow
//! IPC blocks with negative lengths, range bounds that do not fit their partitions, text
//! without newlines; and symbolic links to data files are followed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;
use ringleader_core::error::Error;
use ringleader_core::io::source::{list_files, records, text};

/// Empties the file at `path`, as someone rewriting an input while a task reads it would.
fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
}

fn write_ipc(path: &Path) {
    let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1i64, 2, 3])) as _)]).expect("batch");
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(path).expect("file"), &batch.schema())
            .expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
}

#[test]
fn a_reversed_record_range_is_empty_and_a_file_shorter_than_planned_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("r.dat");
    std::fs::write(&path, vec![7u8; 500]).expect("write");
    assert_eq!(records::open(&path, 400, 100, None).expect("reversed").count(), 0);
    assert_eq!(
        records::open(&path, 400, 100, Some(3))
            .expect("reversed, sampled")
            .count(),
        0
    );
    // Planned for 1,000 bytes, truncated to 500: mapping past the end would be a SIGBUS.
    let err = records::open(&path, 0, 1000, None).err().expect("an error");
    assert!(
        err.to_string().contains("r.dat") && err.to_string().contains("shorter"),
        "{err}"
    );
}

#[test]
fn an_ipc_block_with_a_negative_length_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("n.arrow");
    write_ipc(&path);
    let mut bytes = std::fs::read(&path).expect("read");
    // The footer's Block struct: offset (i64), metadata length (i32 + 4 padding), body
    // length (i64). Find it by its values and make the body length negative.
    let file = ringleader_core::io::source::ipc::IpcFile::open(&path).expect("valid file");
    assert_eq!(file.num_batches(), 1);
    let footer_len = u32::from_le_bytes(bytes[bytes.len() - 10..bytes.len() - 6].try_into().expect("4 bytes")) as usize;
    let footer_start = bytes.len() - 10 - footer_len;
    let footer = arrow::ipc::root_as_footer(&bytes[footer_start..bytes.len() - 10]).expect("footer");
    let block = footer.recordBatches().expect("blocks").get(0);
    let mut pattern = Vec::new();
    pattern.extend_from_slice(&block.offset().to_le_bytes());
    pattern.extend_from_slice(&block.metaDataLength().to_le_bytes());
    let at = bytes[footer_start..]
        .windows(pattern.len())
        .position(|w| w == pattern.as_slice())
        .expect("the block in the footer")
        + footer_start;
    bytes[at + 16..at + 24].copy_from_slice(&(-1i64).to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let result = ringleader_core::io::source::ipc::open(&path, 0, usize::MAX, None).and_then(|chunks| {
        for chunk in chunks {
            chunk?;
        }
        Ok(())
    });
    let err = result.expect_err("an error");
    assert!(
        err.to_string().contains("n.arrow") && err.to_string().contains("negative"),
        "{err}"
    );
}

#[test]
fn range_bounds_that_cannot_cut_the_partitions_are_refused() {
    let bounds = postcard::to_stdvec(&vec![1i64, 2, 3]).expect("encode");
    fn sink_of<F: Fn(&i64) -> i64 + 'static>(_: F) -> ringleader_core::plan::SinkFn {
        ringleader_core::ops::sinks::range::<i64, i64, F>
    }
    let sink_fn = sink_of(|x| *x);
    // SAFETY: the closure type is zero-sized and Copy, and a value of it was made above.
    let sink = |bounds: &[u8], partitions| unsafe { sink_fn(bounds, partitions) };
    assert!(
        matches!(sink(&bounds, 2), Err(Error::Plan(_))),
        "3 bounds for 2 partitions"
    );
    let unsorted = postcard::to_stdvec(&vec![3i64, 1]).expect("encode");
    assert!(matches!(sink(&unsorted, 4), Err(Error::Plan(_))), "bounds out of order");
    assert!(sink(&bounds, 4).is_ok());
}

#[test]
fn text_without_newlines_is_an_error_past_the_line_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("blob.txt");
    let file = std::fs::File::create(&path).expect("file");
    // A sparse file of zero bytes, a little longer than the limit.
    file.set_len(text::MAX_LINE_BYTES + 100).expect("size");
    let len = text::MAX_LINE_BYTES + 100;
    let result = text::open(&path, 0, len, false, None).and_then(|chunks| {
        for chunk in chunks {
            chunk?;
        }
        Ok(())
    });
    let err = result.expect_err("an error");
    assert!(
        err.to_string().contains("blob.txt") && err.to_string().contains("line 1"),
        "{err}"
    );
    // A split starting mid-line skips to the next line within the same bound.
    let result = text::open(&path, 10, len, false, None).and_then(|chunks| {
        for chunk in chunks {
            chunk?;
        }
        Ok(())
    });
    assert!(result.is_err());
}

#[test]
fn symbolic_links_to_data_files_are_followed_and_a_dangling_one_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let elsewhere = dir.path().join("elsewhere");
    let input = dir.path().join("input");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::create_dir_all(&input).expect("dir");
    let mut f = std::fs::File::create(elsewhere.join("a.txt")).expect("file");
    writeln!(f, "hello").expect("write");
    std::os::unix::fs::symlink(elsewhere.join("a.txt"), input.join("a.txt")).expect("link");
    let files = list_files(&input, |_| true).expect("listed");
    assert_eq!(files, [(input.join("a.txt"), 6)]);
    std::os::unix::fs::symlink(elsewhere.join("gone.txt"), input.join("b.txt")).expect("link");
    let err = list_files(&input, |_| true).expect_err("an error");
    assert!(err.to_string().contains("b.txt"), "{err}");
}

#[test]
fn an_input_truncated_while_mapped_fails_its_task_instead_of_killing_the_process() {
    use arrow::array::{Array, FixedSizeBinaryArray};
    use ringleader_core::data::Chunk;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("r.dat");
    let len = 100 * 40_000u64;
    std::fs::write(&path, vec![1u8; len as usize]).expect("write");
    let outcome = ringleader_core::io::mapped::watch_task(|| {
        let mut stream = records::open(&path, 0, len, None)?;
        let Some(Ok(Chunk::Arrow(batch))) = stream.next() else {
            panic!("no first chunk");
        };
        // Someone rewrites the input while the task holds pages of it.
        truncate(&path);
        let column = batch.column(0);
        let records = column.as_any().downcast_ref::<FixedSizeBinaryArray>().expect("records");
        let total: u64 = records.value_data().iter().map(|&b| u64::from(b)).sum();
        Ok(total)
    });
    let error = outcome.expect_err("a result computed from a truncated input");
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("r.dat") && message.contains("shrank"), "{message}");
    // The same file, read whole again, is simply empty now; nothing was left damaged.
    assert_eq!(
        ringleader_core::io::mapped::watch_task(|| Ok(std::fs::metadata(&path).expect("meta").len())).expect("len"),
        0
    );
}

#[test]
fn a_task_whose_input_shrinks_fails_alone_while_another_task_of_the_process_finishes_right() {
    use arrow::array::{Array, FixedSizeBinaryArray};
    use ringleader_core::data::Chunk;
    use std::sync::Barrier;
    let dir = tempfile::tempdir().expect("dir");
    let (victim, bystander) = (dir.path().join("victim.dat"), dir.path().join("bystander.dat"));
    let len = 100 * 40_000u64;
    std::fs::write(&victim, vec![1u8; len as usize]).expect("write");
    std::fs::write(&bystander, vec![2u8; len as usize]).expect("write");
    // Sums every byte of a record file's chunks, pausing at `both_reading` after the first.
    let sum_records = |path: &Path, both_reading: &Barrier, truncated: &Barrier, shrink: bool| {
        ringleader_core::io::mapped::watch_task(|| {
            let mut total = 0u64;
            for (i, chunk) in records::open(path, 0, len, None)?.enumerate() {
                let Chunk::Arrow(batch) = chunk? else {
                    panic!("records come as Arrow");
                };
                if i == 0 {
                    both_reading.wait();
                    if shrink {
                        truncate(path);
                    }
                    truncated.wait();
                }
                let column = batch.column(0);
                let records = column.as_any().downcast_ref::<FixedSizeBinaryArray>().expect("records");
                total += records.value_data().iter().map(|&b| u64::from(b)).sum::<u64>();
            }
            Ok(total)
        })
    };
    let (both_reading, truncated) = (Barrier::new(2), Barrier::new(2));
    let (victim_result, bystander_result) = std::thread::scope(|s| {
        let v = s.spawn(|| sum_records(&victim, &both_reading, &truncated, true));
        let b = s.spawn(|| sum_records(&bystander, &both_reading, &truncated, false));
        (v.join().expect("victim thread"), b.join().expect("bystander thread"))
    });
    let error = victim_result.expect_err("a result computed from a truncated input");
    assert!(error.to_string().contains("victim.dat"), "{error}");
    // The other task of the same process read every byte of its own file.
    assert_eq!(bystander_result.expect("the bystander's sum"), 2 * len);
}

#[test]
fn outside_a_task_inputs_are_read_not_mapped_so_a_file_that_shrinks_later_changes_nothing() {
    use arrow::array::{Array, FixedSizeBinaryArray};
    use ringleader_core::data::Chunk;
    // A planner or a worker serving a block reads outside any task: nobody would check a
    // mapping's damage there, so nothing is mapped.
    assert!(!ringleader_core::io::mapped::in_task());
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("r.dat");
    let len = 100 * 40_000u64;
    std::fs::write(&path, vec![1u8; len as usize]).expect("write");
    let mut stream = records::open(&path, 0, len, None).expect("open");
    let Some(Ok(Chunk::Arrow(batch))) = stream.next() else {
        panic!("no first chunk");
    };
    truncate(&path);
    let column = batch.column(0);
    let records = column.as_any().downcast_ref::<FixedSizeBinaryArray>().expect("records");
    // What was read is what the file held, not pages of zeros.
    assert!(records.value_data().iter().all(|&b| b == 1));
}

#[test]
fn a_fault_in_one_tasks_mapping_never_marks_another_task_damaged() {
    use ringleader_core::data::Chunk;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("dir");
    let len = 100 * 400u64;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Tasks that map their own sound files again and again, registering and
        // unregistering slots while the other task's faults are handled.
        let sound: Vec<_> = (0..3)
            .map(|t| {
                let (dir, stop) = (dir.path(), &stop);
                s.spawn(move || {
                    let path = dir.join(format!("sound-{t}.dat"));
                    std::fs::write(&path, vec![3u8; len as usize]).expect("write");
                    let mut rounds = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        ringleader_core::io::mapped::watch_task(|| {
                            for chunk in records::open(&path, 0, len, None)? {
                                let _ = chunk?;
                            }
                            Ok(())
                        })
                        .expect("a sound file's task failed: another task's fault was blamed on it");
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        // A task whose file shrinks under its mapping, every round.
        let path = dir.path().join("shrinking.dat");
        for _ in 0..300 {
            std::fs::write(&path, vec![7u8; len as usize]).expect("write");
            let outcome = ringleader_core::io::mapped::watch_task(|| {
                let mut stream = records::open(&path, 0, len, None)?;
                let Some(Ok(Chunk::Arrow(batch))) = stream.next() else {
                    panic!("no first chunk");
                };
                truncate(&path);
                let bytes = batch.column(0).to_data();
                Ok(bytes.buffers()[0].as_slice().iter().map(|&b| u64::from(b)).sum::<u64>())
            });
            assert!(outcome.is_err(), "a shrunk file's task was not failed");
        }
        stop.store(true, Ordering::Relaxed);
        for t in sound {
            assert!(t.join().expect("sound task") > 0);
        }
    });
}
