//! Who may do what, and over what channel.
//! - [`auth`]: the cluster token and job credentials.
//! - [`tls`] and [`tls_diagnosis`]: TLS, and what to say when the two ends disagree about it.
//! - [`web_tls`]: the nodes' HTTP pages over TLS.

pub mod auth;
pub mod tls;
pub mod tls_diagnosis;
pub mod web_tls;
