//! Durable state: one [`Store`] trait, two implementations that pass the same contract tests.
//!
//! - [`memory::MemoryStore`]: the embedded default, for `cargo run` with no setup and for tests.
//! - [`redis::RedisStore`]: the production store shared by many replicas.
//!
//! Every state change is a compare-and-set on the intent's `version`: racing deciders produce
//! exactly one winner, and the loser learns the current state. Watches never lose a transition
//! between "read the current state" and "subscribe".

mod contract;
pub mod index;
pub mod memory;
mod paging;
pub mod ratelimit;
pub mod redis;
pub use contract::{AuditRecord, Created, EventStream, Store, StoreError, WatchError};
pub use memory::MemoryStore;
pub use paging::{newest, Cursor, Filter, Page};
