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
//! - **NAT** ([`Nat`], `fabric/nat.rs`): a node may sit behind a NAT. Its
//!   own dials go out as before; a dial *to* it gets in only as a real NAT
//!   would let it. A cone NAT (endpoint-independent mapping,
//!   port-restricted filtering) lets in a peer that the node dialed from
//!   its listening port within the mapping lifetime, when that peer dials
//!   from its own listening port and is not behind a symmetric NAT (whose
//!   port changes with each destination). A dial from a fresh port, as
//!   AutoNAT's dial-backs are, never gets in. A symmetric NAT lets nothing
//!   in. Hole punching is modelled as TCP's simultaneous open: a dial made
//!   with the listener role (DCUtR's side that overrides its role) waits
//!   a few round trips for the peer's dial towards it; when both got
//!   through their NATs they become one connection (each side's dial
//!   resolves to one end of it, nothing reaches a listener), otherwise the
//!   punch fails. Ordinary dials crossing a punch in flight wait for it
//!   the same way, and go to the listener if it never comes. What is not
//!   modelled: addresses and ports themselves (a node's one address
//!   stands for its NAT's public one), mapping or filtering by IP only
//!   (full cone), hairpinning, NAT boxes shared by several nodes.
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
use libp2p::core::transport::{DialOpts, ListenerId, PortUse};
use libp2p::core::Endpoint;
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

mod nat;
mod transport;
pub use nat::Nat;
pub use transport::SimTransport;

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
    // Nothing after the peer id: a `/p2p-circuit` address is the relay
    // transport's.
    match (it.next(), it.next(), it.next()) {
        (Some(Protocol::Memory(port)), None | Some(Protocol::P2p(_)), None) if port > 0 => {
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

/// Where a dial stands once it reached the other side.
enum Arrival {
    /// Connected or refused.
    Done(io::Result<SimConn>),
    /// Waiting for the other half of a hole punch (receiver, waiter id).
    Wait(tokio::sync::oneshot::Receiver<SimConn>, u64),
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
    /// Dials a NAT kept out (counted in `refused` too).
    pub nat_refused: AtomicU64,
    /// Hole-punch dials (made with the listener role).
    pub punches: AtomicU64,
    /// Of those, punches that met the peer's dial: one direct connection.
    pub punched: AtomicU64,
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
    nat: nat::NatTable,
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
                nat: nat::NatTable::new(Duration::from_secs(120)),
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

    /// Puts node `n` behind `nat` (its live connections stay).
    pub fn set_nat(&self, n: usize, nat: Nat) {
        self.state().nat.set(n, nat);
    }

    /// Node `n`'s NAT.
    pub fn nat(&self, n: usize) -> Nat {
        self.state().nat.kind(n)
    }

    /// How long a NAT mapping stays open after the dial that made it
    /// (wall clock; 120 s unless set).
    pub fn set_mapping_ttl(&self, ttl: Duration) {
        self.state().nat.mapping_ttl = ttl;
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

    fn refuse(&self, why: String) -> io::Error {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        io::Error::new(io::ErrorKind::ConnectionRefused, why)
    }

    /// A new connection between `ends[0]` (which the dial made) and
    /// `ends[1]`: the first end's and the second's halves.
    fn link(&self, s: &mut State, ends: [usize; 2]) -> (SimConn, SimConn) {
        let link = Arc::new(Link {
            ends,
            dirs: [Half::new(), Half::new()],
            broken: AtomicBool::new(false),
            latency: self.latency.one_way(ends[0], ends[1]),
        });
        // Drop dead entries now and then: a large run opens hundreds of
        // thousands of connections.
        if s.links.len() >= 4096 && s.links.len().is_power_of_two() {
            Self::live_links(s);
        }
        s.links.push(Arc::downgrade(&link));
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        (
            SimConn::new(self.clone(), Arc::clone(&link), 0),
            SimConn::new(self.clone(), link, 1),
        )
    }

    /// Connects `from` to `to` after one round trip, through the NATs
    /// (see the module header): to the node's listener, or, for a hole
    /// punch, to the peer's own dial towards `from`.
    async fn connect(&self, from: usize, to: usize, opts: DialOpts) -> io::Result<SimConn> {
        let listener_role = opts.role == Endpoint::Listener;
        let fresh_port = opts.port_use == PortUse::New;
        let latency = self.latency.one_way(from, to);
        {
            let mut s = self.state();
            s.nat.dialing(from, to, fresh_port, listener_role);
            if listener_role {
                self.stats.punches.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(latency * 2).await;
        let (mut rx, id) = {
            let mut s = self.state();
            match self.arrive(&mut s, from, to, listener_role, fresh_port) {
                Arrival::Done(result) => return result,
                Arrival::Wait(rx, id) => (rx, id),
            }
        };
        // DCUtR times both dials to leave together; a few round trips of
        // slack, and never less than 200 ms of wall clock.
        let window = latency * 8 + Duration::from_millis(200);
        if let Ok(Ok(conn)) = tokio::time::timeout(window, &mut rx).await {
            return Ok(conn);
        }
        let mut s = self.state();
        if !s.nat.give_up(from, to, id) {
            // Paired at the last moment.
            if let Ok(conn) = rx.try_recv() {
                return Ok(conn);
            }
        }
        if listener_role {
            return Err(self.refuse(format!(
                "hole punch from node {from} to node {to}: no dial from node {to} met it"
            )));
        }
        self.deliver(&mut s, from, to)
    }

    /// A dial from `from` reaches `to`'s side: refused, paired with a
    /// hole punch waiting for it, made to wait for its other half, or
    /// handed to `to`'s listener.
    fn arrive(
        &self,
        s: &mut State,
        from: usize,
        to: usize,
        listener_role: bool,
        fresh_port: bool,
    ) -> Arrival {
        if listener_role {
            s.nat.punch_arrived(from, to);
        }
        if !Self::reachable(s, from, to) {
            s.nat.release(from, to);
            return Arrival::Done(Err(
                self.refuse(format!("node {to} unreachable from node {from}"))
            ));
        }
        if !s.nat.admits(to, from, fresh_port) {
            s.nat.release(from, to);
            self.stats.nat_refused.fetch_add(1, Ordering::Relaxed);
            return Arrival::Done(Err(
                self.refuse(format!("node {to}'s NAT keeps out node {from}"))
            ));
        }
        if let Some(partner) = s.nat.take_partner(to, from, listener_role) {
            // Simultaneous open: both dials end in one connection.
            let (ours, theirs) = self.link(s, [from, to]);
            self.stats.punched.fetch_add(1, Ordering::Relaxed);
            // A partner that stopped waiting just now drops this end.
            let _ = partner.send(theirs);
            return Arrival::Done(Ok(ours));
        }
        if s.nat.should_wait(from, to, listener_role) {
            let (rx, id) = s.nat.wait(from, to, listener_role);
            return Arrival::Wait(rx, id);
        }
        Arrival::Done(self.deliver(s, from, to))
    }

    /// Hands a new connection from `from` to `to`'s listener.
    fn deliver(&self, s: &mut State, from: usize, to: usize) -> io::Result<SimConn> {
        if !Self::reachable(s, from, to) {
            return Err(self.refuse(format!("node {to} unreachable from node {from}")));
        }
        let Some(listener) = s.listeners.get(&to) else {
            return Err(self.refuse(format!("node {to} is not listening")));
        };
        let incoming = listener.incoming.clone();
        let (ours, theirs) = self.link(s, [from, to]);
        if incoming.send(theirs).is_err() {
            s.listeners.remove(&to);
            return Err(self.refuse(format!("node {to} stopped listening")));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::Transport;

    /// An ordinary dial's options.
    fn dial() -> DialOpts {
        DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

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
        let a = fabric.connect(0, 1, dial()).await.unwrap();
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
        assert!(fabric.connect(0, 1, dial()).await.is_err());
        fabric.set_up(1, true);
        // Up again but not listening until its transport listens anew.
        assert!(fabric.connect(0, 1, dial()).await.is_err());
    }

    #[tokio::test]
    async fn partitions_refuse_across_and_heal() {
        let (fabric, _t1, _a, _b) = connected(NoLatency, 0).await;
        assert_eq!(fabric.open_links(), 1);
        fabric.partition(vec![0, 1]);
        assert_eq!(fabric.open_links(), 0);
        assert!(fabric.connect(0, 1, dial()).await.is_err());
        fabric.heal();
        assert!(fabric.connect(0, 1, dial()).await.is_ok());
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

    /// Nodes 0..3 up and listening, node 1 behind a cone NAT, node 2
    /// behind a symmetric one.
    fn natted() -> (Fabric, Vec<SimTransport>) {
        let fabric = Fabric::new(Arc::new(Fixed(Duration::from_millis(5))), 0);
        let mut ts = Vec::new();
        for n in 0..3 {
            fabric.set_up(n, true);
            let mut t = fabric.transport(n);
            t.listen_on(ListenerId::next(), node_addr(n)).unwrap();
            ts.push(t);
        }
        fabric.set_nat(1, Nat::Cone);
        fabric.set_nat(2, Nat::Symmetric);
        (fabric, ts)
    }

    #[tokio::test]
    async fn a_cone_nat_lets_in_only_whom_it_dialed_and_a_symmetric_one_nobody() {
        let (fabric, _ts) = natted();
        assert!(fabric.connect(0, 1, dial()).await.is_err());
        assert_eq!(fabric.stats.nat_refused.load(Ordering::Relaxed), 1);
        assert!(fabric.connect(1, 0, dial()).await.is_ok(), "out is fine");
        assert!(fabric.connect(0, 1, dial()).await.is_ok(), "back in");
        let fresh = DialOpts {
            port_use: PortUse::New,
            ..dial()
        };
        assert!(
            fabric.connect(0, 1, fresh).await.is_err(),
            "AutoNAT's dial-back"
        );
        assert!(fabric.connect(2, 0, dial()).await.is_ok());
        assert!(fabric.connect(0, 2, dial()).await.is_err());
        assert!(fabric.connect(1, 2, dial()).await.is_err());
        assert!(fabric.connect(2, 1, dial()).await.is_err());
    }

    /// Node `a` punches (listener role) towards `b` while `b` dials `a`:
    /// whether both dials end in one connection.
    async fn punch(fabric: &Fabric, a: usize, b: usize) -> bool {
        let punch = DialOpts {
            role: Endpoint::Listener,
            ..dial()
        };
        let (x, y) = tokio::join!(fabric.connect(a, b, punch), fabric.connect(b, a, dial()));
        match (x, y) {
            (Ok(x), Ok(y)) => {
                assert!(Arc::ptr_eq(&x.link, &y.link), "one connection");
                true
            }
            _ => false,
        }
    }

    #[tokio::test]
    async fn a_hole_punch_joins_both_dials_unless_a_nat_is_symmetric() {
        let (fabric, _ts) = natted();
        fabric.set_nat(0, Nat::Cone);
        assert!(punch(&fabric, 1, 0).await);
        assert!(punch(&fabric, 0, 1).await);
        assert_eq!(fabric.stats.punched.load(Ordering::Relaxed), 2);
        assert!(!punch(&fabric, 1, 2).await);
        assert!(!punch(&fabric, 2, 1).await);
        // Alone, a punch finds nobody.
        let alone = DialOpts {
            role: Endpoint::Listener,
            ..dial()
        };
        fabric.set_nat(0, Nat::Open);
        assert!(fabric.connect(1, 0, alone).await.is_err());
    }
}
