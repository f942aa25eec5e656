//! The workload's operations: adding seeded files (with their replication
//! factor), and timed gets and lookups from nodes that do not hold the
//! file, each recorded as an [`OpSample`].

use super::schedule::Op;
use super::{Sim, SimError};
use crate::lock;
use crate::report::OpSample;
use crate::rng::Rng;
use crate::scenario::Workload;
use cairn::block::Cid;
use cairn::node::online::OnlineNode;
use cairn::node::AddOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A file the workload added.
#[derive(Clone)]
pub(super) struct FileRec {
    pub(super) cid: Cid,
    pub(super) size: usize,
    pub(super) content_seed: u64,
    pub(super) factor: u8,
    /// Simulated seconds after the warmup when the add finished.
    pub(super) added_at: f64,
    /// The slot of the node that added it.
    pub(super) origin: usize,
}

/// The bytes of a file: `size` bytes drawn from `seed`.
fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    Rng::new(seed).fill(&mut v);
    v
}

/// Reads the whole file through `online` (fetching what is missing) and
/// checks that it has the bytes that were added.
pub(super) async fn fetch_and_check(online: &OnlineNode, file: &FileRec) -> Result<(), SimError> {
    let cid = file.cid;
    let (mut reader, _) = online
        .cat(&cid.to_string(), 0, None)
        .await
        .map_err(|source| SimError::Open { cid, source })?;
    let expected_seed = file.content_seed;
    let size = file.size;
    tokio::task::spawn_blocking(move || {
        let mut got = Vec::with_capacity(size);
        std::io::Read::read_to_end(&mut reader, &mut got)
            .map_err(|source| SimError::Read { cid, source })?;
        if got == content(expected_seed, size) {
            Ok(())
        } else {
            Err(SimError::WrongBytes { cid })
        }
    })
    .await
    .map_err(|source| SimError::Task {
        what: "reading a file",
        source,
    })?
}

impl Sim {
    /// The files added so far, by their number in the workload.
    pub(super) fn added_files(&self) -> Vec<(usize, FileRec)> {
        lock(&self.files)
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.clone().map(|f| (i, f)))
            .collect()
    }

    /// Adds file number `file` on an up node picked by `pick`, announces
    /// it, and pins it with `factor` when that is above zero.
    pub(super) async fn add(
        self: &Arc<Self>,
        file: usize,
        size: usize,
        factor: u8,
        pick: u64,
        t: f64,
    ) -> Result<(), SimError> {
        let up = self.up_slots();
        if up.is_empty() {
            return Err(SimError::NoNodeUp);
        }
        let (origin, online) = &up[(pick % up.len() as u64) as usize];
        let origin = *origin;
        let content_seed = Rng::derive(self.seed, "file", file as u64).next_u64();
        let node = Arc::clone(online.node());
        let opts = AddOptions {
            import: node.config().import.options().map_err(SimError::Import)?,
            ..AddOptions::default()
        };
        let cid = tokio::task::spawn_blocking(move || {
            let data = content(content_seed, size);
            node.add_reader(&data[..], &opts, &mut |_| {})
                .map(|entry| entry.cid)
                .map_err(|source| SimError::Add { file, source })
        })
        .await
        .map_err(|source| SimError::Task {
            what: "adding a file",
            source,
        })??;
        online
            .announce_added(cid, Some(cairn::store::PinKind::Recursive))
            .await;
        if factor > 0 {
            online
                .replicator()
                .pin(cid, Some(factor))
                .await
                .map_err(|source| SimError::Replicate { cid, source })?;
        }
        if let Some(slot) = lock(&self.files).get_mut(file) {
            *slot = Some(FileRec {
                cid,
                size,
                content_seed,
                factor,
                added_at: t,
                origin,
            });
        }
        Ok(())
    }

    /// Picks an added file and an up node not holding it.
    fn pick_target(&self, pick: u64) -> Option<(FileRec, usize, Arc<OnlineNode>)> {
        let files = self.added_files();
        if files.is_empty() {
            return None;
        }
        let mut r = Rng::new(pick);
        let (_, file) = files[r.below(files.len())].clone();
        let candidates: Vec<(usize, Arc<OnlineNode>)> = {
            let slots = self.slots();
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.holds(&file.cid))
                .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
                .collect()
        };
        if candidates.is_empty() {
            return None;
        }
        let (slot, online) = candidates[r.below(candidates.len())].clone();
        Some((file, slot, online))
    }

    /// Runs one get or lookup of a file picked by `pick`, started `t`
    /// simulated seconds after the warmup, and records how long it took
    /// and whether it succeeded within `timeout`.
    pub(super) async fn timed_op(self: &Arc<Self>, op: Op, t: f64, pick: u64, timeout: Duration) {
        let Some((file, slot, online)) = self.pick_target(pick) else {
            return;
        };
        let started = Instant::now();
        let limit = self.sc.wall(timeout);
        let ok = match op {
            Op::Get => matches!(
                tokio::time::timeout(limit, fetch_and_check(&online, &file)).await,
                Ok(Ok(()))
            ),
            Op::Lookup => {
                let found =
                    tokio::time::timeout(limit, online.net().swarm.find_providers(file.cid, 1))
                        .await;
                matches!(found, Ok(Ok(ref p)) if !p.is_empty())
            }
        };
        let ms = started.elapsed().as_secs_f64() * self.sc.speed * 1000.0;
        let via = match op {
            Op::Get if ok && self.sc.nat.on() => self.path_to(&online, file.origin).await,
            _ => None,
        };
        let record = match op {
            Op::Get => &self.gets,
            Op::Lookup => &self.lookups,
        };
        lock(record).push(OpSample {
            t,
            ms,
            ok,
            node: slot,
            key: file.cid.to_string(),
            nat: self.fabric.nat(slot),
            origin_nat: self.fabric.nat(file.origin),
            via,
        });
    }

    /// How `online` is connected to the node of slot `origin`: "direct",
    /// "relayed", or not at all (None).
    async fn path_to(&self, online: &OnlineNode, origin: usize) -> Option<&'static str> {
        let peer = self.slots().get(origin)?.peer;
        let peers = online.net().swarm.peer_addrs().await.ok()?;
        let (_, addr) = peers.iter().find(|(p, _)| *p == peer)?;
        let relayed = addr
            .iter()
            .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit);
        Some(if relayed { "relayed" } else { "direct" })
    }

    /// Waits for the workload's operations still running, at most as long
    /// as the longest operation timeout (adds have none) plus a minute of
    /// wall clock; the rest are aborted and said, so a run always reaches
    /// its final checks.
    pub(super) async fn finish_ops(&self, ops: Vec<tokio::task::JoinHandle<()>>) {
        let running = ops.iter().filter(|h| !h.is_finished()).count();
        if running == 0 {
            return;
        }
        self.say(format!("waiting for {running} operations still running"));
        let longest = self
            .sc
            .workload
            .iter()
            .filter_map(|w| match w {
                Workload::Get(ops) | Workload::Lookup(ops) => Some(self.sc.wall(ops.timeout)),
                Workload::Add { .. } => None,
            })
            .max()
            .unwrap_or_default();
        let deadline = Instant::now() + longest + Duration::from_secs(60);
        let mut cut = 0;
        for op in ops {
            let abort = op.abort_handle();
            if tokio::time::timeout_at(deadline, op).await.is_err() {
                abort.abort();
                cut += 1;
            }
        }
        if cut > 0 {
            self.say(format!(
                "{cut} operations had not finished {} s after the last one started; aborted",
                (longest + Duration::from_secs(60)).as_secs()
            ));
        }
    }
}
