//! What an escalation channel is: told when an intent starts waiting and when it stops.

use async_trait::async_trait;

use crate::domain::Intent;

/// One way of reaching a human.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Starts asking for a decision on a pending intent. Progress goes through the gateway as
    /// `progress` events; so does the decision itself.
    async fn start(&self, intent: &Intent);
    /// The intent was decided elsewhere: stop asking (hang up, stop reminders).
    async fn stop(&self, intent: &Intent);
}
