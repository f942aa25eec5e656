//! Interop with the client libraries people point at Kubo, run against a
//! cairn daemon on 127.0.0.1:
//!
//! - `@helia/verified-fetch` (tests/js-clients/verified-fetch.mjs) reads
//!   files, paths inside directories, directories, ranges and raw blocks
//!   through the daemon's trustless gateway, verifying every block, with
//!   that gateway as its only source (no libp2p, no delegated routers, no
//!   public gateways, no DNS);
//! - `kubo-rpc-client` (tests/js-clients/kubo-rpc.mjs) drives the RPC API:
//!   add/addAll, cat, ls, pin ls/rm/add, block get/stat/put, id, version,
//!   dag put/get/resolve, resolve, config, routing findProvs, object/stat,
//!   keys and IPNS names;
//! - Python's standard library (tests/js-clients/rpc_client.py) does the same
//!   over plain HTTP, with multipart bodies built like Kubo's own Go client.
//!
//! Expected values come from cairn itself (`cairn add -n` on a separate
//! offline repo, `cairn block get`) and from Kubo's documented behaviour
//! (see tests/js-clients/README.md). All mismatches of a test are collected
//! and reported together.
//!
//! Needs Node.js >= 20.19 and npm (`tests/npm-ci.sh tests/js-clients` installs the
//! pinned packages on first run, then does nothing) and python3. Every script
//! run is bounded; a script still running at its bound is killed.

mod common;

use cairn::block::{CidFormat, DAG_CBOR, DAG_JSON};
use cairn::dag::ipld::{self, Ipld};
use common::process::run_bounded;
use common::{api_url, Daemon, TestRepo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Debug;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{Duration, Instant};

/// What each script is told as its own deadline (it exits 124 past it).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);
/// When the test kills a script that did not stop by itself.
const SCRIPT_KILL: Duration = Duration::from_secs(75);

const DAG_PB: u64 = 0x70;
const RAW: u64 = 0x55;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js-clients")
}

/// Installs tests/js-clients' npm packages once per test binary.
fn setup() {
    common::process::npm_ci("tests/js-clients");
}

/// A script's run: its exit code, the JSON it printed, its stderr.
struct Run {
    code: Option<i32>,
    json: Value,
    stderr: String,
}

/// Runs `program script args` in tests/js-clients, bounded; parses the last
/// line of its stdout as JSON.
fn run_script(program: &str, script: &str, args: &[String], stdin: Option<Vec<u8>>) -> Run {
    let dir = js_dir();
    let mut cmd = Command::new(program);
    cmd.arg(dir.join(script)).args(args).current_dir(&dir);
    let t = Instant::now();
    let out = run_bounded(cmd, stdin, SCRIPT_KILL)
        .unwrap_or_else(|e| panic!("{program} {script}: {e:#}"));
    eprintln!("{script} ran in {:?} ({})", t.elapsed(), out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let json = match last.map(serde_json::from_str::<Value>) {
        Some(Ok(v)) => v,
        _ => panic!(
            "{program} {script} printed no JSON result ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        ),
    };
    if json.get("error").is_some() && json.get("steps").is_none() && json.get("results").is_none() {
        panic!("{program} {script} failed: {json}\n--- stderr\n{stderr}");
    }
    Run {
        code: out.status.code(),
        json,
        stderr,
    }
}

/// Mismatches collected over a test, reported together.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    /// Compares listings entry by entry (the whole lists if their lengths
    /// differ).
    fn list(&mut self, what: &str, got: &[Value], want: &[Value]) {
        if got.len() != want.len() {
            self.0
                .push(format!("{what}: got {got:?}, expected {want:?}"));
            return;
        }
        for (g, w) in got.iter().zip(want) {
            if g != w {
                self.0.push(format!("{what}: got entry {g}, expected {w}"));
            }
        }
    }

    fn finish(self, test: &str, context: &str) {
        if !self.0.is_empty() {
            panic!(
                "{test}: {} mismatch(es):\n  - {}\n{context}",
                self.0.len(),
                self.0.join("\n  - ")
            );
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The daemon's peer ID and swarm address, from its banner.
fn identity(banner: &[String]) -> (String, String) {
    let addr = common::swarm_addr(banner);
    (common::peer_id_of(&addr), addr)
}

/// `cairn add -n FLAGS PATH` on `repo`: entry name -> CID.
fn add_n(repo: &TestRepo, path: &Path, flags: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["add", "-n"];
    args.extend_from_slice(flags);
    args.push(path.to_str().unwrap());
    repo.ok(&args)
        .lines()
        .filter_map(|l| l.strip_prefix("added "))
        .map(|l| {
            let (cid, name) = l.split_once(' ').expect("added CID NAME");
            (name.to_string(), cid.to_string())
        })
        .collect()
}

/// The root CID `cairn add -n FLAGS PATH` computes.
fn cid_of(repo: &TestRepo, path: &Path, flags: &[&str]) -> String {
    let mut args = vec!["add", "-Q", "-n"];
    args.extend_from_slice(flags);
    args.push(path.to_str().unwrap());
    repo.ok(&args).trim().to_string()
}

/// A block's bytes (`cairn block get`, through the daemon).
fn block(repo: &TestRepo, cid: &str) -> Vec<u8> {
    let out = run_bounded(
        repo.cmd(&["block", "get", cid]),
        None,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("cairn block get {cid}: {e:#}"));
    assert!(
        out.status.success(),
        "cairn block get {cid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn codec(cid: &str) -> u64 {
    cid::Cid::try_from(cid)
        .unwrap_or_else(|e| panic!("{cid}: {e}"))
        .codec()
}

/// Reads a protobuf varint at `*i`.
fn varint(buf: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[*i];
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

/// The fields of a protobuf message: (field number, varint or bytes).
fn fields(buf: &[u8]) -> Vec<(u64, Result<u64, &[u8]>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let key = varint(buf, &mut i);
        match key & 7 {
            0 => out.push((key >> 3, Ok(varint(buf, &mut i)))),
            2 => {
                let len = varint(buf, &mut i) as usize;
                out.push((key >> 3, Err(&buf[i..i + len])));
                i += len;
            }
            t => panic!("unexpected protobuf wire type {t}"),
        }
    }
    out
}

/// A dag-pb link: (CID, name, Tsize).
fn pb_links(block: &[u8]) -> Vec<(String, String, u64)> {
    fields(block)
        .into_iter()
        .filter_map(|(n, v)| (n == 2).then_some(v))
        .map(|link| {
            let (mut hash, mut name, mut tsize) = (String::new(), String::new(), 0);
            for (n, v) in fields(link.expect_err("PBLink is bytes")) {
                match (n, v) {
                    (1, Err(b)) => hash = cid::Cid::try_from(b).unwrap().to_string(),
                    (2, Err(b)) => name = String::from_utf8(b.to_vec()).unwrap(),
                    (3, Ok(t)) => tsize = t,
                    _ => {}
                }
            }
            (hash, name, tsize)
        })
        .collect()
}

/// The UnixFS Data of a dag-pb block: (type, filesize if set).
fn unixfs(block: &[u8]) -> (u64, Option<u64>) {
    let data = fields(block)
        .into_iter()
        .find_map(|(n, v)| (n == 1).then_some(v))
        .and_then(|v| v.err())
        .unwrap_or(&[]);
    let (mut kind, mut size) = (0, None);
    for (n, v) in fields(data) {
        match (n, v) {
            (1, Ok(t)) => kind = t,
            (3, Ok(s)) => size = Some(s),
            _ => {}
        }
    }
    (kind, size)
}

/// Kubo's `Size` for an added node: its cumulative DAG size (the block's
/// length plus its links' Tsizes; a raw block's length).
fn cumulative_size(repo: &TestRepo, cid: &str) -> u64 {
    let b = block(repo, cid);
    match codec(cid) {
        DAG_PB => b.len() as u64 + pb_links(&b).iter().map(|l| l.2).sum::<u64>(),
        _ => b.len() as u64,
    }
}

/// A directory entry as Kubo's `ls` describes it: (name, CID, Size, Type).
/// Size: a raw child's Tsize, a dag-pb child's UnixFS filesize (0 for a
/// directory); Type: 1 directory (5 sharded), 2 file, 4 symlink.
fn kubo_ls(repo: &TestRepo, dir: &str) -> Vec<(String, String, u64, u64)> {
    pb_links(&block(repo, dir))
        .into_iter()
        .map(|(cid, name, tsize)| {
            if codec(&cid) == RAW {
                return (name, cid, tsize, 2);
            }
            let (kind, filesize) = unixfs(&block(repo, &cid));
            let kind = match kind {
                0 | 2 => 2, // raw-in-dag-pb, file
                other => other,
            };
            (name, cid, filesize.unwrap_or(0), kind)
        })
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

// ---------------------------------------------------------------------------

#[test]
fn verified_fetch_reads_files_and_directories_through_the_gateway() {
    setup();
    let t0 = Instant::now();
    let repo = TestRepo::new();
    // A block nobody has: the gateway gives up after this.
    repo.set_config("net", "fetch_timeout", "\"2s\"");
    let (_daemon, banner) = Daemon::start(&repo, &[]);
    let gateway = common::gateway_url(&banner);

    // Two 1 MiB chunks at the defaults: a dag-pb root over raw leaves.
    let data = common::random_bytes(1_600_000, 1);
    let file = repo.scratch("file.bin");
    write(&file, &data);
    let site = repo.scratch("site");
    let hello = b"hello from cairn\n";
    let big = common::random_bytes(700_000, 2);
    write(&site.join("hello.txt"), hello);
    write(&site.join("sub/big.bin"), &big);
    let web = repo.scratch("web");
    let index = b"<!doctype html>\n<title>cairn</title>\n<h1>served by cairn</h1>\n";
    write(&web.join("index.html"), index);
    write(&web.join("about.txt"), b"about\n");

    let v1_flags = ["--cid-version", "1", "--hash", "sha2-256"];
    let v0 = repo.add(&file, &["--cid-version", "0"]);
    let v1 = repo.add(&file, &v1_flags);
    let b3 = repo.add(&file, &["--hash", "blake3"]); // CIDv1, BLAKE3
    let site1 = repo.add(&site, &["-r", "--cid-version", "1", "--hash", "sha2-256"]);
    let site0 = repo.add(&site, &["-r", "--cid-version", "0"]);
    let web1 = repo.add(&web, &["-r", "--cid-version", "1", "--hash", "sha2-256"]);
    let absent = repo.scratch("absent.txt");
    write(&absent, b"never added, only hashed\n");
    let missing = repo.add(&absent, &["-n", "--cid-version", "1", "--hash", "sha2-256"]);

    let items = json!([
        {"name": "file-v0", "resource": format!("ipfs://{v0}")},
        {"name": "file-v1", "resource": format!("ipfs://{v1}")},
        {"name": "file-blake3", "resource": format!("ipfs://{b3}")},
        {"name": "path-bin", "resource": format!("ipfs://{site1}/sub/big.bin")},
        {"name": "path-bin-v0", "resource": format!("ipfs://{site0}/sub/big.bin")},
        {"name": "path-text", "resource": format!("ipfs://{site1}/hello.txt")},
        {"name": "dir", "resource": format!("ipfs://{site1}/")},
        {"name": "dir-no-slash", "resource": format!("ipfs://{site0}")},
        {"name": "dir-index", "resource": format!("ipfs://{web1}/")},
        {"name": "range", "resource": format!("ipfs://{v1}"), "headers": {"range": "bytes=1000-70999"}},
        {"name": "raw-block", "resource": format!("ipfs://{v1}"), "headers": {"accept": "application/vnd.ipld.raw"}},
        {"name": "missing-path", "resource": format!("ipfs://{site1}/no-such-file")},
        // Last: verified-fetch keeps waiting for another provider after the
        // gateway's 504, until this fetch is aborted.
        {"name": "missing-block", "resource": format!("ipfs://{missing}"), "timeoutMs": 5_000, "expectError": true},
    ]);
    let run = run_script(
        "node",
        "verified-fetch.mjs",
        &[
            "--gateway".into(),
            gateway.clone(),
            "--timeout-ms".into(),
            SCRIPT_DEADLINE.as_millis().to_string(),
        ],
        Some(items.to_string().into_bytes()),
    );
    let out = &run.json;
    let mut c = Checks::default();
    c.eq("verified-fetch exit code", run.code, Some(0));
    c.eq("verified-fetch error", &out["error"], &Value::Null);
    c.eq("verified-fetch ok", &out["ok"], &json!(true));
    c.eq("requests to other hosts", &out["refused"], &json!([]));

    // Every request went to our gateway, for one raw block, and succeeded.
    let requests = out["requests"].as_array().cloned().unwrap_or_default();
    c.check(!requests.is_empty(), || {
        "verified-fetch made no request to the gateway".into()
    });
    for r in &requests {
        let url = str_of(&r["url"]);
        c.check(
            url.starts_with(&format!("{gateway}/ipfs/")) && url.ends_with("?format=raw"),
            || format!("request {r}: not a raw-block request to {gateway}"),
        );
        c.eq(
            &format!("Accept of {url}"),
            str_of(&r["accept"]),
            "application/vnd.ipld.raw".into(),
        );
        if url.contains(&missing) {
            // The trustless-gateway answer for a block it cannot retrieve.
            c.eq(&format!("status of {url}"), &r["status"], &json!(504));
            continue;
        }
        c.eq(&format!("status of {url}"), &r["status"], &json!(200));
        c.eq(
            &format!("Content-Type of {url}"),
            str_of(&r["contentType"]),
            "application/vnd.ipld.raw".into(),
        );
    }
    c.check(
        requests
            .iter()
            .any(|r| str_of(&r["url"]).contains(&missing)),
        || format!("no request to the gateway for the missing block {missing}"),
    );

    let results: BTreeMap<String, Value> = out["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| (str_of(&r["name"]), r))
        .collect();
    let get = |name: &str| results.get(name).cloned().unwrap_or(Value::Null);
    let header = |r: &Value, h: &str| str_of(&r["headers"][h]);
    let expect_body = |c: &mut Checks, name: &str, status: u64, body: &[u8]| {
        let r = get(name);
        c.check(r["error"].is_null(), || format!("{name}: {}", r["error"]));
        c.eq(&format!("{name}: status"), &r["status"], &json!(status));
        c.eq(&format!("{name}: size"), &r["size"], &json!(body.len()));
        c.eq(
            &format!("{name}: sha256"),
            str_of(&r["sha256"]),
            sha256_hex(body),
        );
        r
    };

    // (a) a file by CID, in three formats.
    for name in ["file-v0", "file-v1", "file-blake3"] {
        let r = expect_body(&mut c, name, 200, &data);
        c.eq(
            &format!("{name}: Content-Type"),
            header(&r, "content-type"),
            "application/octet-stream".into(),
        );
        c.eq(
            &format!("{name}: X-Unixfs-Type"),
            header(&r, "x-unixfs-type"),
            "file".into(),
        );
    }
    // (b) files inside a directory, by path.
    expect_body(&mut c, "path-bin", 200, &big);
    expect_body(&mut c, "path-bin-v0", 200, &big);
    let r = expect_body(&mut c, "path-text", 200, hello);
    c.check(header(&r, "content-type").starts_with("text/plain"), || {
        format!("path-text: Content-Type {}", header(&r, "content-type"))
    });
    // (c) a directory: without index.html, verified-fetch answers the
    // directory's own dag-pb block (application/vnd.ipld.dag-pb), after
    // following the trailing-slash redirect itself; with index.html, that.
    for (name, cid) in [("dir", &site1), ("dir-no-slash", &site0)] {
        let r = expect_body(&mut c, name, 200, &block(&repo, cid));
        c.eq(
            &format!("{name}: Content-Type"),
            header(&r, "content-type"),
            "application/vnd.ipld.dag-pb".into(),
        );
        c.eq(
            &format!("{name}: X-Unixfs-Type"),
            header(&r, "x-unixfs-type"),
            "directory".into(),
        );
    }
    c.eq(
        "dir-no-slash: redirected",
        &get("dir-no-slash")["redirected"],
        &json!(true),
    );
    let r = expect_body(&mut c, "dir-index", 200, index);
    c.check(header(&r, "content-type").starts_with("text/html"), || {
        format!("dir-index: Content-Type {}", header(&r, "content-type"))
    });
    // A range, a raw block, a path that does not exist.
    let r = expect_body(&mut c, "range", 206, &data[1000..71000]);
    c.eq(
        "range: Content-Range",
        header(&r, "content-range"),
        "bytes 1000-70999/1600000".into(),
    );
    let r = expect_body(&mut c, "raw-block", 200, &block(&repo, &v1));
    c.eq(
        "raw-block: Content-Type",
        header(&r, "content-type"),
        "application/vnd.ipld.raw".into(),
    );
    c.eq(
        "missing-path: status",
        &get("missing-path")["status"],
        &json!(404),
    );
    let r = get("missing-block");
    c.check(
        str_of(&r["error"]).contains("abort") || r["status"].as_u64().is_some_and(|s| s >= 500),
        || format!("missing-block: expected an aborted fetch or a 5xx answer, got {r}"),
    );

    c.finish(
        "verified-fetch through cairn's gateway",
        &format!("script output: {out:#}\n--- stderr\n{}", run.stderr),
    );
    eprintln!("verified-fetch test: {:?}", t0.elapsed());
}

/// What both RPC client tests start from: a daemon (fetch timeout 5 s)
/// for the client to drive, the files it uploads (`file`, and `tree`:
/// `hello.txt`, `hello world.txt`, `sub/data.bin` holding `sub`), and an
/// offline repo of its own where cairn computes the expected CIDs.
struct RpcSetup {
    repo: TestRepo,
    daemon: Daemon,
    api: String,
    peer_id: String,
    swarm_addr: String,
    file: PathBuf,
    data: Vec<u8>,
    tree: PathBuf,
    sub: Vec<u8>,
    offline: TestRepo,
}

impl RpcSetup {
    fn new() -> RpcSetup {
        let repo = TestRepo::new();
        repo.set_config("net", "fetch_timeout", "\"5s\"");
        let (daemon, banner) = Daemon::start(&repo, &[]);
        let (peer_id, swarm_addr) = identity(&banner);
        let data = common::random_bytes(600_000, 11);
        let file = repo.scratch("file.bin");
        write(&file, &data);
        let tree = repo.scratch("tree");
        let sub = common::random_bytes(300_000, 12);
        write(&tree.join("hello.txt"), b"hello from cairn\n");
        write(&tree.join("hello world.txt"), b"a name with a space\n");
        write(&tree.join("sub/data.bin"), &sub);
        RpcSetup {
            api: api_url(&banner),
            repo,
            daemon,
            peer_id,
            swarm_addr,
            file,
            data,
            tree,
            sub,
            offline: TestRepo::new(),
        }
    }
}

/// Runs an RPC client script (`program script`) against the daemon at
/// `api`, uploading `file` and `tree` and reading back `sub/data.bin`,
/// with `deadline` (its flag and value) as its own time limit.
fn run_rpc_client(
    program: &str,
    script: &str,
    api: &str,
    file: &Path,
    tree: &Path,
    deadline: [&str; 2],
) -> Run {
    let args: Vec<String> = [
        "--api",
        api,
        "--file",
        file.to_str().unwrap(),
        "--dir",
        tree.to_str().unwrap(),
        "--dir-file",
        "sub/data.bin",
    ]
    .into_iter()
    .chain(deadline)
    .map(String::from)
    .collect();
    run_script(program, script, &args, None)
}

#[test]
fn kubo_rpc_client_drives_the_daemon() {
    setup();
    let t0 = Instant::now();
    let RpcSetup {
        repo,
        daemon: _daemon,
        api,
        peer_id,
        swarm_addr,
        file,
        data,
        tree,
        sub,
        offline,
    } = RpcSetup::new();
    let only_hash = offline.scratch("only-hash.txt");
    write(&only_hash, b"only hashed, never stored\n");
    let want_default = cid_of(&offline, &file, &[]);
    let want_v0 = cid_of(&offline, &file, &["--cid-version", "0"]);
    let want_v1 = cid_of(&offline, &file, &["--cid-version", "1"]);
    let want_chunker = cid_of(
        &offline,
        &file,
        &[
            "--cid-version",
            "1",
            "--hash",
            "sha2-256",
            "--raw-leaves=false",
            "--chunker",
            "size-65536",
        ],
    );
    let want_only_hash = cid_of(&offline, &only_hash, &["--cid-version", "1"]);
    let want_tree = add_n(&offline, &tree, &["-r", "--cid-version", "0"]);

    let deadline = SCRIPT_DEADLINE.as_millis().to_string();
    let run = run_rpc_client(
        "node",
        "kubo-rpc.mjs",
        &api,
        &file,
        &tree,
        ["--timeout-ms", &deadline],
    );
    let steps = run.json["steps"].clone();
    let mut c = Checks::default();
    c.eq("kubo-rpc.mjs exit code", run.code, Some(0));
    c.eq("kubo-rpc.mjs error", &run.json["error"], &Value::Null);
    c.eq(
        "network access other than the API",
        &run.json["refused"],
        &json!([]),
    );
    // Each step's value, recording a failed step as a mismatch.
    let value = |c: &mut Checks, name: &str| -> Value {
        let s = &steps[name];
        if s["ok"] != true {
            c.0.push(format!("step {name} failed: {s}"));
            return Value::Null;
        }
        s["value"].clone()
    };

    let v = value(&mut c, "version");
    c.eq(
        "version",
        str_of(&v["version"]),
        env!("CARGO_PKG_VERSION").into(),
    );
    let v = value(&mut c, "id");
    c.eq("id: peer ID", str_of(&v["id"]), peer_id.clone());
    c.check(str_of(&v["agentVersion"]).starts_with("cairn/"), || {
        format!("id: agentVersion {}", v["agentVersion"])
    });
    c.check(
        v["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| str_of(x) == swarm_addr)),
        || format!("id: addresses {} lack {swarm_addr}", v["addresses"]),
    );

    // add: Kubo names an unnamed upload after its CID and reports each
    // node's cumulative DAG size.
    let v = value(&mut c, "add-bytes");
    if !v.is_null() {
        c.eq("add(bytes): cid", str_of(&v["cid"]), want_default.clone());
        c.eq("add(bytes): path", str_of(&v["path"]), want_default.clone());
    }
    let v = value(&mut c, "add-v0");
    c.eq("add cidVersion 0: cid", str_of(&v["cid"]), want_v0.clone());
    c.eq(
        "add cidVersion 0: path",
        str_of(&v["path"]),
        "file.bin".into(),
    );
    let v0_size = cumulative_size(&repo, &want_v0);
    c.eq(
        "add cidVersion 0: size (cumulative DAG size)",
        &v["size"],
        &json!(v0_size),
    );
    let v = value(&mut c, "add-v1");
    c.eq("add cidVersion 1: cid", str_of(&v["cid"]), want_v1.clone());
    c.eq(
        "add cidVersion 1: size (cumulative DAG size)",
        &v["size"],
        &json!(cumulative_size(&repo, &want_v1)),
    );
    let v = value(&mut c, "add-v1-chunker");
    c.eq(
        "add sha2-256, dag-pb leaves, size-65536: cid",
        str_of(&v["cid"]),
        want_chunker.clone(),
    );
    let v = value(&mut c, "add-only-hash");
    c.eq(
        "add onlyHash: cid",
        str_of(&v["cid"]),
        want_only_hash.clone(),
    );
    c.eq("add onlyHash: size", &v["size"], &json!(26));
    let v = value(&mut c, "add-progress");
    c.eq("add with progress: cid", str_of(&v["cid"]), want_v0.clone());
    let progress = v["progress"].as_array().cloned().unwrap_or_default();
    c.check(
        progress
            .last()
            .is_some_and(|p| p["bytes"] == json!(data.len())),
        || {
            format!(
                "add with progress: the last progress report should be the whole file \
                 ({} bytes, as Kubo reports at the end of each file); got {progress:?}",
                data.len()
            )
        },
    );
    c.check(
        progress.iter().all(|p| p["name"] == json!("file.bin")),
        || format!("add with progress: names {progress:?}"),
    );

    // addAll: the same entries and CIDs as `cairn add -r`, root last.
    let v = value(&mut c, "add-all-dir");
    let entries = v.as_array().cloned().unwrap_or_default();
    let got_tree: BTreeMap<String, String> = entries
        .iter()
        .map(|e| (str_of(&e["path"]), str_of(&e["cid"])))
        .collect();
    c.eq("addAll: entries", &got_tree, &want_tree);
    c.eq(
        "addAll: last entry",
        entries.last().map(|e| str_of(&e["path"])),
        Some("tree".into()),
    );
    for e in &entries {
        let cid = str_of(&e["cid"]);
        if got_tree.get(&str_of(&e["path"])) == Some(&cid) {
            c.eq(
                &format!("addAll: size of {} (cumulative DAG size)", e["path"]),
                &e["size"],
                &json!(cumulative_size(&repo, &cid)),
            );
        }
    }
    let dir_cid = entries
        .last()
        .map(|e| str_of(&e["cid"]))
        .unwrap_or_default();

    // Reading back.
    for name in ["cat-v0", "cat-v1"] {
        let v = value(&mut c, name);
        c.eq(
            &format!("{name}: sha256"),
            str_of(&v["sha256"]),
            sha256_hex(&data),
        );
    }
    let v = value(&mut c, "cat-range");
    c.eq(
        "cat offset 1000 length 70000: sha256",
        str_of(&v["sha256"]),
        sha256_hex(&data[1000..71000]),
    );
    let v = value(&mut c, "cat-path");
    c.eq(
        "cat DIR/sub/data.bin: sha256",
        str_of(&v["sha256"]),
        sha256_hex(&sub),
    );
    let root_block = block(&repo, &want_v0);
    let v = value(&mut c, "block-stat");
    c.eq(
        "block.stat",
        &v,
        &json!({"cid": want_v0, "size": root_block.len()}),
    );
    let v = value(&mut c, "block-get");
    c.eq(
        "block.get: sha256",
        str_of(&v["sha256"]),
        sha256_hex(&root_block),
    );
    if !dir_cid.is_empty() {
        let v = value(&mut c, "ls-dir");
        let got: Vec<Value> = v
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| json!({"name": e["name"], "cid": e["cid"], "size": e["size"], "type": e["type"]}))
            .collect();
        let want: Vec<Value> = kubo_ls(&repo, &dir_cid)
            .into_iter()
            .map(|(name, cid, size, kind)| {
                json!({"name": name, "cid": cid, "size": size, "type": if kind == 2 { "file" } else { "dir" }})
            })
            .collect();
        c.list("ls DIR (Kubo: a directory's Size is 0)", &got, &want);
    }
    let put = b"a raw block from kubo-rpc-client\n";
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &Sha256::digest(put)).unwrap();
    let v = value(&mut c, "block-put");
    c.eq(
        "block.put: cid (CIDv1, raw, sha2-256)",
        str_of(&v["cid"]),
        cid::Cid::new_v1(RAW, mh).to_string(),
    );

    // Pins.
    let pins = |v: &Value| -> BTreeMap<String, String> {
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| (str_of(&p["cid"]), str_of(&p["type"])))
            .collect()
    };
    let all = pins(&value(&mut c, "pin-ls-all"));
    let recursive = pins(&value(&mut c, "pin-ls-recursive"));
    for cid in [&want_default, &want_v0, &want_v1, &want_chunker, &dir_cid] {
        c.eq(
            &format!("pin.ls(): type of {cid}"),
            all.get(cid.as_str()).map(String::as_str),
            Some("recursive"),
        );
        c.eq(
            &format!("pin.ls(recursive): type of {cid}"),
            recursive.get(cid.as_str()).map(String::as_str),
            Some("recursive"),
        );
    }
    if let Some(hello) = want_tree.get("tree/hello.txt") {
        c.eq(
            "pin.ls(): a file in an added directory",
            all.get(hello).map(String::as_str),
            Some("indirect"),
        );
    }
    c.check(!all.contains_key(&want_only_hash), || {
        "pin.ls(): the only-hash CID is pinned".into()
    });
    c.check(recursive.values().all(|t| t == "recursive"), || {
        format!("pin.ls(recursive): {recursive:?}")
    });
    let just_v0 = json!([{"cid": want_v0, "type": "recursive"}]);
    let v = value(&mut c, "pin-ls-path");
    c.eq("pin.ls(paths: v0)", &v, &just_v0);
    let v = value(&mut c, "pin-rm");
    c.eq("pin.rm", v, json!(want_v0));
    let v = value(&mut c, "pin-ls-after-rm");
    c.check(!pins(&v).contains_key(&want_v0), || {
        "pin.ls after pin.rm still lists the CID".into()
    });
    let v = value(&mut c, "expect-error-pin-rm-unpinned");
    c.eq(
        "pin.rm of an unpinned CID: status",
        &v["status"],
        &json!(500),
    );
    let v = value(&mut c, "pin-add");
    c.eq("pin.add", v, json!(want_v0));
    let v = value(&mut c, "pin-ls-after-add");
    c.eq("pin.ls(paths: v0) after pin.add", &v, &just_v0);

    // Errors come back as Kubo's, which the client turns into HTTPErrors.
    for name in [
        "expect-error-cat-invalid-cid",
        "expect-error-ls-invalid-cid",
    ] {
        let v = value(&mut c, name);
        c.eq(
            &format!("{name}: error"),
            str_of(&v["name"]),
            "HTTPError".into(),
        );
        c.check(v["status"] == 400 || v["status"] == 500, || {
            format!("{name}: status {}", v["status"])
        });
        c.check(!str_of(&v["message"]).is_empty(), || {
            format!("{name}: no message")
        });
    }

    // IPLD: dag.put stores DAG-CBOR (sha2-256, CIDv1) as Kubo does, the
    // CID the same as encoding the object here; paths resolve to the block
    // and the steps inside it.
    let raw_cid = cid::Cid::new_v1(RAW, mh).to_string();
    let doc = Ipld::Map(BTreeMap::from([
        ("hello".to_string(), Ipld::String("world".into())),
        (
            "n".to_string(),
            Ipld::List(vec![Ipld::Integer(1), Ipld::Integer(2)]),
        ),
        ("link".to_string(), Ipld::Link(raw_cid.parse().unwrap())),
    ]));
    let want_dag = CidFormat::V1_SHA2_256
        .cid(DAG_CBOR, &ipld::encode(DAG_CBOR, &doc).unwrap())
        .to_string();
    let dag_put = value(&mut c, "dag-put");
    c.eq("dag.put: cid", str_of(&dag_put), want_dag.clone());
    let json_doc = ipld::decode(DAG_JSON, br#"{"a":1,"b":true}"#).unwrap();
    let want_json = CidFormat::V1_SHA2_256
        .cid(DAG_JSON, &ipld::encode(DAG_JSON, &json_doc).unwrap())
        .to_string();
    let dag_put_json = value(&mut c, "dag-put-json");
    c.eq(
        "dag.put(dag-json in and stored): cid",
        str_of(&dag_put_json),
        want_json,
    );
    let dag_get = value(&mut c, "dag-get");
    c.eq(
        "dag.get",
        dag_get,
        json!({"hello": "world", "n": [1, 2], "link": raw_cid}),
    );
    let dag_get_path = value(&mut c, "dag-get-path");
    c.eq(
        "dag.get(path /n/1)",
        dag_get_path,
        json!({"value": 2, "remainderPath": ""}),
    );
    let dag_resolve = value(&mut c, "dag-resolve");
    c.eq(
        "dag.resolve(path link)",
        dag_resolve,
        json!({"cid": raw_cid, "remainderPath": ""}),
    );
    let dag_resolve_inside = value(&mut c, "dag-resolve-inside");
    c.eq(
        "dag.resolve(/ipfs/CID/n/0)",
        dag_resolve_inside,
        json!({"cid": want_dag, "remainderPath": "n/0"}),
    );
    if let Some(data_cid) = want_tree.get("tree/sub/data.bin") {
        let resolved = value(&mut c, "resolve");
        c.eq(
            "resolve(/ipfs/DIR/sub/data.bin)",
            str_of(&resolved),
            format!("/ipfs/{data_cid}"),
        );
    }
    let v = value(&mut c, "expect-error-resolve-missing");
    c.eq(
        "resolve of a missing entry: status",
        &v["status"],
        &json!(500),
    );
    let v = value(&mut c, "config-get-all");
    c.check(
        v["apiListen"].is_string() && v["tokens"] == json!([]),
        || format!("config.getAll: {v}"),
    );
    let config_get = value(&mut c, "config-get");
    c.eq("config.get(api.listen)", config_get, v["apiListen"].clone());
    let find_provs = value(&mut c, "routing-find-provs");
    c.check(find_provs.is_array(), || {
        "routing.findProvs did not answer a list of events".into()
    });
    if !dir_cid.is_empty() {
        let v = value(&mut c, "object-stat");
        let dir_block = block(&repo, &dir_cid).len() as u64;
        c.eq("object/stat: Hash", str_of(&v["Hash"]), dir_cid.clone());
        c.eq("object/stat: BlockSize", &v["BlockSize"], &json!(dir_block));
        c.eq(
            "object/stat: CumulativeSize",
            &v["CumulativeSize"],
            &json!(cumulative_size(&repo, &dir_cid)),
        );
    }
    let v = value(&mut c, "expect-error-dht-findpeer-bad-id");
    c.eq(
        "dht/findpeer of a bad ID: status",
        &v["status"],
        &json!(400),
    );

    // Keys and names.
    let v = value(&mut c, "key-gen");
    c.eq("key.gen: name", str_of(&v["name"]), "js-key".into());
    let key_id = str_of(&v["id"]);
    c.check(key_id.starts_with("k51"), || {
        format!("key.gen: id {key_id}")
    });
    let renamed = value(&mut c, "key-rename");
    c.eq(
        "key.rename",
        renamed,
        json!({"was": "js-key", "now": "js-name", "id": key_id, "overwrite": false}),
    );
    let keys = value(&mut c, "key-list");
    c.eq("key.list", keys, json!(["self", "js-name"]));
    let v = value(&mut c, "name-publish");
    c.eq("name.publish: name", str_of(&v["name"]), key_id.clone());
    c.eq(
        "name.publish: value",
        str_of(&v["value"]),
        format!("/ipfs/{want_v1}"),
    );
    let resolved_name = value(&mut c, "name-resolve");
    c.eq(
        "name.resolve",
        resolved_name,
        json!([format!("/ipfs/{want_v1}")]),
    );
    let removed = value(&mut c, "key-rm");
    c.eq("key.rm", str_of(&removed), "js-name".into());
    let v = value(&mut c, "expect-error-key-rm-self");
    c.eq("key.rm(self): status", &v["status"], &json!(400));

    c.finish(
        "kubo-rpc-client against cairn's RPC API",
        &format!("script output: {:#}\n--- stderr\n{}", run.json, run.stderr),
    );
    eprintln!("kubo-rpc-client test: {:?}", t0.elapsed());
}

#[test]
fn python_client_drives_the_daemon() {
    let t0 = Instant::now();
    let RpcSetup {
        repo,
        daemon: _daemon,
        api,
        peer_id,
        swarm_addr,
        file,
        data,
        tree,
        sub,
        offline,
    } = RpcSetup::new();
    let unpinned = offline.scratch("unpinned.txt");
    write(&unpinned, b"added with pin=false\n");
    let only_hash = offline.scratch("only-hash.txt");
    write(&only_hash, b"only hashed\n");
    let want_v0 = cid_of(&offline, &file, &["--cid-version", "0"]);
    let want_v1 = cid_of(
        &offline,
        &file,
        &["--cid-version", "1", "--hash", "sha2-256"],
    );
    let want_chunker = cid_of(
        &offline,
        &file,
        &[
            "--cid-version",
            "1",
            "--raw-leaves=false",
            "--chunker",
            "size-65536",
        ],
    );
    let want_unpinned = cid_of(&offline, &unpinned, &["--cid-version", "1"]);
    let want_only_hash = cid_of(&offline, &only_hash, &["--cid-version", "1"]);
    let want_tree = add_n(&offline, &tree, &["-r", "--cid-version", "0"]);

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let deadline = SCRIPT_DEADLINE.as_secs().to_string();
    let run = run_rpc_client(
        &python,
        "rpc_client.py",
        &api,
        &file,
        &tree,
        ["--timeout", &deadline],
    );
    let steps = run.json["steps"].clone();
    let mut c = Checks::default();
    c.eq("rpc_client.py exit code", run.code, Some(0));
    c.eq("rpc_client.py error", &run.json["error"], &Value::Null);
    let step = |c: &mut Checks, name: &str| -> Value {
        let s = steps[name].clone();
        if s.is_null() {
            c.0.push(format!("step {name} did not run"));
        } else if !s["error"].is_null() {
            c.0.push(format!("step {name}: {}", s["error"]));
        }
        s
    };
    // A successful JSON answer.
    let ok_json = |c: &mut Checks, name: &str| -> Value {
        let s = step(c, name);
        c.eq(&format!("{name}: status"), &s["status"], &json!(200));
        s
    };
    // Kubo's error shape.
    let is_error = |c: &mut Checks, name: &str, statuses: &[u64], why: &str| -> Value {
        let s = step(c, name);
        let e = &s["json"];
        let ok = statuses.iter().any(|st| s["status"] == *st)
            && e["Message"].is_string()
            && e["Code"].is_number()
            && e["Type"] == "error";
        c.check(ok, || {
            format!(
                "{name}: expected a Kubo error (status {statuses:?}, body \
                 {{\"Message\",\"Code\",\"Type\":\"error\"}}){why}; got {s}"
            )
        });
        s
    };
    let hash_of = |s: &Value, name: &str| -> Option<(String, Value)> {
        s["lines"].as_array()?.iter().find_map(|l| {
            (l["Name"] == name && l["Hash"].is_string())
                .then(|| (str_of(&l["Hash"]), l["Size"].clone()))
        })
    };

    let s = ok_json(&mut c, "version");
    c.eq(
        "version: Version",
        str_of(&s["json"]["Version"]),
        env!("CARGO_PKG_VERSION").into(),
    );
    let s = ok_json(&mut c, "id");
    let id = &s["json"];
    c.eq("id: ID", str_of(&id["ID"]), peer_id.clone());
    c.check(
        id["PublicKey"].as_str().is_some_and(|k| !k.is_empty()),
        || format!("id: PublicKey {}", id["PublicKey"]),
    );
    c.check(
        id["Addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| str_of(x) == swarm_addr)),
        || format!("id: Addresses {} lack {swarm_addr}", id["Addresses"]),
    );
    c.check(str_of(&id["AgentVersion"]).starts_with("cairn/"), || {
        format!("id: AgentVersion {}", id["AgentVersion"])
    });
    c.check(id["Protocols"].is_array(), || {
        format!("id: Protocols {}", id["Protocols"])
    });
    let s = step(&mut c, "get-method");
    c.eq(
        "GET /api/v0/version (Kubo: POST only)",
        &s["status"],
        &json!(405),
    );

    // add, file by file: Kubo's JSON lines, Size as a string holding the
    // cumulative DAG size, progress lines {"Name","Bytes"} ending with the
    // whole file.
    let s = ok_json(&mut c, "add-file");
    let got = hash_of(&s, "file.bin");
    c.eq(
        "add cid-version=0: Hash",
        got.as_ref().map(|g| g.0.clone()),
        Some(want_v0.clone()),
    );
    c.eq(
        "add cid-version=0: Size (cumulative DAG size, a string)",
        got.map(|g| g.1),
        Some(json!(cumulative_size(&repo, &want_v0).to_string())),
    );
    let progress: Vec<Value> = s["lines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.get("Bytes").is_some())
        .collect();
    c.check(
        progress
            .last()
            .is_some_and(|p| p["Bytes"] == json!(data.len()) && p["Name"] == "file.bin"),
        || {
            format!(
                "add progress=true: Kubo's last progress line for a file is \
                 {{\"Name\":\"file.bin\",\"Bytes\":{}}}; got {progress:?}",
                data.len()
            )
        },
    );
    let s = ok_json(&mut c, "add-file-v1");
    c.eq(
        "add cid-version=1 hash=sha2-256: Hash",
        hash_of(&s, "file.bin").map(|g| g.0),
        Some(want_v1.clone()),
    );
    let s = ok_json(&mut c, "add-file-chunker");
    c.eq(
        "add raw-leaves=false chunker=size-65536: Hash",
        hash_of(&s, "file.bin").map(|g| g.0),
        Some(want_chunker.clone()),
    );
    let s = ok_json(&mut c, "add-unpinned");
    c.eq(
        "add pin=false: Hash",
        hash_of(&s, "unpinned.txt").map(|g| g.0),
        Some(want_unpinned.clone()),
    );
    let s = is_error(
        &mut c,
        "expect-error-pin-ls-not-pinned",
        &[500],
        " (Kubo: \"path '<arg>' is not pinned\")",
    );
    if s["status"] == 500 {
        c.check(
            str_of(&s["json"]["Message"]).contains("is not pinned"),
            || format!("pin/ls of a CID added with pin=false: {s}"),
        );
    }
    let s = ok_json(&mut c, "add-only-hash");
    c.eq(
        "add only-hash=true: Hash",
        hash_of(&s, "only-hash.txt").map(|g| g.0),
        Some(want_only_hash.clone()),
    );

    // add, a directory as Kubo's CLI uploads it (names URL-query-escaped:
    // "hello world.txt" travels as "hello+world.txt").
    let s = ok_json(&mut c, "add-dir");
    let lines = s["lines"].as_array().cloned().unwrap_or_default();
    let got_tree: BTreeMap<String, String> = lines
        .iter()
        .filter(|l| l["Hash"].is_string())
        .map(|l| (str_of(&l["Name"]), str_of(&l["Hash"])))
        .collect();
    c.eq("add -r: entries", &got_tree, &want_tree);
    let last = lines.iter().rev().find(|l| l["Hash"].is_string());
    c.eq(
        "add -r: last entry",
        last.map(|l| str_of(&l["Name"])),
        Some("tree".into()),
    );
    let dir_cid = last.map(|l| str_of(&l["Hash"])).unwrap_or_default();
    for l in &lines {
        let cid = str_of(&l["Hash"]);
        if got_tree.get(&str_of(&l["Name"])) == Some(&cid) {
            c.eq(
                &format!("add -r: Size of {} (cumulative DAG size)", l["Name"]),
                &l["Size"],
                &json!(cumulative_size(&repo, &cid).to_string()),
            );
        }
    }

    // Reading back.
    let s = ok_json(&mut c, "cat");
    c.eq("cat: sha256", str_of(&s["sha256"]), sha256_hex(&data));
    let s = ok_json(&mut c, "cat-range");
    c.eq(
        "cat offset=1000 length=70000: sha256",
        str_of(&s["sha256"]),
        sha256_hex(&data[1000..71000]),
    );
    let s = ok_json(&mut c, "cat-path");
    c.eq(
        "cat /ipfs/DIR/sub/data.bin: sha256",
        str_of(&s["sha256"]),
        sha256_hex(&sub),
    );
    let root_block = block(&repo, &want_v0);
    let s = ok_json(&mut c, "block-stat");
    c.eq(
        "block/stat",
        &s["json"],
        &json!({"Key": want_v0, "Size": root_block.len()}),
    );
    if let Some(hello) = got_tree.get("tree/hello.txt") {
        let s = ok_json(&mut c, "block-get");
        c.eq(
            "block/get: sha256",
            str_of(&s["sha256"]),
            sha256_hex(&block(&repo, hello)),
        );
    }
    if !dir_cid.is_empty() {
        let s = ok_json(&mut c, "ls");
        let objects = &s["json"]["Objects"];
        c.eq(
            "ls: Objects[0].Hash",
            str_of(&objects[0]["Hash"]),
            dir_cid.clone(),
        );
        let got: Vec<Value> = objects[0]["Links"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| json!([l["Name"], l["Hash"], l["Size"], l["Type"]]))
            .collect();
        let want: Vec<Value> = kubo_ls(&repo, &dir_cid)
            .into_iter()
            .map(|(name, cid, size, kind)| json!([name, cid, size, kind]))
            .collect();
        c.list(
            "ls: Links [Name, Hash, Size, Type] (Kubo: a directory's Size is 0)",
            &got,
            &want,
        );
    }

    // Pins, in Kubo's shapes.
    let s = ok_json(&mut c, "pin-ls");
    c.eq(
        "pin/ls?arg=v0&type=recursive: Keys[v0].Type",
        str_of(&s["json"]["Keys"][&want_v0]["Type"]),
        "recursive".into(),
    );
    let s = ok_json(&mut c, "pin-rm");
    c.eq("pin/rm: Pins", &s["json"]["Pins"], &json!([want_v0]));
    let s = is_error(
        &mut c,
        "expect-error-pin-ls-unpinned",
        &[500],
        " (Kubo: \"path '<arg>' is not pinned\")",
    );
    if s["status"] == 500 {
        c.check(
            str_of(&s["json"]["Message"]).contains("is not pinned"),
            || format!("pin/ls of an unpinned CID: {s}"),
        );
    }
    let s = ok_json(&mut c, "pin-add");
    c.eq(
        "pin/add: last line",
        s["lines"].as_array().and_then(|l| l.last()).cloned(),
        Some(json!({"Pins": [want_v0]})),
    );
    let s = ok_json(&mut c, "pin-ls-after-add");
    c.eq(
        "pin/ls?arg=v0 after pin/add: Keys[v0].Type",
        str_of(&s["json"]["Keys"][&want_v0]["Type"]),
        "recursive".into(),
    );
    let s = ok_json(&mut c, "pin-ls-all");
    c.eq(
        "pin/ls: Keys[dir].Type",
        str_of(&s["json"]["Keys"][&dir_cid]["Type"]),
        "recursive".into(),
    );
    c.check(s["json"]["Keys"].get(&want_unpinned).is_none(), || {
        "pin/ls lists the CID added with pin=false".into()
    });

    // Errors.
    is_error(&mut c, "expect-error-cat-invalid-cid", &[400, 500], "");
    let s = step(&mut c, "expect-error-cat-no-arg");
    c.eq("cat without arg: status", &s["status"], &json!(400));

    c.finish(
        "Python (urllib) against cairn's RPC API",
        &format!("script output: {:#}\n--- stderr\n{}", run.json, run.stderr),
    );
    eprintln!("python client test: {:?}", t0.elapsed());
}
