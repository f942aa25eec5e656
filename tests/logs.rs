//! Durable logs through the CLI of running daemons: appends, reads from
//! offsets and batches, consumer groups that resume after a restart, bad
//! input refused; and a follower on another daemon that catches up after
//! it was killed (SIGKILL) and delivers every message once, in order.

mod common;

use common::{swarm_addr, Daemon, TestRepo};
use std::time::Duration;

/// Writes `lines` (each with a newline) to scratch file `name`.
fn lines_file(repo: &TestRepo, name: &str, lines: &[String]) -> String {
    let path = repo.scratch(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn msgs(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("message {i}")).collect()
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The `log create` answer's id.
fn created_id(out: &str) -> String {
    out.split_whitespace().nth(1).expect("NAME ID").to_string()
}

#[test]
fn appends_read_back_in_order_and_groups_resume_after_a_restart() {
    let r = TestRepo::new();
    let (mut d, _) = Daemon::start(&r, &[]);
    let out = r.ok(&["log", "create", "orders", "--retention", "7d"]);
    assert!(out.starts_with("orders 12D3Koo"), "{out}");
    let f1 = lines_file(&r, "a", &msgs(0..3));
    let appended = r.ok(&["log", "append", "orders", &f1]);
    assert!(
        appended.starts_with("appended 3 messages at offsets 0..2"),
        "{appended}"
    );
    let f2 = lines_file(&r, "b", &msgs(3..5));
    r.ok(&["log", "append", "orders", &f2]);
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..5));
    assert_eq!(
        lines_of(&r.ok(&["log", "read", "orders", "--from", "2"])),
        msgs(2..5)
    );
    let json = r.ok(&["log", "read", "orders", "--from", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Offset"], 4);
    // From a batch: the second append's head starts at offset 3.
    let head = appended
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert_eq!(
        lines_of(&r.ok(&["log", "read", "orders", "--from-cid", head])),
        msgs(0..5)
    );

    // A group reads everything once, then only what is new.
    assert_eq!(
        lines_of(&r.ok(&["log", "read", "orders", "--group", "billing"])),
        msgs(0..5)
    );
    assert_eq!(r.ok(&["log", "read", "orders", "--group", "billing"]), "");
    let f3 = lines_file(&r, "c", &msgs(5..8));
    r.ok(&["log", "append", "orders", &f3]);
    assert_eq!(
        lines_of(&r.ok(&["log", "read", "orders", "--group", "billing"])),
        msgs(5..8)
    );

    // Restarted, the log and the group's offset are still there.
    d.signal(libc::SIGTERM);
    drop(d);
    let (_d, _) = Daemon::start(&r, &[]);
    assert_eq!(r.ok(&["log", "read", "orders", "--group", "billing"]), "");
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..8));
    let ls = r.ok(&["log", "ls"]);
    assert!(ls.starts_with("orders\tlocal\t8 messages"), "{ls}");

    // Bad input: refused with one clear line, nothing appended.
    let e = r.fails(&["log", "append", "nope", &f1]);
    assert!(e.contains("no log named \"nope\""), "{e}");
    let e = r.fails(&["log", "create", "a/b"]);
    assert!(e.contains("invalid log name"), "{e}");
    let e = r.fails(&["log", "create", "orders"]);
    assert!(e.contains("exists"), "{e}");
    let e = r.fails(&["log", "create", "x", "--retention", "soon"]);
    assert!(e.contains("invalid retention"), "{e}");
    let e = r.fails(&["log", "read", "orders", "--from", "99"]);
    assert!(e.contains("past the log's end"), "{e}");
    let big = r.scratch("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let e = r.fails(&["log", "append", "orders", big.to_str().unwrap()]);
    assert!(e.contains("over the limit"), "{e}");
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..8));
}

/// Polls B's `log ls` until its log has `next` messages.
fn wait_for_messages(repo: &TestRepo, next: u64) {
    common::poll_every(
        Duration::from_millis(200),
        Duration::from_secs(60),
        "the follower to catch up",
        || {
            let ls = repo.ok(&["log", "ls"]);
            ls.contains(&format!("\t{next} messages")).then_some(())
        },
    );
}

#[test]
fn a_follower_killed_mid_log_catches_up_and_reads_the_rest_once_in_order() {
    let (ra, rb) = (TestRepo::new(), TestRepo::new());
    let (_da, banner_a) = Daemon::start(&ra, &[]);
    let a_addr = swarm_addr(&banner_a);
    let (mut db, _) = Daemon::start(&rb, &["--bootstrap", &a_addr]);

    let id = created_id(&ra.ok(&["log", "create", "events"]));
    for (i, range) in [0..40, 40..100].into_iter().enumerate() {
        let f = lines_file(&ra, &format!("first{i}"), &msgs(range));
        ra.ok(&["log", "append", "events", &f]);
    }
    let followed = rb.ok(&["log", "follow", &id, "events"]);
    assert_eq!(followed.trim(), format!("events {id}"));
    wait_for_messages(&rb, 100);
    assert_eq!(
        lines_of(&rb.ok(&["log", "read", "events", "--group", "g"])),
        msgs(0..100)
    );
    // Only the creator appends.
    let e = rb.fails(&[
        "log",
        "append",
        "events",
        &lines_file(&rb, "x", &msgs(0..1)),
    ]);
    assert!(e.contains("followed from another node"), "{e}");

    // B dies; A goes on.
    db.signal(libc::SIGKILL);
    drop(db);
    for (i, range) in [100..150, 150..230, 230..300].into_iter().enumerate() {
        let f = lines_file(&ra, &format!("second{i}"), &msgs(range));
        ra.ok(&["log", "append", "events", &f]);
    }
    let (_db, _) = Daemon::start(&rb, &["--bootstrap", &a_addr]);
    wait_for_messages(&rb, 300);
    assert_eq!(
        lines_of(&rb.ok(&["log", "read", "events", "--group", "g"])),
        msgs(100..300)
    );
    assert_eq!(rb.ok(&["log", "read", "events", "--group", "g"]), "");
    assert_eq!(lines_of(&rb.ok(&["log", "read", "events"])), msgs(0..300));
}

/// Whether `lines` holds each of `groups` as one contiguous run.
fn contiguous(lines: &[String], groups: &[&[String]]) -> bool {
    groups.iter().all(|g| {
        let Some(start) = lines.iter().position(|l| *l == g[0]) else {
            return false;
        };
        lines.get(start..start + g.len()) == Some(g)
    })
}

#[test]
fn an_upload_cut_off_midway_appends_nothing_and_concurrent_uploads_stay_contiguous() {
    let r = TestRepo::new();
    let (_d, _) = Daemon::start(&r, &[]);
    r.ok(&["log", "create", "orders"]);
    r.ok(&["log", "append", "orders", &lines_file(&r, "a", &msgs(0..3))]);

    // More lines than one step stores, then one over 1 MiB: refused whole.
    let mut text = msgs(3..6003).join("\n");
    text.push('\n');
    text.push_str(&"x".repeat((1 << 20) + 1));
    text.push_str("\nafter\n");
    let bad = r.scratch("bad");
    std::fs::write(&bad, text).unwrap();
    let e = r.fails(&["log", "append", "orders", bad.to_str().unwrap()]);
    assert!(e.contains("over the limit"), "{e}");
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..3));
    let ls = r.ok(&["log", "ls"]);
    assert!(ls.starts_with("orders\tlocal\t3 messages"), "{ls}");
    // The retry appends each line once, at the next offsets.
    let good = lines_file(&r, "good", &msgs(3..6003));
    let out = r.ok(&["log", "append", "orders", &good]);
    assert!(
        out.starts_with("appended 6000 messages at offsets 3..6002"),
        "{out}"
    );
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..6003));

    // Two uploads at once, each several steps long: one after the other.
    let a: Vec<String> = (0..10_000).map(|i| format!("a{i}")).collect();
    let b: Vec<String> = (0..10_000).map(|i| format!("b{i}")).collect();
    let (fa, fb) = (lines_file(&r, "ca", &a), lines_file(&r, "cb", &b));
    std::thread::scope(|s| {
        let ta = s.spawn(|| r.ok(&["log", "append", "orders", &fa]));
        let tb = s.spawn(|| r.ok(&["log", "append", "orders", &fb]));
        ta.join().unwrap();
        tb.join().unwrap();
    });
    let all = lines_of(&r.ok(&["log", "read", "orders", "--from", "6003"]));
    assert_eq!(all.len(), 20_000);
    assert!(contiguous(&all, &[&a, &b]), "the two uploads interleaved");
}

#[test]
fn a_logs_head_pin_is_kept_from_pin_rm_online_and_offline_and_a_foreign_key_is_not_taken() {
    let r = TestRepo::new();
    let (mut d, _) = Daemon::start(&r, &[]);
    // One copy: no replica of a head is held for the network here (the
    // replicator would keep a past head's pin until its tombstone).
    r.ok(&["log", "create", "orders", "--replication", "1"]);
    r.ok(&["log", "append", "orders", &lines_file(&r, "a", &msgs(0..3))]);
    let out = r.ok(&["log", "append", "orders", &lines_file(&r, "b", &msgs(3..5))]);
    let head = out
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')');
    // The head's pin is the log's: `pin rm` is refused, naming the log.
    let e = r.fails(&["pin", "rm", head]);
    assert!(
        e.contains("is kept by the log \"orders\" (its head)"),
        "{e}"
    );
    assert!(r.ok(&["pin", "ls", "--type", "recursive"]).contains(head));
    // Pinned by the user too: `pin rm` takes the user's claim, the pin
    // stays for the log.
    r.ok(&["pin", "add", head]);
    r.ok(&["pin", "rm", head]);
    assert!(r.ok(&["pin", "ls", "--type", "recursive"]).contains(head));
    r.ok(&["repo", "gc"]);
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..5));

    // A key named as a log's would be is someone else's: refused.
    r.ok(&["key", "gen", "log-mine"]);
    let e = r.fails(&["log", "create", "mine"]);
    assert!(e.contains("key named \"log-mine\" already"), "{e}");
    assert!(!r.ok(&["log", "ls"]).contains("mine"));

    // Without the daemon, `pin rm` of the head is refused the same way.
    d.signal(libc::SIGTERM);
    drop(d);
    let e = r.fails(&["pin", "rm", head]);
    assert!(
        e.contains("is kept by the log \"orders\" (its head)"),
        "{e}"
    );
    assert!(r.ok(&["pin", "ls", "--type", "recursive"]).contains(head));
    // The log moved past it with the daemon: a past head is the user's to
    // unpin (its blocks stay under the new head).
    let (_d, _) = Daemon::start(&r, &[]);
    r.ok(&["log", "append", "orders", &lines_file(&r, "c", &msgs(5..6))]);
    assert!(!r.ok(&["pin", "ls", "--type", "recursive"]).contains(head));
    r.ok(&["pin", "add", head]);
    r.ok(&["pin", "rm", head]);
    r.ok(&["repo", "gc"]);
    assert_eq!(lines_of(&r.ok(&["log", "read", "orders"])), msgs(0..6));
}

/// A child process the test started, killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_follow_past_the_topic_cap_is_refused_up_front_and_a_follower_retries_with_backoff() {
    let (ra, rb) = (TestRepo::new(), TestRepo::new());
    let (_da, banner_a) = Daemon::start(&ra, &[]);
    let a_addr = swarm_addr(&banner_a);
    let mut ids = Vec::new();
    for (name, n) in [("one", 3), ("two", 5)] {
        ids.push(created_id(&ra.ok(&["log", "create", name])));
        ra.ok(&["log", "append", name, &lines_file(&ra, name, &msgs(0..n))]);
    }
    rb.set_config("pubsub", "max_topics", "2");
    let (mut db, _) = Daemon::start(&rb, &["--bootstrap", &a_addr]);
    // Another subscriber takes one of B's two topics.
    let holder = Killed(
        rb.cmd(&["pubsub", "sub", "hold"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let topics = |want: bool| {
        common::poll_every(
            Duration::from_millis(100),
            Duration::from_secs(20),
            "pubsub ls",
            || (rb.ok(&["pubsub", "ls"]).contains("hold") == want).then_some(()),
        )
    };
    topics(true);
    rb.ok(&["log", "follow", &ids[0], "one"]);
    // No room for a second log's topic: refused at once, saying why and
    // what to change, and no followed log is left half-made.
    let e = rb.fails(&["log", "follow", &ids[1], "two"]);
    assert!(
        e.contains("already listens on 2 pub/sub topics") && e.contains("raise max_topics"),
        "{e}"
    );
    assert!(!rb.ok(&["log", "ls"]).contains("two"), "a half-made log");
    wait_for_messages(&rb, 3);
    // A topic freed, the same follow works and catches up.
    drop(holder);
    topics(false);
    rb.ok(&["log", "follow", &ids[1], "two"]);
    wait_for_messages(&rb, 5);

    // Restarted with room for one topic: one follower listens, the other
    // tries again and again, waiting longer each time.
    db.signal(libc::SIGTERM);
    drop(db);
    rb.set_config("pubsub", "max_topics", "1");
    let stderr = rb.scratch("stderr");
    let mut cmd = rb.cmd(&Daemon::loopback_args(&["--bootstrap", &a_addr]));
    cmd.stderr(std::fs::File::create(&stderr).unwrap());
    let (_db, _) = Daemon::launch(cmd);
    let text = common::poll_every(
        Duration::from_millis(200),
        Duration::from_secs(30),
        "the refused follower to retry twice",
        || {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            text.contains("trying again in 2s").then_some(text)
        },
    );
    assert!(text.contains("trying again in 1s"), "{text}");
    assert!(text.contains("(raise [pubsub] max_topics)"), "{text}");
    // The listening one still takes new messages.
    for (name, n) in [("one", 3..10), ("two", 5..12)] {
        ra.ok(&["log", "append", name, &lines_file(&ra, name, &msgs(n))]);
    }
    common::poll_every(
        Duration::from_millis(200),
        Duration::from_secs(60),
        "the listening follower to catch up",
        || {
            let ls = rb.ok(&["log", "ls"]);
            (ls.contains("\t10 messages") || ls.contains("\t12 messages")).then_some(())
        },
    );
}

/// The head CID an append's answer names.
fn appended_head(out: &str) -> String {
    out.trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

/// The first offset `log ls` shows for the log on its line of `ls`.
fn first_offset(ls: &str) -> u64 {
    ls.split('\t')
        .find_map(|f| f.trim().strip_prefix("first offset "))
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn size_retention_drops_old_batches_gc_frees_them_and_a_follower_gets_only_the_kept_part() {
    let (ra, rb) = (TestRepo::new(), TestRepo::new());
    let (mut da, banner_a) = Daemon::start(&ra, &[]);
    let a_addr = swarm_addr(&banner_a);
    let id = created_id(&ra.ok(&["log", "create", "small", "--retention", "2KiB"]));
    let mut heads = Vec::new();
    for k in 0..50u32 {
        let f = lines_file(&ra, "batch", &msgs(10 * k..10 * k + 10));
        heads.push(appended_head(&ra.ok(&["log", "append", "small", &f])));
        if k == 1 {
            // A group that read the first 20 messages, then stopped.
            assert_eq!(
                ra.ok(&["log", "read", "small", "--group", "g"])
                    .lines()
                    .count(),
                20
            );
        }
    }
    // About 2 KiB of the newest messages (~11 bytes each) kept, whole
    // batches of 10.
    let floor = first_offset(&ra.ok(&["log", "ls"]));
    assert!(
        floor.is_multiple_of(10) && (300..=340).contains(&floor),
        "floor {floor}"
    );
    ra.ok(&["repo", "gc"]);

    // From the floor, in order; below it, refused with the first offset.
    let out = ra.run(&["log", "read", "small"]);
    assert!(out.status.success());
    assert_eq!(
        lines_of(&String::from_utf8_lossy(&out.stdout)),
        msgs(floor as u32..500)
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains(&format!("reading from the first available offset, {floor}")),
        "{note}"
    );
    assert_eq!(
        lines_of(&ra.ok(&["log", "read", "small", "--from", &floor.to_string()])),
        msgs(floor as u32..500)
    );
    let e = ra.fails(&["log", "read", "small", "--from", "5"]);
    assert!(
        e.contains(&format!("the first available offset is {floor}")),
        "{e}"
    );
    let out = ra.run(&["log", "read", "small", "--group", "g"]);
    assert_eq!(
        lines_of(&String::from_utf8_lossy(&out.stdout)),
        msgs(floor as u32..500)
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("group g's committed offset 20 is no longer kept"),
        "{note}"
    );
    assert_eq!(ra.ok(&["log", "read", "small", "--group", "g"]), "");

    // A follower that starts now takes the kept part only.
    let (mut db, _) = Daemon::start(&rb, &["--bootstrap", &a_addr]);
    rb.ok(&["log", "follow", &id, "small"]);
    wait_for_messages(&rb, 500);
    assert_eq!(first_offset(&rb.ok(&["log", "ls"])), floor);
    assert_eq!(
        lines_of(&rb.ok(&["log", "read", "small", "--from", &floor.to_string()])),
        msgs(floor as u32..500)
    );
    assert!(rb
        .fails(&["log", "read", "small", "--from", "0"])
        .contains(&format!("first available offset is {floor}")));
    // The creator goes on: the floor moves up on both.
    for k in 50..60u32 {
        let f = lines_file(&ra, "batch", &msgs(10 * k..10 * k + 10));
        heads.push(appended_head(&ra.ok(&["log", "append", "small", &f])));
    }
    let floor2 = first_offset(&ra.ok(&["log", "ls"]));
    assert!(floor2 >= floor + 90, "{floor} → {floor2}");
    wait_for_messages(&rb, 600);
    common::poll_every(
        Duration::from_millis(200),
        Duration::from_secs(30),
        "the follower's floor to move",
        || (first_offset(&rb.ok(&["log", "ls"])) == floor2).then_some(()),
    );
    assert_eq!(
        lines_of(&rb.ok(&["log", "read", "small"])),
        msgs(floor2 as u32..600)
    );
    ra.ok(&["repo", "gc"]);
    rb.ok(&["repo", "gc"]);

    // Offline: the dropped batches are gone from both stores, the kept
    // ones are there.
    da.signal(libc::SIGTERM);
    db.signal(libc::SIGTERM);
    for (k, head) in heads.iter().enumerate() {
        let kept = (10 * k as u64) >= floor2;
        for r in [&ra, &rb] {
            let stat = r.run(&["block", "stat", head]);
            assert_eq!(
                stat.status.success(),
                kept,
                "batch {k} at offset {}",
                10 * k
            );
        }
    }
}
