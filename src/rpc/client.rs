//! The CLI's side of the RPC API: finds a running daemon through the
//! repo's `api` file and calls it.

use super::{api_file, parse_api_addr};
use std::path::Path;
use std::time::Duration;

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error (its message).
    #[error("{0}")]
    Api(String),
    #[error("talking to the daemon at {addr}: {reason}")]
    Transport { addr: String, reason: String },
}

/// A connection to a running daemon's API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// The daemon serving `repo`, if its `api` file names one that answers.
    pub fn for_repo(repo: &Path) -> Option<Client> {
        let text = std::fs::read_to_string(api_file(repo)).ok()?;
        let addr = parse_api_addr(&text)?;
        // Only loopback: the API has no authentication yet.
        if !addr.ip().is_loopback() {
            return None;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        let client = Client {
            base: format!("http://{addr}"),
            agent,
        };
        // A stale file from a crashed daemon: nobody answers.
        client.call("version", &[]).ok().map(|_| client)
    }

    /// `POST /api/v0/{path}?{args}`, copying the body to `out` as it comes.
    pub fn call_to(
        &self,
        path: &str,
        args: &[(&str, &str)],
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ClientError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let mut req = self.agent.post(&url);
        for (k, v) in args {
            req = req.query(*k, *v);
        }
        let transport = |reason: String| ClientError::Transport {
            addr: self.base.clone(),
            reason,
        };
        let resp = req.send_empty().map_err(|e| transport(e.to_string()))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let text = body
                .read_to_string()
                .map_err(|e| transport(e.to_string()))?;
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["Message"].as_str().map(String::from))
                .unwrap_or(text);
            return Err(ClientError::Api(message));
        }
        let mut reader = body.with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, out).map_err(|e| transport(e.to_string()))
    }

    /// `POST /api/v0/{path}?{args}`; returns the body text.
    pub fn call(&self, path: &str, args: &[(&str, &str)]) -> Result<String, ClientError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let mut req = self.agent.post(&url);
        for (k, v) in args {
            req = req.query(*k, *v);
        }
        let transport = |e: ureq::Error| ClientError::Transport {
            addr: self.base.clone(),
            reason: e.to_string(),
        };
        let mut resp = req.send_empty().map_err(transport)?;
        let status = resp.status();
        let body = resp.body_mut().read_to_string().map_err(transport)?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["Message"].as_str().map(String::from))
            .unwrap_or(body);
        Err(ClientError::Api(message))
    }
}
