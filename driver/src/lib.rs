//! # ringleader-driver
//!
//! The driver (master) of a Ringleader cluster: it registers workers and tracks their
//! heartbeats, stores job binaries, accepts jobs (a plan and a binary hash), schedules
//! their tasks on workers stage by stage, tracks completion, and streams progress to the
//! client. It never depends on the worker crate: the two meet in `ringleader-core`'s
//! protocol.
//!
//! ## Layout
//! - [`state`]: the state machine (workers, binaries, jobs, tasks) changed only by commands.
//! - [`scheduler`]: which task runs where, as a pure function of the state.
//! - [`service`]: the gRPC service and the scheduling loop.

pub mod scheduler;
pub mod service;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;

/// How to run a driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory for the driver's data (job binaries).
    pub data_dir: PathBuf,
    /// Missed-heartbeat time after which a worker counts as dead.
    pub worker_timeout: Duration,
    /// How long running jobs wait with no live worker before they fail (no job waits forever).
    pub no_worker_timeout: Duration,
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
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound driver, ready to serve.
pub struct BoundDriver {
    /// The address it listens on (with the real port when 0 was asked).
    pub address: SocketAddr,
    listener: TcpListener,
    inner: std::sync::Arc<service::DriverInner>,
}

/// Binds the driver's port and prepares its state; [`BoundDriver::serve`] runs it.
pub async fn bind(config: DriverConfig) -> Result<BoundDriver, DriverError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| DriverError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
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
    let inner = service::DriverInner::new(
        format!("driver@{address}"),
        config.data_dir,
        config.worker_timeout,
        config.no_worker_timeout,
    );
    Ok(BoundDriver {
        address,
        listener,
        inner,
    })
}

impl BoundDriver {
    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), DriverError> {
        let scheduler = tokio::spawn(self.inner.clone().schedule_forever());
        let svc = ringleader_core::proto::driver_server::DriverServer::new(service::DriverService::new(self.inner));
        let result = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(self.listener), shutdown)
            .await;
        scheduler.abort();
        Ok(result?)
    }
}

/// Accepted connections with Nagle's algorithm off: small RPCs must not wait for delayed
/// ACKs (40 ms each on Linux), which would dominate a short job's latency.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
