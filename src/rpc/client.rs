//! The CLI's side of the RPC API: finds a running daemon through the
//! repo's `api` file and calls it; uploads files as Kubo's clients do
//! (`multipart/form-data`, one part per file or directory, names
//! URL-escaped, directories as `application/x-directory`, symlinks as
//! `application/symlink`).

use super::types::{ErrorBody, VersionResponse};
use super::{api_file, parse_api_addr};
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error (its message).
    #[error("{0}")]
    Api(String),
    /// The request could not be made or its answer not read.
    #[error("talking to the daemon at {addr}: {source}")]
    Transport {
        /// The daemon's address.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// An answer (or a line of it) is not the JSON the call expects.
    #[error("the daemon's answer to {call} is not what was expected: {source}")]
    Decode {
        /// The API call (`pin/add`).
        call: String,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSON-lines answer is longer than any answer should be.
    #[error("a line of the daemon's answer to {call} is over {limit_bytes} bytes")]
    LineTooLong {
        /// The API call.
        call: String,
        /// The most a line may hold.
        limit_bytes: usize,
    },
    /// A JSON-lines answer ended before the line with its result.
    #[error("the daemon's answer to {call} ended before its result")]
    NoResult {
        /// The API call.
        call: String,
    },
    /// Writing what the daemon sent failed (e.g. standard output closed).
    #[error("writing the answer: {0}")]
    Output(#[source] std::io::Error),
    /// The caller's line handler refused a line.
    #[error("{0}")]
    Handler(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A connection to a running daemon's API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer ...` when set.
    token: Option<String>,
}

/// One part of an upload, named by its path in the upload.
pub enum UploadPart {
    /// A directory (its entries follow as parts named under it).
    Directory {
        /// Its path in the upload.
        name: String,
    },
    /// A file read from disk as the part is sent.
    File {
        /// Its path in the upload.
        name: String,
        /// Where it is read from.
        path: PathBuf,
    },
    /// Bytes from standard input.
    Stdin {
        /// Its path in the upload.
        name: String,
    },
    /// A symbolic link.
    Symlink {
        /// Its path in the upload.
        name: String,
        /// What it points to.
        target: String,
    },
}

/// Whether a process holds the lock file at `path` (when that cannot be
/// told, the `api` file is trusted, as before locks were checked).
fn lock_held(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a JSON answer read whole may hold.
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// The most one line of a JSON-lines answer may hold (an `add` line is a
/// name and a CID; a `pin/add` line lists the roots of one call).
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

impl Client {
    /// The daemon serving `repo`, if its `api` file names one that answers;
    /// `token` authenticates (see `[api] tokens`).
    pub fn for_repo(repo: &Path, token: Option<String>) -> Option<Client> {
        // A daemon holds the store's lock while it runs. With the lock free
        // the `api` file is stale (its daemon was killed), and whatever
        // answers at that address now is another node's daemon.
        if !lock_held(&repo.join(crate::store::DiskStore::LOCK_FILE)) {
            return None;
        }
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
        client
            .call_json::<VersionResponse>("version", &[])
            .ok()
            .map(|_| client)
    }

    /// Another connection to the same daemon (e.g. for a progress thread).
    pub fn duplicate(&self) -> Client {
        Client {
            base: self.base.clone(),
            agent: self.agent.clone(),
            token: self.token.clone(),
        }
    }

    fn transport(&self, source: impl Into<std::io::Error>) -> ClientError {
        ClientError::Transport {
            addr: self.base.clone(),
            source: source.into(),
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
        .map_err(|e| self.transport(e.into_io()))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if status.is_success() {
            return Ok(body);
        }
        let text = body
            .read_to_string()
            .map_err(|e| self.transport(e.into_io()))?;
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|e| e.message)
            .unwrap_or(text);
        Err(ClientError::Api(message))
    }

    /// `POST /api/v0/{path}?{args}` for its effect; the answer is dropped.
    pub fn call(&self, path: &str, args: &[(&str, &str)]) -> Result<(), ClientError> {
        let mut body = self.request(path, args, None)?;
        std::io::copy(
            &mut body.with_config().limit(MAX_ANSWER_BYTES).reader(),
            &mut std::io::sink(),
        )
        .map_err(|e| self.transport(e))?;
        Ok(())
    }

    /// `POST /api/v0/{path}?{args}`, the answer read as a `T`.
    pub fn call_json<T: DeserializeOwned>(
        &self,
        path: &str,
        args: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let mut body = self.request(path, args, None)?;
        let text = body
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| self.transport(e.into_io()))?;
        serde_json::from_str(&text).map_err(|source| ClientError::Decode {
            call: path.to_string(),
            source,
        })
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
                self.transport(std::io::Error::new(
                    e.kind(),
                    format!(
                        "the answer stopped after {total} bytes ({e}); the daemon's log \
                         (`--log-level warn` or more) says why"
                    ),
                ))
            })?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n]).map_err(ClientError::Output)?;
            total += n as u64;
            progress(total);
        }
    }

    /// A streaming answer as a reader (e.g. a tar of `get`).
    pub fn call_reader(&self, path: &str, args: &[(&str, &str)]) -> Result<impl Read, ClientError> {
        let body = self.request(path, args, None)?;
        Ok(body.into_with_config().limit(u64::MAX).reader())
    }

    /// [`Client::call_lines`] for the answer's last line, which holds its
    /// result (an answer with none is [`ClientError::NoResult`]).
    pub fn call_last<T: DeserializeOwned>(
        &self,
        path: &str,
        args: &[(&str, &str)],
        upload: Option<Vec<UploadPart>>,
    ) -> Result<T, ClientError> {
        let mut last = None;
        self.call_lines(path, args, upload, &mut |v: T| {
            last = Some(v);
            Ok(())
        })?;
        last.ok_or_else(|| ClientError::NoResult {
            call: path.to_string(),
        })
    }

    /// Calls `path` (uploading `upload` if given) and hands each JSON line
    /// of the answer, read as a `T`, to `on_line`; an error object in the
    /// stream (Kubo's `{"Message", "Type": "error"}`) ends it as an error,
    /// and so does a line over [`MAX_LINE_BYTES`].
    pub fn call_lines<T: DeserializeOwned>(
        &self,
        path: &str,
        args: &[(&str, &str)],
        upload: Option<Vec<UploadPart>>,
        on_line: &mut dyn FnMut(T) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let body = self.request(path, args, upload)?;
        let reader = body.into_with_config().limit(u64::MAX).reader();
        let mut lines = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut lines)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| self.transport(e))?;
            if n == 0 {
                return Ok(());
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(ClientError::LineTooLong {
                    call: path.to_string(),
                    limit_bytes: MAX_LINE_BYTES,
                });
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            on_line(decode_line(path, &line)?)?;
        }
    }
}

/// One line of a JSON-lines answer: an error line becomes
/// [`ClientError::Api`], anything else must read as a `T`.
fn decode_line<T: DeserializeOwned>(call: &str, line: &[u8]) -> Result<T, ClientError> {
    let decode = |source| ClientError::Decode {
        call: call.to_string(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(line).map_err(decode)?;
    if value.get("Type").and_then(|t| t.as_str()) == Some(ErrorBody::TYPE) {
        let error = ErrorBody::deserialize(&value).map_err(decode)?;
        return Err(ClientError::Api(error.message));
    }
    T::deserialize(&value).map_err(decode)
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
