//! What every node (driver or worker) does around serving: refuse to listen beyond
//! loopback without a cluster token, guard each service with the token, speak TLS when
//! certificates are configured, and accept connections with Nagle's algorithm off.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::security::auth::{RequireToken, TokenError};
use crate::security::tls::TlsError;

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
    /// A port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
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

/// The HTTP port (status pages, `/metrics`) at `at`, if one is asked for, under the same
/// guard as the gRPC port: beyond loopback only with a cluster token to check.
pub async fn bind_http(at: Option<SocketAddr>) -> Result<Option<TcpListener>, ServeError> {
    let Some(address) = at else {
        return Ok(None);
    };
    guard(address)?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    Ok(Some(listener))
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
        .http2_keepalive_interval(Some(crate::security::tls::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::security::tls::KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(crate::security::tls::KEEPALIVE_INTERVAL));
    Ok(match crate::security::tls::server_config()? {
        Some(tls) => server.tls_config(tls)?,
        None => server,
    })
}

/// Accepted connections with Nagle's algorithm off: small RPCs must not wait for delayed
/// ACKs (40 ms each on Linux), which would dominate a short job's latency.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_port_beyond_loopback_needs_a_token_like_the_grpc_port() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            // This test process has no cluster token.
            let outside: SocketAddr = "192.0.2.1:9100".parse().expect("an address");
            assert!(matches!(bind_http(Some(outside)).await, Err(ServeError::Insecure(a)) if a == outside));
            assert!(bind_http(None).await.expect("nothing to bind").is_none());
            let local = bind_http(Some("127.0.0.1:0".parse().expect("an address"))).await;
            assert!(local.expect("loopback is allowed").is_some());
        });
    }
}
