//! Key names (every key carries its bucket's hash tag) and the retention arguments the
//! scripts need.

use super::connection::bucket_of;
use super::RedisStore;
use crate::domain::{Intent, IntentId, IntentState, Millis};
use crate::store::index::IndexKey;

impl RedisStore {
    pub(super) fn key(&self, bucket: u32, rest: &str) -> String {
        self.inner.redis.key(bucket, rest)
    }

    pub(super) fn intent_key(&self, id: &IntentId) -> String {
        self.key(bucket_of(id.as_str()), &format!("i:{id}"))
    }

    pub(super) fn deadlines_key(&self, bucket: u32) -> String {
        self.key(bucket, "deadlines")
    }

    pub(super) fn index_key(&self, bucket: u32) -> String {
        self.key(bucket, "index")
    }

    /// `st:<STATE>` (a bucket's intents in a state) or `as:<STATE>:<agent>` (one agent's).
    pub(super) fn set_key(&self, bucket: u32, set: &IndexKey) -> String {
        match &set.agent {
            None => self.key(bucket, &format!("st:{}", set.state.as_str())),
            Some(agent) => self.key(bucket, &format!("as:{}:{agent}", set.state.as_str())),
        }
    }

    /// The state's and the agent's index sets of `agent` in `state`, in that order.
    pub(super) fn set_keys(&self, bucket: u32, agent: &str, state: IntentState) -> [String; 2] {
        [
            self.set_key(bucket, &IndexKey { agent: None, state }),
            self.set_key(
                bucket,
                &IndexKey {
                    agent: Some(agent.to_string()),
                    state,
                },
            ),
        ]
    }

    pub(super) fn retention_ms(&self) -> String {
        self.inner.retention.as_millis().max(1).to_string()
    }

    pub(super) fn audit_key(&self, bucket: u32) -> String {
        self.key(bucket, "audit")
    }

    pub(super) fn idempotency_key(&self, agent_id: &str, key: &str) -> String {
        // Length-prefixed agent: `a:b` + `c` and `a` + `b:c` must not collide.
        let scoped = format!("{}:{agent_id}:{key}", agent_id.len());
        self.key(bucket_of(&scoped), &format!("idem:{scoped}"))
    }

    /// The record's time to live in ms: the retention once decided, none while open.
    pub(super) fn record_ttl(&self, intent: &Intent) -> String {
        if intent.is_terminal() {
            self.inner.retention.as_millis().max(1).to_string()
        } else {
            String::new()
        }
    }

    /// Index entries and audit records older than this (ms) are trimmed.
    pub(super) fn retention_cutoff(&self, now: Millis) -> Millis {
        now.saturating_sub(i64::try_from(self.inner.retention.as_millis()).unwrap_or(i64::MAX))
    }
}
