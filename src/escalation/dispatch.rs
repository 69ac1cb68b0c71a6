//! The loop that follows the gateway's events and starts and stops every channel.

use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Channel;
use crate::domain::{EventKind, IntentState};
use crate::gateway::{Gateway, WatchError};

/// Follows the gateway's events and drives the configured channels until shutdown.
///
/// Every replica runs this loop; channels make `start` idempotent across replicas (the Telnyx
/// channel claims an intent before phoning). Whenever the loop (re)subscribes or falls behind,
/// it also starts the channels for every intent already pending, so an intent that became
/// pending while this replica was down or disconnected is still escalated.
pub fn spawn(
    gateway: Arc<Gateway>,
    channels: Vec<Arc<dyn Channel>>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if channels.is_empty() {
            // Only the operator channel: nothing to drive, nothing to wait for.
            shutdown.cancelled().await;
            return;
        }
        loop {
            let mut events = match gateway.events().await {
                Ok(events) => events,
                Err(e) => {
                    warn!(error = %e, "escalation cannot follow events; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            let mut caught_up = catch_up(&gateway, &channels).await;
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = events.next() => next,
                    // A catch-up the store could not answer is retried until it succeeds: an
                    // intent that became pending while this replica was away must be asked.
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)), if !caught_up => {
                        caught_up = catch_up(&gateway, &channels).await;
                        continue;
                    }
                };
                match next {
                    None => break,
                    Some(Err(WatchError::Lagged(n))) => {
                        warn!(
                            missed = n,
                            "escalation fell behind the event stream; catching up"
                        );
                        caught_up = catch_up(&gateway, &channels).await;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "escalation event stream failed; resubscribing");
                        break;
                    }
                    Some(Ok(event)) if event.kind == EventKind::Transition => {
                        let intent = &event.intent;
                        if intent.state == IntentState::PendingApproval {
                            // Events carry no payload; the channels tell the approver what it
                            // is, so they get the full intent.
                            match gateway.pending(&intent.id).await {
                                Ok(Some(full)) => {
                                    debug!(intent_id = %full.id, "escalating");
                                    for channel in &channels {
                                        channel.start(&full).await;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    warn!(error = %e, "cannot read a pending intent to escalate; catching up");
                                    caught_up = false;
                                }
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

/// At most this many open intents are re-offered to the channels in one catch-up.
const CATCH_UP_LIMIT: usize = 10_000;

/// Starts the channels for every pending intent (they ignore intents already in hand).
/// Returns false when the store could not answer.
///
/// Open intents are found through the deadline index (every open intent has a deadline), not
/// by listing: the cost follows what is open now, not everything kept for the retention period.
async fn catch_up(gateway: &Gateway, channels: &[Arc<dyn Channel>]) -> bool {
    let open = match gateway.open_intents(CATCH_UP_LIMIT).await {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "cannot find pending intents to escalate; retrying");
            return false;
        }
    };
    for id in open {
        match gateway.intent(&id).await {
            Ok(Some(intent)) if intent.state == IntentState::PendingApproval => {
                for channel in channels {
                    channel.start(&intent).await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "cannot read a pending intent to escalate; retrying");
                return false;
            }
        }
    }
    true
}
