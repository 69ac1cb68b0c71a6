//! Reading intents: one by id, or a page of a filtered list, scoped to what the caller may see.

use super::{parse_id, Gateway, GatewayError};
use crate::auth::Principal;
use crate::domain::{Intent, IntentId};
use crate::metrics::StoreOp;
use crate::store::{Cursor, Filter};

const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

impl Gateway {
    /// One intent the caller may see. Another agent's intent is reported as not found, so
    /// ids cannot be probed.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Intent, GatewayError> {
        let id = parse_id(id)?;
        match self.store.call(StoreOp::Get, |s| s.get(&id)).await? {
            Some(intent) if caller.may_act_for(&intent.agent_id) => Ok(intent),
            _ => Err(GatewayError::NotFound(id.to_string())),
        }
    }

    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: Filter,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Intent>, String), GatewayError> {
        scope_filter(caller, &mut filter)?;
        let after = if page_token.is_empty() {
            None
        } else {
            Some(IntentId::parse(page_token).ok_or_else(|| {
                GatewayError::Invalid("page_token: not a token from a previous ListIntents".into())
            })?)
        };
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        } as usize;
        let page = self
            .store
            .call(StoreOp::List, |s| {
                s.list(
                    &filter,
                    Cursor {
                        after: after.as_ref(),
                        limit,
                    },
                )
            })
            .await?;
        Ok((
            page.intents,
            page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        ))
    }
}

/// Restricts an agent's filter to its own intents; an agent asking for another's is refused.
pub(super) fn scope_filter(caller: &Principal, filter: &mut Filter) -> Result<(), GatewayError> {
    if let Some(own) = caller.agent_scope() {
        match &filter.agent_id {
            Some(asked) if asked != own => {
                return Err(GatewayError::PermissionDenied(format!(
                    "agent_id: this key may only see intents of agent {own}"
                )))
            }
            _ => filter.agent_id = Some(own.to_string()),
        }
    }
    Ok(())
}
