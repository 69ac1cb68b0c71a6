//! One accepted connection: its slot in the listener's count and the IO wrapper that enforces
//! the handshake window and the idle limit.
//!
//! The window starts when the socket is accepted and covers the TLS handshake (done before
//! the wrapper exists, under the same deadline) and the first complete request. Until that
//! request has arrived the accept loop may also close the connection to make room for a new
//! one (see [`ConnState::evict`]). Closing is done by failing the server's next read, which
//! makes hyper drop the connection and with it the socket.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::first_request::FirstRequest;
use crate::metrics::{self, Listener};

/// What the accept loop and the connection share. Dropped with the connection: the slot is
/// then given back.
pub struct ConnState {
    listener: Listener,
    open: Arc<AtomicUsize>,
    proven: AtomicBool,
    evict: CancellationToken,
}

impl ConnState {
    pub(super) fn new(listener: Listener, open: Arc<AtomicUsize>) -> ConnState {
        open.fetch_add(1, Ordering::Relaxed);
        metrics::connection_opened(listener);
        ConnState {
            listener,
            open,
            proven: AtomicBool::new(false),
            evict: CancellationToken::new(),
        }
    }

    /// Whether the connection has delivered a complete first request.
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// Closes the connection if it has not yet proven itself; returns whether it will close.
    pub(super) fn evict(&self) -> bool {
        if self.is_proven() {
            return false;
        }
        self.evict.cancel();
        true
    }

    pub(super) fn evicted(&self) -> &CancellationToken {
        &self.evict
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        metrics::connection_closed(self.listener);
    }
}

/// An accepted connection's IO as the HTTP server sees it.
pub struct Guarded<IO> {
    inner: IO,
    info: TcpConnectInfo,
    state: Arc<ConnState>,
    /// Until the first request is complete: the detector, the window's end and eviction.
    unproven: Option<Unproven>,
    /// Reads may not pause longer than this (HTTP listener); `None`: no limit.
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

struct Unproven {
    first: FirstRequest,
    deadline: Pin<Box<Sleep>>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> Guarded<IO> {
    pub(super) fn new(
        inner: IO,
        info: TcpConnectInfo,
        state: Arc<ConnState>,
        deadline: Instant,
        idle: Option<Duration>,
    ) -> Guarded<IO> {
        let evicted = Box::pin(state.evicted().clone().cancelled_owned());
        Guarded {
            inner,
            info,
            state,
            unproven: Some(Unproven {
                first: FirstRequest::default(),
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                evicted,
            }),
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        }
    }

    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(u) = &mut this.unproven {
            if u.evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed to make room: no complete request yet",
                )));
            }
            if u.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request within the handshake window",
                )));
            }
        }
        if let Some((_, sleep)) = &mut this.idle {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                )));
            }
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                if let Some((limit, sleep)) = &mut this.idle {
                    sleep.as_mut().reset(Instant::now() + *limit);
                }
                if let Some(u) = &mut this.unproven {
                    if u.first.feed(read) {
                        this.state.proven.store(true, Ordering::Relaxed);
                        this.unproven = None;
                    }
                }
            }
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<IO> Connected for Guarded<IO> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}
