//! The RPC API's `multipart/form-data` uploads: the parts of an `add`
//! (paths, directories, symlinks, file bytes) and the one part of a
//! `block/put` or `dag/import`.

use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Request};
use cairn::rpc::server::upload::{first_part, next_add_part, AddPart};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::collection::vec;
use proptest::prelude::*;

/// The boundary bodies are written with.
const BOUNDARY: &str = "cairn-fuzz-7d1c0a93e5";

/// Largest part `first_part` reads here.
const FIRST_PART_LIMIT: usize = 64;

/// A part as the upload's reader sees it.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Directory(String),
    Symlink(String, String),
    File(String, Vec<u8>),
}

/// A path of one to three segments (with characters clients escape).
fn any_path() -> impl Strategy<Value = String> {
    vec("[a-zA-Z0-9 ._+%é~-]{1,8}", 1..4).prop_map(|segs| segs.join("/"))
}

fn any_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        any_path().prop_map(Part::Directory),
        (any_path(), "[^\r\n]{0,40}").prop_map(|(p, t)| Part::Symlink(p, t)),
        (any_path(), any_bytes(200)).prop_map(|(p, d)| Part::File(p, d)),
    ]
}

/// `parts` as a body Kubo's clients would send (paths URL-escaped).
fn body_of(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let (path, kind, data) = match part {
            Part::Directory(p) => (p, "application/x-directory", &[][..]),
            Part::Symlink(p, t) => (p, "application/symlink", t.as_bytes()),
            Part::File(p, d) => (p, "application/octet-stream", &d[..]),
        };
        let name = utf8_percent_encode(path, NON_ALPHANUMERIC);
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// The upload `body` sent with `content_type`, as the server reads it.
async fn upload(body: &[u8], content_type: &str) -> Option<Multipart> {
    let req = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .ok()?;
    Multipart::from_request(req, &()).await.ok()
}

/// Every part of an `add` upload, or `None` at the first error.
fn add_parts(body: &[u8], content_type: &str) -> Option<Vec<Part>> {
    futures::executor::block_on(async {
        let mut multipart = upload(body, content_type).await?;
        let mut parts = Vec::new();
        while let Some(part) = next_add_part(&mut multipart).await.ok()? {
            parts.push(match part {
                AddPart::Directory { path } => Part::Directory(path),
                AddPart::Symlink { path, target } => Part::Symlink(path, target),
                AddPart::File { path, mut field } => {
                    let mut data = Vec::new();
                    while let Some(chunk) = field.chunk().await.ok()? {
                        data.extend_from_slice(&chunk);
                    }
                    Part::File(path, data)
                }
            });
        }
        Some(parts)
    })
}

/// The first part of an upload read whole (up to [`FIRST_PART_LIMIT`]).
fn one_part(body: &[u8], content_type: &str) -> Option<Vec<u8>> {
    futures::executor::block_on(async {
        let mut multipart = upload(body, content_type).await?;
        first_part(&mut multipart, FIRST_PART_LIMIT).await.ok()
    })
}

/// Content types: the body's own, one with another boundary, arbitrary.
fn any_content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(format!("multipart/form-data; boundary={BOUNDARY}")),
        1 => "multipart/form-data; boundary=[ -~]{0,20}",
        1 => "[ -~]{0,40}",
    ]
}

/// Upload bodies: arbitrary, arbitrary after a first boundary, and valid
/// ones mutated.
fn body_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(512),
        any_bytes(300).prop_map(|b| [format!("--{BOUNDARY}\r\n").as_bytes(), &b].concat()),
        (vec(any_part(), 0..4), mutations()).prop_map(|(p, m)| mutate(body_of(&p), &m)),
    ]
}

/// Arbitrary and mutated uploads: no panic, bounded allocation, paths
/// without leading or trailing `/`, a first part within its limit.
pub fn multipart_bytes(cases: u32) -> Result<(), Failure> {
    let input = (body_input(), any_content_type());
    check("multipart_bytes", cases, input, |(body, ctype)| {
        let (parts, peak) = peak_alloc(|| add_parts(&body, &ctype));
        check_alloc("next_add_part", body.len() + ctype.len(), peak)?;
        for part in parts.unwrap_or_default() {
            let (Part::Directory(p) | Part::Symlink(p, _) | Part::File(p, _)) = part;
            prop_assert!(!p.starts_with('/') && !p.ends_with('/'), "{p:?}");
        }
        let (first, peak) = peak_alloc(|| one_part(&body, &ctype));
        check_alloc("first_part", body.len() + ctype.len(), peak)?;
        prop_assert!(first.is_none_or(|d| d.len() <= FIRST_PART_LIMIT));
        Ok(())
    })
}

/// Every upload a client writes reads back as its parts, and its first
/// part whole when within the limit.
pub fn multipart_round_trip(cases: u32) -> Result<(), Failure> {
    check(
        "multipart_round_trip",
        cases,
        vec(any_part(), 0..5),
        |parts| {
            let body = body_of(&parts);
            let ctype = format!("multipart/form-data; boundary={BOUNDARY}");
            prop_assert_eq!(add_parts(&body, &ctype), Some(parts.clone()));
            let first = match parts.first() {
                None => None,
                Some(Part::Directory(_)) => Some(vec![]),
                Some(Part::Symlink(_, t)) => Some(t.as_bytes().to_vec()),
                Some(Part::File(_, d)) => Some(d.clone()),
            };
            let expected = first.filter(|d| d.len() <= FIRST_PART_LIMIT);
            prop_assert_eq!(one_part(&body, &ctype), expected);
            Ok(())
        },
    )
}
