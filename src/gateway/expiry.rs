//! Approval deadlines: the pass that expires overdue intents (and escalates analyses a dead
//! replica left behind), and the loop that runs it until shutdown.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::{counted, Gateway, GatewayError};
use crate::domain::{
    Channel, DecidedBy, DeciderKind, IllegalTransition, Intent, IntentState, Reason,
};
use crate::metrics::StoreOp;
use crate::store::StoreError;

impl Gateway {
    /// Expires every pending intent whose deadline has passed, and escalates analyses that a
    /// dead replica left behind. Returns how many intents it changed.
    pub async fn expire_due(&self) -> Result<usize, GatewayError> {
        let now = self.clock.now();
        let mut changed = 0;
        for id in self.store.call(StoreOp::Due, |s| s.due(now, 256)).await? {
            let Some(intent) = self.store.call(StoreOp::Get, |s| s.get(&id)).await? else {
                continue;
            };
            if intent.expires_at.is_none_or(|d| d > now) {
                continue;
            }
            let next = match intent.state {
                IntentState::PendingApproval => expiry(&intent, now),
                IntentState::Analyzing => {
                    let mut next = intent.decide(
                        IntentState::PendingApproval,
                        DecidedBy::new(DeciderKind::System, "", Channel::System),
                        "",
                        Some(Reason::system("analysis_interrupted", "scoring did not finish (a replica stopped mid-analysis); a human must decide")),
                        now,
                    );
                    if let Ok(n) = next.as_mut() {
                        n.expires_at =
                            Some(now + self.settings.approval_timeout.as_millis() as i64);
                        n.analysis =
                            "Automatic scoring was interrupted; a human must decide this intent."
                                .into();
                    }
                    next
                }
                _ => continue,
            };
            let Ok(next) = next else { continue };
            // A root span of its own (the loop belongs to no request), linked to the
            // submission's trace.
            let span =
                tracing::info_span!("expire", intent_id = %intent.id, state = next.state.as_str());
            if let Some(traceparent) = &intent.trace_parent {
                crate::telemetry::link_to_traceparent(&span, traceparent);
            }
            match self
                .store
                .call(StoreOp::Transition, |s| s.transition(next))
                .instrument(span)
                .await
            {
                Ok(i) => {
                    let i = counted(i);
                    info!(intent_id = %i.id, state = %i.state, "deadline reached");
                    changed += 1;
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(changed)
    }

    /// Runs [`Gateway::expire_due`] until shutdown, sleeping until the next deadline (at most
    /// a second, so deadlines created by other replicas are seen).
    pub fn spawn_expiry(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.expire_due().await {
                    warn!(error = %e, "expiry pass failed; retrying");
                }
                let next = self
                    .store
                    .call(StoreOp::NextDeadline, |s| s.next_deadline())
                    .await;
                let now = self.clock.now();
                let wait = match next {
                    Ok(Some(d)) => (d - now).clamp(5, 1000),
                    _ => 1000,
                };
                // The clock may wake us early; the next pass simply finds nothing due.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.clock.sleep_until(now, now + wait) => {}
                }
            }
        })
    }
}

/// The EXPIRED version of a pending intent whose deadline passed.
pub(super) fn expiry(intent: &Intent, now: i64) -> Result<Intent, IllegalTransition> {
    intent.decide(
        IntentState::Expired,
        DecidedBy::new(DeciderKind::Timeout, "", Channel::Timeout),
        "approval deadline passed",
        Some(Reason::system(
            "approval_timeout",
            "no decision before the approval deadline; expired counts as declined",
        )),
        now,
    )
}
