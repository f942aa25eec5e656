//! The HTTP gateway of a running daemon, as browsers, curl and trustless
//! clients use it: files with their types and cache headers, ranges,
//! directories (index.html, listings, redirects), raw blocks and CAR
//! responses with dag-scope and entity-bytes, subdomain requests, content
//! fetched from another node, and clear 400/404/416/504 answers.

mod common;

use cairn::block::Cid;
use cairn::dag::car::CarReader;
use common::{gateway_url, Daemon, TestRepo};
use std::str::FromStr;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.call().expect("the gateway answers");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_default();
    Got {
        status,
        headers,
        body,
    }
}

fn head(url: &str) -> Got {
    let resp = agent().head(url).call().expect("the gateway answers");
    Got {
        status: resp.status().as_u16(),
        headers: resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: Vec::new(),
    }
}

/// The CIDs of a CAR body, each block checked against its CID.
fn car_cids(body: &[u8]) -> Vec<Cid> {
    let mut car = CarReader::new(body).expect("a CAR");
    let mut out = Vec::new();
    while let Some(b) = car.next_block().expect("a verified block") {
        out.push(*b.cid());
    }
    out
}

#[test]
fn files_directories_ranges_and_trustless_responses() {
    let repo = TestRepo::new();
    let site = repo.scratch("site");
    std::fs::create_dir_all(site.join("docs/deeper")).unwrap();
    std::fs::create_dir_all(site.join("app")).unwrap();
    let big = common::random_bytes(3 * 1024 * 1024 + 5, 81);
    std::fs::write(site.join("docs/big.bin"), &big).unwrap();
    std::fs::write(site.join("docs/readme.txt"), b"hello gateway\n").unwrap();
    std::fs::write(site.join("docs/a <b> & c.txt"), b"odd name").unwrap();
    std::fs::write(site.join("docs/deeper/x.json"), b"{\"x\":1}").unwrap();
    std::fs::write(site.join("app/index.html"), b"<!doctype html><h1>app</h1>").unwrap();
    std::fs::write(site.join("pic"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let root = repo.add(&site, &["-r"]);
    let (_d, banner) = Daemon::start(&repo, &[]);
    let gw = gateway_url(&banner);

    // A file: bytes, type, cache headers, roots along the path.
    let r = get(&format!("{gw}/ipfs/{root}/docs/readme.txt"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello gateway\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=29030400, immutable")
    );
    assert_eq!(
        r.header("x-ipfs-path"),
        Some(format!("/ipfs/{root}/docs/readme.txt").as_str())
    );
    let roots: Vec<&str> = r.header("x-ipfs-roots").unwrap().split(',').collect();
    assert_eq!(roots.len(), 3);
    assert_eq!(roots[0], root);
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", roots[2]));
    let r304 = get(
        &format!("{gw}/ipfs/{root}/docs/readme.txt"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r304.status, 304);
    assert!(r304.body.is_empty());
    let h = head(&format!("{gw}/ipfs/{root}/docs/big.bin"));
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length"),
        Some(big.len().to_string().as_str())
    );
    // Types from the first bytes when the name has no extension.
    assert_eq!(
        get(&format!("{gw}/ipfs/{root}/pic"), &[]).header("content-type"),
        Some("image/png")
    );

    // Ranges: a middle span, a suffix, and one past the end.
    let url = format!("{gw}/ipfs/{root}/docs/big.bin");
    let r = get(&url, &[("Range", "bytes=1000000-1000999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[1_000_000..1_001_000]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000000-1000999/{}", big.len()).as_str())
    );
    let r = get(&url, &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[big.len() - 10..]);
    let r = get(&url, &[("Range", "bytes=99999999-")]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", big.len()).as_str())
    );
    assert_eq!(get(&url, &[]).body, big);

    // Directories: a redirect to the slash form, index.html, a listing.
    let r = get(&format!("{gw}/ipfs/{root}/app"), &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("/ipfs/{root}/app/").as_str())
    );
    let r = get(&format!("{gw}/ipfs/{root}/app/"), &[]);
    assert_eq!(r.body, b"<!doctype html><h1>app</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(&format!("{gw}/ipfs/{root}/docs/"), &[]);
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("href=\"readme.txt\""), "{page}");
    assert!(page.contains("href=\"deeper/\""), "{page}");
    assert!(page.contains("a &lt;b&gt; &amp; c.txt"), "{page}");
    assert!(
        page.contains("href=\"a%20%3Cb%3E%20%26%20c.txt\""),
        "{page}"
    );
    assert!(page.contains("3.0 MiB"), "{page}");

    // Errors: unknown name, malformed CID, bad path segment, other methods.
    let r = get(&format!("{gw}/ipfs/{root}/docs/nope.txt"), &[]);
    assert_eq!(r.status, 404);
    assert_eq!(String::from_utf8_lossy(&r.body).lines().count(), 1);
    let r = get(&format!("{gw}/ipfs/not-a-cid/x"), &[]);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("not-a-cid"));
    assert_eq!(
        get(&format!("{gw}/ipfs/{root}/docs/%2E%2E/x"), &[]).status,
        400
    );
    let r = agent()
        .post(&format!("{gw}/ipfs/{root}"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Trustless: one raw block, verified by its CID.
    let file_cid = roots[2];
    let r = get(&format!("{gw}/ipfs/{file_cid}?format=raw"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.ipld.raw"));
    let cid = Cid::from_str(file_cid).unwrap();
    cairn::block::verify(&cid, &r.body).unwrap();
    let r2 = get(
        &format!("{gw}/ipfs/{file_cid}"),
        &[("Accept", "application/vnd.ipld.raw")],
    );
    assert_eq!(r2.body, r.body);
    // The probe trustless clients send.
    let r = get(
        &format!("{gw}/ipfs/bafkqaaa"),
        &[("Accept", "application/vnd.ipld.raw")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // CARs: path blocks first, then the scope; every block verified.
    let car = |q: &str| {
        let r = get(&format!("{gw}/ipfs/{root}/docs/big.bin?format=car{q}"), &[]);
        assert_eq!(r.status, 200, "{q}");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/vnd.ipld.car; version=1"));
        car_cids(&r.body)
    };
    let all = car("");
    let block = car("&dag-scope=block");
    let entity = car("&dag-scope=entity");
    let first_bytes = car("&entity-bytes=0:10");
    assert_eq!(block.len(), 3, "root dir, docs dir, the file's root");
    assert_eq!(block[0].to_string(), root);
    assert_eq!(all, entity, "a file's entity is its whole DAG");
    assert_eq!(
        all.len(),
        3 + 4,
        "the path, the file's root, its four 1 MiB leaves"
    );
    assert_eq!(first_bytes.len(), 4, "path, file root, the first leaf");
    let tail = car("&entity-bytes=-1:*");
    assert_eq!(tail.len(), 4);
    assert_ne!(tail[3], first_bytes[3]);
    // A directory's entity is its block; all is the subtree.
    let r = get(
        &format!("{gw}/ipfs/{root}/docs?dag-scope=entity"),
        &[("Accept", "application/vnd.ipld.car")],
    );
    assert_eq!(car_cids(&r.body).len(), 2);
    let r = get(&format!("{gw}/ipfs/{root}?format=car&dag-scope=all"), &[]);
    let everything = car_cids(&r.body);
    assert!(everything.len() > all.len());

    // Subdomain requests: the same content, from its own origin.
    let v1 = get(&format!("{gw}/ipfs/{root}/docs/readme.txt"), &[])
        .header("x-ipfs-roots")
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let port = gw.rsplit(':').next().unwrap();
    let host = format!("{v1}.ipfs.localhost:{port}");
    let r = get(&format!("{gw}/docs/readme.txt"), &[("Host", &host)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello gateway\n");
    let r = get(&format!("{gw}/docs/"), &[("Host", &host)]);
    let page = String::from_utf8(r.body).unwrap();
    assert!(
        page.contains(".ipfs.localhost:"),
        "CID links stay in subdomain form"
    );
}

#[test]
fn content_from_the_network_timeouts_and_subdomain_redirects() {
    let a = TestRepo::new();
    let data = common::random_bytes(2 * 1024 * 1024, 82);
    let f = a.scratch("f.bin");
    std::fs::write(&f, &data).unwrap();
    let cid = a.add(&f, &[]);
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr = common::swarm_addr(&banner);
    let b = TestRepo::new();
    b.set_config("gateway", "timeout", "\"3s\"");
    b.set_config("gateway", "subdomain_redirect", "true");
    b.set_config("net", "fetch_timeout", "\"3s\"");
    let (_db, banner) = Daemon::start(&b, &["--bootstrap", &addr]);
    let gw = gateway_url(&banner);

    // Not local on b: fetched from a, streamed.
    let r = get(&format!("{gw}/ipfs/{cid}"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == data);
    // Nobody has this one: 504 once the first byte is overdue.
    let missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let start = std::time::Instant::now();
    let r = get(&format!("{gw}/ipfs/{missing}"), &[]);
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // On localhost, path requests move to the subdomain form.
    let port = gw.rsplit(':').next().unwrap();
    let r = get(
        &format!("{gw}/ipfs/{cid}/?x=1"),
        &[("Host", &format!("localhost:{port}"))],
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{cid}.ipfs.localhost:{port}/?x=1").as_str())
    );
}

/// `/metrics` on the API port: libp2p's metrics and cairn's, including the
/// gateway's requests by status and Bitswap traffic.
#[test]
fn metrics_count_requests_and_traffic() {
    let a = TestRepo::new();
    let f = a.scratch("m.bin");
    std::fs::write(&f, common::random_bytes(600_000, 83)).unwrap();
    let cid = a.add(&f, &[]);
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr = common::swarm_addr(&banner);
    let b = TestRepo::new();
    let (_db, banner) = Daemon::start(&b, &["--bootstrap", &addr]);
    let gw = gateway_url(&banner);
    assert_eq!(get(&format!("{gw}/ipfs/{cid}"), &[]).status, 200);
    assert_eq!(get(&format!("{gw}/ipfs/{cid}/nope"), &[]).status, 404);
    let api = common::api_url(&banner);
    let text = String::from_utf8(get(&format!("{api}/metrics"), &[]).body).unwrap();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in metrics:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("cairn_http_requests_total{surface=\"gateway\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        value("cairn_http_requests_total{surface=\"gateway\",status=\"404\"}"),
        1.0
    );
    assert!(value("cairn_bitswap_received_bytes_total") >= 600_000.0);
    assert!(value("cairn_fetch_block_seconds_count") >= 1.0);
    assert!(text.contains("libp2p_bandwidth_bytes_total"), "{text}");
    assert!(text.contains("cairn_provide_announced_total"), "{text}");
}

/// Each read route has its own latency histogram on `/metrics`
/// (`cairn_http_route_seconds{surface, route}`): a gateway path, raw, CAR
/// and subdomain request, an RPC `cat` and `ls`, and S3 GetObject,
/// HeadObject and ListObjectsV2 each show up once in their route's, and
/// nothing else does (the label is the route's name, never the URL).
#[test]
fn each_read_route_has_its_latency_histogram() {
    let repo = TestRepo::new();
    let site = repo.scratch("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("a.txt"), b"route me").unwrap();
    let dir = repo.add(&site, &["-r", "--cid-version", "1"]);
    let (_d, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let (gw, api) = (gateway_url(&banner), common::api_url(&banner));
    let port = gw.rsplit(':').next().unwrap();
    let sub = format!("{dir}.ipfs.localhost:{port}");
    let car = "application/vnd.ipld.car";
    for (path, headers, status) in [
        (format!("/ipfs/{dir}/a.txt"), vec![], 200),
        (format!("/ipfs/{dir}?format=raw"), vec![], 200),
        (format!("/ipfs/{dir}/a.txt"), vec![("Accept", car)], 200),
        ("/a.txt".to_string(), vec![("Host", sub.as_str())], 200),
        ("/favicon.ico".to_string(), vec![], 404),
    ] {
        let r = get(&format!("{gw}{path}"), &headers);
        assert_eq!(r.status, status, "{path} {headers:?}");
    }
    for call in [format!("cat?arg={dir}/a.txt"), format!("ls?arg={dir}")] {
        let r = agent().post(format!("{api}/api/v0/{call}")).send_empty();
        assert_eq!(r.expect("api").status().as_u16(), 200, "{call}");
    }
    repo.ok(&["s3", "bucket", "create", "routes"]);
    let (key, secret) = common::s3::create_key(&repo, &[]);
    let signer = common::s3::Signer::new(&key, &secret);
    let endpoint = common::s3::s3_url(&banner);
    let s3 = |method: &str, path: &str, query: &[(&str, &str)], body: &[u8]| {
        let (url, headers) = signer.sign(method, &endpoint, path, query);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req.body(body.to_vec()).expect("request");
        agent().run(req).expect("s3").status().as_u16()
    };
    assert_eq!(s3("PUT", "/routes/k.txt", &[], b"object bytes"), 200);
    assert_eq!(s3("GET", "/routes/k.txt", &[], b""), 200);
    assert_eq!(s3("HEAD", "/routes/k.txt", &[], b""), 200);
    assert_eq!(s3("GET", "/routes", &[("list-type", "2")], b""), 200);

    let text = String::from_utf8(get(&format!("{api}/metrics"), &[]).body).unwrap();
    let count = |surface: &str, route: &str| -> Option<f64> {
        let name =
            format!("cairn_http_route_seconds_count{{surface=\"{surface}\",route=\"{route}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str())?.parse().ok())
    };
    for (surface, route) in [
        ("gateway", "ipfs_path"),
        ("gateway", "trustless_raw"),
        ("gateway", "trustless_car"),
        ("gateway", "subdomain"),
        ("api", "cat"),
        ("api", "ls"),
        ("s3", "GetObject"),
        ("s3", "HeadObject"),
        ("s3", "ListObjectsV2"),
    ] {
        assert_eq!(
            count(surface, route),
            Some(1.0),
            "{surface} {route}:\n{text}"
        );
    }
    // A request on no read route (the favicon, the S3 PUT, /metrics
    // itself) has no series; only the routes' own names are labels.
    let routes: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("cairn_http_route_seconds_count"))
        .collect();
    assert_eq!(routes.len(), 9, "{routes:#?}");
    assert!(text.contains("cairn_http_route_seconds_bucket{"), "{text}");
}

/// What RFC 9110 lets a server ignore is ignored: a malformed `Range`,
/// several ranges and a stale `If-Range` give the whole file with 200 and
/// no `Content-Range`; HEAD answers the type GET answers.
#[test]
fn heads_ranges_and_if_range_as_rfc_9110() {
    let repo = TestRepo::new();
    let site = repo.scratch("site");
    std::fs::create_dir_all(site.join("dir")).unwrap();
    let body: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(site.join("data.bin"), &body).unwrap();
    std::fs::write(site.join("pic"), b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    std::fs::write(site.join("notes"), b"plain words, no extension\n").unwrap();
    std::fs::write(site.join("dir/page.html"), b"<p>hi</p>").unwrap();
    let root = repo.add(&site, &["-r"]);
    let (mut d, banner) = Daemon::start(&repo, &[]);
    let gw = gateway_url(&banner);

    for path in [
        "pic",
        "notes",
        "data.bin",
        "dir/",
        "dir/page.html",
        "?format=raw",
    ] {
        let url = format!("{gw}/ipfs/{root}/{path}");
        let (g, h) = (get(&url, &[]), head(&url));
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(h.status, 200, "{path}");
        assert_eq!(h.header("content-type"), g.header("content-type"), "{path}");
    }
    assert_eq!(
        head(&format!("{gw}/ipfs/{root}/pic")).header("content-type"),
        Some("image/png")
    );

    let url = format!("{gw}/ipfs/{root}/data.bin");
    let whole = |r: &Got, why: &str| {
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(r.body, body, "{why}");
        assert_eq!(r.header("content-length"), Some("2000"), "{why}");
        assert_eq!(r.header("content-range"), None, "{why}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{why}");
    };
    for bad in [
        "bytes=abc",
        "bytes=9-0",
        "bytes=",
        "items=0-9",
        "bytes=0x1-2",
    ] {
        whole(&get(&url, &[("Range", bad)]), bad);
    }
    whole(&get(&url, &[("Range", "bytes=0-1,4-5")]), "two ranges");
    assert_eq!(get(&url, &[("Range", "bytes=5000-")]).status, 416);

    let etag = get(&url, &[]).header("etag").unwrap().to_string();
    let r = get(&url, &[("Range", "bytes=10-19"), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/2000"));
    for stale in [
        "\"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\"",
        &format!("W/{etag}"),
        "Sun, 06 Nov 1994 08:49:37 GMT",
    ] {
        whole(
            &get(&url, &[("Range", "bytes=10-19"), ("If-Range", stale)]),
            stale,
        );
    }
    assert!(d.signal(libc::SIGTERM).success());
}

/// Flips one byte of `data`'s stored copy in the repo's segment files.
fn corrupt_on_disk(repo: &TestRepo, data: &[u8]) {
    let mut stack = vec![repo.path()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(at) = bytes.windows(data.len()).position(|w| w == data) {
                bytes[at + data.len() / 2] ^= 0x40;
                std::fs::write(&path, bytes).unwrap();
                return;
            }
        }
    }
    panic!("the block's bytes are in no file of the repo");
}

/// The memory tier (`[store] hot_cache`): a small file read again is
/// answered from memory, byte-identical, and counted on `/metrics`; a
/// copy that went bad on disk before its first read is refused and never
/// admitted, while one already in memory keeps being served as verified.
#[test]
fn small_files_are_served_from_the_memory_tier_and_only_when_verified() {
    let a = TestRepo::new();
    let good = common::random_bytes(1_120, 91);
    let bad = common::random_bytes(3_000, 92);
    // Three leaves under a root: answered from memory once all are held.
    let multi = common::random_bytes(700_000, 93);
    let (fg, fb, fm) = (
        a.scratch("good.bin"),
        a.scratch("bad.bin"),
        a.scratch("multi.bin"),
    );
    std::fs::write(&fg, &good).unwrap();
    std::fs::write(&fb, &bad).unwrap();
    std::fs::write(&fm, &multi).unwrap();
    let (good_cid, bad_cid) = (a.add(&fg, &[]), a.add(&fb, &[]));
    let multi_cid = a.add(&fm, &["--chunker", "size-262144"]);
    corrupt_on_disk(&a, &bad);
    // The bad copy is looked for on the network (there is none): not long.
    a.set_config("gateway", "timeout", "\"2s\"");
    let (_d, banner) = Daemon::start(&a, &[]);
    let gw = gateway_url(&banner);
    // The first answers are made in full, the later ones from memory and
    // a head kept from them: the same headers every time.
    let first = get(&format!("{gw}/ipfs/{good_cid}"), &[]);
    let mut kept: Vec<(String, String)> = first
        .headers
        .iter()
        .filter(|(k, _)| k != "date")
        .cloned()
        .collect();
    kept.sort();
    for name in [
        "etag",
        "content-type",
        "content-length",
        "x-ipfs-path",
        "cache-control",
    ] {
        assert!(first.header(name).is_some(), "no {name} in {kept:?}");
    }
    for _ in 0..5 {
        let got = get(&format!("{gw}/ipfs/{good_cid}"), &[]);
        assert_eq!((got.status, got.body.len()), (200, good.len()));
        assert!(got.body == good, "a cached answer differs from the file");
        let mut seen: Vec<(String, String)> = got
            .headers
            .iter()
            .filter(|(k, _)| k != "date")
            .cloned()
            .collect();
        seen.sort();
        assert_eq!(seen, kept, "a cached answer's headers differ");
        let part = get(
            &format!("{gw}/ipfs/{good_cid}"),
            &[("Range", "bytes=100-199")],
        );
        assert_eq!(part.status, 206);
        assert!(part.body == good[100..200]);
    }
    // HEAD from the kept head: the same headers, no body.
    let h = head(&format!("{gw}/ipfs/{good_cid}"));
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("1120"));
    for _ in 0..2 {
        assert_ne!(get(&format!("{gw}/ipfs/{bad_cid}"), &[]).status, 200);
    }
    for _ in 0..4 {
        let got = get(&format!("{gw}/ipfs/{multi_cid}"), &[]);
        assert_eq!((got.status, got.body.len()), (200, multi.len()));
        assert!(got.body == multi, "a file from memory differs");
        // A range across the first two leaves (262,144 bytes each).
        let part = get(
            &format!("{gw}/ipfs/{multi_cid}"),
            &[("Range", "bytes=262000-262999")],
        );
        assert_eq!(part.status, 206);
        assert!(part.body == multi[262_000..263_000]);
    }
    // Now the good copy goes bad on disk too: memory still holds the
    // verified bytes, and answers with them.
    corrupt_on_disk(&a, &good);
    let got = get(&format!("{gw}/ipfs/{good_cid}"), &[]);
    assert_eq!(got.status, 200);
    assert!(got.body == good);
    let api = common::api_url(&banner);
    let text = String::from_utf8(get(&format!("{api}/metrics"), &[]).body).unwrap();
    let value = |name: &str| -> f64 {
        common::metric(&api, name).unwrap_or_else(|| panic!("no {name} in metrics:\n{text}"))
    };
    // 12 reads of the good file, the first two from disk (a block is
    // admitted at its second read); 8 of the larger file, the last four
    // or more from memory.
    assert!(
        value("cairn_hot_cache_hits_total") >= 9.0 + 4.0 * 4.0,
        "{text}"
    );
    assert!(value("cairn_hot_cache_hit_bytes_total") >= 9.0 * 1_120.0 + 2.0 * 700_000.0);
    // The good block and the larger file's four are held; the bad one
    // never was.
    assert_eq!(value("cairn_hot_cache_blocks"), 5.0, "{text}");
    // Each answer is counted once, whether it came from a kept head
    // (before the router) or not: 200 for the good file's 7 GETs and its
    // HEAD and the larger file's 4; the route histogram also counts the
    // 9 ranges and the 2 failures.
    assert_eq!(
        value(r#"cairn_http_requests_total{surface="gateway",status="200"}"#),
        12.0,
        "{text}"
    );
    assert_eq!(
        value(r#"cairn_http_route_seconds_count{surface="gateway",route="ipfs_path"}"#),
        23.0,
        "{text}"
    );
}

/// Paths and listings are remembered: a path request `/ipfs/DIR/sub/f`
/// and RPC `cat` of it (whole, and with offset and length) answer the
/// same bytes every time, from memory once the file is held; a listing
/// read again (gateway page, RPC `ls`) is the same; the path and listing
/// caches count their hits on `/metrics`.
#[test]
fn resolved_paths_and_listings_are_remembered_and_answer_the_same() {
    let repo = TestRepo::new();
    let site = repo.scratch("site");
    std::fs::create_dir_all(site.join("sub/listed")).unwrap();
    let small = common::random_bytes(1_120, 95);
    let multi = common::random_bytes(300_000, 96);
    std::fs::write(site.join("sub/small.bin"), &small).unwrap();
    std::fs::write(site.join("sub/multi.bin"), &multi).unwrap();
    for i in 0..5 {
        std::fs::write(site.join(format!("sub/listed/f{i}.txt")), [b'a' + i]).unwrap();
    }
    let root = repo.add(&site, &["-r", "--chunker", "size-65536"]);
    let (_d, banner) = Daemon::start(&repo, &[]);
    let (gw, api) = (gateway_url(&banner), common::api_url(&banner));
    let cat = |path: &str, query: &str| -> Vec<u8> {
        let url = format!("{api}/api/v0/cat?arg={path}{query}");
        let resp = agent().post(url).send_empty().expect("cat");
        assert_eq!(resp.status().as_u16(), 200);
        resp.into_body().read_to_vec().expect("cat body")
    };
    let ls = |path: &str| -> serde_json::Value {
        let resp = agent()
            .post(format!("{api}/api/v0/ls?arg={path}"))
            .send_empty()
            .expect("ls");
        assert_eq!(resp.status().as_u16(), 200);
        serde_json::from_slice(&resp.into_body().read_to_vec().expect("ls body")).expect("json")
    };
    let (small_path, multi_path) = (
        format!("/ipfs/{root}/sub/small.bin"),
        format!("/ipfs/{root}/sub/multi.bin"),
    );
    let (first_listing, first_ls) = (
        get(&format!("{gw}/ipfs/{root}/sub/listed/"), &[]),
        ls(&format!("/ipfs/{root}/sub/listed")),
    );
    assert_eq!(first_listing.status, 200);
    assert_eq!(first_ls["Objects"][0]["Links"].as_array().unwrap().len(), 5);
    for _ in 0..4 {
        let got = get(&format!("{gw}{small_path}"), &[]);
        assert_eq!(got.status, 200);
        assert!(got.body == small, "a path answer differs from the file");
        assert_eq!(
            got.header("x-ipfs-roots").map(|r| r.split(',').count()),
            Some(3)
        );
        let part = get(
            &format!("{gw}{multi_path}"),
            &[("Range", "bytes=65000-66999")],
        );
        assert_eq!(part.status, 206);
        assert!(part.body == multi[65_000..67_000]);
        assert!(cat(&small_path, "") == small, "RPC cat differs");
        assert!(cat(&multi_path, "") == multi, "RPC cat differs");
        // Within one leaf, across two (65,536 bytes each), past the end.
        assert!(cat(&multi_path, "&offset=100&length=50") == multi[100..150]);
        assert!(cat(&multi_path, "&offset=65000&length=2000") == multi[65_000..67_000]);
        assert!(cat(&multi_path, "&offset=299990&length=100") == multi[299_990..]);
        assert!(cat(&multi_path, "&offset=400000").is_empty());
        let page = get(&format!("{gw}/ipfs/{root}/sub/listed/"), &[]);
        assert!(page.body == first_listing.body, "a listing page differs");
        assert_eq!(ls(&format!("/ipfs/{root}/sub/listed")), first_ls);
    }
    let text = String::from_utf8(get(&format!("{api}/metrics"), &[]).body).unwrap();
    let value = |name: &str| -> f64 {
        common::metric(&api, name).unwrap_or_else(|| panic!("no {name} in metrics:\n{text}"))
    };
    // Four rounds of eight path lookups, each after the first from memory.
    assert!(value("cairn_path_cache_hits_total") >= 3.0 * 8.0, "{text}");
    assert!(value("cairn_path_cache_entries") >= 3.0, "{text}");
    // The listing is read once (page or ls), then remembered.
    assert!(value("cairn_listing_cache_misses_total") <= 2.0, "{text}");
    assert!(value("cairn_listing_cache_hits_total") >= 8.0, "{text}");
    // The files were answered from memory once held.
    assert!(value("cairn_hot_cache_hits_total") >= 10.0, "{text}");
}
