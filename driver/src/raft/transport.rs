//! The server side of the Raft RPCs (the `RaftTransport` service), and the copying of job
//! binaries between drivers. Every call must carry this group's fingerprint and the id of
//! one of its drivers; anything else is refused before it reaches Raft.

use std::path::PathBuf;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use ringleader_core::net::binary::{BinaryWriter, valid_hash};
use ringleader_core::proto::{self, raft_transport_server::RaftTransport};
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use super::Raft;
use super::group::Peers;
use super::network::{CLUSTER_KEY, NODE_KEY};

/// Serves this driver's Raft node to the other drivers of its group.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    me: u64,
    peers: Peers,
    fingerprint: String,
    binaries_dir: PathBuf,
}

impl RaftService {
    /// Serves `raft`, node `me` of `peers`, keeping copied binaries in `binaries_dir`.
    pub fn new(raft: Raft, me: u64, peers: Peers, binaries_dir: PathBuf) -> RaftService {
        RaftService {
            raft,
            me,
            fingerprint: peers.fingerprint(),
            peers,
            binaries_dir,
        }
    }

    /// Refuses a caller that is not a driver of this group.
    fn admit<T>(&self, request: &Request<T>) -> Result<u64, Status> {
        let text = |key: &str| {
            request
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (cluster, node) = (text(CLUSTER_KEY), text(NODE_KEY));
        if cluster != self.fingerprint {
            return Err(Status::permission_denied(format!(
                "driver {} refuses a Raft call from a different group (fingerprint {cluster:?}; this group is {} with --peers {})",
                self.me, self.fingerprint, self.peers
            )));
        }
        match node.parse::<u64>() {
            Ok(id) if self.peers.address(id).is_some() && id != self.me => Ok(id),
            _ => Err(Status::permission_denied(format!(
                "driver {} refuses a Raft call from node {node:?}, which is not another driver of --peers {}",
                self.me, self.peers
            ))),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(message: proto::RaftMessage) -> Result<T, Status> {
    postcard::from_bytes(&message.data).map_err(|e| Status::invalid_argument(format!("malformed Raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<proto::RaftMessage>, Status> {
    let data = postcard::to_stdvec(value).map_err(|e| Status::internal(format!("encoding a Raft reply: {e}")))?;
    Ok(Response::new(proto::RaftMessage { data }))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn hello(&self, request: Request<proto::RaftMessage>) -> Result<Response<proto::RaftMessage>, Status> {
        // No admission check: the answer is how a mismatched driver learns what is wrong.
        let _: (u64, String) = decode(request.into_inner())?;
        encode(&(self.me, self.peers.to_string()))
    }

    async fn append_entries(
        &self,
        request: Request<proto::RaftMessage>,
    ) -> Result<Response<proto::RaftMessage>, Status> {
        self.admit(&request)?;
        let rpc = decode(request.into_inner())?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<proto::RaftMessage>) -> Result<Response<proto::RaftMessage>, Status> {
        self.admit(&request)?;
        let rpc = decode(request.into_inner())?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<proto::RaftMessage>,
    ) -> Result<Response<proto::RaftMessage>, Status> {
        self.admit(&request)?;
        let rpc = decode(request.into_inner())?;
        encode(&self.raft.install_snapshot(rpc).await)
    }

    async fn push_binary(
        &self,
        request: Request<Streaming<proto::BinaryChunk>>,
    ) -> Result<Response<proto::UploadBinaryReply>, Status> {
        self.admit(&request)?;
        let hash = receive_binary(&self.binaries_dir, request.into_inner()).await?;
        Ok(Response::new(proto::UploadBinaryReply { hash }))
    }

    type PullBinaryStream = BoxStream<proto::BinaryChunk>;

    async fn pull_binary(&self, request: Request<proto::BinaryId>) -> Result<Response<Self::PullBinaryStream>, Status> {
        self.admit(&request)?;
        let hash = request.into_inner().hash;
        Ok(Response::new(send_binary(&self.binaries_dir, hash)?))
    }
}

/// Stores a streamed binary under `dir` (checking its content hash); returns the hash.
pub async fn receive_binary(
    dir: &std::path::Path,
    mut stream: Streaming<proto::BinaryChunk>,
) -> Result<String, Status> {
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty upload"))?;
    let hash = first.hash.clone();
    let mut writer = BinaryWriter::create(dir, &hash).map_err(|e| Status::invalid_argument(e.to_string()))?;
    writer.write(&first.data).map_err(|e| Status::internal(e.to_string()))?;
    while let Some(chunk) = stream.message().await? {
        writer.write(&chunk.data).map_err(|e| Status::internal(e.to_string()))?;
    }
    writer.finish().map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(hash)
}

/// Streams the binary `hash` stored under `dir`.
pub fn send_binary(dir: &std::path::Path, hash: String) -> Result<BoxStream<proto::BinaryChunk>, Status> {
    let path = dir.join(&hash);
    if !valid_hash(&hash) || !path.exists() {
        return Err(Status::not_found(format!("no binary {hash} on this driver")));
    }
    let chunks =
        ringleader_core::net::binary::file_chunks(path, hash).map(|c| c.map_err(|e| Status::internal(e.to_string())));
    Ok(Box::pin(chunks))
}
