//! The index is only a cache of what the segments and the pin journal say:
//! a damaged record header is found by `repo verify`.

mod common;

use common::{random_bytes, TestRepo};

/// A repo holding one small file (one block: its record opens segment 0).
fn one_small_file() -> (TestRepo, String) {
    let repo = TestRepo::new();
    let file = repo.scratch("small");
    std::fs::write(&file, random_bytes(1000, 7)).unwrap();
    let cid = repo.add(&file, &[]);
    (repo, cid)
}

#[test]
fn verify_reports_a_damaged_record_header() {
    let (repo, cid) = one_small_file();
    repo.ok(&["repo", "verify"]);
    let seg = repo.path().join("segments/00000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    // The body length field of the first record's header.
    bytes[7] ^= 0x01;
    std::fs::write(&seg, bytes).unwrap();
    let out = repo.run(&["repo", "verify"]);
    assert!(!out.status.success(), "verify passed a damaged header");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("corrupt block"), "{stdout}");
    let err = repo.fails(&["cat", &cid]);
    assert!(err.contains("record header"), "{err}");
}

/// How the index is damaged before the next command.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Bits flipped in sled's log.
    FlippedBits,
    /// sled's log cut short.
    Truncated,
    /// A 0-byte `snap.*.generating` left by a snapshot a full disk cut off.
    UnfinishedSnapshot,
    /// The whole index gone.
    Deleted,
}

fn damage(index: &std::path::Path, how: Damage) {
    let db = index.join("db");
    match how {
        Damage::FlippedBits => {
            let mut bytes = std::fs::read(&db).unwrap();
            for at in [100, 700, 1500] {
                bytes[at] ^= 0x04;
            }
            std::fs::write(&db, bytes).unwrap();
        }
        Damage::Truncated => {
            let f = std::fs::File::options().write(true).open(&db).unwrap();
            f.set_len(1000).unwrap();
        }
        Damage::UnfinishedSnapshot => {
            std::fs::write(index.join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
        }
        Damage::Deleted => std::fs::remove_dir_all(index).unwrap(),
    }
}

#[test]
fn every_command_works_after_the_index_is_damaged_and_pinned_files_read_back() {
    for how in [
        Damage::FlippedBits,
        Damage::Truncated,
        Damage::UnfinishedSnapshot,
        Damage::Deleted,
    ] {
        let repo = TestRepo::new();
        let mut files = vec![];
        for (i, len) in [3_000_000usize, 700_000, 1000].into_iter().enumerate() {
            let path = repo.scratch(&format!("f{i}"));
            let bytes = random_bytes(len, i as u64 + 1);
            std::fs::write(&path, &bytes).unwrap();
            files.push((repo.add(&path, &[]), bytes));
        }
        let unpinned = repo.scratch("unpinned");
        std::fs::write(&unpinned, random_bytes(5000, 99)).unwrap();
        repo.add(&unpinned, &["--pin=false"]);
        let pins = repo.ok(&["pin", "ls", "--type", "recursive"]);

        damage(&repo.path().join("index"), how);
        let first = repo.run(&["pin", "ls", "--type", "recursive"]);
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(first.status.success(), "{how:?}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&first.stdout), pins, "{how:?}");
        if !matches!(how, Damage::UnfinishedSnapshot) {
            assert!(
                stderr.contains("rebuilt it from the segments"),
                "{how:?}: {stderr}"
            );
        }
        for (cid, bytes) in &files {
            assert!(repo.ok_bytes(&["cat", cid]) == *bytes, "{how:?}: {cid}");
        }
        let verified = repo.ok(&["repo", "verify"]);
        assert!(verified.contains("all good"), "{how:?}: {verified}");
        let extra = repo.scratch("extra");
        std::fs::write(&extra, random_bytes(20_000, 7)).unwrap();
        let cid = repo.add(&extra, &[]);
        repo.ok(&["repo", "gc"]);
        let rebuilt = repo.ok(&["repo", "rebuild-index"]);
        assert!(rebuilt.starts_with("rebuilt the index: "), "{rebuilt}");
        let out = repo.run(&["cat", &cid]);
        assert!(out.status.success() && out.stderr.is_empty(), "{how:?}");
        for (cid, bytes) in &files {
            assert!(repo.ok_bytes(&["cat", cid]) == *bytes, "{how:?}: {cid}");
        }
    }
}

/// `repo rebuild-index` right after `repo gc` (each its own process, as a
/// user runs them), round after round: the rebuild opens the index it just
/// built without finding it still locked, and what is pinned reads back.
/// With a daemon running, the rebuild is refused with a clear reason.
#[test]
fn rebuild_index_right_after_gc_and_refused_while_a_daemon_runs() {
    let repo = TestRepo::new();
    let kept = repo.scratch("kept");
    let kept_bytes = random_bytes(1_500_000, 3);
    std::fs::write(&kept, &kept_bytes).unwrap();
    let kept_cid = repo.add(&kept, &[]);
    for round in 0..8u64 {
        let dropped = repo.scratch("dropped");
        std::fs::write(&dropped, random_bytes(700_000, 100 + round)).unwrap();
        let cid = repo.add(&dropped, &[]);
        repo.ok(&["pin", "rm", &cid]);
        let gc = repo.ok(&["repo", "gc"]);
        assert!(gc.starts_with("removed "), "round {round}: {gc}");
        let out = repo.run(&["repo", "rebuild-index"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "round {round}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("rebuilt the index: "), "{stdout}");
        assert!(
            repo.ok_bytes(&["cat", &kept_cid]) == kept_bytes,
            "round {round}"
        );
    }
    repo.ok(&["repo", "verify"]);

    let (_daemon, _banner) = common::Daemon::start(&repo, &[]);
    let err = repo.fails(&["repo", "rebuild-index"]);
    assert!(
        err.contains("the daemon has the repo open: stop it before rebuilding the index"),
        "{err}"
    );
    assert!(repo.ok_bytes(&["cat", &kept_cid]) == kept_bytes);
}
