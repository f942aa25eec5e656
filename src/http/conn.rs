//! One HTTP connection's state, which decides how long it may stay open:
//! waiting for a request's headers (header timeout), answering requests
//! (no limit here; bodies have their own timeout), or idle between requests
//! (idle timeout); in any phase, a response the client stopped reading
//! may wait for its socket no longer than the send timeout. The server's
//! driver sleeps until [`ConnState::deadline`], which it reads again after
//! each poll of the connection: every change of the state happens inside
//! that poll (the socket's reads and writes, the requests hyper starts and
//! the responses it finishes sending), so none needs a wake-up of its own.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a connection may wait in each state.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From a connection's start, or a request's first byte, to the end of
    /// its headers.
    pub header: Duration,
    /// From a response's end to the next request's first byte.
    pub idle: Duration,
    /// Longest a write to the client may wait for room in its socket.
    pub send: Duration,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers since `since`.
    Header { since: Instant },
    /// Answering `requests` requests (their responses not yet sent).
    Active { requests: u32 },
    /// Nothing to do since `since`.
    Idle { since: Instant },
}

/// A connection's state, shared by its I/O, its requests and its driver.
#[derive(Debug)]
pub struct ConnState {
    phase: Mutex<Phase>,
    /// Since when a write has waited for the client to read.
    write_blocked: Mutex<Option<Instant>>,
    evicted: CancellationToken,
}

impl ConnState {
    /// A connection accepted at `now`, its first request's headers awaited.
    pub fn new(now: Instant) -> ConnState {
        ConnState {
            phase: Mutex::new(Phase::Header { since: now }),
            write_blocked: Mutex::new(None),
            evicted: CancellationToken::new(),
        }
    }

    fn with_phase<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        f(&mut self.phase.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Bytes arrived at `now`: an idle connection starts reading headers.
    pub fn got_bytes(&self, now: Instant) {
        self.with_phase(|p| {
            if let Phase::Idle { .. } = *p {
                *p = Phase::Header { since: now };
            }
        });
    }

    /// A request's headers were read; it is active until the returned
    /// guard drops (its response sent or dropped).
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.with_phase(|p| {
            *p = match *p {
                Phase::Active { requests } => Phase::Active {
                    requests: requests + 1,
                },
                _ => Phase::Active { requests: 1 },
            }
        });
        ActiveRequest(Arc::clone(self))
    }

    fn end(&self, now: Instant) {
        self.with_phase(|p| {
            *p = match *p {
                Phase::Active { requests } if requests > 1 => Phase::Active {
                    requests: requests - 1,
                },
                _ => Phase::Idle { since: now },
            }
        });
    }

    /// A write found the client's socket full at `now`.
    pub fn write_blocked(&self, now: Instant) {
        *self.write_blocked.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    /// A write went through again.
    pub fn write_unblocked(&self) {
        *self.write_blocked.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// When the connection must be closed if its state does not change
    /// first; `None` while it answers requests and its writes go through.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let phase = self.with_phase(|p| match *p {
            Phase::Header { since } => Some(since + timeouts.header),
            Phase::Active { .. } => None,
            Phase::Idle { since } => Some(since + timeouts.idle),
        });
        let blocked = *self.write_blocked.lock().unwrap_or_else(|e| e.into_inner());
        phase
            .into_iter()
            .chain(blocked.map(|since| since + timeouts.send))
            .min()
    }

    /// Since when the connection has had no request to answer (waiting for
    /// one, or for its headers); `None` while it answers one.
    pub fn idle_since(&self) -> Option<Instant> {
        self.with_phase(|p| match *p {
            Phase::Header { since } | Phase::Idle { since } => Some(since),
            Phase::Active { .. } => None,
        })
    }

    /// Closes the connection (to make room for another).
    pub fn evict(&self) {
        self.evicted.cancel();
    }

    /// Whether the connection was evicted.
    pub fn is_evicted(&self) -> bool {
        self.evicted.is_cancelled()
    }

    /// Resolves once the connection was evicted.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await
    }
}

/// A request being answered; dropping it ends the request.
#[derive(Debug)]
pub struct ActiveRequest(Arc<ConnState>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.end(Instant::now());
    }
}

/// A connection's socket, telling its state when bytes arrive and when
/// writes wait for the client.
pub struct Tracked<T> {
    io: T,
    conn: Arc<ConnState>,
    write_blocked: bool,
}

impl<T> Tracked<T> {
    /// `io` reporting to `conn`.
    pub fn new(io: T, conn: Arc<ConnState>) -> Tracked<T> {
        Tracked {
            io,
            conn,
            write_blocked: false,
        }
    }

    /// Tells the state when writes start and stop waiting.
    fn track_write<R>(&mut self, polled: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        match (&polled, self.write_blocked) {
            (Poll::Pending, false) => {
                self.write_blocked = true;
                self.conn.write_blocked(Instant::now());
            }
            (Poll::Ready(_), true) => {
                self.write_blocked = false;
                self.conn.write_unblocked();
            }
            _ => {}
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.got_bytes(Instant::now());
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.track_write(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track_write(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(30),
        idle: Duration::from_secs(75),
        send: Duration::from_secs(60),
    };

    #[test]
    fn deadlines_follow_the_phase() {
        let start = Instant::now();
        let c = Arc::new(ConnState::new(start));
        assert_eq!(c.deadline(&T), Some(start + T.header));
        assert_eq!(c.idle_since(), Some(start));
        let first = c.begin();
        let second = c.begin();
        assert_eq!(c.deadline(&T), None);
        assert_eq!(c.idle_since(), None);
        drop(first);
        assert_eq!(c.deadline(&T), None, "one request still runs");
        let later = start + Duration::from_secs(5);
        c.got_bytes(later);
        assert_eq!(c.deadline(&T), None, "body bytes of an active request");
        drop(second);
        let idle = c.idle_since().expect("idle after the last response");
        assert_eq!(c.deadline(&T), Some(idle + T.idle));
        c.got_bytes(later);
        assert_eq!(c.deadline(&T), Some(later + T.header));
        c.got_bytes(later + T.header);
        assert_eq!(
            c.deadline(&T),
            Some(later + T.header),
            "the header clock does not restart with each byte"
        );
    }

    #[test]
    fn a_blocked_write_has_the_send_deadline() {
        let start = Instant::now();
        let c = Arc::new(ConnState::new(start));
        let active = c.begin();
        c.write_blocked(start);
        assert_eq!(c.deadline(&T), Some(start + T.send));
        c.write_unblocked();
        assert_eq!(c.deadline(&T), None, "writes go through again");
        drop(active);
        let idle = c.idle_since().expect("idle");
        c.write_blocked(idle);
        assert_eq!(
            c.deadline(&T),
            Some(idle + T.send),
            "the earlier of idle and send"
        );
    }
}
