//! The programs in `examples/` run and succeed: each embeds nodes on
//! 127.0.0.1 in temporary directories and exits 0 only if the bytes it
//! read back are the bytes it added.
//!
//! `cargo test` builds the examples beside the test binaries
//! (`target/PROFILE/examples/`); this runs those binaries, each bounded in
//! time.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The built example `name`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/PROFILE/deps/TEST");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole `cargo test` (it builds examples), \
         or `cargo build --examples` with this profile first",
        path.display()
    );
    path
}

/// Runs example `name` to completion (30 s at most); asserts it exited 0
/// and printed `expect`.
fn runs(name: &str, expect: &str) {
    let out =
        common::process::run_bounded(Command::new(example(name)), None, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(expect), "example {name} printed:\n{stdout}");
}

#[test]
fn add_file() {
    runs("add_file", "added ");
}

#[test]
fn fetch_from_peer() {
    runs("fetch_from_peer", "fetched 3000000 bytes");
}

#[test]
fn replicate_pin() {
    runs("replicate_pin", "holds a pinned copy");
}

#[test]
fn gateway_get() {
    runs("gateway_get", "as added");
}

/// README's "Use from Rust" shows `examples/fetch_from_peer.rs` as it is.
#[test]
fn readme_shows_the_example_ci_runs() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/fetch_from_peer.rs");
    let section = readme
        .split_once("## Use from Rust")
        .expect("README has a \"Use from Rust\" section")
        .1;
    let snippet = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a rust code block in that section")
        .0;
    assert!(
        example.contains(snippet),
        "README's Rust snippet is not the text of examples/fetch_from_peer.rs"
    );
}
