//! Generated protobuf and gRPC code for every `.proto` file under `proto/`.
//!
//! - [`keeper`]: the keeper client API (`proto/keeper.proto`) — sessions, znode ops, watches.
//! - [`keeper_raft`]: keeper-to-keeper transport (`proto/keeper_raft.proto`) — openraft RPCs,
//!   forwarded writes, session liveness.
//!
//! Nothing here is written by hand; `build.rs` compiles the files with protox.

#![allow(clippy::all, missing_docs)]

pub mod keeper {
    tonic::include_proto!("strom.keeper.v1");
}

pub mod keeper_raft {
    tonic::include_proto!("strom.keeper.raft.v1");
}
