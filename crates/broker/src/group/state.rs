//! One consumer group's membership state machine (Kafka's classic rebalance protocol) and
//! its committed offsets.
//!
//! States follow Kafka's `GroupState`: `Empty` → `PreparingRebalance` (waiting for every
//! member to rejoin) → `CompletingRebalance` (waiting for the leader's assignment) →
//! `Stable`. The broker never looks inside protocol metadata or assignments: the leader runs
//! the assignor client-side, the coordinator relays. Join and sync requests that must wait
//! park a `oneshot` sender on their member; whatever completes the phase answers them all.
//! Deadlines (session timeouts, the rebalance timeout) are kept here and enforced by
//! [`Group::expire`], which the group's timer task calls.

use std::collections::HashMap;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::records::{GroupValue, MemberValue, OffsetValue};

/// Kafka's group states, named as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup request is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member's id, instance id and metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(code: i16, member_id: &str) -> JoinResult {
        JoinResult { error: code, generation: -1, member_id: member_id.to_string(), ..JoinResult::default() }
    }
}

/// What a SyncGroup request is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(code: i16) -> SyncResult {
        SyncResult { error: code, ..SyncResult::default() }
    }
}

/// An answer now, or a receiver that gets it when the rebalance phase completes.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// A JoinGroup request's inputs.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets an id with MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

/// A SyncGroup request's inputs.
#[derive(Debug, Clone)]
pub struct SyncArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One group member.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    heartbeat_deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols.as_slice() == protocols
    }
}

/// Something that must be written to the group's offsets partition before a phase completes.
pub trait Journal {
    /// Appends the group's current metadata record; the error is a Kafka error code.
    fn store_group(&self, group: &Group) -> Result<(), i16>;
}

/// A consumer group with its committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// In join order, which is the order the leader sees them in.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin.
    pending: HashMap<String, Instant>,
    /// `group.instance.id` → member id, for static members.
    static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), OffsetValue>,
    rebalance_deadline: Option<Instant>,
    pub state_timestamp: i64,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", crate::cluster::znodes::random_uuid())
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            rebalance_deadline: None,
            state_timestamp: crate::handlers::now_ms(),
        }
    }

    /// Restores a group from its stored metadata; members get a fresh session to reconnect.
    pub fn restore(&mut self, value: GroupValue, now: Instant) {
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.generation = value.generation;
        self.protocol = value.protocol;
        self.leader = value.leader;
        self.state_timestamp = value.current_state_timestamp;
        self.members.clear();
        self.static_members.clear();
        for m in value.members {
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(inst) = &m.group_instance_id {
                self.static_members.insert(inst.clone(), m.member_id.clone());
            }
            let protocol = self.protocol.clone().unwrap_or_default();
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: self.protocol_type.clone().unwrap_or_default(),
                    protocols: vec![(protocol, m.subscription)],
                    assignment: m.assignment,
                    heartbeat_deadline: now + session,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        if self.leader.as_ref().is_some_and(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Forgets the membership (a group tombstone); offsets stay.
    pub fn clear_membership(&mut self) {
        self.fail_waiters(code(ResponseError::NotCoordinator));
        self.members.clear();
        self.static_members.clear();
        self.pending.clear();
        self.protocol = None;
        self.protocol_type = None;
        self.leader = None;
        self.state = GroupState::Empty;
    }

    /// The stored form of the membership.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Nothing left to keep: no members, no pending joins, no offsets.
    pub fn is_dead(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.offsets.is_empty()
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp = crate::handlers::now_ms();
    }

    /// Whether a joining member's protocols fit the group.
    fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    /// Handles a JoinGroup request.
    pub fn join(&mut self, args: JoinArgs, now: Instant, journal: &dyn Journal) -> Reply<JoinResult> {
        if args.protocol_type.is_empty()
            || args.protocols.is_empty()
            || !self.accepts(&args.protocol_type, &args.protocols)
        {
            return Reply::Now(JoinResult::error(code(ResponseError::InconsistentGroupProtocol), &args.member_id));
        }
        if args.member_id.is_empty() {
            return self.join_new(args, now, journal);
        }
        if self.pending.remove(&args.member_id).is_some() {
            let id = args.member_id.clone();
            return self.add_member(id, args, now, journal);
        }
        if let Some(inst) = &args.group_instance_id {
            match self.static_members.get(inst) {
                Some(owner) if *owner != args.member_id => {
                    return Reply::Now(JoinResult::error(code(ResponseError::FencedInstanceId), &args.member_id))
                }
                _ => {}
            }
        }
        if !self.members.contains_key(&args.member_id) {
            return Reply::Now(JoinResult::error(code(ResponseError::UnknownMemberId), &args.member_id));
        }
        let id = args.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let unchanged = self.members.get(&id).is_some_and(|m| m.same_protocols(&args.protocols));
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(code(ResponseError::UnknownMemberId), &id))
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(self.state == GroupState::Stable && is_leader) =>
            {
                // A duplicate join of the current generation: answer with it, no rebalance.
                if let Some(m) = self.members.get_mut(&id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                }
                Reply::Now(self.current_generation_for(&id, false))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&id) {
                    m.protocols = args.protocols;
                    m.session_timeout = args.session_timeout;
                    m.rebalance_timeout = args.rebalance_timeout;
                    m.client_id = args.client_id;
                    m.client_host = args.client_host;
                    m.heartbeat_deadline = now + m.session_timeout;
                    m.join_waiter = Some(tx);
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now);
                }
                self.try_complete_join(now, journal);
                Reply::Wait(rx)
            }
        }
    }

    fn join_new(&mut self, args: JoinArgs, now: Instant, journal: &dyn Journal) -> Reply<JoinResult> {
        if let Some(inst) = args.group_instance_id.clone() {
            let new_id = new_member_id(&inst);
            if let Some(old_id) = self.static_members.get(&inst).cloned() {
                return self.replace_static(&old_id, new_id, args, now, journal);
            }
            return self.add_member(new_id, args, now, journal);
        }
        let client = if args.client_id.is_empty() { "member" } else { args.client_id.as_str() };
        let new_id = new_member_id(client);
        if args.require_known_member_id {
            self.pending.insert(new_id.clone(), now + args.session_timeout);
            return Reply::Now(JoinResult::error(code(ResponseError::MemberIdRequired), &new_id));
        }
        self.add_member(new_id, args, now, journal)
    }

    fn add_member(&mut self, id: String, args: JoinArgs, now: Instant, journal: &dyn Journal) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(inst) = &args.group_instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                group_instance_id: args.group_instance_id,
                client_id: args.client_id,
                client_host: args.client_host,
                session_timeout: args.session_timeout,
                rebalance_timeout: args.rebalance_timeout,
                protocol_type: args.protocol_type,
                protocols: args.protocols,
                assignment: Bytes::new(),
                heartbeat_deadline: now + args.session_timeout,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(id);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now, journal);
        Reply::Wait(rx)
    }

    /// KIP-345: a static member rejoining under a new member id takes over the old one's
    /// place (and assignment); the old id is fenced. A stable group does not rebalance unless
    /// the member's protocols changed.
    fn replace_static(
        &mut self,
        old_id: &str,
        new_id: String,
        args: JoinArgs,
        now: Instant,
        journal: &dyn Journal,
    ) -> Reply<JoinResult> {
        let Some(mut member) = self.members.shift_remove(old_id) else {
            self.static_members.remove(args.group_instance_id.as_deref().unwrap_or_default());
            return self.add_member(new_id, args, now, journal);
        };
        let fenced = code(ResponseError::FencedInstanceId);
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(fenced, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(fenced));
        }
        let unchanged = member.same_protocols(&args.protocols);
        member.id = new_id.clone();
        member.client_id = args.client_id.clone();
        member.client_host = args.client_host.clone();
        member.session_timeout = args.session_timeout;
        member.rebalance_timeout = args.rebalance_timeout;
        member.heartbeat_deadline = now + args.session_timeout;
        if let Some(inst) = &args.group_instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && unchanged {
            self.members.insert(new_id.clone(), member);
            if let Err(e) = journal.store_group(self) {
                return Reply::Now(JoinResult::error(e, &new_id));
            }
            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
            return Reply::Now(self.current_generation_for(&new_id, is_leader));
        }
        let (tx, rx) = oneshot::channel();
        member.protocols = args.protocols;
        member.join_waiter = Some(tx);
        self.members.insert(new_id, member);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now, journal);
        Reply::Wait(rx)
    }

    /// The current generation as seen by `member_id`; the leader gets the member list
    /// (`skip_assignment` when it only needs it to keep tracking metadata, KIP-814).
    fn current_generation_for(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader { self.member_list() } else { Vec::new() },
            skip_assignment: skip_assignment && is_leader,
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().map(|m| (m.id.clone(), m.group_instance_id.clone(), m.metadata(&protocol))).collect()
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            let rebalancing = code(ResponseError::RebalanceInProgress);
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(rebalancing));
                }
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.set_state(GroupState::PreparingRebalance);
        tracing::debug!(group = %self.id, members = self.members.len(), "preparing rebalance");
    }

    fn try_complete_join(&mut self, now: Instant, journal: &dyn Journal) {
        if self.state == GroupState::PreparingRebalance
            && self.pending.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
        {
            self.complete_join(now, journal);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation bumps,
    /// a protocol is chosen and every waiting member is answered.
    fn complete_join(&mut self, now: Instant, journal: &dyn Journal) {
        let missing: Vec<String> =
            self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removed");
            self.drop_member(&id, code(ResponseError::UnknownMemberId));
        }
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            if let Err(e) = journal.store_group(self) {
                tracing::warn!(group = %self.id, error = e, "storing empty group failed");
            }
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance);
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "rebalance: join phase complete"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.current_generation_for(&id, false);
            if let Some(m) = self.members.get_mut(&id) {
                m.heartbeat_deadline = now + m.session_timeout;
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(result);
                }
            }
        }
    }

    /// Kafka's vote: among protocols every member supports, each member votes for the first
    /// one in its own preference order; most votes wins (ties go to the earlier candidate).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m.protocols.iter().find_map(|(n, _)| candidates.iter().position(|c| *c == n.as_str())) {
                votes[i] += 1;
            }
        }
        let best = votes.iter().enumerate().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?.0;
        candidates.get(best).map(|s| s.to_string())
    }

    /// Checks a member's identity; the error for an unknown or fenced member.
    fn check_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), i16> {
        if let Some(inst) = instance {
            if let Some(owner) = self.static_members.get(inst) {
                if owner != member_id {
                    return Err(code(ResponseError::FencedInstanceId));
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(code(ResponseError::UnknownMemberId));
        }
        Ok(())
    }

    /// Handles a SyncGroup request.
    pub fn sync(&mut self, args: SyncArgs, now: Instant, journal: &dyn Journal) -> Reply<SyncResult> {
        if let Err(e) = self.check_member(&args.member_id, args.group_instance_id.as_deref()) {
            return Reply::Now(SyncResult::error(e));
        }
        if args.generation != self.generation {
            return Reply::Now(SyncResult::error(code(ResponseError::IllegalGeneration)));
        }
        if args.protocol_type.as_ref().is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || args.protocol_name.as_ref().is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return Reply::Now(SyncResult::error(code(ResponseError::InconsistentGroupProtocol)));
        }
        match self.state {
            GroupState::PreparingRebalance => Reply::Now(SyncResult::error(code(ResponseError::RebalanceInProgress))),
            GroupState::Stable => {
                let assignment = self.members.get(&args.member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                if let Some(m) = self.members.get_mut(&args.member_id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                }
                Reply::Now(self.sync_ok(assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&args.member_id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                    m.sync_waiter = Some(tx);
                }
                if self.leader.as_deref() == Some(args.member_id.as_str()) {
                    self.complete_sync(args.assignments, now, journal);
                }
                Reply::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => Reply::Now(SyncResult::error(code(ResponseError::UnknownMemberId))),
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// The leader's assignment arrived: store it, then answer every waiting member.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now: Instant, journal: &dyn Journal) {
        let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = given.remove(&m.id).unwrap_or_default();
        }
        if let Err(e) = journal.store_group(self) {
            tracing::warn!(group = %self.id, error = e, "storing group assignment failed; rebalancing");
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(e));
                }
            }
            self.prepare_rebalance(now);
            return;
        }
        self.set_state(GroupState::Stable);
        tracing::info!(group = %self.id, generation = self.generation, "rebalance complete; group stable");
        let ok = self.sync_ok(Bytes::new());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult { assignment: m.assignment.clone(), ..ok.clone() });
            }
        }
    }

    /// Handles a Heartbeat request.
    pub fn heartbeat(&mut self, member_id: &str, instance: Option<&str>, generation: i32, now: Instant) -> i16 {
        if let Err(e) = self.check_member(member_id, instance) {
            return e;
        }
        if generation != self.generation {
            return code(ResponseError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            GroupState::Stable | GroupState::CompletingRebalance => 0,
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
        }
    }

    /// Handles one member of a LeaveGroup request.
    pub fn leave(&mut self, member_id: &str, instance: Option<&str>, now: Instant, journal: &dyn Journal) -> i16 {
        let target = match instance {
            Some(inst) => match self.static_members.get(inst) {
                None => return code(ResponseError::UnknownMemberId),
                Some(owner) if !member_id.is_empty() && owner != member_id => {
                    return code(ResponseError::FencedInstanceId)
                }
                Some(owner) => owner.clone(),
            },
            None => {
                if self.pending.remove(member_id).is_some() {
                    self.try_complete_join(now, journal);
                    return 0;
                }
                if !self.members.contains_key(member_id) {
                    return code(ResponseError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        tracing::info!(group = %self.id, member = %target, "member left");
        self.remove_member(&target, now, journal);
        0
    }

    /// Removes a member and answers its parked requests with `error`.
    fn drop_member(&mut self, id: &str, error: i16) {
        let Some(mut m) = self.members.shift_remove(id) else { return };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult::error(error, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult::error(error));
        }
        if let Some(inst) = &m.group_instance_id {
            if self.static_members.get(inst).is_some_and(|o| o == id) {
                self.static_members.remove(inst);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// A member leaves (or its session expired): the rest rebalance.
    fn remove_member(&mut self, id: &str, now: Instant, journal: &dyn Journal) {
        self.drop_member(id, code(ResponseError::UnknownMemberId));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.try_complete_join(now, journal);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, journal),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Validates an offset commit's member fields (Kafka's `validateOffsetCommit`).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), i16> {
        if generation < 0 && member_id.is_empty() && instance.is_none() {
            // A simple consumer (or an admin tool) committing outside any membership.
            return if self.members.is_empty() { Ok(()) } else { Err(code(ResponseError::UnknownMemberId)) };
        }
        self.check_member(member_id, instance)?;
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        Ok(())
    }

    /// The earliest instant something in this group times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter(|m| !self.keeps_alive(m)).map(|m| m.heartbeat_deadline);
        let pending = self.pending.values().copied();
        members.chain(pending).chain(self.rebalance_deadline).min()
    }

    /// Members parked in a join or sync are not expected to heartbeat (Kafka's
    /// `shouldKeepAlive`).
    fn keeps_alive(&self, m: &Member) -> bool {
        m.join_waiter.is_some() || m.sync_waiter.is_some()
    }

    /// Enforces deadlines: expired sessions and pending joins are removed, an overdue
    /// rebalance completes with whoever rejoined.
    pub fn expire(&mut self, now: Instant, journal: &dyn Journal) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !self.keeps_alive(m) && m.heartbeat_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, now, journal);
        }
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != before {
            self.try_complete_join(now, journal);
        }
        if self.state == GroupState::PreparingRebalance && self.rebalance_deadline.is_some_and(|d| d <= now) {
            self.complete_join(now, journal);
        }
    }

    /// Answers every parked request with `error` (the coordinator is going away).
    pub fn fail_waiters(&mut self, error: i16) {
        for m in self.members.values_mut() {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(error, &m.id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(error));
            }
        }
    }

    /// Whether any member is subscribed to `topic` (consumer protocol only).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        if self.protocol_type.as_deref() != Some("consumer") {
            return false;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members.values().any(|m| {
            super::records::subscribed_topics(m.metadata(&protocol))
                .is_none_or(|topics| topics.iter().any(|t| t == topic))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    struct Recorder(Cell<usize>);

    impl Journal for Recorder {
        fn store_group(&self, _group: &Group) -> Result<(), i16> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
    }

    fn args(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinArgs {
        JoinArgs {
            member_id: member.into(),
            group_instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(p.to_string()))).collect(),
            require_known_member_id: true,
        }
    }

    fn now_answer<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(t) => t,
            Reply::Wait(mut rx) => rx.try_recv().expect("answered"),
        }
    }

    #[tokio::test]
    async fn two_members_join_sync_and_the_protocol_vote() {
        let j = Recorder(Cell::new(0));
        let now = Instant::now();
        let mut g = Group::new("g");
        let first = now_answer(g.join(args("", None, &["range"]), now, &j));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let a = now_answer(g.join(args(&first.member_id, None, &["roundrobin", "range"]), now, &j));
        assert_eq!((a.error, a.generation, a.leader.clone()), (0, 1, a.member_id.clone()));
        assert_eq!(a.protocol_name.as_deref(), Some("roundrobin"));
        let b_id = now_answer(g.join(args("", None, &["range", "roundrobin"]), now, &j)).member_id;
        let Reply::Wait(mut b_rx) = g.join(args(&b_id, None, &["range", "roundrobin"]), now, &j) else {
            panic!("b waits for the leader")
        };
        assert!(b_rx.try_recv().is_err());
        // The old leader rejoins: both answered with generation 2.
        let Reply::Wait(mut a_rx) = g.join(args(&a.member_id, None, &["roundrobin", "range"]), now, &j) else {
            panic!("rejoin waits")
        };
        let a2 = a_rx.try_recv().unwrap();
        let b2 = b_rx.try_recv().unwrap();
        assert_eq!((a2.generation, b2.generation), (2, 2));
        assert_eq!(a2.members.len(), 2);
        assert!(b2.members.is_empty());
        assert_eq!(g.heartbeat(&b_id, None, 1, now), ResponseError::IllegalGeneration.code());
        assert_eq!(g.heartbeat("nobody", None, 2, now), ResponseError::UnknownMemberId.code());
        let sync = |m: &str, asg: Vec<(String, Bytes)>| SyncArgs {
            member_id: m.into(),
            group_instance_id: None,
            generation: 2,
            protocol_type: None,
            protocol_name: None,
            assignments: asg,
        };
        let Reply::Wait(mut b_sync) = g.sync(sync(&b_id, vec![]), now, &j) else { panic!("follower waits") };
        let leader_sync = now_answer(g.sync(
            sync(
                &a.member_id,
                vec![(b_id.clone(), Bytes::from_static(b"B")), (a.member_id.clone(), Bytes::from_static(b"A"))],
            ),
            now,
            &j,
        ));
        assert_eq!(leader_sync.assignment, Bytes::from_static(b"A"));
        assert_eq!(b_sync.try_recv().unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(g.state, GroupState::Stable);
        assert!(j.0.get() >= 1);
        // Session expiry of b rebalances a alone.
        let later = now + Duration::from_secs(11);
        assert_eq!(g.heartbeat(&a.member_id, None, 2, later - Duration::from_secs(2)), 0);
        g.expire(later, &j);
        assert!(!g.members.contains_key(&b_id));
        assert_eq!(g.state, GroupState::PreparingRebalance);
    }

    #[tokio::test]
    async fn static_member_replaces_its_old_id_without_rebalance() {
        let j = Recorder(Cell::new(0));
        let now = Instant::now();
        let mut g = Group::new("g");
        let a = now_answer(g.join(args("", Some("i1"), &["range"]), now, &j));
        assert_eq!(a.error, 0);
        let s = SyncArgs {
            member_id: a.member_id.clone(),
            group_instance_id: Some("i1".into()),
            generation: a.generation,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![(a.member_id.clone(), Bytes::from_static(b"A"))],
        };
        assert_eq!(now_answer(g.sync(s, now, &j)).error, 0);
        let again = now_answer(g.join(args("", Some("i1"), &["range"]), now, &j));
        assert_eq!((again.error, again.generation), (0, a.generation));
        assert_ne!(again.member_id, a.member_id);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&a.member_id, Some("i1"), a.generation, now), ResponseError::FencedInstanceId.code());
        assert_eq!(g.members[&again.member_id].assignment, Bytes::from_static(b"A"));
    }

    #[tokio::test]
    async fn members_that_miss_the_rebalance_timeout_are_removed() {
        let j = Recorder(Cell::new(0));
        let now = Instant::now();
        let mut g = Group::new("g");
        let join = |g: &mut Group, id: &str| {
            let mut a = args(id, None, &["range"]);
            a.require_known_member_id = false;
            g.join(a, now, &j)
        };
        let a = now_answer(join(&mut g, ""));
        let Reply::Wait(_b_first) = join(&mut g, "") else { panic!("b waits for a") };
        let Reply::Wait(mut a_rx) = join(&mut g, &a.member_id) else { panic!("a rejoins") };
        let gen2 = a_rx.try_recv().expect("both joined");
        assert_eq!((gen2.generation, gen2.members.len()), (2, 2));
        let b_id = gen2.members.iter().map(|m| m.0.clone()).find(|m| *m != a.member_id).unwrap();
        let sync = SyncArgs {
            member_id: a.member_id.clone(),
            group_instance_id: None,
            generation: 2,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        };
        assert_eq!(now_answer(g.sync(sync, now, &j)).error, 0);
        assert_eq!(g.state, GroupState::Stable);
        // The leader rejoins (as after a metadata change); b never does.
        let Reply::Wait(mut a_rx) = join(&mut g, &a.member_id) else { panic!("a waits for b") };
        assert!(a_rx.try_recv().is_err());
        assert_eq!(g.next_deadline(), Some(now + Duration::from_secs(10)));
        g.expire(now + Duration::from_secs(10), &j);
        let gen3 = a_rx.try_recv().expect("completed at the rebalance timeout");
        assert_eq!((gen3.error, gen3.generation, gen3.members.len()), (0, 3, 1));
        assert!(!g.members.contains_key(&b_id));
    }

    #[tokio::test]
    async fn inconsistent_protocols_are_refused() {
        let j = Recorder(Cell::new(0));
        let now = Instant::now();
        let mut g = Group::new("g");
        assert_eq!(
            now_answer(g.join(args("", None, &[]), now, &j)).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut a = args("", None, &["range"]);
        a.require_known_member_id = false;
        assert_eq!(now_answer(g.join(a, now, &j)).error, 0);
        let mut b = args("", None, &["sticky"]);
        b.require_known_member_id = false;
        assert_eq!(now_answer(g.join(b, now, &j)).error, ResponseError::InconsistentGroupProtocol.code());
    }
}
