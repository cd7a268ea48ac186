//! A connection's time limits: when it last read, wrote and finished a response, and the one
//! timer that closes it when it breaks its [`Limit`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// What a connection did last, for its time limits. hyper's own header-read timeout arms a
/// timer per request, which cost ~10 % of 1 KiB requests/s here (measured A/B with wrk);
/// one timer per connection, re-armed only when it fires, checks the same rules.
pub(crate) struct Watch {
    /// Requests being answered (until hyper drops the response body).
    pub(crate) busy: AtomicUsize,
    /// Since when the connection has been waiting for a request head (start, or the end of
    /// the last response); the times are [`coarse_now`]s.
    pub(crate) awaiting: AtomicU64,
    pub(crate) last_read: AtomicU64,
    pub(crate) last_write: AtomicU64,
}

/// Nanoseconds on the coarse monotonic clock (a few ms of resolution, plenty for limits in
/// seconds): noted on every read and write, where reading the precise clock cost ~1 % of a
/// small request's time.
fn coarse_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Ends a request's busy time in its [`Watch`] when dropped.
/// (The response body must be `Send`, hence the atomics: all of it runs on one thread.)
pub(crate) struct Busy(pub(crate) Arc<Watch>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.note(&self.0.awaiting);
    }
}

/// How long a request being answered may move no byte (as nginx's send_timeout).
pub(crate) const STALL: Duration = Duration::from_secs(60);

/// The rule a connection is held to.
#[derive(Clone, Copy)]
pub(crate) enum Limit {
    /// HTTP/1.1: a whole request head within the limit of the last response's end or of
    /// the connection's start (so also the idle keep-alive limit); while a request is being
    /// answered, some byte moved within [`STALL`].
    Head(Duration),
    /// HTTP/2 (hyper has no idle limit for it): some byte moved within the limit.
    Idle(Duration),
}

impl Limit {
    fn period(self) -> Duration {
        match self {
            Limit::Head(d) | Limit::Idle(d) => d,
        }
    }
}

impl Watch {
    pub(crate) fn new() -> Self {
        let now = || AtomicU64::new(coarse_now());
        Watch { busy: AtomicUsize::new(0), awaiting: now(), last_read: now(), last_write: now() }
    }

    /// Sets `at` to now.
    fn note(&self, at: &AtomicU64) {
        at.store(coarse_now(), Ordering::Relaxed);
    }

    /// When the connection breaks its limit if nothing happens, on the [`coarse_now`] clock.
    fn deadline(&self, limit: Limit) -> u64 {
        let at = |t: &AtomicU64| t.load(Ordering::Relaxed);
        let moved = at(&self.last_read).max(at(&self.last_write));
        let nanos = |d: Duration| d.as_nanos() as u64;
        match limit {
            Limit::Head(_) if self.busy.load(Ordering::Relaxed) > 0 => moved + nanos(STALL.max(limit.period())),
            Limit::Head(d) => at(&self.awaiting) + nanos(d),
            Limit::Idle(d) => moved + nanos(d),
        }
    }

    /// Returns once the connection broke its limit (and is to be dropped).
    pub(crate) async fn expire(&self, limit: Limit, peer: ws_common::net::Peer) -> Result<(), hyper::Error> {
        loop {
            let (at, now) = (self.deadline(limit), coarse_now());
            if at <= now {
                ws_common::debug!("connection from {peer}: over its time limit ({:?}), closed", limit.period());
                return Ok(());
            }
            ws_common::runtime::Timer::after(Duration::from_nanos(at - now)).await;
        }
    }
}

/// A stream that notes in its [`Watch`] when it last read and wrote a byte.
pub(crate) struct Activity {
    pub(crate) inner: ws_common::net::Stream,
    pub(crate) watch: Arc<Watch>,
}

impl Activity {
    pub(crate) fn new(inner: ws_common::net::Stream, watch: Arc<Watch>) -> Self {
        Activity { inner, watch }
    }
}

fn moved(r: Poll<std::io::Result<usize>>, watch: &Watch, at: &AtomicU64) -> Poll<std::io::Result<usize>> {
    if let Poll::Ready(Ok(n)) = &r
        && *n > 0
    {
        watch.note(at);
    }
    r
}

impl futures_lite::AsyncRead for Activity {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        moved(r, &self.watch, &self.watch.last_read)
    }
}

impl futures_lite::AsyncWrite for Activity {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        moved(r, &self.watch, &self.watch.last_write)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
