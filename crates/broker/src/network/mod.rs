//! The Kafka listener: accepts TCP connections and runs one [`connection`] task per client.

pub mod connection;

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::handlers::BrokerState;
use crate::replication;

/// Accepts connections until `shutdown` flips to true. Connections that open with the
/// HTTP/2 preface (other brokers' replication calls) go to `grpc`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<BrokerState>,
    grpc: mpsc::Sender<TcpStream>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    let shutdown = shutdown.clone();
                    let grpc = grpc.clone();
                    tokio::spawn(async move {
                        let mut first = [0u8; 1];
                        // Waiting for the first byte is what a Kafka connection does anyway.
                        match stream.peek(&mut first).await {
                            Ok(1) if replication::is_grpc_preface(first[0]) => {
                                if let Err(e) = stream.set_nodelay(true) {
                                    tracing::debug!(error = %e, "TCP_NODELAY on a replication connection failed");
                                }
                                // Dropped (closed) if the gRPC server is already gone.
                                let _ = grpc.send(stream).await;
                            }
                            Ok(_) => connection::run(stream, peer, state, shutdown).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "connection failed before its first byte"),
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}
