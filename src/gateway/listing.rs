//! The HTML page a directory without `index.html` gets: its path with a
//! link per parent, then a table of entries (name, size, CID), styled to
//! read well in a browser and linking each entry and each CID.

use crate::block::Cid;
use crate::dag::reader::DirEntry;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment for a URL.
pub fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The listing page of `dir` at `content_path` (`/ipfs/CID/a/b`); the
/// page's own URL ends in `/` (entry links are relative to it) and
/// `cid_url` makes the URL of any CID (path or subdomain form).
pub fn page(
    content_path: &str,
    dir: &Cid,
    entries: &[DirEntry],
    cid_url: &dyn Fn(&Cid) -> String,
) -> String {
    let mut crumbs = String::new();
    // After "ipfs": the root CID, then each directory name.
    let parts: Vec<&str> = content_path.trim_matches('/').split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        let up = last - i;
        let href = if up == 0 {
            "./".to_string()
        } else {
            "../".repeat(up)
        };
        if i > 0 {
            crumbs.push_str(" / ");
        }
        crumbs.push_str(&format!(
            "<a href=\"{}\">{}</a>",
            escape(&href),
            escape(&percent_encoding::percent_decode_str(part).decode_utf8_lossy())
        ));
    }
    let depth = last;
    let mut rows = String::new();
    if depth > 0 {
        rows.push_str(
            "<tr><td class=\"icon\">↩</td><td><a href=\"../\">..</a></td><td></td><td></td></tr>\n",
        );
    }
    for e in entries {
        let is_dir = e.kind.contains("directory");
        let href = format!(
            "{}{}",
            encode_segment(&e.name),
            if is_dir { "/" } else { "" }
        );
        let icon = match e.kind {
            k if k.contains("directory") => "📁",
            "symlink" => "🔗",
            _ => "📄",
        };
        let cid_text = e.cid.to_string();
        let short = if cid_text.len() > 16 {
            format!("{}…{}", &cid_text[..8], &cid_text[cid_text.len() - 6..])
        } else {
            cid_text.clone()
        };
        rows.push_str(&format!(
            "<tr><td class=\"icon\">{icon}</td><td><a href=\"{}\">{}{}</a></td><td class=\"size\">{}</td><td class=\"cid\"><a href=\"{}\" title=\"{}\">{}</a></td></tr>\n",
            escape(&href),
            escape(&e.name),
            if is_dir { "/" } else { "" },
            if is_dir { String::new() } else { human_size(e.size) },
            escape(&cid_url(&e.cid)),
            escape(&cid_text),
            escape(&short),
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f7f9; color: #1d2430; }}
  header {{ background: #1d3557; color: #fff; padding: 18px 28px; }}
  header h1 {{ font-size: 18px; margin: 0 0 6px 0; font-weight: 600; }}
  header a {{ color: #cfe3ff; text-decoration: none; }}
  header .cid {{ font-family: ui-monospace, monospace; font-size: 12px; color: #9fb6d6; }}
  main {{ max-width: 1000px; margin: 24px auto; padding: 0 16px; }}
  table {{ width: 100%; border-collapse: collapse; background: #fff; box-shadow: 0 1px 3px rgba(0,0,0,.08); border-radius: 8px; overflow: hidden; }}
  th, td {{ padding: 10px 14px; text-align: left; border-bottom: 1px solid #eef0f3; }}
  th {{ font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #6b7686; background: #fafbfc; }}
  td.icon {{ width: 24px; }}
  td.size {{ white-space: nowrap; color: #4b5563; }}
  td.cid {{ font-family: ui-monospace, monospace; font-size: 12px; }}
  a {{ color: #1f6feb; text-decoration: none; }}
  a:hover {{ text-decoration: underline; }}
  footer {{ text-align: center; color: #8a94a3; font-size: 12px; margin: 20px; }}
</style>
</head>
<body>
<header><h1>Index of {crumbs}</h1>{dir}</header>
<main>
<table>
<thead><tr><th></th><th>Name</th><th>Size</th><th>CID</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</main>
<footer>{count} entries · served by cairn {version}</footer>
</body>
</html>
"#,
        title = escape(&percent_encoding::percent_decode_str(content_path).decode_utf8_lossy()),
        crumbs = crumbs,
        // Below a subdirectory's path, its own CID (the root's is the path).
        dir = if depth > 0 {
            format!("<div class=\"cid\">{}</div>", escape(&dir.to_string()))
        } else {
            String::new()
        },
        rows = rows,
        count = entries.len(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_encoded() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(encode_segment("a b/c?.txt"), "a%20b%2Fc%3F.txt");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
