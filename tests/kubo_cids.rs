//! CIDs identical to Kubo's, checked against an independent implementation:
//! the JS reference importer (npm `ipfs-unixfs-importer`, configured as Kubo
//! in `tests/js/`), for files of 0 B, 1 B, one chunk, one chunk + 1 and a
//! depth-2 tree, plus a directory tree, under every option set the issue
//! names, and `cairn add` without flags against Kubo's `unixfs-v1-2025`
//! profile (cairn's default). Also CAR interop both ways with `@ipld/car` + the UnixFS exporter.
//!
//! The JS harness installs its pinned npm packages on first run
//! (`tests/npm-ci.sh tests/js`); Node.js >= 20.19 and npm must be on the PATH.

mod common;

use common::{pattern_bytes, TestRepo};
use std::path::{Path, PathBuf};
use std::process::Command;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// A fresh repo, with tests/js' npm packages installed (once per test
/// binary).
fn js_repo() -> TestRepo {
    common::process::npm_ci("tests/js");
    TestRepo::new()
}

/// `node tests/js/SCRIPT ARGS...`, which must succeed: its trimmed stdout.
fn node(script: &str, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(js_dir().join(script))
        .args(args)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node {script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The sample inputs (the JS harness's rule: byte i is `i % 251`).
fn samples(repo: &TestRepo) -> Vec<PathBuf> {
    let mut paths = vec![];
    for len in [0usize, 1, 262_144, 262_145, 50 * 1024 * 1024, 1_000_000] {
        let p = repo.scratch(&format!("f{len}"));
        std::fs::write(&p, pattern_bytes(len)).unwrap();
        paths.push(p);
    }
    let dir = repo.scratch("dir");
    std::fs::create_dir_all(dir.join("sub/sub2")).unwrap();
    std::fs::create_dir_all(dir.join("sub/.hdir")).unwrap();
    std::fs::create_dir_all(dir.join("empty-dir")).unwrap();
    std::fs::write(dir.join("Z"), pattern_bytes(10)).unwrap();
    std::fs::write(dir.join("a.txt"), pattern_bytes(1000)).unwrap();
    std::fs::write(dir.join("empty-file"), b"").unwrap();
    std::fs::write(dir.join(".hidden"), pattern_bytes(10)).unwrap();
    std::fs::write(dir.join("sub/b.bin"), pattern_bytes(300_000)).unwrap();
    std::fs::write(dir.join("sub/sub2/c"), pattern_bytes(1)).unwrap();
    std::fs::write(dir.join("sub/.hdir/d"), pattern_bytes(5)).unwrap();
    std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
    paths.push(dir);
    paths
}

/// Option sets as Kubo's `ipfs add` takes them, with Kubo's classic defaults
/// (what the reference importer does without `--profile`).
const OPTION_SETS: &[&[&str]] = &[
    &["--cid-version", "0"],
    &["--cid-version", "1", "--hash", "sha2-256"],
    &["--cid-version", "1", "--hash", "blake3"],
    &[
        "--cid-version",
        "1",
        "--hash",
        "sha2-256",
        "--chunker",
        "size-1048576",
        "--max-links",
        "1024",
    ],
    &["--profile", "unixfs-v1-2025"],
    &["--cid-version", "0", "--layout", "trickle"],
    &[
        "--cid-version",
        "1",
        "--hash",
        "sha2-256",
        "--layout",
        "trickle",
    ],
    &[
        "--cid-version",
        "0",
        "--chunker",
        "size-1024",
        "--max-links",
        "4",
    ],
    &[
        "--cid-version",
        "0",
        "--chunker",
        "size-1024",
        "--max-links",
        "4",
        "--layout",
        "trickle",
    ],
    &[
        "--cid-version",
        "1",
        "--hash",
        "sha2-256",
        "--raw-leaves",
        "false",
    ],
    &["--cid-version", "0", "--raw-leaves", "true"],
];

/// Option sets of cairn's defaults (Kubo's `unixfs-v1-2025`), as cairn's
/// flags and as the reference importer's.
const DEFAULT_SETS: &[(&[&str], &[&str])] = &[
    (&[], &["--profile", "unixfs-v1-2025"]),
    (
        &["--cid-version", "1"],
        &["--profile", "unixfs-v1-2025", "--cid-version", "1"],
    ),
    (
        &["--hash", "blake3"],
        &["--profile", "unixfs-v1-2025", "--hash", "blake3"],
    ),
];

/// Each comparison: cairn's flags and the reference importer's. Kubo's
/// classic sets get `--profile unixfs-v0-2015` on cairn's side (cairn's
/// defaults are `unixfs-v1-2025`) unless they name a profile.
fn comparisons() -> Vec<(Vec<&'static str>, Vec<&'static str>)> {
    let classic = OPTION_SETS.iter().map(|opts| {
        let mut ours = vec![];
        if !opts.contains(&"--profile") {
            ours.extend(["--profile", "unixfs-v0-2015"]);
        }
        ours.extend_from_slice(opts);
        (ours, opts.to_vec())
    });
    let defaults = DEFAULT_SETS.iter().map(|(o, t)| (o.to_vec(), t.to_vec()));
    classic.chain(defaults).collect()
}

#[test]
fn cids_match_the_reference_importer() {
    let repo = js_repo();
    let inputs = samples(&repo);
    let mut compared = 0;
    for (our_opts, opts) in comparisons() {
        for input in &inputs {
            let is_dir = input.is_dir();
            // Deep trees with tiny chunks only for the mid-size file (cost).
            let tiny = opts.contains(&"size-1024");
            let name = input.file_name().unwrap().to_str().unwrap();
            if tiny && !(name == "f1000000" || name == "f262145") {
                continue;
            }
            for hidden in [false, true] {
                if hidden && !is_dir {
                    continue;
                }
                let mut ours: Vec<&str> = vec!["-n"];
                ours.extend_from_slice(&our_opts);
                let mut theirs: Vec<&str> = opts.clone();
                if is_dir {
                    ours.push("-r");
                }
                if hidden {
                    ours.push("-H");
                    theirs.push("--hidden");
                }
                let path = input.to_str().unwrap();
                theirs.push(path);
                let expected = node("unixfs-ref.mjs", &theirs);
                let got = repo.add(input, &ours);
                assert_eq!(
                    got, expected,
                    "CID of {name} (hidden: {hidden}) with {our_opts:?} (reference: {opts:?})"
                );
                compared += 1;
            }
        }
    }
    println!("{compared} CIDs identical to the reference importer");
    assert!(compared >= 60);
}

#[test]
fn cars_interoperate_with_the_js_reference() {
    let repo = js_repo();
    let inputs = samples(&repo);
    let dir = inputs.last().unwrap();
    let big = &inputs[4];
    for input in [dir, big] {
        // Ours -> theirs: `cairn dag export`, unpacked by @ipld/car + exporter.
        let root = repo.add(input, &["-r", "--cid-version", "0"]);
        let car = repo.scratch("ours.car");
        let out = repo.run(&["dag", "export", &root]);
        assert!(out.status.success());
        std::fs::write(&car, &out.stdout).unwrap();
        assert_eq!(node("car.mjs", &["roots", car.to_str().unwrap()]), root);
        let unpacked = repo.scratch("unpacked-by-js");
        node(
            "car.mjs",
            &["unpack", car.to_str().unwrap(), unpacked.to_str().unwrap()],
        );
        let ours = repo.scratch("got-by-cairn");
        repo.ok(&["get", &root, "-o", ours.to_str().unwrap()]);
        assert_trees_equal(&ours, &unpacked);
        std::fs::remove_dir_all(&unpacked)
            .or_else(|_| std::fs::remove_file(&unpacked))
            .unwrap();
        std::fs::remove_dir_all(&ours)
            .or_else(|_| std::fs::remove_file(&ours))
            .unwrap();

        // Theirs -> ours: packed by the JS importer, imported and read by cairn.
        let other = TestRepo::new();
        let theirs = other.scratch("theirs.car");
        let js_root = node(
            "car.mjs",
            &[
                "pack",
                input.to_str().unwrap(),
                theirs.to_str().unwrap(),
                "--cid-version",
                "1",
            ],
        );
        let got = import_and_get(&other, &theirs, &js_root);
        assert_trees_equal(&got, &ours_source(input));
        other.ok(&["repo", "verify"]);
    }
}

/// What `get` should reproduce of an added input (hidden files skipped).
fn ours_source(input: &Path) -> PathBuf {
    input.to_path_buf()
}

fn assert_trees_equal(a: &Path, b: &Path) {
    let ma = std::fs::symlink_metadata(a).unwrap();
    let mb = std::fs::symlink_metadata(b).unwrap();
    if ma.is_file() {
        assert!(mb.is_file(), "{} is not a file", b.display());
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}",
            a.display()
        );
        return;
    }
    if ma.is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap()
        );
        return;
    }
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    let (na, nb) = (names(a), names(b));
    assert_eq!(na, nb, "entries of {}", a.display());
    for n in na {
        assert_trees_equal(&a.join(&n), &b.join(&n));
    }
}

/// `cairn dag import CAR` on `repo`, which must pin `root`; then `cairn
/// get ROOT` into a scratch path, returned.
fn import_and_get(repo: &TestRepo, car: &Path, root: &str) -> PathBuf {
    let text = repo.ok(&["dag", "import", car.to_str().unwrap()]);
    assert!(
        text.contains(&format!("Pinned root {root} success")),
        "{text}"
    );
    let got = repo.scratch("got");
    repo.ok(&["get", root, "-o", got.to_str().unwrap()]);
    got
}

fn ipfs_car(args: &[&str]) -> String {
    node("node_modules/ipfs-car/bin.js", args)
}

#[test]
fn cars_interoperate_with_ipfs_car() {
    let repo = js_repo();
    let tree = repo.scratch("tree");
    // No empty directory here: ipfs-car's pack drops them (cairn keeps
    // them, as Kubo does; the other tests cover that).
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.bin"), pattern_bytes(700_000)).unwrap();
    std::fs::write(tree.join("sub/b.txt"), b"b\n").unwrap();
    std::fs::write(tree.join("sub/zero"), b"").unwrap();
    let file = repo.scratch("file.bin");
    std::fs::write(&file, pattern_bytes(3_000_000)).unwrap();
    for input in [&tree, &file] {
        // Packed by ipfs-car, imported and read back by cairn.
        let car = repo.scratch("packed-by-ipfs-car.car");
        let _ = std::fs::remove_file(&car);
        ipfs_car(&[
            "pack",
            input.to_str().unwrap(),
            "--no-wrap",
            "--output",
            car.to_str().unwrap(),
        ]);
        let root = ipfs_car(&["roots", car.to_str().unwrap()]);
        let other = TestRepo::new();
        let got = import_and_get(&other, &car, &root);
        assert_trees_equal(&got, input);

        // Exported by cairn, unpacked by ipfs-car (which verifies hashes).
        let ours = repo.add(input, &["-r", "--cid-version", "1", "--hash", "sha2-256"]);
        let out = repo.run(&["dag", "export", &ours]);
        assert!(out.status.success());
        let our_car = repo.scratch("ours.car");
        std::fs::write(&our_car, &out.stdout).unwrap();
        let unpacked = repo.scratch("unpacked-by-ipfs-car");
        ipfs_car(&[
            "unpack",
            our_car.to_str().unwrap(),
            "--output",
            unpacked.to_str().unwrap(),
        ]);
        assert_trees_equal(&unpacked, input);
        std::fs::remove_dir_all(&unpacked)
            .or_else(|_| std::fs::remove_file(&unpacked))
            .unwrap();
    }
}

/// Large directories become HAMT shards exactly as Kubo shards them.
#[test]
fn sharded_directories_match_the_reference_importer() {
    let repo = js_repo();
    let dir = repo.scratch("big-dir");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    // 6,000 entries of 15 + 34 bytes each: over the 256 KiB "links" estimate.
    for i in 0..6000 {
        std::fs::write(dir.join(format!("entry-{i:05}.txt")), format!("{i}\n")).unwrap();
    }
    std::fs::write(dir.join("nested/inner"), b"inner\n").unwrap();
    let path = dir.to_str().unwrap();
    let v0 = "--profile=unixfs-v0-2015";
    let v1 = "--profile=unixfs-v1-2025";
    for (ours, theirs) in [
        (&[v0, "--cid-version", "0"][..], &["--cid-version", "0"][..]),
        (&[v1][..], &[v1][..]),
        (&[][..], &[v1][..]),
        (
            &[v0, "--cid-version", "1", "--hash", "blake3"][..],
            &["--cid-version", "1", "--hash", "blake3"][..],
        ),
    ] {
        let expected = node("unixfs-ref.mjs", &[theirs, &[path]].concat());
        let got = repo.add(&dir, &[&["-r", "-n"][..], ours].concat());
        assert_eq!(
            got, expected,
            "sharded directory with {ours:?} (reference: {theirs:?})"
        );
    }
    // Stored, it reads back: path lookups, listing, and the whole tree.
    let root = repo.add(&dir, &["-r", "--cid-version", "0"]);
    assert_eq!(
        repo.run(&["cat", &format!("{root}/entry-04321.txt")])
            .stdout,
        b"4321\n"
    );
    assert_eq!(
        repo.run(&["cat", &format!("/ipfs/{root}/nested/inner")])
            .stdout,
        b"inner\n"
    );
    let err = repo.fails(&["cat", &format!("{root}/no-such-entry")]);
    assert!(err.contains("no-such-entry"), "{err}");
    assert_eq!(repo.ok(&["ls", &root]).lines().count(), 6001);
    // It really is a HAMT: the root block is a small shard node.
    let stat = repo.ok(&["block", "stat", &root]);
    let size: usize = stat
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("Size: ")
        .parse()
        .unwrap();
    assert!(size < 20_000, "root of {size} bytes is not a shard");
    let out = repo.scratch("out");
    repo.ok(&["get", &root, "-o", out.to_str().unwrap()]);
    assert_trees_equal(&out, &dir);
}
