//! What a reviewer and the console ask about intents beyond one read: an intent's story
//! (its audit records) and the numbers at a glance (pending count, recent decisions, median
//! time to a human decision).
//!
//! The glance is computed from the list indexes on each call, not from counters: every
//! replica then gives the same answer (with Redis the indexes are shared), and the cost is
//! bounded by [`GLANCE_SAMPLE`] intents per state. Past that bound the numbers say so.

use super::read::scope_filter;
use super::{parse_id, Gateway, GatewayError};
use crate::auth::Principal;
use crate::domain::{DeciderKind, IntentState, Millis};
use crate::metrics::StoreOp;
use crate::store::{AuditRecord, Cursor, Filter};

/// The most audit records one intent's history returns.
pub const HISTORY_LIMIT: usize = 1000;
/// The most intents the glance reads per question (pending; decided in the last hour).
pub const GLANCE_SAMPLE: usize = 500;
const HOUR_MS: Millis = 3_600_000;

/// The numbers the console's header shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Glance {
    /// Pending intents the caller may see (at most [`GLANCE_SAMPLE`]).
    pub pending: usize,
    /// Decisions made in the last hour: `(outcome, decider, count)`, the decider being the
    /// approver's name for humans and the decider kind otherwise; most frequent first.
    pub decided_last_hour: Vec<(IntentState, String, usize)>,
    /// The median time from submission to a human decision over the last hour.
    pub median_human_ms: Option<Millis>,
    /// A sample reached [`GLANCE_SAMPLE`]: the counts are lower bounds.
    pub capped: bool,
}

impl Gateway {
    /// Every audit record of one intent, oldest first: submitted, transitions, progress lines,
    /// refused attempts. An agent may read only its own intents' history.
    pub async fn history(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<Vec<AuditRecord>, GatewayError> {
        let id = parse_id(id)?;
        let intent = self
            .store
            .call(StoreOp::Get, |s| s.get(&id))
            .await?
            .ok_or_else(|| GatewayError::NotFound(id.to_string()))?;
        if !caller.may_act_for(&intent.agent_id) {
            return Err(GatewayError::PermissionDenied(format!(
                "intent_id: this key may only read the history of agent {}'s intents",
                caller.name()
            )));
        }
        Ok(self
            .store
            .call(StoreOp::AuditOf, |s| {
                s.audit_of(&id, intent.created_at, HISTORY_LIMIT)
            })
            .await?)
    }

    /// The numbers at a glance, over the intents the caller may see.
    pub async fn glance(&self, caller: &Principal) -> Result<Glance, GatewayError> {
        let mut pending = Filter {
            states: vec![IntentState::PendingApproval],
            ..Filter::default()
        };
        scope_filter(caller, &mut pending)?;
        let now = self.clock.now();
        let decided = Filter {
            states: IntentState::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .collect(),
            // Decided in the last hour implies created before its deadline ran out: intents
            // created earlier than the longest deadline are not counted (a documented bound).
            created_after: Some(now - HOUR_MS - self.settings.approval_timeout.as_millis() as i64),
            ..pending.clone()
        };
        let pending = self
            .store
            .call(StoreOp::List, |s| {
                s.list(&pending, Cursor::first(GLANCE_SAMPLE))
            })
            .await?;
        let decided = self
            .store
            .call(StoreOp::List, |s| {
                s.list(&decided, Cursor::first(GLANCE_SAMPLE))
            })
            .await?;
        let mut glance = Glance {
            pending: pending.intents.len(),
            capped: pending.next_after.is_some() || decided.next_after.is_some(),
            ..Glance::default()
        };
        let mut human_ms = Vec::new();
        for intent in &decided.intents {
            let (Some(at), Some(by)) = (intent.decided_at, &intent.decided_by) else {
                continue;
            };
            if at < now - HOUR_MS {
                continue;
            }
            let who = if by.kind == DeciderKind::Human && !by.approver.is_empty() {
                by.approver.clone()
            } else {
                by.kind.as_str().to_string()
            };
            if by.kind == DeciderKind::Human {
                human_ms.push(at - intent.created_at);
            }
            match glance
                .decided_last_hour
                .iter_mut()
                .find(|(state, name, _)| *state == intent.state && *name == who)
            {
                Some(row) => row.2 += 1,
                None => glance.decided_last_hour.push((intent.state, who, 1)),
            }
        }
        glance
            .decided_last_hour
            .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        human_ms.sort_unstable();
        glance.median_human_ms = human_ms.get(human_ms.len() / 2).copied();
        Ok(glance)
    }
}
