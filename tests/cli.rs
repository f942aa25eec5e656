//! The offline CLI as a user runs it: add/cat/get round trips, directories,
//! ranges, pins and GC, blocks, errors, locking and corruption.

mod common;

use common::{random_bytes, TestRepo};
use std::fs;
use std::path::Path;
use std::process::Stdio;

/// The default chunk size (Kubo's unixfs-v1-2025 profile).
const CHUNK: usize = 1024 * 1024;

#[test]
fn files_round_trip_at_boundary_sizes() {
    let repo = TestRepo::new();
    for (i, len) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes(len, i as u64);
        let file = repo.scratch(&format!("f{len}"));
        fs::write(&file, &data).unwrap();
        for flags in [
            &[][..],
            &["--cid-version", "0"][..],
            &["--raw-leaves=false"][..],
        ] {
            let cid = repo.add(&file, flags);
            let out = repo.run(&["cat", &cid]);
            assert!(out.status.success());
            assert_eq!(out.stdout, data, "cat of {len} bytes with {flags:?}");
            let got = repo.scratch(&format!("got-{cid}"));
            repo.ok(&["get", &cid, "-o", got.to_str().unwrap()]);
            assert_eq!(fs::read(&got).unwrap(), data);
        }
    }
}

#[test]
fn add_prints_kubo_style_lines_and_defaults() {
    let repo = TestRepo::new();
    let file = repo.scratch("hello.txt");
    fs::write(&file, b"hello world\n").unwrap();
    let out = repo.ok(&["add", "--cid-version", "0", file.to_str().unwrap()]);
    assert_eq!(
        out,
        "added QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o hello.txt\n"
    );
    // cairn's default is Kubo's unixfs-v1-2025 (CIDv1, raw leaves,
    // sha2-256): a raw block here, as `ipfs add --cid-version 1` makes it.
    let v1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4";
    assert_eq!(repo.add(&file, &[]), v1);
    assert_eq!(repo.add(&file, &["--cid-version", "1"]), v1);
    // BLAKE3 is one flag, a profile, or one config line away; an explicit
    // CID version without --hash still means sha2-256, as in Kubo.
    let b3 = repo.add(&file, &["--hash", "blake3"]);
    assert!(b3.starts_with("bafkr4"), "{b3}");
    assert_eq!(repo.add(&file, &["--profile", "cairn-blake3"]), b3);
    repo.set_config("import", "hash", "\"blake3\"");
    assert_eq!(repo.add(&file, &[]), b3);
    assert_eq!(repo.add(&file, &["--cid-version", "1"]), v1);
    let err = repo.fails(&["add", "--profile", "fastest", file.to_str().unwrap()]);
    assert!(
        err.contains("unknown profile") && err.contains("cairn-blake3"),
        "{err}"
    );
    // Standard input works too, named by its CID as Kubo does.
    let mut child = repo
        .cmd(&["add", "--cid-version", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello world\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "added QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o\n"
    );
}

#[test]
fn range_reads() {
    let repo = TestRepo::new();
    let data = random_bytes(5 * CHUNK + 1000, 7);
    let file = repo.scratch("big");
    fs::write(&file, &data).unwrap();
    let cid = repo.add(&file, &[]);
    for (off, len) in [
        (0usize, 10usize),
        (CHUNK - 5, 10),
        (3 * CHUNK, CHUNK),
        (data.len() - 3, 100),
    ] {
        let out = repo.run(&[
            "cat",
            "--offset",
            &off.to_string(),
            "--length",
            &len.to_string(),
            &cid,
        ]);
        assert!(out.status.success());
        assert_eq!(out.stdout, &data[off..(off + len).min(data.len())]);
    }
}

fn write_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("a.txt"), b"alpha\n").unwrap();
    fs::write(root.join("B.txt"), b"upper case sorts first\n").unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(root.join("sub/big.bin"), random_bytes(700_000, 3)).unwrap();
    fs::write(root.join("sub/deeper/z"), b"zzz").unwrap();
    fs::write(root.join(".hidden"), b"secret").unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link-to-a")).unwrap();
}

fn assert_same_tree(a: &Path, b: &Path, skip_hidden: bool) {
    let mut names_a: Vec<_> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !(skip_hidden && n.to_string_lossy().starts_with('.')))
        .collect();
    let mut names_b: Vec<_> = fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "entries of {}", a.display());
    for n in names_a {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let ma = fs::symlink_metadata(&pa).unwrap();
        let mb = fs::symlink_metadata(&pb).unwrap();
        assert_eq!(ma.file_type(), mb.file_type(), "{}", pa.display());
        if ma.is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
        } else if ma.is_dir() {
            assert_same_tree(&pa, &pb, skip_hidden);
        } else {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "{}",
                pa.display()
            );
        }
    }
}

#[test]
fn directories_round_trip() {
    let repo = TestRepo::new();
    let src = repo.scratch("tree");
    write_tree(&src);
    let out = repo.ok(&["add", "-r", src.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    // Children before their directory, the root last, hidden files skipped.
    assert!(lines.last().unwrap().ends_with(" tree"), "{out}");
    assert!(lines.iter().any(|l| l.ends_with(" tree/sub/deeper/z")));
    assert!(!out.contains(".hidden"));
    let root = lines.last().unwrap().split(' ').nth(1).unwrap().to_string();
    let dest = repo.scratch("out");
    repo.ok(&["get", &root, "-o", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest, true);
    // Paths inside the tree resolve.
    let z = repo.run(&["cat", &format!("/ipfs/{root}/sub/deeper/z")]);
    assert_eq!(z.stdout, b"zzz");
    // ls lists sorted names as Kubo does (bytewise: upper case first).
    let ls = repo.ok(&["ls", &root]);
    let names: Vec<&str> = ls.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "B.txt",
            "a.txt",
            "empty-dir/",
            "empty-file",
            "link-to-a",
            "sub/"
        ]
    );
    // With -H hidden files come along.
    let out = repo.ok(&["add", "-r", "-H", "-Q", src.to_str().unwrap()]);
    let dest = repo.scratch("out-hidden");
    repo.ok(&["get", out.trim(), "-o", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest, false);
    // A directory without -r is refused.
    let err = repo.fails(&["add", src.to_str().unwrap()]);
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn pins_and_gc() {
    let repo = TestRepo::new();
    let keep = repo.scratch("keep");
    let drop = repo.scratch("drop");
    fs::write(&keep, random_bytes(3 * CHUNK, 1)).unwrap();
    fs::write(&drop, random_bytes(3 * CHUNK, 2)).unwrap();
    let keep_cid = repo.add(&keep, &[]);
    let drop_cid = repo.add(&drop, &["--pin=false"]);
    let ls = repo.ok(&["pin", "ls", "--type", "recursive"]);
    assert_eq!(ls, format!("{keep_cid} recursive\n"));
    let indirect = repo.ok(&["pin", "ls", "--type", "indirect"]);
    assert_eq!(indirect.lines().count(), 3, "three leaves under the root");
    let gc = repo.ok(&["repo", "gc"]);
    assert!(gc.starts_with("removed 4 blocks"), "{gc}");
    let err = repo.fails(&["cat", &drop_cid]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        repo.run(&["cat", &keep_cid]).stdout,
        fs::read(&keep).unwrap()
    );
    // Pinning needs every block; unpinning then GC frees them.
    let err = repo.fails(&["pin", "add", &drop_cid]);
    assert!(err.contains("not found"), "{err}");
    repo.ok(&["pin", "rm", &keep_cid]);
    let err = repo.fails(&["pin", "rm", &keep_cid]);
    assert!(err.contains("not pinned"), "{err}");
    repo.ok(&["repo", "gc"]);
    let stat = repo.ok(&["repo", "stat"]);
    assert!(stat.contains("NumObjects:   0"), "{stat}");
    repo.ok(&["repo", "verify"]);
}

/// `RepoSize` in `repo stat`'s output.
fn repo_size(repo: &TestRepo) -> u64 {
    let stat = repo.ok(&["repo", "stat"]);
    stat.lines()
        .find_map(|l| l.strip_prefix("RepoSize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RepoSize in {stat}"))
}

/// A gc that frees 40 % of the only segment punches holes there (too
/// little to compact it): `repo stat` counts the bytes the segment still
/// holds, not its length.
#[test]
fn repo_stat_counts_the_holes_gc_punched() {
    let repo = TestRepo::new();
    let keep = repo.scratch("keep");
    let drop = repo.scratch("drop");
    fs::write(&keep, random_bytes(12 * CHUNK, 5)).unwrap();
    fs::write(&drop, random_bytes(8 * CHUNK, 6)).unwrap();
    let keep_cid = repo.add(&keep, &[]);
    let drop_cid = repo.add(&drop, &[]);
    let before = repo_size(&repo);
    assert!(before >= 20 * CHUNK as u64, "{before}");
    repo.ok(&["pin", "rm", &drop_cid]);
    let gc = repo.ok(&["repo", "gc"]);
    assert!(
        gc.contains("from 0 segments"),
        "no compaction expected: {gc}"
    );
    let after = repo_size(&repo);
    let freed = before - after;
    assert!(
        freed >= 8 * CHUNK as u64 - 64 * 1024 && freed <= 8 * CHUNK as u64 + 64 * 1024,
        "RepoSize {before} -> {after} after freeing {} bytes of blocks",
        8 * CHUNK
    );
    assert_eq!(repo.ok_bytes(&["cat", &keep_cid]), fs::read(&keep).unwrap());
    repo.ok(&["repo", "verify"]);
}

#[test]
fn blocks_put_get_stat() {
    let repo = TestRepo::new();
    let file = repo.scratch("blk");
    fs::write(&file, b"some block").unwrap();
    let cid = repo
        .ok(&["block", "put", file.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(cid.starts_with("bafkrei"), "{cid}");
    assert_eq!(repo.run(&["block", "get", &cid]).stdout, b"some block");
    assert!(repo.ok(&["block", "stat", &cid]).contains("Size: 10"));
    fs::write(&file, vec![0u8; 2 * 1024 * 1024 + 1]).unwrap();
    let err = repo.fails(&["block", "put", file.to_str().unwrap()]);
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn only_hash_stores_nothing() {
    let repo = TestRepo::new();
    let file = repo.scratch("f");
    fs::write(&file, random_bytes(CHUNK * 2, 9)).unwrap();
    let a = repo.add(&file, &["-n"]);
    assert!(repo.ok(&["repo", "stat"]).contains("NumObjects:   0"));
    let b = repo.add(&file, &[]);
    assert_eq!(a, b);
}

#[test]
fn bad_input_gives_one_clear_line() {
    let repo = TestRepo::new();
    let err = repo.fails(&["cat", "not-a-cid"]);
    assert!(err.contains("invalid CID"), "{err}");
    let err = repo.fails(&["add", "/definitely/not/here"]);
    assert!(err.contains("No such file"), "{err}");
    let err = repo.fails(&[
        "cat",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ]);
    assert!(err.contains("not found"), "{err}");
    let err = repo.fails(&["add", "--chunker", "size-99999999", "/etc/hostname"]);
    assert!(err.contains("chunker"), "{err}");
    let err = repo.fails(&[
        "add",
        "--cid-version",
        "0",
        "--hash",
        "blake3",
        "/etc/hostname",
    ]);
    assert!(err.contains("CIDv0"), "{err}");
}

#[test]
fn a_second_process_gets_a_clear_lock_error() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    // `add` from a pipe we keep open holds the repo while it waits for input.
    let mut holder = repo
        .cmd(&["add"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(b"partial").unwrap();
    // Let the holder take the lock before probing (a probe that opened the
    // repo first would make the holder the one refused).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut err = String::new();
    for _ in 0..40 {
        let out = repo.run(&["repo", "stat"]);
        if !out.status.success() {
            err = String::from_utf8_lossy(&out.stderr).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(stdin);
    let status = holder.wait().unwrap();
    assert!(status.success());
    assert!(err.contains("in use by another process"), "{err:?}");
    repo.ok(&["repo", "stat"]);
}

#[test]
fn corruption_is_detected_and_named() {
    let repo = TestRepo::new();
    let file = repo.scratch("f");
    let data = random_bytes(3 * CHUNK, 5);
    fs::write(&file, &data).unwrap();
    let cid = repo.add(&file, &[]);
    repo.ok(&["repo", "verify"]);
    // Flip one byte of file data inside a segment.
    let segdir = repo.path().join("segments");
    let seg = fs::read_dir(&segdir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&seg).unwrap();
    let needle = &data[CHUNK + 100..CHUNK + 132];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("data in segment");
    bytes[at] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let out = repo.run(&["repo", "verify"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("corrupt block"), "{text}");
    let err = repo.fails(&["cat", &cid]);
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn car_export_import_round_trip() {
    let a = TestRepo::new();
    let b = TestRepo::new();
    let src = a.scratch("tree");
    write_tree(&src);
    let root = a.add(&src, &["-r"]);
    let car = a.scratch("out.car");
    let out = a.run(&["dag", "export", &root]);
    assert!(out.status.success());
    fs::write(&car, &out.stdout).unwrap();
    let text = b.ok(&["dag", "import", car.to_str().unwrap()]);
    assert!(
        text.contains(&format!("Pinned root {root} success")),
        "{text}"
    );
    let dest = b.scratch("out");
    b.ok(&["get", &root, "-o", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest, true);
    // A CAR cut short imports nothing pinned and says why.
    let c = TestRepo::new();
    let cut = c.scratch("cut.car");
    fs::write(&cut, &out.stdout[..out.stdout.len() / 2]).unwrap();
    let err = c.fails(&["dag", "import", cut.to_str().unwrap()]);
    assert!(err.contains("CAR"), "{err}");
    assert_eq!(c.ok(&["pin", "ls"]), "");
    // What did arrive is there, but the DAG is incomplete: `get` fails and
    // leaves nothing behind, not even a partial tree.
    let dest = c.scratch("partial");
    let err = c.fails(&["get", &root, "-o", dest.to_str().unwrap()]);
    assert!(err.contains("not found"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Unmounts the small file system on drop, even when the test fails.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_one_clear_error_and_loses_nothing() {
    let scratch = TestRepo::new();
    let mnt = scratch.scratch("small-fs");
    fs::create_dir_all(&mnt).unwrap();
    // A 6 MiB tmpfs needs root (CI runs as root); elsewhere the test says so.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Mount(mnt.clone());
    let repo_dir = mnt.join("repo");
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .arg("--repo")
            .arg(&repo_dir)
            .args(args)
            .output()
            .unwrap()
    };
    let small = scratch.scratch("small");
    let big = scratch.scratch("big");
    fs::write(&small, random_bytes(100_000, 1)).unwrap();
    fs::write(&big, random_bytes(8_000_000, 2)).unwrap();
    let out = run(&["add", "-Q", small.to_str().unwrap()]);
    assert!(out.status.success());
    let small_cid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = run(&["add", big.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("No space left"), "{err}");
    // The repo still verifies, the earlier file is intact, nothing half-pinned.
    assert!(run(&["repo", "verify"]).status.success());
    assert_eq!(run(&["cat", &small_cid]).stdout, fs::read(&small).unwrap());
    let pins = String::from_utf8(run(&["pin", "ls", "--type", "recursive", "-q"]).stdout).unwrap();
    assert_eq!(pins.trim(), small_cid);
}

#[test]
fn a_corrupt_repo_is_one_clear_error() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let config = repo.path().join("config.toml");
    let good = fs::read_to_string(&config).unwrap();
    fs::write(&config, "[import]\ncid_version = 'x'\n").unwrap();
    let err = repo.fails(&["repo", "stat"]);
    assert!(err.contains("config.toml (line 2)"), "{err}");
    fs::write(&config, good).unwrap();
    // A damaged index is not an error: it is rebuilt from the segments,
    // and said so in one line.
    fs::write(repo.path().join("index/conf"), random_bytes(3000, 4)).unwrap();
    let out = repo.run(&["repo", "stat"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("rebuilt it from the segments"), "{err}");
}

/// `init --profile public` writes the public profile: all interfaces on
/// port 4001 and the public IPFS bootstrap list (data only: no daemon
/// starts here); plain `init` stays local and names no traversal switch;
/// a bad profile is refused, as a flag and in config.toml (with its line).
#[test]
fn init_writes_the_profile_asked_for() {
    let read = |repo: &TestRepo| -> toml::Table {
        let text = fs::read_to_string(repo.path().join("config.toml")).unwrap();
        toml::from_str(&text).unwrap()
    };
    let public = TestRepo::new();
    public.ok(&["init", "--profile", "public"]);
    let net = read(&public)["net"].as_table().unwrap().clone();
    assert_eq!(net["profile"].as_str(), Some("public"));
    let listen: Vec<&str> = net["listen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        listen,
        [
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/0.0.0.0/udp/4001/quic-v1",
            "/ip6/::/tcp/4001",
            "/ip6/::/udp/4001/quic-v1"
        ]
    );
    let bootstrap: Vec<&str> = net["bootstrap"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(bootstrap, cairn::node::config::PUBLIC_BOOTSTRAP);
    assert_eq!(
        net["relay_limits"]["circuit_bytes"].as_str(),
        Some("128KiB"),
        "{net:?}"
    );
    // `config show` reads it back; a second init with a profile is refused
    // and changes nothing.
    let shown: serde_json::Value = serde_json::from_str(&public.ok(&["config", "show"])).unwrap();
    assert_eq!(shown["net"]["profile"], "public");
    let err = public.fails(&["init", "--profile", "local"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(read(&public)["net"]["profile"].as_str(), Some("public"));

    let local = TestRepo::new();
    local.ok(&["init"]);
    let config = read(&local);
    let net = config["net"].as_table().unwrap();
    assert_eq!(net["profile"].as_str(), Some("local"));
    assert!(net["bootstrap"].as_array().unwrap().is_empty());
    for switch in [
        "autonat",
        "relay_client",
        "hole_punching",
        "relay_service",
        "upnp",
    ] {
        assert!(!net.contains_key(switch), "{switch} in a new local config");
    }
    let same = TestRepo::new();
    same.ok(&["init", "--profile", "local"]);
    assert_eq!(read(&same)["net"], config["net"]);

    let err = TestRepo::new().fails(&["init", "--profile", "lan"]);
    assert!(err.contains("unknown profile \"lan\""), "{err}");
    local.set_config("net", "profile", "\"lan\"");
    let err = local.fails(&["config", "show"]);
    assert!(err.contains("[net] profile"), "{err}");
    assert!(err.contains("line"), "{err}");
}
