//! Producer-id allocation for idempotent producers: ids come from blocks reserved in the
//! keeper (`/latest_producer_id_block`), so ids are unique across brokers and restarts.

use tokio::sync::Mutex;

use crate::cluster::admin::AdminError;
use crate::cluster::Cluster;

/// The unused part of this broker's current block: `next..=end`.
#[derive(Default)]
pub struct ProducerIds {
    block: Mutex<Option<(i64, i64)>>,
}

impl ProducerIds {
    /// The next unused producer id, reserving a new block when the current one is spent.
    pub async fn next(&self, cluster: &Cluster) -> Result<i64, AdminError> {
        let mut block = self.block.lock().await;
        if let Some((next, end)) = *block {
            if next <= end {
                *block = Some((next + 1, end));
                return Ok(next);
            }
        }
        let (start, end) = cluster.allocate_producer_ids().await?;
        tracing::debug!(start, end, "reserved producer id block");
        *block = Some((start + 1, end));
        Ok(start)
    }
}
