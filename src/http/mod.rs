//! HTTP plumbing shared by the RPC API and the gateway: the server both
//! run on ([`serve`]: connection timeouts and caps, in `conn.rs` and
//! `limits.rs`), streamed response bodies, request metrics.

mod conn;
mod limits;
mod serve;

pub use conn::Timeouts;
pub use limits::{Admission, Admit, ConnectionLimits, Refused};
pub use serve::{serve, App, BodyError, ServeOptions, Shortcut};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Whatever error ended a producer's output (a DAG, CAR or write error):
/// logged, and handed to the response as the source of an I/O error.
pub type ProducerError = Box<dyn std::error::Error + Send + Sync>;

/// Streams blocking output (a reader, a tar or CAR writer) through a small
/// channel into a response body. An error mid-stream ends the body early:
/// the connection is cut, which clients see as a truncated body (Kubo
/// names the error in an `X-Stream-Error` trailer instead).
pub fn stream_blocking(
    content_type: &'static str,
    produce: impl FnOnce(&mut ChannelWriter) -> Result<(), ProducerError> + Send + 'static,
) -> Response {
    let rx = spawn_producer(produce);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Bytes per streamed chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks a response's producer may have queued ahead of the client: with
/// the reader's window, what a response holds (memory: this many chunks of
/// up to a block each, per request in flight).
const QUEUED_CHUNKS: usize = 4;

/// Chunks at least this large go out as they are instead of being copied
/// into the next buffer (a file's blocks are usually 256 KiB or 1 MiB), in
/// slices of at most [`CHUNK_BYTES`] (so the queue holds no more than that
/// many bytes per chunk: about one 1 MiB block, not four).
const PASS_THROUGH_BYTES: usize = 64 * 1024;

/// The sending end of a streamed body: small writes gather into
/// 256 KiB buffers, whole blocks pass through [`send`](Self::send)
/// without a copy.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// Sends `chunk` after what is buffered, without copying it when it is
    /// large.
    pub fn send(&mut self, chunk: Bytes) -> std::io::Result<()> {
        if chunk.len() < PASS_THROUGH_BYTES {
            return std::io::Write::write_all(self, &chunk);
        }
        std::io::Write::flush(self)?;
        let mut at = 0;
        while at < chunk.len() {
            let end = (at + CHUNK_BYTES).min(chunk.len());
            self.push(chunk.slice(at..end))?;
            at = end;
        }
        Ok(())
    }

    fn push(&self, chunk: Bytes) -> std::io::Result<()> {
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.push(chunk)
    }
}

/// Runs `produce` on a blocking thread, its output coming out of the
/// returned channel in chunks (bounded: the producer waits for the client).
pub fn spawn_producer(
    produce: impl FnOnce(&mut ChannelWriter) -> Result<(), ProducerError> + Send + 'static,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        let result = produce(&mut w)
            .and_then(|()| std::io::Write::flush(&mut w).map_err(ProducerError::from));
        if let Err(e) = result {
            tracing::warn!("response ended early: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    rx
}

/// Why no first chunk came.
pub enum FirstChunk {
    /// Nothing within the deadline.
    Timeout,
    /// The producer failed before sending anything (its error inside).
    Failed(std::io::Error),
}

/// Waits up to `deadline` for the producer's first chunk, then makes a body
/// of it and the rest; also returns that first chunk (empty for an empty
/// output), e.g. to sniff a content type from.
pub async fn first_chunk_then_rest(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    deadline: std::time::Duration,
) -> Result<(axum::body::Body, Bytes), FirstChunk> {
    let first = match tokio::time::timeout(deadline, rx.recv()).await {
        Err(_) => return Err(FirstChunk::Timeout),
        Ok(None) => None,
        Ok(Some(Err(e))) => return Err(FirstChunk::Failed(e)),
        Ok(Some(Ok(b))) => Some(b),
    };
    let peek = first.clone().unwrap_or_default();
    let head = futures::stream::iter(first.map(Ok::<Bytes, std::io::Error>));
    let rest =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((
        axum::body::Body::from_stream(futures::StreamExt::chain(head, rest)),
        peek,
    ))
}

/// A request's labels: the server (`api`, `gateway`, `s3`) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RequestLabels {
    surface: &'static str,
    status: u16,
}

/// A server's label, for its latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct SurfaceLabel {
    surface: &'static str,
}

/// A read route's labels: the server and the route within it (one of a
/// fixed set each server names, e.g. `ipfs_path`, `cat`, `GetObject`;
/// never taken from the request's text).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RouteLabels {
    surface: &'static str,
    route: &'static str,
}

type Histograms<L> = prometheus_client::metrics::family::Family<
    L,
    prometheus_client::metrics::histogram::Histogram,
    fn() -> prometheus_client::metrics::histogram::Histogram,
>;

/// The read route a server's request takes, from its method, URI and
/// headers (`None`: not a read route). Each server has its own, returning
/// only names of its fixed set, so the label set stays bounded whatever
/// the requests.
pub type RouteOf = fn(&axum::extract::Request) -> Option<&'static str>;

/// A server, for [`count_requests`]: its name and its [`RouteOf`].
#[derive(Clone, Copy)]
pub struct Surface {
    /// `api`, `gateway` or `s3`.
    pub name: &'static str,
    /// Its read routes.
    pub route_of: RouteOf,
}

/// HTTP requests answered: counted by server and status, and how long
/// each server took to answer them, overall and per read route (until the
/// response's head is ready; a streamed body's time is not counted).
#[derive(Clone)]
pub struct RequestMetrics {
    /// `cairn_http_requests_total{surface, status}`.
    pub counts: prometheus_client::metrics::family::Family<
        RequestLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// `cairn_http_request_seconds{surface}`: 50 µs to 1.6 s.
    pub latency: Histograms<SurfaceLabel>,
    /// `cairn_http_route_seconds{surface, route}`: the same, per read
    /// route.
    pub routes: Histograms<RouteLabels>,
}

/// Latency buckets: 50 µs doubling to 1.6 s.
fn latency_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(50e-6, 2.0, 16),
    )
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            counts: Default::default(),
            latency: Histograms::new_with_constructor(latency_histogram),
            routes: Histograms::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestMetrics {
    /// The metrics a `200` answer of `surface`'s read `route` moves,
    /// looked up once (for a [`Shortcut`], which answers without
    /// [`count_requests`]).
    pub fn tally(&self, surface: &'static str, route: &'static str) -> RouteTally {
        RouteTally {
            ok: self
                .counts
                .get_or_create(&RequestLabels {
                    surface,
                    status: 200,
                })
                .clone(),
            latency: self
                .latency
                .get_or_create(&SurfaceLabel { surface })
                .clone(),
            route: self
                .routes
                .get_or_create(&RouteLabels { surface, route })
                .clone(),
        }
    }
}

/// The counter and histograms of one read route's `200` answers.
#[derive(Clone)]
pub struct RouteTally {
    ok: prometheus_client::metrics::counter::Counter,
    latency: prometheus_client::metrics::histogram::Histogram,
    route: prometheus_client::metrics::histogram::Histogram,
}

impl RouteTally {
    /// Counts one answer, begun at `started`, as [`count_requests`] would.
    pub fn record(&self, started: std::time::Instant) {
        let seconds = started.elapsed().as_secs_f64();
        self.latency.observe(seconds);
        self.route.observe(seconds);
        self.ok.inc();
    }
}

/// Counts every response of a router and its latency under its surface,
/// and under its read route when it takes one.
pub async fn count_requests(
    axum::extract::State((metrics, surface)): axum::extract::State<(RequestMetrics, Surface)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = (surface.route_of)(&request);
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let name = surface.name;
    metrics
        .latency
        .get_or_create(&SurfaceLabel { surface: name })
        .observe(seconds);
    if let Some(route) = route {
        metrics
            .routes
            .get_or_create(&RouteLabels {
                surface: name,
                route,
            })
            .observe(seconds);
    }
    metrics
        .counts
        .get_or_create(&RequestLabels {
            surface: name,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `response` whose body holds `held` (a drop guard, a permit) until the
/// body has been sent or dropped (the client went away).
pub fn holding<H: Send + Unpin + 'static>(response: Response, held: H) -> Response {
    response.map(|body| axum::body::Body::new(Holding { body, _held: held }))
}

/// A body and what it holds while it lives.
struct Holding<H> {
    body: axum::body::Body,
    _held: H,
}

impl<H: Unpin> http_body::Body for Holding<H> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
