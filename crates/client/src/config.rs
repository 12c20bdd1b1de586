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
    /// Every retry loop is also bounded in time (`request.timeout.ms`, or the producer's
    /// delivery timeout), so the default retries until that bound, like the Java client.
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
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// One retry loop's budget: at most `retries` more attempts and until `deadline`, with a
/// backoff that doubles from `retry.backoff.ms` up to one second.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    left: u32,
    deadline: std::time::Instant,
    backoff: Duration,
}

impl RetryBudget {
    pub(crate) fn new(config: &ClientConfig, within: Duration) -> Self {
        RetryBudget {
            left: config.retries,
            deadline: std::time::Instant::now() + within,
            backoff: config.retry_backoff,
        }
    }

    /// Sleeps the backoff and returns true if another attempt fits the budget.
    pub(crate) async fn retry(&mut self) -> bool {
        if self.left == 0 || std::time::Instant::now() + self.backoff >= self.deadline {
            return false;
        }
        self.left -= 1;
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
        true
    }
}
