//! The ordered list indexes both stores keep, so `list` reads what a filter selects instead
//! of everything kept for the retention period.
//!
//! Every intent is in exactly two index sets, both ordered by id (UUIDv7, so by creation
//! time): its state's set, and its agent's set for that state. A transition moves it between
//! sets of the same kind. A filter on agent and/or states is answered by the union of a few
//! sets; module, action and time are checked on the intents read from them.

use super::Filter;
use crate::domain::IntentState;

/// One ordered set of intent ids: all intents in `state`, or one agent's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexKey {
    pub agent: Option<String>,
    pub state: IntentState,
}

impl IndexKey {
    /// The sets whose union is exactly the intents that the filter's agent and states allow;
    /// `None` when the filter names neither (every intent).
    pub fn for_filter(filter: &Filter) -> Option<Vec<IndexKey>> {
        if filter.agent_id.is_none() && filter.states.is_empty() {
            return None;
        }
        let mut states: Vec<IntentState> = if filter.states.is_empty() {
            IntentState::ALL.to_vec()
        } else {
            filter.states.clone()
        };
        states.sort_by_key(|s| s.as_str());
        states.dedup();
        Some(
            states
                .into_iter()
                .map(|state| IndexKey {
                    agent: filter.agent_id.clone(),
                    state,
                })
                .collect(),
        )
    }
}

impl Filter {
    /// Whether intents read from the index sets still need checking (module, action, time).
    pub fn beyond_index(&self) -> bool {
        self.module.is_some()
            || self.action.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_reads_only_the_sets_it_names() {
        assert_eq!(IndexKey::for_filter(&Filter::default()), None);
        let by_agent = Filter {
            agent_id: Some("bot".into()),
            ..Filter::default()
        };
        let sets = IndexKey::for_filter(&by_agent).unwrap();
        assert_eq!(sets.len(), IntentState::ALL.len());
        assert!(sets.iter().all(|k| k.agent.as_deref() == Some("bot")));
        let pending = Filter {
            states: vec![IntentState::PendingApproval, IntentState::PendingApproval],
            ..Filter::default()
        };
        assert_eq!(
            IndexKey::for_filter(&pending).unwrap(),
            vec![IndexKey {
                agent: None,
                state: IntentState::PendingApproval
            }]
        );
    }
}
