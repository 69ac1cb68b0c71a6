//! Wire streams of decision events, and the memory bound on `WatchDecisions`.
//!
//! A `WatchDecisions` follower that stops reading must not make the server hold every event
//! it has not read. Each such stream gets a small forwarder task that takes events from the
//! store as they happen (so the store's shared fan-out never waits on this follower) into a
//! queue of this stream alone, counted in bytes. A queue over its budget is dropped and the
//! stream ends with `RESOURCE_EXHAUSTED`: the follower resubscribes and catches up with
//! `ListIntents`, rather than being silently thinned.
//!
//! Below this queue the transport holds a bounded amount too: hyper's HTTP/2 server buffers at
//! most 400 KiB per stream beyond what the client's flow-control window lets it send (it stops
//! asking our stream for more once that much is waiting), and tonic's encoder pulls one batch
//! of events at a time. So a stalled follower costs at most budget + ~400 KiB + its window.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use prost::Message as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::warn;

use super::convert::event_to_pb;
use super::pb;
use crate::domain::DecisionEvent;
use crate::gateway::WatchError;

/// The default queue budget of one `WatchDecisions` stream (`SENTINEL_WATCH_MAX_LAG_BYTES`).
pub use crate::config::limits::DEFAULT_MAX_LAG_BYTES;

/// What a queued event is charged beyond its encoded size: the message structs themselves.
const EVENT_OVERHEAD: usize =
    std::mem::size_of::<pb::DecisionEvent>() + std::mem::size_of::<pb::Intent>();

pub type WireStream = Pin<Box<dyn Stream<Item = Result<pb::DecisionEvent, Status>> + Send>>;

/// One store item as the client sees it. An `Err` ends the stream (see [`end_after_error`]).
pub fn wire_item(item: Result<DecisionEvent, WatchError>) -> Result<pb::DecisionEvent, Status> {
    match item {
        Ok(event) => Ok(event_to_pb(&event)),
        Err(WatchError::Lagged(n)) => Err(Status::resource_exhausted(format!(
            "watcher fell behind and missed {n} events; resubscribe and catch up with ListIntents"
        ))),
        Err(WatchError::Unavailable(m)) => {
            warn!(error = %m, "watch failed");
            Err(Status::unavailable(
                "the state store is unavailable; resubscribe",
            ))
        }
    }
}

fn fell_behind(budget: usize) -> Status {
    Status::resource_exhausted(format!(
        "watcher fell behind: more than {budget} bytes of events were waiting to be read; resubscribe and catch up with ListIntents"
    ))
}

/// Ends a stream after its first error: the client resubscribes and gets the current state.
pub fn end_after_error<S>(stream: S) -> impl Stream<Item = Result<pb::DecisionEvent, Status>>
where
    S: Stream<Item = Result<pb::DecisionEvent, Status>>,
{
    stream.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        *failed = item.is_err();
        futures::future::ready(Some(item))
    })
}

#[derive(Default)]
struct Queue {
    items: VecDeque<(Result<pb::DecisionEvent, Status>, usize)>,
    bytes: usize,
    /// The forwarder is gone: once `items` is empty, the stream ends.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        crate::sync::lock(&self.queue)
    }
}

/// Marks the queue closed however the forwarder ends (including a panic).
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
    }
}

/// `events` for the wire, with at most `budget` bytes waiting for the client; ends on
/// `shutdown`, when the client goes away, or after the first error.
pub fn bounded(
    events: crate::gateway::IntentEvents,
    budget: usize,
    shutdown: &CancellationToken,
) -> WireStream {
    let shared = Arc::new(Shared::default());
    // Cancelled when the wire stream is dropped (client gone) or the server shuts down.
    let stop = shutdown.child_token();
    tokio::spawn(forward(events, budget, shared.clone(), stop.clone()));
    let guard = stop.clone().drop_guard();
    let stream = futures::stream::unfold((shared, guard), |(shared, guard)| async move {
        loop {
            let next = {
                let mut queue = shared.lock();
                match queue.items.pop_front() {
                    Some((item, size)) => {
                        queue.bytes -= size;
                        Some(item)
                    }
                    None if queue.closed => return None,
                    None => None,
                }
            };
            match next {
                Some(item) => return Some((item, (shared, guard))),
                // One consumer: a push between the look and here leaves a permit, so this
                // wait returns at once.
                None => shared.ready.notified().await,
            }
        }
    });
    Box::pin(end_after_error(stream.take_until(stop.cancelled_owned())))
}

async fn forward(
    mut events: crate::gateway::IntentEvents,
    budget: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let _close = CloseOnDrop(shared.clone());
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => return,
            item = events.next() => item,
        };
        let Some(item) = item else { return };
        let item = wire_item(item);
        let failed = item.is_err();
        let size = match &item {
            Ok(event) => event.encoded_len() + EVENT_OVERHEAD,
            Err(_) => 0,
        };
        {
            let mut queue = shared.lock();
            if queue.bytes + size > budget {
                // Free what is waiting now, not when the client reads again.
                queue.items.clear();
                queue.bytes = 0;
                queue.items.push_back((Err(fell_behind(budget)), 0));
                drop(queue);
                shared.ready.notify_one();
                return;
            }
            queue.bytes += size;
            queue.items.push_back((item, size));
        }
        shared.ready.notify_one();
        if failed {
            return;
        }
    }
}
