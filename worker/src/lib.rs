//! # ringleader-worker
//!
//! A worker daemon: registers with the driver and heartbeats, fetches each job's binary
//! once (by content hash) and caches it, runs the job's tasks in an executor process of that
//! binary, and serves map output to other workers with Arrow Flight. It never depends on
//! the driver crate: the two meet in `ringleader-core`'s protocol.
//!
//! ## Layout
//! - [`service`]: the `Worker` and `Executor` gRPC services.
//! - [`executors`]: executor processes, their task queues, and crash reporting.
//! - [`flight`]: Flight `do_get` of shuffle blocks and dataset partitions, `do_put` of partitions.
//! - [`counters`]: what the worker counts; [`metrics`] writes it in Prometheus' format and
//!   [`http`] serves it.
//! - [`sandbox`]: what an executor may touch (its job's places only, by Landlock).
//! - [`housekeeping`]: deleting finished jobs' shuffle files, expired held results and dead
//!   dataset generations, beside the heartbeat loop; [`datasets_dir`]: the stored-datasets
//!   directory's layout, what it holds and what of it is dead.
//!
//! A task's path: the driver's `LaunchTask` reaches [`service`], which hands it to the job's
//! executor ([`executors`]: one process of the job's own binary per job, started on its first
//! task) through a queue the executor streams; the executor runs it and reports back through
//! [`service`], which counts it ([`counters`]) and passes the report on to the driver.
//!
//! Data directory: `binaries/<hash>` (cached job binaries), `shuffle/<job>/…` (map output),
//! `datasets/<name>/<generation>/part-<p>.arrow` (stored dataset partitions), `logs/<job>.stderr`
//! (executors' stderr).

pub mod binary_cache;
pub mod counters;
pub mod datasets_dir;
pub mod executors;
pub mod flight;
pub mod housekeeping;
pub mod http;
pub mod metrics;
pub mod sandbox;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringleader_core::net::driver_group::DriverGroup;
use ringleader_core::net::serving;
use ringleader_core::proto;
use ringleader_core::security::auth::RequireToken;
use ringleader_core::sync::lock;
use tokio::net::TcpListener;

/// How to run a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address others reach this worker at (default: the bound address).
    pub advertise: Option<String>,
    /// The drivers' addresses (`host:port`, any of the group; the leader is found from them).
    pub masters: Vec<String>,
    /// Directory for binaries, shuffle files and logs.
    pub data_dir: PathBuf,
    /// Tasks run at once.
    pub slots: u32,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// The memory budget (bytes) each executor of this worker gets at most, whatever its
    /// job asks for (`RINGLEADER_WORKER_MEMORY` in the executor's environment).
    pub memory: u64,
    /// Where to serve `/metrics` (port 0 picks one); none: not served.
    pub http: Option<SocketAddr>,
    /// Paths executors may not reach besides the data directory: the token file, the TLS
    /// key, a directory of other nodes' data (see [`sandbox`]).
    pub private: Vec<PathBuf>,
    /// Whether executors start in the sandbox (where the kernel has Landlock).
    pub sandbox: bool,
}

/// Errors starting or running a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
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
    /// The driver could not be reached or refused registration.
    #[error("cannot register with the driver at {master}: {message}")]
    Register {
        /// The driver's address.
        master: String,
        /// Why.
        message: String,
    },
    /// The node may not serve (token, TLS, or address).
    #[error(transparent)]
    Serve(#[from] ringleader_core::net::serving::ServeError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, registered worker, ready to serve.
pub struct BoundWorker {
    /// The address it listens on.
    pub address: SocketAddr,
    /// Where it serves `/metrics`, if it does.
    pub http_address: Option<SocketAddr>,
    listener: TcpListener,
    http: Option<TcpListener>,
    inner: Arc<service::WorkerInner>,
    heartbeat: Duration,
    slots: u32,
    master: String,
}

/// How long a worker starting up waits for the driver group to elect a leader.
const REGISTER_PATIENCE: Duration = Duration::from_secs(15);

/// Binds the worker's port and registers it with the driver.
pub async fn bind(config: WorkerConfig) -> Result<BoundWorker, WorkerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| WorkerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    ringleader_core::net::serving::guard(config.listen)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| WorkerError::Bind {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| WorkerError::Bind {
        address: config.listen,
        source,
    })?;
    let http = serving::bind_http(config.http).await?;
    let http_address = http.as_ref().and_then(|l| l.local_addr().ok());
    let advertised = config.advertise.clone().unwrap_or_else(|| address.to_string());
    let master = config.masters.join(",");
    let driver = DriverGroup::new(config.masters.clone()).map_err(|e| WorkerError::Register {
        master: master.clone(),
        message: e.message().to_string(),
    })?;
    // Absolute, because executors run in the job's working directory.
    let data_dir = config.data_dir.canonicalize().map_err(|source| WorkerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    match sandbox::Sandbox::kernel_abi() {
        _ if !config.sandbox => tracing::warn!(
            "--no-sandbox: executors run with this worker's access to its files, the token file and other jobs' files among them"
        ),
        Some(abi) if sandbox::Sandbox::gaps(abi).is_empty() => {
            tracing::info!("executors run in a Landlock sandbox (kernel ABI {abi})")
        }
        Some(abi) => tracing::warn!(
            "executors run in a Landlock sandbox (kernel ABI {abi}), but this kernel cannot keep them from: {}",
            sandbox::Sandbox::gaps(abi).join("; ")
        ),
        None => tracing::warn!(
            "this kernel has no Landlock: executors run with this worker's access to its files (see the README, \"One job cannot touch another\")"
        ),
    }
    let private = config.sandbox.then(|| config.private.clone());
    let inner = service::WorkerInner::new(advertised, data_dir, driver, config.memory, private);
    let worker = BoundWorker {
        address,
        http_address,
        listener,
        http,
        inner,
        heartbeat: config.heartbeat,
        slots: config.slots,
        master,
    };
    worker.register().await?;
    Ok(worker)
}

impl BoundWorker {
    async fn register(&self) -> Result<(), WorkerError> {
        let request = registration(&self.inner, self.slots);
        let reply = self
            .inner
            .driver
            .call(REGISTER_PATIENCE, |mut d| {
                let request = request.clone();
                async move { d.register_worker(request).await }
            })
            .await
            .map_err(|e| WorkerError::Register {
                master: self.master.clone(),
                message: e.message().to_string(),
            })?;
        *lock(&self.inner.id) = reply.worker_id;
        Ok(())
    }

    /// This worker's id as the driver assigned it.
    pub fn id(&self) -> String {
        self.inner.worker_id()
    }

    /// Serves until `shutdown` completes, heartbeating all along, then stops as
    /// [`serve_until`] says.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), WorkerError> {
        let require = serving::guard(self.address)?;
        let metrics = self.http.map(|listener| {
            let token = ringleader_core::security::auth::token()
                .ok()
                .flatten()
                .map(str::to_string);
            tokio::spawn(http::serve(
                listener,
                self.inner.clone(),
                self.slots,
                token,
                std::future::pending(),
            ))
        });
        let beat = tokio::spawn(heartbeat_forever(
            self.inner.clone(),
            self.heartbeat,
            self.slots,
            self.master.clone(),
        ));
        // Heartbeats stop with the signal: a stopping worker takes no new task (the driver
        // counts it lost after its worker timeout and runs its tasks elsewhere).
        let beating = beat.abort_handle();
        let shutdown = async move {
            shutdown.await;
            beating.abort();
        };
        let result = serve_until(self.inner, self.listener, &require, shutdown).await;
        // Loops with nothing in hand: stopping them loses nothing.
        beat.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }
}

/// How long a stopping worker gives the requests in flight (a Flight stream another
/// worker's reducer reads) and its background work, together, before it exits anyway:
/// within the 5 s `cluster down` gives a node before SIGKILL.
pub const DRAIN_PATIENCE: Duration = Duration::from_secs(3);

/// Serves the worker's gRPC and Flight services on `listener` (calls checked by `require`,
/// see [`serving::guard`]) until `shutdown` completes,
/// then stops without cutting what is under way, as mini-redis drains its connections:
/// its executors are stopped (their tasks run again elsewhere, as a lost worker's do), the
/// Flight streams in flight are sent to their last batch (before the server's own stop,
/// which would close their connections under them), the server stops taking connections
/// and answers the requests in flight, and the background work they started (a report on
/// its way to the driver, an executor being reaped) is waited for; all of it within
/// [`DRAIN_PATIENCE`] of the signal.
pub async fn serve_until(
    inner: Arc<service::WorkerInner>,
    listener: TcpListener,
    require: &RequireToken,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    let svc = service::WorkerService::new(inner.clone());
    let flight = flight::ShuffleFlight::new(inner.clone());
    let signalled = Arc::new(tokio::sync::Notify::new());
    let deadline = Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    let shutdown = {
        let (inner, signalled, deadline) = (inner.clone(), signalled.clone(), deadline.clone());
        async move {
            shutdown.await;
            let _ = deadline.set(tokio::time::Instant::now() + DRAIN_PATIENCE);
            tracing::info!("worker stopping: its executors stop, requests in flight are answered");
            // An executor's task stream would hold its connection open: the executors go first.
            inner.executors.stop_all();
            // The Flight streams in flight go to their end before the server stops (it would
            // close connections under them).
            inner.streams.close();
            let _ = tokio::time::timeout(left_of(&deadline), inner.streams.wait()).await;
            signalled.notify_one();
        }
    };
    let server = serving::server()?
        .add_service(serving::guarded(
            proto::worker_server::WorkerServer::new(svc.clone()),
            require,
        ))
        // Executors call these two with their job's credential; each call is checked
        // against the job it acts for.
        .add_service(serving::guarded(
            proto::executor_server::ExecutorServer::new(svc),
            &require.admitting_jobs(),
        ))
        .add_service(serving::guarded(
            arrow_flight::flight_service_server::FlightServiceServer::new(flight),
            &require.admitting_jobs(),
        ))
        .serve_with_incoming_shutdown(serving::incoming(listener), shutdown);
    let patience = async {
        signalled.notified().await;
        tokio::time::sleep(left_of(&deadline)).await;
    };
    let result = tokio::select! {
        served = server => served,
        () = patience => {
            tracing::warn!("requests still in flight {} s after the stop; stopping anyway", DRAIN_PATIENCE.as_secs());
            Ok(())
        }
    };
    inner.executors.stop_all();
    inner.background.close();
    if tokio::time::timeout(left_of(&deadline), inner.background.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} background tasks still running {} s after the stop; stopping anyway",
            inner.background.len(),
            DRAIN_PATIENCE.as_secs()
        );
    }
    Ok(result?)
}

/// What is left of the drain's patience before `deadline` (all of it before the signal).
fn left_of(deadline: &std::sync::OnceLock<tokio::time::Instant>) -> Duration {
    deadline.get().map_or(DRAIN_PATIENCE, |d| {
        d.saturating_duration_since(tokio::time::Instant::now())
    })
}

async fn heartbeat_forever(inner: Arc<service::WorkerInner>, every: Duration, slots: u32, _master: String) {
    let housekeeper = housekeeping::Housekeeper::new(inner.counters.housekeeping_passes.clone());
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let asked = (std::time::Instant::now(), std::time::SystemTime::now());
        let running = inner.executors.running();
        let request = proto::HeartbeatRequest {
            worker_id: inner.worker_id(),
            free_slots: slots.saturating_sub(running),
            running_tasks: running,
            running: inner.executors.in_flight(),
        };
        // Through a leader change: follow the redirect (or try the next driver) at once.
        let reply = inner
            .driver
            .call(every * 4, |mut d| {
                let request = request.clone();
                async move { d.heartbeat(request).await }
            })
            .await;
        match reply {
            Ok(reply) => {
                inner.counters.heartbeat_answered();
                if !reply.known {
                    let again = registration(&inner, slots);
                    let registered = inner
                        .driver
                        .call(every * 4, |mut d| {
                            let again = again.clone();
                            async move { d.register_worker(again).await }
                        })
                        .await;
                    if let Ok(r) = registered {
                        *lock(&inner.id) = r.worker_id;
                    }
                }
                inner.executors.retain_jobs(&reply.active_jobs, asked.0);
                inner.counters.retain_jobs(&reply.active_jobs);
                // Deleting large trees may take longer than the driver waits for a heartbeat:
                // it happens beside this loop, never in it.
                housekeeper.offer(housekeeping::Lists {
                    shuffle_dir: inner.shuffle_dir(),
                    dataset_dir: inner.dataset_dir(),
                    active_jobs: reply.active_jobs,
                    live_datasets: reply.live_datasets,
                    asked: asked.1,
                    binaries: inner.binary_cache.clone(),
                });
            }
            Err(_) => continue,
        }
    }
}

fn registration(inner: &service::WorkerInner, slots: u32) -> proto::RegisterWorkerRequest {
    let shuffle_dir = inner.shuffle_dir();
    // There from the start: the executors of other workers on this machine are given its
    // job directories to read (see `sandbox`), which needs it to exist.
    let _ = std::fs::create_dir_all(&shuffle_dir);
    let shuffle_dir = shuffle_dir.canonicalize().unwrap_or(shuffle_dir);
    proto::RegisterWorkerRequest {
        address: inner.address.clone(),
        slots,
        pid: std::process::id(),
        shuffle_dir: shuffle_dir.display().to_string(),
        machine: ringleader_core::net::machine::identity().to_string(),
        incarnation: incarnation().to_string(),
    }
}

/// This worker process's incarnation: a driver that sees another at the same address
/// knows the worker restarted and that the tasks it was running are gone.
fn incarnation() -> &'static str {
    static INCARNATION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INCARNATION.get_or_init(ringleader_core::net::machine::unique_id)
}
