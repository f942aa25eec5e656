//! The CLI's side of the RPC API: finds a running daemon through the
//! repo's `api` file and calls it; uploads files as Kubo's clients do
//! (`multipart/form-data`, one part per file or directory, names
//! URL-escaped, directories as `application/x-directory`, symlinks as
//! `application/symlink`).

use super::{api_file, parse_api_addr};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error (its message).
    #[error("{0}")]
    Api(String),
    #[error("talking to the daemon at {addr}: {reason}")]
    Transport { addr: String, reason: String },
    #[error("the daemon sent something unexpected: {0}")]
    Decode(String),
}

/// A connection to a running daemon's API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer ...` when set.
    token: Option<String>,
}

/// One part of an upload.
pub enum UploadPart {
    Directory {
        name: String,
    },
    File {
        name: String,
        path: PathBuf,
    },
    /// Bytes from standard input.
    Stdin {
        name: String,
    },
    Symlink {
        name: String,
        target: String,
    },
}

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// The daemon serving `repo`, if its `api` file names one that answers;
    /// `token` authenticates (see `[api] tokens`).
    pub fn for_repo(repo: &Path, token: Option<String>) -> Option<Client> {
        let text = std::fs::read_to_string(api_file(repo)).ok()?;
        let mut addr = parse_api_addr(&text)?;
        // A daemon listening on every interface is reached on loopback.
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        // No overall timeout: `cat` of a large file may stream for long.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let client = Client {
            base: format!("http://{addr}"),
            agent,
            token,
        };
        // A stale file from a crashed daemon: nobody answers.
        client.call("version", &[]).ok().map(|_| client)
    }

    /// Another connection to the same daemon (e.g. for a progress thread).
    pub fn duplicate(&self) -> Client {
        Client {
            base: self.base.clone(),
            agent: self.agent.clone(),
            token: self.token.clone(),
        }
    }

    fn transport(&self, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            addr: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    /// Sends the request; returns the body reader of a successful answer.
    fn request(
        &self,
        path: &str,
        args: &[(&str, &str)],
        upload: Option<Vec<UploadPart>>,
    ) -> Result<ureq::Body, ClientError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let mut req = self.agent.post(&url);
        for (k, v) in args {
            req = req.query(*k, *v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let resp = match upload {
            None => req.send_empty(),
            Some(parts) => {
                let body = MultipartBody::new(parts);
                let content_type = format!("multipart/form-data; boundary={}", body.boundary);
                req.header("Content-Type", &content_type)
                    .send(ureq::SendBody::from_owned_reader(body))
            }
        }
        .map_err(|e| self.transport(e))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if status.is_success() {
            return Ok(body);
        }
        let text = body.read_to_string().map_err(|e| self.transport(e))?;
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["Message"].as_str().map(String::from))
            .unwrap_or(text);
        Err(ClientError::Api(message))
    }

    /// `POST /api/v0/{path}?{args}`; returns the body text.
    pub fn call(&self, path: &str, args: &[(&str, &str)]) -> Result<String, ClientError> {
        let mut body = self.request(path, args, None)?;
        body.with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.transport(e))
    }

    /// Like [`call`](Self::call), parsing the answer as JSON.
    pub fn call_json(
        &self,
        path: &str,
        args: &[(&str, &str)],
    ) -> Result<serde_json::Value, ClientError> {
        let text = self.call(path, args)?;
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /api/v0/{path}?{args}`, copying the body to `out` as it comes;
    /// `progress` sees the byte count.
    pub fn call_to(
        &self,
        path: &str,
        args: &[(&str, &str)],
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, ClientError> {
        let mut body = self.request(path, args, None)?;
        let mut reader = body.with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                self.transport(format!(
                    "the answer stopped after {total} bytes ({e}); the daemon's log \
                     (`--log-level warn` or more) says why"
                ))
            })?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n])
                .map_err(|e| ClientError::Transport {
                    addr: "standard output".into(),
                    reason: e.to_string(),
                })?;
            total += n as u64;
            progress(total);
        }
    }

    /// A streaming answer as a reader (e.g. a tar of `get`).
    pub fn call_reader(&self, path: &str, args: &[(&str, &str)]) -> Result<impl Read, ClientError> {
        let body = self.request(path, args, None)?;
        Ok(body.into_with_config().limit(u64::MAX).reader())
    }

    /// Calls `path` (uploading `upload` if given) and hands each JSON line
    /// of the answer to `on_line`; an error object in the stream (Kubo's
    /// `{"Message", "Type": "error"}`) ends it as an error.
    pub fn call_lines(
        &self,
        path: &str,
        args: &[(&str, &str)],
        upload: Option<Vec<UploadPart>>,
        on_line: &mut dyn FnMut(serde_json::Value) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let body = self.request(path, args, upload)?;
        let reader = body.into_with_config().limit(u64::MAX).reader();
        let mut lines = std::io::BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut lines, &mut line)
                .map_err(|e| self.transport(e))?;
            if n == 0 {
                return Ok(());
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line.trim())
                .map_err(|e| ClientError::Decode(format!("{e}: {line:?}")))?;
            if v["Type"] == "error" {
                return Err(ClientError::Api(
                    v["Message"].as_str().unwrap_or("unknown error").to_string(),
                ));
            }
            on_line(v)?;
        }
    }
}

/// A multipart body produced as it is read: headers, then each file's bytes
/// straight from disk.
struct MultipartBody {
    boundary: String,
    parts: std::vec::IntoIter<UploadPart>,
    /// Bytes ready to hand out before the current part's content.
    pending: std::io::Cursor<Vec<u8>>,
    current: Option<Box<dyn Read + Send>>,
    finished: bool,
    first: bool,
}

impl MultipartBody {
    fn new(parts: Vec<UploadPart>) -> Self {
        let mut nonce = [0u8; 12];
        let _ = getrandom::fill(&mut nonce);
        let boundary: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        MultipartBody {
            boundary: format!("cairn-{boundary}"),
            parts: parts.into_iter(),
            pending: std::io::Cursor::new(Vec::new()),
            current: None,
            finished: false,
            first: true,
        }
    }

    /// Queues the next part's header (and small bodies); false at the end.
    fn next_part(&mut self) -> std::io::Result<bool> {
        let mut head = String::new();
        if !self.first {
            head.push_str("\r\n");
        }
        let Some(part) = self.parts.next() else {
            if self.finished {
                return Ok(false);
            }
            self.finished = true;
            head.push_str(&format!("--{}--\r\n", self.boundary));
            self.pending = std::io::Cursor::new(head.into_bytes());
            return Ok(true);
        };
        self.first = false;
        let escape = |name: &str| {
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let (name, content_type, body): (String, &str, Option<Box<dyn Read + Send>>) = match part {
            UploadPart::Directory { name } => (name, "application/x-directory", None),
            UploadPart::File { name, path } => {
                let f = std::fs::File::open(&path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                })?;
                (name, "application/octet-stream", Some(Box::new(f)))
            }
            UploadPart::Stdin { name } => (
                name,
                "application/octet-stream",
                Some(Box::new(std::io::stdin())),
            ),
            UploadPart::Symlink { name, target } => (
                name,
                "application/symlink",
                Some(Box::new(std::io::Cursor::new(target.into_bytes()))),
            ),
        };
        head.push_str(&format!(
            "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
            self.boundary,
            escape(&name)
        ));
        self.pending = std::io::Cursor::new(head.into_bytes());
        self.current = body;
        Ok(true)
    }
}

impl Read for MultipartBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.pending.read(out)?;
            if n > 0 {
                return Ok(n);
            }
            if let Some(body) = &mut self.current {
                let n = body.read(out)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            if !self.next_part()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_body_names_parts_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a b.txt");
        std::fs::write(&f, b"hello").unwrap();
        let mut body = MultipartBody::new(vec![
            UploadPart::Directory { name: "d".into() },
            UploadPart::File {
                name: "d/a b.txt".into(),
                path: f,
            },
        ]);
        let boundary = body.boundary.clone();
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("filename=\"d\"\r\nContent-Type: application/x-directory"));
        assert!(text.contains("filename=\"d%2Fa%20b%2Etxt\""));
        assert!(text.contains("\r\n\r\nhello\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
