//! The RPC API: a subset of Kubo's `POST /api/v0/...`, served by the daemon
//! on 127.0.0.1; the control path the CLI uses while a daemon runs. The
//! bodies are [`types`], shared by the [`server`] and the [`client`];
//! [`api`] puts one interface in front of a local node and the client.
//!
//! The daemon writes its address to `REPO/api` as a multiaddr
//! (`/ip4/127.0.0.1/tcp/5001`, as Kubo does) and removes it on exit; the
//! CLI reads it to find the daemon. Errors use Kubo's JSON shape
//! `{"Message", "Code", "Type": "error"}` with status 500 (400 for bad
//! arguments).

pub mod api;
pub mod client;
pub mod guard;
pub mod server;
pub mod types;

use std::path::{Path, PathBuf};

/// File in the repo naming the running daemon's API address.
pub fn api_file(repo: &Path) -> PathBuf {
    repo.join("api")
}

/// Turns `/ip4/A/tcp/P` (or `A:P`) into a socket address.
pub fn parse_api_addr(text: &str) -> Option<std::net::SocketAddr> {
    let t = text.trim();
    if let Ok(a) = t.parse() {
        return Some(a);
    }
    let parts: Vec<&str> = t.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port] | ["", "ip6", ip, "tcp", port] => {
            let ip: std::net::IpAddr = ip.parse().ok()?;
            Some(std::net::SocketAddr::new(ip, port.parse().ok()?))
        }
        _ => None,
    }
}

/// The multiaddr form of a socket address.
pub fn to_multiaddr(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        std::net::SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_addresses_round_trip() {
        let a = parse_api_addr("/ip4/127.0.0.1/tcp/5001").unwrap();
        assert_eq!(a.to_string(), "127.0.0.1:5001");
        assert_eq!(to_multiaddr(a), "/ip4/127.0.0.1/tcp/5001");
        assert_eq!(
            parse_api_addr("127.0.0.1:9"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(parse_api_addr("/dns/x/tcp/1"), None);
    }
}
