//! One driver process: its Raft node, its replica of the state, and — while it leads — the
//! leader-local soft state (worker heartbeats, job watchers, connections to workers) and
//! the scheduling loop. Every change to the durable state is a [`Command`] committed
//! through Raft; a driver that does not lead refuses writes with the leader's address.
//!
//! - `takeover`: becoming leader (resuming running jobs) and stepping down.
//! - `launching`: the scheduling loop: first attempts, then speculative copies.
//! - `events`: task reports into the log, job events out to clients.
//! - `recovery`: lost workers, jobs without workers or watchers, abandoned dataset writes.
//! - `repair`: the audit and repair of stored partitions' replicas.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLockReadGuard};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use ringleader_core::ids::{JobId, WorkerId};
use ringleader_core::proto;
use ringleader_core::proto::worker_client::WorkerClient;
use ringleader_core::security::auth::{AuthChannel, authorized};
use ringleader_core::sync::lock;
use tokio::sync::{Notify, mpsc};
use tonic::transport::Channel;

mod binaries;
mod error;
pub(crate) mod events;
mod launching;
pub(crate) use launching::pipelined;
mod recovery;
mod repair;
mod sessions;
mod takeover;

pub use error::LeaderError;
pub use repair::PartitionHealth;

use crate::raft::group::Peers;
use crate::raft::state_machine::Replica;
use crate::raft::{MAX_ENTRY_BYTES, Raft, network};
use crate::scheduler::SpeculationConfig;
use crate::state::{ClusterState, Command, Outcome};

/// A job's event stream, as the service hands it to the client.
pub type EventSender = mpsc::Sender<Result<proto::JobEvent, tonic::Status>>;

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
    heartbeats: Mutex<HashMap<WorkerId, Instant>>,
    watchers: Mutex<HashMap<JobId, (EventSender, u64)>>,
    unwatched: Mutex<HashMap<JobId, Instant>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Wakes the scheduling loop.
    pub wake: Notify,
    /// Missed-heartbeat time after which a worker counts as dead.
    pub worker_timeout: Duration,
    no_worker_timeout: Duration,
    last_live: Mutex<Instant>,
    /// Workers alive at the last scheduling pass (to notice the ones that die).
    was_live: Mutex<BTreeSet<WorkerId>>,
    /// The term in which this driver finished taking over as leader, if it leads.
    leading: Mutex<Option<u64>>,
    /// How long attempts take (for speculation).
    speculation: SpeculationConfig,
    /// Where stored partitions and their repair copies go.
    pub placement: crate::placement::PlacementPolicy,
    /// Per worker, the running attempts its last heartbeat did not list.
    missing: Mutex<HashMap<WorkerId, BTreeSet<ringleader_core::ids::AttemptKey>>>,
    /// How long this driver's Raft commits took.
    pub commits: crate::commit_times::CommitTimes,
    /// Work that outlives the call that started it (a report carried to its end, a job's
    /// last events, a task on its way to a worker): a stopping driver waits for it before
    /// its Raft node stops.
    pub background: tokio_util::task::TaskTracker,
    /// The repair loop's findings and pending retries.
    repair: Mutex<repair::RepairState>,
    /// Wakes the repair loop (a worker lost or back).
    pub repair_wake: Notify,
    /// The last key this driver gave a command's pieces (see [`Command::Part`]).
    last_parts: AtomicU64,
    /// When each program last said it is alive (or this leader first saw its datasets).
    sessions: Mutex<HashMap<String, Instant>>,
}

/// How long a placed dataset generation may take to be committed (a long `put`) before
/// workers may delete its files.
pub const PLACED_GRACE: Duration = Duration::from_secs(3600);

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
    /// Where stored partitions and their repair copies go.
    pub placement: crate::placement::PlacementPolicy,
}

impl DriverInner {
    /// A driver from its parts.
    pub fn new(parts: DriverParts) -> Arc<DriverInner> {
        Arc::new(DriverInner {
            id: parts.id,
            peers: parts.peers,
            raft: parts.raft,
            replica: parts.replica,
            background: tokio_util::task::TaskTracker::new(),
            commit_index: parts.commit_index,
            binaries_dir: parts.data_dir.join("binaries"),
            heartbeats: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            unwatched: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            worker_timeout: parts.worker_timeout,
            no_worker_timeout: parts.no_worker_timeout,
            last_live: Mutex::new(Instant::now()),
            was_live: Mutex::new(BTreeSet::new()),
            leading: Mutex::new(None),
            commits: crate::commit_times::CommitTimes::default(),
            last_parts: AtomicU64::new(0),
            speculation: parts.speculation,
            placement: parts.placement,
            missing: Mutex::new(HashMap::new()),
            repair: Mutex::new(repair::RepairState::default()),
            repair_wake: Notify::new(),
        })
    }

    /// This driver's replica of the state.
    pub fn state(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.replica.read()
    }

    /// The attempts of `job` as this driver applied them (soft state; see
    /// [`crate::attempt_clock`]).
    pub fn attempts_of(&self, job: &str) -> Vec<(ringleader_core::ids::AttemptKey, crate::attempt_clock::AttemptSeen)> {
        self.replica.clock().of_job(job)
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
    pub fn require_leader(&self) -> Result<u64, LeaderError> {
        self.leading().ok_or_else(|| LeaderError::NotLeader {
            leader: self.leader_address().filter(|_| !self.is_raft_leader()),
        })
    }

    /// Ok once this driver is confirmed as the leader by a quorum and its state has applied
    /// everything committed before now: what it reads then is linearizable (a read served
    /// from a follower's or a new leader's not yet applied state could miss an acknowledged
    /// write; `ringleader chaos` found one such read).
    pub async fn read_barrier(&self) -> Result<(), LeaderError> {
        self.require_leader()?;
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| LeaderError::NotConfirmed(e.to_string()))?;
        Ok(())
    }

    fn is_raft_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// Commits `command` through Raft and returns what applying it produced. A command
    /// whose encoding is over [`MAX_ENTRY_BYTES`] (a job with a large plan, a batch of large
    /// task values) goes in pieces, each its own entry, then one entry that assembles them:
    /// no entry takes longer to reach a follower than openraft allows an AppendEntries call.
    pub async fn write(&self, command: Command) -> Result<Outcome, LeaderError> {
        let encoding = |e: postcard::Error| LeaderError::Unavailable {
            what: "commit",
            message: format!("encoding a command: {e}"),
        };
        if postcard::experimental::serialized_size(&command).map_err(encoding)? <= MAX_ENTRY_BYTES {
            return self.write_entry(command).await;
        }
        let encoded = postcard::to_stdvec(&command).map_err(encoding)?;
        let term = self.raft.metrics().borrow().current_term;
        let key = (term, self.last_parts.fetch_add(1, Ordering::Relaxed) + 1);
        let at_ms = ringleader_core::clock::now_ms();
        for piece in encoded.chunks(MAX_ENTRY_BYTES) {
            let bytes = piece.to_vec();
            self.write_entry(Command::Part { key, bytes, at_ms }).await?;
        }
        let mut hash = ringleader_core::net::binary::ContentHash::default();
        hash.update(&encoded);
        let (len, hash) = (encoded.len() as u64, hash.finish());
        match self.write_entry(Command::Assemble { key, len, hash }).await? {
            Outcome::Malformed(message) => Err(LeaderError::Unavailable {
                what: "commit",
                message,
            }),
            outcome => Ok(outcome),
        }
    }

    /// Commits one log entry.
    async fn write_entry(&self, command: Command) -> Result<Outcome, LeaderError> {
        let started = Instant::now();
        match self.raft.client_write(command).await {
            Ok(reply) => {
                self.commits.record(started.elapsed());
                Ok(reply.data)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(LeaderError::NotLeader {
                leader: f.leader_node.map(|n| n.addr),
            }),
            Err(e) => Err(LeaderError::Unavailable {
                what: "commit",
                message: e.to_string(),
            }),
        }
    }

    /// How long ago each worker's last heartbeat arrived (on the leader).
    pub fn heartbeat_ages(&self) -> Vec<(WorkerId, Duration)> {
        let now = Instant::now();
        let mut ages: Vec<_> = lock(&self.heartbeats)
            .iter()
            .map(|(id, t)| (id.clone(), now.duration_since(*t)))
            .collect();
        ages.sort();
        ages
    }

    /// Workers whose last heartbeat is recent.
    pub fn live_workers(&self) -> BTreeSet<WorkerId> {
        let now = Instant::now();
        lock(&self.heartbeats)
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < self.worker_timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The registered worker at `location` (its address, or a path in its shuffle directory).
    pub fn worker_at(&self, location: &str) -> Option<WorkerId> {
        let state = self.state();
        state
            .workers
            .values()
            .find(|w| w.address == location || (!w.shuffle_dir.is_empty() && location.starts_with(&w.shuffle_dir)))
            .map(|w| w.id.clone())
    }

    /// Reconciles `worker`'s heartbeat, which lists the attempts it runs, with the state:
    /// the failures to commit for attempts it lost (see [`crate::scheduler::forgotten`]).
    pub fn reconcile(&self, worker: &str, reported: &BTreeSet<ringleader_core::ids::AttemptKey>) -> Vec<Command> {
        let state = self.state();
        let clock = self.replica.clock();
        let mut missing = lock(&self.missing);
        let previously = missing.remove(worker).unwrap_or_default();
        let (now_missing, lost) =
            crate::scheduler::forgotten(&state, worker, reported, &clock, &previously, Instant::now());
        missing.insert(WorkerId::from(worker), now_missing);
        lost
    }

    /// Records a heartbeat; true when the worker was not alive before (then its replicas
    /// are audited at once).
    pub fn heartbeat(&self, worker: WorkerId) -> bool {
        let back = lock(&self.heartbeats)
            .insert(worker, Instant::now())
            .is_none_or(|t| t.elapsed() >= self.worker_timeout);
        if back {
            self.repair_wake.notify_one();
        }
        back
    }

    /// A client of the worker at `address`, over one cached connection per worker.
    fn worker_client(&self, address: &str) -> Result<WorkerClient<AuthChannel>, LeaderError> {
        let mut channels = lock(&self.channels);
        let channel = match channels.get(address) {
            Some(c) => c.clone(),
            None => {
                let channel = ringleader_core::security::tls::endpoint(address)
                    .map_err(|e| LeaderError::BadWorkerAddress(e.to_string()))?
                    .connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .connect_lazy();
                channels.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(WorkerClient::new(authorized(channel)))
    }

    /// Tags a Raft-service request for a peer.
    pub fn tagged<T>(&self, message: T) -> tonic::Request<T> {
        network::tagged(message, &self.peers.fingerprint(), self.id)
    }
}
