//! [`RedisStore`]: its connection and subscription, and the [`Store`] contract mapped onto
//! the operations of the sibling files.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::codec::parse_intent;
use super::connection::Redis;
use super::fanout::{run_bus, Bus};
use super::scripts::Scripts;
use super::BUCKETS;
use crate::config::RedisUrl;
use crate::domain::{Intent, IntentId, IntentState, Millis};
use crate::store::{AuditRecord, Created, Cursor, EventStream, Filter, Page, Store, StoreError};

/// How to reach Redis and how to name keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// Every key and the event channel start with this; lets tests and tenants share a server.
    pub prefix: String,
    /// The bound on every Redis call.
    pub timeout: Duration,
    /// How long a decided intent, its list-index entry and audit records are kept. The
    /// scripts that write them also expire and trim what is older, so the store stays bounded
    /// without a sweeper. `audit export` is the way to keep records longer.
    pub retention: Duration,
}

/// Decided intents and audit records are kept 30 days by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "sentinel".to_string(),
            timeout: Duration::from_secs(1),
            retention: DEFAULT_RETENTION,
        }
    }
}

pub(super) struct Inner {
    pub(super) redis: Redis,
    pub(super) channel: String,
    pub(super) scripts: Scripts,
    pub(super) bus: Arc<Bus>,
    /// Stops the subscription task when the store goes away.
    pub(super) stop: CancellationToken,
    pub(super) retention: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The production store. Cheap to clone; clones share connections and the subscription.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) inner: Arc<Inner>,
}

impl RedisStore {
    /// Connects to the URL (one node or a Cluster, see `docs/redis.md`), starts the
    /// replica's subscription and waits (bounded) for Redis to answer.
    pub async fn connect(url: &RedisUrl, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let redis = Redis::open(url, &options).await?;
        let timeout = options.timeout;
        let bus = Arc::new(Bus::new());
        let stop = CancellationToken::new();
        let channel = format!("{}:events", options.prefix);
        tokio::spawn(run_bus(
            url.nodes(),
            channel.clone(),
            bus.clone(),
            stop.clone(),
        ));
        let store = RedisStore {
            inner: Arc::new(Inner {
                redis,
                channel,
                scripts: Scripts::load(),
                bus,
                stop,
                retention: options.retention,
            }),
        };
        // Best effort: a replica that starts before Redis keeps retrying; readiness tells.
        // Waiting for the subscription too means watchers of a fresh store miss nothing.
        store.inner.bus.wait_connected(timeout).await;
        match store.ping().await {
            Ok(()) => info!(target = ?url, "connected to redis"),
            Err(e) => warn!(error = %e, "redis is not answering yet; retrying in the background"),
        }
        Ok(store)
    }

    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.inner.redis.query(what, cmd).await
    }

    /// Reads an intent by its key.
    pub(super) async fn read(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        let key = self.intent_key(id);
        let json = self.inner.redis.hget("get", &key, "j").await?;
        json.map(|j| parse_intent(&j)).transpose()
    }

    /// Every bucket's answer to the same question, concurrently (one node or many).
    pub(super) async fn per_bucket<T, F, Fut>(&self, f: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        futures::future::try_join_all((0..BUCKETS).map(f)).await
    }
}

#[async_trait]
impl Store for RedisStore {
    /// Two steps when there is an idempotency key: see [`RedisStore::create_intent`].
    async fn create(&self, intent: Intent) -> Result<Created, StoreError> {
        self.create_intent(intent).await
    }

    async fn find_idempotent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        self.find_idempotent_intent(agent_id, key).await
    }

    async fn get(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        self.read(id).await
    }

    async fn list(&self, filter: &Filter, at: Cursor<'_>) -> Result<Page, StoreError> {
        self.list_page(filter, at).await
    }

    async fn count_in(&self, state: IntentState) -> Result<u64, StoreError> {
        self.count_state(state).await
    }

    async fn transition(&self, next: Intent) -> Result<Intent, StoreError> {
        self.transition_intent(next).await
    }

    async fn progress(&self, id: &IntentId, detail: &str) -> Result<(), StoreError> {
        self.progress_line(id, detail).await
    }

    async fn watch(&self, id: &IntentId) -> Result<EventStream, StoreError> {
        self.watch_intent(id).await
    }

    async fn watch_all(&self) -> Result<EventStream, StoreError> {
        self.watch_everything().await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StoreError> {
        self.due_ids(now, limit).await
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        self.first_deadline().await
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.append_audit(record).await
    }

    async fn audit_range(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_between(since, until, limit).await
    }

    async fn audit_of(
        &self,
        id: &IntentId,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_of_intent(id, since, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query("ping", &redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(StoreError::Unavailable(format!(
                "unexpected PING reply {pong:?}"
            )));
        }
        if !self.inner.bus.is_connected() {
            return Err(StoreError::Unavailable(
                "event subscription is not connected".into(),
            ));
        }
        Ok(())
    }
}
