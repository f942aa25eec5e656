//! Python clients, installed unchanged from PyPI at pinned versions
//! (`tests/py-clients/setup.sh` makes a virtualenv from
//! `tests/py-clients/requirements.txt` on first run), driven against a
//! cairn daemon on 127.0.0.1: `ipfshttpclient` adds a file, bytes and a
//! directory tree, cats (whole and a range), lists, pins and unpins, makes,
//! renames and removes a key, publishes and resolves a name. Expected values
//! come from cairn itself (`cairn add -n` with the options the client sends,
//! `cairn ls`). A failed setup fails the test with its reason.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

mod common;

use common::process::{run_bounded, setup_once};
use common::{api_url, Daemon, TestRepo};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
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
    py_dir().join(".venv/bin/python")
}

/// Runs `script` with `spec` on its standard input; its last line of
/// output, parsed as JSON.
fn run_script(script: &str, spec: &Value) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(py_dir().join(script)).current_dir(py_dir());
    let out = run_bounded(cmd, Some(spec.to_string().into_bytes()), SCRIPT_KILL)
        .unwrap_or_else(|e| panic!("{script}: {e:#}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    serde_json::from_str(last.unwrap_or("")).unwrap_or_else(|e| {
        panic!("{script} printed no JSON ({e})\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    })
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

#[test]
fn ipfshttpclient_adds_reads_pins_and_names() {
    let python = python();
    assert!(python.exists(), "{} missing after setup", python.display());
    let repo = TestRepo::new();
    let data = common::random_bytes(1_600_000, 31);
    let file = repo.scratch("file.bin");
    std::fs::write(&file, &data).unwrap();
    let dir = repo.scratch("tree");
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("a.txt"), b"a\n").unwrap();
    std::fs::write(dir.join("sub/b.txt"), b"b\n").unwrap();
    std::fs::write(dir.join("sub/deeper/c.txt"), b"c\n").unwrap();
    let bytes = repo.scratch("bytes");
    std::fs::write(&bytes, b"hello from python\n").unwrap();

    // ipfshttpclient sends raw-leaves=False with every add but add_bytes.
    let dag_pb_leaves = ["--raw-leaves=false"];
    let file_cid = cid_of(&file, &dag_pb_leaves);
    let dir_cid = cid_of(&dir, &["-r", "--raw-leaves=false"]);
    let bytes_cid = cid_of(&bytes, &[]);

    let (_daemon, banner) = Daemon::start(&repo, &[]);
    let api = api_url(&banner);
    let port = api.rsplit(':').next().unwrap();
    let spec = json!({
        "api": format!("/ip4/127.0.0.1/tcp/{port}/http"),
        "file": file,
        "dir": dir,
    });
    let got = run_script("ipfshttpclient_run.py", &spec);
    eprintln!("{got}");
    assert_eq!(got["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(got["add"]["Hash"], json!(file_cid));
    assert_eq!(got["add"]["Name"], json!("file.bin"));
    assert_eq!(got["add_bytes"], json!(bytes_cid));
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
    assert_eq!(got["cat_sha256"], json!(sha256_hex(&data)));
    assert_eq!(
        got["cat_range_sha256"],
        json!(sha256_hex(&data[1000..71000]))
    );
    let ls: Vec<Value> = repo
        .ok(&["ls", &dir_cid])
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
    for cid in [&file_cid, &dir_cid, &bytes_cid] {
        assert!(pins.contains(&json!(cid)), "{cid} not pinned: {pins:?}");
    }
    assert_eq!(got["pin_rm"], json!([bytes_cid]));
    assert!(!got["pin_ls_after_rm"]
        .as_array()
        .unwrap()
        .contains(&json!(bytes_cid)));
    assert_eq!(got["key_gen"], json!("py-key"));
    assert_eq!(got["key_list"], json!(["py-key", "self"]));
    assert_eq!(got["key_rename"], json!("py-key-2"));
    let value = format!("/ipfs/{dir_cid}");
    assert_eq!(got["name_publish"], json!([true, value]));
    assert_eq!(got["name_resolve"], json!(value));
    assert_eq!(got["key_rm"], json!(["py-key-2"]));
    assert_eq!(got["key_list_after_rm"], json!(["self"]));
}
