//! The driver's gRPC service and its scheduling loop. All durable knowledge lives in
//! [`ClusterState`] behind one lock and changes only through [`Command`]s; heartbeats, job
//! watchers and connections to workers are soft state of this process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use ringleader_core::binary::{BinaryWriter, CHUNK_BYTES, valid_hash};
use ringleader_core::plan::{JobPlan, TaskValue};
use ringleader_core::proto::{self, driver_server::Driver, job_event::Event, task_report::Outcome as Reported};
use ringleader_core::ring::Ring;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::scheduler::{Assignment, schedule};
use crate::state::{ClusterState, Command, JobRecord, JobState, Outcome, TaskState};

type EventSender = mpsc::Sender<Result<proto::JobEvent, Status>>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Shared state of one driver process.
pub struct DriverInner {
    id: String,
    state: Mutex<ClusterState>,
    heartbeats: Mutex<HashMap<String, Instant>>,
    watchers: Mutex<HashMap<String, EventSender>>,
    channels: Mutex<HashMap<String, Channel>>,
    binaries_dir: PathBuf,
    wake: Notify,
    worker_timeout: Duration,
    no_worker_timeout: Duration,
    /// When a live worker was last seen (for failing jobs that cannot run).
    last_live: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DriverInner {
    /// A driver keeping binaries under `data_dir/binaries`.
    pub fn new(
        id: String,
        data_dir: PathBuf,
        worker_timeout: Duration,
        no_worker_timeout: Duration,
    ) -> Arc<DriverInner> {
        Arc::new(DriverInner {
            id,
            state: Mutex::new(ClusterState::default()),
            heartbeats: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            binaries_dir: data_dir.join("binaries"),
            wake: Notify::new(),
            worker_timeout,
            no_worker_timeout,
            last_live: Mutex::new(Instant::now()),
        })
    }

    fn apply(&self, command: Command) -> Outcome {
        lock(&self.state).apply(command)
    }

    fn live_workers(&self) -> BTreeSet<String> {
        let now = Instant::now();
        lock(&self.heartbeats)
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < self.worker_timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn channel(&self, address: &str) -> Result<Channel, Status> {
        let mut channels = lock(&self.channels);
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Status::internal(format!("bad worker address {address}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Fails the running jobs when no worker has been alive for `no_worker_timeout`.
    fn fail_jobs_without_workers(self: &Arc<Self>, live: &BTreeSet<String>) {
        let mut last = lock(&self.last_live);
        if !live.is_empty() {
            *last = Instant::now();
            return;
        }
        if last.elapsed() < self.no_worker_timeout {
            return;
        }
        drop(last);
        let running: Vec<String> = {
            let state = lock(&self.state);
            state
                .jobs
                .values()
                .filter(|j| j.state == JobState::Running)
                .map(|j| j.id.clone())
                .collect()
        };
        for job in running {
            let reason = format!(
                "no live worker for {:.0} s; start workers (`ringleader worker --master …` or `ringleader cluster up`) and submit again",
                self.no_worker_timeout.as_secs_f64()
            );
            self.apply(Command::CancelJob {
                job: job.clone(),
                reason,
            });
            self.after_report(&job, 0);
        }
    }

    /// Starts every task that can start now.
    fn launch_ready(self: &Arc<Self>) {
        let live = self.live_workers();
        self.fail_jobs_without_workers(&live);
        let launches: Vec<(String, proto::TaskAssignment)> = {
            let mut state = lock(&self.state);
            let assignments = schedule(&state, &live);
            assignments
                .into_iter()
                .filter_map(|a| {
                    let Assignment {
                        job,
                        stage,
                        task,
                        worker,
                    } = a;
                    let Outcome::TaskStarted(attempt) = state.apply(Command::StartTask {
                        job: job.clone(),
                        stage,
                        task,
                        worker: worker.clone(),
                    }) else {
                        return None;
                    };
                    let address = state.workers.get(&worker)?.address.clone();
                    let record = state.jobs.get(&job)?;
                    Some((address, assignment_message(&state, record, stage, task, attempt)))
                })
                .collect()
        };
        for (address, assignment) in launches {
            let me = self.clone();
            tokio::spawn(async move {
                let (job, stage, task, attempt) = (
                    assignment.job_id.clone(),
                    assignment.stage_index,
                    assignment.task,
                    assignment.attempt,
                );
                let result = match me.channel(&address) {
                    Ok(ch) => proto::worker_client::WorkerClient::new(ch)
                        .launch_task(assignment)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    me.task_failed(
                        &job,
                        stage,
                        task,
                        attempt,
                        format!("worker {address} refused the task: {}", e.message()),
                        true,
                    );
                }
            });
        }
    }

    fn task_failed(self: &Arc<Self>, job: &str, stage: u32, task: u32, attempt: u32, message: String, retryable: bool) {
        self.apply(Command::FailTask {
            job: job.to_string(),
            stage,
            task,
            attempt,
            message,
            retryable,
        });
        self.after_report(job, stage);
    }

    /// Tells the job's client what changed and wakes the scheduler.
    fn after_report(self: &Arc<Self>, job: &str, stage: u32) {
        let events: Vec<Event> = {
            let state = lock(&self.state);
            let Some(record) = state.jobs.get(job) else { return };
            match &record.state {
                JobState::Running => vec![Event::Stage(stage_progress(record, stage))],
                JobState::Succeeded => {
                    let mut events = vec![Event::Stage(stage_progress(record, stage))];
                    let values = record.result();
                    for (task, value) in values.iter().enumerate() {
                        let bytes = postcard::to_stdvec(value).unwrap_or_default();
                        for piece in bytes.chunks(CHUNK_BYTES) {
                            events.push(Event::Result(proto::ResultChunk {
                                task: task as u32,
                                data: piece.to_vec(),
                            }));
                        }
                    }
                    events.push(Event::Finished(proto::JobFinished {
                        tasks: values.len() as u32,
                    }));
                    events
                }
                JobState::Failed(m) | JobState::Cancelled(m) => {
                    vec![Event::Failed(proto::JobFailed { message: m.clone() })]
                }
            }
        };
        let last = events.iter().any(|e| !matches!(e, Event::Stage(_)));
        let sender = if last {
            lock(&self.watchers).remove(job)
        } else {
            lock(&self.watchers).get(job).cloned()
        };
        if let Some(tx) = sender {
            if last {
                // The final events must all arrive: send them in order from a task.
                tokio::spawn(async move {
                    for event in events {
                        if tx.send(Ok(proto::JobEvent { event: Some(event) })).await.is_err() {
                            break;
                        }
                    }
                });
            } else {
                for event in events {
                    let _ = tx.try_send(Ok(proto::JobEvent { event: Some(event) }));
                }
            }
        }
        self.wake.notify_one();
    }

    /// Runs the scheduling loop until the process ends.
    pub async fn schedule_forever(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            self.launch_ready();
        }
    }
}

fn stage_progress(record: &JobRecord, stage: u32) -> proto::StageProgress {
    let tasks = record.tasks.get(stage as usize).map(Vec::as_slice).unwrap_or_default();
    let (mut rows, mut bytes) = (0, 0);
    for t in tasks {
        if let TaskState::Done { value, .. } = t {
            match value {
                TaskValue::Shuffled { rows: r, bytes: b } | TaskValue::Written { rows: r, bytes: b } => {
                    rows += r;
                    bytes += b;
                }
                TaskValue::Count(n) => rows += n,
                _ => {}
            }
        }
    }
    proto::StageProgress {
        stage,
        done: tasks.iter().filter(|t| matches!(t, TaskState::Done { .. })).count() as u32,
        total: tasks.len() as u32,
        rows,
        bytes,
    }
}

fn assignment_message(
    state: &ClusterState,
    record: &JobRecord,
    stage: u32,
    task: u32,
    attempt: u32,
) -> proto::TaskAssignment {
    let plan = &record.plan.stages[stage as usize];
    let inputs = record
        .shuffle_inputs(stage as usize, task as usize)
        .into_iter()
        .map(|(shuffle, workers)| {
            let field = |f: fn(&crate::state::WorkerRecord) -> &String| -> Vec<String> {
                workers
                    .iter()
                    .map(|w| state.workers.get(w).map(|r| f(r).clone()).unwrap_or_default())
                    .collect()
            };
            proto::ShuffleInput {
                shuffle,
                locations: field(|r| &r.address),
                shuffle_dirs: field(|r| &r.shuffle_dir),
            }
        })
        .collect();
    proto::TaskAssignment {
        job_id: record.id.clone(),
        binary_hash: record.binary.clone(),
        args: record.args.clone(),
        env: record.env.clone().into_iter().collect(),
        working_dir: record.working_dir.clone(),
        task_plan: postcard::to_stdvec(&plan.tasks[task as usize]).unwrap_or_default(),
        stage_output: postcard::to_stdvec(&plan.output).unwrap_or_default(),
        task,
        attempt,
        inputs,
        stage_index: stage,
    }
}

fn placement(state: &ClusterState, partition: u32, workers: Vec<String>, rows: u64) -> proto::PartitionPlacement {
    let addresses = workers
        .iter()
        .map(|w| state.workers.get(w).map(|r| r.address.clone()).unwrap_or_default())
        .collect();
    proto::PartitionPlacement {
        partition,
        workers,
        addresses,
        rows,
    }
}

fn dataset_info(state: &ClusterState, record: &crate::state::DatasetRecord) -> proto::DatasetInfo {
    let partitions = record
        .placement
        .iter()
        .enumerate()
        .map(|(p, workers)| {
            placement(
                state,
                p as u32,
                workers.clone(),
                record.rows.get(p).copied().unwrap_or(0),
            )
        })
        .collect();
    proto::DatasetInfo {
        name: record.name.clone(),
        replicas: record.replicas,
        partitions,
    }
}

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
}

#[tonic::async_trait]
impl Driver for DriverService {
    async fn register_worker(
        &self,
        request: Request<proto::RegisterWorkerRequest>,
    ) -> Result<Response<proto::RegisterWorkerReply>, Status> {
        let r = request.into_inner();
        if r.address.is_empty() || r.slots == 0 {
            return Err(Status::invalid_argument(
                "a worker needs an address and at least one slot",
            ));
        }
        let Outcome::WorkerRegistered(id) = self.inner.apply(Command::RegisterWorker {
            address: r.address,
            slots: r.slots,
            pid: r.pid,
            shuffle_dir: r.shuffle_dir,
        }) else {
            return Err(Status::internal("registration produced no id"));
        };
        lock(&self.inner.heartbeats).insert(id.clone(), Instant::now());
        self.inner.wake.notify_one();
        Ok(Response::new(proto::RegisterWorkerReply { worker_id: id }))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatReply>, Status> {
        let r = request.into_inner();
        let (known, active_jobs) = {
            let state = lock(&self.inner.state);
            let active = state
                .jobs
                .values()
                .filter(|j| j.state == JobState::Running)
                .map(|j| j.id.clone())
                .collect();
            (state.workers.contains_key(&r.worker_id), active)
        };
        if known {
            let was_dead = lock(&self.inner.heartbeats)
                .insert(r.worker_id, Instant::now())
                .is_none_or(|t| t.elapsed() >= self.inner.worker_timeout);
            if was_dead || r.free_slots > 0 {
                self.inner.wake.notify_one();
            }
        }
        Ok(Response::new(proto::HeartbeatReply { known, active_jobs }))
    }

    async fn has_binary(&self, request: Request<proto::BinaryId>) -> Result<Response<proto::HasBinaryReply>, Status> {
        let hash = request.into_inner().hash;
        let present = lock(&self.inner.state).binaries.contains(&hash) && self.inner.binaries_dir.join(&hash).exists();
        Ok(Response::new(proto::HasBinaryReply { present }))
    }

    async fn upload_binary(
        &self,
        request: Request<Streaming<proto::BinaryChunk>>,
    ) -> Result<Response<proto::UploadBinaryReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty upload"))?;
        let hash = first.hash.clone();
        let mut writer = BinaryWriter::create(&self.inner.binaries_dir, &hash)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        writer.write(&first.data).map_err(|e| Status::internal(e.to_string()))?;
        while let Some(chunk) = stream.message().await? {
            writer.write(&chunk.data).map_err(|e| Status::internal(e.to_string()))?;
        }
        writer.finish().map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.inner.apply(Command::AddBinary { hash: hash.clone() });
        Ok(Response::new(proto::UploadBinaryReply { hash }))
    }

    type FetchBinaryStream = BoxStream<proto::BinaryChunk>;

    async fn fetch_binary(
        &self,
        request: Request<proto::BinaryId>,
    ) -> Result<Response<Self::FetchBinaryStream>, Status> {
        let hash = request.into_inner().hash;
        if !valid_hash(&hash) || !lock(&self.inner.state).binaries.contains(&hash) {
            return Err(Status::not_found(format!("no binary {hash} on this driver")));
        }
        let path = self.inner.binaries_dir.join(&hash);
        if !path.exists() {
            return Err(Status::not_found(format!("{} is missing", path.display())));
        }
        use futures::StreamExt;
        let chunks =
            ringleader_core::binary::file_chunks(path, hash).map(|c| c.map_err(|e| Status::internal(e.to_string())));
        Ok(Response::new(Box::pin(chunks)))
    }

    type SubmitJobStream = BoxStream<proto::JobEvent>;

    async fn submit_job(
        &self,
        request: Request<proto::SubmitJobRequest>,
    ) -> Result<Response<Self::SubmitJobStream>, Status> {
        let r = request.into_inner();
        if !lock(&self.inner.state).binaries.contains(&r.binary_hash) {
            return Err(Status::failed_precondition(format!(
                "binary {} is not uploaded; upload it first",
                r.binary_hash
            )));
        }
        let plan: JobPlan =
            postcard::from_bytes(&r.plan).map_err(|e| Status::invalid_argument(format!("malformed job plan: {e}")))?;
        if plan.stages.is_empty()
            || plan
                .stages
                .iter()
                .enumerate()
                .any(|(i, s)| s.parents.iter().any(|&p| p as usize >= i))
        {
            return Err(Status::invalid_argument("malformed job plan: stages out of order"));
        }
        let stages = plan.stages.len() as u32;
        let Outcome::JobSubmitted(job) = self.inner.apply(Command::SubmitJob {
            name: r.name,
            binary: r.binary_hash,
            args: r.args,
            env: r.env.into_iter().collect::<BTreeMap<_, _>>(),
            working_dir: r.working_dir,
            plan,
        }) else {
            return Err(Status::internal("submission produced no id"));
        };
        let (tx, rx) = mpsc::channel(256);
        let accepted = proto::JobEvent {
            event: Some(Event::Accepted(proto::JobAccepted {
                job_id: job.clone(),
                stages,
            })),
        };
        let _ = tx.try_send(Ok(accepted));
        lock(&self.inner.watchers).insert(job.clone(), tx.clone());
        // A client that goes away cancels its job.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tx.closed().await;
            if inner.apply(Command::CancelJob {
                job: job.clone(),
                reason: "the client went away".into(),
            }) == Outcome::Done
            {
                lock(&inner.watchers).remove(&job);
            }
        });
        self.inner.wake.notify_one();
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report_task(
        &self,
        request: Request<Streaming<proto::TaskReport>>,
    ) -> Result<Response<proto::TaskReportReply>, Status> {
        let r = ringleader_core::binary::join_report(request.into_inner()).await?;
        match r.outcome {
            Some(Reported::Value(bytes)) => {
                let value: TaskValue = postcard::from_bytes(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("malformed task value: {e}")))?;
                self.inner.apply(Command::FinishTask {
                    job: r.job_id.clone(),
                    stage: r.stage,
                    task: r.task,
                    attempt: r.attempt,
                    value,
                });
                self.inner.after_report(&r.job_id, r.stage);
            }
            Some(Reported::Error(e)) => {
                let message = format!("{} (on {})", e.message, r.worker_id);
                self.inner
                    .task_failed(&r.job_id, r.stage, r.task, r.attempt, message, e.retryable);
            }
            None => return Err(Status::invalid_argument("a task report needs a value or an error")),
        }
        Ok(Response::new(proto::TaskReportReply {}))
    }

    async fn place_dataset(
        &self,
        request: Request<proto::PlaceDatasetRequest>,
    ) -> Result<Response<proto::DatasetInfo>, Status> {
        let r = request.into_inner();
        if !ringleader_core::cluster_shuffle::valid_job_id(&r.name) {
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
        let state = lock(&self.inner.state);
        let mut ring = Ring::new(ringleader_core::ring::DEFAULT_VNODES);
        for w in state.workers.values().filter(|w| live.contains(&w.id)) {
            ring.add(w.id.clone(), w.slots);
        }
        if (ring.len() as u32) < r.replicas {
            return Err(Status::failed_precondition(format!(
                "{} replicas asked, but only {} workers are alive",
                r.replicas,
                ring.len()
            )));
        }
        let partitions = (0..r.partitions)
            .map(|p| {
                let owners: Vec<String> = ring
                    .owners(format!("{}/{p}", r.name).as_bytes(), r.replicas as usize)
                    .into_iter()
                    .cloned()
                    .collect();
                placement(&state, p, owners, 0)
            })
            .collect();
        Ok(Response::new(proto::DatasetInfo {
            name: r.name,
            replicas: r.replicas,
            partitions,
        }))
    }

    async fn commit_dataset(
        &self,
        request: Request<proto::DatasetInfo>,
    ) -> Result<Response<proto::CommitDatasetReply>, Status> {
        let r = request.into_inner();
        let record = {
            let state = lock(&self.inner.state);
            if let Some(unknown) = r
                .partitions
                .iter()
                .flat_map(|p| &p.workers)
                .find(|w| !state.workers.contains_key(*w))
            {
                return Err(Status::invalid_argument(format!("unknown worker {unknown}")));
            }
            let mut parts = r.partitions.clone();
            parts.sort_by_key(|p| p.partition);
            if parts.iter().enumerate().any(|(i, p)| p.partition as usize != i) {
                return Err(Status::invalid_argument("partitions must be numbered 0..n"));
            }
            crate::state::DatasetRecord {
                name: r.name.clone(),
                replicas: r.replicas,
                placement: parts.iter().map(|p| p.workers.clone()).collect(),
                rows: parts.iter().map(|p| p.rows).collect(),
            }
        };
        self.inner.apply(Command::PutDataset(record));
        Ok(Response::new(proto::CommitDatasetReply {}))
    }

    async fn get_dataset(&self, request: Request<proto::DatasetName>) -> Result<Response<proto::DatasetInfo>, Status> {
        let name = request.into_inner().name;
        let state = lock(&self.inner.state);
        let record = state.datasets.get(&name).ok_or_else(|| {
            Status::not_found(format!(
                "no dataset named {name:?}; store one with `ringleader put --name {name} PATH…`"
            ))
        })?;
        Ok(Response::new(dataset_info(&state, record)))
    }

    async fn list_datasets(
        &self,
        _: Request<proto::ListDatasetsRequest>,
    ) -> Result<Response<proto::DatasetList>, Status> {
        let state = lock(&self.inner.state);
        let datasets = state.datasets.values().map(|d| dataset_info(&state, d)).collect();
        Ok(Response::new(proto::DatasetList { datasets }))
    }

    async fn cluster_status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusReply>, Status> {
        let live = self.inner.live_workers();
        let state = lock(&self.inner.state);
        let running = state.running_per_worker();
        let mut ring = Ring::new(ringleader_core::ring::DEFAULT_VNODES);
        for w in state.workers.values().filter(|w| live.contains(&w.id)) {
            ring.add(w.id.clone(), w.slots);
        }
        let shares = ring.shares();
        let workers = state
            .workers
            .values()
            .map(|w| proto::WorkerStatus {
                worker_id: w.id.clone(),
                address: w.address.clone(),
                pid: w.pid,
                slots: w.slots,
                alive: live.contains(&w.id),
                ring_share: shares.get(&w.id).copied().unwrap_or(0.0),
                running_tasks: running.get(w.id.as_str()).copied().unwrap_or(0),
            })
            .collect();
        let jobs = state
            .jobs
            .values()
            .map(|j| {
                let (done, total) = j.progress();
                proto::JobStatus {
                    job_id: j.id.clone(),
                    name: j.name.clone(),
                    state: j.state.name().to_string(),
                    stages: j.tasks.len() as u32,
                    tasks_done: done,
                    tasks_total: total,
                }
            })
            .collect();
        Ok(Response::new(proto::ClusterStatusReply {
            driver_id: self.inner.id.clone(),
            pid: std::process::id(),
            workers,
            jobs,
        }))
    }
}
