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
use ringleader_core::auth::{AuthChannel, authorized};
use ringleader_core::proto::{self, raft_transport_client::RaftTransportClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::TypeConfig;

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
}

/// A tonic channel to a driver's Raft service.
pub fn raft_channel(address: &str) -> Result<Channel, String> {
    Ok(ringleader_core::tls::endpoint(address)?
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
        }
    }
}

/// One other driver, as this node's Raft sees it.
pub struct Peer {
    target: u64,
    client: Result<RaftTransportClient<AuthChannel>, String>,
    fingerprint: String,
    me: u64,
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
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.send(Rpc::Append, &rpc, option).await
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
}
