//! # ringleader-driver
//!
//! The driver (master) of a Ringleader cluster: a group of 1, 3 or 5 driver processes that
//! keep the cluster's metadata (workers, datasets, job binaries, jobs, stages, tasks) in a
//! Raft-replicated state machine (openraft, with redb storage). The leader registers
//! workers and tracks their heartbeats, accepts jobs, schedules their tasks stage by stage,
//! and streams progress to the client; if it dies, another driver takes over the running
//! jobs. It never depends on the worker crate: the two meet in `ringleader-core`'s protocol.
//!
//! ## Layout
//! - [`state`]: the state machine (workers, binaries, jobs, tasks) changed only by commands.
//! - [`scheduler`]: which task runs where, as a pure function of the state (and of the
//!   [`attempt_clock`], the one record of when attempts started and ended);
//!   [`placement`]: which workers hold a stored dataset's partitions, by a chosen policy.
//! - [`raft`]: consensus: storage, network, the group's membership.
//! - [`leader`]: one driver process: writes through Raft, taking over, the scheduling loop.
//! - [`service`]: the gRPC service clients and workers call.
//! - [`views`]: the state as the protocol shows it.
//! - [`web`], [`metrics`], [`commit_times`]: the status pages, `/metrics`, and the Raft
//!   commit times they show beside the replicated state.
//!
//! A job's path: the client's `SubmitJob` reaches [`service`], which commits it through the
//! leader ([`leader`]) as a [`state::Command`]; every driver applies it
//! ([`state::ClusterState::apply`]); the leader's loop asks the [`scheduler`] what can start,
//! commits `StartTask`s and sends the tasks to workers; their reports come back to
//! [`service`] as `FinishTask` / `FailTask` commands, and the client follows the job's
//! events until its last stage is done.

/// The largest message between drivers (an append, a snapshot): metadata only, since
/// rows stay off the log (large results on workers, `parallelize` data as datasets).
pub const MAX_RAFT_MESSAGE: usize = 64 << 20;
/// How long a stopping driver waits for the requests in flight (a job's event stream) and
/// then for the work its calls left running (see [`leader::DriverInner::background`])
/// before its Raft node stops anyway, each wait at most this: both within the 5 s
/// `cluster down` gives a node before SIGKILL.
pub const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
/// The largest job plan a driver accepts: plans name their data, they do not hold it.
pub const MAX_PLAN_BYTES: usize = 16 << 20;

pub mod attempt_clock;
pub mod commit_times;
pub mod leader;
pub mod metrics;
pub mod placement;
pub mod raft;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod views;
pub mod web;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringleader_core::net::serving;
use ringleader_core::proto::{self, raft_transport_client::RaftTransportClient};
use ringleader_core::sync::lock;
use tokio::net::TcpListener;

use crate::raft::group::{Peers, PeersError};
use crate::raft::log_store::{LogStore, OpenError, RaftFile};
use crate::raft::network::{Network, raft_channel};
use crate::raft::state_machine::StateMachineStore;

/// How to run a driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Address to listen on (port 0 picks a free port; only for a group of one).
    pub listen: SocketAddr,
    /// Directory for the driver's data (Raft log and snapshots, job binaries).
    pub data_dir: PathBuf,
    /// Missed-heartbeat time after which a worker counts as dead.
    pub worker_timeout: Duration,
    /// How long running jobs wait with no live worker before they fail (no job waits forever).
    pub no_worker_timeout: Duration,
    /// This driver's node id in its group.
    pub id: u64,
    /// The group (`None`: a group of one, this driver).
    pub peers: Option<Peers>,
    /// Raft log entries between snapshots (the log is compacted at each).
    pub snapshot_every: u64,
    /// When stragglers get speculative copies.
    pub speculation: scheduler::SpeculationConfig,
    /// Where stored datasets' partitions and their repair copies go.
    pub placement: placement::PlacementPolicy,
    /// Where to serve the web status page (`None`: not served).
    pub http: Option<SocketAddr>,
}

/// Errors starting or running a driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The peer list is unusable.
    #[error(transparent)]
    Peers(#[from] PeersError),
    /// This driver's address is not the one the peer list gives its id.
    #[error(
        "--peers puts driver {id} at {listed}, but this driver listens on {listening}; is another driver using id {id}?"
    )]
    NotMyAddress {
        /// The id.
        id: u64,
        /// The listed address.
        listed: String,
        /// Where this driver listens.
        listening: SocketAddr,
    },
    /// Another driver of the group was started with a different peer list or the same id.
    #[error("driver {peer} at {address} disagrees about the group: {reason}")]
    PeersDisagree {
        /// Its id in our list.
        peer: u64,
        /// Its address.
        address: String,
        /// What differs.
        reason: String,
    },
    /// The Raft store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// The Raft node could not start.
    #[error("starting Raft: {0}")]
    Raft(String),
    /// The group's timing could not be chosen.
    #[error(transparent)]
    Timing(#[from] raft::timing::TimingError),
    /// The node may not serve (token, TLS, or address).
    #[error(transparent)]
    Serve(#[from] ringleader_core::net::serving::ServeError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound driver, ready to serve.
pub struct BoundDriver {
    /// The address it listens on (with the real port when 0 was asked).
    pub address: SocketAddr,
    /// Where the web status page is served, if it is.
    pub http_address: Option<SocketAddr>,
    listener: TcpListener,
    http: Option<TcpListener>,
    inner: Arc<leader::DriverInner>,
}

/// Binds the driver's port, opens its Raft store and checks its group; [`BoundDriver::serve`]
/// runs it.
pub async fn bind(config: DriverConfig) -> Result<BoundDriver, DriverError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| DriverError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    if let Some(peers) = &config.peers {
        peers.check_member(config.id)?;
    }
    ringleader_core::net::serving::guard(config.listen)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DriverError::Bind {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| DriverError::Bind {
        address: config.listen,
        source,
    })?;
    let http = serving::bind_http(config.http).await?;
    let http_address = http.as_ref().and_then(|l| l.local_addr().ok());
    let peers = match config.peers {
        Some(peers) => {
            let listed = peers.check_member(config.id)?.to_string();
            if !same_address(&listed, address) {
                return Err(DriverError::NotMyAddress {
                    id: config.id,
                    listed,
                    listening: address,
                });
            }
            peers
        }
        None => Peers::single(config.id, address.to_string()),
    };
    let file = RaftFile::open(&config.data_dir, config.id, &peers.fingerprint(), &peers.to_string())?;
    check_peers_agree(config.id, &peers).await?;
    let log_store = LogStore::new(file.clone());
    let commit_index = log_store.committed_index();
    let state_machine = StateMachineStore::open(file).map_err(|e| DriverError::Raft(e.to_string()))?;
    let replica = state_machine.replica();
    let across_hosts = peers.iter().any(|(_, address)| !on_loopback(address));
    let (timing, median_commit) = raft::timing::Timing::choose(&config.data_dir, across_hosts)?;
    tracing::info!(
        heartbeat_ms = timing.heartbeat_ms,
        election_ms = format!("{}-{}", timing.election_min_ms, timing.election_max_ms),
        median_probe_commit_ms = median_commit.map(|d| d.as_secs_f64() * 1e3),
        "raft timing chosen"
    );
    let raft_config = raft::raft_config(config.snapshot_every, timing).map_err(|e| DriverError::Raft(e.to_string()))?;
    let network = Network {
        fingerprint: peers.fingerprint(),
        me: config.id,
        retry_after: Duration::from_millis(timing.heartbeat_ms),
    };
    let raft = raft::Raft::new(config.id, Arc::new(raft_config), network, log_store, state_machine)
        .await
        .map_err(|e| DriverError::Raft(e.to_string()))?;
    let inner = leader::DriverInner::new(leader::DriverParts {
        id: config.id,
        peers,
        raft,
        replica,
        commit_index,
        data_dir: config.data_dir,
        worker_timeout: config.worker_timeout,
        no_worker_timeout: config.no_worker_timeout,
        speculation: config.speculation,
        placement: config.placement,
    });
    Ok(BoundDriver {
        address,
        http_address,
        listener,
        http,
        inner,
    })
}

/// Whether `address` (host:port) names only loopback addresses (a peer on this host).
fn on_loopback(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    address.to_socket_addrs().is_ok_and(|addrs| {
        let addrs: Vec<SocketAddr> = addrs.collect();
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
    })
}

/// Whether `listed` (host:port) names the bound `address`.
fn same_address(listed: &str, address: SocketAddr) -> bool {
    use std::net::ToSocketAddrs;
    listed.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| a == address || (a.port() == address.port() && address.ip().is_unspecified()))
    })
}

/// Asks every reachable peer who it is: a peer with another peer list, or answering to
/// another id, is a configuration error to report now rather than a group that never
/// elects a leader.
async fn check_peers_agree(me: u64, peers: &Peers) -> Result<(), DriverError> {
    let fingerprint = peers.fingerprint();
    for (id, address) in peers.iter().filter(|(id, _)| *id != me) {
        let Ok(channel) = raft_channel(address) else { continue };
        let Ok(data) = postcard::to_stdvec(&(me, peers.to_string())) else {
            continue;
        };
        let request = raft::network::tagged(proto::RaftMessage { data }, &fingerprint, me);
        let reply = tokio::time::timeout(
            Duration::from_millis(500),
            RaftTransportClient::new(ringleader_core::security::auth::authorized(channel)).hello(request),
        )
        .await;
        let Ok(Ok(reply)) = reply else { continue };
        let Ok((their_id, their_peers)) = postcard::from_bytes::<(u64, String)>(&reply.into_inner().data) else {
            continue;
        };
        let disagree = |reason: String| DriverError::PeersDisagree {
            peer: id,
            address: address.to_string(),
            reason,
        };
        if their_id != id {
            return Err(disagree(format!(
                "it answers as driver {their_id}{}",
                if their_id == me {
                    ", the same id as this driver"
                } else {
                    ""
                }
            )));
        }
        let theirs = Peers::parse(&their_peers).map_err(|e| disagree(e.to_string()))?;
        if theirs.fingerprint() != fingerprint {
            return Err(disagree(format!(
                "its --peers is {their_peers}, this driver's is {peers}"
            )));
        }
    }
    Ok(())
}

impl BoundDriver {
    /// This driver's shared state.
    pub fn inner(&self) -> Arc<leader::DriverInner> {
        self.inner.clone()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), DriverError> {
        let inner = self.inner;
        let scheduler = tokio::spawn(inner.clone().schedule_forever());
        let repairs = tokio::spawn(inner.clone().repair_forever());
        let binaries = tokio::spawn(inner.clone().sweep_binaries_forever());
        let sessions = tokio::spawn(inner.clone().sweep_sessions_forever());
        let leadership = tokio::spawn(inner.clone().follow_leadership());
        let initializer = tokio::spawn(initialize(inner.clone()));
        let require = serving::guard(self.address)?;
        let web = self.http.map(|listener| {
            let token = ringleader_core::security::auth::token()
                .ok()
                .flatten()
                .map(str::to_string);
            tokio::spawn(web::serve(listener, inner.clone(), token, std::future::pending()))
        });
        let driver = proto::driver_server::DriverServer::new(service::DriverService::new(inner.clone()))
            .max_decoding_message_size(64 << 20);
        let transport = proto::raft_transport_server::RaftTransportServer::new(raft::transport::RaftService::new(
            inner.raft.clone(),
            inner.id,
            inner.peers.clone(),
            inner.binaries_dir.clone(),
        ))
        .max_decoding_message_size(MAX_RAFT_MESSAGE);
        // A Raft node that stopped on a fatal error must not go on answering as a driver.
        let fatal = std::sync::Mutex::new(None);
        let stopping = tokio::sync::Notify::new();
        let stop = async {
            tokio::select! {
                _ = shutdown => {}
                reason = raft_stopped(&inner.raft) => {
                    *lock(&fatal) = Some(reason);
                }
            }
            stopping.notify_one();
        };
        let server = serving::server()?
            .add_service(serving::guarded(driver, &require))
            .add_service(serving::guarded(transport, &require))
            .serve_with_incoming_shutdown(serving::incoming(self.listener), stop);
        // A client following a running job holds its stream open: the requests in flight
        // get DRAIN_PATIENCE, not for ever.
        let patience = async {
            stopping.notified().await;
            tokio::time::sleep(DRAIN_PATIENCE).await;
        };
        let result = tokio::select! {
            served = server => served,
            () = patience => {
                tracing::info!("driver {}: streams still open {} s after the stop; closing them", inner.id, DRAIN_PATIENCE.as_secs());
                Ok(())
            }
        };
        // Loops with nothing in hand: stopping them loses nothing.
        for task in [scheduler, repairs, binaries, sessions, leadership, initializer] {
            task.abort();
        }
        if let Some(web) = web {
            web.abort();
        }
        // What calls left running (a report being committed, a job's last events) ends
        // while the Raft node can still commit it.
        inner.background.close();
        if tokio::time::timeout(DRAIN_PATIENCE, inner.background.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "driver {}: {} background tasks still running {} s after the stop; stopping anyway",
                inner.id,
                inner.background.len(),
                DRAIN_PATIENCE.as_secs()
            );
        }
        let _ = inner.raft.shutdown().await;
        if let Some(reason) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(DriverError::Raft(reason));
        }
        Ok(result?)
    }
}

/// Resolves with the reason when this driver's Raft node stops on a fatal error.
async fn raft_stopped(raft: &raft::Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return format!("the Raft node stopped: {fatal}");
        }
        if metrics.changed().await.is_err() {
            return "the Raft node stopped".to_string();
        }
    }
}

/// A new group is initialized by its lowest-numbered driver, once; a driver restarted from
/// its directory (or a group restarted from disk) is already initialized.
async fn initialize(inner: Arc<leader::DriverInner>) {
    let lowest = inner.peers.iter().map(|(id, _)| id).min();
    if lowest != Some(inner.id) || inner.raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    let members: BTreeMap<u64, openraft::BasicNode> = inner
        .peers
        .iter()
        .map(|(id, address)| (id, openraft::BasicNode::new(address)))
        .collect();
    if let Err(e) = inner.raft.initialize(members).await {
        tracing::warn!("driver {}: initializing the group: {e}", inner.id);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_addresses_count_as_this_host() {
        for here in ["127.0.0.1:7077", "[::1]:7077", "localhost:7077"] {
            assert!(super::on_loopback(here), "{here}");
        }
        for elsewhere in ["198.18.0.2:7077", "10.1.2.3:1", "no port", ""] {
            assert!(!super::on_loopback(elsewhere), "{elsewhere}");
        }
    }
}
