//! The group coordinator: Kafka's classic consumer-group protocol and committed offsets.
//!
//! Module map:
//! - [`coordinator`]: [`GroupCoordinator`] — group → `__consumer_offsets` partition mapping,
//!   one shard of groups per led partition (loaded from the log on becoming leader),
//!   durable writes, the per-group deadline timers, and the operations the handlers call.
//! - [`state`]: [`Group`](state::Group) — the membership state machine (join/sync
//!   generations, static members, session and rebalance timeouts) and committed offsets.
//! - [`records`]: the key/value schemas of `__consumer_offsets` records, byte-compatible
//!   with Kafka's, plus readers for the consumer protocol's subscription/assignment.

pub mod coordinator;
pub mod records;
pub mod state;

pub use coordinator::{partition_for, GroupCoordinator, OFFSETS_TOPIC};
pub use state::GroupState;
