//! How many connections a server holds: at most `max_total`, and at most
//! `max_per_client` from one IP address. At a cap, the connection that has
//! been idle (or waiting for its headers) longest makes room for the new
//! one; only when every connection in the way is answering a request is the
//! new one refused. Connections that hold a slot without using it (idle
//! keep-alives, slowloris headers) therefore never lock clients out.

use super::conn::ConnState;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `ip` already has `max` connections, each answering a request.
    #[error("{ip} already has {max} busy connections")]
    Client {
        /// The client's address.
        ip: IpAddr,
        /// Its cap.
        max: usize,
    },
    /// The server has `max` connections, each answering a request.
    #[error("all {max} connections are busy")]
    Server {
        /// The server's cap.
        max: usize,
    },
    /// The connections told to close to make room did not in time.
    #[error("no connection closed in time to make room")]
    Closing,
}

/// One server's open connections, by the address they come from.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
    /// Notified whenever a connection's slot is freed.
    freed: Notify,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, (IpAddr, Arc<ConnState>)>,
}

/// What [`ConnectionLimits::try_admit`] decided.
#[derive(Debug)]
pub enum Admit {
    /// The connection has its slot.
    Admitted(Admission),
    /// A connection in the way is closing to make room: try again once a
    /// slot is freed.
    Wait,
    /// Every connection in the way is busy.
    Refused(Refused),
}

impl Open {
    /// Makes room among the connections `from` picks: `true` when one is
    /// already closing, or the one idle longest was told to close.
    fn make_room(&mut self, from: impl Fn(&IpAddr) -> bool) -> bool {
        let mine = || self.conns.values().filter(|(ip, _)| from(ip));
        if mine().any(|(_, c)| c.is_evicted()) {
            return true;
        }
        let idlest = mine()
            .filter_map(|(_, c)| Some((c.idle_since()?, c)))
            .min_by_key(|(t, _)| *t);
        match idlest {
            Some((_, conn)) => {
                conn.evict();
                true
            }
            None => false,
        }
    }
}

impl ConnectionLimits {
    /// Caps of `max_total` connections, `max_per_client` per IP (at least
    /// one each).
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            open: Mutex::new(Open::default()),
            freed: Notify::new(),
        })
    }

    /// Admits a connection from `ip` accepted at `now` if both caps allow;
    /// else tells an idle connection in the way to close. A closing
    /// connection keeps its slot (and descriptor) until it has closed.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Admit {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.conns.values().filter(|(i, _)| *i == ip).count();
        if from_ip >= self.max_per_client {
            return match open.make_room(|i| *i == ip) {
                true => Admit::Wait,
                false => Admit::Refused(Refused::Client {
                    ip,
                    max: self.max_per_client,
                }),
            };
        }
        if open.conns.len() >= self.max_total {
            return match open.make_room(|_| true) {
                true => Admit::Wait,
                false => Admit::Refused(Refused::Server {
                    max: self.max_total,
                }),
            };
        }
        let id = open.next_id;
        open.next_id += 1;
        let conn = Arc::new(ConnState::new(now));
        open.conns.insert(id, (ip, Arc::clone(&conn)));
        Admit::Admitted(Admission {
            limits: Arc::clone(self),
            id,
            conn,
        })
    }

    /// [`try_admit`](Self::try_admit), waiting up to `patience` for the
    /// connections told to close to do so.
    pub async fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        patience: Duration,
    ) -> Result<Admission, Refused> {
        let deadline = Instant::now() + patience;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_admit(ip, Instant::now()) {
                Admit::Admitted(a) => return Ok(a),
                Admit::Refused(r) => return Err(r),
                Admit::Wait => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(Refused::Closing);
                    }
                }
            }
        }
    }

    /// Connections open now (closing ones included).
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len()
    }
}

/// An admitted connection's slot, freed on drop.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    id: u64,
    conn: Arc<ConnState>,
}

impl Admission {
    /// The connection's state.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.conn
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.conns.remove(&self.id);
        drop(open);
        self.limits.freed.notify_waiters();
    }
}

/// Descriptors left to everything but HTTP connections: the store's files
/// and index, the swarm's listeners, the runtime, logs.
const RESERVED_FDS: usize = 64;

/// The HTTP servers' share of what remains (the rest is the swarm's).
const HTTP_SHARE_DIVISOR: usize = 2;

/// The default `max_connections` of the API (a quarter of the HTTP share)
/// or the gateway (the rest), from the process's file-descriptor limit:
/// both servers full still leave room for the store and the swarm.
pub fn default_max_connections(api: bool) -> usize {
    let budget = fd_limit().saturating_sub(RESERVED_FDS) / HTTP_SHARE_DIVISOR;
    let api_share = budget / 4;
    if api {
        api_share.max(4)
    } else {
        (budget - api_share).max(4)
    }
}

/// The soft `RLIMIT_NOFILE` (1024 if unknown; at most 65536 counted).
fn fd_limit() -> usize {
    const UNKNOWN: usize = 1024;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        return UNKNOWN;
    }
    usize::try_from(limit.rlim_cur).map_or(65536, |n| n.min(65536))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn admitted(limits: &Arc<ConnectionLimits>, from: u8, at: Instant) -> Admission {
        match limits.try_admit(ip(from), at) {
            Admit::Admitted(a) => a,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn a_client_over_its_cap_replaces_its_idlest_connection() {
        let limits = ConnectionLimits::new(10, 2);
        let t0 = Instant::now();
        let oldest = admitted(&limits, 2, t0);
        let newer = admitted(&limits, 2, t0 + Duration::from_secs(1));
        assert!(matches!(limits.try_admit(ip(2), t0), Admit::Wait));
        assert!(oldest.conn().is_evicted());
        assert!(!newer.conn().is_evicted());
        // The closing one still holds its slot.
        assert!(matches!(limits.try_admit(ip(2), t0), Admit::Wait));
        drop(oldest);
        let third = admitted(&limits, 2, t0 + Duration::from_secs(2));
        // Both busy: the next is refused; another client is not affected.
        let _a = newer.conn().begin();
        let _b = third.conn().begin();
        assert!(matches!(
            limits.try_admit(ip(2), t0),
            Admit::Refused(Refused::Client { max: 2, .. })
        ));
        let _other = admitted(&limits, 3, t0);
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn the_server_cap_replaces_the_idlest_connection_anywhere() {
        let limits = ConnectionLimits::new(2, 10);
        let t0 = Instant::now();
        let busy = admitted(&limits, 2, t0);
        let _req = busy.conn().begin();
        let idle = admitted(&limits, 3, t0 + Duration::from_secs(1));
        assert!(matches!(limits.try_admit(ip(4), t0), Admit::Wait));
        assert!(idle.conn().is_evicted());
        assert!(!busy.conn().is_evicted(), "a busy connection stays");
        drop(idle);
        let new = admitted(&limits, 4, t0 + Duration::from_secs(2));
        let _also_busy = new.conn().begin();
        assert!(matches!(
            limits.try_admit(ip(5), t0),
            Admit::Refused(Refused::Server { max: 2 })
        ));
    }

    #[tokio::test]
    async fn admit_waits_for_the_evicted_connection_to_close() {
        let limits = ConnectionLimits::new(1, 1);
        let idle = admitted(&limits, 2, Instant::now());
        let conn = Arc::clone(idle.conn());
        let closer = tokio::spawn(async move {
            conn.evicted().await;
            drop(idle);
        });
        let second = limits.admit(ip(3), Duration::from_secs(5)).await;
        assert!(second.is_ok(), "{second:?}");
        closer.await.unwrap();
        let held = second.unwrap();
        let _busy = held.conn().begin();
        let third = limits.admit(ip(4), Duration::from_millis(10)).await;
        assert_eq!(third.unwrap_err(), Refused::Server { max: 1 });
    }

    #[test]
    fn defaults_fit_below_the_descriptor_limit() {
        let (api, gateway) = (
            default_max_connections(true),
            default_max_connections(false),
        );
        assert!(api >= 4 && gateway >= api);
        assert!(api + gateway + RESERVED_FDS <= fd_limit().max(RESERVED_FDS + 8));
    }
}
