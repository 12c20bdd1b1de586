//! The record schemas of `__consumer_offsets`, byte-compatible with Kafka's
//! (`OffsetCommitKey`/`OffsetCommitValue`, `GroupMetadataKey`/`GroupMetadataValue`), so a
//! partition written by Strom reads like one written by Kafka and vice versa.
//!
//! Keys carry a version that says what they are: 0 and 1 are offset commits, 2 is group
//! metadata. A null value is a tombstone that deletes what the key names.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A key or value that does not follow the schema.
#[derive(Debug, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct SchemaError(String);

/// What a record's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

/// A committed offset as stored in an `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the committer did not know the leader epoch.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member as stored in a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            RecordKey::Offset { group, topic, partition } => {
                b.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                b.put_i16(GROUP_KEY_VERSION);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    /// Decodes a key; `Ok(None)` for key versions this broker does not know (Kafka's newer
    /// record types, e.g. KIP-848 consumer-group records), which are skipped.
    pub fn decode(mut b: Bytes) -> Result<Option<RecordKey>, SchemaError> {
        let version = get_i16(&mut b, "key version")?;
        match version {
            0 | 1 => {
                let group = get_str(&mut b, "group")?;
                let topic = get_str(&mut b, "topic")?;
                let partition = get_i32(&mut b, "partition")?;
                Ok(Some(RecordKey::Offset { group, topic, partition }))
            }
            2 => Ok(Some(RecordKey::Group { group: get_str(&mut b, "group")? })),
            _ => Ok(None),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + self.metadata.len());
        b.put_i16(OFFSET_VALUE_VERSION);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b.freeze()
    }

    /// Decodes value versions 0 to 3 (later ones are flexible versions of v3's fields).
    pub fn decode(mut b: Bytes) -> Result<OffsetValue, SchemaError> {
        let version = get_i16(&mut b, "offset value version")?;
        let offset = get_i64(&mut b, "offset")?;
        let leader_epoch = if version >= 3 { get_i32(&mut b, "leader epoch")? } else { -1 };
        if version > 3 {
            return Err(SchemaError(format!("offset value version {version} is not supported")));
        }
        let metadata = get_str(&mut b, "metadata")?;
        let commit_timestamp = get_i64(&mut b, "commit timestamp")?;
        Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(GROUP_VALUE_VERSION);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_opt_str(&mut b, self.protocol.as_deref());
        put_opt_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_opt_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    /// Decodes value versions 0 to 3.
    pub fn decode(mut b: Bytes) -> Result<GroupValue, SchemaError> {
        let version = get_i16(&mut b, "group value version")?;
        if !(0..=3).contains(&version) {
            return Err(SchemaError(format!("group value version {version} is not supported")));
        }
        let protocol_type = get_str(&mut b, "protocol type")?;
        let generation = get_i32(&mut b, "generation")?;
        let protocol = get_opt_str(&mut b, "protocol")?;
        let leader = get_opt_str(&mut b, "leader")?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut b, "state timestamp")? } else { -1 };
        let count = get_i32(&mut b, "member count")?;
        let mut members = Vec::with_capacity(count.clamp(0, 1024) as usize);
        for _ in 0..count.max(0) {
            let member_id = get_str(&mut b, "member id")?;
            let group_instance_id = if version >= 3 { get_opt_str(&mut b, "group instance id")? } else { None };
            let client_id = get_str(&mut b, "client id")?;
            let client_host = get_str(&mut b, "client host")?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b, "rebalance timeout")? } else { -1 };
            let session_timeout_ms = get_i32(&mut b, "session timeout")?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms };
            let subscription = get_bytes(&mut b, "subscription")?;
            let assignment = get_bytes(&mut b, "assignment")?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
    }
}

/// The topics a consumer-protocol subscription names (`ConsumerProtocolSubscription`, any
/// version: they all start with the version and the topic array). `None` if unreadable.
pub fn subscribed_topics(mut subscription: Bytes) -> Option<Vec<String>> {
    let _version = get_i16(&mut subscription, "subscription version").ok()?;
    let count = get_i32(&mut subscription, "topic count").ok()?;
    let mut topics = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        topics.push(get_str(&mut subscription, "topic").ok()?);
    }
    Some(topics)
}

/// The partitions a consumer-protocol assignment (`ConsumerProtocolAssignment`) hands out.
pub fn assigned_partitions(mut assignment: Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let _version = get_i16(&mut assignment, "assignment version").ok()?;
    let count = get_i32(&mut assignment, "topic count").ok()?;
    let mut out = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        let topic = get_str(&mut assignment, "topic").ok()?;
        let n = get_i32(&mut assignment, "partition count").ok()?;
        let mut parts = Vec::with_capacity(n.clamp(0, 4096) as usize);
        for _ in 0..n.max(0) {
            parts.push(get_i32(&mut assignment, "partition").ok()?);
        }
        out.push((topic, parts));
    }
    Some(out)
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn need(b: &Bytes, n: usize, what: &str) -> Result<(), SchemaError> {
    if b.remaining() < n {
        return Err(SchemaError(format!("truncated at {what}")));
    }
    Ok(())
}

fn get_i16(b: &mut Bytes, what: &str) -> Result<i16, SchemaError> {
    need(b, 2, what)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes, what: &str) -> Result<i32, SchemaError> {
    need(b, 4, what)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes, what: &str) -> Result<i64, SchemaError> {
    need(b, 8, what)?;
    Ok(b.get_i64())
}

fn get_opt_str(b: &mut Bytes, what: &str) -> Result<Option<String>, SchemaError> {
    let len = get_i16(b, what)?;
    if len < 0 {
        return Ok(None);
    }
    need(b, len as usize, what)?;
    let raw = b.split_to(len as usize);
    String::from_utf8(raw.to_vec()).map(Some).map_err(|_| SchemaError(format!("{what} is not UTF-8")))
}

fn get_str(b: &mut Bytes, what: &str) -> Result<String, SchemaError> {
    get_opt_str(b, what)?.ok_or_else(|| SchemaError(format!("{what} is null")))
}

fn get_bytes(b: &mut Bytes, what: &str) -> Result<Bytes, SchemaError> {
    let len = get_i32(b, what)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(b, len as usize, what)?;
    Ok(b.split_to(len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_versions_are_skipped() {
        let k = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 };
        assert_eq!(RecordKey::decode(k.encode()).unwrap(), Some(k));
        let g = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(g.encode()).unwrap(), Some(g));
        assert_eq!(RecordKey::decode(Bytes::from_static(&[0, 9, 0, 1, b'x'])).unwrap(), None);
        assert!(RecordKey::decode(Bytes::from_static(&[0, 1, 0, 5, b'x'])).is_err());
    }

    #[test]
    fn values_round_trip() {
        let v = OffsetValue { offset: 42, leader_epoch: 7, metadata: "m".into(), commit_timestamp: 9 };
        assert_eq!(OffsetValue::decode(v.encode()).unwrap(), v);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            current_state_timestamp: 5,
            members: vec![MemberValue {
                member_id: "a".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 100,
                session_timeout_ms: 10,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
    }

    #[test]
    fn kafka_v1_offset_value_decodes() {
        // Version 1: offset, metadata, commit timestamp, expire timestamp.
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(10);
        put_str(&mut b, "");
        b.put_i64(1);
        b.put_i64(2);
        let v = OffsetValue::decode(b.freeze()).unwrap();
        assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (10, -1, 1));
    }

    #[test]
    fn consumer_protocol_payloads() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(1);
        put_str(&mut b, "numtest");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(3);
        b.put_i32(-1);
        let bytes = b.freeze();
        assert_eq!(subscribed_topics(bytes.clone()), Some(vec!["numtest".to_string()]));
        assert_eq!(assigned_partitions(bytes), Some(vec![("numtest".to_string(), vec![0, 3])]));
        assert_eq!(subscribed_topics(Bytes::from_static(&[0])), None);
    }
}
