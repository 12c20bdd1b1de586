//! The controller's side of LeaderAndIsr: after it writes partition states, it tells each
//! replica broker directly, so a failover does not wait for keeper watches to reach them.
//! The keeper stays the source of truth: a broker that misses a call still learns the
//! state from its watches, and brokers ignore states older than what they applied.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use strom_proto::replication::replication_client::ReplicationClient;
use strom_proto::replication::{LeaderAndIsrRequest, PartitionLeadership};
use tonic::transport::Endpoint;

use crate::metadata::BrokerInfo;

const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends each broker the states of the partitions it replicates, concurrently, without
/// waiting for the answers (failures are logged; watches cover them).
pub fn send(
    brokers: &BTreeMap<i32, BrokerInfo>,
    controller_id: i32,
    controller_epoch: i32,
    changes: &[(PartitionLeadership, Vec<i32>)],
) {
    let mut per_broker: HashMap<i32, Vec<PartitionLeadership>> = HashMap::new();
    for (state, replicas) in changes {
        for r in replicas {
            per_broker.entry(*r).or_default().push(state.clone());
        }
    }
    for (id, partitions) in per_broker {
        let Some(info) = brokers.get(&id) else { continue };
        let uri = format!("http://{}:{}", info.host, info.port);
        let req = LeaderAndIsrRequest { controller_id, controller_epoch, partitions };
        tokio::spawn(async move {
            let call = async {
                let channel = Endpoint::from_shared(uri.clone())
                    .map_err(|e| e.to_string())?
                    .connect_timeout(CALL_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let resp = ReplicationClient::new(channel).leader_and_isr(req).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(resp.into_inner())
            };
            match tokio::time::timeout(CALL_TIMEOUT * 2, call).await {
                Ok(Ok(r)) if r.error_code == 0 => {
                    tracing::debug!(broker = id, "LeaderAndIsr delivered")
                }
                Ok(Ok(r)) => tracing::warn!(broker = id, error_code = r.error_code, "LeaderAndIsr refused"),
                Ok(Err(e)) => tracing::debug!(broker = id, uri, error = %e, "LeaderAndIsr not delivered"),
                Err(_) => tracing::debug!(broker = id, uri, "LeaderAndIsr timed out"),
            }
        });
    }
}
