//! Which intents a listing covers and where its pages start and end.

use serde::{Deserialize, Serialize};

use crate::domain::{Intent, IntentId, IntentState, Millis};

/// Which intents a list or a watch covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub agent_id: Option<String>,
    pub module: Option<String>,
    pub action: Option<String>,
    /// Empty means all states.
    pub states: Vec<IntentState>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
}

impl Filter {
    pub fn matches(&self, intent: &Intent) -> bool {
        self.agent_id.as_ref().is_none_or(|a| *a == intent.agent_id)
            && self.module.as_ref().is_none_or(|m| *m == intent.module)
            && self.action.as_ref().is_none_or(|a| *a == intent.action)
            && (self.states.is_empty() || self.states.contains(&intent.state))
            && self.created_after.is_none_or(|t| intent.created_at >= t)
            && self.created_before.is_none_or(|t| intent.created_at < t)
    }
}

/// Where a page of a listing starts (after this id; newest first) and how many intents it
/// holds at most.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    pub after: Option<&'a IntentId>,
    pub limit: usize,
}

impl Cursor<'_> {
    /// The first page, of at most `limit` intents.
    pub fn first(limit: usize) -> Cursor<'static> {
        Cursor { after: None, limit }
    }

    /// How many ids each shard or bucket offers: the newest overall are among them, and the
    /// one past the page tells whether another page follows.
    pub fn want(self) -> usize {
        self.limit.saturating_add(1)
    }
}

/// The newest `n` of `ids`, newest first, each once. Ids are UUIDv7, so sorting them sorts
/// by creation time.
pub fn newest(mut ids: Vec<IntentId>, n: usize) -> Vec<IntentId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.truncate(n);
    ids
}

/// A page of intents, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub intents: Vec<Intent>,
    /// The id to continue after; `None` on the last page.
    pub next_after: Option<IntentId>,
}

impl Page {
    /// The first `limit` of `matched`, newest first, noting where the next page starts.
    /// Ids are UUIDv7, so sorting them sorts by creation time.
    pub fn newest_first(mut matched: Vec<Intent>, limit: usize) -> Page {
        matched.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        let more = matched.len() > limit;
        matched.truncate(limit);
        let next_after = more.then(|| matched.last().map(|i| i.id.clone())).flatten();
        Page {
            intents: matched,
            next_after,
        }
    }
}
