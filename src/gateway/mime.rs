//! Content types for gateway responses: from the file name's extension,
//! else from the first bytes (a few well-known signatures, then text vs
//! binary), as browsers and Kubo's gateway expect.

/// The content type of a file named `name` whose first bytes are `head`.
pub fn content_type(name: &str, head: &[u8]) -> &'static str {
    if let Some(t) = by_extension(name) {
        return t;
    }
    sniff(head)
}

fn by_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" | "text" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "car" => "application/vnd.ipld.car",
        _ => return None,
    })
}

fn sniff(head: &[u8]) -> &'static str {
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
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_first_then_signatures_then_text() {
        assert_eq!(
            content_type("a/index.HTML", b""),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type("pic", b"\x89PNG\r\n\x1a\nrest"), "image/png");
        assert_eq!(
            content_type("page", b"  <!DOCTYPE html><p>"),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type("notes", "héllo\n".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type("blob", &[0, 1, 2, 200]),
            "application/octet-stream"
        );
        assert_eq!(content_type("x.unknown", b""), "text/plain; charset=utf-8");
    }
}
