//! S3 access keys: an access key ID, its secret, and the buckets it may
//! use (none listed: every bucket). One file per key in `REPO/s3/keys/`
//! (a 0700 directory), named by the key ID, holding JSON with the secret,
//! created 0600 and synced before it is linked into place; secrets are
//! never logged. A node without a repo keeps its keys in memory.

use super::S3Error;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Characters of a generated access key ID after its `CK` prefix
/// (base32: upper-case letters and digits, as AWS's IDs).
const ID_RANDOM_CHARS: usize = 18;

/// Random bytes of a secret (40 base64 characters, as AWS's secrets).
const SECRET_BYTES: usize = 30;

/// The longest key file read (a key is under 100 bytes plus its buckets).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// One access key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The access key ID clients send (`CK...`).
    #[serde(skip)]
    pub id: String,
    /// The secret clients sign with.
    pub secret: String,
    /// Buckets this key may use; empty: every bucket.
    #[serde(default)]
    pub buckets: Vec<String>,
}

impl AccessKey {
    /// Whether this key may use `bucket`.
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets.is_empty() || self.buckets.iter().any(|b| b == bucket)
    }
}

impl std::fmt::Debug for AccessKey {
    /// The ID and scope; never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

/// Where keys live.
enum Backing {
    Dir(PathBuf),
    Memory(Mutex<HashMap<String, AccessKey>>),
}

/// A node's S3 access keys.
pub struct AccessKeys {
    backing: Backing,
}

impl AccessKeys {
    /// The keys of the repo at `repo` (`REPO/s3/keys`).
    pub fn for_repo(repo: &Path) -> AccessKeys {
        AccessKeys {
            backing: Backing::Dir(repo.join("s3").join("keys")),
        }
    }

    /// Keys kept in memory (a node without a repo).
    pub fn in_memory() -> AccessKeys {
        AccessKeys {
            backing: Backing::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// Makes a new key for `buckets` (empty: every bucket), each a valid
    /// S3 bucket name (the bucket need not exist yet).
    pub fn create(&self, buckets: &[String]) -> Result<AccessKey, S3Error> {
        for b in buckets {
            if !s3s::path::check_bucket_name(b) {
                return Err(S3Error::InvalidBucketName { name: b.clone() });
            }
        }
        let mut random = [0u8; ID_RANDOM_CHARS + SECRET_BYTES];
        getrandom::fill(&mut random).map_err(S3Error::Randomness)?;
        let (id_bytes, secret_bytes) = random.split_at(ID_RANDOM_CHARS);
        const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let id: String = std::iter::once("CK".to_string())
            .chain(
                id_bytes
                    .iter()
                    .map(|b| char::from(BASE32[usize::from(b & 31)]).to_string()),
            )
            .collect();
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode(secret_bytes);
        let mut buckets = buckets.to_vec();
        buckets.sort();
        buckets.dedup();
        let key = AccessKey {
            id,
            secret,
            buckets,
        };
        match &self.backing {
            Backing::Memory(keys) => {
                lock(keys).insert(key.id.clone(), key.clone());
            }
            Backing::Dir(dir) => write_key(dir, &key)?,
        }
        Ok(key)
    }

    /// The key with ID `id`, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<AccessKey>, S3Error> {
        if !valid_id(id) {
            return Ok(None);
        }
        match &self.backing {
            Backing::Memory(keys) => Ok(lock(keys).get(id).cloned()),
            Backing::Dir(dir) => read_key(&dir.join(id), id),
        }
    }

    /// Every key, by ID.
    pub fn list(&self) -> Result<Vec<AccessKey>, S3Error> {
        let mut keys = match &self.backing {
            Backing::Memory(keys) => lock(keys).values().cloned().collect(),
            Backing::Dir(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io(dir)(e)),
                };
                let mut keys = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(io(dir))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if valid_id(&name) {
                        keys.extend(read_key(&entry.path(), &name)?);
                    }
                }
                keys
            }
        };
        keys.sort_by(|a: &AccessKey, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    /// Removes the key `id`; false when there was none.
    pub fn remove(&self, id: &str) -> Result<bool, S3Error> {
        if !valid_id(id) {
            return Ok(false);
        }
        match &self.backing {
            Backing::Memory(keys) => Ok(lock(keys).remove(id).is_some()),
            Backing::Dir(dir) => {
                let path = dir.join(id);
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        sync_dir(dir)?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io(&path)(e)),
                }
            }
        }
    }
}

/// Whether `id` can name a key (and so a file): `A-Z0-9`, 16 to 128.
fn valid_id(id: &str) -> bool {
    (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn read_key(path: &Path, id: &str) -> Result<Option<AccessKey>, S3Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_KEY_FILE_BYTES),
        &mut text,
    )
    .map_err(io(path))?;
    let mut key: AccessKey = serde_json::from_slice(&text).map_err(|e| S3Error::BadKeyFile {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    key.id = id.to_string();
    Ok(Some(key))
}

/// Writes `key` fully and synced under a temporary name, then links it into
/// place (failing if the ID was taken), so a crash never leaves half a key.
fn write_key(dir: &Path, key: &AccessKey) -> Result<(), S3Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let bytes = serde_json::to_vec(key).map_err(|e| S3Error::BadKeyFile {
        path: dir.join(&key.id),
        why: e.to_string(),
    })?;
    let path = dir.join(&key.id);
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), key.id));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::hard_link(&tmp, &path).map_err(io(&path))
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), S3Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> S3Error + '_ {
    move |source| S3Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_found_scoped_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        for keys in [AccessKeys::for_repo(dir.path()), AccessKeys::in_memory()] {
            let all = keys.create(&[]).unwrap();
            assert!(all.id.starts_with("CK") && all.id.len() == 20, "{}", all.id);
            assert_eq!(all.secret.len(), 40);
            assert!(all.allows("anything"));
            let one = keys.create(&["photos".into(), "photos".into()]).unwrap();
            assert_eq!(one.buckets, vec!["photos".to_string()]);
            assert!(one.allows("photos") && !one.allows("other"));
            assert_eq!(keys.get(&one.id).unwrap(), Some(one.clone()));
            assert_eq!(keys.get("CKNOSUCHKEY0000000").unwrap(), None);
            assert_eq!(keys.get("../../etc/passwd").unwrap(), None);
            assert_eq!(keys.list().unwrap().len(), 2);
            assert!(keys.remove(&one.id).unwrap());
            assert!(!keys.remove(&one.id).unwrap());
            assert_eq!(keys.get(&one.id).unwrap(), None);
            assert!(matches!(
                keys.create(&["Bad_Name".into()]),
                Err(S3Error::InvalidBucketName { .. })
            ));
            assert!(!format!("{all:?}").contains(&all.secret));
        }
    }

    #[test]
    fn key_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AccessKeys::for_repo(dir.path());
        let key = keys.create(&[]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let kdir = dir.path().join("s3/keys");
        assert_eq!(mode(&kdir), 0o700);
        assert_eq!(mode(&kdir.join(&key.id)), 0o600);
        assert_eq!(
            std::fs::read_dir(&kdir).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
