//! Separate hosts on one Linux machine, for the multi-host tests and `ringleader bench
//! hosts`: [`Lan`] makes hosts that share nothing but a network (namespaces on a bridge,
//! links capped with a token bucket or cut, a private `/tmp` and `HOME` per host), and
//! [`LanCluster`] starts a Ringleader client, drivers and workers on them.
//!
//! Making hosts needs root, iproute2 and util-linux; where they cannot be made,
//! [`LanError::Unavailable`] says why, so a test can report itself skipped.

mod cluster;
mod net;

pub use cluster::{ClusterSpec, LanCluster};
pub use net::{Host, Lan, SUBNET, Traffic};

use std::time::Duration;

/// What went wrong making or using test hosts.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// Hosts cannot be made on this machine (not root, a tool missing, namespaces refused).
    #[error("test hosts cannot be made here: {0}")]
    Unavailable(String),
    /// A command that sets up or changes the network failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Something awaited did not happen in time.
    #[error("{what} did not happen within {limit:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was given.
        limit: Duration,
    },
}

impl LanError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LanError {
        let what = what.into();
        move |source| LanError::Io { what, source }
    }
}
