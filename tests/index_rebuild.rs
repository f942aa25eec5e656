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
