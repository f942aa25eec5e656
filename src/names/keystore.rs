//! The keystore: named Ed25519 keys (the keys IPNS names are made from),
//! kept as Kubo keeps them so a repo's keys move between the two: one file
//! per key in `REPO/keystore/` (a 0700 directory), named `key_` + the
//! base32 of the name, holding the libp2p protobuf encoding of the private
//! key, created 0600 and never logged. `self` is the node's own key
//! (`REPO/key`): listed first, never stored here, never removed or renamed.

use libp2p::identity::Keypair;
use libp2p::PeerId;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The name of the node's own key.
pub const SELF: &str = "self";

/// The longest key name (its base32 must fit a file name).
pub const MAX_NAME_BYTES: usize = 150;

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The name cannot name a key.
    #[error("invalid key name {name:?}: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key of that name exists (use another name, or rename with force).
    #[error("key {name:?} already exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// No key has that name.
    #[error("no key named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The node's own key was asked to be removed, renamed or replaced.
    #[error("the node's own key \"self\" cannot be {action}")]
    SelfKey {
        /// What was asked (`removed`, `renamed`, `replaced`).
        action: &'static str,
    },
    /// A key type other than Ed25519.
    #[error("unsupported key type {kind:?} (cairn's keys are ed25519)")]
    UnsupportedType {
        /// The type asked for or found.
        kind: String,
    },
    /// A key format cairn does not read or write.
    #[error(
        "unknown key format {format:?} (expected libp2p-protobuf-cleartext or pem-pkcs8-cleartext)"
    )]
    UnknownFormat {
        /// The format asked for.
        format: String,
    },
    /// Bytes that are not a key in the format said.
    #[error("{what} is not an ed25519 private key in {format}: {reason}")]
    Decode {
        /// Where the bytes came from (a key name or "the imported key").
        what: String,
        /// The format they were read as.
        format: KeyFormat,
        /// What was wrong.
        reason: String,
    },
    /// The keystore's files could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
}

impl KeyError {
    /// Whether the request was at fault (a name, type, format or key
    /// refused), not the keystore's storage.
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, KeyError::Io { .. } | KeyError::Randomness(_))
    }
}

/// How a private key is written out by export and read by import (Kubo's
/// names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// The libp2p protobuf encoding (Kubo's default and its keystore files).
    #[default]
    Libp2pProtobuf,
    /// PKCS#8 in PEM (`-----BEGIN PRIVATE KEY-----`), as OpenSSL writes it.
    PemPkcs8,
}

impl std::str::FromStr for KeyFormat {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<KeyFormat, KeyError> {
        match s {
            "libp2p-protobuf-cleartext" => Ok(KeyFormat::Libp2pProtobuf),
            "pem-pkcs8-cleartext" => Ok(KeyFormat::PemPkcs8),
            other => Err(KeyError::UnknownFormat {
                format: other.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyFormat::Libp2pProtobuf => "libp2p-protobuf-cleartext",
            KeyFormat::PemPkcs8 => "pem-pkcs8-cleartext",
        })
    }
}

/// A key's name and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its name in the keystore (`self` for the node's key).
    pub name: String,
    /// The peer ID its public key makes.
    pub id: PeerId,
}

impl KeyInfo {
    /// The key's IPNS name as Kubo prints it: a CIDv1 with the libp2p-key
    /// codec in base36 (`k51...`).
    pub fn ipns_name(&self) -> String {
        ipns_name(&self.id)
    }
}

/// `peer`'s IPNS name (a CIDv1, libp2p-key codec, base36).
pub fn ipns_name(peer: &PeerId) -> String {
    const LIBP2P_KEY: u64 = 0x72;
    match crate::block::Multihash::from_bytes(&peer.to_bytes()) {
        Ok(mh) => crate::block::Cid::new_v1(LIBP2P_KEY, mh)
            .to_string_of_base(multibase::Base::Base36Lower)
            .unwrap_or_else(|_| peer.to_string()),
        // A peer ID is always a multihash; its own text is the fallback.
        Err(_) => peer.to_string(),
    }
}

/// Where the keys are.
enum Backing {
    /// A directory of key files.
    Dir(PathBuf),
    /// In memory (nodes without a repo: tests, netsim).
    Memory(Mutex<BTreeMap<String, Vec<u8>>>),
}

/// The named keys of a node, plus its own (`self`).
pub struct Keystore {
    backing: Backing,
    /// The node's own key's Ed25519 seed.
    own: [u8; 32],
}

impl Keystore {
    /// The keystore in `dir` (created on the first key written); `own` is
    /// the node's key's Ed25519 seed.
    pub fn open(dir: PathBuf, own: [u8; 32]) -> Keystore {
        Keystore {
            backing: Backing::Dir(dir),
            own,
        }
    }

    /// A keystore that keeps keys in memory only.
    pub fn in_memory(own: [u8; 32]) -> Keystore {
        Keystore {
            backing: Backing::Memory(Mutex::new(BTreeMap::new())),
            own,
        }
    }

    /// Makes a new key called `name` of type `kind` (only `ed25519`).
    pub fn generate(&self, name: &str, kind: &str) -> Result<KeyInfo, KeyError> {
        if !kind.eq_ignore_ascii_case("ed25519") {
            return Err(KeyError::UnsupportedType {
                kind: kind.to_string(),
            });
        }
        check_new_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Randomness(e.to_string()))?;
        let key = Keypair::ed25519_from_bytes(seed).map_err(|e| decode(name, e))?;
        self.store_new(name, &key)?;
        Ok(info(name, &key))
    }

    /// Every key, `self` first, then by name.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let mut keys = vec![info(SELF, &self.own_key()?)];
        for (name, bytes) in self.entries()? {
            let key = from_protobuf(&name, &bytes)?;
            keys.push(info(&name, &key));
        }
        Ok(keys)
    }

    /// The key called `name` (`self`: the node's own).
    pub fn get(&self, name: &str) -> Result<Keypair, KeyError> {
        if name == SELF {
            return self.own_key();
        }
        check_name(name)?;
        let bytes = self.read(name)?.ok_or_else(|| KeyError::NotFound {
            name: name.to_string(),
        })?;
        from_protobuf(name, &bytes)
    }

    /// Removes the key called `name`; returns what it was.
    pub fn remove(&self, name: &str) -> Result<KeyInfo, KeyError> {
        if name == SELF {
            return Err(KeyError::SelfKey { action: "removed" });
        }
        let key = self.get(name)?;
        match &self.backing {
            Backing::Dir(dir) => {
                let path = dir.join(file_name(name));
                std::fs::remove_file(&path).map_err(io(&path))?;
                sync_dir(dir)?;
            }
            Backing::Memory(keys) => {
                lock(keys).remove(name);
            }
        }
        Ok(info(name, &key))
    }

    /// Renames `old` to `new`, replacing a key called `new` only if `force`;
    /// returns the key and whether one was replaced.
    pub fn rename(&self, old: &str, new: &str, force: bool) -> Result<(KeyInfo, bool), KeyError> {
        if old == SELF {
            return Err(KeyError::SelfKey { action: "renamed" });
        }
        if new == SELF {
            return Err(KeyError::SelfKey { action: "replaced" });
        }
        check_name(new)?;
        let key = self.get(old)?;
        let replaced = self.read(new)?.is_some();
        if replaced && !force {
            return Err(KeyError::Exists {
                name: new.to_string(),
            });
        }
        if old != new {
            match &self.backing {
                Backing::Dir(dir) => {
                    let (from, to) = (dir.join(file_name(old)), dir.join(file_name(new)));
                    std::fs::rename(&from, &to).map_err(io(&to))?;
                    sync_dir(dir)?;
                }
                Backing::Memory(keys) => {
                    let mut keys = lock(keys);
                    if let Some(bytes) = keys.remove(old) {
                        keys.insert(new.to_string(), bytes);
                    }
                }
            }
        }
        Ok((info(new, &key), replaced))
    }

    /// The private key called `name` in `format`.
    pub fn export(&self, name: &str, format: KeyFormat) -> Result<Vec<u8>, KeyError> {
        let key = self.get(name)?;
        match format {
            KeyFormat::Libp2pProtobuf => key.to_protobuf_encoding().map_err(|e| decode(name, e)),
            KeyFormat::PemPkcs8 => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let ed = key.try_into_ed25519().map_err(|e| decode(name, e))?;
                let mut seed = [0u8; 32];
                seed.copy_from_slice(ed.secret().as_ref());
                let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
                let pem = signing
                    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                    .map_err(|e| decode(name, e))?;
                Ok(pem.as_bytes().to_vec())
            }
        }
    }

    /// Stores `bytes` (a private key in `format`) as a new key `name`.
    pub fn import(&self, name: &str, bytes: &[u8], format: KeyFormat) -> Result<KeyInfo, KeyError> {
        check_new_name(name)?;
        let key = read_key(bytes, format)?;
        self.store_new(name, &key)?;
        Ok(info(name, &key))
    }

    fn own_key(&self) -> Result<Keypair, KeyError> {
        Keypair::ed25519_from_bytes(self.own).map_err(|e| decode(SELF, e))
    }

    /// Writes a key that must not exist yet: fully written and synced
    /// under a temporary name, then linked into place (which fails if the
    /// name was taken meanwhile), so a crash never leaves half a key.
    fn store_new(&self, name: &str, key: &Keypair) -> Result<(), KeyError> {
        let bytes = key.to_protobuf_encoding().map_err(|e| decode(name, e))?;
        let dir = match &self.backing {
            Backing::Memory(keys) => {
                let mut keys = lock(keys);
                if keys.contains_key(name) {
                    return Err(KeyError::Exists {
                        name: name.to_string(),
                    });
                }
                keys.insert(name.to_string(), bytes);
                return Ok(());
            }
            Backing::Dir(dir) => dir,
        };
        create_dir_private(dir)?;
        let path = dir.join(file_name(name));
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), file_name(name)));
        let written = write_private(&tmp, &bytes).and_then(|()| {
            std::fs::hard_link(&tmp, &path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                    name: name.to_string(),
                },
                _ => KeyError::Io {
                    path: path.clone(),
                    source: e,
                },
            })
        });
        let _ = std::fs::remove_file(&tmp);
        written?;
        sync_dir(dir)
    }

    /// The stored key's bytes, if `name` is stored.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, KeyError> {
        match &self.backing {
            Backing::Memory(keys) => Ok(lock(keys).get(name).cloned()),
            Backing::Dir(dir) => {
                let path = dir.join(file_name(name));
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(KeyError::Io { path, source: e }),
                }
            }
        }
    }

    /// Every stored key as (name, bytes), by name; files that are not keys
    /// (temporary files, names that do not decode) are left out.
    fn entries(&self) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
        let dir = match &self.backing {
            Backing::Memory(keys) => {
                return Ok(lock(keys)
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect())
            }
            Backing::Dir(dir) => dir,
        };
        let listing = match std::fs::read_dir(dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut found = BTreeMap::new();
        for entry in listing {
            let entry = entry.map_err(io(dir))?;
            let Some(name) = entry.file_name().to_str().and_then(name_of_file) else {
                continue;
            };
            let path = entry.path();
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            found.insert(name, bytes);
        }
        Ok(found.into_iter().collect())
    }
}

/// A name `generate` and `import` may take: valid and not `self`.
fn check_new_name(name: &str) -> Result<(), KeyError> {
    if name == SELF {
        return Err(KeyError::Exists {
            name: name.to_string(),
        });
    }
    check_name(name)
}

/// Kubo's rules (not empty, no `/`, no leading `.`), plus: no control
/// characters and at most [`MAX_NAME_BYTES`] bytes.
fn check_name(name: &str) -> Result<(), KeyError> {
    let why = if name.is_empty() {
        "key names must be at least one character"
    } else if name.contains('/') {
        "key names may not contain slashes"
    } else if name.starts_with('.') {
        "key names may not begin with a period"
    } else if name.chars().any(char::is_control) {
        "key names may not contain control characters"
    } else if name.len() > MAX_NAME_BYTES {
        "key names may be at most 150 bytes"
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidName {
        name: name.to_string(),
        why,
    })
}

/// The file a key's bytes live in (Kubo's: `key_` + unpadded base32).
fn file_name(name: &str) -> String {
    format!("key_{}", multibase::Base::Base32Lower.encode(name))
}

/// The key name a keystore file holds, if it is a key file.
fn name_of_file(file: &str) -> Option<String> {
    let encoded = file.strip_prefix("key_")?;
    let bytes = multibase::Base::Base32Lower.decode(encoded).ok()?;
    let name = String::from_utf8(bytes).ok()?;
    check_name(&name).ok().map(|()| name)
}

fn info(name: &str, key: &Keypair) -> KeyInfo {
    KeyInfo {
        name: name.to_string(),
        id: key.public().to_peer_id(),
    }
}

fn decode(what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Decode {
        what: format!("key {what:?}"),
        format: KeyFormat::Libp2pProtobuf,
        reason: e.to_string(),
    }
}

/// A stored key: the libp2p protobuf encoding of an Ed25519 key.
fn from_protobuf(name: &str, bytes: &[u8]) -> Result<Keypair, KeyError> {
    ed25519_only(Keypair::from_protobuf_encoding(bytes).map_err(|e| decode(name, e))?)
}

/// `key`, if it is an Ed25519 key (the only type cairn signs with).
fn ed25519_only(key: Keypair) -> Result<Keypair, KeyError> {
    match key.key_type() {
        libp2p::identity::KeyType::Ed25519 => Ok(key),
        other => Err(KeyError::UnsupportedType {
            kind: other.to_string(),
        }),
    }
}

/// An imported key in `format`.
fn read_key(bytes: &[u8], format: KeyFormat) -> Result<Keypair, KeyError> {
    let bad = |reason: String| KeyError::Decode {
        what: "the imported key".into(),
        format,
        reason,
    };
    match format {
        KeyFormat::Libp2pProtobuf => {
            ed25519_only(Keypair::from_protobuf_encoding(bytes).map_err(|e| bad(e.to_string()))?)
        }
        KeyFormat::PemPkcs8 => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
            let signing =
                ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(|e| bad(e.to_string()))?;
            Keypair::ed25519_from_bytes(signing.to_bytes()).map_err(|e| bad(e.to_string()))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_dir_private(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Writes `bytes` to a new file readable by its owner only, synced.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: [u8; 32] = [7u8; 32];

    fn own() -> Keypair {
        Keypair::ed25519_from_bytes(OWN).unwrap()
    }

    fn stores(dir: &Path) -> Vec<Keystore> {
        vec![
            Keystore::open(dir.join("keystore"), OWN),
            Keystore::in_memory(OWN),
        ]
    }

    #[test]
    fn keys_are_made_listed_renamed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        for ks in stores(dir.path()) {
            let a = ks.generate("alpha", "ed25519").unwrap();
            let b = ks.generate("beta", "Ed25519").unwrap();
            assert_ne!(a.id, b.id);
            let names: Vec<String> = ks.list().unwrap().into_iter().map(|k| k.name).collect();
            assert_eq!(names, ["self", "alpha", "beta"]);
            assert_eq!(ks.list().unwrap()[0].id, own().public().to_peer_id());
            assert!(matches!(
                ks.generate("alpha", "ed25519"),
                Err(KeyError::Exists { .. })
            ));
            assert!(matches!(
                ks.rename("alpha", "beta", false),
                Err(KeyError::Exists { .. })
            ));
            let (moved, replaced) = ks.rename("alpha", "beta", true).unwrap();
            assert_eq!((moved.id, replaced), (a.id, true));
            assert_eq!(ks.get("beta").unwrap().public().to_peer_id(), a.id);
            assert!(matches!(ks.get("alpha"), Err(KeyError::NotFound { .. })));
            assert_eq!(ks.remove("beta").unwrap().id, a.id);
            assert_eq!(ks.list().unwrap().len(), 1);
        }
    }

    #[test]
    fn self_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for ks in stores(dir.path()) {
            assert!(matches!(
                ks.generate("self", "ed25519"),
                Err(KeyError::Exists { .. })
            ));
            assert!(matches!(ks.remove("self"), Err(KeyError::SelfKey { .. })));
            assert!(matches!(
                ks.rename("self", "x", false),
                Err(KeyError::SelfKey { .. })
            ));
            for bad in ["", "a/b", ".hidden", "tab\there", &"n".repeat(151)] {
                let err = ks.generate(bad, "ed25519").unwrap_err();
                assert!(
                    matches!(err, KeyError::InvalidName { .. }),
                    "{bad:?}: {err}"
                );
            }
            assert!(matches!(
                ks.generate("r", "rsa"),
                Err(KeyError::UnsupportedType { .. })
            ));
            // The longest name fits a file name.
            ks.generate(&"n".repeat(150), "ed25519").unwrap();
        }
    }

    #[test]
    fn export_and_import_round_trip_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for ks in stores(dir.path()) {
            let made = ks.generate("k", "ed25519").unwrap();
            for format in [KeyFormat::Libp2pProtobuf, KeyFormat::PemPkcs8] {
                let bytes = ks.export("k", format).unwrap();
                let name = format!("copy-{format}");
                assert_eq!(ks.import(&name, &bytes, format).unwrap().id, made.id);
                let other = match format {
                    KeyFormat::Libp2pProtobuf => KeyFormat::PemPkcs8,
                    KeyFormat::PemPkcs8 => KeyFormat::Libp2pProtobuf,
                };
                let err = ks.import("wrong", &bytes, other).unwrap_err();
                assert!(matches!(err, KeyError::Decode { .. }), "{err}");
            }
            let pem = String::from_utf8(ks.export("self", KeyFormat::PemPkcs8).unwrap()).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            assert!(matches!(
                ks.import("junk", b"\x08\x01\x12\x03abc", KeyFormat::Libp2pProtobuf),
                Err(KeyError::Decode { .. })
            ));
        }
    }

    #[test]
    fn key_files_are_private_and_named_as_kubo_names_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path().join("keystore"), OWN);
        ks.generate("my-key", "ed25519").unwrap();
        let keystore = dir.path().join("keystore");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keystore), 0o700);
        // base32("my-key") = nv4s223fpe
        let file = keystore.join("key_nv4s223fpe");
        assert_eq!(mode(&file), 0o600);
        let key = Keypair::from_protobuf_encoding(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            key.public().to_peer_id(),
            ks.get("my-key").unwrap().public().to_peer_id()
        );
        // A stray file is not a key.
        std::fs::write(keystore.join("notes.txt"), "x").unwrap();
        assert_eq!(ks.list().unwrap().len(), 2);
    }

    #[test]
    fn ipns_names_are_base36_libp2p_key_cids() {
        let name = ipns_name(&own().public().to_peer_id());
        assert!(name.starts_with("k51qzi5uqu5d"), "{name}");
    }
}
