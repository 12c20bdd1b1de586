//! The Kafka listener: accepts TCP connections and runs one [`connection`] task per client.

pub mod connection;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::handlers::BrokerState;

/// Accepts connections until `shutdown` flips to true.
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(connection::run(stream, peer, state, shutdown));
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
