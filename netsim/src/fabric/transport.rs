//! A node's libp2p `Transport` on the fabric: it listens on the node's
//! `/memory/{port}` address and dials through [`Fabric::connect`], which
//! applies the faults and NATs.

use super::{addr_node, node_addr, Fabric, Listener, SimConn};
use futures::future::Ready;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A node's transport on the fabric.
pub struct SimTransport {
    pub(super) fabric: Fabric,
    pub(super) node: usize,
    /// Each listener: its id, address, incoming connections, and whether
    /// its address was announced.
    pub(super) listeners: Vec<(
        ListenerId,
        Multiaddr,
        mpsc::UnboundedReceiver<SimConn>,
        bool,
    )>,
}

impl Transport for SimTransport {
    type Output = SimConn;
    type Error = io::Error;
    type ListenerUpgrade = Ready<Result<SimConn, io::Error>>;
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
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(to) = addr_node(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let fabric = self.fabric.clone();
        let from = self.node;
        Ok(Box::pin(
            async move { fabric.connect(from, to, opts).await },
        ))
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
