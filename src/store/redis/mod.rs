//! The Redis store: durable state shared by a fleet of replicas, on one node or a Cluster.
//!
//! Layout (see docs/redis.md): every intent belongs to one of [`BUCKETS`] buckets, chosen by a
//! stable hash of its id. A bucket is one Redis Cluster hash tag, `{b<n>}`, and holds the
//! intents' records and that bucket's share of the global structures (deadline set, list
//! index, audit stream). A transition touches only keys of its intent's bucket, so it is one
//! Lua script in one slot, on a single node and on a Cluster alike. Idempotency claims are
//! bucketed by `(agent, key)` instead and written before the intent; see [`RedisStore::create_intent`]
//! for why a crash between the two steps still yields one intent per key.
//!
//! Events reach other replicas through one pub/sub channel. Each replica holds ONE
//! subscription ([`fanout::Bus`]) and fans events out in process: per-intent broadcast channels for
//! `watch`, one channel for `watch_all`. Pub/sub is at-most-once, so a watcher registers with
//! the bus before it reads the current state, dedupes by version, and re-reads the state
//! whenever the subscription is re-established.
//!
//! Every Redis call is bounded by the configured timeout and fails as
//! [`StoreError::Unavailable`](crate::store::StoreError::Unavailable); nothing in this module
//! turns a failure into a decision.
mod audit;
mod codec;
mod connection;
mod deadlines;
mod fanout;
mod keys;
mod list;
pub mod ratelimit;
mod scripts;
mod store;

pub(crate) use connection::{bucket_of, Redis};
pub use store::{RedisOptions, RedisStore, DEFAULT_RETENTION};

use std::time::Duration;

/// Buckets (hash tags) the keyspace is split into: enough to spread over a few masters,
/// few enough that the per-bucket reads of `due`, `list` and `audit_range` stay cheap.
/// Changing it re-homes every intent, so it is a constant, not a setting.
pub const BUCKETS: u32 = 16;
/// Idempotency keys are kept this long: a day, well past any client's retry window.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
