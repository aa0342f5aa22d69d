//! Why the leader could not do what it was asked, as the driver's own error rather than a
//! gRPC status: the service edge ([`crate::service`]) turns it into one
//! ([`From<LeaderError> for Status`](LeaderError)), naming the leader on a refusal so the
//! client can follow it.

use tonic::Status;

/// A leader's failure to carry out a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    /// This driver does not lead (now): `leader` is where the leader is, if known.
    #[error("{}", match leader {
        Some(address) => format!("this driver is not the leader; the leader is at {address}"),
        None => "this driver is not the leader, and no leader is elected yet".to_string(),
    })]
    NotLeader {
        /// The leader's address, if one is known.
        leader: Option<String>,
    },
    /// The driver group could not commit a change (no quorum, shutting down) or confirm
    /// this driver's leadership.
    #[error("the driver group could not {what}: {message}")]
    Unavailable {
        /// What it was doing.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// A driver that believed it led could not confirm it (it restarted believing so, or
    /// lost a race): it simply follows.
    #[error("not confirmed as leader: {0}")]
    NotConfirmed(String),
    /// A worker's recorded address is not one a channel can be made to.
    #[error("bad worker address: {0}")]
    BadWorkerAddress(String),
}

impl From<LeaderError> for Status {
    fn from(e: LeaderError) -> Status {
        match e {
            LeaderError::NotLeader { leader } => ringleader_core::net::driver_group::not_leader(leader.as_deref()),
            LeaderError::Unavailable { .. } | LeaderError::NotConfirmed(_) => Status::unavailable(e.to_string()),
            LeaderError::BadWorkerAddress { .. } => Status::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_leader_for_the_client_to_follow() {
        let status = Status::from(LeaderError::NotLeader {
            leader: Some("10.0.0.1:7000".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            ringleader_core::net::driver_group::leader_hint(&status).as_deref(),
            Some("10.0.0.1:7000")
        );
        let status = Status::from(LeaderError::NotLeader { leader: None });
        assert!(
            status.message().contains("no leader is elected"),
            "{}",
            status.message()
        );
        let status = Status::from(LeaderError::Unavailable {
            what: "commit",
            message: "no quorum".into(),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("could not commit: no quorum"));
    }
}
