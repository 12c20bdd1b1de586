//! Client-wide settings shared by the producer, consumer and admin.

use std::time::Duration;

/// Settings for [`crate::Client`]. Names follow the Java client's properties.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` entries tried in order until one answers.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, sent in every request header.
    pub client_id: String,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms`.
    pub connect_timeout: Duration,
    /// `retries` for retriable errors (stale metadata, leader moves, lost connections).
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// Settings with Kafka's defaults for the given comma-separated bootstrap list.
    pub fn new(bootstrap: &str) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: "strom-client".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 10,
            retry_backoff: Duration::from_millis(100),
        }
    }
}
