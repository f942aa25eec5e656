//! The simulated network every node's libp2p transport runs over.
//!
//! A [`Fabric`] is one shared in-memory network. Each node gets a
//! [`SimTransport`] (a real libp2p `Transport`, upgraded with Noise and
//! Yamux like TCP is) that listens on `/memory/{port}` and dials other
//! nodes' ports. Connections are pairs of byte queues with faults applied:
//!
//! - **latency**: every chunk written becomes readable one one-way delay
//!   later; a link's delay is fixed for the run, drawn from the scenario's
//!   distribution from the seed and the two node numbers. Dialing costs one
//!   round trip before the Noise handshake (which then pays its own).
//! - **bandwidth**: a per-node uplink cap; what a node writes is delivered
//!   no faster than the cap allows (shared by all its connections).
//!   Writers wait when more than [`WINDOW`] bytes are in flight on a link.
//! - **drops**: [`Fabric::break_random_links`] resets live connections
//!   (both ends get an error; bytes in flight are lost).
//! - **partitions**: nodes carry a group number; connections between groups
//!   are reset when a split starts and refused until it heals.
//! - **crashes**: a node that is down has every connection reset and every
//!   dial to or from it refused (after one round trip, like a TCP reset).
//!
//! Time is tokio's clock, scaled: every simulated duration is divided by the
//! scenario's speed before it reaches a timer (see `scenario.rs`).
//!
//! Written here because libp2p's `MemoryTransport` has no latency,
//! bandwidth caps or faults.

use crate::lock;
use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes a link carries in one direction before its writer waits.
pub const WINDOW: usize = 1 << 20;

/// Most bytes taken from one write call (a "packet").
const MAX_CHUNK: usize = 64 * 1024;

/// The `/memory/{port}` address of node `n` (ports start at 1).
pub fn node_addr(n: usize) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(n as u64 + 1))
}

fn addr_node(addr: &Multiaddr) -> Option<usize> {
    let mut it = addr.iter();
    match (it.next(), it.next()) {
        (Some(Protocol::Memory(port)), None | Some(Protocol::P2p(_))) if port > 0 => {
            Some(port as usize - 1)
        }
        _ => None,
    }
}

/// One-way delay of a link, fixed per pair of nodes (wall-clock: already
/// divided by the speed).
pub trait LatencyModel: Send + Sync {
    /// The delay from node `a` to node `b` (and back: links are symmetric).
    fn one_way(&self, a: usize, b: usize) -> Duration;
}

/// No delay at all.
pub struct NoLatency;

impl LatencyModel for NoLatency {
    fn one_way(&self, _: usize, _: usize) -> Duration {
        Duration::ZERO
    }
}

/// One direction of a connection.
struct Half {
    queue: Mutex<VecDeque<(Instant, Bytes)>>,
    queued: AtomicUsize,
    /// The writer closed its side: EOF once the queue is drained.
    closed: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Half {
    fn new() -> Half {
        Half {
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        }
    }
}

/// A connection between two nodes.
struct Link {
    ends: [usize; 2],
    /// `dirs[0]` carries what end 0 writes.
    dirs: [Half; 2],
    /// Reset by a fault: both ends fail at once.
    broken: AtomicBool,
    latency: Duration,
}

impl Link {
    fn break_now(&self) {
        self.broken.store(true, Ordering::SeqCst);
        for d in &self.dirs {
            d.reader.wake();
            d.writer.wake();
        }
    }
}

/// Counters of the whole fabric.
#[derive(Default)]
pub struct FabricStats {
    /// Bytes written onto links.
    pub bytes: AtomicU64,
    /// Connections opened.
    pub connections: AtomicU64,
    /// Dials refused (node down, partitioned or not listening).
    pub refused: AtomicU64,
    /// Connections reset by a fault.
    pub resets: AtomicU64,
}

struct Listener {
    id: ListenerId,
    incoming: mpsc::UnboundedSender<SimConn>,
}

struct State {
    listeners: HashMap<usize, Listener>,
    up: Vec<bool>,
    group: Vec<u32>,
    links: Vec<Weak<Link>>,
    /// Per node: the instant its uplink is free again.
    uplink_free: Vec<Instant>,
}

/// The shared network.
#[derive(Clone)]
pub struct Fabric {
    state: Arc<Mutex<State>>,
    latency: Arc<dyn LatencyModel>,
    /// Uplink cap in bytes per wall-clock second (0: none).
    uplink_bps: u64,
    /// Counters since the fabric was made.
    pub stats: Arc<FabricStats>,
}

impl Fabric {
    /// An empty network; nodes join it by listening.
    pub fn new(latency: Arc<dyn LatencyModel>, uplink_bps: u64) -> Fabric {
        Fabric {
            state: Arc::new(Mutex::new(State {
                listeners: HashMap::new(),
                up: Vec::new(),
                group: Vec::new(),
                links: Vec::new(),
                uplink_free: Vec::new(),
            })),
            latency,
            uplink_bps,
            stats: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The transport node `n` uses.
    pub fn transport(&self, n: usize) -> SimTransport {
        SimTransport {
            fabric: self.clone(),
            node: n,
            listeners: Vec::new(),
        }
    }

    /// Marks a node up or down; going down resets all its connections.
    pub fn set_up(&self, n: usize, up: bool) {
        let links = {
            let mut s = self.state();
            if s.up.len() <= n {
                s.up.resize(n + 1, false);
            }
            s.up[n] = up;
            if !up {
                s.listeners.remove(&n);
            }
            Self::live_links(&mut s)
        };
        if !up {
            for l in links.iter().filter(|l| l.ends.contains(&n)) {
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
                l.break_now();
            }
        }
    }

    /// Splits the network: node `n` goes to group `groups[n]`; connections
    /// between groups are reset and refused until [`heal`](Self::heal).
    pub fn partition(&self, groups: Vec<u32>) {
        let (links, group) = {
            let mut s = self.state();
            s.group = groups;
            (Self::live_links(&mut s), s.group.clone())
        };
        let side = |n: usize| group.get(n).copied().unwrap_or(0);
        for l in links {
            if side(l.ends[0]) != side(l.ends[1]) {
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
                l.break_now();
            }
        }
    }

    /// Ends a partition: every node may reach every other again.
    pub fn heal(&self) {
        self.state().group.clear();
    }

    /// Resets `count` live connections chosen by `pick` (given how many
    /// there are, returns an index).
    pub fn break_random_links(&self, count: usize, pick: &mut dyn FnMut(usize) -> usize) -> usize {
        let links = {
            let mut s = self.state();
            Self::live_links(&mut s)
        };
        let mut broken = 0;
        for _ in 0..count {
            if links.is_empty() {
                break;
            }
            let l = &links[pick(links.len()) % links.len()];
            if !l.broken.swap(true, Ordering::SeqCst) {
                l.break_now();
                broken += 1;
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
            }
        }
        broken
    }

    /// Live connections (drops the dead ones from the list).
    fn live_links(s: &mut State) -> Vec<Arc<Link>> {
        let mut live = Vec::new();
        s.links.retain(|w| match w.upgrade() {
            Some(l) if !l.broken.load(Ordering::Relaxed) => {
                live.push(l);
                true
            }
            _ => false,
        });
        live
    }

    /// Connections opened since the fabric was made.
    pub fn opened(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Open connections now.
    pub fn open_links(&self) -> usize {
        let mut s = self.state();
        Self::live_links(&mut s).len()
    }

    fn reachable(s: &State, a: usize, b: usize) -> bool {
        let group = |n: usize| s.group.get(n).copied().unwrap_or(0);
        s.up.get(a).copied().unwrap_or(false)
            && s.up.get(b).copied().unwrap_or(false)
            && group(a) == group(b)
    }

    /// Connects `from` to the node listening at `to` after one round trip.
    async fn connect(&self, from: usize, to: usize) -> io::Result<SimConn> {
        let latency = self.latency.one_way(from, to);
        tokio::time::sleep(latency * 2).await;
        let mut s = self.state();
        if !Self::reachable(&s, from, to) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("node {to} unreachable from node {from}"),
            ));
        }
        let Some(listener) = s.listeners.get(&to) else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("node {to} is not listening"),
            ));
        };
        let link = Arc::new(Link {
            ends: [from, to],
            dirs: [Half::new(), Half::new()],
            broken: AtomicBool::new(false),
            latency,
        });
        let ours = SimConn::new(self.clone(), Arc::clone(&link), 0);
        let theirs = SimConn::new(self.clone(), Arc::clone(&link), 1);
        if listener.incoming.send(theirs).is_err() {
            s.listeners.remove(&to);
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("node {to} stopped listening"),
            ));
        }
        // Drop dead entries now and then: a large run opens hundreds of
        // thousands of connections.
        if s.links.len() >= 4096 && s.links.len().is_power_of_two() {
            Self::live_links(&mut s);
        }
        s.links.push(Arc::downgrade(&link));
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Ok(ours)
    }

    /// When a chunk of `len` bytes written by `node` now leaves its uplink.
    fn departure(&self, node: usize, len: usize) -> Instant {
        let now = Instant::now();
        if self.uplink_bps == 0 {
            return now;
        }
        let mut s = self.state();
        if s.uplink_free.len() <= node {
            s.uplink_free.resize(node + 1, now);
        }
        let free = &mut s.uplink_free[node];
        let start = (*free).max(now);
        let done = start + Duration::from_secs_f64(len as f64 / self.uplink_bps as f64);
        *free = done;
        done
    }
}

/// One end of a simulated connection.
pub struct SimConn {
    fabric: Fabric,
    link: Arc<Link>,
    /// Which end this is (0 dialer, 1 listener).
    end: usize,
    reading: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SimConn {
    fn new(fabric: Fabric, link: Arc<Link>, end: usize) -> SimConn {
        SimConn {
            fabric,
            link,
            end,
            reading: None,
            sleep: None,
        }
    }

    fn outgoing(&self) -> &Half {
        &self.link.dirs[self.end]
    }

    fn incoming(&self) -> &Half {
        &self.link.dirs[1 - self.end]
    }

    fn reset() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "simulated connection reset")
    }
}

impl Drop for SimConn {
    fn drop(&mut self) {
        let out = self.outgoing();
        out.closed.store(true, Ordering::SeqCst);
        out.reader.wake();
        // Nobody reads what comes in any more: let the writer fail.
        self.link.broken.store(true, Ordering::SeqCst);
        self.incoming().writer.wake();
    }
}

impl AsyncRead for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if let Some(chunk) = this.reading.as_mut() {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                let _ = chunk.split_to(n);
                if chunk.is_empty() {
                    this.reading = None;
                }
                return Poll::Ready(Ok(n));
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            let half = &this.link.dirs[1 - this.end];
            half.reader.register(cx.waker());
            let mut q = lock(&half.queue);
            match q.front() {
                Some((at, _)) if *at > Instant::now() => {
                    let at = *at;
                    drop(q);
                    this.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
                    continue;
                }
                Some(_) => {
                    let (_, chunk) = q.pop_front().expect("front exists");
                    drop(q);
                    half.queued.fetch_sub(chunk.len(), Ordering::SeqCst);
                    half.writer.wake();
                    this.reading = Some(chunk);
                    continue;
                }
                None => {
                    drop(q);
                    if half.closed.load(Ordering::SeqCst) {
                        return Poll::Ready(Ok(0));
                    }
                    if this.link.broken.load(Ordering::SeqCst) {
                        return Poll::Ready(Err(SimConn::reset()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for SimConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.link.broken.load(Ordering::SeqCst) {
            return Poll::Ready(Err(SimConn::reset()));
        }
        let out = self.outgoing();
        if out.queued.load(Ordering::SeqCst) >= WINDOW {
            out.writer.register(cx.waker());
            // The reader may have drained the queue meanwhile.
            if out.queued.load(Ordering::SeqCst) >= WINDOW {
                return Poll::Pending;
            }
        }
        let n = buf.len().min(MAX_CHUNK);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let from = self.link.ends[self.end];
        let at = self.fabric.departure(from, n) + self.link.latency;
        {
            let mut q = lock(&out.queue);
            // Delivery stays in order.
            let at = q.back().map_or(at, |(last, _)| (*last).max(at));
            q.push_back((at, Bytes::copy_from_slice(&buf[..n])));
        }
        out.queued.fetch_add(n, Ordering::SeqCst);
        self.fabric
            .stats
            .bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        out.reader.wake();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.link.broken.load(Ordering::SeqCst) {
            return Poll::Ready(Err(SimConn::reset()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let out = self.outgoing();
        out.closed.store(true, Ordering::SeqCst);
        out.reader.wake();
        Poll::Ready(Ok(()))
    }
}

/// A node's transport on the fabric.
pub struct SimTransport {
    fabric: Fabric,
    node: usize,
    listeners: Vec<(
        ListenerId,
        Multiaddr,
        mpsc::UnboundedReceiver<SimConn>,
        bool,
    )>,
}

impl Transport for SimTransport {
    type Output = SimConn;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::Ready<Result<SimConn, io::Error>>;
    type Dial = Pin<Box<dyn Future<Output = Result<SimConn, io::Error>> + Send>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let Some(n) = addr_node(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if n != self.node {
            return Err(TransportError::Other(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("node {} cannot listen on node {n}'s address", self.node),
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.fabric
            .state()
            .listeners
            .insert(n, Listener { id, incoming: tx });
        self.listeners.push((id, node_addr(n), rx, false));
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|(l, ..)| *l != id);
        if self.listeners.len() != before {
            let mut s = self.fabric.state();
            // Only our own listener: a restarted node may listen anew.
            if s.listeners.get(&self.node).is_some_and(|l| l.id == id) {
                s.listeners.remove(&self.node);
            }
            true
        } else {
            false
        }
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(to) = addr_node(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let fabric = self.fabric.clone();
        let from = self.node;
        Ok(Box::pin(async move { fabric.connect(from, to).await }))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let node = self.node;
        for (id, addr, rx, announced) in self.listeners.iter_mut() {
            if !*announced {
                *announced = true;
                return Poll::Ready(TransportEvent::NewAddress {
                    listener_id: *id,
                    listen_addr: addr.clone(),
                });
            }
            if let Poll::Ready(Some(conn)) = rx.poll_recv(cx) {
                let peer = conn.link.ends[0];
                return Poll::Ready(TransportEvent::Incoming {
                    listener_id: *id,
                    upgrade: futures::future::ready(Ok(conn)),
                    local_addr: node_addr(node),
                    send_back_addr: node_addr(peer),
                });
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    struct Fixed(Duration);
    impl LatencyModel for Fixed {
        fn one_way(&self, _: usize, _: usize) -> Duration {
            self.0
        }
    }

    /// Nodes 0 and 1 up, node 1 listening, and a connection from 0 to 1:
    /// the fabric, node 1's transport, and the connection's two ends.
    async fn connected(
        latency: impl LatencyModel + 'static,
        uplink_bps: u64,
    ) -> (Fabric, SimTransport, SimConn, SimConn) {
        let fabric = Fabric::new(Arc::new(latency), uplink_bps);
        fabric.set_up(0, true);
        fabric.set_up(1, true);
        let mut t1 = fabric.transport(1);
        t1.listen_on(ListenerId::next(), node_addr(1)).unwrap();
        let a = fabric.connect(0, 1).await.unwrap();
        let (_, _, rx, _) = &mut t1.listeners[0];
        let b = rx.recv().await.unwrap();
        (fabric, t1, a, b)
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_after_the_latency() {
        let start = Instant::now();
        let (_fabric, _t1, mut a, mut b) = connected(Fixed(Duration::from_millis(20)), 0).await;
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "dial costs a round trip"
        );
        let sent = Instant::now();
        let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let writer = tokio::spawn(async move {
            a.write_all(&data).await.unwrap();
            a.close().await.unwrap();
            data
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(sent.elapsed() >= Duration::from_millis(20));
        assert_eq!(got, writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_down_node_refuses_and_its_links_reset() {
        let (fabric, _t1, mut a, mut b) = connected(NoLatency, 0).await;
        fabric.set_up(1, false);
        let mut buf = [0u8; 4];
        assert!(b.read(&mut buf).await.is_err());
        assert!(a.write_all(b"hi").await.is_err());
        assert!(fabric.connect(0, 1).await.is_err());
        fabric.set_up(1, true);
        // Up again but not listening until its transport listens anew.
        assert!(fabric.connect(0, 1).await.is_err());
    }

    #[tokio::test]
    async fn partitions_refuse_across_and_heal() {
        let (fabric, _t1, _a, _b) = connected(NoLatency, 0).await;
        assert_eq!(fabric.open_links(), 1);
        fabric.partition(vec![0, 1]);
        assert_eq!(fabric.open_links(), 0);
        assert!(fabric.connect(0, 1).await.is_err());
        fabric.heal();
        assert!(fabric.connect(0, 1).await.is_ok());
    }

    #[tokio::test]
    async fn the_uplink_cap_paces_delivery() {
        // 1 MB/s: 200 kB take at least 0.2 s to arrive.
        let (_fabric, _t1, mut a, mut b) = connected(NoLatency, 1_000_000).await;
        let start = Instant::now();
        tokio::spawn(async move {
            a.write_all(&vec![7u8; 200_000]).await.unwrap();
            a.close().await.unwrap();
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 200_000);
        assert!(start.elapsed() >= Duration::from_millis(190));
    }
}
