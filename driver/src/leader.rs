//! One driver process: its Raft node, its replica of the state, and — while it leads — the
//! leader-local soft state (worker heartbeats, job watchers, connections to workers) and
//! the scheduling loop. Every change to the durable state is a [`Command`] committed
//! through Raft; a driver that does not lead refuses writes with the leader's address.
//!
//! Taking over: a new leader waits until its state machine has applied everything
//! committed, presumes the registered workers alive for one heartbeat timeout, and returns
//! every running task to pending ([`Command::RequeueRunning`]) so it is issued again with a
//! new attempt number; a late report from an old attempt is then stale and ignored.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLockReadGuard};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use ringleader_core::binary::CHUNK_BYTES;
use ringleader_core::driver_group::not_leader;
use ringleader_core::proto::{self, job_event::Event};
use tokio::sync::{Notify, mpsc};
use tonic::Status;
use tonic::transport::Channel;

use crate::raft::group::Peers;
use crate::raft::state_machine::Replica;
use crate::raft::{Raft, network};
use crate::scheduler::{Assignment, SpeculationConfig, Timings, schedule, speculate};
use crate::state::{ClusterState, Command, JobRecord, JobState, Outcome};
use crate::views::stage_progress;

/// A job's event stream, as the service hands it to the client.
pub type EventSender = mpsc::Sender<Result<proto::JobEvent, Status>>;

/// How long a running job may go unwatched after a leader change before it is cancelled
/// (its client reconnects within seconds; one that does not has gone away).
const UNWATCHED_GRACE: Duration = Duration::from_secs(15);

/// Shared state of one driver process.
pub struct DriverInner {
    /// This driver's node id.
    pub id: u64,
    /// The group.
    pub peers: Peers,
    /// The Raft node.
    pub raft: Raft,
    replica: Arc<Replica>,
    commit_index: Arc<AtomicU64>,
    /// Where job binaries are kept.
    pub binaries_dir: PathBuf,
    heartbeats: Mutex<HashMap<String, Instant>>,
    watchers: Mutex<HashMap<String, (EventSender, u64)>>,
    unwatched: Mutex<HashMap<String, Instant>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Wakes the scheduling loop.
    pub wake: Notify,
    /// Missed-heartbeat time after which a worker counts as dead.
    pub worker_timeout: Duration,
    no_worker_timeout: Duration,
    last_live: Mutex<Instant>,
    /// Workers alive at the last scheduling pass (to notice the ones that die).
    was_live: Mutex<BTreeSet<String>>,
    /// The term in which this driver finished taking over as leader, if it leads.
    leading: Mutex<Option<u64>>,
    /// How long attempts take (for speculation).
    timings: Mutex<Timings>,
    speculation: SpeculationConfig,
}

/// Locks `m`, ignoring poisoning (no lock here guards an invariant a panic could break).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a driver is built from.
pub struct DriverParts {
    /// This driver's node id.
    pub id: u64,
    /// The group.
    pub peers: Peers,
    /// Its Raft node.
    pub raft: Raft,
    /// The state its state machine applies.
    pub replica: Arc<Replica>,
    /// The commit index its log store last saved.
    pub commit_index: Arc<AtomicU64>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Missed-heartbeat time after which a worker counts as dead.
    pub worker_timeout: Duration,
    /// How long running jobs wait with no live worker before they fail.
    pub no_worker_timeout: Duration,
    /// When stragglers get speculative copies.
    pub speculation: SpeculationConfig,
}

impl DriverInner {
    /// A driver from its parts.
    pub fn new(parts: DriverParts) -> Arc<DriverInner> {
        Arc::new(DriverInner {
            id: parts.id,
            peers: parts.peers,
            raft: parts.raft,
            replica: parts.replica,
            commit_index: parts.commit_index,
            binaries_dir: parts.data_dir.join("binaries"),
            heartbeats: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            unwatched: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            worker_timeout: parts.worker_timeout,
            no_worker_timeout: parts.no_worker_timeout,
            last_live: Mutex::new(Instant::now()),
            was_live: Mutex::new(BTreeSet::new()),
            leading: Mutex::new(None),
            timings: Mutex::new(Timings::default()),
            speculation: parts.speculation,
        })
    }

    /// This driver's replica of the state.
    pub fn state(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.replica.read()
    }

    /// The commit index its log store last saved.
    pub fn commit_index(&self) -> u64 {
        self.commit_index.load(Ordering::Relaxed)
    }

    /// The leader's address as this driver knows it.
    pub fn leader_address(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.peers.address(leader).map(str::to_string)
    }

    /// The term this driver leads in, once it has taken over.
    pub fn leading(&self) -> Option<u64> {
        *lock(&self.leading)
    }

    /// Ok while this driver leads; otherwise the refusal that names the leader.
    pub fn require_leader(&self) -> Result<u64, Status> {
        self.leading()
            .ok_or_else(|| not_leader(self.leader_address().filter(|_| !self.is_raft_leader()).as_deref()))
    }

    fn is_raft_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// Commits `command` through Raft and returns what applying it produced.
    pub async fn write(&self, command: Command) -> Result<Outcome, Status> {
        match self.raft.client_write(command).await {
            Ok(reply) => Ok(reply.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_node.map(|n| n.addr).as_deref()))
            }
            Err(e) => Err(Status::unavailable(format!("the driver group could not commit: {e}"))),
        }
    }

    /// Workers whose last heartbeat is recent.
    pub fn live_workers(&self) -> BTreeSet<String> {
        let now = Instant::now();
        lock(&self.heartbeats)
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < self.worker_timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The registered worker at `location` (its address, or a path in its shuffle directory).
    pub fn worker_at(&self, location: &str) -> Option<String> {
        let state = self.state();
        state
            .workers
            .values()
            .find(|w| w.address == location || (!w.shuffle_dir.is_empty() && location.starts_with(&w.shuffle_dir)))
            .map(|w| w.id.clone())
    }

    /// Records a heartbeat; true when the worker was not alive before.
    pub fn heartbeat(&self, worker: String) -> bool {
        lock(&self.heartbeats)
            .insert(worker, Instant::now())
            .is_none_or(|t| t.elapsed() >= self.worker_timeout)
    }

    fn channel(&self, address: &str) -> Result<Channel, Status> {
        let mut channels = lock(&self.channels);
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let channel = ringleader_core::tls::endpoint(address)
            .map_err(|e| Status::internal(format!("bad worker address: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Follows this node's Raft role: takes over when it becomes leader, lets go of the
    /// clients it was serving when it stops leading.
    pub async fn follow_leadership(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        loop {
            let (leader, term) = {
                let m = metrics.borrow_and_update();
                (m.state == openraft::ServerState::Leader, m.current_term)
            };
            let leading = self.leading();
            if leader && leading != Some(term) {
                if let Err(e) = self.take_over(term).await {
                    eprintln!(
                        "driver {}: taking over as leader in term {term}: {}",
                        self.id,
                        e.message()
                    );
                }
            } else if !leader && leading.is_some() {
                self.step_down();
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    async fn take_over(self: &Arc<Self>, term: u64) -> Result<(), Status> {
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| Status::unavailable(format!("not confirmed as leader: {e}")))?;
        let (workers, running): (Vec<String>, Vec<String>) = {
            let state = self.state();
            (
                state.workers.keys().cloned().collect(),
                state
                    .jobs
                    .values()
                    .filter(|j| j.state == JobState::Running)
                    .map(|j| j.id.clone())
                    .collect(),
            )
        };
        {
            // Presumed alive until one heartbeat timeout says otherwise.
            let mut beats = lock(&self.heartbeats);
            let now = Instant::now();
            for w in workers {
                beats.entry(w).or_insert(now);
            }
        }
        self.write(Command::RequeueRunning).await?;
        let now = Instant::now();
        lock(&self.unwatched).extend(running.into_iter().map(|j| (j, now)));
        *lock(&self.last_live) = now;
        lock(&self.was_live).clear();
        *lock(&self.leading) = Some(term);
        eprintln!("driver {}: leading in term {term}", self.id);
        self.wake.notify_one();
        Ok(())
    }

    fn step_down(&self) {
        *lock(&self.leading) = None;
        lock(&self.heartbeats).clear();
        lock(&self.unwatched).clear();
        let leader = self.leader_address();
        for (_, (tx, _)) in lock(&self.watchers).drain() {
            // The client follows the hint and watches its job on the new leader.
            let _ = tx.try_send(Err(not_leader(leader.as_deref())));
        }
        eprintln!("driver {}: no longer leading", self.id);
    }

    /// Starts streaming `job`'s events to `tx`: what happened so far, then what follows.
    pub fn watch(self: &Arc<Self>, job: &str, tx: EventSender, term: u64) {
        let events = {
            let state = self.state();
            let Some(record) = state.jobs.get(job) else { return };
            let mut events = vec![Event::Accepted(proto::JobAccepted {
                job_id: job.to_string(),
                stages: record.tasks.len() as u32,
            })];
            events.extend((0..record.tasks.len() as u32).map(|s| Event::Stage(stage_progress(record, s))));
            events.extend(final_events(record));
            events
        };
        let finished = events
            .iter()
            .any(|e| matches!(e, Event::Finished(_) | Event::Failed(_)));
        lock(&self.unwatched).remove(job);
        if !finished {
            lock(&self.watchers).insert(job.to_string(), (tx.clone(), term));
        }
        let me = self.clone();
        let job = job.to_string();
        tokio::spawn(async move {
            for event in events {
                if tx.send(Ok(proto::JobEvent { event: Some(event) })).await.is_err() {
                    break;
                }
            }
            if finished {
                return;
            }
            // A client that goes away cancels its job (if this driver still leads).
            tx.closed().await;
            let watched_here = lock(&me.watchers).get(&job).is_some_and(|(w, _)| w.same_channel(&tx));
            if watched_here && me.leading() == Some(term) {
                let cancel = Command::CancelJob {
                    job: job.clone(),
                    reason: "the client went away".into(),
                };
                if me.write(cancel).await.is_ok() {
                    lock(&me.watchers).remove(&job);
                }
            }
        });
    }

    /// A worker that cannot be reached counts as dead at once (not after its heartbeat
    /// timeout): its tasks run elsewhere, without counting as failures.
    async fn unreachable(self: &Arc<Self>, worker: &str) {
        lock(&self.heartbeats).remove(worker);
        lock(&self.was_live).insert(worker.to_string());
        let live = self.live_workers();
        self.lose_dead_workers(&live).await;
    }

    /// Workers that stopped heartbeating since the last pass: their running tasks run again
    /// elsewhere and the map outputs they held are recomputed.
    async fn lose_dead_workers(self: &Arc<Self>, live: &BTreeSet<String>) {
        let dead: Vec<String> = {
            let mut was = lock(&self.was_live);
            let dead = was.difference(live).cloned().collect();
            *was = live.clone();
            dead
        };
        for worker in dead {
            match self.write(Command::WorkerLost { worker: worker.clone() }).await {
                Ok(Outcome::Requeued(n)) if n > 0 => {
                    tokio::spawn(self.clone().rereplicate(worker.clone()));
                    eprintln!(
                        "driver {}: {worker} missed its heartbeats; {n} tasks run again",
                        self.id
                    );
                    let jobs: Vec<String> = self
                        .state()
                        .jobs
                        .values()
                        .filter(|j| j.state == JobState::Running)
                        .map(|j| j.id.clone())
                        .collect();
                    for job in jobs {
                        self.after_report(&job, 0);
                    }
                }
                Ok(_) => {
                    tokio::spawn(self.clone().rereplicate(worker.clone()));
                }
                // Not committed (leadership lost?): try again on the next pass.
                Err(_) => {
                    lock(&self.was_live).insert(worker);
                }
            }
        }
    }

    /// Restores the replica count of the stored dataset partitions `lost` held: each gets
    /// a copy on the next live ring owner that lacks it, fetched from a surviving replica.
    async fn rereplicate(self: Arc<Self>, lost: String) {
        let live = self.live_workers();
        let (datasets, copies) = {
            let state = self.state();
            let ring = state.ring(|w| live.contains(w));
            let address = |w: &str| -> String { state.workers.get(w).map(|r| r.address.clone()).unwrap_or_default() };
            let mut datasets = Vec::new();
            let mut copies: Vec<(String, usize, String, String, Vec<String>)> = Vec::new();
            for d in state
                .datasets
                .values()
                .filter(|d| d.placement.iter().any(|o| o.contains(&lost)))
            {
                let mut record = d.clone();
                for (p, owners) in record.placement.iter_mut().enumerate() {
                    if !owners.contains(&lost) {
                        continue;
                    }
                    owners.retain(|o| *o != lost);
                    let key = format!("{}/{p}", d.name);
                    let target = ring
                        .owners(key.as_bytes(), ring.len())
                        .into_iter()
                        .find(|w| !owners.contains(w))
                        .cloned();
                    if let Some(target) = target
                        && !owners.is_empty()
                    {
                        let from = owners.iter().map(|o| address(o)).collect();
                        copies.push((d.name.clone(), p, target.clone(), address(&target), from));
                    }
                }
                datasets.push(record);
            }
            (datasets, copies)
        };
        let mut copied = Vec::new();
        for (dataset, partition, target, address, from) in copies {
            let request = proto::CopyPartitionRequest {
                dataset: dataset.clone(),
                partition: partition as u32,
                from,
            };
            let reply = match self.channel(&address) {
                Ok(ch) => proto::worker_client::WorkerClient::new(ringleader_core::auth::authorized(ch))
                    .copy_partition(request)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match reply {
                Ok(()) => copied.push((dataset, partition, target)),
                Err(e) => eprintln!(
                    "driver {}: re-replicating {dataset} partition {partition} to {target}: {}",
                    self.id,
                    e.message()
                ),
            }
        }
        for mut record in datasets {
            for (dataset, partition, target) in &copied {
                if *dataset == record.name {
                    record.placement[*partition].push(target.clone());
                }
            }
            let _ = self.write(Command::PutDataset(record)).await;
        }
    }

    /// Fails the running jobs when no worker has been alive for `no_worker_timeout`.
    async fn fail_jobs_without_workers(self: &Arc<Self>, live: &BTreeSet<String>) {
        {
            let mut last = lock(&self.last_live);
            if !live.is_empty() {
                *last = Instant::now();
                return;
            }
            if last.elapsed() < self.no_worker_timeout {
                return;
            }
        }
        let reason = format!(
            "no live worker for {:.0} s; start workers (`ringleader worker --master …` or `ringleader cluster up`) and submit again",
            self.no_worker_timeout.as_secs_f64()
        );
        self.cancel_running(|_| true, &reason).await;
    }

    /// Cancels running jobs that nobody watched since this driver took over.
    async fn cancel_unwatched(self: &Arc<Self>) {
        let stale: BTreeSet<String> = lock(&self.unwatched)
            .iter()
            .filter(|(_, since)| since.elapsed() > UNWATCHED_GRACE)
            .map(|(job, _)| job.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        let reason = format!(
            "the client did not reconnect within {} s of the leader change",
            UNWATCHED_GRACE.as_secs()
        );
        self.cancel_running(|job| stale.contains(job), &reason).await;
        lock(&self.unwatched).retain(|job, _| !stale.contains(job));
    }

    async fn cancel_running(self: &Arc<Self>, which: impl Fn(&str) -> bool, reason: &str) {
        let jobs: Vec<String> = self
            .state()
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running && which(&j.id))
            .map(|j| j.id.clone())
            .collect();
        for job in jobs {
            let cancel = Command::CancelJob {
                job: job.clone(),
                reason: reason.to_string(),
            };
            if self.write(cancel).await.is_ok() {
                self.after_report(&job, 0);
            }
        }
    }

    /// Starts every task that can start now.
    async fn launch_ready(self: &Arc<Self>) {
        if self.leading().is_none() {
            return;
        }
        let live = self.live_workers();
        self.lose_dead_workers(&live).await;
        self.fail_jobs_without_workers(&live).await;
        self.cancel_unwatched().await;
        let assignments = schedule(&self.state(), &live);
        self.start(assignments, false).await;
        let copies = {
            let state = self.state();
            let mut timings = lock(&self.timings);
            let running: BTreeSet<&str> = state
                .jobs
                .values()
                .filter(|j| j.state == JobState::Running)
                .map(|j| j.id.as_str())
                .collect();
            timings.retain(&running);
            speculate(&state, &live, &timings, &self.speculation, Instant::now())
        };
        self.start(copies, true).await;
    }

    /// Commits the start of `assignments` (as speculative copies of running tasks, or
    /// first attempts) in one log entry, then sends each to its worker.
    async fn start(self: &Arc<Self>, assignments: Vec<Assignment>, speculative: bool) {
        if assignments.is_empty() {
            return;
        }
        let commands = assignments
            .iter()
            .map(|a| {
                let (job, stage, task, worker) = (a.job.clone(), a.stage, a.task, a.worker.clone());
                if speculative {
                    Command::Speculate {
                        job,
                        stage,
                        task,
                        worker,
                    }
                } else {
                    Command::StartTask {
                        job,
                        stage,
                        task,
                        worker,
                    }
                }
            })
            .collect();
        let Ok(Outcome::Batch(outcomes)) = self.write(Command::Batch(commands)).await else {
            return;
        };
        let now = Instant::now();
        let launches: Vec<(String, String, proto::TaskAssignment)> = {
            let state = self.state();
            assignments
                .into_iter()
                .zip(outcomes)
                .filter_map(|(a, outcome)| {
                    let Outcome::TaskStarted(attempt) = outcome else {
                        return None;
                    };
                    lock(&self.timings).started(&a.job, a.stage, a.task, attempt, now);
                    if speculative {
                        eprintln!(
                            "driver {}: {} stage {} task {} is slow; attempt {attempt} on {}",
                            self.id, a.job, a.stage, a.task, a.worker
                        );
                    }
                    let Assignment {
                        job,
                        stage,
                        task,
                        worker,
                    } = a;
                    let address = state.workers.get(&worker)?.address.clone();
                    let record = state.jobs.get(&job)?;
                    Some((
                        worker,
                        address,
                        assignment_message(&state, record, stage, task, attempt),
                    ))
                })
                .collect()
        };
        for (worker, address, assignment) in launches {
            let me = self.clone();
            tokio::spawn(async move {
                let (job, stage, task, attempt) = (
                    assignment.job_id.clone(),
                    assignment.stage_index,
                    assignment.task,
                    assignment.attempt,
                );
                let result = match me.channel(&address) {
                    Ok(ch) => proto::worker_client::WorkerClient::new(ringleader_core::auth::authorized(ch))
                        .launch_task(assignment)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {}
                    // Unreachable: the worker is gone, which is not the task's fault.
                    Err(e) if e.code() == tonic::Code::Unavailable => me.unreachable(&worker).await,
                    Err(e) => {
                        let message = format!("worker {address} refused the task: {}", e.message());
                        let failed = Command::FailTask {
                            job,
                            stage,
                            task,
                            attempt,
                            message,
                            retryable: true,
                            counts: true,
                        };
                        let _ = me.report(failed).await;
                    }
                }
            });
        }
    }

    /// Commits a task's report (finished, failed, or a fetch failure) and tells the job's
    /// client what changed.
    pub async fn report(self: &Arc<Self>, command: Command) -> Result<(), Status> {
        let (job, stage) = match &command {
            Command::FinishTask { job, stage, .. }
            | Command::FailTask { job, stage, .. }
            | Command::FetchFailed { job, stage, .. } => (job.clone(), *stage),
            _ => return self.write(command).await.map(|_| ()),
        };
        if let Command::FinishTask { task, attempt, .. } = &command {
            lock(&self.timings).finished(&job, stage, *task, *attempt, Instant::now());
        }
        self.write(command).await?;
        self.after_report(&job, stage);
        Ok(())
    }

    /// Tells the job's client what changed and wakes the scheduler.
    pub fn after_report(self: &Arc<Self>, job: &str, stage: u32) {
        let events: Vec<Event> = {
            let state = self.state();
            let Some(record) = state.jobs.get(job) else { return };
            let mut events = vec![Event::Stage(stage_progress(record, stage))];
            events.extend(final_events(record));
            events
        };
        let last = events.iter().any(|e| !matches!(e, Event::Stage(_)));
        let sender = if last {
            lock(&self.watchers).remove(job)
        } else {
            lock(&self.watchers).get(job).cloned()
        };
        if let Some((tx, _)) = sender {
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
            self.launch_ready().await;
        }
    }

    /// Tags a Raft-service request for a peer.
    pub fn tagged<T>(&self, message: T) -> tonic::Request<T> {
        network::tagged(message, &self.peers.fingerprint(), self.id)
    }
}

/// The events that end a job's stream: its results and `Finished`, or `Failed`.
fn final_events(record: &JobRecord) -> Vec<Event> {
    match &record.state {
        JobState::Running => Vec::new(),
        JobState::Succeeded if record.results_dropped => vec![Event::Failed(proto::JobFailed {
            message: format!(
                "{} succeeded, but its results are no longer kept (only the latest {} jobs' are)",
                record.id,
                crate::state::KEPT_RESULTS
            ),
        })],
        JobState::Succeeded => {
            let mut events = Vec::new();
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
        JobState::Failed(m) | JobState::Cancelled(m) => vec![Event::Failed(proto::JobFailed { message: m.clone() })],
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
