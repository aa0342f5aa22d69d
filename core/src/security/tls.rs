//! TLS between Ringleader processes, when certificates are given. A node (driver or
//! worker) is given `--tls-cert`, `--tls-key` and `--tls-ca` ([`configure`]): it serves
//! every service over TLS with that identity and trusts that CA when it calls other nodes.
//! A client (a job binary, the `ringleader` commands) trusts the CA named by
//! `RINGLEADER_TLS_CA`. Without either, everything speaks plain HTTP/2 (keep such clusters
//! on loopback or a trusted network; the cluster token still guards every call).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Environment variable naming the CA certificate (PEM) clients trust.
pub const CA_ENV: &str = "RINGLEADER_TLS_CA";

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (certificate, key, CA).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold PEM.
    #[error("{what} {path} is not PEM (expected a -----BEGIN …----- block)")]
    NotPem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Only some of the three files were given.
    #[error("TLS needs --tls-cert, --tls-key and --tls-ca together")]
    Incomplete,
    /// An address that names no endpoint.
    #[error("{address:?} is not an address: {source}")]
    BadAddress {
        /// The address.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A certificate or key given as PEM that does not parse.
    #[error("the {what} does not parse: {source}")]
    Unparsable {
        /// Which (certificate, private key).
        what: &'static str,
        /// Why.
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    /// A certificate and key that make no server identity.
    #[error("the certificate and key do not make an identity: {0}")]
    NoIdentity(#[from] tokio_rustls::rustls::Error),
}

/// The certificate files of a node.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that signed every node's certificate (PEM).
    pub ca: PathBuf,
}

impl NodeTls {
    /// From three optional flags: all or none.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<NodeTls>, TlsError> {
        match (cert, key, ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(NodeTls { cert, key, ca })),
            (None, None, None) => Ok(None),
            _ => Err(TlsError::Incomplete),
        }
    }
}

/// A node's certificate chain and private key, both PEM.
pub type PemIdentity = (Vec<u8>, Vec<u8>);

struct Setup {
    server: Option<ServerTlsConfig>,
    /// The node's identity, for servers other than tonic's.
    identity: Option<PemIdentity>,
    client: Option<ClientTlsConfig>,
    ca_path: Option<PathBuf>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN") {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn client_config(ca: &Path) -> Result<ClientTlsConfig, TlsError> {
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem("CA certificate", ca)?)))
}

/// Sets this process up as a node: serve with `node`'s identity, trust its CA. First call
/// wins; `None` means plain HTTP/2 (unless `RINGLEADER_TLS_CA` makes this a TLS client).
pub fn configure(node: Option<&NodeTls>) -> Result<(), TlsError> {
    let setup = match node {
        Some(n) => {
            let (cert, key) = (read_pem("certificate", &n.cert)?, read_pem("private key", &n.key)?);
            Setup {
                server: Some(ServerTlsConfig::new().identity(Identity::from_pem(&cert, &key))),
                identity: Some((cert, key)),
                client: Some(client_config(&n.ca)?),
                ca_path: Some(n.ca.clone()),
            }
        }
        None => from_env()?,
    };
    let _ = SETUP.set(setup);
    Ok(())
}

fn from_env() -> Result<Setup, TlsError> {
    let ca = std::env::var_os(CA_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    Ok(Setup {
        server: None,
        identity: None,
        client: ca.as_deref().map(client_config).transpose()?,
        ca_path: ca,
    })
}

fn setup() -> Result<&'static Setup, TlsError> {
    if let Some(s) = SETUP.get() {
        return Ok(s);
    }
    let s = from_env()?;
    Ok(SETUP.get_or_init(|| s))
}

/// Makes this process a TLS client trusting `ca` (a `ringleader` command reading its
/// cluster's directory), unless it is set up already.
pub fn trust(ca: &Path) -> Result<(), TlsError> {
    if SETUP.get().is_none() {
        let setup = Setup {
            server: None,
            identity: None,
            client: Some(client_config(ca)?),
            ca_path: Some(ca.to_path_buf()),
        };
        let _ = SETUP.set(setup);
    }
    Ok(())
}

/// How a server should speak TLS, if it should.
pub fn server_config() -> Result<Option<ServerTlsConfig>, TlsError> {
    Ok(setup()?.server.clone())
}

/// This node's certificate chain and private key (PEM), when it serves TLS: for a server
/// that is not tonic's (the driver's status page).
pub fn server_identity() -> Result<Option<PemIdentity>, TlsError> {
    Ok(setup()?.identity.clone())
}

/// Whether this node serves TLS (it has an identity), without copying its key.
pub fn serves_tls() -> bool {
    setup().is_ok_and(|s| s.identity.is_some())
}

/// The CA file this process trusts, to hand on to the processes it starts.
pub fn ca_path() -> Option<PathBuf> {
    setup().ok().and_then(|s| s.ca_path.clone())
}

/// An endpoint for the Ringleader service at `address` (`host:port`): `https` with the
/// trusted CA when TLS is set up, `http` otherwise.
pub fn endpoint(address: &str) -> Result<Endpoint, TlsError> {
    let setup = setup()?;
    let endpoint = match &setup.client {
        Some(tls) => Endpoint::from_shared(format!("https://{address}")).and_then(|e| e.tls_config(tls.clone())),
        None => Endpoint::from_shared(format!("http://{address}")),
    }
    .map_err(|source| TlsError::BadAddress {
        address: address.to_string(),
        source,
    })?;
    Ok(bounded(endpoint))
}

/// How often an HTTP/2 connection with calls in flight is pinged, and how long a ping may go
/// unanswered before the connection (and every call on it) fails. A peer whose link went
/// down answers nothing and sends no reset; without pings a call would wait forever.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bounds every wait on a channel to `endpoint`: connecting takes at most 5 s, and a
/// connection whose peer stops answering pings fails within [`KEEPALIVE_TIMEOUT`], however
/// long a stream on it is meant to last.
///
/// Pings go also while the connection looks idle: hyper counts a connection whose client
/// handle was dropped as idle even while a stream it opened is still being read (a Flight
/// `do_get` keeps only its stream), and stops pinging it; a reducer then waited for ever on
/// a worker stopped mid-stream (`kill -STOP`).
fn bounded(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
}
