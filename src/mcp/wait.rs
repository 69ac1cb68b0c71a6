//! Waiting for a pending intent's decision: follows `WatchDecision` until a terminal event,
//! tells a client that sent a progress token what is happening (so a client that resets its
//! timeout on progress keeps waiting), gives up after `--wait-secs` (the intent stays
//! pending; calling again resumes it), and cancels the intent when the client cancels.

use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RoleServer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use super::gateway::{Credential, Gateway};
use crate::grpc::pb;
use crate::grpc::pb::IntentState;

/// How often a waiting client hears that the proxy is still waiting.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Why the wait ended.
#[derive(Debug)]
pub enum Waited {
    /// A terminal state: approved, declined, expired or cancelled.
    Decided(pb::Intent),
    /// `--wait-secs` passed; the intent is still open.
    StillPending(pb::Intent),
    /// The client cancelled the call: the intent was cancelled (or, if a decision won the
    /// race, left as decided). Either way the tool is not called.
    ClientCancelled(pb::Intent),
}

pub fn is_terminal(state: i32) -> bool {
    matches!(
        IntentState::try_from(state),
        Ok(IntentState::Approved
            | IntentState::Declined
            | IntentState::Expired
            | IntentState::Cancelled)
    )
}

/// Progress notifications for one request, when its client sent a progress token.
pub struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    sent: u32,
}

impl Progress {
    pub fn new(peer: Peer<RoleServer>, token: Option<ProgressToken>) -> Option<Progress> {
        token.map(|token| Progress {
            peer,
            token,
            sent: 0,
        })
    }

    async fn send(&mut self, message: String) {
        self.sent += 1;
        let param = ProgressNotificationParam::new(self.token.clone(), f64::from(self.sent))
            .with_message(message);
        // A client that went away cannot be told; the wait itself goes on to its end.
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!(error = %e, "progress notification not delivered");
        }
    }
}

async fn tell(progress: &mut Option<Progress>, message: String) {
    if let Some(p) = progress.as_mut() {
        p.send(message).await;
    }
}

/// Follows `intent` until it is decided, `wait` passes or `cancelled` fires.
pub async fn until_decided(
    gateway: &Gateway,
    credential: &Credential,
    intent: pb::Intent,
    wait: Duration,
    mut progress: Option<Progress>,
    cancelled: &CancellationToken,
) -> Result<Waited, Status> {
    let started = Instant::now();
    let deadline = started + wait;
    let id = intent.intent_id.clone();
    tell(
        &mut progress,
        format!(
            "waiting for a human: intent {id} ({}) needs approval",
            intent.action
        ),
    )
    .await;
    let mut last = intent;
    let mut heartbeat = tokio::time::interval_at(started + HEARTBEAT, HEARTBEAT);
    let mut stream = gateway.watch(credential, &id).await?;
    loop {
        tokio::select! {
            biased;
            _ = cancelled.cancelled() => {
                let reason = "the MCP client cancelled the tool call";
                return match gateway.cancel(credential, &id, reason).await {
                    Ok(intent) => Ok(Waited::ClientCancelled(intent)),
                    // Decided in the meantime: the client is gone, so nothing is forwarded.
                    Err(s) if s.code() == Code::FailedPrecondition => Ok(Waited::ClientCancelled(last)),
                    Err(s) => Err(s),
                };
            }
            event = stream.message() => match event? {
                Some(event) => {
                    if let Some(intent) = event.intent {
                        last = intent;
                    }
                    if event.terminal || is_terminal(last.state) {
                        return Ok(Waited::Decided(last));
                    }
                    if !event.detail.is_empty() {
                        tell(&mut progress, format!("waiting for a human: {}", event.detail)).await;
                    }
                }
                None => {
                    // The stream ended early (a gateway restart, a slow reader cut off):
                    // read the state, and follow again if it is still open.
                    last = gateway.get(credential, &id).await?;
                    if is_terminal(last.state) {
                        return Ok(Waited::Decided(last));
                    }
                    stream = gateway.watch(credential, &id).await?;
                }
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(Waited::StillPending(last)),
            _ = heartbeat.tick() => {
                let secs = started.elapsed().as_secs();
                tell(&mut progress, format!("waiting for a human: intent {id} still pending after {secs} s")).await;
            }
        }
    }
}
