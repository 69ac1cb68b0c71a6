//! The per-agent submission budget both rate limiters implement: the in-process one
//! (`gateway::limits::LocalRateLimiter`) and the one shared through Redis
//! (`store::redis::ratelimit`).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// What a rate limiter answers for one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over budget: the next submission can succeed after this long.
    Limited {
        retry_after: Duration,
    },
}

/// A per-agent submission budget. An error means the budget could not be checked; the
/// gateway then refuses the submission (UNAVAILABLE), never lets it through unchecked.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one submission from `agent_id`'s budget.
    async fn admit(&self, agent_id: &str) -> Result<Admission, StoreError>;
    /// The configured rate (requests per second, and the burst), for messages.
    fn per_second(&self) -> u32;
}
