//! The driver's gRPC face (the `Driver` service). Writes go through Raft on the leader;
//! a driver that does not lead refuses them with the leader's address, and clients and
//! workers follow it. Listings (`ListJobs`, `GetJob`, datasets, status) are answered by
//! any driver from its replica.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::plan::{JobPlan, TaskValue};
use ringleader_core::proto::{
    self, driver_server::Driver, raft_transport_client::RaftTransportClient, task_report::Outcome as Reported,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::leader::DriverInner;
use crate::placement::Placement;
use crate::raft::network::raft_channel;
use crate::raft::transport::{receive_binary, send_binary};
use crate::state::{Command, JobState, Outcome, PendingDataset};
use crate::views::{dataset_info, job_detail, job_statuses, placement, raft_status};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The gRPC face of a driver.
#[derive(Clone)]
pub struct DriverService {
    inner: Arc<DriverInner>,
}

impl DriverService {
    /// Serves `inner`.
    pub fn new(inner: Arc<DriverInner>) -> Self {
        DriverService { inner }
    }

    /// Copies the binary `hash` (stored here) to the other drivers, and returns as soon as
    /// a majority (this driver first) holds it; copies to slower drivers finish in the
    /// background and are recorded when they do.
    async fn replicate_binary(&self, hash: &str) -> Vec<u64> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let others: Vec<(u64, String)> = self
            .inner
            .peers
            .iter()
            .filter(|(id, _)| *id != self.inner.id)
            .map(|(id, address)| (id, address.to_string()))
            .collect();
        for (id, address) in others.iter().cloned() {
            let (inner, hash, tx) = (self.inner.clone(), hash.to_string(), tx.clone());
            self.inner.background.spawn(async move {
                let _ = tx.send(push_binary(&inner, &address, hash).await.then_some(id));
            });
        }
        drop(tx);
        let mut holders = vec![self.inner.id];
        let mut answers = 0;
        while holders.len() < self.inner.peers.majority() && answers < others.len() {
            let Some(answer) = rx.recv().await else { break };
            answers += 1;
            holders.extend(answer);
        }
        let (inner, hash) = (self.inner.clone(), hash.to_string());
        self.inner.background.spawn(async move {
            while let Some(answer) = rx.recv().await {
                if let Some(id) = answer {
                    let _ = inner
                        .write(Command::AddBinary {
                            hash: hash.clone(),
                            holders: vec![id],
                            at_ms: ringleader_core::clock::now_ms(),
                        })
                        .await;
                }
            }
        });
        holders
    }

    /// Fetches the binary `hash` from a driver that holds it, if this one does not.
    async fn ensure_binary(&self, hash: &str) -> Result<(), Status> {
        if self.inner.binaries_dir.join(hash).exists() {
            return Ok(());
        }
        let holders = self.inner.state().binaries.get(hash).cloned().unwrap_or_default();
        let mut reasons = Vec::new();
        for holder in holders.into_iter().filter(|h| *h != self.inner.id) {
            let Some(address) = self.inner.peers.address(holder) else {
                continue;
            };
            let Ok(channel) = raft_channel(address) else { continue };
            let request = self.inner.tagged(proto::BinaryId { hash: hash.to_string() });
            match RaftTransportClient::new(ringleader_core::security::auth::authorized(channel))
                .pull_binary(request)
                .await
            {
                Ok(stream) => match receive_binary(&self.inner.binaries_dir, stream.into_inner()).await {
                    Ok(_) => return Ok(()),
                    Err(e) => reasons.push(format!("driver {holder}: {}", e.message())),
                },
                Err(e) => reasons.push(format!("driver {holder}: {}", e.message())),
            }
        }
        Err(Status::not_found(format!(
            "binary {hash} is on no reachable driver ({})",
            reasons.join("; ")
        )))
    }

    /// The command for an attempt that reports `value`: its success, unless it stored a
    /// partition of its job's `ringleader://` output that fewer workers than the dataset's
    /// replicas confirm on their disks now; then a retryable failure (the task writes it
    /// again), so nothing is committed that is not where the record says.
    #[allow(clippy::too_many_arguments)]
    async fn finished(
        &self,
        job: JobId,
        stage: StageId,
        task: TaskId,
        attempt: Attempt,
        mut value: TaskValue,
        read: ringleader_core::plan::Volume,
        worker: &str,
    ) -> Command {
        // Only a stored partition's report looks its job's output up (not every task's).
        let spec = || self.inner.state().jobs.get(&job).and_then(|j| j.plan.store.clone());
        if let TaskValue::Stored { holders, .. } = &mut value
            && let Some(spec) = spec()
        {
            let confirmed = self
                .inner
                .confirmed_holders(&spec.dataset, &spec.generation, task.index() as u32, holders)
                .await;
            if (confirmed.len() as u32) < spec.replicas {
                let confirming = if confirmed.is_empty() {
                    "none".to_string()
                } else {
                    confirmed.join(", ")
                };
                let message = format!(
                    "partition {task} of {} (generation {}) was written to {} but {confirming} confirm it on their disk (the others do not list it, or did not answer within 5 s), of {} replicas: it is written again (on {worker})",
                    spec.dataset,
                    spec.generation,
                    holders.join(", "),
                    spec.replicas
                );
                tracing::warn!("{job}: {message}");
                // Not the task's fault (a holder lost its disk, or is slow): it does not
                // count toward the task's attempts; the job's bound on such losses holds.
                return Command::FailTask {
                    job,
                    stage,
                    task,
                    attempt,
                    message,
                    retryable: true,
                    counts: false,
                };
            }
            *holders = confirmed;
        }
        Command::FinishTask {
            job,
            stage,
            task,
            attempt,
            value,
            read,
            accumulated: Vec::new(),
        }
    }

    /// Every registered worker as this driver sees it (liveness only on the leader).
    fn worker_statuses(&self) -> Vec<proto::WorkerStatus> {
        let live = self.inner.live_workers();
        let leading = self.inner.leading().is_some();
        let state = self.inner.state();
        let running = state.running_per_worker();
        let shares = state.ring(|w| !leading || live.contains(w)).shares();
        state
            .workers
            .values()
            .map(|w| proto::WorkerStatus {
                worker_id: w.id.to_string(),
                address: w.address.clone(),
                pid: w.pid,
                slots: w.slots,
                alive: live.contains(&w.id),
                ring_share: shares.get(&w.id).copied().unwrap_or(0.0),
                running_tasks: running.get(w.id.as_str()).copied().unwrap_or(0),
                machine: w.machine.clone(),
            })
            .collect()
    }
}

/// Copies the binary `hash` to the driver at `address`; true once it holds it.
async fn push_binary(inner: &DriverInner, address: &str, hash: String) -> bool {
    use futures::StreamExt;
    let Ok(channel) = raft_channel(address) else {
        return false;
    };
    let path = inner.binaries_dir.join(&hash);
    let chunks = ringleader_core::net::binary::file_chunks(path, hash).filter_map(|c| async move { c.ok() });
    let mut client = RaftTransportClient::new(ringleader_core::security::auth::authorized(channel));
    let push = client.push_binary(inner.tagged(chunks));
    matches!(tokio::time::timeout(Duration::from_secs(60), push).await, Ok(Ok(_)))
}

/// A write that lost a compare-and-set on a dataset's name, as the client sees it (it may
/// read the name again and decide); any other outcome passes.
fn refuse_conflict(outcome: Outcome) -> Result<Outcome, Status> {
    match outcome {
        Outcome::Conflict(why) => Err(Status::aborted(why)),
        other => Ok(other),
    }
}

#[tonic::async_trait]
impl Driver for DriverService {
    async fn register_worker(
        &self,
        request: Request<proto::RegisterWorkerRequest>,
    ) -> Result<Response<proto::RegisterWorkerReply>, Status> {
        self.inner.require_leader()?;
        let r = request.into_inner();
        if r.address.is_empty() || r.slots == 0 {
            return Err(Status::invalid_argument(
                "a worker needs an address and at least one slot",
            ));
        }
        let Outcome::WorkerRegistered(id) = self
            .inner
            .write(Command::RegisterWorker {
                address: r.address,
                slots: r.slots,
                pid: r.pid,
                shuffle_dir: r.shuffle_dir,
                machine: r.machine,
                incarnation: r.incarnation,
            })
            .await?
        else {
            return Err(Status::internal("registration produced no id"));
        };
        self.inner.heartbeat(id.clone());
        self.inner.wake.notify_one();
        Ok(Response::new(proto::RegisterWorkerReply {
            worker_id: id.to_string(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatReply>, Status> {
        self.inner.require_leader()?;
        let r = request.into_inner();
        let (known, active_jobs) = {
            let state = self.inner.state();
            let active = state
                .jobs
                .values()
                .filter(|j| j.state == JobState::Running)
                .map(|j| j.id.to_string())
                .collect();
            (state.workers.contains_key(r.worker_id.as_str()), active)
        };
        let live_datasets = self.inner.state().live_datasets();
        if known {
            let reported = r
                .running
                .iter()
                .map(ringleader_core::ids::AttemptKey::of_running)
                .collect();
            for lost in self.inner.reconcile(&r.worker_id, &reported) {
                let _ = self.inner.report(lost).await;
            }
            let was_dead = self.inner.heartbeat(WorkerId::from(r.worker_id));
            if was_dead || r.free_slots > 0 {
                self.inner.wake.notify_one();
            }
        }
        Ok(Response::new(proto::HeartbeatReply {
            known,
            active_jobs,
            live_datasets,
        }))
    }

    async fn keep_session(
        &self,
        request: Request<proto::SessionId>,
    ) -> Result<Response<proto::KeepSessionReply>, Status> {
        self.inner.require_leader()?;
        self.inner.keep_session(request.into_inner().session);
        Ok(Response::new(proto::KeepSessionReply {}))
    }

    async fn has_binary(&self, request: Request<proto::BinaryId>) -> Result<Response<proto::HasBinaryReply>, Status> {
        let hash = request.into_inner().hash;
        let present = self
            .inner
            .state()
            .binaries
            .get(&hash)
            .is_some_and(|holders| holders.len() >= self.inner.peers.majority());
        Ok(Response::new(proto::HasBinaryReply { present }))
    }

    async fn upload_binary(
        &self,
        request: Request<Streaming<proto::BinaryChunk>>,
    ) -> Result<Response<proto::UploadBinaryReply>, Status> {
        self.inner.require_leader()?;
        let hash = receive_binary(&self.inner.binaries_dir, request.into_inner()).await?;
        // A job is accepted only once its binary is on a majority, so any future leader
        // can hand it to workers.
        let holders = self.replicate_binary(&hash).await;
        // Every other driver answered (or timed out): asking again now would end the same.
        if holders.len() < self.inner.peers.majority() {
            return Err(Status::failed_precondition(format!(
                "the binary reached only {} of {} drivers, and a job is accepted only once its binary is on a majority: start the drivers that are down or give them disk space (`ringleader cluster status` lists them, each driver's log says why it failed)",
                holders.len(),
                self.inner.peers.len()
            )));
        }
        self.inner
            .write(Command::AddBinary {
                hash: hash.clone(),
                holders,
                at_ms: ringleader_core::clock::now_ms(),
            })
            .await?;
        Ok(Response::new(proto::UploadBinaryReply { hash }))
    }

    type FetchBinaryStream = BoxStream<proto::BinaryChunk>;

    async fn fetch_binary(
        &self,
        request: Request<proto::BinaryId>,
    ) -> Result<Response<Self::FetchBinaryStream>, Status> {
        let hash = request.into_inner().hash;
        if !self.inner.state().binaries.contains_key(&hash) {
            return Err(Status::not_found(format!("no binary {hash} in this cluster")));
        }
        self.ensure_binary(&hash).await?;
        Ok(Response::new(send_binary(&self.inner.binaries_dir, hash)?))
    }

    type SubmitJobStream = BoxStream<proto::JobEvent>;

    async fn submit_job(
        &self,
        request: Request<proto::SubmitJobRequest>,
    ) -> Result<Response<Self::SubmitJobStream>, Status> {
        let term = self.inner.require_leader()?;
        let r = request.into_inner();
        let existing = self.inner.state().submissions.get(&r.submission_id).cloned();
        let job = match existing.filter(|_| !r.submission_id.is_empty()) {
            // The same submission again (its client lost the old leader): watch that job.
            Some(job) => job,
            None => {
                if !self.inner.state().binaries.contains_key(&r.binary_hash) {
                    return Err(Status::failed_precondition(format!(
                        "binary {} is not uploaded; upload it first",
                        r.binary_hash
                    )));
                }
                if r.plan.len() > crate::MAX_PLAN_BYTES {
                    return Err(Status::invalid_argument(format!(
                        "the job plan is {} bytes, over the {} MiB a driver takes into its log: keep rows out of closures' state and plans (store them with `ringleader put`, or read them as files)",
                        r.plan.len(),
                        crate::MAX_PLAN_BYTES >> 20
                    )));
                }
                let plan: JobPlan = postcard::from_bytes(&r.plan)
                    .map_err(|e| Status::invalid_argument(format!("malformed job plan: {e}")))?;
                if plan.stages.is_empty()
                    || plan
                        .stages
                        .iter()
                        .enumerate()
                        .any(|(i, s)| s.parents.iter().any(|&p| p.index() >= i))
                {
                    return Err(Status::invalid_argument("malformed job plan: stages out of order"));
                }
                let submit = Command::SubmitJob {
                    name: r.name,
                    binary: r.binary_hash,
                    args: r.args,
                    env: r.env.into_iter().collect::<BTreeMap<_, _>>(),
                    working_dir: r.working_dir,
                    plan,
                    submission: r.submission_id,
                    submitted_ms: ringleader_core::clock::now_ms(),
                };
                match self.inner.write(submit).await? {
                    Outcome::JobSubmitted(job) => job,
                    Outcome::Refused(why) => return Err(Status::failed_precondition(why)),
                    _ => return Err(Status::internal("submission produced no id")),
                }
            }
        };
        tracing::debug!("{job}: submission committed");
        let (tx, rx) = mpsc::channel(256);
        self.inner.watch(&job, tx, term);
        self.inner.wake.notify_one();
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report_task(
        &self,
        request: Request<Streaming<proto::TaskReport>>,
    ) -> Result<Response<proto::TaskReportReply>, Status> {
        self.inner.require_leader()?;
        let r = ringleader_core::net::binary::join_report(request.into_inner()).await?;
        // A fetch failure names the worker whose map output could not be read.
        let lost_on = match &r.outcome {
            Some(Reported::Error(e)) if e.fetch_failure => self.inner.worker_at(&e.fetch_location),
            _ => None,
        };
        let (job, stage, task, attempt) = (
            JobId::from(r.job_id),
            StageId(r.stage),
            TaskId(r.task),
            Attempt(r.attempt),
        );
        // Named for the job's timeline (see `bench cluster`) only when it is logged.
        let what = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| format!("{job} stage {stage} task {task} attempt {attempt}"));
        let command = match (r.outcome, lost_on) {
            (Some(Reported::Value(bytes)), _) => {
                let value = postcard::from_bytes(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("malformed task value: {e}")))?;
                let read = ringleader_core::plan::Volume {
                    rows: r.read_rows,
                    bytes: r.read_bytes,
                };
                let mut finished = self
                    .finished(job, stage, task, attempt, value, read, &r.worker_id)
                    .await;
                if let Command::FinishTask { accumulated, .. } = &mut finished {
                    *accumulated = r
                        .accumulators
                        .iter()
                        .filter_map(ringleader_core::plan::accumulator::Accumulated::from_proto)
                        .collect();
                }
                finished
            }
            // Not the reader's fault: the map output it needs is recomputed.
            (Some(Reported::Error(e)), Some(worker)) => Command::FetchFailed {
                worker,
                message: format!("{} (on {})", e.message, r.worker_id),
                job,
                stage,
                task,
                attempt,
            },
            (Some(Reported::Error(e)), None) => Command::FailTask {
                message: format!("{} (on {})", e.message, r.worker_id),
                retryable: e.retryable,
                counts: e.counts,
                job,
                stage,
                task,
                attempt,
            },
            (None, _) => return Err(Status::invalid_argument("a task report needs a value or an error")),
        };
        self.inner.report(command).await?;
        if let Some(what) = what {
            tracing::debug!("{what}: report committed");
        }
        Ok(Response::new(proto::TaskReportReply {}))
    }

    async fn authorize_commit(
        &self,
        request: Request<proto::RunningTask>,
    ) -> Result<Response<proto::CommitGrant>, Status> {
        let term = self.inner.require_leader()?;
        let r = request.into_inner();
        let command = Command::AuthorizeCommit {
            job: JobId::from(r.job_id.clone()),
            stage: StageId(r.stage),
            task: TaskId(r.task),
            attempt: Attempt(r.attempt),
        };
        let grant = match self.inner.write(command).await? {
            Outcome::Granted(grant) => proto::CommitGrant {
                granted: true,
                term,
                reason: String::new(),
                grant,
            },
            Outcome::Refused(reason) => {
                tracing::info!(
                    "{}: refused attempt {} of task {} of stage {} the commit of its output: {reason}",
                    r.job_id,
                    r.attempt,
                    r.task,
                    r.stage
                );
                proto::CommitGrant {
                    granted: false,
                    term,
                    reason,
                    grant: 0,
                }
            }
            other => return Err(Status::internal(format!("a commit grant applied as {other:?}"))),
        };
        Ok(Response::new(grant))
    }

    async fn place_dataset(
        &self,
        request: Request<proto::PlaceDatasetRequest>,
    ) -> Result<Response<proto::DatasetInfo>, Status> {
        // Its refusals ("already exists") read the state: a caught-up leader's.
        self.inner.read_barrier().await?;
        let r = request.into_inner();
        if !ringleader_core::ids::valid_dataset_name(&r.name) {
            return Err(Status::invalid_argument(format!(
                "{:?} is not a dataset name (letters, digits, - and _)",
                r.name
            )));
        }
        if r.partitions == 0 || r.replicas == 0 {
            return Err(Status::invalid_argument(
                "a dataset needs at least one partition and one replica",
            ));
        }
        let live = self.inner.live_workers();
        let (partitions, expected) = {
            let state = self.inner.state();
            if state.datasets.contains_key(&r.name) && !r.overwrite {
                return Err(Status::already_exists(format!(
                    "dataset {} already exists; pass --overwrite to replace it (or `ringleader rm {}`)",
                    r.name, r.name
                )));
            }
            let mut placing = Placement::new(&state, self.inner.placement, |w| live.contains(w));
            if (placing.workers() as u32) < r.replicas {
                return Err(Status::failed_precondition(format!(
                    "{} replicas asked, but only {} workers are alive",
                    r.replicas,
                    placing.workers()
                )));
            }
            let partitions: Vec<proto::PartitionPlacement> = (0..r.partitions)
                .map(|p| {
                    let owners = placing.owners(&r.name, p, r.replicas as usize, r.spare as usize);
                    placement(&state, p, owners, 0, 0)
                })
                .collect();
            // Overwriting replaces the generation there now, and only it; otherwise the name
            // must stay free until the commit.
            let expected = if r.overwrite {
                state.generation_of(&r.name).map(str::to_string)
            } else {
                None
            };
            (partitions, expected)
        };
        let generation = ringleader_core::io::store::new_generation();
        let placed = Command::PlaceDataset(PendingDataset {
            name: r.name.clone(),
            generation: generation.clone(),
            expected,
            placed_ms: ringleader_core::clock::now_ms(),
        });
        refuse_conflict(self.inner.write(placed).await?)?;
        Ok(Response::new(proto::DatasetInfo {
            name: r.name,
            replicas: r.replicas,
            partitions,
            generation,
            format: String::new(),
        }))
    }

    async fn commit_dataset(
        &self,
        request: Request<proto::DatasetInfo>,
    ) -> Result<Response<proto::CommitDatasetReply>, Status> {
        self.inner.require_leader()?;
        let r = request.into_inner();
        let record = {
            let state = self.inner.state();
            if let Some(unknown) = r
                .partitions
                .iter()
                .flat_map(|p| &p.workers)
                .find(|w| !state.workers.contains_key(w.as_str()))
            {
                return Err(Status::invalid_argument(format!("unknown worker {unknown}")));
            }
            let mut parts = r.partitions.clone();
            parts.sort_by_key(|p| p.partition);
            if parts.iter().enumerate().any(|(i, p)| p.partition as usize != i) {
                return Err(Status::invalid_argument("partitions must be numbered 0..n"));
            }
            let format = DatasetFormat::parse(&r.format)
                .ok_or_else(|| Status::invalid_argument(format!("{:?} is not a dataset format", r.format)))?;
            if !ringleader_core::ids::valid_dataset_name(&r.generation) {
                return Err(Status::invalid_argument("malformed dataset generation"));
            }
            crate::state::DatasetRecord {
                name: r.name.clone(),
                generation: r.generation.clone(),
                format,
                replicas: r.replicas,
                placement: parts
                    .iter()
                    .map(|p| p.workers.iter().map(|w| WorkerId::from(w.as_str())).collect())
                    .collect(),
                rows: parts.iter().map(|p| p.rows).collect(),
                bytes: parts.iter().map(|p| p.bytes).collect(),
            }
        };
        // Committed on the holders that confirm their partitions, never on a claim alone.
        let mut record = record;
        record.placement = self
            .inner
            .confirmed_placement(&record.name, &record.generation, record.placement)
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        refuse_conflict(self.inner.write(Command::CommitDataset(record)).await?)?;
        self.inner.repair_wake.notify_one();
        Ok(Response::new(proto::CommitDatasetReply {}))
    }

    async fn get_dataset(&self, request: Request<proto::DatasetName>) -> Result<Response<proto::DatasetInfo>, Status> {
        // Linearizable: the leader, its state caught up with everything acknowledged.
        self.inner.read_barrier().await?;
        let name = request.into_inner().name;
        let state = self.inner.state();
        let record = state.datasets.get(&name).ok_or_else(|| {
            Status::not_found(format!(
                "no dataset named {name:?} (`ringleader datasets` lists them; store one with `ringleader put --name {name} PATH…`)"
            ))
        })?;
        Ok(Response::new(dataset_info(&state, record, |_| None)))
    }

    async fn remove_dataset(
        &self,
        request: Request<proto::RemoveDatasetRequest>,
    ) -> Result<Response<proto::RemoveDatasetReply>, Status> {
        // "No dataset" and a retry's "done" read the state: a caught-up leader's.
        self.inner.read_barrier().await?;
        let proto::RemoveDatasetRequest { name, request } = request.into_inner();
        if self.inner.state().removed_by(&request) {
            // A retry of a removal that was applied before its reply was lost.
            return Ok(Response::new(proto::RemoveDatasetReply {}));
        }
        let not_found = || Status::not_found(format!("no dataset named {name:?} (`ringleader datasets` lists them)"));
        let generation = self
            .inner
            .state()
            .generation_of(&name)
            .map(str::to_string)
            .ok_or_else(not_found)?;
        let removed = self
            .inner
            .write(Command::RemoveDataset {
                name: name.clone(),
                generation,
                request,
            })
            .await?;
        if ringleader_core::fault_injection::take(ringleader_core::fault_injection::REPLY_LOST) {
            tracing::warn!("test fault: exiting after removing {name}, before replying");
            std::process::exit(101);
        }
        match refuse_conflict(removed)? {
            Outcome::Stale => Err(not_found()),
            _ => Ok(Response::new(proto::RemoveDatasetReply {})),
        }
    }

    async fn list_datasets(
        &self,
        _: Request<proto::ListDatasetsRequest>,
    ) -> Result<Response<proto::DatasetList>, Status> {
        // The replicas' health is what the leader's repair loop found: ask the leader, its
        // state caught up with everything acknowledged.
        self.inner.read_barrier().await?;
        let state = self.inner.state();
        let datasets = state
            .datasets
            .values()
            .map(|d| dataset_info(&state, d, |p| self.inner.partition_health(&d.name, p)))
            .collect();
        Ok(Response::new(proto::DatasetList { datasets }))
    }

    async fn list_jobs(&self, _: Request<proto::ListJobsRequest>) -> Result<Response<proto::JobList>, Status> {
        let jobs = job_statuses(&self.inner.state());
        Ok(Response::new(proto::JobList { jobs }))
    }

    async fn get_job(&self, request: Request<proto::JobId>) -> Result<Response<proto::JobDetail>, Status> {
        let id = request.into_inner().job_id;
        let state = self.inner.state();
        let job = state.jobs.get(id.as_str()).ok_or_else(|| no_job(&id))?;
        let attempts = self.inner.attempts_of(&id);
        Ok(Response::new(job_detail(job, &attempts)))
    }

    async fn cancel_job(
        &self,
        request: Request<proto::CancelJobRequest>,
    ) -> Result<Response<proto::CancelJobReply>, Status> {
        self.inner.require_leader()?;
        let r = request.into_inner();
        let state = match self.inner.state().jobs.get(r.job_id.as_str()) {
            None => return Err(no_job(&r.job_id)),
            Some(job) => job.state.clone(),
        };
        if state != crate::state::JobState::Running {
            return Err(Status::failed_precondition(format!(
                "{} is not running: {}",
                r.job_id,
                state.name()
            )));
        }
        let reason = if r.reason.is_empty() {
            "cancelled".to_string()
        } else {
            r.reason
        };
        self.inner.cancel_running(|job| job == r.job_id, &reason).await;
        Ok(Response::new(proto::CancelJobReply {}))
    }

    async fn cluster_status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusReply>, Status> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let workers = self.worker_statuses();
        let jobs = job_statuses(&self.inner.state());
        Ok(Response::new(proto::ClusterStatusReply {
            driver_id: format!("driver-{}", self.inner.id),
            pid: std::process::id(),
            workers,
            jobs,
            raft: Some(raft_status(&metrics, &self.inner.peers, self.inner.commit_index())),
        }))
    }

    async fn list_workers(&self, _: Request<proto::ListWorkersRequest>) -> Result<Response<proto::WorkerList>, Status> {
        Ok(Response::new(proto::WorkerList {
            workers: self.worker_statuses(),
        }))
    }
}

/// The answer about a job id the cluster does not remember.
fn no_job(id: &str) -> Status {
    Status::not_found(format!(
        "no job {id:?} (`ringleader jobs` lists the jobs this cluster remembers)"
    ))
}
