//! Python clients, installed unchanged from PyPI at pinned versions
//! (`tests/py-clients/setup.sh` makes a virtualenv from
//! `tests/py-clients/requirements.txt` on first run), driven against a
//! cairn daemon on 127.0.0.1:
//! - `ipfshttpclient` and `aioipfs` add a file, bytes and a directory tree,
//!   cat (whole and a range), list, pin and unpin, work in MFS (`files`
//!   mkdir, write, read, stat, cp, mv, rm, ls; flush with aioipfs), make,
//!   rename and remove a key, publish and resolve a name, put, get and
//!   resolve a DAG-CBOR block;
//! - `aioipfs`'s pubsub (sub, pub of text and bytes, ls, peers) on one
//!   daemon exchanges messages both ways with the `cairn pubsub` CLI on
//!   another;
//! - `ipfsspec` (fsspec's `ipfs://`) lets pandas read back a Parquet file
//!   added with cairn's defaults, through the daemon's gateway.
//!
//! Expected values come from cairn itself: `cairn add -n` with the options
//! the client sends, and the same MFS and DAG commands replayed with the
//! `cairn` CLI on a repo of its own. A failed setup fails the test with
//! its reason.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

mod common;

use common::process::{run_json_script, setup_once};
use common::{api_url, gateway_url, peer_id_of, swarm_addr, Daemon, TestRepo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When a client script that has not finished is killed.
const SCRIPT_KILL: Duration = Duration::from_secs(120);

fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py-clients")
}

/// The virtualenv's python, made once per test binary.
fn python() -> PathBuf {
    setup_once(
        &["tests/py-clients/setup.sh"],
        "Python >= 3.11 with venv, and PyPI for the pinned clients",
    );
    let python = py_dir().join(".venv/bin/python");
    assert!(python.exists(), "{} missing after setup", python.display());
    python
}

/// Runs `script ARGS` with `spec` on its standard input and `env` added to
/// its environment; its last line of output, parsed as JSON.
fn run_script_with(script: &str, args: &[&str], spec: &Value, env: &[(&str, &str)]) -> Value {
    run_json_script(&python(), &py_dir(), script, (args, env), spec, SCRIPT_KILL)
}

fn run_script(script: &str, spec: &Value) -> Value {
    run_script_with(script, &[], spec, &[])
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `cairn add -n FLAGS PATH` on a repo of its own: what cairn makes of it.
fn cid_of(path: &Path, flags: &[&str]) -> String {
    let offline = TestRepo::new();
    offline.add(path, &[&["-n"][..], flags].concat())
}

/// What the RPC clients add: a 1.6 MB file and a small tree (an empty
/// directory in it), beside the repo of the daemon they talk to.
struct Inputs {
    repo: TestRepo,
    data: Vec<u8>,
    file: PathBuf,
    dir: PathBuf,
}

impl Inputs {
    fn new(seed: u64) -> Inputs {
        let repo = TestRepo::new();
        let data = common::random_bytes(1_600_000, seed);
        let file = repo.scratch("file.bin");
        std::fs::write(&file, &data).unwrap();
        let dir = repo.scratch("tree");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("a.txt"), b"a\n").unwrap();
        std::fs::write(dir.join("sub/b.txt"), b"b\n").unwrap();
        std::fs::write(dir.join("sub/deeper/c.txt"), b"c\n").unwrap();
        Inputs {
            repo,
            data,
            file,
            dir,
        }
    }

    /// A scratch file holding `data`.
    fn scratch_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.repo.scratch(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    /// The DAG-JSON document the clients `dag put`: a link to `dir_cid`
    /// and a nested list; written to a scratch file.
    fn dag_doc(&self, dir_cid: &str) -> PathBuf {
        let doc = json!({
            "name": "py",
            "n": 7,
            "link": {"/": dir_cid},
            "nested": {"list": [1, 2, 3]},
        });
        self.scratch_file("doc.json", doc.to_string().as_bytes())
    }
}

/// The JSON a `run` script gets: the daemon's API multiaddr, the inputs
/// and the DAG document.
fn client_spec(banner: &[String], inputs: &Inputs, doc: &Path) -> Value {
    let api = api_url(banner);
    let port = api.rsplit(':').next().unwrap();
    json!({
        "api": format!("/ip4/127.0.0.1/tcp/{port}/http"),
        "file": inputs.file,
        "dir": inputs.dir,
        "dag_json": doc,
    })
}

/// Checks the tree's entries of an `add -r` answer (`[[name, cid]]`).
fn check_added_tree(got: &Value, dir_cid: &str) {
    let tree = got["add_dir"].as_array().unwrap();
    assert_eq!(tree.last().unwrap(), &json!(["tree", dir_cid]), "{tree:?}");
    for name in [
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deeper/c.txt",
        "tree/sub/deeper",
        "tree/sub",
        "tree/empty",
    ] {
        assert!(
            tree.iter().any(|e| e[0] == json!(name)),
            "{name} not in {tree:?}"
        );
    }
}

/// Checks cat, ls and pin answers against cairn's.
fn check_reads_and_pins(got: &Value, inputs: &Inputs, cids: [&str; 3]) {
    let [file_cid, dir_cid, bytes_cid] = cids;
    assert_eq!(got["cat_sha256"], json!(sha256_hex(&inputs.data)));
    assert_eq!(
        got["cat_range_sha256"],
        json!(sha256_hex(&inputs.data[1000..71000]))
    );
    let ls: Vec<Value> = inputs
        .repo
        .ok(&["ls", dir_cid])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            json!([f[2].trim_end_matches('/'), f[0]])
        })
        .collect();
    let got_ls: Vec<Value> = got["ls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e[0], e[1]]))
        .collect();
    assert_eq!(got_ls, ls);
    assert_eq!(got["pin_add"], json!([bytes_cid]));
    let pins = got["pin_ls"].as_array().unwrap();
    for cid in [file_cid, dir_cid, bytes_cid] {
        assert!(pins.contains(&json!(cid)), "{cid} not pinned: {pins:?}");
    }
    assert_eq!(got["pin_rm"], json!([bytes_cid]));
    assert!(!got["pin_ls_after_rm"]
        .as_array()
        .unwrap()
        .contains(&json!(bytes_cid)));
}

/// Checks key and name answers: `key` made, renamed `key-2`, published
/// `value`, removed.
fn check_keys_and_names(got: &Value, key: &str, value: &str) {
    let renamed = format!("{key}-2");
    assert_eq!(got["key_gen"], json!(key));
    assert_eq!(got["key_list"], json!([key, "self"]));
    assert_eq!(got["key_rename"], json!(renamed));
    assert_eq!(got["name_publish"], json!([true, value]));
    assert_eq!(got["name_resolve"], json!(value));
    assert_eq!(got["key_rm"], json!([renamed]));
    assert_eq!(got["key_list_after_rm"], json!(["self"]));
}

/// What cairn's CLI answers for the MFS and DAG steps the client scripts
/// take, replayed on a repo with no daemon: the tree added with
/// `tree_flags`, files written with `write_flags`, all under `/{top}`.
struct Replay {
    repo: TestRepo,
    top: String,
}

impl Replay {
    fn run(inputs: &Inputs, top: &str, tree_flags: &[&str], write_flags: &[&str]) -> Replay {
        let r = Replay {
            repo: TestRepo::new(),
            top: format!("/{top}"),
        };
        let tree_cid = r.repo.add(&inputs.dir, &[&["-r"][..], tree_flags].concat());
        let draft = inputs.scratch_file("draft", b"first draft\n");
        let patch = inputs.scratch_file("patch", b"FINAL");
        let (file, draft, patch) = (path_str(&inputs.file), path_str(&draft), path_str(&patch));
        let docs = r.at("docs");
        r.files(&["mkdir", "-p", &docs]);
        r.files(
            &[
                &["write", "--create"][..],
                write_flags,
                &[&r.at("docs/data.bin"), file],
            ]
            .concat(),
        );
        let note = r.at("docs/note.txt");
        r.files(&[&["write", "--create"][..], write_flags, &[&note, draft]].concat());
        r.files(
            &[
                &["write", "--offset", "6"][..],
                write_flags,
                &[&note, patch],
            ]
            .concat(),
        );
        r.files(&["cp", &format!("/ipfs/{tree_cid}"), &r.at("tree")]);
        r.files(&["cp", &note, &r.at("tree/note-copy.txt")]);
        r.files(&["mv", &r.at("tree/a.txt"), &r.at("docs/a-moved.txt")]);
        r.files(&["rm", "-r", &r.at("tree/sub")]);
        r
    }

    /// `/{top}/{rel}`.
    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", self.top)
    }

    /// `cairn files ARGS`: its output.
    fn files(&self, args: &[&str]) -> String {
        self.repo.ok(&[&["files"][..], args].concat())
    }

    /// `files stat --hash` of `/{top}/{rel}` (`/{top}` when `rel` is empty).
    fn hash(&self, rel: &str) -> String {
        let path = if rel.is_empty() {
            self.top.clone()
        } else {
            self.at(rel)
        };
        self.files(&["stat", "--hash", &path]).trim().to_string()
    }

    /// `files ls` names of `/{top}/{rel}`.
    fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .files(&["ls", &self.at(rel)])
            .lines()
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// `files ls -l` of `/{top}/{rel}`: `[name, type, cid]`, sorted.
    fn long_entries(&self, rel: &str) -> Vec<Value> {
        let mut entries: Vec<Value> = self
            .files(&["ls", "-l", &self.at(rel)])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let dir = f[0].ends_with('/');
                json!([f[0].trim_end_matches('/'), u8::from(dir), f[1]])
            })
            .collect();
        entries.sort_by_key(|e| e.to_string());
        entries
    }

    /// Checks a script's MFS answers against the replay's.
    fn check_files(&self, got: &Value, inputs: &Inputs, tree_cid: &str, file_cid: &str) {
        assert_eq!(got["files_read_note"], json!("first FINAL\n"));
        assert_eq!(got["files_read_sha256"], json!(sha256_hex(&inputs.data)));
        assert_eq!(
            got["files_read_range_sha256"],
            json!(sha256_hex(&inputs.data[5000..305000]))
        );
        // MFS builds files as `add` does: the same bytes, the same CID.
        assert_eq!(self.hash("docs/data.bin"), file_cid);
        assert_eq!(
            got["files_stat"],
            json!({"Hash": file_cid, "Size": inputs.data.len(), "Type": "file"})
        );
        // cp from /ipfs/CID links the tree as it is.
        assert_eq!(got["files_stat_tree"], json!(tree_cid));
        assert_eq!(
            got["files_ls_tree"],
            json!(self.names("tree")),
            "after cp, mv, rm"
        );
        assert_eq!(got["files_stat_root"], json!(self.hash("")));
    }

    /// `cairn dag put|get|resolve` of `doc` on the replay's repo, which
    /// holds what the document links to; checked against a script's.
    fn check_dag(&self, got: &Value, doc: &Path) {
        let cid = self
            .repo
            .ok(&["dag", "put", path_str(doc)])
            .trim()
            .to_string();
        assert_eq!(got["dag_put"], json!(cid));
        let get: Value = serde_json::from_str(&self.repo.ok(&["dag", "get", &cid])).unwrap();
        assert_eq!(got["dag_get"], get);
        let item: Value =
            serde_json::from_str(
                &self
                    .repo
                    .ok(&["dag", "get", &format!("{cid}/nested/list/1")]),
            )
            .unwrap();
        assert_eq!(got["dag_get_path"], item);
        let resolved = self
            .repo
            .ok(&["dag", "resolve", &format!("{cid}/link/sub")]);
        let (rcid, rem) = got["dag_resolve"][0]
            .as_str()
            .zip(got["dag_resolve"][1].as_str())
            .expect("dag_resolve: [cid, rem]");
        let joined = if rem.is_empty() {
            rcid.to_string()
        } else {
            format!("{rcid}/{rem}")
        };
        assert_eq!(joined, resolved.trim());
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn ipfshttpclient_adds_reads_pins_names_mfs_and_dag() {
    let inputs = Inputs::new(31);
    let bytes = inputs.scratch_file("bytes", b"hello from python\n");

    // ipfshttpclient sends raw-leaves=False with every add but add_bytes;
    // its files.write sends no raw-leaves (cairn's default).
    let dag_pb_leaves = ["--raw-leaves=false"];
    let file_cid = cid_of(&inputs.file, &dag_pb_leaves);
    let dir_cid = cid_of(&inputs.dir, &["-r", "--raw-leaves=false"]);
    let bytes_cid = cid_of(&bytes, &[]);
    let doc = inputs.dag_doc(&dir_cid);

    let (_daemon, banner) = Daemon::start(&inputs.repo, &[]);
    let got = run_script(
        "ipfshttpclient_run.py",
        &client_spec(&banner, &inputs, &doc),
    );
    eprintln!("{got}");
    assert_eq!(got["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(got["add"]["Hash"], json!(file_cid));
    assert_eq!(got["add"]["Name"], json!("file.bin"));
    assert_eq!(got["add_bytes"], json!(bytes_cid));
    check_added_tree(&got, &dir_cid);
    check_reads_and_pins(&got, &inputs, [&file_cid, &dir_cid, &bytes_cid]);
    check_keys_and_names(&got, "py-key", &format!("/ipfs/{dir_cid}"));

    let replay = Replay::run(&inputs, "py", &dag_pb_leaves, &[]);
    replay.check_files(&got, &inputs, &dir_cid, &cid_of(&inputs.file, &[]));
    assert_eq!(got["files_ls_docs"], json!(replay.names("docs")));
    replay.check_dag(&got, &doc);
}

#[test]
fn aioipfs_adds_reads_pins_names_mfs_and_dag() {
    let inputs = Inputs::new(47);
    let bytes = inputs.scratch_file("bytes", b"hello from aioipfs\n");

    // aioipfs's add sends no raw-leaves (cairn's default); its files.write
    // sends raw-leaves=false.
    let file_cid = cid_of(&inputs.file, &[]);
    let dir_cid = cid_of(&inputs.dir, &["-r"]);
    let bytes_cid = cid_of(&bytes, &[]);
    let doc = inputs.dag_doc(&dir_cid);

    let (_daemon, banner) = Daemon::start(&inputs.repo, &[]);
    let got = run_script("aioipfs_run.py", &client_spec(&banner, &inputs, &doc));
    eprintln!("{got}");
    assert_eq!(got["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(got["add"], json!([["file.bin", file_cid]]));
    assert_eq!(got["add_bytes"], json!(bytes_cid));
    check_added_tree(&got, &dir_cid);
    check_reads_and_pins(&got, &inputs, [&file_cid, &dir_cid, &bytes_cid]);
    check_keys_and_names(&got, "aio-key", &format!("/ipfs/{dir_cid}"));

    let dag_pb_leaves = ["--raw-leaves=false"];
    let replay = Replay::run(&inputs, "aio", &[], &dag_pb_leaves);
    replay.check_files(
        &got,
        &inputs,
        &dir_cid,
        &cid_of(&inputs.file, &dag_pb_leaves),
    );
    assert_eq!(got["files_ls_docs"], json!(replay.long_entries("docs")));
    assert_eq!(got["files_flush"], json!(replay.hash("")));
    replay.check_dag(&got, &doc);
    // aioipfs's dag.put pins by default.
    assert_eq!(got["pin_ls_dag"], json!(true));
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// aioipfs on daemon A, the `cairn pubsub` CLI on daemon B, one topic (a
/// space and a non-ASCII letter in its name): what aioipfs publishes (text
/// and binary) reaches B's `sub --enc json` byte for byte, what B's CLI
/// publishes reaches aioipfs's `sub` with Kubo's fields; `ls` and `peers`
/// answer as Kubo's. The script's header says which two aioipfs habits
/// Kubo refuses too and how it works around them.
#[test]
fn aioipfs_pubsub_exchanges_messages_with_the_cli_on_another_daemon() {
    let (ra, rb) = (TestRepo::new(), TestRepo::new());
    let (_da, banner_a) = Daemon::start(&ra, &[]);
    let a_addr = swarm_addr(&banner_a);
    let (_db, banner_b) = Daemon::start(&rb, &["--bootstrap", &a_addr]);
    let (a_id, b_id) = (peer_id_of(&a_addr), peer_id_of(&swarm_addr(&banner_b)));
    let port = api_url(&banner_a).rsplit(':').next().unwrap().to_string();
    let topic = "aio news/ü";
    let spec = json!({
        "api": format!("/ip4/127.0.0.1/tcp/{port}/http"),
        "topic": topic,
        "cairn": common::bin(),
        "repo_b": rb.path(),
        "peer_b": b_id,
    });
    let got = run_script("aioipfs_pubsub.py", &spec);
    eprintln!("{got}");
    assert_eq!(got["ls"], json!([topic]));
    assert_eq!(got["peers_topic"], json!([b_id]));
    assert!(got["peers"].as_array().unwrap().contains(&json!(b_id)));
    let text = "hello from aioipfs, ü";
    assert_eq!(
        got["at_b"],
        json!([
            {"from": a_id, "data": hex(text.as_bytes())},
            {"from": a_id, "data": hex(b"\x00\x01binary\xfe\xff")},
        ])
    );
    // A's own subscriber (aioipfs) saw what aioipfs published, as in Kubo.
    assert!(got["echo"]
        .as_array()
        .unwrap()
        .contains(&json!(hex(text.as_bytes()))));
    assert_eq!(
        got["from_b"],
        json!({
            "from": b_id,
            "data": hex(b"hello from cairn \xff"),
            "seqno_len": 8,
            "topicIDs": [topic],
        })
    );
}

#[test]
fn pandas_reads_parquet_through_ipfsspec_from_the_gateway() {
    let repo = TestRepo::new();
    let parquet = repo.scratch("frame.parquet");
    let home = repo.scratch("home");
    std::fs::create_dir_all(&home).unwrap();
    let spec = json!({"parquet": parquet});
    let written = run_script_with("ipfsspec_run.py", &["write"], &spec, &[]);
    let expected_cid = cid_of(&parquet, &[]);

    let (_daemon, banner) = Daemon::start(&repo, &[]);
    // `cairn add` with the defaults, through the running daemon's RPC.
    let cid = repo.add(&parquet, &[]);
    assert_eq!(cid, expected_cid);
    let gateway = gateway_url(&banner);
    // IPFS_GATEWAY comes first in ipfsspec's lookup (IPIP-280); HOME and
    // the other places it looks are emptied, so no other gateway is used.
    let env = [
        ("IPFS_GATEWAY", gateway.as_str()),
        ("HOME", path_str(&home)),
        ("XDG_CONFIG_HOME", path_str(&home)),
        ("IPFS_PATH", path_str(&home)),
        ("IPFSSPEC_GATEWAYS", ""),
    ];
    let got = run_script_with("ipfsspec_run.py", &["read"], &json!({"cid": cid}), &env);
    eprintln!("{got}");
    assert_eq!(got["gateway"], json!(gateway));
    let size = std::fs::metadata(&parquet).unwrap().len();
    assert_eq!(
        got["info"],
        json!({"CID": cid, "type": "file", "size": size})
    );
    assert_eq!(got["rows"], written["rows"]);
    assert_eq!(got["equal"], json!(true), "{}", got["problem"]);
}
