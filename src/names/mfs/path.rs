//! MFS paths: absolute, `/`-separated, cleaned as Kubo cleans them (`//`
//! and `.` dropped, `..` steps up), every name one UnixFS can hold.

use super::MfsError;

/// Longest MFS path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// A cleaned MFS path: the names from the root (none: the root itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfsPath(Vec<String>);

impl MfsPath {
    /// Parses and cleans `text`, which must start with `/`.
    pub fn parse(text: &str) -> Result<MfsPath, MfsError> {
        let bad = |reason: &str| MfsError::BadPath {
            path: text.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        if text.len() > MAX_PATH_BYTES {
            return Err(bad("longer than 4096 bytes"));
        }
        if !text.starts_with('/') {
            return Err(bad("paths must start with a leading slash"));
        }
        if text.contains('\0') {
            return Err(bad("names cannot hold a NUL byte"));
        }
        let mut names: Vec<String> = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    names.pop();
                }
                name => names.push(name.to_string()),
            }
        }
        Ok(MfsPath(names))
    }

    /// The names from the root.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last name (`None` for the root).
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// This path with `name` appended.
    pub fn join(&self, name: &str) -> MfsPath {
        let mut names = self.0.clone();
        names.push(name.to_string());
        MfsPath(names)
    }

    /// The path of the first `n` names.
    pub fn prefix(&self, n: usize) -> MfsPath {
        MfsPath(self.0[..n.min(self.0.len())].to_vec())
    }

    /// Whether `other` is this path or below it.
    pub fn contains(&self, other: &MfsPath) -> bool {
        other.0.len() >= self.0.len() && other.0[..self.0.len()] == self.0[..]
    }
}

impl std::fmt::Display for MfsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for name in &self.0 {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_like_kubo() {
        let p = |s: &str| MfsPath::parse(s).map(|p| p.to_string());
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("/a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(p("/a/../b").unwrap(), "/b");
        assert_eq!(p("/../..").unwrap(), "/");
        assert!(p("a/b").is_err());
        assert!(p("").is_err());
        assert!(p("/a\0b").is_err());
        assert!(p(&format!("/{}", "x".repeat(5000))).is_err());
        let a = MfsPath::parse("/a").unwrap();
        assert!(a.contains(&MfsPath::parse("/a/b").unwrap()));
        assert!(!a.contains(&MfsPath::parse("/ab").unwrap()));
    }
}
