//! Reading `multipart/form-data` uploads: the parts of an `add` (files,
//! directories and symlinks, named by URL-escaped paths), a small part read
//! whole, and a large part's bytes handed to a blocking reader as they come.

use super::{bad_request, ApiError};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use bytes::Bytes;
use tokio::sync::mpsc;

/// What is wrong with an upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body could not be read as multipart.
    #[error("reading the upload: {0}")]
    Read(#[from] MultipartError),
    /// A part names no file.
    #[error("a multipart part has no file name")]
    NoName,
    /// A part's (unescaped) name is not UTF-8.
    #[error("part name {0:?} is not UTF-8")]
    NameNotUtf8(String),
    /// A symlink part's target is not UTF-8 or over 4 KiB.
    #[error("{path}: symlink target is not valid")]
    SymlinkTarget {
        /// The symlink's path.
        path: String,
    },
    /// The body holds no part.
    #[error("the upload holds no file")]
    Empty,
    /// A part read whole is over its limit.
    #[error("block over the {limit}-byte limit")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> ApiError {
        bad_request(e)
    }
}

/// A file part's bytes, fed from the async request to a blocking reader
/// (the DAG builder, the CAR importer).
pub(super) struct PartReader {
    rx: mpsc::Receiver<Result<Bytes, MultipartError>>,
    current: Bytes,
}

impl PartReader {
    /// A reader and the sender [`feed`] fills it through.
    pub(super) fn new() -> (mpsc::Sender<Result<Bytes, MultipartError>>, PartReader) {
        let (tx, rx) = mpsc::channel(16);
        let reader = PartReader {
            rx,
            current: Bytes::new(),
        };
        (tx, reader)
    }
}

impl std::io::Read for PartReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(UploadError::Read(e))),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Sends `field`'s bytes to a [`PartReader`] until the part ends, the
/// reader is gone, or reading fails (the reader then sees the error).
pub(super) async fn feed(mut field: Field<'_>, tx: &mpsc::Sender<Result<Bytes, MultipartError>>) {
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// The first part of a multipart upload, read whole up to `limit` bytes.
pub async fn first_part(multipart: &mut Multipart, limit: usize) -> Result<Vec<u8>, UploadError> {
    let mut field = multipart.next_field().await?.ok_or(UploadError::Empty)?;
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if data.len() + chunk.len() > limit {
            return Err(UploadError::TooLarge { limit });
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// The path a multipart part names (Kubo's clients URL-escape it).
fn part_path(field: &Field<'_>) -> Result<String, UploadError> {
    let raw = field
        .file_name()
        .or(field.name())
        .ok_or(UploadError::NoName)?;
    // Kubo's clients escape names as query strings: `+` is a space.
    let plus = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map_err(|_| UploadError::NameNotUtf8(raw.to_string()))?;
    Ok(decoded.trim_matches('/').to_string())
}

/// Longest symlink target, in bytes.
pub const MAX_SYMLINK_TARGET_BYTES: usize = 4096;

/// One part of an `add` upload, by its content type.
pub enum AddPart<'a> {
    /// `application/x-directory`: a directory (its entries are the parts
    /// whose paths it prefixes).
    Directory {
        /// The directory's path.
        path: String,
    },
    /// `application/symlink`: a symlink, its target the part's body.
    Symlink {
        /// The symlink's path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// Any other type: a file, its bytes still to be read from `field`.
    File {
        /// The file's path.
        path: String,
        /// The part, positioned at its body (boxed: a `Field` is large).
        field: Box<Field<'a>>,
    },
}

/// The next part of an `add` upload; `Ok(None)` after the last. A file's
/// bytes are left in its part, to be read as they come.
pub async fn next_add_part(multipart: &mut Multipart) -> Result<Option<AddPart<'_>>, UploadError> {
    let Some(mut field) = multipart.next_field().await? else {
        return Ok(None);
    };
    let path = part_path(&field)?;
    Ok(Some(match field.content_type().unwrap_or("") {
        "application/x-directory" => AddPart::Directory { path },
        "application/symlink" => {
            let mut target = Vec::new();
            while let Some(chunk) = field.chunk().await? {
                if target.len() + chunk.len() > MAX_SYMLINK_TARGET_BYTES {
                    return Err(UploadError::SymlinkTarget { path });
                }
                target.extend_from_slice(&chunk);
            }
            match String::from_utf8(target) {
                Ok(target) => AddPart::Symlink { path, target },
                Err(_) => return Err(UploadError::SymlinkTarget { path }),
            }
        }
        _ => AddPart::File {
            path,
            field: Box::new(field),
        },
    }))
}
