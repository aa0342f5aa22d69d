//! The nodes' HTTP pages (the driver's status page, `/metrics`) over TLS when the node has
//! a certificate (`--tls-cert`, `--tls-key`): the same identity as its gRPC services,
//! HTTP/1.1 inside ([`serve`]). Handshakes run beside the accept loop, each within
//! [`HANDSHAKE_PATIENCE`], so a slow or silent client never holds up the others; a failed
//! handshake (a plain-HTTP client, another CA) only closes its connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, rustls};

use crate::security::tls::TlsError;

/// Serves `app` on `listener` until `shutdown` completes: over TLS with this node's
/// identity when it has one (see [`crate::security::tls::server_identity`]), else plain HTTP.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let identity = crate::security::tls::server_identity().map_err(std::io::Error::other)?;
    match identity {
        Some((cert, key)) => {
            let acceptor =
                acceptor(&cert, &key).map_err(|e| std::io::Error::other(format!("serving HTTP over TLS: {e}")))?;
            let listener = TlsListener::new(listener, acceptor)?;
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
}

/// The scheme [`serve`] serves with: `https` when this node has a certificate.
pub fn scheme() -> &'static str {
    if crate::security::tls::serves_tls() {
        "https"
    } else {
        "http"
    }
}

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(10);

/// An acceptor for the identity `(certificate chain, private key)`, both PEM.
pub fn acceptor(cert: &[u8], key: &[u8]) -> Result<TlsAcceptor, TlsError> {
    let unparsable = |what| move |source| TlsError::Unparsable { what, source };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(unparsable("certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(unparsable("private key"))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections arrive with their TLS handshake done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener`, handshaking with `acceptor`, until the listener is dropped.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // The server gone (its listener dropped): stop accepting, free the port.
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = tx.closed() => return,
                };
                let Ok((tcp, peer)) = accepted else {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_PATIENCE, acceptor.accept(tcp)).await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
