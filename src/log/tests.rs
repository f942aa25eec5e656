use super::*;
use crate::dag::batch::{MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES};
use crate::store::{MemoryStore, PinKind};

fn logs_on(store: &Arc<MemoryStore>) -> Logs {
    let store: Arc<dyn Store> = store.clone();
    Logs::open(store, Arc::new(Keystore::in_memory([7; 32])))
}

fn msgs(range: std::ops::Range<u32>) -> Vec<Bytes> {
    range.map(|i| Bytes::from(format!("m{i}"))).collect()
}

fn texts(chunk: &ReadChunk) -> Vec<(u64, String)> {
    chunk
        .messages
        .iter()
        .map(|(o, m)| (*o, String::from_utf8_lossy(m).into_owned()))
        .collect()
}

#[test]
fn appends_get_dense_offsets_and_read_back_in_order() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    let state = logs.create("orders", 2, None).unwrap();
    assert_eq!((state.next, state.head.clone()), (0, None));
    assert!(matches!(
        logs.create("orders", 1, None),
        Err(LogError::Exists { .. })
    ));
    let a = logs.append("orders", msgs(0..3)).unwrap();
    assert_eq!((a.first, a.next), (0, 3));
    let b = logs.append("orders", msgs(3..5)).unwrap();
    assert_eq!((b.first, b.next), (3, 5));
    // Only the head is pinned; it reaches the whole chain.
    assert_eq!(store.pin_of(&b.head).unwrap(), Some(PinKind::Recursive));
    assert_eq!(store.pin_of(&a.head).unwrap(), None);

    let all = logs.read("orders", 0, 100, 1 << 20).unwrap();
    assert_eq!(all.next, 5);
    assert_eq!(all.end, 5);
    let want: Vec<(u64, String)> = (0..5).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(texts(&all), want);
    // From the middle of a batch, bounded by count.
    let part = logs.read("orders", 1, 3, 1 << 20).unwrap();
    assert_eq!(texts(&part), want[1..4].to_vec());
    assert_eq!(part.next, 4);
    // At the end: nothing; past it: refused.
    assert!(logs.read("orders", 5, 10, 1).unwrap().messages.is_empty());
    assert!(matches!(
        logs.read("orders", 6, 10, 1),
        Err(LogError::BeyondEnd { offset: 6, end: 5 })
    ));
    assert_eq!(logs.offset_of("orders", &b.head).unwrap(), 3);
    assert_eq!(logs.offset_of("orders", &a.head).unwrap(), 0);

    // The state survives a reopen (the index is built again from the chain).
    let again = logs_on(&store);
    assert_eq!(
        texts(&again.read("orders", 2, 100, 1 << 20).unwrap()),
        want[2..].to_vec()
    );
    let listed = again.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].state.next),
        ("orders", 5)
    );
    assert_eq!(listed[0].state.replication, 2);
}

#[test]
fn large_appends_are_split_into_bounded_batches() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("big", 1, None).unwrap();
    let n = MAX_BATCH_MESSAGES as u32 * 2 + 10;
    let a = logs.append("big", msgs(0..n)).unwrap();
    assert_eq!(a.next, n as u64);
    assert_eq!(logs.get("big").unwrap().batches, 3);
    let tail = logs.read("big", n as u64 - 2, 10, 1 << 20).unwrap();
    assert_eq!(
        texts(&tail),
        vec![
            (n as u64 - 2, format!("m{}", n - 2)),
            (n as u64 - 1, format!("m{}", n - 1))
        ]
    );
    // Byte-bounded reads still return one message.
    let one = logs.read("big", 0, 10, 0).unwrap();
    assert_eq!(one.messages.len(), 1);
    let huge = Bytes::from(vec![0u8; MAX_MESSAGE_BYTES + 1]);
    assert!(matches!(
        logs.append("big", vec![huge]),
        Err(LogError::MessageTooLarge { .. })
    ));
    assert!(matches!(logs.append("big", vec![]), Err(LogError::Empty)));
    assert!(matches!(
        logs.append("nope", msgs(0..1)),
        Err(LogError::NotFound { .. })
    ));
}

#[test]
fn groups_commit_offsets_that_survive_a_reopen() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("l", 1, None).unwrap();
    logs.append("l", msgs(0..4)).unwrap();
    assert_eq!(logs.committed("l", "g").unwrap(), 0);
    logs.commit("l", "g", 3).unwrap();
    assert!(matches!(
        logs.commit("l", "g", 5),
        Err(LogError::BeyondEnd { .. })
    ));
    assert!(logs.commit("l", "bad/group", 1).is_err());
    let again = logs_on(&store);
    assert_eq!(again.committed("l", "g").unwrap(), 3);
    assert_eq!(again.committed("l", "other").unwrap(), 0);
}

/// Log `src`'s batches from its head back, as a peer would serve them.
fn chain(logs: &Logs, store: &MemoryStore, name: &str) -> Vec<(Block, LogBatch)> {
    let mut out = Vec::new();
    let mut at = logs.get(name).unwrap().head_cid(name).unwrap();
    while let Some(cid) = at {
        let block = store.get(&cid).unwrap().unwrap();
        let b = LogBatch::decode(&block).unwrap();
        at = b.prev;
        out.push((block, b));
    }
    out
}

#[test]
fn a_follower_adopts_a_valid_chain_in_steps() {
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let (a, b) = (logs_on(&sa), logs_on(&sb));
    let id = a.create("l", 1, None).unwrap().id;
    b.follow("copy", &id, 1).unwrap();
    assert!(matches!(
        b.append("copy", msgs(0..1)),
        Err(LogError::NotWritable { .. })
    ));
    a.append("l", msgs(0..2)).unwrap();
    a.append("l", msgs(2..3)).unwrap();
    assert_eq!(b.adopt("copy", chain(&a, &sa, "l"), false).unwrap(), 3);
    a.append("l", msgs(3..6)).unwrap();
    // Only what is new: the batch after B's head.
    let newer: Vec<_> = chain(&a, &sa, "l").into_iter().take(1).collect();
    assert_eq!(b.adopt("copy", newer, false).unwrap(), 6);
    let read = b.read("copy", 0, 100, 1 << 20).unwrap();
    let want: Vec<(u64, String)> = (0..6).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(texts(&read), want);
    assert_eq!(b.get("copy").unwrap().head, a.get("l").unwrap().head);
}

#[test]
fn invalid_chains_are_refused_and_nothing_is_stored() {
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let (a, b) = (logs_on(&sa), logs_on(&sb));
    let id = a.create("l", 1, None).unwrap().id;
    b.follow("copy", &id, 1).unwrap();
    a.append("l", msgs(0..2)).unwrap();
    a.append("l", msgs(2..4)).unwrap();
    let full = chain(&a, &sa, "l");
    let blocks_before = sb.stat().unwrap().blocks;
    // A gap: the newest batch without its predecessor.
    let gap = vec![full[0].clone()];
    assert!(matches!(
        b.adopt("copy", gap, false),
        Err(LogError::Batch(_))
    ));
    // Another log's chain (a forged id).
    let other = LogBatch {
        log: "12D3KooWother".into(),
        first: 0,
        messages: msgs(0..1),
        prev: None,
        time_ms: 0,
    };
    let ob = other.encode().unwrap();
    assert!(matches!(
        b.adopt("copy", vec![(ob, other)], false),
        Err(LogError::Batch(BatchError::OtherLog { .. }))
    ));
    // A batch claiming offsets that overlap its predecessor's.
    let first = full[1].clone();
    let overlap = LogBatch {
        log: id.clone(),
        first: 1,
        messages: msgs(9..10),
        prev: Some(*first.0.cid()),
        time_ms: 0,
    };
    let ob = overlap.encode().unwrap();
    assert!(matches!(
        b.adopt("copy", vec![(ob, overlap), first], false),
        Err(LogError::Batch(BatchError::Gap { .. }))
    ));
    assert_eq!(sb.stat().unwrap().blocks, blocks_before);
    assert_eq!(b.get("copy").unwrap().next, 0);
    // The real chain still goes in.
    assert_eq!(b.adopt("copy", full, false).unwrap(), 4);
}

use crate::dag::batch::BatchError;

#[test]
fn an_index_a_slow_reader_stored_after_an_append_is_not_extended_over_the_gap() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    logs.append("orders", msgs(0..3)).unwrap();
    // A reader builds the index of this state...
    let state = logs.get("orders").unwrap();
    let stale = logs.index_of("orders", &state).unwrap();
    // ...an append moves the head meanwhile, then the reader stores its index.
    logs.append("orders", msgs(3..6)).unwrap();
    logs.indexes().insert("orders".to_string(), stale);
    logs.append("orders", msgs(6..9)).unwrap();
    let want: Vec<(u64, String)> = (0..9).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(texts(&logs.read("orders", 0, 100, 1 << 20).unwrap()), want);
    assert_eq!(
        texts(&logs.read("orders", 4, 2, 1 << 20).unwrap()),
        want[4..6].to_vec()
    );
}

#[test]
fn a_read_through_an_index_with_a_hole_fails_and_the_next_one_rebuilds_it() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    logs.append("orders", msgs(0..3)).unwrap();
    logs.append("orders", msgs(3..6)).unwrap();
    let head = logs.append("orders", msgs(6..9)).unwrap().head;
    let state = logs.get("orders").unwrap();
    let mut holed = (*logs.index_of("orders", &state).unwrap()).clone();
    holed.remove(&3);
    assert_eq!(holed.last_key_value().map(|(_, c)| *c), Some(head));
    logs.indexes().insert("orders".to_string(), Arc::new(holed));
    assert!(matches!(
        logs.read("orders", 4, 100, 1 << 20),
        Err(LogError::Damaged { .. })
    ));
    let want: Vec<(u64, String)> = (4..9).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(texts(&logs.read("orders", 4, 100, 1 << 20).unwrap()), want);
}

#[test]
fn an_append_dropped_before_its_end_leaves_the_log_as_it_was() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    let before = logs.append("orders", msgs(0..3)).unwrap();
    let turn = logs
        .append_turn("orders")
        .unwrap()
        .try_lock_owned()
        .unwrap();
    let mut tx = logs.begin_append("orders", turn).unwrap();
    logs.append_part(&mut tx, msgs(3..5)).unwrap();
    logs.append_part(&mut tx, msgs(5..7)).unwrap();
    // A part with a message over the limit fails; the upload is given up.
    let huge = Bytes::from(vec![0u8; MAX_MESSAGE_BYTES + 1]);
    assert!(matches!(
        logs.append_part(&mut tx, vec![huge]),
        Err(LogError::MessageTooLarge { .. })
    ));
    drop(tx);
    let state = logs.get("orders").unwrap();
    assert_eq!(state.next, 3);
    assert_eq!(state.head, Some(before.head.to_string()));
    assert_eq!(store.pins().unwrap().len(), 1);
    // A retry appends its messages once, at the offsets they would have had.
    let again = logs.append("orders", msgs(3..7)).unwrap();
    assert_eq!((again.first, again.next), (3, 7));
    let want: Vec<(u64, String)> = (0..7).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(texts(&logs.read("orders", 0, 100, 1 << 20).unwrap()), want);
}

#[test]
fn an_append_in_parts_moves_the_head_once_at_its_end() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    let turn = logs
        .append_turn("orders")
        .unwrap()
        .try_lock_owned()
        .unwrap();
    let mut tx = logs.begin_append("orders", turn).unwrap();
    // While it runs, another append waits for its turn.
    assert!(logs
        .append_turn("orders")
        .unwrap()
        .try_lock_owned()
        .is_err());
    logs.append_part(&mut tx, msgs(0..2)).unwrap();
    logs.append_part(&mut tx, msgs(2..5)).unwrap();
    assert_eq!(logs.get("orders").unwrap().next, 0);
    assert!(logs
        .read("orders", 0, 10, 1 << 20)
        .unwrap()
        .messages
        .is_empty());
    assert_eq!(tx.count(), 5);
    let a = logs.finish_append(tx).unwrap();
    assert_eq!((a.first, a.next), (0, 5));
    let state = logs.get("orders").unwrap();
    assert_eq!((state.next, state.batches), (5, 2));
    assert_eq!(store.pin_of(&a.head).unwrap(), Some(PinKind::Recursive));
    assert!(logs.append_turn("orders").unwrap().try_lock_owned().is_ok());
    // An append of nothing changes nothing.
    let turn = logs
        .append_turn("orders")
        .unwrap()
        .try_lock_owned()
        .unwrap();
    let tx = logs.begin_append("orders", turn).unwrap();
    assert!(matches!(logs.finish_append(tx), Err(LogError::Empty)));
    assert_eq!(logs.get("orders").unwrap(), state);
}

#[test]
fn a_read_shares_the_index_instead_of_copying_it() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    logs.append("orders", msgs(0..3)).unwrap();
    let state = logs.get("orders").unwrap();
    let a = logs.index_of("orders", &state).unwrap();
    let b = logs.index_of("orders", &state).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // An append while a reader holds it: the reader's stays as it was.
    logs.append("orders", msgs(3..5)).unwrap();
    assert_eq!(a.len(), 1);
    let state = logs.get("orders").unwrap();
    assert_eq!(logs.index_of("orders", &state).unwrap().len(), 2);
}

#[test]
fn a_damaged_log_is_left_out_of_the_list_and_the_others_go_on() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("a", 1, None).unwrap();
    logs.create("c", 1, None).unwrap();
    logs.append("c", msgs(0..2)).unwrap();
    store.meta_put(&meta_key("b"), Some(b"{not json")).unwrap();
    let names: Vec<String> = logs.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "c"]);
    assert!(matches!(logs.get("b"), Err(LogError::Damaged { .. })));
    // Opening (which checks every head's pin) and reading still work.
    let again = logs_on(&store);
    assert_eq!(again.read("c", 0, 10, 1 << 20).unwrap().messages.len(), 2);
    assert_eq!(again.heads().unwrap().len(), 1);
}

#[test]
fn create_refuses_a_key_of_the_logs_name_it_did_not_make() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    let mine = logs.keys.generate("log-mine", "ed25519").unwrap();
    let e = logs.create("mine", 1, None).unwrap_err();
    assert!(matches!(e, LogError::KeyExists { .. }), "{e}");
    assert!(e.to_string().contains("\"log-mine\""), "{e}");
    assert!(matches!(logs.get("mine"), Err(LogError::NotFound { .. })));
    // The key is untouched; another name works.
    assert_eq!(
        logs.keys.get("log-mine").unwrap().public().to_peer_id(),
        mine.id
    );
    let other = logs.create("other", 1, None).unwrap();
    assert_eq!(
        logs.key("other").unwrap().public().to_peer_id().to_string(),
        other.id
    );
}

#[test]
fn the_pin_of_a_head_a_crash_left_unnamed_is_let_go_on_open_and_only_that() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    let kept = logs.append("orders", msgs(0..2)).unwrap().head;
    // A crash after an append pinned its new head, before its state.
    let turn = logs
        .append_turn("orders")
        .unwrap()
        .try_lock_owned()
        .unwrap();
    let mut tx = logs.begin_append("orders", turn).unwrap();
    logs.append_part(&mut tx, msgs(2..4)).unwrap();
    let lost = tx.prev.unwrap();
    logs.pin_head("orders", &lost, PinKind::Recursive).unwrap();
    drop(tx);
    // The user's own pin of a block the logs never marked.
    let user = Block::new(
        crate::block::CidFormat::V1_SHA2_256,
        crate::block::RAW,
        Bytes::from_static(b"mine"),
    );
    store.put(user.clone()).unwrap();
    store.pin(user.cid(), PinKind::Direct).unwrap();
    assert_eq!(store.pins().unwrap().len(), 3);

    let again = logs_on(&store);
    assert_eq!(store.pin_of(&lost).unwrap(), None);
    assert_eq!(store.pin_of(&kept).unwrap(), Some(PinKind::Recursive));
    assert_eq!(store.pin_of(user.cid()).unwrap(), Some(PinKind::Direct));
    assert_eq!(again.get("orders").unwrap().next, 2);
    assert_eq!(again.head_owner(&kept).unwrap().as_deref(), Some("orders"));
    assert_eq!(again.head_owner(&lost).unwrap(), None);
}

#[test]
fn a_head_the_user_pinned_too_stays_pinned_when_the_log_moves_past_it() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    logs.create("orders", 1, None).unwrap();
    let first = logs.append("orders", msgs(0..2)).unwrap().head;
    // As the node's pin_add does for a CID pinned already.
    assert!(holds_pin(&*store, &first));
    pins::claim_for_user(&*store, &first).unwrap();
    let second = logs.append("orders", msgs(2..3)).unwrap().head;
    assert_eq!(store.pin_of(&first).unwrap(), Some(PinKind::Recursive));
    assert!(!holds_pin(&*store, &first));
    assert!(holds_pin(&*store, &second));
    // Reopening does not take it either.
    logs_on(&store);
    assert_eq!(store.pin_of(&first).unwrap(), Some(PinKind::Recursive));
}

#[test]
fn pin_rm_of_a_head_is_refused_or_takes_only_the_users_claim() {
    use crate::node::{Node, NodeError, Unpinned};
    let node = Node::in_memory(crate::node::Config::default(), [3; 32]);
    let logs = node.logs();
    logs.create("orders", 1, None).unwrap();
    let first = logs.append("orders", msgs(0..2)).unwrap().head;
    // The log's own pin: refused, naming the log.
    let e = node.pin_rm(&first).unwrap_err();
    assert!(matches!(e, NodeError::HeldBy { .. }), "{e}");
    assert!(
        e.to_string().contains("the log \"orders\" (its head)"),
        "{e}"
    );
    assert_eq!(
        node.store().pin_of(&first).unwrap(),
        Some(PinKind::Recursive)
    );
    // Pinned by the user too: the user's claim goes, the pin stays the log's.
    node.pin_add(&first, true).unwrap();
    assert_eq!(
        node.pin_rm(&first).unwrap(),
        Unpinned::KeptBy("the log \"orders\" (its head)".into())
    );
    assert_eq!(
        node.store().pin_of(&first).unwrap(),
        Some(PinKind::Recursive)
    );
    // ... so it goes when the log moves past it.
    let second = logs.append("orders", msgs(2..3)).unwrap().head;
    assert_eq!(node.store().pin_of(&first).unwrap(), None);
    // A past head is no longer the log's: the user's pin of it goes.
    node.pin_add(&first, true).unwrap();
    assert_eq!(
        node.pin_rm(&first).unwrap(),
        Unpinned::Removed(PinKind::Recursive)
    );
    assert_eq!(
        node.store().pin_of(&second).unwrap(),
        Some(PinKind::Recursive)
    );
}

/// Three 10-byte messages: batch `k` of a log appended with them holds
/// offsets 3k..3k+3 and 30 message bytes.
fn ten_bytes(k: u32) -> Vec<Bytes> {
    (0..3)
        .map(|i| Bytes::from(format!("msg-{:06}", 3 * k + i)))
        .collect()
}

#[test]
fn size_retention_drops_the_oldest_batches_and_gc_frees_them() {
    use crate::node::Node;
    let node = Node::in_memory(crate::node::Config::default(), [5; 32]);
    let logs = node.logs();
    logs.create("small", 1, Some(Retention::Bytes(100)))
        .unwrap();
    let heads: Vec<Cid> = (0..20)
        .map(|k| logs.append("small", ten_bytes(k)).unwrap().head)
        .collect();
    // The newest batches up to 100 bytes: 3 of 30.
    let state = logs.get("small").unwrap();
    assert_eq!(
        (state.floor, state.batches, state.bytes, state.next),
        (51, 3, 90, 60)
    );
    // The head is pinned directly; nothing else of the log is pinned.
    assert_eq!(
        node.store().pin_of(&heads[19]).unwrap(),
        Some(PinKind::Direct)
    );
    assert_eq!(node.store().pins().unwrap().len(), 1);
    let (recursive, direct) = logs.gc_roots().unwrap();
    assert!(recursive.is_empty());
    assert_eq!(direct, vec![heads[19], heads[18], heads[17]]);
    // Below the floor: refused, naming the first offset kept.
    let e = logs.read("small", 50, 100, 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            LogError::OffsetOutOfRange {
                offset: 50,
                first: 51,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("first available offset is 51"),
        "{e}"
    );
    node.gc().unwrap();
    for (k, head) in heads.iter().enumerate() {
        assert_eq!(node.store().has(head).unwrap(), k >= 17, "batch {k}");
    }
    // What is kept reads back in order, also once reopened.
    let want: Vec<(u64, String)> = (51..60).map(|i| (i, format!("msg-{i:06}"))).collect();
    assert_eq!(texts(&logs.read("small", 51, 100, 1 << 20).unwrap()), want);
    let store: Arc<dyn Store> = Arc::clone(node.store());
    let again = Logs::open(store, Arc::clone(node.keys()));
    assert_eq!(texts(&again.read("small", 51, 100, 1 << 20).unwrap()), want);
    assert_eq!(again.retain("small", now_ms()).unwrap(), None);
}

#[test]
fn age_retention_drops_what_is_older_but_keeps_the_head() {
    let store = Arc::new(MemoryStore::new());
    let logs = logs_on(&store);
    let age = std::time::Duration::from_secs(60);
    logs.create("aged", 1, Some(Retention::Age(age))).unwrap();
    for k in 0..3 {
        logs.append("aged", ten_bytes(k)).unwrap();
    }
    assert_eq!(logs.retain("aged", now_ms()).unwrap(), None);
    assert_eq!(logs.get("aged").unwrap().floor, 0);
    let later = now_ms() + 61_000;
    let dropped = logs.retain("aged", later).unwrap().unwrap();
    assert_eq!(
        dropped,
        Dropped {
            floor: 6,
            batches: 2,
            bytes: 60
        }
    );
    assert_eq!(logs.read("aged", 6, 10, 1 << 20).unwrap().messages.len(), 3);
    assert_eq!(logs.retain("aged", later).unwrap(), None);
    // A log without a retention keeps everything, its head recursively.
    logs.create("all", 1, None).unwrap();
    let h = logs.append("all", ten_bytes(0)).unwrap().head;
    assert_eq!(logs.retain("all", later).unwrap(), None);
    assert_eq!(store.pin_of(&h).unwrap(), Some(PinKind::Recursive));
}

#[test]
fn a_follower_starts_at_the_creators_floor_and_follows_it_up() {
    let (sa, sb) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let (a, b) = (logs_on(&sa), logs_on(&sb));
    let id = a.create("l", 1, Some(Retention::Bytes(60))).unwrap().id;
    for k in 0..5 {
        a.append("l", ten_bytes(k)).unwrap();
    }
    assert_eq!(a.get("l").unwrap().floor, 9);
    b.follow("copy", &id, 1).unwrap();
    // What a catch-up fetches: head back to the floor's batch only.
    let kept: Vec<_> = chain(&a, &sa, "l").into_iter().take(2).collect();
    assert_eq!(kept[1].1.first, 9);
    // Without restart the first batch must start the log.
    assert!(b.adopt("copy", kept.clone(), false).is_err());
    assert_eq!(b.adopt("copy", kept, true).unwrap(), 15);
    let state = b.get("copy").unwrap();
    assert_eq!((state.floor, state.batches, state.bytes), (9, 2, 60));
    assert!(matches!(
        b.read("copy", 0, 10, 1 << 20),
        Err(LogError::OffsetOutOfRange { first: 9, .. })
    ));
    assert_eq!(b.read("copy", 9, 10, 1 << 20).unwrap().messages.len(), 6);
    let head = state.head_cid("copy").unwrap().unwrap();
    assert_eq!(sb.pin_of(&head).unwrap(), Some(PinKind::Direct));
    // The creator goes on; the follower takes the new batch, then the
    // announced floor.
    a.append("l", ten_bytes(5)).unwrap();
    let newer: Vec<_> = chain(&a, &sa, "l").into_iter().take(1).collect();
    assert_eq!(b.adopt("copy", newer, true).unwrap(), 18);
    let floor = a.get("l").unwrap().floor;
    assert_eq!(floor, 12);
    let dropped = b.raise_floor("copy", floor).unwrap().unwrap();
    assert_eq!((dropped.floor, dropped.batches, dropped.bytes), (12, 1, 30));
    let state = b.get("copy").unwrap();
    assert_eq!((state.floor, state.batches, state.bytes), (12, 2, 60));
    assert_eq!(b.read("copy", 12, 10, 1 << 20).unwrap().messages.len(), 6);
    assert_eq!(b.raise_floor("copy", floor).unwrap(), None);
}

#[test]
fn a_state_kept_before_floors_existed_reads_with_floor_0() {
    let old = br#"{"id":"12D3KooW","replication":1,"retention":null,"head":null,"next":0,"batches":0,"bytes":0,"origin":"Local"}"#;
    assert_eq!(LogState::decode("l", old).unwrap().floor, 0);
}
