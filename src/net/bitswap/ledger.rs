//! The serving side of Bitswap as a plain state machine: what one peer
//! wants from us, and the messages that answer it.
//!
//! The ledger does no I/O. What needs the store it asks for as an action,
//! [`LedgerAction::Has`] (which of these blocks are stored, and their
//! sizes) or [`LedgerAction::Read`] (read and verify these), and the driver
//! runs those on blocking threads and feeds the answers back
//! ([`PeerLedger::on_has`], [`PeerLedger::on_read`]). At most one of each is
//! outstanding per peer; wants that arrive meanwhile wait in the ledger
//! (bounded) and go out in the next batch.
//!
//! [`PeerLedger::receive`] applies a peer's message: cancels at once, the
//! other wants are looked up. The answer settles what is cheap: Have for
//! want-have, DontHave when asked to say so. A want-block for a block we
//! hold joins the peer's ready queue, and [`PeerLedger::serve`] picks blocks
//! from that queue under a byte budget (the room left in the peer's outbox;
//! the sizes come with the lookup), so a message naming the same 2 MiB block
//! a thousand times costs one read, and no message makes us read more than
//! the peer's send queue can hold. A block that turns out corrupt or gone
//! when read is answered as DontHave (when asked to say so), never served.
//! Wants we cannot serve yet stay in the ledger (bounded) so that a block
//! stored later can be pushed with [`PeerLedger::on_new_block`]. No clock.

use super::message::{
    Message, Presence, WantEntry, WantType, MAX_BLOCKS_PER_MESSAGE, MAX_MESSAGE_BYTES,
    MAX_WANTLIST_ENTRIES,
};
use crate::block::{Block, Cid};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Bytes kept free in each reply for framing and presences.
const REPLY_HEADROOM_BYTES: usize = 64 * 1024;

/// Want-blocks we hold and have not sent yet, per peer at most.
pub const MAX_READY_WANTS: usize = MAX_WANTLIST_ENTRIES;

/// Wants waiting for a store lookup, per peer at most (more are refused).
pub const MAX_UNCHECKED_WANTS: usize = 2 * MAX_WANTLIST_ENTRIES;

/// What the driver must do for a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerAction {
    /// Send this message to the peer.
    Send(Message),
    /// Look these blocks up in the store (without reading them) and answer
    /// with [`PeerLedger::on_has`]: each one's size, or `None` when it is
    /// not stored.
    Has(Vec<Cid>),
    /// Read and verify these blocks from the store and answer with
    /// [`PeerLedger::on_read`]: each block, or `None` when it is gone or
    /// corrupt.
    Read(Vec<Cid>),
}

/// A want-block for a block we hold, waiting to be read.
struct Ready {
    want: WantEntry,
    /// The block's size (from the lookup), counted against the budget.
    size: u64,
}

/// What one remote peer has asked us for and not yet received.
#[derive(Default)]
pub struct PeerLedger {
    /// Wants we cannot answer yet (a B-tree for a deterministic order).
    wants: BTreeMap<Cid, WantEntry>,
    /// Want-blocks for blocks we hold, in the order asked. `order` may
    /// hold keys no longer in `ready` (cancelled, or already served): they
    /// are skipped when reached.
    ready: HashMap<Cid, Ready>,
    order: VecDeque<Cid>,
    /// Wants whose answer waits on a store lookup (outstanding or not yet
    /// asked). A later want for the same CID merges into the waiting one.
    unchecked: HashMap<Cid, WantEntry>,
    /// Keys of `unchecked` not yet in a lookup, in the order asked; may
    /// hold keys since cancelled (skipped).
    to_check: VecDeque<Cid>,
    /// A lookup is outstanding.
    checking: bool,
    /// Want-blocks being read. A cancel takes its key out: the block is
    /// then dropped when the read answers.
    reading: HashMap<Cid, WantEntry>,
    /// A read is outstanding (`reading` may be empty if all were cancelled).
    read_outstanding: bool,
}

/// Counts for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyStats {
    /// Blocks served (read from the store and sent).
    pub blocks: u64,
    /// Their bytes.
    pub block_bytes: u64,
    /// Have presences sent.
    pub haves: u64,
    /// DontHave presences sent.
    pub dont_haves: u64,
    /// Wants dropped because the ledger was full.
    pub refused_wants: u64,
}

impl ReplyStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: ReplyStats) {
        self.blocks += other.blocks;
        self.block_bytes += other.block_bytes;
        self.haves += other.haves;
        self.dont_haves += other.dont_haves;
        self.refused_wants += other.refused_wants;
    }
}

/// Packs blocks and presences into replies under the message size limit.
#[derive(Default)]
struct ReplyBuilder {
    done: Vec<LedgerAction>,
    current: Message,
    current_bytes: usize,
}

impl ReplyBuilder {
    fn room_for(&mut self, bytes: usize) {
        let full = self.current_bytes + bytes + REPLY_HEADROOM_BYTES > MAX_MESSAGE_BYTES
            || self.current.blocks.len() >= MAX_BLOCKS_PER_MESSAGE;
        if full && !self.current.is_empty() {
            self.done
                .push(LedgerAction::Send(std::mem::take(&mut self.current)));
            self.current_bytes = 0;
        }
    }

    fn block(&mut self, block: Block) {
        let len = block.data().len() + 80;
        self.room_for(len);
        self.current_bytes += len;
        self.current.blocks.push(block);
    }

    fn presence(&mut self, cid: Cid, p: Presence) {
        self.room_for(80);
        self.current_bytes += 80;
        self.current.presences.push((cid, p));
    }

    /// The replies, then `next` (a store action) if any.
    fn finish(mut self, next: Option<LedgerAction>) -> Vec<LedgerAction> {
        if !self.current.is_empty() {
            self.done.push(LedgerAction::Send(self.current));
        }
        self.done.extend(next);
        self.done
    }
}

impl PeerLedger {
    /// Number of outstanding wants (waiting for a block, for a lookup, for
    /// a read, or ready to send).
    pub fn len(&self) -> usize {
        self.wants.len() + self.ready.len() + self.unchecked.len() + self.reading.len()
    }

    /// Whether nothing is wanted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether want-blocks wait for [`serve`](Self::serve).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether want-blocks wait for room in the peer's outbox: some are
    /// ready and no read is outstanding (its answer serves again).
    pub fn waits_for_room(&self) -> bool {
        self.has_ready() && !self.read_outstanding
    }

    /// Applies the peer's message: cancels at once; the other wants are
    /// looked up in the store ([`LedgerAction::Has`], unless a lookup is
    /// outstanding: then they go with the next).
    pub fn receive(&mut self, msg: &Message) -> (Vec<LedgerAction>, ReplyStats) {
        if msg.full {
            self.wants.clear();
            self.ready.clear();
            self.order.clear();
            self.unchecked.clear();
            self.to_check.clear();
            self.reading.clear();
        }
        let mut stats = ReplyStats::default();
        for want in &msg.wantlist {
            let key = want.cid;
            if want.cancel {
                self.wants.remove(&key);
                self.ready.remove(&key);
                self.unchecked.remove(&key);
                self.reading.remove(&key);
                continue;
            }
            if self.ready.contains_key(&key) || self.reading.contains_key(&key) {
                // Asked again before we got to it: once is enough.
                continue;
            }
            if let Some(waiting) = self.unchecked.get_mut(&key) {
                // A want-block answers a want-have too.
                if want.want_type == WantType::Block {
                    waiting.want_type = WantType::Block;
                }
                waiting.send_dont_have |= want.send_dont_have;
                waiting.priority = want.priority;
                continue;
            }
            if self.unchecked.len() >= MAX_UNCHECKED_WANTS {
                stats.refused_wants += 1;
                continue;
            }
            self.unchecked.insert(key, want.clone());
            self.to_check.push_back(key);
        }
        compact(&mut self.to_check, &self.unchecked, MAX_UNCHECKED_WANTS);
        (self.next_lookup().into_iter().collect(), stats)
    }

    /// The next lookup, when none is outstanding and wants wait for one.
    fn next_lookup(&mut self) -> Option<LedgerAction> {
        if self.checking {
            return None;
        }
        let mut cids = Vec::new();
        let mut taken = HashSet::new();
        while let Some(key) = self.to_check.pop_front() {
            if let Some(want) = self.unchecked.get(&key) {
                if taken.insert(key) {
                    cids.push(want.cid);
                }
            }
        }
        if cids.is_empty() {
            return None;
        }
        self.checking = true;
        Some(LedgerAction::Has(cids))
    }

    /// The answer to [`LedgerAction::Has`]: each CID's stored size, or
    /// `None`. Answers Haves and DontHaves, queues want-blocks for blocks we
    /// hold (then [`serve`](Self::serve)), keeps the rest waiting, and asks
    /// the next lookup if wants arrived meanwhile.
    pub fn on_has(&mut self, sizes: Vec<(Cid, Option<u64>)>) -> (Vec<LedgerAction>, ReplyStats) {
        self.checking = false;
        let mut stats = ReplyStats::default();
        let mut reply = ReplyBuilder::default();
        for (key, size) in sizes {
            // Cancelled meanwhile, or settled by a block that arrived.
            let Some(want) = self.unchecked.remove(&key) else {
                continue;
            };
            match (want.want_type, size) {
                (WantType::Have, Some(_)) => {
                    reply.presence(want.cid, Presence::Have);
                    stats.haves += 1;
                    self.wants.remove(&key);
                }
                (WantType::Block, Some(size)) => {
                    self.wants.remove(&key);
                    if self.ready.len() < MAX_READY_WANTS {
                        self.ready.insert(key, Ready { want, size });
                        self.order.push_back(key);
                        compact(&mut self.order, &self.ready, MAX_READY_WANTS);
                    } else {
                        stats.refused_wants += 1;
                    }
                }
                (_, None) => self.not_held(key, want, &mut reply, &mut stats),
            }
        }
        (reply.finish(self.next_lookup()), stats)
    }

    /// A wanted block we do not have: DontHave if the peer asked to be
    /// told, and the want waits for the block.
    fn not_held(
        &mut self,
        key: Cid,
        want: WantEntry,
        reply: &mut ReplyBuilder,
        stats: &mut ReplyStats,
    ) {
        if want.send_dont_have {
            reply.presence(want.cid, Presence::DontHave);
            stats.dont_haves += 1;
        }
        if self.wants.len() < MAX_WANTLIST_ENTRIES || self.wants.contains_key(&key) {
            self.wants.insert(key, want);
        } else {
            stats.refused_wants += 1;
        }
    }

    /// Picks ready want-blocks, in the order asked, until their sizes reach
    /// `budget_bytes` (at least one when `at_least_one`, so a peer whose
    /// outbox is empty always gets something), and asks for them to be read
    /// ([`LedgerAction::Read`]). Nothing while a read is outstanding.
    pub fn serve(&mut self, budget_bytes: usize, at_least_one: bool) -> Vec<LedgerAction> {
        if self.read_outstanding {
            return Vec::new();
        }
        let mut cids = Vec::new();
        let mut spent = 0u64;
        while let Some(key) = self.order.front() {
            if !self.ready.contains_key(key) {
                self.order.pop_front();
                continue;
            }
            let may_send = spent < budget_bytes as u64 || (at_least_one && cids.is_empty());
            if !may_send {
                break;
            }
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(ready) = self.ready.remove(&key) else {
                continue;
            };
            spent += ready.size;
            cids.push(ready.want.cid);
            self.reading.insert(key, ready.want);
        }
        if cids.is_empty() {
            return Vec::new();
        }
        self.read_outstanding = true;
        vec![LedgerAction::Read(cids)]
    }

    /// The answer to [`LedgerAction::Read`]: the blocks read (verified), or
    /// `None` for those gone or corrupt, which are answered as DontHave
    /// (when asked to say so) and waited for again.
    pub fn on_read(
        &mut self,
        blocks: Vec<(Cid, Option<Block>)>,
    ) -> (Vec<LedgerAction>, ReplyStats) {
        self.read_outstanding = false;
        let mut stats = ReplyStats::default();
        let mut reply = ReplyBuilder::default();
        for (key, block) in blocks {
            // Cancelled while it was read.
            let Some(want) = self.reading.remove(&key) else {
                continue;
            };
            match block {
                Some(block) => {
                    stats.blocks += 1;
                    stats.block_bytes += block.data().len() as u64;
                    reply.block(block);
                }
                None => self.not_held(key, want, &mut reply, &mut stats),
            }
        }
        self.reading.clear();
        (reply.finish(None), stats)
    }

    /// A block just arrived in our store: answer this peer if it wanted it
    /// (a want waiting for the block, or for a lookup that may have missed
    /// it).
    pub fn on_new_block(&mut self, block: &Block) -> Option<Message> {
        let key = *block.cid();
        let want = self
            .wants
            .remove(&key)
            .or_else(|| self.unchecked.remove(&key))?;
        let mut msg = Message::default();
        match want.want_type {
            WantType::Block => msg.blocks.push(block.clone()),
            WantType::Have => msg.presences.push((want.cid, Presence::Have)),
        }
        Some(msg)
    }
}

/// Drops keys of `queue` that are no longer in `live`, and repeats, once it
/// has grown well past `max` (a peer that keeps wanting and cancelling).
fn compact<V>(queue: &mut VecDeque<Cid>, live: &HashMap<Cid, V>, max: usize) {
    if queue.len() <= 2 * max {
        return;
    }
    let mut seen = HashSet::new();
    queue.retain(|k| live.contains_key(k) && seen.insert(*k));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::bitswap::test_block as block;

    /// The blocks a test's store holds, by CID bytes (data that does not
    /// match its CID plays a corrupt block).
    #[derive(Default)]
    struct Disk(HashMap<Vec<u8>, bytes::Bytes>);

    impl Disk {
        fn put(&mut self, b: &Block) {
            self.0.insert(b.cid().to_bytes(), b.data().clone());
        }
    }

    /// What a driver does: carries out the ledger's store actions until
    /// only messages are left, and returns those with the summed counts.
    fn settle(
        ledger: &mut PeerLedger,
        disk: &Disk,
        (actions, stats): (Vec<LedgerAction>, ReplyStats),
    ) -> (Vec<Message>, ReplyStats) {
        let mut total = stats;
        let mut messages = Vec::new();
        let mut todo = VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            let (more, stats) = match action {
                LedgerAction::Send(m) => {
                    messages.push(m);
                    continue;
                }
                LedgerAction::Has(cids) => ledger.on_has(
                    cids.into_iter()
                        .map(|c| (c, disk.0.get(&c.to_bytes()).map(|d| d.len() as u64)))
                        .collect(),
                ),
                LedgerAction::Read(cids) => ledger.on_read(
                    cids.into_iter()
                        .map(|c| {
                            let data = disk.0.get(&c.to_bytes()).cloned();
                            (c, data.and_then(|d| Block::verified(c, d).ok()))
                        })
                        .collect(),
                ),
            };
            total.add(stats);
            todo.extend(more);
        }
        (messages, total)
    }

    fn want(cid: Cid, want_type: WantType, send_dont_have: bool) -> WantEntry {
        WantEntry {
            cid,
            priority: 1,
            cancel: false,
            want_type,
            send_dont_have,
        }
    }

    fn wants(entries: Vec<WantEntry>) -> Message {
        Message {
            wantlist: entries,
            ..Message::default()
        }
    }

    /// Serves with `budget_bytes` and settles the read.
    fn serve(
        ledger: &mut PeerLedger,
        disk: &Disk,
        budget_bytes: usize,
        at_least_one: bool,
    ) -> (Vec<Message>, ReplyStats) {
        let actions = ledger.serve(budget_bytes, at_least_one);
        settle(ledger, disk, (actions, ReplyStats::default()))
    }

    /// Everything `receive` and then `serve` (unbounded) answer, merged.
    fn answer(ledger: &mut PeerLedger, msg: &Message, disk: &Disk) -> (Message, ReplyStats) {
        let received = ledger.receive(msg);
        let (mut replies, mut stats) = settle(ledger, disk, received);
        let (served, s) = serve(ledger, disk, usize::MAX, true);
        replies.extend(served);
        stats.add(s);
        let mut all = Message::default();
        for r in replies {
            all.blocks.extend(r.blocks);
            all.presences.extend(r.presences);
        }
        (all, stats)
    }

    #[test]
    fn answers_haves_blocks_and_dont_haves() {
        let mut disk = Disk::default();
        let (a, b, c) = (block(1, 100), block(2, 100), block(3, 100));
        disk.put(&a);
        disk.put(&b);
        let mut ledger = PeerLedger::default();
        let msg = wants(vec![
            want(*a.cid(), WantType::Have, true),
            want(*b.cid(), WantType::Block, true),
            want(*c.cid(), WantType::Block, true),
        ]);
        // One lookup for the three; presences once it answers, the block
        // when served.
        let (actions, _) = ledger.receive(&msg);
        assert_eq!(
            actions,
            vec![LedgerAction::Has(vec![*a.cid(), *b.cid(), *c.cid()])]
        );
        let (replies, _) = settle(&mut ledger, &disk, (actions, ReplyStats::default()));
        assert_eq!(replies.len(), 1);
        assert!(replies[0].blocks.is_empty());
        assert_eq!(
            replies[0].presences,
            vec![(*a.cid(), Presence::Have), (*c.cid(), Presence::DontHave)]
        );
        assert!(ledger.waits_for_room());
        let (served, stats) = serve(&mut ledger, &disk, usize::MAX, true);
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].blocks, vec![b]);
        assert_eq!(stats.blocks, 1);
        assert!(!ledger.has_ready());
        // c is remembered and pushed once we have it.
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.on_new_block(&c).unwrap().blocks, vec![c.clone()]);
        assert!(ledger.on_new_block(&c).is_none());
    }

    #[test]
    fn corrupt_blocks_are_never_served() {
        let mut disk = Disk::default();
        let a = block(1, 100);
        disk.0
            .insert(a.cid().to_bytes(), bytes::Bytes::from_static(b"evil"));
        let mut ledger = PeerLedger::default();
        let msg = wants(vec![want(*a.cid(), WantType::Block, true)]);
        let (all, _) = answer(&mut ledger, &msg, &disk);
        assert!(all.blocks.is_empty());
        assert_eq!(all.presences, vec![(*a.cid(), Presence::DontHave)]);
        // And it waits for a good copy.
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn replies_stay_under_the_message_limit_and_wants_are_bounded() {
        let mut disk = Disk::default();
        let blocks: Vec<Block> = (0..12).map(|i| block(i, 1 << 20)).collect();
        for b in &blocks {
            disk.put(b);
        }
        let mut ledger = PeerLedger::default();
        let msg = wants(
            blocks
                .iter()
                .map(|b| want(*b.cid(), WantType::Block, false))
                .collect(),
        );
        let received = ledger.receive(&msg);
        let (replies, _) = settle(&mut ledger, &disk, received);
        assert!(replies.is_empty());
        let (replies, stats) = serve(&mut ledger, &disk, usize::MAX, true);
        assert_eq!(stats.blocks, 12);
        assert!(replies.len() >= 3);
        for r in &replies {
            assert!(r.encode().len() <= MAX_MESSAGE_BYTES);
        }
        // A flood of unknown wants is capped.
        let flood = wants(
            (100..100 + MAX_WANTLIST_ENTRIES as u32 + 50)
                .map(|i| want(*block(i, 1).cid(), WantType::Block, false))
                .collect(),
        );
        let received = ledger.receive(&flood);
        let (_, stats) = settle(&mut ledger, &disk, received);
        assert_eq!(ledger.len(), MAX_WANTLIST_ENTRIES);
        assert_eq!(stats.refused_wants, 50);
    }

    #[test]
    fn serving_stays_within_the_budget_and_reads_a_repeated_want_once() {
        let mut disk = Disk::default();
        let blocks: Vec<Block> = (0..8).map(|i| block(i, 1 << 20)).collect();
        for b in &blocks {
            disk.put(b);
        }
        let mut ledger = PeerLedger::default();
        // The same block asked for a thousand times, then the others.
        let mut wantlist: Vec<WantEntry> = (0..1000)
            .map(|_| want(*blocks[0].cid(), WantType::Block, false))
            .collect();
        wantlist.extend(
            blocks[1..]
                .iter()
                .map(|b| want(*b.cid(), WantType::Block, false)),
        );
        let received = ledger.receive(&wants(wantlist));
        let LedgerAction::Has(looked_up) = &received.0[0] else {
            panic!("a lookup first");
        };
        assert_eq!(looked_up.len(), 8, "each block looked up once");
        settle(&mut ledger, &disk, received);
        // 3 MiB of room: three blocks (the budget is reached, not passed
        // by more than one block), in the order asked.
        let actions = ledger.serve(3 << 20, false);
        assert_eq!(
            actions,
            vec![LedgerAction::Read(
                blocks[..3].iter().map(|b| *b.cid()).collect()
            )]
        );
        let (first, stats) = settle(&mut ledger, &disk, (actions, ReplyStats::default()));
        assert_eq!(stats.blocks, 3);
        let sent: Vec<Block> = first.into_iter().flat_map(|m| m.blocks).collect();
        assert_eq!(sent, blocks[..3].to_vec());
        // No room: nothing, unless the peer's queue is empty.
        assert_eq!(serve(&mut ledger, &disk, 0, false).1.blocks, 0);
        assert_eq!(serve(&mut ledger, &disk, 0, true).1.blocks, 1);
        // A cancel before serving removes it.
        let cancel = WantEntry {
            cancel: true,
            ..want(*blocks[4].cid(), WantType::Block, false)
        };
        let received = ledger.receive(&wants(vec![cancel]));
        assert!(received.0.is_empty(), "a cancel needs no lookup");
        let (rest, stats) = serve(&mut ledger, &disk, usize::MAX, true);
        assert_eq!(stats.blocks, 3);
        let sent: Vec<Block> = rest.into_iter().flat_map(|m| m.blocks).collect();
        assert_eq!(sent, blocks[5..].to_vec());
        assert!(ledger.is_empty());
    }

    #[test]
    fn wants_arriving_during_a_lookup_wait_for_the_next_and_cancels_apply() {
        let mut disk = Disk::default();
        let (a, b, c) = (block(1, 10), block(2, 10), block(3, 10));
        for x in [&a, &b, &c] {
            disk.put(x);
        }
        let mut ledger = PeerLedger::default();
        let (first, _) = ledger.receive(&wants(vec![want(*a.cid(), WantType::Have, true)]));
        assert_eq!(first, vec![LedgerAction::Has(vec![*a.cid()])]);
        // While the lookup is out: a cancel of a, and two new wants. No
        // second lookup yet.
        let cancel_a = WantEntry {
            cancel: true,
            ..want(*a.cid(), WantType::Have, true)
        };
        let (more, _) = ledger.receive(&wants(vec![
            cancel_a,
            want(*b.cid(), WantType::Have, true),
            want(*c.cid(), WantType::Have, true),
        ]));
        assert!(more.is_empty());
        // The first answer is dropped (a was cancelled) and the next lookup
        // goes out.
        let (next, _) = ledger.on_has(vec![(*a.cid(), Some(10))]);
        assert_eq!(next, vec![LedgerAction::Has(vec![*b.cid(), *c.cid()])]);
        let (replies, stats) = settle(&mut ledger, &disk, (next, ReplyStats::default()));
        assert_eq!(stats.haves, 2);
        assert_eq!(
            replies[0].presences,
            vec![(*b.cid(), Presence::Have), (*c.cid(), Presence::Have)]
        );
    }

    #[test]
    fn a_block_stored_during_a_lookup_is_pushed() {
        let a = block(1, 10);
        let mut ledger = PeerLedger::default();
        let (lookup, _) = ledger.receive(&wants(vec![want(*a.cid(), WantType::Block, true)]));
        assert_eq!(lookup.len(), 1);
        // Stored after the lookup read the index: the want is answered now,
        // and the stale "not stored" answer changes nothing.
        assert_eq!(ledger.on_new_block(&a).unwrap().blocks, vec![a.clone()]);
        let (replies, _) = ledger.on_has(vec![(*a.cid(), None)]);
        assert!(replies.is_empty());
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_cancel_during_a_read_drops_the_block() {
        let mut disk = Disk::default();
        let (a, b) = (block(1, 10), block(2, 10));
        disk.put(&a);
        disk.put(&b);
        let mut ledger = PeerLedger::default();
        let received = ledger.receive(&wants(vec![
            want(*a.cid(), WantType::Block, false),
            want(*b.cid(), WantType::Block, false),
        ]));
        settle(&mut ledger, &disk, received);
        let read = ledger.serve(usize::MAX, true);
        assert_eq!(read.len(), 1);
        assert!(
            ledger.serve(usize::MAX, true).is_empty(),
            "one read at a time"
        );
        let cancel = WantEntry {
            cancel: true,
            ..want(*a.cid(), WantType::Block, false)
        };
        ledger.receive(&wants(vec![cancel]));
        let (sent, stats) = settle(&mut ledger, &disk, (read, ReplyStats::default()));
        assert_eq!(stats.blocks, 1);
        assert_eq!(sent[0].blocks, vec![b]);
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_full_wantlist_replaces_what_waits() {
        let mut disk = Disk::default();
        let (a, b) = (block(1, 10), block(2, 10));
        disk.put(&b);
        let mut ledger = PeerLedger::default();
        let received = ledger.receive(&wants(vec![want(*a.cid(), WantType::Block, false)]));
        settle(&mut ledger, &disk, received);
        assert_eq!(ledger.len(), 1);
        let full = Message {
            full: true,
            ..wants(vec![want(*b.cid(), WantType::Block, false)])
        };
        let (all, _) = answer(&mut ledger, &full, &disk);
        assert_eq!(all.blocks, vec![b]);
        assert!(ledger.is_empty(), "a is no longer wanted");
    }
}
