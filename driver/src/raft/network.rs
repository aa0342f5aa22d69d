//! The client side of the Raft RPCs: each request is postcard-encoded into a
//! `RaftMessage` and sent over the `RaftTransport` service, tagged with the group's
//! fingerprint and this node's id; the reply carries the peer's `Result` back.

use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use ringleader_core::proto::{self, raft_transport_client::RaftTransportClient};
use ringleader_core::security::auth::{AuthChannel, authorized};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::{MAX_APPEND_BYTES, TypeConfig};

/// Keeps the first of `entries` whose encodings fit in `budget` bytes (at least one), and
/// returns the log id of the last one kept if any were cut.
fn keep_within(entries: &mut Vec<openraft::Entry<TypeConfig>>, budget: usize) -> Option<openraft::LogId<u64>> {
    let mut used = 0;
    let keep = entries
        .iter()
        .position(|entry| {
            used += postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
            used > budget
        })
        .map_or(entries.len(), |over| over.max(1));
    if keep == entries.len() {
        return None;
    }
    entries.truncate(keep);
    entries.last().map(|e| e.log_id)
}

/// Metadata key carrying the group's fingerprint on every Raft RPC.
pub const CLUSTER_KEY: &str = "ringleader-cluster";
/// Metadata key carrying the sender's node id on every Raft RPC.
pub const NODE_KEY: &str = "ringleader-node";

/// Makes connections to the other drivers of the group.
#[derive(Clone)]
pub struct Network {
    /// The group's fingerprint.
    pub fingerprint: String,
    /// This node's id.
    pub me: u64,
    /// The heartbeat interval: replication to an unreachable driver tries again after one,
    /// then two, then every three of them, so a restarted driver hears from its leader well
    /// before its election timeout (eight intervals). openraft's default, every 500 ms, is
    /// longer than that: the restarted driver stood for election and the leader stepped down
    /// for its higher term.
    pub retry_after: Duration,
}

/// A tonic channel to a driver's Raft service.
pub fn raft_channel(address: &str) -> Result<Channel, ringleader_core::security::tls::TlsError> {
    Ok(ringleader_core::security::tls::endpoint(address)?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Tags `message` with the group's fingerprint and the sender's id.
pub fn tagged<T>(message: T, fingerprint: &str, me: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = fingerprint.parse() {
        request.metadata_mut().insert(CLUSTER_KEY, v);
    }
    if let Ok(v) = me.to_string().parse() {
        request.metadata_mut().insert(NODE_KEY, v);
    }
    request
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            client: raft_channel(&node.addr)
                .map(|c| RaftTransportClient::new(authorized(c)).max_decoding_message_size(crate::MAX_RAFT_MESSAGE))
                .map_err(|e| e.to_string()),
            fingerprint: self.fingerprint.clone(),
            me: self.me,
            retry_after: self.retry_after,
        }
    }
}

/// One other driver, as this node's Raft sees it.
pub struct Peer {
    target: u64,
    client: Result<RaftTransportClient<AuthChannel>, String>,
    fingerprint: String,
    me: u64,
    retry_after: Duration,
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl Peer {
    async fn send<Req, Resp, E>(&mut self, rpc: Rpc, request: &Req, option: RPCOption) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let network = |message: String| RPCError::Network(NetworkError::new(&std::io::Error::other(message)));
        let mut client = self.client.clone().map_err(network)?;
        let data = postcard::to_stdvec(request).map_err(|e| network(format!("encoding a Raft request: {e}")))?;
        let request = tagged(proto::RaftMessage { data }, &self.fingerprint, self.me);
        let call = async {
            match rpc {
                Rpc::Append => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::Snapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => {
                return Err(network(format!(
                    "no reply from driver {} within {:?}",
                    self.target,
                    option.hard_ttl()
                )));
            }
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
            Ok(Err(status)) => return Err(network(format!("driver {}: {}", self.target, status.message()))),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let result: Result<Resp, RaftError<u64, E>> = postcard::from_bytes(&reply.data)
            .map_err(|e| network(format!("driver {} sent an undecodable Raft reply: {e}", self.target)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let cut_after = keep_within(&mut rpc.entries, MAX_APPEND_BYTES);
        match self.send(Rpc::Append, &rpc, option).await? {
            // The follower took what was sent; openraft sends the rest next.
            AppendEntriesResponse::Success if cut_after.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(cut_after))
            }
            reply => Ok(reply),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.send(Rpc::Snapshot, &rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.send(Rpc::Vote, &rpc, option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        let interval = self.retry_after;
        openraft::network::Backoff::new(
            [interval, interval * 2]
                .into_iter()
                .chain(std::iter::repeat(interval * 3)),
        )
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::state::Command;

    #[test]
    fn an_unreachable_driver_is_tried_again_within_three_heartbeats() {
        let peer = Peer {
            target: 2,
            client: Err("not connected".into()),
            fingerprint: String::new(),
            me: 1,
            retry_after: Duration::from_millis(40),
        };
        let waits: Vec<u128> = peer.backoff().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [40, 80, 120, 120, 120]);
    }

    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::Part {
                key: (1, index),
                bytes: vec![0; bytes],
                at_ms: 0,
            }),
        }
    }

    #[test]
    fn an_append_carries_entries_up_to_its_byte_budget_and_at_least_one() {
        let mut small: Vec<_> = (1..=5).map(|i| entry(i, 100)).collect();
        assert_eq!(keep_within(&mut small, 10_000), None);
        assert_eq!(small.len(), 5);
        let mut mixed: Vec<_> = (1..=5).map(|i| entry(i, 3000)).collect();
        assert_eq!(keep_within(&mut mixed, 10_000).map(|l| l.index), Some(3));
        assert_eq!(mixed.len(), 3);
        let mut huge = vec![entry(7, 50_000), entry(8, 10)];
        assert_eq!(keep_within(&mut huge, 10_000).map(|l| l.index), Some(7));
        assert_eq!(huge.len(), 1);
        let mut none: Vec<Entry<TypeConfig>> = Vec::new();
        assert_eq!(keep_within(&mut none, 10), None);
    }
}
