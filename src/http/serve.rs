//! The HTTP/1.1 server the API and the gateway run on: accepts connections
//! within [`ConnectionLimits`], closes those that wait too long (headers,
//! idle keep-alive, a stalled request body, a client that stops reading its
//! response), and stops gracefully.
//!
//! Each connection is driven by one task that serves it with hyper and
//! sleeps until its [`ConnState::deadline`]; a request body that sends
//! nothing for the body timeout fails the read the handler is doing, and
//! the connection closes after that response (its body unread).

use super::conn::{ActiveRequest, ConnState, Timeouts, Tracked};
use super::limits::{default_max_connections, Admission, ConnectionLimits, Refused};
use crate::node::config::ConnectionSettings;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::future::{ready, Either, Ready};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a server treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Header, idle and send timeouts.
    pub timeouts: Timeouts,
    /// Longest wait for the next part of a request body.
    pub body_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one IP address.
    pub max_connections_per_client: usize,
}

impl ServeOptions {
    /// The options `settings` give the API (`api`) or the gateway, a
    /// `max_connections` of 0 derived from the file-descriptor limit.
    pub fn new(settings: &ConnectionSettings, api: bool) -> ServeOptions {
        ServeOptions {
            timeouts: Timeouts {
                header: settings.header_timeout,
                idle: settings.idle_timeout,
                send: settings.send_timeout,
            },
            body_timeout: settings.body_timeout,
            max_connections: match settings.max_connections {
                0 => default_max_connections(api),
                n => n,
            },
            max_connections_per_client: settings.max_connections_per_client,
        }
    }
}

/// A request answered before the router, from its method, URI and headers
/// alone, at once (no body, no await, no task hand-off): `None` leaves it
/// to the router. For answers that are ready in memory (the gateway's
/// cached small files).
pub type Shortcut =
    Arc<dyn Fn(&Method, &Uri, &HeaderMap) -> Option<Response> + Send + Sync + 'static>;

/// What a server answers with: its router, and the shortcut tried first.
#[derive(Clone)]
pub struct App {
    /// Every request the shortcut does not answer.
    pub router: Router,
    /// Tried first, for requests without a body.
    pub shortcut: Option<Shortcut>,
}

impl From<Router> for App {
    fn from(router: Router) -> App {
        App {
            router,
            shortcut: None,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets the
/// requests being answered finish (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    app: App,
    options: ServeOptions,
    stop: CancellationToken,
) {
    let limits = ConnectionLimits::new(options.max_connections, options.max_connections_per_client);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                match limits.admit(peer.ip(), ROOM_PATIENCE).await {
                    Ok(admission) => {
                        let service = ConnService {
                            app: app.clone(),
                            conn: Arc::clone(admission.conn()),
                            body_timeout: options.body_timeout,
                        };
                        conns.spawn(drive(tcp, admission, service, options.timeouts, stop.clone()));
                    }
                    Err(refused) => refuse(tcp, &refused),
                }
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// How long a new connection waits for an idle one to close and free its
/// slot (closing takes a task switch; this bounds a stuck close).
const ROOM_PATIENCE: Duration = Duration::from_millis(500);

/// An `accept` error: the connection's own trouble is skipped; running out
/// of descriptors or memory pauses accepting briefly (the pending
/// connections wait in the backlog) instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("accepting an HTTP connection: {e}; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Answers a connection over a cap with 503 (if the socket takes it at
/// once) and closes it.
fn refuse(tcp: TcpStream, why: &Refused) {
    tracing::debug!("refusing an HTTP connection: {why}");
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
        Retry-After: 1\r\nContent-Length: 0\r\n\r\n";
    let _ = tcp.try_write(BUSY);
}

/// Serves one connection until it ends, is evicted, outstays a timeout,
/// or the server stops (then it finishes its requests first).
async fn drive(
    tcp: TcpStream,
    admission: Admission,
    service: ConnService,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    // Streamed responses write headers and body separately; with Nagle's
    // algorithm the body would wait for the client's delayed ACK (≈ 40 ms).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY on an HTTP connection: {e}");
    }
    let conn = Arc::clone(admission.conn());
    let io = TokioIo::new(Tracked::new(tcp, Arc::clone(&conn)));
    let served = hyper::server::conn::http1::Builder::new()
        // The deadlines below instead (hyper's would also end idle ones).
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(served);
    let (evicted, stopped) = (conn.evicted(), stop.cancelled());
    tokio::pin!(evicted, stopped);
    // One timer for the connection's life, moved only when the deadline
    // comes earlier than where it is set: a deadline that moved later
    // (each request's begins later than the last) is found when the timer
    // fires early, so a keep-alive request costs no timer registration.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let mut stopping = false;
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(ended) = served.as_mut().poll(cx) {
            if let Err(e) = ended {
                tracing::debug!("HTTP connection ended: {e}");
            }
            return Poll::Ready(());
        }
        if evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            served.as_mut().graceful_shutdown();
            continue;
        }
        // Every change of the connection's state happens in the poll of
        // `served` just above (its socket's reads and writes, its
        // requests' start and their responses' end), so the deadline read
        // here is current.
        let deadline = conn.deadline(&timeouts);
        if let Some(d) = deadline.filter(|&d| armed.is_none_or(|a| d < a)) {
            timer.as_mut().reset(d);
            armed = Some(d);
        }
        if armed.is_none() || timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        armed = None;
        if deadline.is_some_and(|d| d <= Instant::now()) {
            tracing::debug!("closing an HTTP connection that outstayed its timeout");
            return Poll::Ready(());
        }
    })
    .await
}

/// The app, as one connection's hyper service: each request counts as
/// active until its response is sent, and its body reads time out.
struct ConnService {
    app: App,
    conn: Arc<ConnState>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let active: ActiveRequest = self.conn.begin();
        let timeout = self.body_timeout;
        let with_body = has_body(request.headers());
        if let Some(shortcut) = self.app.shortcut.as_ref().filter(|_| !with_body) {
            if let Some(response) = shortcut(request.method(), request.uri(), request.headers()) {
                return Either::Left(ready(Ok(super::holding(response, active))));
            }
        }
        let request = request.map(|body| axum::body::Body::new(TimedBody::new(body, timeout)));
        let mut router = self.app.router.clone();
        Either::Right(Box::pin(async move {
            let mut response = tower_service::Service::call(&mut router, request).await?;
            // A request refused before its body was read (a failed
            // condition, a missing bucket, a bad argument) leaves the body,
            // or with `Expect: 100-continue` no body at all, on the
            // connection: neither side can know where the next request
            // starts, so the connection is not reused (botocore's next
            // request was read as the rest of a refused PUT's body).
            if with_body && !response.status().is_success() {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(super::holding(response, active))
        }))
    }
}

/// Whether a request's headers announce a body.
fn has_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed or the body was malformed.
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
    /// The client sent nothing for `timeout`.
    #[error("no part of the request body came within {timeout:?}")]
    Stalled {
        /// The body timeout.
        timeout: Duration,
    },
}

/// A request body whose reads fail once nothing came for `timeout`.
struct TimedBody {
    body: Incoming,
    timeout: Duration,
    /// Made at the first read that has to wait (a request without a body
    /// never needs one), re-armed at each such read after data came.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl TimedBody {
    fn new(body: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            body,
            timeout,
            stall: None,
            armed: false,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let deadline = Instant::now() + this.timeout;
        let stall = this
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !this.armed {
            this.armed = true;
            stall.as_mut().reset(deadline);
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled {
                timeout: this.timeout,
            }))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
