//! The worker's gRPC services: `Worker` (the driver launches tasks) and `Executor` (the
//! worker's executor processes stream tasks and report results, which are forwarded to the
//! driver).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use ringleader_core::ids::{Attempt, AttemptKey, StageId, TaskId};
use ringleader_core::net::binary::{BinaryWriter, valid_hash};
use ringleader_core::net::driver_group::DriverGroup;
use ringleader_core::proto::{self, executor_server::Executor, worker_server::Worker};
use ringleader_core::sync::lock;
use ringleader_core::task_failure::TaskFailure;
use tokio::sync::Mutex as AsyncMutex;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use crate::executors::{Executors, Launch, LostTask};

/// How long a report or a binary download waits for a driver leader (through elections).
const REPORT_PATIENCE: Duration = Duration::from_secs(30);

/// State shared by the worker's services.
pub struct WorkerInner {
    /// This worker's id, once registered.
    pub id: std::sync::Mutex<String>,
    /// This worker's advertised address.
    pub address: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The driver group (calls go to its leader).
    pub driver: DriverGroup,
    /// Its executors.
    pub executors: Executors,
    /// Serialises binary downloads.
    fetching: AsyncMutex<()>,
    /// Cached binaries checked against their hash, with what their file was then: a reuse
    /// of a file that changed since (or of one not checked by this process) is hashed again.
    verified: std::sync::Mutex<std::collections::HashMap<String, FileStamp>>,
    /// What `/metrics` shows.
    pub counters: crate::counters::WorkerCounters,
    /// The cached job binaries.
    pub binary_cache: crate::binary_cache::BinaryCache,
    /// Work that outlives the request that started it (a report on its way to the driver,
    /// an executor being stopped): a stopping worker waits for it (see
    /// [`crate::serve_until`]).
    pub background: tokio_util::task::TaskTracker,
    /// The Flight streams being served: a stopping worker sends them to their end before
    /// its server stops (see [`crate::serve_until`]).
    pub streams: tokio_util::task::TaskTracker,
}

impl WorkerInner {
    /// Worker state.
    pub fn new(
        address: String,
        data_dir: PathBuf,
        driver: DriverGroup,
        memory: u64,
        private: Option<Vec<PathBuf>>,
    ) -> Arc<WorkerInner> {
        // The data directory is private to the worker: an executor reaches only its job's
        // part (`None`: no sandbox).
        let private = private.map(|p| std::iter::once(data_dir.clone()).chain(p).collect());
        let background = tokio_util::task::TaskTracker::new();
        Arc::new(WorkerInner {
            id: std::sync::Mutex::new(String::new()),
            address,
            executors: Executors::new(data_dir.join("logs"), memory, private, background.clone()),
            background,
            streams: tokio_util::task::TaskTracker::new(),
            binary_cache: crate::binary_cache::BinaryCache::new(data_dir.join("binaries")),
            data_dir,
            driver,
            fetching: AsyncMutex::new(()),
            verified: Default::default(),
            counters: Default::default(),
        })
    }

    /// This worker's id.
    pub fn worker_id(&self) -> String {
        lock(&self.id).clone()
    }

    /// Where shuffle files live.
    pub fn shuffle_dir(&self) -> PathBuf {
        self.data_dir.join("shuffle")
    }

    /// Where stored dataset partitions live.
    pub fn dataset_dir(&self) -> PathBuf {
        self.data_dir.join("datasets")
    }

    /// The cached binary `hash`, fetched from the driver (once) if missing.
    async fn binary(&self, hash: &str) -> Result<PathBuf, Status> {
        if !valid_hash(hash) {
            return Err(Status::invalid_argument(format!("{hash:?} is not a binary hash")));
        }
        let dir = self.binary_cache.dir().to_path_buf();
        let path = self.binary_cache.path(hash);
        // Checked and fetched under one lock: a check never deletes a copy another fetched.
        let _guard = self.fetching.lock().await;
        self.binary_cache.note_use(hash);
        if self.still_verified(hash, &path) {
            return Ok(path);
        }
        let id = proto::BinaryId { hash: hash.to_string() };
        let mut stream = self
            .driver
            .call(REPORT_PATIENCE, |mut d| {
                let id = id.clone();
                async move { d.fetch_binary(id).await }
            })
            .await?;
        let mut writer = BinaryWriter::create(&dir, hash).map_err(|e| Status::internal(e.to_string()))?;
        while let Some(chunk) = stream.message().await? {
            writer.write(&chunk.data).map_err(|e| Status::internal(e.to_string()))?;
        }
        let path = writer.finish().map_err(|e| Status::data_loss(e.to_string()))?;
        if let Some(stamp) = FileStamp::of(&path) {
            lock(&self.verified).insert(hash.to_string(), stamp);
        }
        Ok(path)
    }

    /// Whether the cached binary `hash` at `path` is there and still what its hash names:
    /// unchanged since this process checked it, or hashed again now. A file that no longer
    /// matches is deleted (and fetched again by the caller).
    fn still_verified(&self, hash: &str, path: &Path) -> bool {
        let Some(stamp) = FileStamp::of(path) else {
            return false;
        };
        if lock(&self.verified).get(hash) == Some(&stamp) {
            return true;
        }
        match ringleader_core::net::binary::hash_file(path) {
            Ok(found) if found == hash => {
                lock(&self.verified).insert(hash.to_string(), stamp);
                true
            }
            found => {
                tracing::warn!(
                    "the cached binary {} no longer matches its hash ({found:?}): fetching it again",
                    path.display()
                );
                lock(&self.verified).remove(hash);
                let _ = std::fs::remove_file(path);
                false
            }
        }
    }

    async fn report(&self, mut report: proto::TaskReport) {
        report.worker_id = self.worker_id();
        self.counters.report(&report);
        if let Some(proto::task_report::Outcome::Error(e)) = &report.outcome {
            let kind = match (e.fetch_failure, e.retryable, e.counts) {
                (true, ..) => format!("could not read map output on {}", e.fetch_location),
                (false, false, _) => "not retryable".to_string(),
                (false, true, true) => "retryable, counted".to_string(),
                (false, true, false) => "retryable, not counted".to_string(),
            };
            tracing::warn!(
                "{}: {} stage {} task {} attempt {} failed ({kind}): {}",
                report.worker_id,
                report.job_id,
                report.stage,
                report.task,
                report.attempt,
                e.message
            );
        }
        let parts = ringleader_core::net::binary::report_chunks(report);
        // Reports are idempotent (a second report of one attempt is stale), so a report
        // that may have reached an old leader is simply sent again to the new one.
        let _ = self
            .driver
            .call(REPORT_PATIENCE, |mut d| {
                let parts = parts.clone();
                async move { d.report_task(futures::stream::iter(parts)).await }
            })
            .await;
    }
}

/// The report of a task whose executor died (see [`TaskFailure::ExecutorLost`]).
fn lost_report(lost: LostTask, alone: bool) -> proto::TaskReport {
    TaskFailure::ExecutorLost {
        message: lost.message,
        alone,
    }
    .report_for(&lost.assignment)
}

/// The `Worker` and `Executor` services.
#[derive(Clone)]
pub struct WorkerService {
    inner: Arc<WorkerInner>,
}

impl WorkerService {
    /// Serves `inner`.
    pub fn new(inner: Arc<WorkerInner>) -> Self {
        WorkerService { inner }
    }
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn launch_task(
        &self,
        request: Request<proto::TaskAssignment>,
    ) -> Result<Response<proto::LaunchTaskReply>, Status> {
        let assignment = request.into_inner();
        tracing::debug!(
            "{} stage {} task {} attempt {}: launch received",
            assignment.job_id,
            assignment.stage_index,
            assignment.task,
            assignment.attempt
        );
        if !ringleader_core::ids::valid_job_id(&assignment.job_id) {
            return Err(Status::invalid_argument("malformed job id"));
        }
        let binary = self.inner.binary(&assignment.binary_hash).await?;
        let shuffle_dir = self.inner.shuffle_dir();
        std::fs::create_dir_all(&shuffle_dir)
            .map_err(|e| Status::internal(format!("{}: {e}", shuffle_dir.display())))?;
        let worker_id = self.inner.worker_id();
        let dataset_dir = self.inner.dataset_dir();
        let launch = Launch {
            binary: &binary,
            worker_address: &self.inner.address,
            worker_id: &worker_id,
            shuffle_dir: &shuffle_dir,
            dataset_dir: &dataset_dir,
        };
        let inner = self.inner.clone();
        let on_exit = move |lost: Vec<LostTask>| {
            let background = inner.background.clone();
            background.spawn(async move {
                // Alone with the executor (but for tasks that cannot have ended it), the
                // task is to blame for its end.
                let suspects = lost.iter().filter(|l| !l.blameless()).count();
                for l in lost {
                    let alone = suspects == 1 && !l.blameless();
                    inner.report(lost_report(l, alone)).await;
                }
            });
        };
        self.inner
            .executors
            .submit(assignment, launch, on_exit)
            .map_err(|e| Status::internal(format!("cannot start the job's executor: {e}")))?;
        Ok(Response::new(proto::LaunchTaskReply {}))
    }

    async fn stop_job(&self, request: Request<proto::JobId>) -> Result<Response<proto::StopJobReply>, Status> {
        self.inner.executors.stop_job(&request.into_inner().job_id);
        Ok(Response::new(proto::StopJobReply {}))
    }

    async fn stop_attempt(
        &self,
        request: Request<proto::RunningTask>,
    ) -> Result<Response<proto::StopAttemptReply>, Status> {
        let r = request.into_inner();
        self.inner.executors.stop_attempt(&AttemptKey::of_running(&r));
        Ok(Response::new(proto::StopAttemptReply {}))
    }

    async fn update_inputs(
        &self,
        request: Request<proto::InputsUpdate>,
    ) -> Result<Response<proto::UpdateInputsReply>, Status> {
        // Where a running reducer's map outputs are now: for its executor, if it runs.
        self.inner.executors.update_inputs(request.into_inner());
        Ok(Response::new(proto::UpdateInputsReply {}))
    }

    async fn list_partitions(
        &self,
        _: Request<proto::ListPartitionsRequest>,
    ) -> Result<Response<proto::PartitionList>, Status> {
        let root = self.inner.dataset_dir();
        let partitions = tokio::task::spawn_blocking(move || crate::datasets_dir::stored_partitions(&root))
            .await
            .map_err(|e| Status::internal(format!("listing partitions: {e}")))?;
        Ok(Response::new(proto::PartitionList { partitions }))
    }

    async fn copy_partition(
        &self,
        request: Request<proto::CopyPartitionRequest>,
    ) -> Result<Response<proto::CopyPartitionReply>, Status> {
        let r = request.into_inner();
        let id = ringleader_core::net::ticket::PartitionId::from_parts(&[
            &r.dataset,
            &r.generation,
            &r.partition.to_string(),
        ])
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let path = id.path(&self.inner.dataset_dir());
        let mut failures = Vec::new();
        for address in &r.from {
            let copied = async {
                let stream = ringleader_core::io::store::get_partition(address, &id).await?;
                let fence = Some(ringleader_core::io::store::Fence::COPY);
                ringleader_core::io::store::write_flight(path.clone(), fence, stream, address).await
            };
            match copied.await {
                Ok((rows, _)) => return Ok(Response::new(proto::CopyPartitionReply { rows })),
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
        Err(Status::unavailable(format!(
            "no replica of {} partition {} answered: {}",
            r.dataset,
            r.partition,
            failures.join("; ")
        )))
    }
}

type OrderStream = Pin<Box<dyn Stream<Item = Result<proto::ExecutorOrder, Status>> + Send>>;

#[tonic::async_trait]
impl Executor for WorkerService {
    type NextTasksStream = OrderStream;

    async fn next_tasks(
        &self,
        request: Request<proto::ExecutorHello>,
    ) -> Result<Response<Self::NextTasksStream>, Status> {
        ringleader_core::security::auth::Caller::of(&request).may_act_for(&request.get_ref().job_id)?;
        let hello = request.into_inner();
        tracing::debug!("{}: executor asks for tasks", hello.job_id);
        let queue = self
            .inner
            .executors
            .take_queue(&hello.job_id)
            .ok_or_else(|| Status::failed_precondition(format!("no tasks are queued for job {}", hello.job_id)))?;
        use futures::StreamExt;
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(queue).map(Ok))))
    }

    async fn task_finished(
        &self,
        request: Request<tonic::Streaming<proto::TaskReport>>,
    ) -> Result<Response<proto::TaskReportReply>, Status> {
        let caller = ringleader_core::security::auth::Caller::of(&request);
        let report = ringleader_core::net::binary::join_report(request.into_inner()).await?;
        caller.may_act_for(&report.job_id)?;
        tracing::debug!(
            "{} stage {} task {} attempt {}: executor reported",
            report.job_id,
            report.stage,
            report.task,
            report.attempt
        );
        self.inner.executors.finished(&AttemptKey::new(
            &report.job_id,
            StageId(report.stage),
            TaskId(report.task),
            Attempt(report.attempt),
        ));
        // Passed on even if the executor goes before the reply (stopped or killed once it
        // runs nothing else): the report is all that is left of the task's work.
        let inner = self.inner.clone();
        let _ = self
            .inner
            .background
            .spawn(async move { inner.report(report).await })
            .await;
        Ok(Response::new(proto::TaskReportReply {}))
    }

    async fn authorize_commit(
        &self,
        request: Request<proto::RunningTask>,
    ) -> Result<Response<proto::CommitGrant>, Status> {
        ringleader_core::security::auth::Caller::of(&request).may_act_for(&request.get_ref().job_id)?;
        let attempt = request.into_inner();
        let grant = self
            .inner
            .driver
            .call(REPORT_PATIENCE, |mut d| {
                let attempt = attempt.clone();
                async move { d.authorize_commit(attempt).await }
            })
            .await?;
        Ok(Response::new(grant))
    }
}

/// What identifies a file's contents without reading them: any write changes its change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    changed: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            inode: m.ino(),
            len: m.len(),
            changed: (m.ctime(), m.ctime_nsec()),
        })
    }
}
