//! Generated protobuf and gRPC code for every `.proto` file under `proto/`.
//!
//! - [`keeper`]: the keeper client API (`proto/keeper.proto`) — sessions, znode ops, watches.
//! - [`keeper_raft`]: keeper-to-keeper transport (`proto/keeper_raft.proto`) — openraft RPCs,
//!   forwarded writes, session liveness.
//! - [`replication`]: broker-to-broker calls (`proto/replication.proto`) — replica fetch
//!   streams and the controller's LeaderAndIsr.
//!
//! Nothing here is written by hand; `build.rs` compiles the files with protox.

#![allow(clippy::all, missing_docs)]

pub mod keeper {
    tonic::include_proto!("strom.keeper.v1");
}

pub mod keeper_raft {
    tonic::include_proto!("strom.keeper.raft.v1");
}

pub mod replication {
    tonic::include_proto!("strom.replication.v1");
}
