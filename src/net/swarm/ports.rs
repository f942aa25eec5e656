//! TCP dials that fall back to a fresh local port when the listening port
//! cannot be bound for them.
//!
//! libp2p dials TCP from the port the node listens on (`PortUse::Reuse`),
//! so that peers and NATs see the listening address (hole punching needs
//! it). It retries from a fresh port only when `connect` finds the address
//! pair taken (`EADDRNOTAVAIL`). Binding the listening port for a dial can
//! also fail with `EADDRINUSE` (seen in CI, with many nodes starting on one
//! machine): the bootstrap dial failed, and every dial after it from that
//! port would too. Such a dial is made again from a fresh port, by a second
//! TCP transport that never listens.

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A transport whose port-reusing dials are retried from a fresh port when
/// the listening port cannot be bound (`T` is libp2p's TCP transport; the
/// tests use a stand-in).
pub struct ReuseOrFresh<T> {
    /// Listens, and dials from its listening ports.
    main: T,
    /// Never listens: dials from ports the kernel picks.
    fresh: Arc<Mutex<T>>,
}

impl<T> ReuseOrFresh<T> {
    /// `main` listens and dials; `fresh` (configured alike, never asked to
    /// listen) makes the retried dials.
    pub fn new(main: T, fresh: T) -> Self {
        ReuseOrFresh {
            main,
            fresh: Arc::new(Mutex::new(fresh)),
        }
    }
}

/// The TCP transport cairn's swarm uses: libp2p's, with the fallback.
pub fn tcp(config: libp2p::tcp::Config) -> ReuseOrFresh<libp2p::tcp::tokio::Transport> {
    ReuseOrFresh::new(
        libp2p::tcp::tokio::Transport::new(config.clone()),
        libp2p::tcp::tokio::Transport::new(config),
    )
}

impl<T> Transport for ReuseOrFresh<T>
where
    T: Transport<Error = io::Error> + Unpin + Send + 'static,
    T::Dial: Send + 'static,
    T::Output: Send,
{
    type Output = T::Output;
    type Error = io::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = BoxFuture<'static, Result<T::Output, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        self.main.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.main.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        let first = self.main.dial(addr.clone(), opts)?;
        if opts.port_use == PortUse::New {
            return Ok(first.boxed());
        }
        let fresh = self.fresh.clone();
        Ok(async move {
            match first.await {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    tracing::debug!(%addr, "dial from the listening port: {e}; dialing from a fresh port");
                    let opts = DialOpts {
                        port_use: PortUse::New,
                        ..opts
                    };
                    // The lock is let go before the dial is awaited.
                    let dial = fresh
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .dial(addr, opts)
                        .map_err(|e| match e {
                            TransportError::Other(e) => e,
                            TransportError::MultiaddrNotSupported(a) => {
                                io::Error::other(format!("address not supported: {a}"))
                            }
                        })?;
                    dial.await
                }
                other => other,
            }
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
        Pin::new(&mut self.main).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::{ready, Ready};
    use libp2p::core::Endpoint;

    /// Dials "succeed" with the port use they were made with, or fail with
    /// `EADDRINUSE` when reusing and `busy` is set.
    struct StandIn {
        busy: bool,
    }

    impl Transport for StandIn {
        type Output = PortUse;
        type Error = io::Error;
        type ListenerUpgrade = Ready<Result<PortUse, io::Error>>;
        type Dial = Ready<Result<PortUse, io::Error>>;
        fn listen_on(
            &mut self,
            _: ListenerId,
            a: Multiaddr,
        ) -> Result<(), TransportError<io::Error>> {
            Err(TransportError::MultiaddrNotSupported(a))
        }
        fn remove_listener(&mut self, _: ListenerId) -> bool {
            false
        }
        fn dial(
            &mut self,
            _: Multiaddr,
            o: DialOpts,
        ) -> Result<Self::Dial, TransportError<io::Error>> {
            Ok(ready(if self.busy && o.port_use == PortUse::Reuse {
                Err(io::Error::from(io::ErrorKind::AddrInUse))
            } else {
                Ok(o.port_use)
            }))
        }
        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
            Poll::Pending
        }
    }

    fn dial(t: &mut ReuseOrFresh<StandIn>, port_use: PortUse) -> io::Result<PortUse> {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let opts = DialOpts {
            role: Endpoint::Dialer,
            port_use,
        };
        futures::executor::block_on(t.dial(addr, opts).unwrap())
    }

    #[test]
    fn a_dial_whose_listening_port_is_taken_is_made_from_a_fresh_port() {
        let mut t = ReuseOrFresh::new(StandIn { busy: true }, StandIn { busy: false });
        assert_eq!(dial(&mut t, PortUse::Reuse).unwrap(), PortUse::New);
        let mut t = ReuseOrFresh::new(StandIn { busy: false }, StandIn { busy: false });
        assert_eq!(dial(&mut t, PortUse::Reuse).unwrap(), PortUse::Reuse);
        assert_eq!(dial(&mut t, PortUse::New).unwrap(), PortUse::New);
    }

    #[tokio::test]
    async fn real_tcp_dials_connect_from_the_listening_port() {
        let mut t = tcp(libp2p::tcp::Config::default());
        t.listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let listening = loop {
            match futures::future::poll_fn(|cx| Pin::new(&mut t).poll(cx)).await {
                TransportEvent::NewAddress { listen_addr, .. } => break listen_addr,
                _ => continue,
            }
        };
        let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", peer.local_addr().unwrap().port())
            .parse()
            .unwrap();
        let opts = DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let dialing = t.dial(to, opts).unwrap();
        let (accepted, _) = futures::future::join(peer.accept(), dialing).await;
        let (_, from) = accepted.unwrap();
        let port = listening
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .unwrap();
        assert_eq!(from.port(), port);
    }
}
