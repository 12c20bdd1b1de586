//! [`GroupMember`]: membership in a consumer group with Kafka's classic protocol — join
//! (answering MEMBER_ID_REQUIRED), the range assignor when elected leader, sync, heartbeats,
//! offset commits checked against the generation, and leaving.
//!
//! The member is driven by its owner's poll loop (no background task): call
//! [`GroupMember::heartbeat_if_due`] at least every heartbeat interval; when it reports a
//! rebalance, commit what was processed and call [`GroupMember::rejoin`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::ClientError;
use crate::group::{decode_assignment, GroupAdmin};

const JOIN_V: i16 = 5;
const SYNC_V: i16 = 3;
const HEARTBEAT_V: i16 = 3;
const LEAVE_V: i16 = 3;
const COMMIT_V: i16 = 8;
const FETCH_V: i16 = 7;
const ASSIGNOR: &str = "range";

/// Group membership settings (Kafka consumer property names in the docs).
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(20),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// A member of one consumer group, subscribed to a fixed list of topics.
pub struct GroupMember {
    admin: GroupAdmin,
    group: String,
    topics: Vec<String>,
    config: MemberConfig,
    member_id: String,
    generation: i32,
    coordinator: Option<Arc<Connection>>,
    assignment: Vec<(String, i32)>,
    next_heartbeat: Instant,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn is(code: i16, e: ResponseError) -> bool {
    code == e.code()
}

/// Errors after which finding the coordinator again and retrying can succeed.
fn coordinator_moved(code: i16) -> bool {
    is(code, ResponseError::CoordinatorLoadInProgress)
        || is(code, ResponseError::CoordinatorNotAvailable)
        || is(code, ResponseError::NotCoordinator)
}

/// Errors that mean "rejoin": the group moved on without this member's generation.
fn needs_rejoin(code: i16) -> bool {
    is(code, ResponseError::RebalanceInProgress)
        || is(code, ResponseError::IllegalGeneration)
        || is(code, ResponseError::UnknownMemberId)
}

impl GroupMember {
    /// Joins `group` subscribed to `topics`; returns once this member has its assignment.
    pub async fn join(
        admin: GroupAdmin,
        group: &str,
        topics: &[&str],
        config: MemberConfig,
    ) -> Result<GroupMember, ClientError> {
        let mut member = GroupMember {
            admin,
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            config,
            member_id: String::new(),
            generation: -1,
            coordinator: None,
            assignment: Vec::new(),
            next_heartbeat: Instant::now(),
        };
        member.rejoin().await?;
        Ok(member)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The partitions assigned in the current generation.
    pub fn assignment(&self) -> &[(String, i32)] {
        &self.assignment
    }

    async fn coordinator(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = self.coordinator.as_ref().filter(|c| c.is_usable()) {
            return Ok(c.clone());
        }
        let conn = self.admin.coordinator(&self.group).await?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }

    /// Runs join and sync rounds until this member has an assignment (bounded by the
    /// rebalance timeout plus the request timeout).
    pub async fn rejoin(&mut self) -> Result<(), ClientError> {
        let backoff = self.admin.client().config().retry_backoff;
        let deadline = Instant::now() + self.config.rebalance_timeout + self.admin.client().config().request_timeout;
        let group = self.group.clone();
        let context = || format!("joining group '{group}'");
        loop {
            if Instant::now() > deadline {
                return Err(ClientError::kafka(ResponseError::RebalanceInProgress.code(), context(), None));
            }
            let conn = match self.coordinator().await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let join = JoinGroupRequest::default()
                .with_group_id(sb(&self.group).into())
                .with_session_timeout_ms(self.config.session_timeout.as_millis() as i32)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout.as_millis() as i32)
                .with_member_id(sb(&self.member_id))
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(sb(ASSIGNOR))
                    .with_metadata(encode_subscription(&self.topics))]);
            let joined = match conn.send_versioned(&join, JOIN_V).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.coordinator = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let code = joined.error_code;
            if is(code, ResponseError::MemberIdRequired) {
                self.member_id = joined.member_id.to_string();
                continue;
            }
            if is(code, ResponseError::UnknownMemberId) {
                self.member_id.clear();
                continue;
            }
            if coordinator_moved(code) || is(code, ResponseError::RebalanceInProgress) {
                self.coordinator = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
            if code != 0 {
                return Err(ClientError::kafka(code, context(), None));
            }
            self.member_id = joined.member_id.to_string();
            self.generation = joined.generation_id;
            let assignments = if joined.leader == joined.member_id {
                let members: Vec<(String, Bytes)> =
                    joined.members.iter().map(|m| (m.member_id.to_string(), m.metadata.clone())).collect();
                self.assign(&members).await?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(sb(&self.group).into())
                .with_generation_id(self.generation)
                .with_member_id(sb(&self.member_id))
                .with_assignments(
                    assignments
                        .into_iter()
                        .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(sb(&m)).with_assignment(a))
                        .collect(),
                );
            let synced = match conn.send_versioned(&sync, SYNC_V).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.coordinator = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if needs_rejoin(synced.error_code) || coordinator_moved(synced.error_code) {
                if is(synced.error_code, ResponseError::UnknownMemberId) {
                    self.member_id.clear();
                }
                continue;
            }
            if synced.error_code != 0 {
                return Err(ClientError::kafka(synced.error_code, context(), None));
            }
            let decoded = decode_assignment(synced.assignment)
                .ok_or_else(|| ClientError::protocol("SyncGroup", "undecodable consumer assignment"))?;
            self.assignment =
                decoded.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect();
            self.assignment.sort();
            self.next_heartbeat = Instant::now() + self.config.heartbeat_interval;
            tracing::info!(group = %self.group, generation = self.generation, partitions = self.assignment.len(), "joined group");
            return Ok(());
        }
    }

    /// The range assignor: per topic, members (by id) get consecutive partition ranges.
    async fn assign(&self, members: &[(String, Bytes)]) -> Result<Vec<(String, Bytes)>, ClientError> {
        let mut subscribers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (id, metadata) in members {
            for topic in decode_subscription(metadata).unwrap_or_default() {
                subscribers.entry(topic).or_default().push(id);
            }
        }
        let mut plan: HashMap<&str, Vec<(String, Vec<i32>)>> =
            members.iter().map(|(id, _)| (id.as_str(), Vec::new())).collect();
        for (topic, mut ids) in subscribers {
            let partitions = match self.admin.client().topic(&topic).await {
                Ok(t) => t.partitions.iter().map(|p| p.partition).collect::<Vec<i32>>(),
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "no metadata for a subscribed topic; not assigned");
                    continue;
                }
            };
            ids.sort_unstable();
            let (per, extra) = (partitions.len() / ids.len(), partitions.len() % ids.len());
            let mut next = 0;
            for (i, id) in ids.iter().enumerate() {
                let n = per + usize::from(i < extra);
                let mine: Vec<i32> = partitions[next..next + n].to_vec();
                next += n;
                if let Some(v) = plan.get_mut(id) {
                    v.push((topic.clone(), mine));
                }
            }
        }
        Ok(plan.into_iter().map(|(id, topics)| (id.to_string(), encode_assignment(&topics))).collect())
    }

    /// Sends a heartbeat when one is due; `Ok(true)` means the group is rebalancing and
    /// this member must [`rejoin`](Self::rejoin).
    pub async fn heartbeat_if_due(&mut self) -> Result<bool, ClientError> {
        if Instant::now() < self.next_heartbeat {
            return Ok(false);
        }
        self.next_heartbeat = Instant::now() + self.config.heartbeat_interval;
        let req = HeartbeatRequest::default()
            .with_group_id(sb(&self.group).into())
            .with_generation_id(self.generation)
            .with_member_id(sb(&self.member_id));
        let conn = self.coordinator().await?;
        let code = match conn.send_versioned(&req, HEARTBEAT_V).await {
            Ok(r) => r.error_code,
            Err(e) if e.is_retriable() => {
                self.coordinator = None;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if coordinator_moved(code) {
            self.coordinator = None;
            return Ok(false);
        }
        if needs_rejoin(code) {
            return Ok(true);
        }
        if code != 0 {
            return Err(ClientError::kafka(code, format!("heartbeat in group '{}'", self.group), None));
        }
        Ok(false)
    }

    /// Committed offsets of the assigned partitions (absent when none is committed).
    pub async fn committed(&mut self) -> Result<HashMap<(String, i32), i64>, ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.assignment {
            by_topic.entry(t).or_default().push(*p);
        }
        let req = OffsetFetchRequest::default().with_group_id(sb(&self.group).into()).with_topics(Some(
            by_topic
                .into_iter()
                .map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(sb(t).into()).with_partition_indexes(ps))
                .collect(),
        ));
        let conn = self.coordinator().await?;
        let resp = conn.send_versioned(&req, FETCH_V).await?;
        if resp.error_code != 0 {
            return Err(ClientError::kafka(resp.error_code, format!("offsets of group '{}'", self.group), None));
        }
        let mut out = HashMap::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` (next offset to read, per partition) for the current generation;
    /// `Ok(false)` if the group rebalanced and the commit was refused.
    pub async fn commit(&mut self, offsets: &HashMap<(String, i32), i64>) -> Result<bool, ClientError> {
        if offsets.is_empty() {
            return Ok(true);
        }
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(sb(""))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(sb(&self.group).into())
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(sb(&self.member_id))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(sb(t).into()).with_partitions(ps))
                    .collect(),
            );
        let conn = self.coordinator().await?;
        let resp = conn.send_versioned(&req, COMMIT_V).await?;
        for t in resp.topics {
            for p in t.partitions {
                if needs_rejoin(p.error_code) {
                    return Ok(false);
                }
                if p.error_code != 0 {
                    return Err(ClientError::kafka(
                        p.error_code,
                        format!("commit of {}-{} in group '{}'", t.name.as_str(), p.partition_index, self.group),
                        None,
                    ));
                }
            }
        }
        Ok(true)
    }

    /// Leaves the group so the others rebalance at once instead of after the session timeout.
    pub async fn leave(mut self) -> Result<(), ClientError> {
        let req = LeaveGroupRequest::default()
            .with_group_id(sb(&self.group).into())
            .with_members(vec![MemberIdentity::default().with_member_id(sb(&self.member_id))]);
        let conn = self.coordinator().await?;
        let resp = conn.send_versioned(&req, LEAVE_V).await?;
        if resp.error_code != 0 && !is(resp.error_code, ResponseError::UnknownMemberId) {
            return Err(ClientError::kafka(resp.error_code, format!("leaving group '{}'", self.group), None));
        }
        Ok(())
    }
}

/// `ConsumerProtocolSubscription` v0: the topics, no user data.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

/// The topics of a `ConsumerProtocolSubscription` (any version).
pub fn decode_subscription(b: &Bytes) -> Option<Vec<String>> {
    // A subscription starts like an assignment without partition arrays; reuse the reader
    // shape: version, then topic strings.
    let mut at = 2usize;
    let count = i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
    at += 4;
    let mut out = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        let len = usize::try_from(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?)).ok()?;
        at += 2;
        out.push(String::from_utf8(b.get(at..at + len)?.to_vec()).ok()?);
        at += len;
    }
    Some(out)
}

/// `ConsumerProtocolAssignment` v0: topic partitions, no user data.
pub fn encode_assignment(topics: &[(String, Vec<i32>)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_protocol_round_trips() {
        let topics = vec!["a".to_string(), "bb".to_string()];
        assert_eq!(decode_subscription(&encode_subscription(&topics)), Some(topics));
        let asg = vec![("a".to_string(), vec![0, 2])];
        assert_eq!(decode_assignment(encode_assignment(&asg)), Some(asg));
        assert_eq!(decode_subscription(&Bytes::from_static(&[0, 0, 0, 0, 0, 1])), None);
    }
}
