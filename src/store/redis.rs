//! The Redis store: durable state shared by a fleet of replicas, on one node or a Cluster.
//!
//! Layout (see docs/redis.md): every intent belongs to one of [`BUCKETS`] buckets, chosen by a
//! stable hash of its id. A bucket is one Redis Cluster hash tag, `{b<n>}`, and holds the
//! intents' records and that bucket's share of the global structures (deadline set, list
//! index, audit stream). A transition touches only keys of its intent's bucket, so it is one
//! Lua script in one slot, on a single node and on a Cluster alike. Idempotency claims are
//! bucketed by `(agent, key)` instead and written before the intent; see [`RedisStore::create`]
//! for why a crash between the two steps still yields one intent per key.
//!
//! Events reach other replicas through one pub/sub channel. Each replica holds ONE
//! subscription ([`Bus`]) and fans events out in process: per-intent broadcast channels for
//! `watch`, one channel for `watch_all`. Pub/sub is at-most-once, so a watcher registers with
//! the bus before it reads the current state, dedupes by version, and re-reads the state
//! whenever the subscription is re-established.
//!
//! Every Redis call is bounded by the configured timeout and fails as
//! [`StoreError::Unavailable`]; nothing in this module turns a failure into a decision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisFuture, Script, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub mod ratelimit;

use super::index::IndexKey;
use super::memory::record_for;
use super::{AuditRecord, Created, EventStream, Filter, Page, Store, StoreError, WatchError};
use crate::domain::{
    now_millis, slim, DecisionEvent, EventKind, Intent, IntentId, IntentState, Millis,
};

/// Buckets (hash tags) the keyspace is split into: enough to spread over a few masters,
/// few enough that the per-bucket reads of `due`, `list` and `audit_range` stay cheap.
/// Changing it re-homes every intent, so it is a constant, not a setting.
pub const BUCKETS: u32 = 16;
/// Idempotency keys are kept this long: a day, well past any client's retry window.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Events buffered per watched intent before a watcher is re-synchronised from the record.
const INTENT_CHANNEL: usize = 16;
/// Events buffered for `watch_all` subscribers before a slow one is told it lagged.
const ALL_CHANNEL: usize = 8192;
/// Audit records may be stamped by replicas whose clocks differ from Redis's: a range
/// query reads this much extra stream on each side and filters by the record's own time.
const AUDIT_CLOCK_SLACK_MS: i64 = 60_000;
/// How often the subscription is probed, so a dead connection is noticed without traffic.
const BUS_PING_EVERY: Duration = Duration::from_secs(1);

const CREATE: &str = include_str!("redis/create.lua");
const TRANSITION: &str = include_str!("redis/transition.lua");
const PROGRESS: &str = include_str!("redis/progress.lua");
const CLAIM: &str = include_str!("redis/claim.lua");

/// How to reach Redis and how to name keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// Every key and the event channel start with this; lets tests and tenants share a server.
    pub prefix: String,
    /// The bound on every Redis call.
    pub timeout: Duration,
    /// How long a decided intent, its list-index entry and audit records are kept. The
    /// scripts that write them also expire and trim what is older, so the store stays bounded
    /// without a sweeper. `audit export` is the way to keep records longer.
    pub retention: Duration,
}

/// Decided intents and audit records are kept 30 days by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "sentinel".to_string(),
            timeout: Duration::from_secs(1),
            retention: DEFAULT_RETENTION,
        }
    }
}

/// The smallest UUIDv7 of millisecond `ms`: every id created before `ms` sorts below it, so
/// `ZREMRANGEBYLEX index - (<this>` drops exactly the index entries older than `ms`.
fn min_uuid_v7(ms: Millis) -> String {
    let ms = u64::try_from(ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Where the data lives: one node, or the seed nodes of a Cluster.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// URLs carry passwords: never print them.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Single(_) => f.write_str("Single(<redacted>)"),
            Target::Cluster(nodes) => write!(f, "Cluster({} nodes)", nodes.len()),
        }
    }
}

/// Reads `redis://host:port/db` (one node), `redis+cluster://host1:port1,host2:port2` or a
/// comma-separated list of `redis://` URLs (a Cluster, by its seed nodes).
fn parse_target(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    let bad = |why: &str| StoreError::Unavailable(format!("SENTINEL_REDIS_URL: {why}"));
    for (cluster_scheme, plain) in [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ] {
        if let Some(rest) = url.strip_prefix(cluster_scheme) {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            let hosts = hosts.trim_end_matches('/');
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("{plain}{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(bad("a cluster URL needs at least one host:port"));
            }
            return Ok(Target::Cluster(nodes));
        }
    }
    if url.contains(',') {
        let nodes: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        return Ok(Target::Cluster(nodes));
    }
    Ok(Target::Single(url.to_string()))
}

/// One connection type for both deployments: commands go through the same code.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What the bus hands to watchers.
#[derive(Clone)]
enum BusMsg {
    Event(Arc<DecisionEvent>),
    /// The subscription was (re-)established: events may have been missed; re-read.
    Resync,
}

/// The replica's single subscription, fanned out in process.
struct Bus {
    all: broadcast::Sender<BusMsg>,
    intents: Mutex<HashMap<IntentId, broadcast::Sender<BusMsg>>>,
    connected: AtomicBool,
}

impl Bus {
    fn new() -> Self {
        Bus {
            all: broadcast::channel(ALL_CHANNEL).0,
            intents: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
        }
    }

    fn register(&self, id: &IntentId) -> broadcast::Receiver<BusMsg> {
        lock(&self.intents)
            .entry(id.clone())
            .or_insert_with(|| broadcast::channel(INTENT_CHANNEL).0)
            .subscribe()
    }

    /// Forgets an intent's channel once its last watcher is gone.
    fn prune(&self, id: &IntentId) {
        let mut intents = lock(&self.intents);
        if intents.get(id).is_some_and(|tx| tx.receiver_count() == 0) {
            intents.remove(id);
        }
    }

    fn dispatch(&self, event: DecisionEvent) {
        let terminal = event.is_terminal();
        let id = event.intent.id.clone();
        let msg = BusMsg::Event(Arc::new(event));
        {
            let mut intents = lock(&self.intents);
            if let Some(tx) = intents.get(&id) {
                // Dropping the sender after the terminal event ends every watcher once read.
                if tx.send(msg.clone()).is_err() || terminal {
                    intents.remove(&id);
                }
            }
        }
        // No receivers is fine: nobody is watching everything.
        let _ = self.all.send(msg);
    }

    /// Tells watchers to re-read. `watch_all` followers are told only on a reconnect: before
    /// the first subscription there was nothing they could have been sent.
    fn resync(&self, reconnect: bool) {
        for tx in lock(&self.intents).values() {
            let _ = tx.send(BusMsg::Resync);
        }
        if reconnect {
            let _ = self.all.send(BusMsg::Resync);
        }
    }
}

/// Holds a watcher's receiver and drops the intent's channel with the last watcher.
struct Registration {
    rx: Option<broadcast::Receiver<BusMsg>>,
    bus: Arc<Bus>,
    id: IntentId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.rx.take();
        self.bus.prune(&self.id);
    }
}

struct Scripts {
    create: Script,
    transition: Script,
    progress: Script,
    claim: Script,
}

struct Inner {
    redis: Redis,
    channel: String,
    scripts: Scripts,
    bus: Arc<Bus>,
    /// Stops the subscription task when the store goes away.
    stop: CancellationToken,
    retention: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A connection, a key prefix and a deadline: what every Redis-backed component needs.
pub(crate) struct Redis {
    conn: Conn,
    prefix: String,
    timeout: Duration,
}

impl Redis {
    /// Connects to the URL (one node or a Cluster, see `docs/redis.md`). A single node is
    /// connected lazily: a replica may start while Redis is down; readiness says so.
    pub(crate) async fn open(
        url: &str,
        options: &RedisOptions,
    ) -> Result<(Redis, Target), StoreError> {
        if options.prefix.is_empty() || options.prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                "redis key prefix must be non-empty and contain no braces".into(),
            ));
        }
        let target = parse_target(url)?;
        let timeout = options.timeout;
        let conn = match &target {
            Target::Single(url) => {
                let client = client_for(url).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?,
                )
            }
            Target::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .tcp_settings(tcp_settings())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()
                    .map_err(unavailable)?;
                let conn = tokio::time::timeout(timeout * 5, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::Unavailable("redis cluster did not answer".into()))?
                    .map_err(unavailable)?;
                Conn::Cluster(conn)
            }
        };
        let redis = Redis {
            conn,
            prefix: options.prefix.clone(),
            timeout,
        };
        Ok((redis, target))
    }

    /// One field of a hash, under the deadline.
    pub(crate) async fn hget(
        &self,
        what: &str,
        key: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.call(what, |mut c| async move {
            redis::cmd("HGET")
                .arg(key)
                .arg(field)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// `<prefix>:{b<bucket>}:<rest>`: the bucket is the Cluster hash tag.
    pub(crate) fn key(&self, bucket: u32, rest: &str) -> String {
        format!("{}:{{b{bucket}}}:{rest}", self.prefix)
    }

    /// Runs one Redis call under the store's deadline. A call that fails because the
    /// connection dropped is retried once while time remains: every write here is safe to
    /// repeat (creates are keyed by id, transitions are compare-and-set and converge).
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout_at(deadline, f(self.conn.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if attempt == 1 && (e.is_connection_dropped() || e.is_io_error()) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Ok(Err(e)) => return Err(StoreError::Unavailable(format!("{what}: {e}"))),
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "{what}: redis did not answer within {} ms",
                        self.timeout.as_millis()
                    )))
                }
            }
        }
    }
}

/// The production store. Cheap to clone; clones share connections and the subscription.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// A stable bucket for a string: FNV-1a, identical on every replica and every build.
pub(crate) fn bucket_of(s: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(BUCKETS)) as u32
}

/// An `XRANGE` reply: `(entry id, [(field, value)])`.
type StreamEntries = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// Nagle's algorithm off: small pipelined commands must not wait for delayed ACKs.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

fn client_for(url: &str) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo as _;
    redis::Client::open(url.into_connection_info()?.set_tcp_settings(tcp_settings()))
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("cannot encode", e))
}

fn parse_intent(json: &[u8]) -> Result<Intent, StoreError> {
    serde_json::from_slice(json).map_err(|e| corrupt("stored intent", e))
}

/// `DecisionEvent` JSON around an already encoded slim intent (see [`slim`]).
fn event_json(
    kind: EventKind,
    intent_json: &str,
    detail: &str,
    at: Millis,
) -> Result<String, StoreError> {
    let kind = match kind {
        EventKind::Snapshot => "snapshot",
        EventKind::Transition => "transition",
        EventKind::Progress => "progress",
    };
    Ok(format!(
        r#"{{"kind":"{kind}","detail":{},"at":{at},"intent":{intent_json}}}"#,
        to_json(&detail)?
    ))
}

impl RedisStore {
    /// Connects to the URL (one node or a Cluster, see `docs/redis.md`), starts the
    /// replica's subscription and waits (bounded) for Redis to answer.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let (redis, target) = Redis::open(url, &options).await?;
        let timeout = options.timeout;
        let bus = Arc::new(Bus::new());
        let stop = CancellationToken::new();
        let channel = format!("{}:events", options.prefix);
        let nodes = match &target {
            Target::Single(url) => vec![url.clone()],
            Target::Cluster(nodes) => nodes.clone(),
        };
        tokio::spawn(run_bus(nodes, channel.clone(), bus.clone(), stop.clone()));
        let store = RedisStore {
            inner: Arc::new(Inner {
                redis,
                channel,
                scripts: Scripts {
                    create: Script::new(CREATE),
                    transition: Script::new(TRANSITION),
                    progress: Script::new(PROGRESS),
                    claim: Script::new(CLAIM),
                },
                bus,
                stop,
                retention: options.retention,
            }),
        };
        // Best effort: a replica that starts before Redis keeps retrying; readiness tells.
        // Waiting for the subscription too means watchers of a fresh store miss nothing.
        let deadline = tokio::time::Instant::now() + timeout;
        while !store.inner.bus.connected.load(Ordering::Acquire)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match store.ping().await {
            Ok(()) => info!(target = ?target, "connected to redis"),
            Err(e) => warn!(error = %e, "redis is not answering yet; retrying in the background"),
        }
        Ok(store)
    }

    fn key(&self, bucket: u32, rest: &str) -> String {
        self.inner.redis.key(bucket, rest)
    }

    fn intent_key(&self, id: &IntentId) -> String {
        self.key(bucket_of(id.as_str()), &format!("i:{id}"))
    }

    fn deadlines_key(&self, bucket: u32) -> String {
        self.key(bucket, "deadlines")
    }

    fn index_key(&self, bucket: u32) -> String {
        self.key(bucket, "index")
    }

    /// `st:<STATE>` (a bucket's intents in a state) or `as:<STATE>:<agent>` (one agent's).
    fn set_key(&self, bucket: u32, set: &IndexKey) -> String {
        match &set.agent {
            None => self.key(bucket, &format!("st:{}", set.state.as_str())),
            Some(agent) => self.key(bucket, &format!("as:{}:{agent}", set.state.as_str())),
        }
    }

    /// The state's and the agent's index sets of `agent` in `state`, in that order.
    fn set_keys(&self, bucket: u32, agent: &str, state: IntentState) -> [String; 2] {
        [
            self.set_key(bucket, &IndexKey { agent: None, state }),
            self.set_key(
                bucket,
                &IndexKey {
                    agent: Some(agent.to_string()),
                    state,
                },
            ),
        ]
    }

    fn retention_ms(&self) -> String {
        self.inner.retention.as_millis().max(1).to_string()
    }

    fn audit_key(&self, bucket: u32) -> String {
        self.key(bucket, "audit")
    }

    fn idempotency_key(&self, agent_id: &str, key: &str) -> String {
        // Length-prefixed agent: `a:b` + `c` and `a` + `b:c` must not collide.
        let scoped = format!("{}:{agent_id}:{key}", agent_id.len());
        self.key(bucket_of(&scoped), &format!("idem:{scoped}"))
    }

    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.inner.redis.call(what, f).await
    }

    /// Reads an intent by its key.
    async fn read(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        let key = self.intent_key(id);
        let json = self.inner.redis.hget("get", &key, "j").await?;
        json.map(|j| parse_intent(&j)).transpose()
    }

    /// The record's time to live in ms: the retention once decided, none while open.
    fn record_ttl(&self, intent: &Intent) -> String {
        if intent.is_terminal() {
            self.inner.retention.as_millis().max(1).to_string()
        } else {
            String::new()
        }
    }

    /// Index entries and audit records older than this (ms) are trimmed.
    fn retention_cutoff(&self, now: Millis) -> Millis {
        now.saturating_sub(i64::try_from(self.inner.retention.as_millis()).unwrap_or(i64::MAX))
    }

    /// Writes the intent record and its companions unless the id is taken.
    /// `Ok(None)` when written (by this call, possibly on a retry whose first reply was
    /// lost), `Ok(Some(existing))` when someone else's intent holds the id.
    async fn write_new(&self, intent: &Intent, now: Millis) -> Result<Option<Intent>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let bucket = bucket_of(intent.id.as_str());
        let json = to_json(intent)?;
        let event = event_json(EventKind::Transition, &to_json(&slim(intent))?, "", now)?;
        let audit = to_json(&record_for(intent, "created", now))?;
        let deadline = match (intent.is_terminal(), intent.expires_at) {
            (false, Some(d)) => d.to_string(),
            _ => String::new(),
        };
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
            deadline,
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
            .call("create", |mut c| {
                let mut invocation = self.inner.scripts.create.prepare_invoke();
                invocation.key(&keys[..]).arg(&args[..]);
                async move { invocation.invoke_async(&mut c).await }
            })
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

    /// Up to `count` ids of a bucket older than `after`, newest first, from the union of
    /// the index sets `sets` (the whole list index when `None`): one round trip.
    async fn bucket_ids(
        &self,
        bucket: u32,
        sets: Option<&[IndexKey]>,
        after: Option<&IntentId>,
        count: usize,
    ) -> Result<Vec<IntentId>, StoreError> {
        let keys: Vec<String> = match sets {
            Some(sets) => sets.iter().map(|k| self.set_key(bucket, k)).collect(),
            None => vec![self.index_key(bucket)],
        };
        let max = match after {
            Some(a) => format!("({a}"),
            None => "+".to_string(),
        };
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("ZREVRANGEBYLEX")
                .arg(key)
                .arg(&max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(count);
        }
        let per_set: Vec<Vec<String>> = self
            .call("list", |mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let mut ids = per_set
            .iter()
            .flatten()
            .map(|s| {
                IntentId::parse(s).ok_or_else(|| corrupt("list index", format!("bad id {s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        ids.truncate(count);
        Ok(ids)
    }

    /// Reads intents of any buckets: one pipelined round trip per bucket, concurrently.
    async fn read_page(&self, ids: &[IntentId]) -> Result<Vec<Intent>, StoreError> {
        let mut by_bucket: HashMap<u32, Vec<IntentId>> = HashMap::new();
        for id in ids {
            by_bucket
                .entry(bucket_of(id.as_str()))
                .or_default()
                .push(id.clone());
        }
        let found =
            futures::future::try_join_all(by_bucket.values().map(|ids| self.read_many(ids)))
                .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Reads many intents of one bucket in one round trip.
    async fn read_many(&self, ids: &[IntentId]) -> Result<Vec<Intent>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(self.intent_key(id)).arg("j");
        }
        let found: Vec<Option<Vec<u8>>> = self
            .call("list", |mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        found
            .into_iter()
            .flatten()
            .map(|j| parse_intent(&j))
            .collect()
    }

    /// Up to `limit` matching intents of one bucket, newest first, older than `after`, read
    /// from the index sets `sets` and checked against the whole filter.
    async fn list_bucket(
        &self,
        bucket: u32,
        sets: Option<&[IndexKey]>,
        filter: &Filter,
        after: Option<&IntentId>,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        // Unfiltered pages need exactly `limit`; a filter may need several batches.
        let batch = limit.clamp(16, 500);
        let mut out = Vec::new();
        let mut cursor = after.cloned();
        loop {
            let ids = self
                .bucket_ids(bucket, sets, cursor.as_ref(), batch)
                .await?;
            let exhausted = ids.len() < batch;
            cursor = ids.last().cloned();
            for intent in self.read_many(&ids).await? {
                if filter.matches(&intent) {
                    out.push(intent);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                return Ok(out);
            }
        }
    }

    async fn publish_progress(&self, id: &IntentId, detail: &str) -> Result<bool, StoreError> {
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
            .call("progress", |mut c| {
                let mut invocation = self.inner.scripts.progress.prepare_invoke();
                invocation.key(&keys[..]).arg(&args[..]);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        match reply {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::NotFound(id.clone())),
        }
    }

    /// Every bucket's answer to the same question, concurrently (one node or many).
    async fn per_bucket<T, F, Fut>(&self, f: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        futures::future::try_join_all((0..BUCKETS).map(f)).await
    }
}

#[async_trait]
impl Store for RedisStore {
    /// Two steps when there is an idempotency key: claim the key (in its own bucket), then
    /// write the intent (in the intent's bucket). A replica that dies between the two leaves
    /// a claim naming an intent that does not exist; the next submission with that key (and
    /// body) writes ITS intent under the claimed id, and the write is "create if absent", so
    /// however the original and the retry interleave there is exactly one intent per key.
    async fn create(&self, mut intent: Intent) -> Result<Created, StoreError> {
        let keyed = intent.idempotency_key.clone();
        if let Some(key) = &keyed {
            let claim_key = self.idempotency_key(&intent.agent_id, key);
            let value = format!("{}\n{}", intent.id, intent.body_hash);
            let ttl = IDEMPOTENCY_TTL.as_secs();
            let holder: Option<String> = self
                .call("create", |mut c| {
                    let mut invocation = self.inner.scripts.claim.prepare_invoke();
                    invocation.key(&claim_key).arg(&value).arg(ttl);
                    async move { invocation.invoke_async(&mut c).await }
                })
                .await?;
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

    async fn find_idempotent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        let claim_key = self.idempotency_key(agent_id, key);
        let holder: Option<String> = self
            .call("find_idempotent", |mut c| {
                let claim_key = claim_key.clone();
                async move { redis::cmd("GET").arg(&claim_key).query_async(&mut c).await }
            })
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

    async fn get(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        self.read(id).await
    }

    async fn list(
        &self,
        filter: &Filter,
        after: Option<&IntentId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // Each bucket contributes its newest `limit + 1` matches; the newest overall are
        // among them. Ids are UUIDv7, so id order is creation order. The index sets answer
        // agent and state exactly: then only ids are read from every bucket, and only the
        // page's intents are fetched.
        let want = limit.saturating_add(1);
        let sets = IndexKey::for_filter(filter);
        if !filter.beyond_index() {
            let per_bucket = self
                .per_bucket(|b| self.bucket_ids(b, sets.as_deref(), after, want))
                .await?;
            let mut ids: Vec<IntentId> = per_bucket.into_iter().flatten().collect();
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.truncate(want);
            let intents = self.read_page(&ids).await?;
            if intents.len() == ids.len() {
                return Ok(Page::newest_first(intents, limit));
            }
            // An index entry outlived its record (a decided intent expired before the next
            // creation in its bucket trimmed the index): read on bucket by bucket.
        }
        let per_bucket = self
            .per_bucket(|b| self.list_bucket(b, sets.as_deref(), filter, after, want))
            .await?;
        let matched: Vec<Intent> = per_bucket.into_iter().flatten().collect();
        Ok(Page::newest_first(matched, limit))
    }

    async fn transition(&self, next: Intent) -> Result<Intent, StoreError> {
        let now = now_millis();
        let bucket = bucket_of(next.id.as_str());
        let json = to_json(&next)?;
        let event = event_json(EventKind::Transition, &to_json(&slim(&next))?, "", now)?;
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
        let deadline = match (next.is_terminal(), next.expires_at) {
            (false, Some(d)) => d.to_string(),
            _ => String::new(),
        };
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
            deadline,
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
        let reply: Vec<Value> = self
            .call("transition", |mut c| {
                let mut invocation = self.inner.scripts.transition.prepare_invoke();
                invocation.key(&keys[..]).arg(&args[..]);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
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

    async fn progress(&self, id: &IntentId, detail: &str) -> Result<(), StoreError> {
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

    async fn watch(&self, id: &IntentId) -> Result<EventStream, StoreError> {
        // Register with the bus BEFORE reading: an event published after the read is then
        // certain to reach us, and one published before it is already in what we read.
        let mut registration = Registration {
            rx: Some(self.inner.bus.register(id)),
            bus: self.inner.bus.clone(),
            id: id.clone(),
        };
        // Slim at once: the stream lives as long as the watch and must not hold the payload.
        let snapshot = slim(
            &self
                .read(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.clone()))?,
        );
        let store = self.clone();
        Ok(Box::pin(async_stream::stream! {
            let mut seen = snapshot.version;
            let done = snapshot.is_terminal();
            yield Ok(DecisionEvent::snapshot(&snapshot, now_millis()));
            if done {
                return;
            }
            let Some(rx) = registration.rx.as_mut() else { return };
            loop {
                let reread = match rx.recv().await {
                    Ok(BusMsg::Event(event)) => {
                        // Delivery is asynchronous: an event already reflected in what we read
                        // (the snapshot or a re-read) may still arrive. Progress lines carry
                        // the version they happened at.
                        let stale = event.version() < seen
                            || (event.version() == seen && event.kind != EventKind::Progress);
                        if stale {
                            continue;
                        }
                        seen = event.version();
                        let terminal = event.is_terminal();
                        yield Ok((*event).clone());
                        if terminal {
                            return;
                        }
                        false
                    }
                    // Missed events (reconnect, or this watcher lagged): the record says what
                    // the state is now.
                    Ok(BusMsg::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                    // The channel was dropped after a terminal event we may not have read.
                    Err(broadcast::error::RecvError::Closed) => true,
                };
                if reread {
                    let closed = rx.is_closed() && rx.is_empty();
                    match store.read(&registration.id).await {
                        Ok(Some(current)) => {
                            if current.version > seen {
                                seen = current.version;
                                let terminal = current.is_terminal();
                                yield Ok(DecisionEvent::snapshot(&current, now_millis()));
                                if terminal {
                                    return;
                                }
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            yield Err(WatchError::Unavailable(e.to_string()));
                            return;
                        }
                    }
                    if closed {
                        // The bus no longer routes this intent (it saw a terminal event that
                        // the record does not show yet): re-register and keep going.
                        *rx = store.inner.bus.register(&registration.id);
                    }
                }
            }
        }))
    }

    async fn watch_all(&self) -> Result<EventStream, StoreError> {
        let mut rx = self.inner.bus.all.subscribe();
        Ok(Box::pin(async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(BusMsg::Event(event)) => yield Ok((*event).clone()),
                    Ok(BusMsg::Resync) => {
                        // Events published while the subscription was down are lost: say so,
                        // so the follower re-reads (the gRPC stream ends with UNAVAILABLE).
                        yield Err(WatchError::Unavailable("event subscription was re-established; events may have been missed".into()));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => yield Err(WatchError::Lagged(n)),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }))
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StoreError> {
        let per_bucket = self
            .per_bucket(|b| {
                let key = self.deadlines_key(b);
                async move {
                    self.call("due", |mut c| {
                        let key = key.clone();
                        async move {
                            redis::cmd("ZRANGEBYSCORE")
                                .arg(&key)
                                .arg("-inf")
                                .arg(now)
                                .arg("WITHSCORES")
                                .arg("LIMIT")
                                .arg(0)
                                .arg(limit)
                                .query_async::<Vec<(String, f64)>>(&mut c)
                                .await
                        }
                    })
                    .await
                }
            })
            .await?;
        let mut due: Vec<(f64, String)> = per_bucket
            .into_iter()
            .flatten()
            .map(|(id, at)| (at, id))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        due.truncate(limit);
        due.into_iter()
            .map(|(_, id)| {
                IntentId::parse(&id)
                    .ok_or_else(|| corrupt("deadline set", format!("bad id {id:?}")))
            })
            .collect()
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        let firsts = self
            .per_bucket(|b| {
                let key = self.deadlines_key(b);
                async move {
                    self.call("next_deadline", |mut c| {
                        let key = key.clone();
                        async move {
                            redis::cmd("ZRANGE")
                                .arg(&key)
                                .arg(0)
                                .arg(0)
                                .arg("WITHSCORES")
                                .query_async::<Vec<(String, f64)>>(&mut c)
                                .await
                        }
                    })
                    .await
                }
            })
            .await?;
        Ok(firsts
            .into_iter()
            .flatten()
            .map(|(_, at)| at as Millis)
            .min())
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        let bucket = record
            .intent_id
            .as_ref()
            .map(|i| bucket_of(i.as_str()))
            .unwrap_or(0);
        let key = self.audit_key(bucket);
        let json = to_json(&record)?;
        self.call("audit", |mut c| {
            let (key, json) = (key.clone(), json.clone());
            async move {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("r")
                    .arg(&json)
                    .query_async::<String>(&mut c)
                    .await
            }
        })
        .await?;
        Ok(())
    }

    async fn audit_range(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let from = since.saturating_sub(AUDIT_CLOCK_SLACK_MS).max(0);
        let to = until.saturating_add(AUDIT_CLOCK_SLACK_MS);
        let per_bucket = self
            .per_bucket(|b| {
                let key = self.audit_key(b);
                async move { self.audit_bucket(&key, from, to, since, until).await }
            })
            .await?;
        let mut out: Vec<(AuditRecord, String)> = per_bucket.into_iter().flatten().collect();
        // Equal times keep the order Redis appended them in (`<ms>-<seq>` stream ids).
        let stream_order = |id: &str| {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            (
                ms.parse::<u64>().unwrap_or(0),
                seq.parse::<u64>().unwrap_or(0),
            )
        };
        out.sort_by(|a, b| {
            a.0.at
                .cmp(&b.0.at)
                .then_with(|| stream_order(&a.1).cmp(&stream_order(&b.1)))
        });
        out.truncate(limit);
        Ok(out.into_iter().map(|(r, _)| r).collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self
            .call("ping", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        if pong != "PONG" {
            return Err(StoreError::Unavailable(format!(
                "unexpected PING reply {pong:?}"
            )));
        }
        if !self.inner.bus.connected.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "event subscription is not connected".into(),
            ));
        }
        Ok(())
    }
}

impl RedisStore {
    /// Audit records of one bucket's stream in the id window, filtered by their own time.
    async fn audit_bucket(
        &self,
        key: &str,
        from: Millis,
        to: Millis,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<(AuditRecord, String)>, StoreError> {
        const PAGE: usize = 1000;
        let mut out = Vec::new();
        let mut start = from.to_string();
        loop {
            let entries: StreamEntries = self
                .call("audit_range", |mut c| {
                    let (key, start) = (key.to_string(), start.clone());
                    async move {
                        redis::cmd("XRANGE")
                            .arg(&key)
                            .arg(&start)
                            .arg(to)
                            .arg("COUNT")
                            .arg(PAGE)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            let full = entries.len() == PAGE;
            for (id, fields) in &entries {
                for (name, value) in fields {
                    if name == "r" {
                        let record: AuditRecord = serde_json::from_slice(value)
                            .map_err(|e| corrupt("audit record", e))?;
                        if record.at >= since && record.at < until {
                            out.push((record, id.clone()));
                        }
                    }
                }
            }
            match entries.last() {
                Some((last, _)) if full => start = format!("({last}"),
                _ => return Ok(out),
            }
        }
    }
}

/// Keeps the replica's one subscription alive: connect, subscribe, forward, probe; on any
/// failure mark it down and reconnect with backoff. Every (re)subscription is followed by a
/// `Resync`, because pub/sub does not replay what was published while we were away.
async fn run_bus(nodes: Vec<String>, channel: String, bus: Arc<Bus>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(50);
    let mut node = 0usize;
    let mut reconnect = false;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let url = &nodes[node % nodes.len()];
        node += 1;
        match subscribe(url, &channel).await {
            Ok(pubsub) => {
                backoff = Duration::from_millis(50);
                bus.connected.store(true, Ordering::Release);
                bus.resync(reconnect);
                reconnect = true;
                let reason = forward(pubsub, &bus, &stop).await;
                bus.connected.store(false, Ordering::Release);
                if stop.is_cancelled() {
                    return;
                }
                warn!(reason, "redis event subscription lost; reconnecting");
            }
            Err(e) => {
                bus.connected.store(false, Ordering::Release);
                warn!(error = %e, "cannot subscribe to redis events; retrying");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn subscribe(url: &str, channel: &str) -> Result<redis::aio::PubSub, RedisError> {
    let bounded = Duration::from_secs(1);
    let timed_out = || RedisError::from((redis::ErrorKind::Io, "timed out"));
    let client = client_for(url)?;
    let mut pubsub = tokio::time::timeout(bounded, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    tokio::time::timeout(bounded, pubsub.subscribe(channel))
        .await
        .map_err(|_| timed_out())??;
    Ok(pubsub)
}

/// Forwards messages until the connection fails or a probe goes unanswered.
async fn forward(pubsub: redis::aio::PubSub, bus: &Bus, stop: &CancellationToken) -> &'static str {
    let (mut sink, mut messages) = pubsub.split();
    let mut probe = tokio::time::interval(BUS_PING_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stopped",
            msg = messages.next() => {
                let Some(msg) = msg else { return "connection closed" };
                match serde_json::from_slice::<DecisionEvent>(msg.get_payload_bytes()) {
                    // Slimmed again in case a replica of an older build sent the payload.
                    Ok(event) => bus.dispatch(event.into_slim()),
                    Err(e) => warn!(error = %e, "ignoring an undecodable event"),
                }
            }
            _ = probe.tick() => {
                match tokio::time::timeout(BUS_PING_EVERY, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "ping failed",
                    Err(_) => return "ping timed out",
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_every_seed_node() {
        assert_eq!(
            parse_target("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/").unwrap(),
            Target::Cluster(vec![
                "redis://:pw@127.0.0.1:7000".into(),
                "redis://:pw@127.0.0.1:7001".into()
            ])
        );
        assert_eq!(
            parse_target("redis://a:1, redis://b:2").unwrap(),
            Target::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        assert_eq!(
            parse_target("redis://h:6379/2").unwrap(),
            Target::Single("redis://h:6379/2".into())
        );
        assert!(!format!("{:?}", parse_target("redis://:secret@h").unwrap()).contains("secret"));
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        // Every replica must agree on where an intent lives, whatever build it runs.
        assert_eq!(
            bucket_of("0190a8f0-0000-7000-8000-000000000000"),
            bucket_of("0190a8f0-0000-7000-8000-000000000000")
        );
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|_| bucket_of(IntentId::generate().as_str()))
            .collect();
        assert_eq!(used.len(), BUCKETS as usize);
    }

    #[test]
    fn event_json_is_a_decision_event() {
        let json = r#"{"id":"0190a8f0-0000-7000-8000-000000000000"}"#;
        let raw = event_json(EventKind::Progress, json, "calling \"bob\"", 5).unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["kind"], "progress");
        assert_eq!(v["detail"], "calling \"bob\"");
        assert_eq!(v["intent"]["id"], "0190a8f0-0000-7000-8000-000000000000");
    }
}
