//! The Telnyx escalation's shared state in Redis, so that every replica sees the same ladders,
//! call and SMS-code indexes, escalation claims and webhook deliveries.
//!
//! Every operation touches one key, or keys of one bucket, so each key takes the bucket tag of
//! what it is about (intent, call, code, event id) and works unchanged on a Cluster. Every
//! entry expires by TTL except the per-bucket indexes of claims and watchdogs, whose entries
//! are removed when the escalation ends or the watchdog has fired.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{Ladder, StateError, StateResult, TelnyxState, Watchdog};
use crate::config::RedisUrl;
use crate::domain::{now_millis, IntentId, Millis};
use crate::store::redis::{bucket_of, Redis, RedisOptions, BUCKETS};
use crate::store::StoreError;

const LADDER: &str = include_str!("ladder.lua");
const SET_IF_ABSENT: &str = include_str!("set_if_absent.lua");
const ESCALATION_CLAIM: &str = include_str!("escalation_claim.lua");
const WATCHDOG_LEASE: &str = include_str!("watchdog_lease.lua");

pub struct RedisTelnyxState {
    redis: Redis,
    ladder: Script,
    set_if_absent: Script,
    escalation_claim: Script,
    watchdog_lease: Script,
}

fn state_error(e: StoreError) -> StateError {
    StateError::Unavailable(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis().min(u128::from(u64::MAX)) as u64).max(1)
}

impl RedisTelnyxState {
    /// Its own connection to the same Redis as the store (one more TCP connection, no
    /// subscription).
    pub async fn connect(url: &RedisUrl, options: RedisOptions) -> Result<Self, StoreError> {
        let redis = Redis::open(url, &options).await?;
        Ok(RedisTelnyxState {
            redis,
            ladder: Script::new(LADDER),
            set_if_absent: Script::new(SET_IF_ABSENT),
            escalation_claim: Script::new(ESCALATION_CLAIM),
            watchdog_lease: Script::new(WATCHDOG_LEASE),
        })
    }

    /// A per-bucket index (`claims`, `watchdogs`): the bucket of the intent it is about, so
    /// an entry and the intent's own keys share one Cluster slot.
    fn index(&self, kind: &str, bucket: u32) -> String {
        self.redis.key(bucket, &format!("tx:{kind}"))
    }

    /// Takes (`mode` "claim") or renews ("renew") `owner`'s claim on `intent`.
    async fn claim_script(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
        mode: &str,
    ) -> StateResult<bool> {
        let key = self.key("claim", intent.as_str());
        let index = self.index("claims", bucket_of(intent.as_str()));
        let ms = millis(ttl);
        let mut invocation = self.escalation_claim.prepare_invoke();
        invocation
            .key(&key)
            .key(&index)
            .arg(owner)
            .arg(ms)
            .arg(intent.as_str())
            .arg(mode);
        let taken: i64 = self.eval(&invocation).await?;
        Ok(taken == 1)
    }

    /// One command under the store's deadline.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StateResult<T> {
        self.redis
            .query("telnyx state", cmd)
            .await
            .map_err(state_error)
    }

    /// One script under the store's deadline.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> StateResult<T> {
        self.redis
            .eval("telnyx state", invocation)
            .await
            .map_err(state_error)
    }

    /// One atomic pipeline under the store's deadline.
    async fn query_pipe(&self, pipe: &redis::Pipeline) -> StateResult<()> {
        self.redis
            .query_pipe("telnyx state", pipe)
            .await
            .map_err(state_error)
    }

    /// Members of every bucket's `kind` index, asked concurrently.
    async fn every_bucket<F, Fut>(&self, f: F) -> StateResult<Vec<String>>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = StateResult<Vec<String>>>,
    {
        let per_bucket = futures::future::try_join_all((0..BUCKETS).map(f)).await?;
        Ok(per_bucket.into_iter().flatten().collect())
    }

    fn key(&self, kind: &str, id: &str) -> String {
        self.redis.key(bucket_of(id), &format!("tx:{kind}:{id}"))
    }

    /// Sets `key` to `value` unless it exists; true when this call set it. A retry whose first
    /// attempt landed (reply lost) finds its own `value` and also answers true, so `value`
    /// must be unique to the call where "set by someone else" must read false.
    async fn set_nx(&self, key: String, value: &[u8], ttl: Duration) -> StateResult<bool> {
        let ms = millis(ttl);
        let mut invocation = self.set_if_absent.prepare_invoke();
        invocation.key(&key).arg(value).arg(ms);
        let set: i64 = self.eval(&invocation).await?;
        Ok(set == 1)
    }

    async fn get_id(&self, key: String) -> StateResult<Option<IntentId>> {
        let value: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        // An unparsable value cannot name an intent: treat it as absent, never as a match.
        Ok(value.and_then(|v| IntentId::parse(&v)))
    }
}

#[async_trait]
impl TelnyxState for RedisTelnyxState {
    async fn first_delivery(
        &self,
        event_id: &str,
        body: &[u8],
        ttl: Duration,
    ) -> StateResult<bool> {
        // A fresh token per call: Telnyx redelivers the same body, which must read as taken.
        let value = [uuid::Uuid::new_v4().as_bytes().as_slice(), b"\n", body].concat();
        self.set_nx(self.key("wh", event_id), &value, ttl).await
    }

    async fn settle_delivery(&self, event_id: &str, processed: bool) -> StateResult<()> {
        let key = self.key("wh", event_id);
        // Processed: keep the id (a redelivery is a duplicate), drop the body.
        // Not: forget it, so Telnyx's redelivery is processed.
        let cmd = if processed {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg("").arg("XX").arg("KEEPTTL");
            cmd
        } else {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&key);
            cmd
        };
        self.query(&cmd).await
    }

    async fn claim(&self, intent: &IntentId, owner: &str, ttl: Duration) -> StateResult<bool> {
        // Strict: a claim that exists answers false even to its owner, and a retry whose first
        // attempt landed reads false too; the claim then expires and is taken over.
        self.claim_script(intent, owner, ttl, "claim").await
    }

    async fn renew_claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<bool> {
        self.claim_script(intent, owner, ttl, "renew").await
    }

    async fn expired_claims(&self, now: Millis, limit: usize) -> StateResult<Vec<IntentId>> {
        let ids = self
            .every_bucket(|b| {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(self.index("claims", b))
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit);
                async move { self.query::<Vec<String>>(&cmd).await }
            })
            .await?;
        Ok(ids
            .iter()
            .filter_map(|i| IntentId::parse(i))
            .take(limit)
            .collect())
    }

    async fn release_claim(&self, intent: &IntentId) -> StateResult<()> {
        let key = self.key("claim", intent.as_str());
        let index = self.index("claims", bucket_of(intent.as_str()));
        self.query_pipe(
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("ZREM")
                .arg(&index)
                .arg(intent.as_str())
                .ignore(),
        )
        .await
    }

    async fn arm_watchdog(&self, watchdog: &Watchdog, due: Millis) -> StateResult<()> {
        let index = self.index("watchdogs", bucket_of(watchdog.intent.as_str()));
        let member = watchdog.encode();
        // LT: a watchdog armed earlier keeps its earlier time.
        self.query(
            redis::cmd("ZADD")
                .arg(&index)
                .arg("LT")
                .arg(due)
                .arg(&member),
        )
        .await
    }

    async fn due_watchdogs(
        &self,
        now: Millis,
        lease: Duration,
        limit: usize,
    ) -> StateResult<Vec<Watchdog>> {
        let until = now.saturating_add(i64::try_from(millis(lease)).unwrap_or(i64::MAX));
        let members = self
            .every_bucket(|b| {
                let key = self.index("watchdogs", b);
                async move {
                    let mut invocation = self.watchdog_lease.prepare_invoke();
                    invocation.key(&key).arg(now).arg(until).arg(limit);
                    self.eval(&invocation).await
                }
            })
            .await?;
        // Anything this code did not write cannot name a call: left to its lease, never fired.
        Ok(members.iter().filter_map(|m| Watchdog::decode(m)).collect())
    }

    async fn disarm_watchdog(&self, watchdog: &Watchdog) -> StateResult<()> {
        let index = self.index("watchdogs", bucket_of(watchdog.intent.as_str()));
        let member = watchdog.encode();
        self.query(redis::cmd("ZREM").arg(&index).arg(&member))
            .await
    }

    async fn load(&self, intent: &IntentId) -> StateResult<Option<Ladder>> {
        let key = self.key("ladder", intent.as_str());
        let json = self
            .redis
            .hget("telnyx state", &key, "j")
            .await
            .map_err(state_error)?;
        json.map(|j| {
            serde_json::from_slice(&j)
                .map_err(|e| StateError::Unavailable(format!("stored ladder is corrupt: {e}")))
        })
        .transpose()
    }

    async fn save(&self, ladder: &Ladder, ttl: Duration) -> StateResult<bool> {
        let key = self.key("ladder", ladder.intent_id.as_str());
        let json = serde_json::to_string(ladder)
            .map_err(|e| StateError::Unavailable(format!("cannot encode ladder: {e}")))?;
        let (version, ms) = (ladder.version, millis(ttl));
        let token = uuid::Uuid::new_v4().to_string();
        let mut invocation = self.ladder.prepare_invoke();
        invocation
            .key(&key)
            .arg(&json)
            .arg(version)
            .arg(ms)
            .arg(&token);
        let stored: i64 = self.eval(&invocation).await?;
        Ok(stored == 1)
    }

    async fn index_call(
        &self,
        call_control_id: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> StateResult<()> {
        let key = self.key("call", call_control_id);
        let ms = millis(ttl);
        self.query(
            redis::cmd("SET")
                .arg(&key)
                .arg(intent.as_str())
                .arg("PX")
                .arg(ms),
        )
        .await
    }

    async fn call_intent(&self, call_control_id: &str) -> StateResult<Option<IntentId>> {
        self.get_id(self.key("call", call_control_id)).await
    }

    async fn index_code(&self, code: &str, intent: &IntentId, ttl: Duration) -> StateResult<bool> {
        self.set_nx(self.key("code", code), intent.as_str().as_bytes(), ttl)
            .await
    }

    async fn code_intent(&self, code: &str) -> StateResult<Option<IntentId>> {
        self.get_id(self.key("code", code)).await
    }

    async fn note_texted(&self, phone: &str, intent: &IntentId, ttl: Duration) -> StateResult<()> {
        // A sorted set of intents scored by their expiry; the key lives as long as the newest.
        let key = self.key("texted", phone);
        let ms = millis(ttl);
        let expiry = now_millis().saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
        self.query_pipe(
            redis::pipe()
                .atomic()
                .cmd("ZADD")
                .arg(&key)
                .arg(expiry)
                .arg(intent.as_str())
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now_millis())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ms)
                .ignore(),
        )
        .await
    }

    async fn texted_intents(&self, phone: &str) -> StateResult<Vec<IntentId>> {
        let key = self.key("texted", phone);
        let ids: Vec<String> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(now_millis())
                    .arg("+inf"),
            )
            .await?;
        Ok(ids.iter().filter_map(|i| IntentId::parse(i)).collect())
    }

    async fn drop_code(&self, code: &str) -> StateResult<()> {
        let key = self.key("code", code);
        self.query(redis::cmd("DEL").arg(&key)).await
    }
}
