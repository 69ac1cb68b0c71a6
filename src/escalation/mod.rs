//! Escalation: getting a human to decide a pending intent.
//!
//! The escalator is event-driven: it follows every transition through the store's
//! `watch_all`, starts its channels when an intent becomes PENDING_APPROVAL and stops them
//! when the intent is decided, whichever replica or channel decided it. The operator channel
//! (`ResolveIntent`, `sentinel resolve`) is always available and needs nothing here; the
//! Telnyx voice and SMS channels (issue 5) plug in behind [`Channel`].

pub mod telnyx;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::domain::{EventKind, Intent, IntentState};
use crate::store::{Store, WatchError};

/// One way of reaching a human.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Starts asking for a decision on a pending intent. Progress goes to the store as
    /// `progress` events; the decision itself arrives through the gateway.
    async fn start(&self, intent: &Intent);
    /// The intent was decided elsewhere: stop asking (hang up, stop reminders).
    async fn stop(&self, intent: &Intent);
}

/// Follows the store's events and drives the configured channels until shutdown.
pub fn spawn(
    store: Arc<dyn Store>,
    channels: Vec<Arc<dyn Channel>>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut events = match store.watch_all().await {
                Ok(events) => events,
                Err(e) => {
                    warn!(error = %e, "escalation cannot follow events; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = events.next() => next,
                };
                match next {
                    None => break,
                    Some(Err(WatchError::Lagged(n))) => {
                        warn!(missed = n, "escalation fell behind the event stream");
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "escalation event stream failed; resubscribing");
                        break;
                    }
                    Some(Ok(event)) if event.kind == EventKind::Transition => {
                        let intent = &event.intent;
                        if intent.state == IntentState::PendingApproval {
                            debug!(intent_id = %intent.id, "escalating");
                            let _ = store
                                .progress(
                                    &intent.id,
                                    "awaiting a human decision (operator: sentinel resolve)",
                                )
                                .await;
                            for channel in &channels {
                                channel.start(intent).await;
                            }
                        } else if intent.is_terminal() && intent.version > 1 {
                            for channel in &channels {
                                channel.stop(intent).await;
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    })
}
