//! The Lua scripts and the writes that run them: the idempotency claim, the create, the
//! compare-and-set transition and progress lines. Each is one round trip in one slot.

use redis::{Script, Value};

use super::codec::{corrupt, event_json, min_uuid_v7, parse_intent, to_json};
use super::connection::bucket_of;
use super::{RedisStore, IDEMPOTENCY_TTL};
use crate::domain::{now_millis, slim, EventKind, Intent, IntentId, IntentState, Millis};
use crate::store::index::IndexKey;
use crate::store::memory::record_for;
use crate::store::{Created, StoreError};

/// The two scripts that write index sets share the retention helpers of `retention.lua`.
const CREATE: &str = concat!(include_str!("retention.lua"), include_str!("create.lua"));
const TRANSITION: &str = concat!(
    include_str!("retention.lua"),
    include_str!("transition.lua")
);
const PROGRESS: &str = include_str!("progress.lua");
const CLAIM: &str = include_str!("claim.lua");

pub(super) struct Scripts {
    create: Script,
    transition: Script,
    progress: Script,
    claim: Script,
}

impl Scripts {
    pub(super) fn load() -> Self {
        Scripts {
            create: Script::new(CREATE),
            transition: Script::new(TRANSITION),
            progress: Script::new(PROGRESS),
            claim: Script::new(CLAIM),
        }
    }
}

impl RedisStore {
    /// Two steps when there is an idempotency key: claim the key (in its own bucket), then
    /// write the intent (in the intent's bucket). A replica that dies between the two leaves
    /// a claim naming an intent that does not exist; the next submission with that key (and
    /// body) writes ITS intent under the claimed id, and the write is "create if absent", so
    /// however the original and the retry interleave there is exactly one intent per key.
    pub(super) async fn create_intent(&self, mut intent: Intent) -> Result<Created, StoreError> {
        let keyed = intent.idempotency_key.clone();
        if let Some(key) = &keyed {
            let claim_key = self.idempotency_key(&intent.agent_id, key);
            let value = format!("{}\n{}", intent.id, intent.body_hash);
            let ttl = IDEMPOTENCY_TTL.as_secs();
            let mut invocation = self.inner.scripts.claim.prepare_invoke();
            invocation.key(&claim_key).arg(&value).arg(ttl);
            let holder: Option<String> = self.inner.redis.eval("create", &invocation).await?;
            if let Some(holder) = holder {
                let (id, hash) = holder
                    .split_once('\n')
                    .ok_or_else(|| corrupt("idempotency record", "malformed"))?;
                let id =
                    IntentId::parse(id).ok_or_else(|| corrupt("idempotency record", "bad id"))?;
                if hash != intent.body_hash {
                    return Ok(Created::KeyConflict { existing: id });
                }
                intent.id = id;
            }
        }
        match self.write_new(&intent, now_millis()).await? {
            None => Ok(Created::New(intent)),
            Some(existing) if keyed.is_some() => Ok(Created::Replayed(existing)),
            Some(existing) => Err(StoreError::Corrupt(format!(
                "intent id {} is already taken",
                existing.id
            ))),
        }
    }

    pub(super) async fn find_idempotent_intent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        let claim_key = self.idempotency_key(agent_id, key);
        let holder: Option<String> = self
            .query("find_idempotent", redis::cmd("GET").arg(&claim_key))
            .await?;
        let Some(holder) = holder else {
            return Ok(None);
        };
        let id = holder
            .split_once('\n')
            .and_then(|(id, _)| IntentId::parse(id))
            .ok_or_else(|| corrupt("idempotency record", "malformed"))?;
        // A claim whose intent is missing belongs to a submission that died mid-way:
        // `create` adopts it.
        self.read(&id).await
    }

    /// Writes the intent record and its companions unless the id is taken.
    /// `Ok(None)` when written (by this call, possibly on a retry whose first reply was
    /// lost), `Ok(Some(existing))` when someone else's intent holds the id.
    pub(super) async fn write_new(
        &self,
        intent: &Intent,
        now: Millis,
    ) -> Result<Option<Intent>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let bucket = bucket_of(intent.id.as_str());
        let (json, event) = written(intent, now)?;
        let audit = to_json(&record_for(intent, "created", now))?;
        let mut keys = vec![
            self.intent_key(&intent.id),
            self.deadlines_key(bucket),
            self.index_key(bucket),
            self.audit_key(bucket),
        ];
        keys.extend(self.set_keys(bucket, &intent.agent_id, intent.state));
        keys.extend(
            IntentState::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .map(|state| self.set_key(bucket, &IndexKey { agent: None, state })),
        );
        let args = [
            json,
            intent.id.to_string(),
            intent.version.to_string(),
            intent.state.as_str().to_string(),
            deadline_arg(intent),
            event,
            self.inner.channel.clone(),
            audit,
            token.clone(),
            self.record_ttl(intent),
            min_uuid_v7(self.retention_cutoff(now)),
            self.retention_cutoff(now).to_string(),
            self.retention_ms(),
        ];
        let reply: Vec<Value> = self
            .run("create", &self.inner.scripts.create, &keys, &args)
            .await?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(None),
            [Value::Int(0), _, Value::BulkString(w)] if *w == token.as_bytes() => Ok(None),
            [Value::Int(0), Value::BulkString(existing), _] => Ok(Some(parse_intent(existing)?)),
            other => Err(corrupt(
                "create script",
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    pub(super) async fn transition_intent(&self, next: Intent) -> Result<Intent, StoreError> {
        let now = now_millis();
        let bucket = bucket_of(next.id.as_str());
        let (json, event) = written(&next, now)?;
        let mut rejected = record_for(&next, "rejected", now);
        rejected.detail = format!(
            "lost race: wanted {} from version {}",
            next.state,
            next.version.saturating_sub(1)
        );
        let from: Vec<IntentState> = IntentState::ALL
            .into_iter()
            .filter(|s| s.can_become(next.state))
            .collect();
        let allowed_from: String = from.iter().map(|s| format!("{},", s.as_str())).collect();
        let mut keys = vec![
            self.intent_key(&next.id),
            self.deadlines_key(bucket),
            self.audit_key(bucket),
        ];
        keys.extend(self.set_keys(bucket, &next.agent_id, next.state));
        for state in &from {
            keys.extend(self.set_keys(bucket, &next.agent_id, *state));
        }
        let mut args = vec![
            json,
            next.id.to_string(),
            next.version.to_string(),
            next.state.as_str().to_string(),
            deadline_arg(&next),
            event,
            self.inner.channel.clone(),
            to_json(&record_for(&next, "transition", now))?,
            to_json(&rejected)?,
            format!(",{allowed_from}"),
            uuid::Uuid::new_v4().to_string(),
            self.record_ttl(&next),
            self.retention_cutoff(now).to_string(),
            self.retention_ms(),
            min_uuid_v7(self.retention_cutoff(now)),
        ];
        args.extend(from.iter().map(|s| s.as_str().to_string()));
        let script = &self.inner.scripts.transition;
        let reply: Vec<Value> = self.run("transition", script, &keys, &args).await?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(next),
            [Value::Int(0), Value::BulkString(current)] => Err(StoreError::Conflict {
                current: Box::new(parse_intent(current)?),
            }),
            [Value::Int(-1)] => Err(StoreError::NotFound(next.id.clone())),
            other => Err(corrupt(
                "transition script",
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    pub(super) async fn progress_line(
        &self,
        id: &IntentId,
        detail: &str,
    ) -> Result<(), StoreError> {
        // The line carries the intent as it is; if it changes under us, re-read and retry.
        for _ in 0..5 {
            if self.publish_progress(id, detail).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "intent {id} kept changing; progress not published"
        )))
    }

    pub(super) async fn publish_progress(
        &self,
        id: &IntentId,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.read(id).await? else {
            return Err(StoreError::NotFound(id.clone()));
        };
        let now = now_millis();
        let event = event_json(EventKind::Progress, &to_json(&slim(&current))?, detail, now)?;
        let mut record = record_for(&current, "progress", now);
        record.detail = detail.to_string();
        let bucket = bucket_of(id.as_str());
        let keys = [self.intent_key(id), self.audit_key(bucket)];
        let args = [
            current.version.to_string(),
            event,
            self.inner.channel.clone(),
            to_json(&record)?,
        ];
        let reply: i64 = self
            .run("progress", &self.inner.scripts.progress, &keys, &args)
            .await?;
        match reply {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::NotFound(id.clone())),
        }
    }
}

impl RedisStore {
    /// One script with its keys and arguments, under the store's deadline.
    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(keys).arg(args);
        self.inner.redis.eval(what, &invocation).await
    }
}

/// What a write stores of `intent`: its JSON, and the event announcing it (the slim intent).
fn written(intent: &Intent, now: Millis) -> Result<(String, String), StoreError> {
    let json = to_json(intent)?;
    let event = event_json(EventKind::Transition, &to_json(&slim(intent))?, "", now)?;
    Ok((json, event))
}

/// The deadline a write leaves in the deadline set: a pending intent's, none (empty) for
/// the others.
fn deadline_arg(intent: &Intent) -> String {
    match (intent.is_terminal(), intent.expires_at) {
        (false, Some(d)) => d.to_string(),
        _ => String::new(),
    }
}
