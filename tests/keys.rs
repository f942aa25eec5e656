//! `cairn key`: the keystore through the CLI, with and without a daemon,
//! and the `key/*` RPC answers in Kubo's shapes.

mod common;

use common::{Daemon, TestRepo};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every key command once, on `repo` (keys a..d must not exist); returns
/// what they printed, IPNS names replaced by `K`, so runs with and without
/// a daemon compare.
fn exercise(repo: &TestRepo) -> String {
    let mut log = String::new();
    let mut step = |args: &[&str], ok: bool| {
        let text = if ok { repo.ok(args) } else { repo.fails(args) };
        log.push_str(&format!("$ {}\n{text}\n", args.join(" ")));
        text
    };
    let id = step(&["key", "gen", "a"], true);
    assert!(id.trim().starts_with("k51"), "{id}");
    assert!(step(&["key", "gen", "a"], false).contains("already exists"));
    assert!(step(&["key", "gen", "self"], false).contains("already exists"));
    assert!(step(&["key", "gen", "x/y"], false).contains("may not contain slashes"));
    assert!(step(&["key", "gen", "r", "--type", "rsa"], false).contains("ed25519"));
    let listed = step(&["key", "list", "-l"], true);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].ends_with(" self") && lines[1] == format!("{} a", id.trim()));
    step(&["key", "rename", "a", "b"], true);
    let (pb, pem) = (repo.scratch("b.key"), repo.scratch("b.pem"));
    let (pb_s, pem_s) = (pb.to_str().unwrap(), pem.to_str().unwrap());
    step(&["key", "export", "b", "-o", pb_s], true);
    assert_eq!(mode(&pb), 0o600);
    assert!(step(&["key", "export", "b", "-o", pb_s], false).contains("never overwritten"));
    let fmt = "--format=pem-pkcs8-cleartext";
    step(&["key", "export", "b", "-o", pem_s, fmt], true);
    assert!(std::fs::read_to_string(&pem)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(step(&["key", "import", "c", pem_s, fmt], true), id);
    assert_eq!(step(&["key", "import", "d", pb_s], true), id);
    assert!(step(&["key", "import", "e", pem_s], false).contains("not an ed25519 private key"));
    assert!(step(&["key", "rename", "c", "d"], false).contains("already exists"));
    assert!(step(&["key", "rename", "c", "d", "-f"], true).contains("replacing"));
    step(&["key", "rm", "d", "b"], true);
    assert!(step(&["key", "rm", "self"], false).contains("cannot be removed"));
    assert_eq!(step(&["key", "list"], true), "self\n");
    std::fs::remove_file(&pb).unwrap();
    std::fs::remove_file(&pem).unwrap();
    let mut out = log;
    while let Some(at) = out.find("k51") {
        let end = out[at..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(out.len(), |n| at + n);
        out.replace_range(at..end, "K");
    }
    out
}

#[test]
fn key_commands_answer_the_same_with_and_without_a_daemon() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let offline = exercise(&repo);
    // Kubo's keystore layout: a private directory, a 0600 file per key named
    // key_<base32 of the name>.
    repo.ok(&["key", "gen", "my-key"]);
    let keystore = repo.path().join("keystore");
    assert_eq!(mode(&keystore), 0o700);
    assert_eq!(mode(&keystore.join("key_nv4s223fpe")), 0o600);
    repo.ok(&["key", "rm", "my-key"]);

    let (mut daemon, _) = Daemon::start(&repo, &[]);
    let online = exercise(&repo);
    assert_eq!(offline, online);
    daemon.signal(libc::SIGTERM);
}

#[test]
fn the_rpc_answers_in_kubos_shapes() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let (mut daemon, banner) = Daemon::start(&repo, &[]);
    let api = common::api_url(&banner);
    let post = |path: &str| -> (u16, serde_json::Value) {
        let mut answer = ureq::post(format!("{api}/api/v0/{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send_empty()
            .expect("call the API");
        let status = answer.status().as_u16();
        let body = answer.body_mut().read_to_vec().unwrap();
        let v = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        (status, v)
    };
    let (status, made) = post("key/gen?arg=site&type=ed25519");
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["Name"], "site");
    let id = made["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("k51"), "{id}");

    let (_, list) = post("key/list?l=true");
    let keys = list["Keys"].as_array().unwrap();
    assert_eq!(keys[0]["Name"], "self");
    assert_eq!(keys[1], serde_json::json!({"Name": "site", "Id": id}));
    let (_, peer_ids) = post("key/list?ipns-base=b58mh");
    let peer = peer_ids["Keys"][1]["Id"].as_str().unwrap();
    assert!(peer.starts_with("12D3Koo"), "{peer}");

    let (_, renamed) = post("key/rename?arg=site&arg=blog");
    assert_eq!(
        renamed,
        serde_json::json!({"Was": "site", "Now": "blog", "Id": id, "Overwrite": false})
    );
    let (status, export) = post("key/export?arg=blog");
    assert_eq!(status, 200);
    assert!(matches!(export, serde_json::Value::String(_)));

    // Refusals are Kubo's error object with 400, and change nothing.
    for bad in [
        "key/gen?arg=.dot",
        "key/gen?arg=blog",
        "key/rm?arg=self",
        "key/rm?arg=none",
    ] {
        let (status, err) = post(bad);
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["Type"], "error", "{bad}: {err}");
    }
    let (_, removed) = post("key/rm?arg=blog");
    assert_eq!(
        removed,
        serde_json::json!({"Keys": [{"Name": "blog", "Id": id}]})
    );
    let (_, list) = post("key/list");
    assert_eq!(list["Keys"].as_array().unwrap().len(), 1);
    daemon.signal(libc::SIGTERM);
}
