//! A listener's accept loop: connection cap, eviction, refusal and survival of `EMFILE`.
//!
//! Every accepted socket takes a slot of the listener's cap (see [`super::budget`]). At the
//! cap, the oldest connection that has not yet delivered a complete request is closed to make
//! room (`reason="evicted"` on `/metrics`): idle sockets opened by anyone cannot lock out a
//! client that talks. When no slot can be freed at once the new socket is accepted and closed
//! immediately (`reason="full"`), so the kernel's backlog never fills and clients fail fast.
//! The loop is one task per listener and owns its bookkeeping: no lock is shared with
//! connections, which only touch their own atomics.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpConnectInfo;
use tracing::{debug, warn};

use super::conn::{ConnState, Guarded};
use crate::config::tls::ServerTls;
use crate::metrics::{self, Listener, Refusal};

/// Connections admitted above the cap while evicted ones are still closing.
const EVICTION_SLACK: usize = 32;
/// Pause after an accept error that is not the peer's fault (e.g. `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning per this interval for refusals and accept errors.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// How a listener guards itself.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    pub listener: Listener,
    /// Concurrent connections, from the descriptor budget.
    pub max_connections: usize,
    /// From accept to a complete first request, TLS handshake included.
    pub handshake_timeout: Duration,
    /// Longest pause between reads from the client; `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// Disable Nagle's algorithm on accepted sockets.
    pub nodelay: bool,
    pub tls: Option<ServerTls>,
}

/// An accepted connection, TLS or not.
pub type Io = Guarded<Either<TcpStream, Box<TlsStream<TcpStream>>>>;

/// The connections a listener lets through, for tonic (as a stream) or axum (as a listener).
pub struct Incoming {
    rx: mpsc::Receiver<Io>,
    local_addr: SocketAddr,
}

impl Incoming {
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = io::Result<Io>> {
        ReceiverStream::new(self.rx).map(Ok)
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Io, SocketAddr) {
        match self.rx.recv().await {
            Some(io) => {
                use tonic::transport::server::Connected as _;
                let peer = io
                    .connect_info()
                    .remote_addr
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                (io, peer)
            }
            // The accept loop has stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Starts the accept loop of `listener`; it runs until `shutdown`.
pub fn spawn_accept_loop(
    listener: TcpListener,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) -> io::Result<(Incoming, tokio::task::JoinHandle<()>)> {
    let local_addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(128);
    let task = tokio::spawn(accept_loop(listener, limits, tx, shutdown));
    Ok((Incoming { rx, local_addr }, task))
}

/// Connections that have not yet proven themselves, oldest first. Entries of connections
/// that closed or proved themselves are skipped lazily and pruned when the queue grows.
struct Unproven {
    queue: VecDeque<Weak<ConnState>>,
    prune_at: usize,
}

impl Unproven {
    fn push(&mut self, state: &Arc<ConnState>) {
        if self.queue.len() >= self.prune_at {
            self.queue
                .retain(|w| w.upgrade().is_some_and(|s| !s.is_proven()));
        }
        self.queue.push_back(Arc::downgrade(state));
    }

    /// Closes the oldest unproven connection; returns whether there was one.
    fn evict_oldest(&mut self) -> bool {
        while let Some(weak) = self.queue.pop_front() {
            if weak.upgrade().is_some_and(|s| s.evict()) {
                return true;
            }
        }
        false
    }
}

/// Rate limit for warnings an attacker can trigger at will.
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .0
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

/// Errors that concern one connection only; the next accept is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn accept_loop(
    listener: TcpListener,
    limits: ListenerLimits,
    tx: mpsc::Sender<Io>,
    shutdown: CancellationToken,
) {
    let name = limits.listener.as_str();
    let open = Arc::new(AtomicUsize::new(0));
    let mut unproven = Unproven {
        queue: VecDeque::new(),
        prune_at: limits.max_connections.saturating_mul(2).max(64),
    };
    let handshakes = TaskTracker::new();
    let mut refusal_warning = Throttle(None);
    let mut error_warning = Throttle(None);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => {
                debug!(listener = name, error = %e, "accept failed for one connection");
                continue;
            }
            Err(e) => {
                // Usually EMFILE/ENFILE: free a descriptor if an idle connection holds one,
                // and pause briefly instead of spinning on the same error.
                unproven.evict_oldest();
                if error_warning.ready() {
                    warn!(listener = name, error = %e, "accept failed; backing off");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        let deadline = Instant::now() + limits.handshake_timeout;
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            let room = unproven.evict_oldest()
                && open.load(Ordering::Relaxed) < limits.max_connections + EVICTION_SLACK;
            let reason = if room {
                Refusal::Evicted
            } else {
                Refusal::Full
            };
            metrics::connection_refused(limits.listener, reason);
            if !room {
                drop(stream);
                if refusal_warning.ready() {
                    warn!(
                        listener = name,
                        max = limits.max_connections,
                        "connection limit reached; refusing new connections"
                    );
                }
                continue;
            }
        }
        let state = Arc::new(ConnState::new(limits.listener, open.clone()));
        unproven.push(&state);
        if limits.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                debug!(listener = name, error = %e, "cannot set TCP_NODELAY");
            }
        }
        let info = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: Some(peer),
        };
        match &limits.tls {
            None => {
                let io = Guarded::new(
                    Either::Left(stream),
                    info,
                    state,
                    deadline,
                    limits.idle_timeout,
                );
                if tx.send(io).await.is_err() {
                    break;
                }
            }
            Some(tls) => {
                handshakes.spawn(handshake(
                    tls.clone(),
                    stream,
                    info,
                    state,
                    deadline,
                    limits.idle_timeout,
                    tx.clone(),
                    shutdown.clone(),
                ));
            }
        }
    }
    handshakes.close();
    handshakes.wait().await;
}

/// Completes the TLS handshake inside the connection's window, then hands the connection on.
#[allow(clippy::too_many_arguments)]
async fn handshake(
    tls: ServerTls,
    stream: TcpStream,
    info: TcpConnectInfo,
    state: Arc<ConnState>,
    deadline: Instant,
    idle: Option<Duration>,
    tx: mpsc::Sender<Io>,
    shutdown: CancellationToken,
) {
    let peer = info.remote_addr;
    let evicted = state.evicted().clone();
    let result = tokio::select! {
        r = tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)) => r,
        _ = evicted.cancelled() => return,
        _ = shutdown.cancelled() => return,
    };
    match result {
        Ok(Ok(stream)) => {
            let io = Guarded::new(Either::Right(Box::new(stream)), info, state, deadline, idle);
            // The receiver is gone only at shutdown.
            let _ = tx.send(io).await;
        }
        Ok(Err(e)) => debug!(?peer, error = %e, "TLS handshake failed"),
        Err(_) => debug!(
            ?peer,
            "TLS handshake not completed within the handshake window"
        ),
    }
}
