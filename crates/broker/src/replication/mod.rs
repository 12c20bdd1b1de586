//! Replication between brokers over gRPC (`proto/replication.proto`).
//!
//! - [`service`]: the leader side — answers followers' fetch rounds from the log, records
//!   their progress (high watermark, ISR expansion) — and the controller's LeaderAndIsr.
//! - [`fetcher`]: the follower side — one long-lived fetch stream per (leader, fetcher),
//!   appending what arrives, truncating where the leader's history diverges.
//! - [`isr`]: the leader's ISR shrink/expand writes to the keeper.
//! - [`push`]: the controller's LeaderAndIsr calls to brokers.
//!
//! gRPC shares the broker's Kafka port: [`serve`] takes the connections whose first byte is
//! the `P` of the HTTP/2 preface (a Kafka request starts with the high byte of its length,
//! which is 0 for anything under 16 MiB), so clusters need no second port or listener.

pub mod fetcher;
pub mod isr;
pub mod push;
pub mod service;

use std::time::Duration;

use futures::StreamExt;
use strom_proto::replication::replication_server::ReplicationServer;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

pub use service::ReplicationService;

/// Whether a connection that starts with `first` speaks HTTP/2 (gRPC) rather than Kafka.
pub fn is_grpc_preface(first: u8) -> bool {
    first == b'P'
}

/// Runs the gRPC server over the connections the Kafka listener hands over.
pub async fn serve(service: ReplicationService, conns: mpsc::Receiver<TcpStream>, mut shutdown: watch::Receiver<bool>) {
    let incoming = ReceiverStream::new(conns).map(Ok::<_, std::io::Error>);
    let result = tonic::transport::Server::builder()
        .initial_stream_window_size(fetcher::STREAM_WINDOW)
        .initial_connection_window_size(fetcher::CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(
            ReplicationServer::new(service).max_decoding_message_size(64 << 20).max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            // An error means the broker is gone, which is a shutdown too.
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "replication server failed");
    }
}
