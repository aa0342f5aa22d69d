//! What every node (driver or worker) does around serving: refuse to listen beyond
//! loopback without a cluster token, guard each service with the token, speak TLS when
//! certificates are configured, and accept connections with Nagle's algorithm off.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::auth::{RequireToken, TokenError};
use crate::tls::TlsError;

/// Why a node may not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The cluster token could not be read.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The TLS certificates could not be read.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Listening beyond loopback with no token would let anyone run code on the workers.
    #[error(
        "refusing to listen on {0} without a cluster token: give --token-file (or RINGLEADER_TOKEN), or listen on 127.0.0.1"
    )]
    Insecure(SocketAddr),
    /// The TLS configuration was refused by the server.
    #[error("TLS: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The token check for this process's services; refuses a non-loopback `listen` address
/// when there is no token.
pub fn guard(listen: SocketAddr) -> Result<RequireToken, ServeError> {
    let require = RequireToken::from_process()?;
    if !require.required() && !listen.ip().is_loopback() {
        return Err(ServeError::Insecure(listen));
    }
    Ok(require)
}

/// `service`, refusing calls without the token.
pub fn guarded<S>(service: S, require: &RequireToken) -> InterceptedService<S, RequireToken> {
    InterceptedService::new(service, require.clone())
}

/// A server builder, speaking TLS when this process has certificates.
pub fn server() -> Result<Server, ServeError> {
    // Pings find a client whose link went down, so its streams (a job's events, an
    // executor's tasks) end instead of waiting forever.
    let server = Server::builder()
        .http2_keepalive_interval(Some(crate::tls::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::tls::KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(crate::tls::KEEPALIVE_INTERVAL));
    Ok(match crate::tls::server_config()? {
        Some(tls) => server.tls_config(tls)?,
        None => server,
    })
}

/// Accepted connections with Nagle's algorithm off: small RPCs must not wait for delayed
/// ACKs (40 ms each on Linux), which would dominate a short job's latency.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
