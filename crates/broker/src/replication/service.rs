//! The leader side of replication and the controller's LeaderAndIsr, as a gRPC service.
//!
//! A follower's fetch round is answered from the same log files consumers read, but up to
//! the log end offset instead of the high watermark. Before reading, the offsets the
//! follower asks for are recorded as its progress: that moves the high watermark and may
//! add the follower to the ISR.

use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use strom_proto::replication::replication_server::Replication;
use strom_proto::replication::{
    FetchPartition, FetchedPartition, LeaderAndIsrRequest, LeaderAndIsrResponse, PartitionError, ReplicaFetchRequest,
    ReplicaFetchResponse,
};
use strom_storage::LogError;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::metadata::{MetadataCache, PartitionMeta};
use crate::replica::{IsrChange, Partition, ReplicaManager};

/// The longest a follower's long poll is held, whatever it asks for.
const MAX_WAIT_CAP: Duration = Duration::from_secs(5);

/// Serves replica fetches and LeaderAndIsr for one broker.
#[derive(Clone)]
pub struct ReplicationService {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: Arc<ReplicaManager>,
    cache: Arc<MetadataCache>,
    isr_changes: mpsc::UnboundedSender<IsrChange>,
    /// The newest controller epoch a LeaderAndIsr came with; older ones are refused.
    controller_epoch: AtomicI32,
}

impl ReplicationService {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        cache: Arc<MetadataCache>,
        isr_changes: mpsc::UnboundedSender<IsrChange>,
    ) -> Self {
        ReplicationService {
            inner: Arc::new(Inner { replicas, cache, isr_changes, controller_epoch: AtomicI32::new(-1) }),
        }
    }
}

type FetchStream = Pin<Box<dyn futures::Stream<Item = Result<ReplicaFetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for ReplicationService {
    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<Streaming<ReplicaFetchRequest>>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(error = %status, "replica fetch stream ended");
                        break;
                    }
                };
                let resp = tokio::select! {
                    resp = inner.serve_fetch(req) => resp,
                    // The follower went away mid-poll: stop waiting for data nobody reads.
                    _ = tx.closed() => break,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn leader_and_isr(
        &self,
        request: Request<LeaderAndIsrRequest>,
    ) -> Result<Response<LeaderAndIsrResponse>, Status> {
        Ok(Response::new(self.inner.leader_and_isr(request.into_inner())))
    }
}

impl Inner {
    async fn serve_fetch(&self, req: ReplicaFetchRequest) -> ReplicaFetchResponse {
        let max_wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT_CAP);
        let deadline = tokio::time::Instant::now() + max_wait;
        let targets: Vec<Result<Arc<Partition>, i16>> = req.partitions.iter().map(|p| self.resolve(p)).collect();
        let now = Instant::now();
        for (p, target) in req.partitions.iter().zip(&targets) {
            if let Ok(part) = target {
                if p.current_leader_epoch == part.leader_epoch() {
                    if let Some(change) = part.record_follower_fetch(req.replica_id, p.fetch_offset, now) {
                        // The receiver lives as long as the broker; a send error means shutdown.
                        let _ = self.isr_changes.send(change);
                    }
                }
            }
        }
        loop {
            // Subscribe before reading, so an append between the read and the wait is seen.
            let mut watchers: Vec<watch::Receiver<i64>> =
                targets.iter().filter_map(|t| t.as_ref().ok().map(|p| p.subscribe_log_end())).collect();
            for w in &mut watchers {
                w.borrow_and_update();
            }
            let (resp, bytes, urgent) = read_round(&req, &targets);
            if bytes > 0 || urgent || watchers.is_empty() || tokio::time::Instant::now() >= deadline {
                return resp;
            }
            let any = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            if tokio::time::timeout_at(deadline, any).await.is_err() {
                return read_round(&req, &targets).0;
            }
        }
    }

    fn resolve(&self, p: &FetchPartition) -> Result<Arc<Partition>, i16> {
        match self.replicas.get(&p.topic, p.partition) {
            Some(part) if part.is_leader() => Ok(part),
            Some(_) => Err(ResponseError::NotLeaderOrFollower.code()),
            None if self.cache.snapshot().partition(&p.topic, p.partition).is_some() => {
                Err(ResponseError::NotLeaderOrFollower.code())
            }
            None => Err(ResponseError::UnknownTopicOrPartition.code()),
        }
    }

    fn leader_and_isr(&self, req: LeaderAndIsrRequest) -> LeaderAndIsrResponse {
        let seen = self.controller_epoch.fetch_max(req.controller_epoch, Ordering::AcqRel);
        if req.controller_epoch < seen {
            tracing::warn!(
                controller = req.controller_id,
                controller_epoch = req.controller_epoch,
                newest_seen = seen,
                "refusing LeaderAndIsr from a stale controller"
            );
            return LeaderAndIsrResponse {
                error_code: i32::from(ResponseError::StaleControllerEpoch.code()),
                partition_errors: Vec::new(),
            };
        }
        let mut errors = Vec::new();
        for p in req.partitions {
            let meta = PartitionMeta {
                replicas: p.replicas,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                isr: p.isr,
                zk_version: p.zk_version,
            };
            // Leadership only: a partition not open here yet, and every topic's config, are the
            // keeper watch's to apply (see `ReplicaManager::apply_partition_state`).
            if let Err(e) = self.replicas.apply_partition_state(&p.topic, p.partition, &meta, None) {
                tracing::error!(topic = %p.topic, partition = p.partition, error = %e, "cannot apply LeaderAndIsr");
                errors.push(PartitionError {
                    topic: p.topic,
                    partition: p.partition,
                    error_code: i32::from(e.kafka_error_code()),
                });
            }
        }
        LeaderAndIsrResponse { error_code: 0, partition_errors: errors }
    }
}

/// Reads every partition once. Returns the response, the record bytes in it, and whether
/// something in it needs the follower's attention at once (an error or a divergence).
fn read_round(
    req: &ReplicaFetchRequest,
    targets: &[Result<Arc<Partition>, i16>],
) -> (ReplicaFetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut urgent = false;
    let budget = req.max_bytes as usize;
    let mut out = Vec::with_capacity(req.partitions.len());
    for (p, target) in req.partitions.iter().zip(targets) {
        let remaining = budget.saturating_sub(total);
        let fetched = read_partition(p, target, remaining, total == 0);
        if fetched.error_code != 0 || fetched.diverging_epoch >= 0 || fetched.diverging_end_offset >= 0 {
            urgent = true;
        }
        total += fetched.records.len();
        out.push(fetched);
    }
    (ReplicaFetchResponse { partitions: out }, total, urgent)
}

fn read_partition(
    req: &FetchPartition,
    target: &Result<Arc<Partition>, i16>,
    budget: usize,
    first: bool,
) -> FetchedPartition {
    let mut out = FetchedPartition {
        topic: req.topic.clone(),
        partition: req.partition,
        error_code: 0,
        high_watermark: -1,
        log_start_offset: -1,
        log_end_offset: -1,
        records: bytes::Bytes::new(),
        diverging_epoch: -1,
        diverging_end_offset: -1,
    };
    let part = match target {
        Ok(p) => p,
        Err(code) => {
            out.error_code = i32::from(*code);
            return out;
        }
    };
    let epoch = part.leader_epoch();
    if !part.is_leader() {
        out.error_code = i32::from(ResponseError::NotLeaderOrFollower.code());
        return out;
    }
    if req.current_leader_epoch != epoch {
        out.error_code = i32::from(if req.current_leader_epoch < epoch {
            ResponseError::FencedLeaderEpoch.code()
        } else {
            ResponseError::UnknownLeaderEpoch.code()
        });
        return out;
    }
    let log = &part.log;
    let leo = log.log_end_offset();
    out.high_watermark = part.high_watermark();
    out.log_start_offset = log.log_start_offset();
    out.log_end_offset = leo;
    // KIP-320: check the follower's last epoch against our history before sending anything.
    if req.last_fetched_epoch >= 0 {
        match log.end_offset_for_epoch(req.last_fetched_epoch) {
            Some((e, end)) if e == req.last_fetched_epoch && end >= req.fetch_offset => {}
            Some((e, end)) => {
                out.diverging_epoch = e;
                out.diverging_end_offset = end;
                return out;
            }
            None => {
                // Their epoch is newer than anything we have (cannot happen once a leader
                // has stamped its own epoch) or we have no history at all.
                match log.latest_epoch() {
                    Some(latest) => {
                        out.diverging_epoch = latest;
                        out.diverging_end_offset = leo;
                    }
                    None => out.diverging_end_offset = log.log_start_offset(),
                }
                return out;
            }
        }
    }
    if req.fetch_offset > leo || req.fetch_offset < log.log_start_offset() {
        out.error_code = i32::from(ResponseError::OffsetOutOfRange.code());
        return out;
    }
    if req.fetch_offset == leo {
        return out;
    }
    let limit = (req.max_bytes as usize).min(budget);
    if limit == 0 && !first {
        return out;
    }
    match log.read(req.fetch_offset, limit.max(1), None) {
        Ok(info) => {
            if info.records.len() <= limit || first {
                out.records = info.records;
            }
        }
        Err(LogError::OffsetOutOfRange { .. }) => out.error_code = i32::from(ResponseError::OffsetOutOfRange.code()),
        Err(e) => {
            tracing::warn!(topic = %part.topic, partition = part.index, error = %e, "replica fetch read failed");
            out.error_code = i32::from(e.kafka_error_code());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_proto::replication::PartitionLeadership;

    use super::*;

    fn service(dir: &std::path::Path) -> (ReplicationService, Arc<ReplicaManager>) {
        let cache = Arc::new(MetadataCache::default());
        // Broker default min.insync.replicas=2, so a topic's override of 1 is visible.
        let replicas = Arc::new(crate::replica::test_manager(dir, 2, cache.clone()));
        let (tx, _rx) = mpsc::unbounded_channel();
        (ReplicationService::new(replicas.clone(), cache, tx), replicas)
    }

    fn leadership(leader: i32, leader_epoch: i32) -> PartitionLeadership {
        PartitionLeadership {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch,
            isr: vec![1, 2],
            replicas: vec![1, 2],
            zk_version: leader_epoch,
        }
    }

    fn meta(l: &PartitionLeadership) -> PartitionMeta {
        PartitionMeta {
            replicas: l.replicas.clone(),
            leader: l.leader,
            leader_epoch: l.leader_epoch,
            isr: l.isr.clone(),
            zk_version: l.zk_version,
        }
    }

    /// What the keeper watch does when it loads topic `t` with `config`.
    fn opened_by_the_watch(replicas: &ReplicaManager, state: &PartitionLeadership, config: &[(&str, &str)]) {
        let config: BTreeMap<String, String> = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        replicas.apply_partition_state("t", 0, &meta(state), Some(&config)).expect("apply");
    }

    fn req(epoch: i32, p: PartitionLeadership) -> LeaderAndIsrRequest {
        LeaderAndIsrRequest { controller_id: 3, controller_epoch: epoch, partitions: vec![p] }
    }

    #[tokio::test]
    async fn leader_and_isr_carries_leadership_and_leaves_config_to_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, replicas) = service(dir.path());
        // A push can arrive before the watch has loaded the topic: it must not open the
        // partition with the broker's defaults.
        assert_eq!(svc.inner.leader_and_isr(req(1, leadership(2, 0))).error_code, 0);
        assert!(replicas.get("t", 0).is_none(), "opened before its config was known");

        opened_by_the_watch(&replicas, &leadership(2, 0), &[("min.insync.replicas", "1")]);
        let p = replicas.get("t", 0).expect("hosted");
        assert_eq!((p.is_leader(), p.min_insync()), (false, 1));
        // A newer leadership from the push applies, and the topic's override stays.
        assert_eq!(svc.inner.leader_and_isr(req(1, leadership(1, 1))).error_code, 0);
        assert_eq!((p.is_leader(), p.leader_epoch(), p.min_insync()), (true, 1, 1));
        replicas.shutdown().unwrap();
    }

    #[tokio::test]
    async fn leader_and_isr_from_a_stale_controller_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, replicas) = service(dir.path());
        opened_by_the_watch(&replicas, &leadership(2, -1), &[]);
        let ok = svc.inner.leader_and_isr(req(5, leadership(1, 0)));
        assert_eq!(ok.error_code, 0);
        let p = replicas.get("t", 0).expect("hosted");
        assert!(p.is_leader());
        assert_eq!(p.leader_epoch(), 0);

        // A controller of an older epoch may not demote us.
        let stale = svc.inner.leader_and_isr(req(4, leadership(2, 1)));
        assert_eq!(stale.error_code, i32::from(ResponseError::StaleControllerEpoch.code()));
        assert!(p.is_leader(), "a stale controller's state must not apply");

        // The current controller may; an older leader epoch from it is ignored.
        assert_eq!(svc.inner.leader_and_isr(req(5, leadership(2, 1))).error_code, 0);
        assert!(!p.is_leader());
        assert_eq!(p.leader_epoch(), 1);
        assert_eq!(svc.inner.leader_and_isr(req(6, leadership(1, 0))).error_code, 0);
        assert_eq!((p.is_leader(), p.leader_epoch()), (false, 1));
        replicas.shutdown().unwrap();
    }
}
