//! Listing's paging over the index (ListObjectsV2 and V1 alike): keys in byte order (S3's
//! order) from a start key, within a prefix, keys sharing the part up to
//! the next delimiter after the prefix rolled into one common prefix, at
//! most `max_keys` entries (objects and common prefixes together) a page.
//! Each step seeks the first key at or after a point, so a page costs
//! O(page × log n) whatever the bucket holds; a common prefix is skipped
//! whole by seeking past every key that starts with it.
//!
//! V2's continuation token is where the next page starts, base64url. V1
//! pages by marker, the last key or common prefix a page held: the next
//! page starts after it (after every key under it, for a common prefix).

use super::index::{Found, ObjectEntry};
use super::S3Error;
use base64::Engine;

/// The most entries a page holds (S3's cap on `max-keys`).
pub const MAX_KEYS: usize = 1000;

/// What a listing asks for.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the next occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Most entries (objects and common prefixes) on the page.
    pub max_keys: usize,
    /// The first key the page may hold (inclusive).
    pub start: Vec<u8>,
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<(String, ObjectEntry)>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// Where the next page starts, when there is more.
    pub next: Option<Vec<u8>>,
    /// The last key or common prefix on the page (V1's `NextMarker`).
    pub last: Option<String>,
}

/// The first key after every key that starts with `prefix` (none: no key
/// comes after them all, as for a prefix of 0xff bytes).
pub fn past_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// The key right after `key`.
pub fn after(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

/// Where a listing starts: after `start_after` or at the continuation
/// token (which wins), and never before the prefix.
pub fn start_of(
    prefix: &str,
    token: Option<&str>,
    start_after: Option<&str>,
) -> Result<Vec<u8>, BadToken> {
    let from = match (token, start_after) {
        (Some(t), _) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .map_err(|_| BadToken)?,
        (None, Some(s)) if !s.is_empty() => after(s.as_bytes()),
        _ => Vec::new(),
    };
    Ok(from.max(prefix.as_bytes().to_vec()))
}

/// Where a V1 listing after `marker` starts: right after it, or after
/// every key under it when it is a common prefix of the listing (ends at
/// the first `delimiter` after `prefix`), as a `NextMarker` can be; never
/// before the prefix.
pub fn start_after_marker(prefix: &str, marker: &str, delimiter: Option<&str>) -> Vec<u8> {
    let m = marker.as_bytes();
    let rolled = delimiter.filter(|d| !d.is_empty()).is_some_and(|d| {
        m.strip_prefix(prefix.as_bytes())
            .and_then(|rest| find(rest, d.as_bytes()))
            .is_some_and(|i| prefix.len() + i + d.len() == m.len())
    });
    let from = match (marker.is_empty(), rolled) {
        (true, _) => Vec::new(),
        (false, true) => past_prefix(m).unwrap_or_else(|| after(m)),
        (false, false) => after(m),
    };
    from.max(prefix.as_bytes().to_vec())
}

/// A continuation token that is not one this endpoint gave.
#[derive(Debug)]
pub struct BadToken;

/// The continuation token of a page starting at `next`.
pub fn token(next: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next)
}

/// One page of `query`; `seek` gives the first object whose key is at
/// least its argument.
pub fn page(
    query: &ListQuery,
    seek: &mut dyn FnMut(&[u8]) -> Result<Found, S3Error>,
) -> Result<ListPage, S3Error> {
    let prefix = query.prefix.as_bytes();
    let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut out = ListPage::default();
    if query.max_keys == 0 {
        return Ok(out);
    }
    let mut at = Some(query.start.clone());
    while let Some(from) = at.take() {
        let Some((key, entry)) = seek(&from)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if out.objects.len() + out.prefixes.len() == query.max_keys {
            out.next = Some(from);
            break;
        }
        let rolled = delimiter.and_then(|d| {
            let rest = &key[prefix.len()..];
            find(rest, d.as_bytes()).map(|i| key[..prefix.len() + i + d.len()].to_vec())
        });
        match rolled {
            Some(common) => {
                at = past_prefix(&common);
                let common = String::from_utf8_lossy(&common).into_owned();
                out.last = Some(common.clone());
                out.prefixes.push(common);
            }
            None => {
                at = Some(after(&key));
                let key = String::from_utf8_lossy(&key).into_owned();
                out.last = Some(key.clone());
                out.objects.push((key, entry));
            }
        }
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry() -> ObjectEntry {
        ObjectEntry {
            cid: String::new(),
            size: 0,
            etag: String::new(),
            content_type: None,
            metadata: BTreeMap::new(),
            mtime_ms: 0,
            checksum: None,
            parts: Vec::new(),
            version_id: None,
        }
    }

    /// `keys` as a bucket's objects.
    fn bucket(keys: &[&str]) -> BTreeMap<Vec<u8>, ObjectEntry> {
        keys.iter()
            .map(|k| (k.as_bytes().to_vec(), entry()))
            .collect()
    }

    /// One page of `query` over `map`.
    fn page_of(map: &BTreeMap<Vec<u8>, ObjectEntry>, query: &ListQuery) -> ListPage {
        let mut seek = |from: &[u8]| {
            Ok(map
                .range(from.to_vec()..)
                .next()
                .map(|(k, v)| (k.clone(), v.clone())))
        };
        page(query, &mut seek).unwrap()
    }

    /// Every page of `query` over `keys`, as the names on each.
    fn pages(keys: &[&str], mut query: ListQuery) -> Vec<Vec<String>> {
        let map = bucket(keys);
        let mut out = Vec::new();
        loop {
            let page = page_of(&map, &query);
            let mut names: Vec<String> = page.objects.iter().map(|o| o.0.clone()).collect();
            names.extend(page.prefixes.iter().map(|p| format!("{p}*")));
            out.push(names);
            match page.next {
                Some(n) => query.start = n,
                None => return out,
            }
        }
    }

    const KEYS: &[&str] = &[
        "a.txt",
        "docs/a",
        "docs/b/c",
        "docs/b/d",
        "docs/e",
        "photos/1.jpg",
        "photos/2.jpg",
        "z",
    ];

    #[test]
    fn pages_follow_key_order_and_roll_up_common_prefixes() {
        let q = |prefix: &str, delimiter: Option<&str>, max_keys| ListQuery {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            max_keys,
            start: prefix.as_bytes().to_vec(),
        };
        assert_eq!(
            pages(KEYS, q("", Some("/"), 1000)),
            vec![vec!["a.txt", "z", "docs/*", "photos/*"]]
        );
        assert_eq!(
            pages(KEYS, q("docs/", Some("/"), 1000)),
            vec![vec!["docs/a", "docs/e", "docs/b/*"]]
        );
        assert_eq!(
            pages(KEYS, q("docs/", None, 2)),
            vec![vec!["docs/a", "docs/b/c"], vec!["docs/b/d", "docs/e"]]
        );
        assert_eq!(
            pages(KEYS, q("", Some("/"), 2)),
            vec![vec!["a.txt", "docs/*"], vec!["z", "photos/*"]]
        );
        assert_eq!(
            pages(KEYS, q("nothing", None, 5)),
            vec![Vec::<String>::new()]
        );
        let all: Vec<String> = pages(KEYS, q("", None, 3)).concat();
        assert_eq!(all, KEYS);
    }

    #[test]
    fn v1_markers_page_through_keys_and_common_prefixes() {
        // Pages of 2 with a delimiter, each starting after the last
        // page's NextMarker.
        let mut query = ListQuery {
            prefix: String::new(),
            delimiter: Some("/".into()),
            max_keys: 2,
            start: Vec::new(),
        };
        let map = bucket(KEYS);
        let mut markers = Vec::new();
        loop {
            let page = page_of(&map, &query);
            let last = page.last.clone().unwrap();
            markers.push(last.clone());
            if page.next.is_none() {
                break;
            }
            query.start = start_after_marker("", &last, Some("/"));
        }
        assert_eq!(markers, ["docs/", "z"]);
        assert_eq!(start_after_marker("", "docs/", Some("/")), b"docs0");
        assert_eq!(start_after_marker("", "docs/", None), b"docs/\0");
        assert_eq!(start_after_marker("", "docs/a", Some("/")), b"docs/a\0");
        assert_eq!(
            start_after_marker("docs/", "docs/b/", Some("/")),
            b"docs/b0"
        );
        assert_eq!(start_after_marker("docs/", "a", Some("/")), b"docs/");
        assert_eq!(start_after_marker("p", "", None), b"p");
    }

    #[test]
    fn starts_honour_start_after_and_tokens() {
        assert_eq!(start_of("", None, Some("b")).unwrap(), b"b\0");
        assert_eq!(start_of("c", None, Some("b")).unwrap(), b"c");
        let t = token(b"docs/b");
        assert_eq!(start_of("", Some(&t), Some("z")).unwrap(), b"docs/b");
        assert!(start_of("", Some("not base64!"), None).is_err());
        assert_eq!(past_prefix(b"ab/"), Some(b"ab0".to_vec()));
        assert_eq!(past_prefix(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(past_prefix(b"\xff\xff"), None);
    }
}
