//! The replica's one event subscription and its in-process fan-out: per-intent broadcast
//! channels for `watch`, one channel for `watch_all`. Pub/sub is at-most-once, so a watcher
//! registers with the bus before it reads the current state, dedupes by version, and re-reads
//! the state whenever the subscription is re-established.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::{RedisError, Value};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::connection::client_for;
use super::RedisStore;
use crate::domain::{now_millis, slim, DecisionEvent, EventKind, IntentId};
use crate::store::{EventStream, StoreError, WatchError};
use crate::sync::lock;

/// Events buffered per watched intent before a watcher is re-synchronised from the record.
const INTENT_CHANNEL: usize = 16;
/// Events buffered for `watch_all` subscribers before a slow one is told it lagged.
const ALL_CHANNEL: usize = 8192;
/// How often the subscription is probed, so a dead connection is noticed without traffic.
const BUS_PING_EVERY: Duration = Duration::from_secs(1);

/// What the bus hands to watchers.
#[derive(Clone)]
enum BusMsg {
    Event(Arc<DecisionEvent>),
    /// The subscription was (re-)established: events may have been missed; re-read.
    Resync,
}

/// The replica's single subscription, fanned out in process.
pub(super) struct Bus {
    all: broadcast::Sender<BusMsg>,
    intents: Mutex<HashMap<IntentId, broadcast::Sender<BusMsg>>>,
    /// Whether the subscription is up; a watch channel, so start-up can wait for it.
    connected: watch::Sender<bool>,
}

impl Bus {
    pub(super) fn new() -> Self {
        Bus {
            all: broadcast::channel(ALL_CHANNEL).0,
            intents: Mutex::new(HashMap::new()),
            connected: watch::Sender::new(false),
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits at most `limit` for the subscription to be up ([`Bus::is_connected`] says
    /// whether it came).
    pub(super) async fn wait_connected(&self, limit: Duration) {
        let mut up = self.connected.subscribe();
        // A timeout, or the sender gone with the bus, both leave `is_connected` false.
        let _ = tokio::time::timeout(limit, up.wait_for(|c| *c)).await;
    }

    fn set_connected(&self, up: bool) {
        self.connected.send_replace(up);
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

impl RedisStore {
    pub(super) async fn watch_intent(&self, id: &IntentId) -> Result<EventStream, StoreError> {
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

    pub(super) async fn watch_everything(&self) -> Result<EventStream, StoreError> {
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
}

/// Keeps the replica's one subscription alive: connect, subscribe, forward, probe; on any
/// failure mark it down and reconnect with backoff. Every (re)subscription is followed by a
/// `Resync`, because pub/sub does not replay what was published while we were away.
pub(super) async fn run_bus(
    nodes: Vec<String>,
    channel: String,
    bus: Arc<Bus>,
    stop: CancellationToken,
) {
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
                bus.set_connected(true);
                bus.resync(reconnect);
                reconnect = true;
                let reason = forward(pubsub, &bus, &stop).await;
                bus.set_connected(false);
                if stop.is_cancelled() {
                    return;
                }
                warn!(reason, "redis event subscription lost; reconnecting");
            }
            Err(e) => {
                bus.set_connected(false);
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
