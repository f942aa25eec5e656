//! `cairn files` (MFS): the same answers with and without a daemon, add's
//! CIDs for what is written, the root kept across GC, the `files/*` RPC in
//! Kubo's shapes, and `[mfs.autopublish]`.

mod common;

use common::{Daemon, TestRepo};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `files write` with `data` on standard input.
fn write_stdin(repo: &TestRepo, args: &[&str], data: &[u8]) {
    let mut child = repo
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `files` command once on a fresh repo; what they printed.
fn exercise(repo: &TestRepo) -> String {
    let mut log = String::new();
    let mut step = |args: &[&str], ok: bool| {
        let text = if ok { repo.ok(args) } else { repo.fails(args) };
        log.push_str(&format!("$ {}\n{text}\n", args.join(" ")));
        text
    };
    step(&["files", "mkdir", "/docs"], true);
    assert!(step(&["files", "mkdir", "/docs"], false).contains("file already exists"));
    step(&["files", "mkdir", "-p", "/docs/deep/er"], true);
    assert!(step(&["files", "mkdir", "/a/b"], false).contains("file does not exist"));
    let big = repo.scratch("big.bin");
    std::fs::write(&big, common::random_bytes(3 << 20, 7)).unwrap();
    let big_s = big.to_str().unwrap();
    assert!(step(&["files", "write", "/docs/big", big_s], false).contains("file does not exist"));
    step(&["files", "write", "--create", "/docs/big", big_s], true);
    // The same CID as `add`.
    let added = repo.add(&big, &[]);
    assert_eq!(
        step(&["files", "stat", "--hash", "/docs/big"], true).trim(),
        added
    );
    write_stdin(
        repo,
        &["files", "write", "-e", "-p", "/notes/today.txt"],
        b"hello\n",
    );
    write_stdin(
        repo,
        &["files", "write", "-o", "6", "/notes/today.txt"],
        b"world\n",
    );
    assert_eq!(
        step(&["files", "read", "/notes/today.txt"], true),
        "hello\nworld\n"
    );
    assert_eq!(
        step(
            &["files", "read", "-o", "6", "-n", "3", "/notes/today.txt"],
            true
        ),
        "wor"
    );
    step(&["files", "ls", "/"], true);
    step(&["files", "ls", "-l", "/docs"], true);
    step(&["files", "ls", "-l", "/docs/big"], true);
    let stat = step(&["files", "stat", "/notes/today.txt"], true);
    assert!(
        stat.contains("Size: 12\n") && stat.contains("Type: file"),
        "{stat}"
    );
    assert!(step(&["files", "stat", "/nope"], false).contains("file does not exist"));
    assert!(step(&["files", "stat", "relative"], false).contains("leading slash"));
    step(&["files", "cp", "/notes/today.txt", "/docs/"], true);
    step(&["files", "cp", &format!("/ipfs/{added}"), "/copied"], true);
    assert!(step(&["files", "cp", "/copied", "/docs/big"], false).contains("already exists"));
    step(&["files", "mv", "/copied", "/docs/deep/moved"], true);
    assert!(step(&["files", "rm", "/docs"], false).contains("use -r"));
    step(&["files", "rm", "-r", "/docs/deep/er"], true);
    step(&["files", "rm", "--force", "/not-there"], true);
    step(&["files", "chcid", "--cid-version", "0", "/notes"], true);
    assert!(step(&["files", "stat", "--hash", "/notes"], true).starts_with("Qm"));
    step(&["files", "ls", "-l", "/"], true);
    step(&["files", "flush"], true);
    // Scratch paths differ between repos.
    log.replace(big_s, "BIG")
}

#[test]
fn files_commands_answer_the_same_with_and_without_a_daemon() {
    let offline_repo = TestRepo::new();
    offline_repo.ok(&["init"]);
    let offline = exercise(&offline_repo);
    let online_repo = TestRepo::new();
    online_repo.ok(&["init"]);
    let (mut daemon, _) = Daemon::start(&online_repo, &[]);
    let online = exercise(&online_repo);
    assert_eq!(offline, online);
    daemon.signal(libc::SIGTERM);
    // The tree outlives the daemon.
    let root = online_repo.ok(&["files", "flush"]);
    assert_eq!(offline_repo.ok(&["files", "flush"]), root);
}

#[test]
fn gc_keeps_the_tree_and_frees_what_it_no_longer_holds() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let old = repo.scratch("old");
    std::fs::write(&old, common::random_bytes(600_000, 1)).unwrap();
    let new = repo.scratch("new");
    std::fs::write(&new, common::random_bytes(600_000, 2)).unwrap();
    let (old_s, new_s) = (old.to_str().unwrap(), new.to_str().unwrap());
    repo.ok(&["files", "write", "-e", "/f", old_s]);
    let old_cid = repo.ok(&["files", "stat", "--hash", "/f"]);
    repo.ok(&["repo", "gc", "-q"]);
    assert_eq!(
        repo.ok_bytes(&["files", "read", "/f"]),
        std::fs::read(&old).unwrap()
    );
    // Replaced: the old file's blocks are garbage now, the new ones live.
    repo.ok(&["files", "write", "-t", "/f", new_s]);
    repo.ok(&["repo", "gc", "-q"]);
    assert!(repo
        .fails(&["block", "stat", old_cid.trim()])
        .contains("not in the local store"));
    assert_eq!(
        repo.ok_bytes(&["files", "read", "/f"]),
        std::fs::read(&new).unwrap()
    );
    // The same through a daemon.
    let (mut daemon, _) = Daemon::start(&repo, &[]);
    repo.ok(&["repo", "gc", "-q"]);
    assert_eq!(
        repo.ok_bytes(&["files", "read", "/f"]),
        std::fs::read(&new).unwrap()
    );
    daemon.signal(libc::SIGTERM);
}

#[test]
fn large_directories_shard_as_add_shards_them() {
    let repo = TestRepo::new();
    repo.set_config("import", "shard_threshold_bytes", "1000");
    let dir = repo.scratch("site");
    std::fs::create_dir(&dir).unwrap();
    repo.ok(&["files", "mkdir", "/site"]);
    for i in 0..30 {
        let name = format!("page-{i:02}.html");
        let file = dir.join(&name);
        std::fs::write(&file, format!("<p>page {i}</p>")).unwrap();
        repo.ok(&[
            "files",
            "write",
            "-e",
            &format!("/site/{name}"),
            file.to_str().unwrap(),
        ]);
    }
    let added = repo.add(&dir, &["-r"]);
    assert_eq!(repo.ok(&["files", "stat", "--hash", "/site"]).trim(), added);
    assert_eq!(repo.ok(&["files", "ls", "/site"]).lines().count(), 30);
}

/// POSTs an RPC call with an optional multipart body; the status and the
/// answer (JSON when it parses, else the text).
fn post(api: &str, call: &str, body: Option<&[u8]>) -> (u16, serde_json::Value) {
    let req = ureq::post(format!("{api}/api/v0/{call}"))
        .config()
        .http_status_as_error(false)
        .build();
    let mut answer = match body {
        None => req.send_empty(),
        Some(data) => {
            let mut multipart = b"--xyz\r\nContent-Disposition: form-data; name=\"data\"; filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
            multipart.extend_from_slice(data);
            multipart.extend_from_slice(b"\r\n--xyz--\r\n");
            req.header("Content-Type", "multipart/form-data; boundary=xyz")
                .send(&multipart[..])
        }
    }
    .expect("call the API");
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_vec().unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v)
}

#[test]
fn the_files_rpc_answers_in_kubos_shapes() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let (mut daemon, banner) = Daemon::start(&repo, &[]);
    let api = common::api_url(&banner);
    assert_eq!(post(&api, "files/mkdir?arg=/d&parents=True", None).0, 200);
    let (status, v) = post(
        &api,
        "files/write?arg=/d/f.txt&create=true&truncate=1&parents=true",
        Some(b"hello mfs"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        post(
            &api,
            "files/write?arg=/d/f.txt&offset=6&count=2",
            Some(b"MFS!")
        )
        .0,
        200
    );
    assert_eq!(post(&api, "files/read?arg=/d/f.txt", None).1, "hello MFs");
    assert_eq!(
        post(&api, "files/read?arg=/d/f.txt&offset=6&count=2", None).1,
        "MF"
    );
    let (_, stat) = post(&api, "files/stat?arg=/d/f.txt", None);
    let hash = stat["Hash"].as_str().unwrap().to_string();
    assert_eq!(
        stat,
        serde_json::json!({"Hash": hash, "Size": 9, "CumulativeSize": 9, "Blocks": 0, "Type": "file"})
    );
    let (_, short) = post(&api, "files/ls?arg=/d", None);
    assert_eq!(
        short,
        serde_json::json!({"Entries": [{"Name": "f.txt", "Type": 0, "Size": 0, "Hash": ""}]})
    );
    let (_, long) = post(&api, "files/ls?arg=/&long=true", None);
    let d = &long["Entries"][0];
    assert_eq!(
        (&d["Name"], &d["Type"], &d["Size"]),
        (&"d".into(), &1.into(), &0.into())
    );
    assert_eq!(post(&api, "files/cp?arg=/d/f.txt&arg=/g.txt", None).0, 200);
    assert_eq!(post(&api, "files/mv?arg=/g.txt&arg=/h.txt", None).0, 200);
    let (_, root) = post(&api, "files/flush", None);
    let (_, stat_root) = post(&api, "files/stat?arg=/", None);
    assert_eq!(root, serde_json::json!({"Cid": stat_root["Hash"]}));
    assert_eq!(post(&api, "files/chcid?arg=/d&cid-version=0", None).0, 200);
    assert!(post(&api, "files/stat?arg=/d", None).1["Hash"]
        .as_str()
        .unwrap()
        .starts_with("Qm"));
    assert_eq!(post(&api, "files/rm?arg=/d&recursive=true", None).0, 200);
    // Refusals are Kubo's error object.
    for bad in [
        "files/stat?arg=/d",
        "files/read?arg=/nope",
        "files/mkdir?arg=relative",
        "files/rm?arg=/",
        "files/mkdir?arg=/x&parents=maybe",
        "files/cp?arg=/h.txt",
    ] {
        let (status, err) = post(&api, bad, None);
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["Type"], "error", "{bad}: {err}");
    }
    assert!(post(&api, "files/stat?arg=/d", None).1["Message"]
        .as_str()
        .unwrap()
        .contains("file does not exist"));
    daemon.signal(libc::SIGTERM);
}

/// `(self's IPNS name, what it resolves to)` through `repo`.
fn resolve_self(repo: &TestRepo) -> (String, String) {
    let keys = repo.ok(&["key", "list", "-l"]);
    let name = keys
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let out = repo.run(&["name", "resolve", "--nocache", &name]);
    (
        name,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn autopublish_keeps_the_root_published() {
    let repo = TestRepo::new();
    repo.set_config("mfs.autopublish", "key", "\"self\"");
    repo.set_config("mfs.autopublish", "path", "\"/\"");
    repo.set_config("mfs.autopublish", "debounce", "\"300ms\"");
    // Without a daemon, each change keeps a record in the repo.
    repo.ok(&["files", "mkdir", "/site"]);
    let root = repo.ok(&["files", "flush"]);
    assert_eq!(resolve_self(&repo).1, format!("/ipfs/{}", root.trim()));
    // With one, changes in a burst are published once they settle.
    let (mut daemon, _) = Daemon::start(&repo, &[]);
    for i in 0..4 {
        repo.ok(&["files", "mkdir", &format!("/site/p{i}")]);
    }
    let root = repo.ok(&["files", "stat", "--hash", "/"]);
    let want = format!("/ipfs/{}", root.trim());
    let start = Instant::now();
    while resolve_self(&repo).1 != want {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not republished: {:?}",
            resolve_self(&repo)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // `files publish` publishes any path on demand.
    repo.ok(&["files", "mkdir", "/blog"]);
    let blog = repo.ok(&["files", "stat", "--hash", "/blog"]);
    let out = repo.ok(&["files", "publish", "/blog", "--allow-offline"]);
    assert!(out.ends_with(&format!(": /ipfs/{blog}")), "{out}");
    daemon.signal(libc::SIGTERM);
}

#[test]
fn readme_example_runs_as_written() {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Files (MFS)")
        .nth(1)
        .expect("README has a Files (MFS) section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a sh block");
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let dir = repo.scratch("work");
    std::fs::create_dir(&dir).unwrap();
    let bin_dir = std::path::Path::new(common::bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(&dir)
        .env("PATH", path)
        .env("CAIRN_REPO", repo.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# first post\n"), "{stdout}");
    let cid = repo.add(&dir.join("index.html"), &[]);
    assert!(stdout.contains(&format!("{cid}\n")), "{stdout}");
    assert_eq!(
        repo.ok(&["files", "ls", "/site"]),
        "copy.html\nindex.html\n"
    );
}
