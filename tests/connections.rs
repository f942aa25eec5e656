//! No client can hold the API or the gateway by holding connections:
//! partial headers, idle keep-alives, stalled request bodies and responses
//! the client stopped reading are closed after their timeouts, connections are capped per client and in all
//! (below the process's descriptor limit), and a slowloris leaves real
//! requests fast.

mod common;

use common::{api_url, gateway_url, Daemon, TestRepo};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `host:port` of a `http://host:port` URL.
fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("an address")
}

/// A connection to `to` from the loopback address `127.0.0.{from}`, so
/// that each test client counts as its own IP address.
fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let tcp = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::from(([127, 0, 0, from], 0)))?;
        s.connect(to).await
    })?;
    let tcp = tcp.into_std()?;
    tcp.set_nonblocking(false)?;
    Ok(tcp)
}

/// Waits up to `limit` for the server to close `s` (reading and dropping
/// whatever it sends first); returns how long that took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        let left = limit
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).expect("set a read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Sends a keep-alive `POST path` on `s` and reads its response whole;
/// returns the status.
fn keep_alive_post(s: &mut TcpStream, host: SocketAddr, path: &str) -> u16 {
    let req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send a request");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).expect("the response body");
    head[9..12].parse().expect("a status")
}

/// One request on a fresh connection from 127.0.0.1: its status and how
/// long the whole exchange took.
fn timed_request(method: &str, url: &str) -> (u16, Duration) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let start = Instant::now();
    let status = match method {
        "POST" => agent.post(url).send_empty(),
        _ => agent.get(url).call(),
    }
    .map(|r| r.status().as_u16())
    .unwrap_or(0);
    (status, start.elapsed())
}

/// Sets every `[api.connections]` and `[gateway.connections]` timeout.
fn set_timeouts(repo: &TestRepo, header: &str, body: &str, idle: &str) {
    for section in ["api.connections", "gateway.connections"] {
        repo.set_config(section, "header_timeout", &format!("\"{header}\""));
        repo.set_config(section, "body_timeout", &format!("\"{body}\""));
        repo.set_config(section, "idle_timeout", &format!("\"{idle}\""));
    }
}

/// A silent connection and one sending a partial header are closed after
/// the header timeout; a keep-alive connection after the idle timeout; a
/// request declaring a 2 GB body and sending 1 KB after the body timeout.
#[test]
fn stalled_connections_are_closed_after_their_timeouts() {
    let repo = TestRepo::new();
    set_timeouts(&repo, "1s", "1s", "2s");
    let (_d, banner) = Daemon::start(&repo, &[]);
    let (api, gw) = (addr_of(&api_url(&banner)), addr_of(&gateway_url(&banner)));
    let limit = Duration::from_secs(5);
    for server in [api, gw] {
        let mut silent = TcpStream::connect(server).unwrap();
        let mut partial = TcpStream::connect(server).unwrap();
        partial
            .write_all(format!("POST /api/v0/version HTTP/1.1\r\nHost: {server}\r\n").as_bytes())
            .unwrap();
        let closed = closed_within(&mut silent, limit).expect("a silent connection is closed");
        assert!(
            closed >= Duration::from_millis(800),
            "{server}: closed after {closed:?}"
        );
        let closed = closed_within(&mut partial, limit).expect("a partial header is closed");
        assert!(
            closed < Duration::from_secs(2),
            "{server}: closed after {closed:?}"
        );
    }

    let mut idle = TcpStream::connect(api).unwrap();
    assert_eq!(keep_alive_post(&mut idle, api, "/api/v0/version"), 200);
    // Longer than the header timeout: the idle timeout applies.
    let closed = closed_within(&mut idle, limit).expect("an idle connection is closed");
    assert!(
        closed >= Duration::from_millis(1800),
        "idle closed after {closed:?}"
    );

    // A trickle of header bytes does not restart the header clock.
    let mut trickle = TcpStream::connect(api).unwrap();
    let start = Instant::now();
    let mut open = true;
    for b in b"POST /api/v0/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaa" {
        if trickle.write_all(&[*b]).is_err() {
            open = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!open || closed_within(&mut trickle, limit).is_some());
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "a trickle was kept"
    );

    for (server, path) in [(api, "/api/v0/add"), (gw, "/ipfs/bafkqaaa")] {
        let mut upload = TcpStream::connect(server).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {server}\r\nContent-Length: 2000000000\r\n\
             Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        );
        // The gateway answers without reading the body and closes at once,
        // so a write may find the connection closed already.
        let _ = upload.write_all(head.as_bytes());
        let _ = upload.write_all(b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
        let _ = upload.write_all(&[b'x'; 1024]);
        let closed = closed_within(&mut upload, limit).expect("a stalled body is closed");
        assert!(
            closed < Duration::from_secs(3),
            "{path}: closed after {closed:?}"
        );
    }
}

/// A client that stops reading a large response (here a 32 MiB file, far
/// more than the socket buffers hold) is closed after the send timeout,
/// from the API (`cat`) and the gateway; a client that reads gets it all.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    const MIB: u64 = 32;
    let repo = TestRepo::new();
    let f = repo.scratch("big.bin");
    common::write_random_file(&f, MIB, 31);
    let cid = repo.add(&f, &[]);
    for section in ["api.connections", "gateway.connections"] {
        repo.set_config(section, "send_timeout", "\"2s\"");
    }
    let (_d, banner) = Daemon::start(&repo, &[]);
    let (api_base, gw_base) = (api_url(&banner), gateway_url(&banner));
    let requests = [
        (addr_of(&api_base), format!("POST /api/v0/cat?arg={cid}")),
        (addr_of(&gw_base), format!("GET /ipfs/{cid}")),
    ];
    for (server, line) in &requests {
        let mut s = TcpStream::connect(server).unwrap();
        let req = format!("{line} HTTP/1.1\r\nHost: {server}\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        // The client stalls: reads nothing for twice the send timeout.
        std::thread::sleep(Duration::from_secs(4));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let ended = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got += n as u64,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Err(_) => break true,
            }
        };
        eprintln!("{line}: {got} bytes, then closed: {ended}");
        assert!(ended, "{line}: the stalled connection was kept open");
        assert!(got < MIB << 20, "{line}: the whole response came");
    }
    // Clients that read get it whole.
    let full = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        r.expect("an answer")
            .into_body()
            .with_config()
            .limit(MIB << 21)
            .read_to_vec()
            .expect("the whole file")
            .len() as u64
    };
    let api_read = full(ureq::post(&format!("{api_base}/api/v0/cat?arg={cid}")).send_empty());
    assert_eq!(api_read, MIB << 20, "RPC cat");
    let gw_read = full(ureq::get(&format!("{gw_base}/ipfs/{cid}")).call());
    assert_eq!(gw_read, MIB << 20, "gateway");
}

/// 500 connections trickling partial headers (one client, as a slowloris
/// is) leave the API and the gateway answering a real request in < 100 ms.
#[test]
fn a_slowloris_leaves_the_api_answering() {
    let repo = TestRepo::new();
    let (_d, banner) = Daemon::start(&repo, &[]);
    let (api_base, gw_base) = (api_url(&banner), gateway_url(&banner));
    let (api, gw) = (addr_of(&api_base), addr_of(&gw_base));
    let mut attackers: Vec<TcpStream> = (0..500)
        .filter_map(|i| connect_from(2, if i % 2 == 0 { api } else { gw }).ok())
        .collect();
    assert!(attackers.len() > 400, "only {} connected", attackers.len());
    let line = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ";
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        // Each attacker sends its next byte (those closed are skipped).
        let byte = line.get(round).copied().unwrap_or(b'a');
        for a in &mut attackers {
            let _ = a.write_all(&[byte]);
        }
        let (status, took) = timed_request("POST", &format!("{api_base}/api/v0/version"));
        assert_eq!(status, 200, "round {round}");
        worst = worst.max(took);
        let (status, took) = timed_request("GET", &format!("{gw_base}/ipfs/bafkqaaa"));
        assert_eq!(status, 200, "gateway, round {round}");
        worst = worst.max(took);
    }
    println!("slowest real request during the slowloris: {worst:?}");
    assert!(worst < Duration::from_millis(100), "took {worst:?}");
}

/// With the descriptor limit at 200, 260 idle connections to each server
/// (from ten addresses) leave both answering: the caps keep descriptors in
/// hand, and idle connections make room for new ones.
#[test]
fn idle_connections_cannot_exhaust_descriptors() {
    use std::os::unix::process::CommandExt as _;
    let repo = TestRepo::new();
    let mut cmd = repo.cmd(&Daemon::loopback_args(&[]));
    // SAFETY: setrlimit is async-signal-safe; it touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (_d, banner) = Daemon::launch(cmd);
    let (api_base, gw_base) = (api_url(&banner), gateway_url(&banner));
    let (api, gw) = (addr_of(&api_base), addr_of(&gw_base));
    let mut idle = Vec::new();
    for i in 0..260u16 {
        for server in [api, gw] {
            if let Ok(s) = connect_from(2 + (i % 10) as u8, server) {
                idle.push(s);
            }
        }
    }
    assert!(idle.len() >= 500, "only {} connected", idle.len());
    for _ in 0..5 {
        let (status, took) = timed_request("POST", &format!("{api_base}/api/v0/version"));
        assert_eq!(status, 200, "the API answers");
        assert!(took < Duration::from_secs(1), "API took {took:?}");
        let (status, took) = timed_request("GET", &format!("{gw_base}/ipfs/bafkqaaa"));
        assert_eq!(status, 200, "the gateway answers");
        assert!(took < Duration::from_secs(1), "gateway took {took:?}");
    }
}
