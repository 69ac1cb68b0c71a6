//! The per-agent submission budget in Redis, shared by every replica: one Lua token bucket
//! per agent (`ratelimit.lua`), one round trip per submission, on Redis's clock.
//!
//! The bucket key carries the agent's bucket hash tag, so the script touches one slot and
//! runs unchanged on a Cluster. If Redis cannot answer, the caller gets an error and the
//! gateway refuses the submission (UNAVAILABLE): a limiter that cannot count lets nothing
//! through unchecked.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{bucket_of, Redis, RedisOptions};
use crate::config::RedisUrl;
use crate::store::ratelimit::{Admission, RateLimiter};
use crate::store::StoreError;

const RATELIMIT: &str = include_str!("ratelimit.lua");

pub struct RedisRateLimiter {
    redis: Redis,
    script: Script,
    per_second: u32,
}

impl RedisRateLimiter {
    /// Its own connection to the same Redis as the store.
    pub async fn connect(
        url: &RedisUrl,
        options: RedisOptions,
        per_second: NonZeroU32,
    ) -> Result<Self, StoreError> {
        let redis = Redis::open(url, &options).await?;
        Ok(RedisRateLimiter {
            redis,
            script: Script::new(RATELIMIT),
            per_second: per_second.get(),
        })
    }

    fn key(&self, agent_id: &str) -> String {
        self.redis
            .key(bucket_of(agent_id), &format!("rate:{agent_id}"))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn admit(&self, agent_id: &str) -> Result<Admission, StoreError> {
        let key = self.key(agent_id);
        let rate = self.per_second;
        // A retry after a dropped connection may take a second token: the error is on the
        // strict side.
        let wait_ms: u64 = self
            .redis
            .call("rate limit", |mut c| {
                let mut invocation = self.script.prepare_invoke();
                invocation.key(&key).arg(rate);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        Ok(match wait_ms {
            0 => Admission::Allowed,
            ms => Admission::Limited {
                retry_after: Duration::from_millis(ms),
            },
        })
    }

    fn per_second(&self) -> u32 {
        self.per_second
    }
}
