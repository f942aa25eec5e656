//! Fetch sessions: the task that runs one [`Session`] state machine for a
//! reader, a `get` or a pin, over the Bitswap engine.
//!
//! [`Session`]: super::session::Session
//!
//! A [`FetchSession`] is a cloneable handle. Callers ask for blocks
//! ([`FetchSession::get`], or [`FetchSession::get_blocking`] from the DAG
//! reader's threads, which also see it as a [`BlockSource`]) and may hint
//! blocks they will want soon ([`FetchSession::prefetch`]) so several are in
//! flight at once. The task:
//!
//! - asks connected peers first, adds peers as they connect, and looks up
//!   DHT providers when a want has nobody left to ask or nothing arrived for
//!   a second (then again every [`PROVIDER_SEARCH_INTERVAL`]);
//! - hands each verified block to whoever waits for it at once and stores
//!   received blocks in batches (one fsync per batch) on a blocking thread,
//!   holding back new want-blocks while too many wait to be stored;
//! - fetches a block whose local copy is corrupt or unreadable as if it
//!   were missing, and writes the verified copy over a corrupt one;
//! - fails the waiting callers when no wanted block arrived for
//!   `stall_timeout`, cancelling the wants at the peers;
//! - ends, cancelling what is still wanted, when every handle is dropped.
//!
//! - `task.rs`: the session task (wants, deliveries, storing, provider
//!   lookups, the stall timeout).
//! - `recent.rs`: blocks that arrived before their reader asked.
//! - `lazy.rs`: a block source that starts a session only when a block is
//!   missing locally.

mod lazy;
mod recent;
mod task;

pub use lazy::LazySource;

use crate::block::{Block, Cid};
use crate::dag::{BlockSource, DagError};
use crate::net::bitswap::session::SessionConfig;
use crate::net::NetError;
use crate::store::{Store, StoreError};
use libp2p::PeerId;
use recent::{recent_take, SharedRecent};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How often a stalled session looks for providers again.
pub const PROVIDER_SEARCH_INTERVAL: Duration = Duration::from_secs(10);

/// Commands queued for a session task before callers wait.
const COMMAND_DEPTH: usize = 1024;

/// How long a peer that forged a block is refused.
pub(super) const BAN_DURATION: Duration = Duration::from_secs(600);

/// When a session asks the DHT for providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderSearch {
    /// Never: only connected and added peers are asked.
    Never,
    /// At once when a want has nobody left to ask, and after a second
    /// without a block: a `get` knows nothing but the CID.
    Eager,
    /// Only after this long without a wanted block: the caller added the
    /// peers that should have the blocks (a replica fetch names the
    /// holders), and a lookup per fetch would load the network for nothing
    /// while those peers answer.
    After(Duration),
}

/// Tuning of one fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchOptions {
    /// The session state machine's tuning.
    pub session: SessionConfig,
    /// Give up when no wanted block arrived for this long.
    pub stall_timeout: Duration,
    /// When to look up DHT providers besides the peers already known.
    pub provider_search: ProviderSearch,
    /// Most providers taken from one DHT lookup.
    pub max_providers: usize,
    /// Keep the session's received bytes under this rate (bytes per
    /// second; `None`: as fast as peers send). Repairs use it.
    pub max_bytes_per_sec: Option<u64>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            session: SessionConfig::default(),
            stall_timeout: Duration::from_secs(60),
            provider_search: ProviderSearch::Eager,
            max_providers: 20,
            max_bytes_per_sec: None,
        }
    }
}

/// Live figures of a session, for progress bars.
#[derive(Debug, Default)]
pub struct FetchProgress {
    /// What the session fetches (DHT lookups search for it).
    pub root: Option<Cid>,
    /// Blocks received from peers.
    pub blocks: AtomicU64,
    /// Bytes of those blocks.
    pub bytes: AtomicU64,
    /// Peers the session may ask.
    pub peers: AtomicUsize,
    /// Peers that have sent it a wanted block.
    pub senders: AtomicUsize,
}

type Reply = oneshot::Sender<Result<Block, NetError>>;

enum FetchCommand {
    /// Want `cid`; `None` is a prefetch hint.
    Want(Cid, Option<Reply>),
    AddPeers(Vec<PeerId>),
    Flush(oneshot::Sender<Result<(), NetError>>),
}

/// What a request to a session task that has ended fails with.
const SESSION_STOPPED: NetError = NetError::Stopped {
    task: "fetch session",
};

/// What registering with an engine that has ended fails with.
const ENGINE_STOPPED: NetError = NetError::Stopped {
    task: "Bitswap engine",
};

/// A handle to a running fetch session.
#[derive(Clone)]
pub struct FetchSession {
    commands: mpsc::Sender<FetchCommand>,
    store: Arc<dyn Store>,
    progress: Arc<FetchProgress>,
    recent: SharedRecent,
}

impl FetchSession {
    /// The block `cid` if it is at hand without asking peers: an identity
    /// CID's, one received before it was asked for, or the store's copy.
    fn at_hand(&self, cid: &Cid) -> Result<Option<Block>, NetError> {
        if let Some(b) = crate::block::identity_block(cid) {
            return Ok(Some(b));
        }
        if let Some(b) = recent_take(&self.recent, cid) {
            return Ok(Some(b));
        }
        match self.store.get(cid) {
            Ok(b) => Ok(b),
            // The session task reads it again and asks peers.
            Err(e) if fetch_instead(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The block `cid`: from the store, else from peers.
    pub async fn get(&self, cid: Cid) -> Result<Block, NetError> {
        if let Some(b) = self.at_hand(&cid)? {
            return Ok(b);
        }
        let (tx, rx) = oneshot::channel();
        let want = FetchCommand::Want(cid, Some(tx));
        self.commands
            .send(want)
            .await
            .map_err(|_| SESSION_STOPPED)?;
        rx.await.map_err(|_| SESSION_STOPPED)?
    }

    /// [`get`](Self::get) for threads outside the async runtime.
    pub fn get_blocking(&self, cid: Cid) -> Result<Block, NetError> {
        if let Some(b) = self.at_hand(&cid)? {
            return Ok(b);
        }
        let (tx, rx) = oneshot::channel();
        let want = FetchCommand::Want(cid, Some(tx));
        self.commands
            .blocking_send(want)
            .map_err(|_| SESSION_STOPPED)?;
        rx.blocking_recv().map_err(|_| SESSION_STOPPED)?
    }

    /// Starts fetching `cids` without waiting (best effort: hints beyond
    /// the command queue are dropped; a later `get` asks again).
    pub fn prefetch(&self, cids: &[Cid]) {
        for cid in cids {
            if cid.hash().code() == crate::block::IDENTITY || self.store.has(cid).unwrap_or(false) {
                continue;
            }
            if self
                .commands
                .try_send(FetchCommand::Want(*cid, None))
                .is_err()
            {
                return;
            }
        }
    }

    /// More peers to ask (e.g. providers the caller found).
    pub async fn add_peers(&self, peers: Vec<PeerId>) -> Result<(), NetError> {
        self.commands
            .send(FetchCommand::AddPeers(peers))
            .await
            .map_err(|_| SESSION_STOPPED)
    }

    /// Waits until every block received so far is durably stored.
    pub async fn flush(&self) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(FetchCommand::Flush(tx))
            .await
            .map_err(|_| SESSION_STOPPED)?;
        rx.await.map_err(|_| SESSION_STOPPED)?
    }

    /// Live figures of this session.
    pub fn progress(&self) -> &Arc<FetchProgress> {
        &self.progress
    }
}

impl BlockSource for FetchSession {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        self.get_blocking(*cid).map_err(|e| match e {
            NetError::Store(s) => DagError::Store(s),
            other => DagError::Fetch {
                cid: *cid,
                reason: other.to_string(),
            },
        })
    }

    fn prefetch(&self, cids: &[Cid]) {
        FetchSession::prefetch(self, cids)
    }

    /// Once a block came from peers: reading what is local needs no
    /// window sized for the network.
    fn fetching(&self) -> bool {
        self.progress
            .blocks
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }
}

/// Whether a failed read of the local copy is one a copy from peers makes
/// good: stored bytes proven corrupt (the verified copy then replaces
/// them), or a read the disk failed (the copy is served, the stored one
/// left alone). Other store errors (a damaged index) fail the caller.
pub(crate) fn fetch_instead(e: &StoreError) -> bool {
    matches!(e, StoreError::Corrupt { .. } | StoreError::Io { .. })
}

/// A block's key in a session's maps: its multihash bytes (peers may
/// answer under another codec).
fn key(cid: &Cid) -> Vec<u8> {
    cid.hash().to_bytes()
}

impl crate::dag::fetch::BlockFetcher for FetchSession {
    type Error = NetError;

    fn get(&self, cid: Cid) -> impl std::future::Future<Output = Result<Block, NetError>> + Send {
        FetchSession::get(self, cid)
    }

    fn prefetch(&self, cids: &[Cid]) {
        FetchSession::prefetch(self, cids)
    }
}
