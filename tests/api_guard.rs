//! Who may call the daemon's RPC API, tried as an attacker would: raw HTTP
//! requests with the headers a browser sends for a hostile page (`Origin`
//! of another site, `Origin: null`, `Referer`, `Sec-Fetch-Site`), a `Host`
//! that is not the API's (DNS rebinding), and token tricks; then a real
//! headless Chromium opening a page served from another origin that tries
//! to shut the daemon down and unpin a file with `fetch(.., {mode:
//! "no-cors"})` and an HTML form. Each refused request must have done
//! nothing: the daemon still runs and the pin is still there.
//!
//! The browser test uses tests/browser/setup.sh (Debian's Chromium with
//! apt-get, playwright-core with `npm ci`) and tests/browser/visit.mjs; a
//! failed setup fails the test with its reason. Only loopback is used.

mod common;

use common::process::{run_bounded, setup_once};
use common::{api_url, Daemon, TestRepo};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A token long enough to be accepted.
const TOKEN: &str = "correct-horse-battery-staple";

/// The API's socket address, from the daemon's start-up lines.
fn api_addr(banner: &[String]) -> SocketAddr {
    api_url(banner)
        .trim_start_matches("http://")
        .parse()
        .expect("an API address")
}

/// Sends `METHOD PATH` with `headers` over a fresh connection (adding
/// `Host: 127.0.0.1:PORT` unless `headers` has a Host); returns the status
/// and the body.
fn request(api: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {api}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(api).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// Asserts the daemon is still running and `cid` still pinned.
fn assert_untouched(a: &TestRepo, d: &mut Daemon, cid: &str) {
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon stopped: a refused request was executed"
    );
    let pins = a.ok(&["pin", "ls", "--type", "recursive"]);
    assert!(pins.contains(cid), "{cid} was unpinned: {pins}");
}

/// Whether the daemon exits within 10 s.
fn stops(d: &mut Daemon) -> bool {
    for _ in 0..200 {
        if d.child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A repo with one pinned file; returns it and the file's CID.
fn repo_with_a_pin() -> (TestRepo, String) {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let file = a.scratch("file.txt");
    std::fs::write(&file, b"keep me pinned").unwrap();
    let cid = a.add(&file, &[]);
    (a, cid)
}

/// `Origin`, `Referer` and `Sec-Fetch-Site` as browsers send them for a
/// page of another site, and a `Host` that is not the API's, are refused
/// with 403 on every route (POST and GET) before anything is done; tools
/// that send none of them, and allowed origins, pass.
#[test]
fn web_pages_and_foreign_hosts_cannot_drive_the_api() {
    let (a, cid) = repo_with_a_pin();
    a.set_config("api", "allowed_origins", r#"["http://webui.example:8080"]"#);
    let (mut d, banner) = Daemon::start(&a, &[]);
    let api = api_addr(&banner);
    let port = api.port().to_string();
    let pin_rm = format!("/api/v0/pin/rm?arg={cid}");
    let evil_host = format!("rebound.example:{port}");
    let wrong_port = format!("127.0.0.1:{}", api.port().wrapping_add(1));
    let hostile: [(&str, &str); 9] = [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "http://webui.example:8081"),
        ("Referer", "http://evil.example/attack.html"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
        ("Host", &evil_host),
        ("Host", &wrong_port),
        ("Host", "localhost"),
    ];
    for header in hostile {
        for (method, path) in [
            ("POST", pin_rm.as_str()),
            ("POST", "/api/v0/shutdown"),
            ("GET", "/api/v0/shutdown"),
            ("POST", "/api/v0/version"),
        ] {
            let (status, body) = request(api, method, path, &[header]);
            assert_eq!(status, 403, "{method} {path} with {header:?}: {body}");
            let says = if header.0 == "Host" {
                "Host"
            } else {
                "allowed_origins"
            };
            assert!(body.contains(says), "{header:?}: {body}");
        }
    }
    assert_untouched(&a, &mut d, &cid);

    let localhost = format!("localhost:{port}");
    let ipv6 = format!("[::1]:{port}");
    let welcome: [&[(&str, &str)]; 7] = [
        &[],
        &[("Origin", "http://webui.example:8080")],
        &[("Origin", "http://WEBUI.example:8080")],
        &[("Referer", "http://webui.example:8080/index.html")],
        &[("Sec-Fetch-Site", "none")],
        &[("Host", &localhost)],
        &[("Host", &ipv6), ("Sec-Fetch-Site", "same-origin")],
    ];
    for headers in welcome {
        let (status, body) = request(api, "POST", "/api/v0/version", headers);
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
    let (status, body) = request(api, "POST", "/api/v0/shutdown", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        stops(&mut d),
        "the daemon did not stop on an allowed shutdown"
    );
}

/// Runs `cairn daemon` on `api`; it must exit non-zero within 20 s (a
/// daemon that starts would run until killed) saying `expected`.
fn daemon_refuses(a: &TestRepo, api: &str, expected: &str) {
    let cmd = a.cmd(&[
        "daemon",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        api,
        "--gateway",
        "off",
    ]);
    let out = run_bounded(cmd, None, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("the daemon started instead of refusing: {e:#}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(err.contains(expected), "{err}");
}

/// An empty or short token stops the daemon at start-up (an empty one
/// used to match a request without Authorization, even beyond loopback);
/// with a good token the scheme is matched in any case, and two
/// Authorization headers are refused.
#[test]
fn tokens_must_be_long_and_sent_once() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    a.set_config("api", "tokens", r#"[""]"#);
    daemon_refuses(&a, "0.0.0.0:0", "token 0 is empty");
    daemon_refuses(&a, "127.0.0.1:0", "token 0 is empty");
    a.set_config("api", "tokens", &format!(r#"["{TOKEN}", "0123456789"]"#));
    daemon_refuses(&a, "127.0.0.1:0", "token 1 is 10 bytes; at least 16");

    a.set_config("api", "tokens", &format!(r#"["{TOKEN}"]"#));
    let (mut d, banner) = Daemon::start(&a, &[]);
    let api = api_addr(&banner);
    let id = "/api/v0/id";
    let bearer = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let upper = format!("BEARER {TOKEN}");
    for (headers, want) in [
        (vec![], 401),
        (vec![("Authorization", "Bearer ")], 401),
        (vec![("Authorization", "Bearer wrong-but-long-enough")], 401),
        (vec![("Authorization", &format!("Basic {TOKEN}"))], 401),
        (vec![("Authorization", bearer.as_str())], 200),
        (vec![("Authorization", lower.as_str())], 200),
        (vec![("Authorization", upper.as_str())], 200),
        (
            vec![("Authorization", "Bearer x"), ("Authorization", &bearer)],
            400,
        ),
        (
            vec![("Authorization", &bearer), ("Authorization", &bearer)],
            400,
        ),
        // A token does not make a hostile page's request acceptable.
        (
            vec![
                ("Authorization", &bearer),
                ("Origin", "http://evil.example"),
            ],
            403,
        ),
    ] {
        let (status, body) = request(api, "POST", id, &headers);
        assert_eq!(status, want, "{headers:?}: {body}");
    }
    // The CLI sends the configured token.
    let id: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    assert!(id["ID"].as_str().is_some(), "{id}");
    assert!(d.signal(libc::SIGTERM).success());
}

// --- a real browser --------------------------------------------------------

/// Serves `html` to every request on `listener` until the test ends.
fn serve_page(listener: TcpListener, html: String) {
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
}

/// The attacking page: an HTML form POST to `pin/rm` (into a frame), then
/// `fetch(api + '/api/v0/shutdown', {method: 'POST', mode: 'no-cors'})`;
/// it reports by setting its title to `done:` and what happened.
fn attack_page(api: &str, cid: &str) -> String {
    format!(
        r#"<!doctype html>
<title>attacking</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="{api}/api/v0/pin/rm?arg={cid}" target="sink">
<input name="x" value="y"></form>
<script>
(async () => {{
  const seen = [];
  const frame = document.querySelector('iframe');
  await new Promise((done) => {{
    frame.onload = done;
    setTimeout(done, 10000);
    document.getElementById('f').submit();
  }});
  seen.push('form submitted');
  try {{
    await fetch('{api}/api/v0/shutdown', {{ method: 'POST', mode: 'no-cors' }});
    seen.push('fetch answered');
  }} catch (e) {{
    seen.push('fetch failed: ' + e);
  }}
  document.title = 'done:' + seen.join(', ');
}})();
</script>
"#
    )
}

/// Installs Chromium and playwright-core once per test binary; a failed
/// install fails the test with its reason (never a silent skip).
fn browser_ready() {
    setup_once(
        &["tests/browser/setup.sh"],
        "Debian's Chromium (apt-get, as root) and playwright-core from npm",
    );
}

/// Opens `urls` in headless Chromium (tests/browser/visit.mjs); returns
/// each page's final title.
fn visit(urls: &[String]) -> Vec<String> {
    let mut cmd = Command::new("node");
    cmd.current_dir(common::process::root().join("tests/browser"))
        .args(["visit.mjs", "--timeout", "60"])
        .args(urls);
    let out = run_bounded(cmd, None, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("visit.mjs: {e:#}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "visit.mjs {}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["title"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// A page from another origin (127.0.0.2, another port) opened in headless
/// Chromium cannot unpin or shut down; the same page from an origin in
/// `[api] allowed_origins` (127.0.0.3) can, which shows that the browser's
/// requests do reach the API.
#[test]
fn a_page_of_another_origin_in_chromium_cannot_drive_the_api() {
    browser_ready();
    let (a, cid) = repo_with_a_pin();
    let evil = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let friend = TcpListener::bind("127.0.0.3:0").expect("bind 127.0.0.3");
    let evil_url = format!("http://{}/", evil.local_addr().unwrap());
    let friend_url = format!("http://{}", friend.local_addr().unwrap());
    a.set_config("api", "allowed_origins", &format!(r#"["{friend_url}"]"#));
    let (mut d, banner) = Daemon::start(&a, &[]);
    let api = api_url(&banner);
    serve_page(evil, attack_page(&api, &cid));
    serve_page(friend, attack_page(&api, &cid));

    let titles = visit(&[evil_url]);
    assert_eq!(titles, ["done:form submitted, fetch answered"]);
    assert_untouched(&a, &mut d, &cid);

    let titles = visit(&[format!("{friend_url}/")]);
    assert!(titles[0].starts_with("done:form submitted"), "{titles:?}");
    assert!(
        stops(&mut d),
        "the allowed page's shutdown did not reach the daemon"
    );
    let pins = a.ok(&["pin", "ls", "--type", "recursive"]);
    assert!(
        !pins.contains(&cid),
        "the allowed page's pin/rm did not reach the daemon: {pins}"
    );
}
