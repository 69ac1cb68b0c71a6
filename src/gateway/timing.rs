//! What the gateway measures around the store: every call it makes is timed into
//! `sentinel_store_op_duration_seconds{op}`, and a background task keeps the store-wide
//! pending gauges fresh.
//!
//! The gateway holds the store only as a [`TimedStore`], whose one door is
//! [`TimedStore::call`]: every call path is timed and names its operation, and the stores stay
//! free of metrics. For watches the time is that of opening the stream, not of its life.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::domain::{now_millis, IntentState};
use crate::metrics::{self, Stopwatch, StoreOp};
use crate::store::{Store, StoreError};

/// The gateway's handle on the store.
#[derive(Clone)]
pub(super) struct TimedStore(Arc<dyn Store>);

impl TimedStore {
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        TimedStore(store)
    }

    /// Makes one store call, `call(store)`, and records its time under `op`. The future is
    /// the store's own, awaited in place: timing adds no allocation, and while metrics are
    /// off it does not read the clock either.
    pub(super) async fn call<'s, T, Fut>(
        &'s self,
        op: StoreOp,
        call: impl FnOnce(&'s dyn Store) -> Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
    {
        let started = Stopwatch::start();
        let out = call(self.0.as_ref()).await;
        metrics::store_op(op, started);
        out
    }
}

/// How often the pending gauges are refreshed from the store.
pub const PENDING_REFRESH: Duration = Duration::from_secs(5);

/// Counts the store's PENDING_APPROVAL intents (every replica's, not only this one's) and
/// the time to the earliest pending deadline, and publishes both as gauges. Two index reads,
/// however many intents wait.
pub(super) async fn refresh_pending(store: &TimedStore) -> Result<(), StoreError> {
    let count = store
        .call(StoreOp::CountIn, |s| {
            s.count_in(IntentState::PendingApproval)
        })
        .await?;
    let next = store
        .call(StoreOp::NextDeadline, |s| s.next_deadline())
        .await?
        .map(|at| Duration::from_millis(u64::try_from(at - now_millis()).unwrap_or_default()));
    metrics::set_pending(count, next);
    Ok(())
}

/// Refreshes the pending gauges every [`PENDING_REFRESH`] until shutdown. A failed refresh
/// keeps the last values (`sentinel_store_up` says the store is away).
pub(super) fn spawn_pending_gauges(
    store: TimedStore,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let refresh = tokio::time::timeout(PENDING_REFRESH, refresh_pending(&store));
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
