//! DNSLink against a DNS server of our own (`name resolve` with and
//! without a daemon, RPC `name/resolve` and `resolve`, path and subdomain
//! gateways): a network namespace whose
//! loopback runs Debian's dnsmasq (installed by tests/dnslink/
//! install-dnsmasq.sh) serving `_dnslink` TXT records, its
//! `/etc/netns/NS/resolv.conf` pointing at it, and cairn run inside it
//! with `ip netns exec` (which puts that file over /etc/resolv.conf). No
//! public DNS is ever asked. Needs root (as CI runs).
//!
//! The namespace, its resolv.conf, dnsmasq and the daemon are removed or
//! stopped by guards, also when an assertion fails.
#![allow(clippy::result_large_err)]

mod common;

use common::{Daemon, TestRepo};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The TTL dnsmasq gives its records (`--local-ttl`).
const TXT_TTL_S: u64 = 300;

/// A network namespace with a DNS server on its loopback; removed (server
/// stopped, resolv.conf deleted) when dropped.
struct DnsNamespace {
    name: String,
    etc: PathBuf,
    dnsmasq: Option<Child>,
}

impl DnsNamespace {
    /// A new namespace, its loopback up, its resolv.conf naming 127.0.0.1.
    fn create() -> DnsNamespace {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dnslink/install-dnsmasq.sh");
        let status = Command::new("sh").arg(&script).status().expect("run sh");
        assert!(status.success(), "{} failed", script.display());
        let name = format!("cairn-dnslink-{}", std::process::id());
        let ns = DnsNamespace {
            etc: Path::new("/etc/netns").join(&name),
            name,
            dnsmasq: None,
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        std::fs::create_dir_all(&ns.etc).expect("create /etc/netns/NS");
        std::fs::write(
            ns.etc.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
        )
        .expect("write resolv.conf");
        ns
    }

    /// `program args` inside the namespace (with its resolv.conf).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// `cairn --repo REPO args` inside the namespace.
    fn cairn(&self, repo: &TestRepo, args: &[&str]) -> Command {
        let repo = repo.path();
        let mut all = vec!["--repo", repo.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.command(common::bin(), &all)
    }

    /// Starts dnsmasq answering for `example.org` with `records` (TXT name,
    /// strings of one record); other names under example.org do not exist.
    fn serve(&mut self, records: &[(&str, &[&str])]) {
        let mut args: Vec<String> = [
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--port=53",
            "--pid-file=",
            "--local=/example.org/",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--local-ttl={TXT_TTL_S}"));
        for (name, strings) in records {
            args.push(format!("--txt-record={name},{}", strings.join(",")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .command("/usr/sbin/dnsmasq", &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        self.dnsmasq = Some(child);
    }

    /// Moves this thread into the namespace, so HTTP requests reach the
    /// daemon's loopback listeners there.
    fn enter(&self) {
        let path = Path::new("/var/run/netns").join(&self.name);
        let file = std::fs::File::open(&path).expect("open the namespace");
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a descriptor we own; it changes only this
        // thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for DnsNamespace {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Runs `cmd` until it prints `want` (dnsmasq may still be starting).
fn prints(mut cmd: impl FnMut() -> Command, want: &str) {
    let start = Instant::now();
    loop {
        let out = cmd().output().expect("run cairn");
        let (stdout, stderr) = text(&out);
        if out.status.success() && stdout == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "wanted {want:?}, got {stdout:?} / {stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A GET on the gateway: status, `Cache-Control`, `X-Ipfs-Path`, body.
fn get(gw: &str, path: &str, host: Option<&str>) -> (u16, String, String, String) {
    let mut r = common::get_with_host(&format!("{gw}{path}"), host);
    let header = |r: &ureq::http::Response<ureq::Body>, n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (cache, xpath) = (header(&r, "cache-control"), header(&r, "x-ipfs-path"));
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), cache, xpath, body)
}

/// `public, max-age=N` → N.
fn max_age(cache: &str) -> u64 {
    cache
        .strip_prefix("public, max-age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control {cache:?}"))
}

#[test]
fn dnslink_domains_resolve_through_the_system_resolver() {
    let mut ns = DnsNamespace::create();
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let site = repo.scratch("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello from DNSLink\n").unwrap();
    let cid = repo.add(&site, &["-r"]);
    let published = repo.ok(&["name", "publish", "--allow-offline", &cid]);
    let k51 = published
        .strip_prefix("Published to ")
        .and_then(|r| r.split(':').next())
        .expect("Kubo's line")
        .to_string();

    let direct = format!("dnslink=/ipfs/{cid}");
    let by_key = format!("dnslink=/ipns/{k51}");
    let (split_a, split_b) = direct.split_at(12);
    ns.serve(&[
        ("_dnslink.example.org", &[&direct]),
        ("_dnslink.chain.example.org", &["dnslink=/ipns/example.org"]),
        ("_dnslink.key.example.org", &[&by_key]),
        ("_dnslink.split.example.org", &[split_a, split_b]),
        ("_dnslink.my-site.example.org", &[&direct]),
        (
            "_dnslink.loop.example.org",
            &["dnslink=/ipns/loop.example.org"],
        ),
        ("_dnslink.bad.example.org", &["dnslink=/ipfs/not-a-cid"]),
        ("_dnslink.two.example.org", &[&direct]),
        ("_dnslink.two.example.org", &["dnslink=/ipfs/bafkqaaa"]),
        ("_dnslink.other.example.org", &["v=spf1 -all"]),
        ("example.org", &["dnslink=/ipfs/bafkqaaa"]),
    ]);

    // Without a daemon: the CLI asks DNS itself.
    let want = format!("/ipfs/{cid}");
    prints(
        || ns.cairn(&repo, &["name", "resolve", "example.org"]),
        &want,
    );
    for (name, want) in [
        ("/ipns/example.org/hello.txt", format!("{want}/hello.txt")),
        ("chain.example.org", want.clone()),
        ("key.example.org", want.clone()),
        ("split.example.org", want.clone()),
    ] {
        let out = ns
            .cairn(&repo, &["name", "resolve", name])
            .output()
            .unwrap();
        assert_eq!(text(&out).0, want, "{name}: {}", text(&out).1);
    }
    let one_step = ns
        .cairn(
            &repo,
            &["name", "resolve", "--recursive=false", "chain.example.org"],
        )
        .output()
        .unwrap();
    assert_eq!(text(&one_step).0, "/ipns/example.org");
    for (name, says) in [
        (
            "nothing.example.org",
            "no dnslink= TXT record at _dnslink.nothing.example.org",
        ),
        ("other.example.org", "no dnslink= TXT record"),
        ("bad.example.org", "is malformed"),
        ("two.example.org", "has 2 DNSLink paths"),
        ("loop.example.org", "more than 32 names in a chain"),
        ("bad_name..org", "is not a domain name"),
    ] {
        let out = ns
            .cairn(&repo, &["name", "resolve", name])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} resolved");
        assert!(text(&out).1.contains(says), "{name}: {}", text(&out).1);
    }

    // With a daemon: RPC, CLI through it, and the gateway.
    let args = Daemon::loopback_args(&[]);
    let (_daemon, banner) = Daemon::launch(ns.cairn(&repo, &args));
    ns.enter();
    let api = common::api_url(&banner);
    let gw = common::gateway_url(&banner);
    let rpc = |call: &str| {
        let mut r = ureq::post(format!("{api}/api/v0/{call}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send_empty()
            .expect("call the API");
        let status = r.status().as_u16();
        let body: serde_json::Value =
            serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap_or_default();
        (status, body)
    };
    let (status, body) = rpc("name/resolve?arg=/ipns/chain.example.org/hello.txt");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Path"], format!("{want}/hello.txt"));
    let (status, body) = rpc("resolve?arg=/ipns/split.example.org");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Path"], want);
    let (status, body) = rpc("name/resolve?arg=nothing.example.org");
    assert_eq!(status, 500, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("_dnslink"),
        "{body}"
    );
    let through = ns
        .cairn(&repo, &["name", "resolve", "key.example.org"])
        .output()
        .unwrap();
    assert_eq!(text(&through).0, want, "{}", text(&through).1);

    // Path and subdomain gateways, cacheable for the TXT record's TTL.
    let (status, cache, xpath, body) = get(&gw, "/ipns/example.org/hello.txt", None);
    assert_eq!((status, body.as_str()), (200, "hello from DNSLink\n"));
    assert_eq!(xpath, "/ipns/example.org/hello.txt");
    let age = max_age(&cache);
    assert!(age > 0 && age <= TXT_TTL_S, "{cache}");
    let port = gw.rsplit(':').next().unwrap();
    let host = format!("my--site-example-org.ipns.localhost:{port}");
    let (status, cache, xpath, body) = get(&gw, "/hello.txt", Some(&host));
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from DNSLink\n"),
        "{xpath}"
    );
    assert_eq!(xpath, "/ipns/my-site.example.org/hello.txt");
    assert!(max_age(&cache) <= TXT_TTL_S);
    let host = format!("example-org.ipns.localhost:{port}");
    assert_eq!(get(&gw, "/hello.txt", Some(&host)).0, 200);
    // An IPNS name reached through DNSLink: the shorter TTL of the two.
    let (status, cache, _, _) = get(&gw, "/ipns/key.example.org/hello.txt", None);
    assert_eq!(status, 200);
    assert!(max_age(&cache) <= TXT_TTL_S, "{cache}");

    for (path, want_status, says) in [
        ("/ipns/nothing.example.org/", 404, "no dnslink= TXT record"),
        ("/ipns/bad.example.org/", 502, "is malformed"),
        ("/ipns/two.example.org/", 502, "has 2 DNSLink paths"),
        ("/ipns/a..example.org/", 400, "is not a domain name"),
    ] {
        let (status, _, _, body) = get(&gw, path, None);
        assert_eq!(status, want_status, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
}
