//! The keeper-to-keeper gRPC service: openraft's RPCs, forwarded writes, session liveness and
//! read index.

use std::sync::Arc;

use strom_proto::keeper_raft::raft_peer_server::RaftPeer;
use strom_proto::keeper_raft::{Payload, ReadIndexRequest, ReadIndexResponse, TouchRequest, TouchResponse};
use tonic::{Request, Response, Status};

use super::liveness::Liveness;
use super::node::{ForwardReply, Node};
use crate::tree::Command;

pub struct PeerService {
    pub node: Arc<Node>,
    pub liveness: Arc<Liveness>,
}

fn decode<T: serde::de::DeserializeOwned>(p: &Payload) -> Result<T, Status> {
    bincode::deserialize(&p.data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<Payload>, Status> {
    bincode::serialize(v).map(|data| Response::new(Payload { data })).map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req.get_ref())?;
        encode(&self.node.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req.get_ref())?;
        encode(&self.node.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = decode(req.get_ref())?;
        encode(&self.node.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let cmds: Vec<Command> = decode(req.get_ref())?;
        if cmds.is_empty() || cmds.len() > crate::tree::MAX_BATCH {
            return Err(Status::invalid_argument(format!("a forward carries 1..={} writes", crate::tree::MAX_BATCH)));
        }
        let results = self.node.propose_entry(cmds).await.await;
        encode(&ForwardReply(results))
    }

    async fn touch(&self, req: Request<TouchRequest>) -> Result<Response<TouchResponse>, Status> {
        for id in req.into_inner().session_ids {
            self.liveness.touch(id);
        }
        Ok(Response::new(TouchResponse { expired: Vec::new() }))
    }

    async fn read_index(&self, _req: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        Ok(Response::new(match self.node.local_read_index().await {
            Ok(index) => ReadIndexResponse { index, error: String::new() },
            Err(e) => ReadIndexResponse { index: 0, error: e.to_string() },
        }))
    }
}
