//! Task results off the control plane. A final task's rows for the client (`collect`,
//! `take`) larger than [`INLINE_RESULT_BYTES`] do not travel through the driver group's
//! Raft log: the executor leaves them on its worker as an Arrow IPC stream file, reports a
//! [`TaskValue::Held`] naming where they are, and the client fetches them with Flight.
//!
//! Held results live under the worker's shuffle directory in `.results/<job>/` (a name no
//! job id can take, so the shuffle clean-up leaves it), and are removed
//! [`RESULT_RETENTION`] after their job stops running ([`remove_old_results`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::data::BatchStream;
use crate::error::{Error, Result};
use crate::ids::valid_job_id;
use crate::net::ticket::ResultId;
use crate::plan::TaskValue;
use crate::shuffle::cluster::ShuffleFiles;

/// Results up to this size travel in the Raft log; larger ones stay on their worker.
pub const INLINE_RESULT_BYTES: usize = 64 << 10;
/// The largest value one task may send through the driver group (a `reduce`'s or `sum`'s
/// partial, a sort's key sample): rows are held on their worker, but such a value is one
/// Raft command that every driver keeps until its job is forgotten.
pub const MAX_TASK_VALUE_BYTES: usize = 16 << 20;
/// How long a finished job's held results wait for their client.
pub const RESULT_RETENTION: Duration = Duration::from_secs(600);
/// The directory of held results under a worker's shuffle directory.
const RESULTS_DIR: &str = ".results";

impl ResultId {
    /// Its file under the shuffle directory `files`.
    pub fn path(&self, files: &ShuffleFiles) -> PathBuf {
        files
            .root()
            .join(RESULTS_DIR)
            .join(self.job.as_str())
            .join(format!("{}-{}-{}.arrows", self.stage, self.task, self.attempt))
    }
}

/// The value to report for `value`: itself if small, else [`TaskValue::Held`] after its
/// rows are written to their file (write, then rename) on this worker at `address`.
pub fn hold_if_large(value: TaskValue, id: &ResultId, files: &ShuffleFiles, address: &str) -> Result<TaskValue> {
    if let TaskValue::Bytes(bytes) = &value
        && bytes.len() > MAX_TASK_VALUE_BYTES
    {
        return Err(Error::Cluster(format!(
            "task {} of stage {} made a value of {} bytes, over the {} MiB a task may send the driver: \
             reduce to a smaller value, or keep the rows as a dataset (`collect`, `save`) instead",
            id.task,
            id.stage,
            bytes.len(),
            MAX_TASK_VALUE_BYTES >> 20
        )));
    }
    let TaskValue::Batches(bytes) = &value else {
        return Ok(value);
    };
    if bytes.len() <= INLINE_RESULT_BYTES {
        return Ok(value);
    }
    let path = id.path(files);
    let dir = path.parent().unwrap_or(files.root());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).map_err(|e| Error::io(&temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(TaskValue::Held {
        address: address.to_string(),
        ticket: crate::net::ticket::FlightTicket::Result(id.clone()).to_string(),
        size: bytes.len() as u64,
    })
}

/// A held result's batches, read from its file (what a worker's Flight serves).
pub fn read_held(files: &ShuffleFiles, id: &ResultId) -> Result<BatchStream> {
    let path = id.path(files);
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None)?;
    Ok(Box::new(reader.map(|b| b.map_err(Error::from))))
}

/// `value` with a held result fetched back into [`TaskValue::Batches`] (the client's side).
pub fn fetch_if_held(value: TaskValue, runtime: &tokio::runtime::Handle) -> Result<TaskValue> {
    let TaskValue::Held { address, ticket, size } = value else {
        return Ok(value);
    };
    let batches = crate::net::flight::fetch_blocking(runtime, &address, ticket.clone())
        .and_then(|stream| stream.collect::<Result<Vec<_>>>())
        .map_err(|e| {
            Error::Cluster(format!(
                "the job succeeded, but the worker at {address} holding {size} bytes of its results ({ticket}) cannot give them: {e}; run the job again"
            ))
        })?;
    Ok(TaskValue::Batches(crate::data::ipc::to_stream_bytes(&batches)?))
}

/// The file a job's results directory gets when its worker first sees the job no longer
/// running: the retention is counted from its time.
const ENDED_MARKER: &str = ".ended";

/// Removes the held results of jobs that stopped running [`RESULT_RETENTION`] ago (their
/// client has had its time). The time counts from when this worker first saw the job absent
/// from `active` (the running jobs, as the driver listed them when asked at `asked`), not from
/// the results' last write: a job whose last task ran long after its first results were held
/// keeps them for the whole retention. Directories made after `asked` are left for the next
/// list, which may not have known their job yet.
pub fn remove_old_results(files: &ShuffleFiles, active: &[String], asked: SystemTime) {
    let root = files.root().join(RESULTS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !valid_job_id(&name) {
            continue;
        }
        let marker = entry.path().join(ENDED_MARKER);
        if active.contains(&name) {
            // Seen ended by a list that did not know it yet: it runs.
            let _ = std::fs::remove_file(&marker);
            continue;
        }
        match marker.metadata().and_then(|m| m.modified()) {
            Ok(ended) if now.duration_since(ended).unwrap_or_default() > RESULT_RETENTION => {
                let _ = std::fs::remove_dir_all(entry.path());
            }
            Ok(_) => {}
            Err(_) => {
                let made_before_asking = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < asked);
                if made_before_asking {
                    let _ = std::fs::File::create(&marker);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Attempt, StageId, TaskId};

    #[test]
    fn small_values_stay_inline_and_large_rows_are_held_in_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let files = ShuffleFiles::new(dir.path());
        let id = ResultId {
            job: "job-1".into(),
            stage: StageId(0),
            task: TaskId(3),
            attempt: Attempt(2),
        };
        let small = TaskValue::Batches(vec![1, 2, 3]);
        assert_eq!(hold_if_large(small.clone(), &id, &files, "w:1").expect("small"), small);
        // A value (not rows) is bounded: the largest allowed passes, one byte more is refused.
        let largest = TaskValue::Bytes(vec![7; MAX_TASK_VALUE_BYTES]);
        assert_eq!(
            hold_if_large(largest.clone(), &id, &files, "w:1").expect("largest"),
            largest
        );
        let over = hold_if_large(TaskValue::Bytes(vec![7; MAX_TASK_VALUE_BYTES + 1]), &id, &files, "w:1");
        let message = over.expect_err("over the bound").to_string();
        assert!(
            message.contains("task 3 of stage 0") && message.contains("16 MiB"),
            "{message}"
        );
        let batch = arrow_array::RecordBatch::try_from_iter([(
            "v",
            std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(0..20_000)) as _,
        )])
        .expect("batch");
        let bytes = crate::data::ipc::to_stream_bytes(std::slice::from_ref(&batch)).expect("ipc");
        let held = hold_if_large(TaskValue::Batches(bytes), &id, &files, "w:1").expect("held");
        assert!(
            matches!(&held, TaskValue::Held { address, .. } if address == "w:1"),
            "{held:?}"
        );
        let back: Vec<_> = read_held(&files, &id)
            .expect("read")
            .collect::<Result<_>>()
            .expect("batches");
        assert_eq!(back, vec![batch]);
        // A running job's results stay; so do a finished job's until the retention passes.
        remove_old_results(&files, &["job-1".to_string()], SystemTime::now());
        assert!(id.path(&files).exists());
    }

    #[test]
    fn results_are_kept_for_the_retention_after_their_job_ended_however_old_they_are() {
        let dir = tempfile::tempdir().expect("dir");
        let files = ShuffleFiles::new(dir.path());
        let job_dir = files.root().join(RESULTS_DIR).join("job-000001");
        std::fs::create_dir_all(&job_dir).expect("dir");
        std::fs::write(job_dir.join("0-0-1.arrow"), "held").expect("file");
        // Written an hour ago by a task of a job that ran on long after.
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let age = |path: &std::path::Path, when: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .or_else(|_| std::fs::File::open(path))
                .and_then(|f| f.set_modified(when))
                .expect("set mtime");
        };
        age(&job_dir, an_hour_ago);
        // The job ends now: its results stay.
        remove_old_results(&files, &[], SystemTime::now());
        assert!(job_dir.exists(), "results removed the moment their job ended");
        remove_old_results(&files, &[], SystemTime::now());
        assert!(job_dir.exists());
        // Once it ended longer than the retention ago, they go.
        age(
            &job_dir.join(ENDED_MARKER),
            SystemTime::now() - RESULT_RETENTION - Duration::from_secs(1),
        );
        remove_old_results(&files, &[], SystemTime::now());
        assert!(!job_dir.exists(), "results kept past the retention");
    }
}
