//! Content types of gateway responses: from the file name's extension
//! (the `mime_guess` table), else from the first bytes.
//!
//! Sniffing stays hand-written: `mime_guess` maps names only, and browsers
//! and Kubo's gateway (Go's `http.DetectContentType`) type files without a
//! known extension by a few well-known signatures, then text vs binary.

use axum::http::HeaderValue;

/// The type every unrecognised binary gets.
const OCTET_STREAM: &str = "application/octet-stream";

/// The content type of a file named `name` whose first bytes are `head`.
pub fn content_type(name: &str, head: &[u8]) -> HeaderValue {
    by_name(name).unwrap_or_else(|| sniff(head))
}

/// The content type the extension of `name` gives, if it says more than
/// "some bytes"; text types are UTF-8, as Go's table (Kubo) has them.
pub fn by_name(name: &str) -> Option<HeaderValue> {
    let ext = name.rsplit_once('.')?.1;
    // `mime_guess` gives curl's `application/vnd.curl.car`; in IPFS a
    // `.car` is a content-addressed archive.
    if ext.eq_ignore_ascii_case("car") {
        return Some(HeaderValue::from_static("application/vnd.ipld.car"));
    }
    let guess = mime_guess::from_ext(ext).first_raw()?;
    if guess == OCTET_STREAM {
        return None;
    }
    if guess.starts_with("text/") {
        HeaderValue::from_str(&format!("{guess}; charset=utf-8")).ok()
    } else {
        Some(HeaderValue::from_static(guess))
    }
}

/// The content type the first bytes of a file suggest.
pub fn sniff(head: &[u8]) -> HeaderValue {
    HeaderValue::from_static(sniff_name(head))
}

fn sniff_name(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"\x00asm", "application/wasm"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
    ];
    for (sig, t) in SIGNATURES {
        if head.starts_with(sig) {
            return t;
        }
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    let trimmed = head.trim_ascii_start();
    let lower: Vec<u8> = trimmed
        .iter()
        .take(16)
        .map(u8::to_ascii_lowercase)
        .collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return "text/html; charset=utf-8";
    }
    if lower.starts_with(b"<svg") {
        return "image/svg+xml";
    }
    // Text when valid UTF-8 (a multi-byte character cut at the end of the
    // sample is fine) without control bytes other than whitespace.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    let controls = head
        .iter()
        .any(|b| *b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c));
    if text && !controls {
        "text/plain; charset=utf-8"
    } else {
        OCTET_STREAM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_first_then_signatures_then_text() {
        let t = |name: &str, head: &[u8]| content_type(name, head).to_str().unwrap().to_string();
        assert_eq!(t("a/index.HTML", b""), "text/html; charset=utf-8");
        assert_eq!(t("app.js", b""), "text/javascript; charset=utf-8");
        assert_eq!(t("pic.png", b""), "image/png");
        assert_eq!(t("x.car", b""), "application/vnd.ipld.car");
        assert_eq!(t("pic", b"\x89PNG\r\n\x1a\nrest"), "image/png");
        assert_eq!(
            t("page", b"  <!DOCTYPE html><p>"),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            t("notes", "héllo\n".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(t("blob", &[0, 1, 2, 200]), "application/octet-stream");
        assert_eq!(t("x.unknown", b""), "text/plain; charset=utf-8");
        // A name that only says "bytes" is sniffed.
        assert_eq!(t("x.bin", b"\x89PNG\r\n\x1a\n"), "image/png");
    }
}
