//! The RPC API as Kubo's clients call it: parameter parsing, unknown
//! endpoints and methods, and the DAG, resolve, object and config
//! endpoints, checked against one daemon over raw HTTP.

mod common;

use common::{Daemon, TestRepo};
use serde_json::{json, Value};

/// A daemon on a fresh repo and its API URL.
fn daemon() -> (TestRepo, Daemon, String) {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let (daemon, banner) = Daemon::start(&repo, &[]);
    let api = common::api_url(&banner);
    (repo, daemon, api)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Status, `Content-Type` and body (JSON, or a JSON string of the text).
fn answer(mut r: ureq::http::Response<ureq::Body>) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.body_mut().read_to_vec().unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, ctype, v)
}

/// POSTs `/api/v0/{path}` with no body.
fn post(api: &str, path: &str) -> (u16, Value) {
    let (status, _, v) = answer(
        agent()
            .post(format!("{api}/api/v0/{path}"))
            .send_empty()
            .expect("call the API"),
    );
    (status, v)
}

/// POSTs `/api/v0/{path}` with `data` as the one file of a multipart body.
fn post_file(api: &str, path: &str, data: &[u8]) -> (u16, Value) {
    let boundary = "cairn-test-boundary-7c1d";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, _, v) = answer(
        agent()
            .post(format!("{api}/api/v0/{path}"))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..])
            .expect("call the API"),
    );
    (status, v)
}

fn kubo_error(v: &Value, code: u64) -> &str {
    assert_eq!(v["Type"], "error", "{v}");
    assert_eq!(v["Code"], code, "{v}");
    v["Message"].as_str().expect("a message")
}

#[test]
fn parameters_unknown_endpoints_and_methods_answer_as_kubo() {
    let (_repo, mut d, api) = daemon();
    // Booleans in any case, as Python's clients send them.
    let (status, added) = post_file(
        &api,
        "add?raw-leaves=False&pin=TRUE&cid-version=0x1",
        b"hi\n",
    );
    assert_eq!(status, 200, "{added}");
    let cid = added["Hash"].as_str().unwrap().to_string();
    let (status, v) = post(&api, &format!("pin/ls?arg={cid}&type=all&quiet=t"));
    assert_eq!(status, 200, "{v}");
    let (status, v) = post_file(&api, "add?pin=maybe", b"hi\n");
    assert_eq!(status, 400);
    assert_eq!(
        kubo_error(&v, 1),
        r#"could not convert value "maybe" to type "bool" (for option "-pin")"#
    );
    let (status, v) = post(&api, &format!("cat?arg={cid}&offset=ten"));
    assert_eq!(status, 400);
    assert!(
        kubo_error(&v, 1).contains(r#"(for option "-offset")"#),
        "{v}"
    );

    // An unknown endpoint: 404 with Kubo's words, as a JSON error.
    let (status, ctype, v) = answer(
        agent()
            .post(format!("{api}/api/v0/no/such/thing"))
            .send_empty()
            .unwrap(),
    );
    assert_eq!(status, 404);
    assert_eq!(ctype, "application/json");
    assert_eq!(kubo_error(&v, 1), "404 page not found");
    // GET on the API, known endpoint or not: 405, POST allowed.
    for path in ["id", "no/such/thing"] {
        let r = agent().get(format!("{api}/api/v0/{path}")).call().unwrap();
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, _, v) = answer(r);
        assert_eq!(status, 405, "{path}");
        assert_eq!(allow.as_deref(), Some("POST"));
        assert_eq!(kubo_error(&v, 1), "405 - Method Not Allowed");
    }
    assert!(d.signal(libc::SIGTERM).success());
}

#[test]
fn dag_resolve_object_and_config_answer_in_kubos_shapes() {
    let (repo, mut d, api) = daemon();
    // dag/put: DAG-JSON in, DAG-CBOR stored (Kubo's defaults), CIDv1
    // sha2-256.
    let (status, leaf) = post_file(&api, "dag/put?store-codec=raw&input-codec=raw", b"leaf!");
    assert_eq!(status, 200, "{leaf}");
    let leaf = leaf["Cid"]["/"].as_str().unwrap().to_string();
    assert!(leaf.starts_with("bafkrei"), "{leaf}");
    let doc = format!(r#"{{"name":"cairn","list":[1,{{"/":"{leaf}"}}]}}"#);
    let (status, put) = post_file(&api, "dag/put?pin=true", doc.as_bytes());
    assert_eq!(status, 200, "{put}");
    let root = put["Cid"]["/"].as_str().unwrap().to_string();
    assert!(root.starts_with("bafyrei"), "{root}");
    let (_, pins) = post(&api, &format!("pin/ls?arg={root}"));
    assert_eq!(pins["Keys"][&root]["Type"], "recursive", "{pins}");

    // dag/get renders DAG-JSON (keys sorted), or another codec.
    let get = |path: &str| -> (u16, Vec<u8>) {
        let mut r = agent()
            .post(format!("{api}/api/v0/dag/get?{path}"))
            .send_empty()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
    };
    let (status, body) = get(&format!("arg={root}"));
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!(r#"{{"list":[1,{{"/":"{leaf}"}}],"name":"cairn"}}"#)
    );
    assert_eq!(get(&format!("arg=/ipfs/{root}/name")).1, br#""cairn""#);
    assert_eq!(
        get(&format!("arg={root}/list/1&output-codec=raw")).1,
        b"leaf!"
    );
    let (status, cbor) = get(&format!("arg={root}&output-codec=dag-cbor"));
    assert_eq!(status, 200);
    assert_eq!(cbor[0], 0xa2, "a 2-entry CBOR map");

    // A UnixFS directory: dag-pb in Kubo's shape, paths by entry name.
    let dir = repo.scratch("site");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), b"<p>hi</p>\n").unwrap();
    let dir_cid = repo
        .ok(&[
            "add",
            "-r",
            "-Q",
            "--cid-version",
            "0",
            dir.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    let (_, body) = get(&format!("arg={dir_cid}"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Data"], json!({"/": {"bytes": "CAE"}}), "{v}");
    let link = &v["Links"][0];
    assert_eq!(link["Name"], "index.html");
    let file_cid = link["Hash"]["/"].as_str().unwrap().to_string();
    assert!(link["Tsize"].as_u64().unwrap() > 10, "{link}");

    // dag/resolve and resolve.
    let (_, r) = post(&api, &format!("dag/resolve?arg={root}/list/1"));
    assert_eq!(r, json!({"Cid": {"/": leaf}, "RemPath": ""}));
    let (_, r) = post(&api, &format!("dag/resolve?arg={root}/list/0"));
    assert_eq!(r, json!({"Cid": {"/": root}, "RemPath": "list/0"}));
    let (_, r) = post(&api, &format!("resolve?arg=/ipfs/{dir_cid}/index.html"));
    assert_eq!(r, json!({"Path": format!("/ipfs/{file_cid}")}));
    let (status, r) = post(&api, &format!("resolve?arg=/ipfs/{dir_cid}/nope"));
    assert_eq!(status, 500, "{r}");
    assert!(kubo_error(&r, 0).contains("nope"), "{r}");

    // object/stat of a dag-pb directory: Kubo's six numbers.
    let (_, st) = post(&api, &format!("object/stat?arg={dir_cid}"));
    let (_, block) = post(&api, &format!("block/stat?arg={dir_cid}"));
    let size = block["Size"].as_u64().unwrap();
    assert_eq!(st["Hash"], dir_cid.as_str());
    assert_eq!(st["NumLinks"], 1);
    assert_eq!(st["BlockSize"], size);
    assert_eq!(st["DataSize"], 2);
    assert_eq!(st["LinksSize"], size - 2);
    assert_eq!(st["CumulativeSize"], size + link["Tsize"].as_u64().unwrap());

    // Refusals: input that does not decode, an unknown codec, too big.
    let (status, v) = post_file(&api, "dag/put", b"{\"a\":");
    assert_eq!(status, 400);
    assert!(
        kubo_error(&v, 1).starts_with("invalid input: dag-json"),
        "{v}"
    );
    let (status, v) = post_file(&api, "dag/put?store-codec=dag-yaml", b"{}");
    assert_eq!(status, 400, "{v}");
    let big = format!(r#""{}""#, "x".repeat(2 * 1024 * 1024));
    let (status, v) = post_file(&api, "dag/put", big.as_bytes());
    assert_eq!(status, 400);
    assert!(kubo_error(&v, 1).contains("byte limit"), "{v}");

    // config/show: the settings, tokens redacted; config KEY: one.
    let (status, cfg) = post(&api, "config/show");
    assert_eq!(status, 200, "{cfg}");
    assert!(cfg["api"]["listen"].is_string(), "{cfg}");
    let (_, one) = post(&api, "config?arg=import.cid_version");
    assert_eq!(one["Key"], "import.cid_version");
    assert_eq!(one["Value"], cfg["import"]["cid_version"]);
    let (status, _) = post(&api, "config?arg=no.such.key");
    assert_eq!(status, 500);
    let (status, _) = post(&api, "config?arg=api.listen&arg=x");
    assert_eq!(status, 400);

    assert!(d.signal(libc::SIGTERM).success());
}

#[test]
fn config_show_redacts_api_tokens() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    repo.set_config("api", "tokens", "[\"s3cret-token-of-16+\"]");
    let (mut d, banner) = Daemon::start(&repo, &[]);
    let api = common::api_url(&banner);
    let mut r = agent()
        .post(format!("{api}/api/v0/config/show"))
        .header("Authorization", "Bearer s3cret-token-of-16+")
        .send_empty()
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert!(!body.contains("s3cret"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["api"]["tokens"], json!(["<redacted>"]));
    assert!(d.signal(libc::SIGTERM).success());
}

/// Two daemons: `dht/findpeer` and `routing/findpeer` give a connected
/// peer's addresses as Kubo's final-peer event; `dht/findprovs` finds the
/// peer that added a block.
#[test]
fn findpeer_and_findprovs_through_the_dht_aliases() {
    let (_a, mut da, api_a) = daemon();
    let b = TestRepo::new();
    b.ok(&["init"]);
    let (mut db, banner_b) = Daemon::start(&b, &[]);
    let api_b = common::api_url(&banner_b);
    let b_addr = common::swarm_addr(&banner_b);
    let b_peer = common::peer_id_of(&b_addr);
    let (status, v) = post(&api_a, &format!("swarm/connect?arg={b_addr}"));
    assert_eq!(status, 200, "{v}");
    for alias in ["dht", "routing"] {
        let (status, v) = post(&api_a, &format!("{alias}/findpeer?arg={b_peer}"));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["Type"], 2, "{v}");
        assert_eq!(v["Responses"][0]["ID"], b_peer.as_str());
        let addrs = v["Responses"][0]["Addrs"].as_array().unwrap();
        assert!(!addrs.is_empty(), "{v}");
    }
    let (status, v) = post(&api_a, "dht/findpeer?arg=not-a-peer");
    assert_eq!(status, 400, "{v}");
    let (_, put) = post_file(&api_b, "block/put", b"provided by b\n");
    let cid = put["Key"].as_str().unwrap().to_string();
    let mut found = false;
    for _ in 0..50 {
        let (status, v) = post(&api_a, &format!("dht/findprovs?arg={cid}&num-providers=1"));
        assert_eq!(status, 200, "{v}");
        if v["Responses"][0]["ID"] == b_peer.as_str() {
            found = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(found, "b never showed as provider of {cid}");
    assert!(db.signal(libc::SIGTERM).success());
    assert!(da.signal(libc::SIGTERM).success());
}

/// `cairn dag put|get|resolve`, `resolve`, `object stat` and `config show`
/// on `repo`; returns what they printed.
fn ipld_commands(repo: &TestRepo) -> String {
    let doc = repo.scratch("doc.json");
    std::fs::write(&doc, br#"{"hello":"world","n":[1,2]}"#).unwrap();
    let cid = repo
        .ok(&["dag", "put", "--pin", doc.to_str().unwrap()])
        .trim()
        .to_string();
    let mut log = format!("put {cid}\n");
    for args in [
        vec!["dag", "get", &cid],
        vec![
            "dag",
            "get",
            "--output-codec",
            "dag-json",
            &format!("/ipfs/{cid}/n"),
        ],
        vec!["dag", "resolve", &format!("{cid}/n/0")],
        vec!["resolve", &format!("/ipfs/{cid}/hello")],
        vec!["object", "stat", &cid],
    ] {
        log += &format!("{args:?}: {}\n", repo.ok(&args));
    }
    let raw = repo.ok_bytes(&["dag", "get", "--output-codec", "dag-cbor", &cid]);
    log += &format!("cbor {raw:?}\n");
    let bad = repo.scratch("bad.json");
    std::fs::write(&bad, b"{\"a\":").unwrap();
    log += &repo.fails(&["dag", "put", bad.to_str().unwrap()]);
    log += &repo.fails(&["dag", "get", "--output-codec", "yaml", &cid]);
    let config: Value = serde_json::from_str(&repo.ok(&["config", "show"])).unwrap();
    log += &format!("config api.tokens {}\n", config["api"]["tokens"]);
    log
}

#[test]
fn ipld_commands_answer_the_same_with_and_without_a_daemon() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let offline = ipld_commands(&repo);
    assert!(offline.contains(r#"["dag", "get", "bafyrei"#), "{offline}");
    assert!(
        offline.contains(r#"{"hello":"world","n":[1,2]}"#),
        "{offline}"
    );
    assert!(offline.contains("/n/0\n"), "{offline}");
    assert!(offline.contains("NumLinks:       0"), "{offline}");
    assert!(offline.contains("invalid input: dag-json"), "{offline}");
    assert!(offline.contains("unknown codec \"yaml\""), "{offline}");
    let (mut d, _) = Daemon::start(&repo, &[]);
    let online = ipld_commands(&repo);
    assert_eq!(offline, online);
    assert!(d.signal(libc::SIGTERM).success());
}
