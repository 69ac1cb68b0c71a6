//! What the gateway measures around the store: every call it makes is timed into
//! `sentinel_store_op_duration_seconds{op}`, and a background task keeps the store-wide
//! pending gauges fresh.
//!
//! Timing wraps the gateway's handle on the store (a decorator built in `Gateway::new`), so
//! the stores stay free of metrics and every call path is covered without touching each one.
//! For watches the time is that of opening the stream, not of its life.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::domain::{now_millis, Intent, IntentId, IntentState, Millis};
use crate::metrics;
use crate::store::{AuditRecord, Created, EventStream, Filter, Page, Store, StoreError};

/// The gateway's view of the store: the same store, every call timed.
pub(super) struct TimedStore(Arc<dyn Store>);

impl TimedStore {
    pub(super) fn wrap(store: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(TimedStore(store))
    }
}

async fn timed<T>(op: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    metrics::store_op(op, started.elapsed());
    out
}

#[async_trait]
impl Store for TimedStore {
    async fn create(&self, intent: Intent) -> Result<Created, StoreError> {
        timed("create", self.0.create(intent)).await
    }

    async fn find_idempotent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        timed("find_idempotent", self.0.find_idempotent(agent_id, key)).await
    }

    async fn get(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        timed("get", self.0.get(id)).await
    }

    async fn list(
        &self,
        filter: &Filter,
        after: Option<&IntentId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        timed("list", self.0.list(filter, after, limit)).await
    }

    async fn transition(&self, next: Intent) -> Result<Intent, StoreError> {
        timed("transition", self.0.transition(next)).await
    }

    async fn progress(&self, id: &IntentId, detail: &str) -> Result<(), StoreError> {
        timed("progress", self.0.progress(id, detail)).await
    }

    async fn watch(&self, id: &IntentId) -> Result<EventStream, StoreError> {
        timed("watch", self.0.watch(id)).await
    }

    async fn watch_all(&self) -> Result<EventStream, StoreError> {
        timed("watch_all", self.0.watch_all()).await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StoreError> {
        timed("due", self.0.due(now, limit)).await
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        timed("next_deadline", self.0.next_deadline()).await
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        timed("audit", self.0.audit(record)).await
    }

    async fn audit_range(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        timed("audit_range", self.0.audit_range(since, until, limit)).await
    }

    async fn audit_of(
        &self,
        id: &IntentId,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        timed("audit_of", self.0.audit_of(id, since, limit)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }
}

/// How often the pending gauges are refreshed from the store.
pub const PENDING_REFRESH: Duration = Duration::from_secs(5);
/// Pages read per refresh at the most; beyond that the gauge shows this many pages' worth.
const PENDING_PAGES: usize = 40;
const PAGE: usize = 500;

/// Counts the store's PENDING_APPROVAL intents (every replica's, not only this one's) and
/// the time to the earliest pending deadline, and publishes both as gauges.
pub(super) async fn refresh_pending(store: &dyn Store) -> Result<(), StoreError> {
    let filter = Filter {
        states: vec![IntentState::PendingApproval],
        ..Filter::default()
    };
    let mut count = 0u64;
    let mut after: Option<IntentId> = None;
    for _ in 0..PENDING_PAGES {
        let page = store.list(&filter, after.as_ref(), PAGE).await?;
        count += page.intents.len() as u64;
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let next = store
        .next_deadline()
        .await?
        .map(|at| Duration::from_millis(u64::try_from(at - now_millis()).unwrap_or_default()));
    metrics::set_pending(count, next);
    Ok(())
}

/// Refreshes the pending gauges every [`PENDING_REFRESH`] until shutdown. A failed refresh
/// keeps the last values (`sentinel_store_up` says the store is away).
pub(super) fn spawn_pending_gauges(
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let refresh = tokio::time::timeout(PENDING_REFRESH, refresh_pending(store.as_ref()));
            match refresh.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "pending gauges not refreshed"),
                Err(_) => debug!("pending gauges not refreshed in time"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PENDING_REFRESH) => {}
            }
        }
    })
}

impl super::Gateway {
    /// Keeps `sentinel_intents_pending` and its next-deadline gauge fresh until shutdown.
    pub fn spawn_pending_gauges(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        spawn_pending_gauges(self.store.clone(), shutdown)
    }
}
