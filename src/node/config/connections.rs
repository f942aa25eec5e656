//! [`ConnectionSettings`]: how long an HTTP client may take and how many
//! connections it may hold, for the API (`[api.connections]`) and the
//! gateway (`[gateway.connections]`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Timeouts and caps of one HTTP server's connections. The timeouts follow
/// nginx's defaults (`client_header_timeout`, `client_body_timeout`,
/// `keepalive_timeout`, `send_timeout`); a connection that exceeds one is
/// closed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// A request's headers must arrive whole within this, counted from the
    /// connection's start or the request's first byte.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest wait for the next part of a request body (the body may take
    /// longer in all, as long as it keeps coming).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How long a connection may wait for its next request after a response.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest wait for a client to take the next part of a response (one
    /// that stops reading is closed, ending the work done for it).
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Most open connections to this server; 0 derives it from the
    /// process's file-descriptor limit (leaving room for the store and the
    /// swarm). At the cap, a new connection replaces the one idle longest,
    /// or is refused when none is idle.
    pub max_connections: usize,
    /// Most open connections from one IP address; past it, the address's
    /// connection idle longest is closed, or the new one refused.
    pub max_connections_per_client: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_connections: 0,
            max_connections_per_client: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_states_the_defaults() {
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("```toml\n[api.connections]")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README shows [api.connections]");
        let config: crate::node::Config =
            toml::from_str(&format!("[api.connections]{block}")).expect("README's table loads");
        assert_eq!(config.api.connections, ConnectionSettings::default());
    }
}
