//! The pin and metadata journal: the durable home of pins and node
//! metadata (replication records among them). The index holds only block
//! locations, so it can be rebuilt from the segments alone while the pins
//! survive untouched here.
//!
//! `journal` in the store directory: a header, then entries appended:
//!
//! ```text
//! header  "CJOURNL2" (8 bytes)
//! entry   payload length u32 LE | CRC-32 (IEEE) of the payload u32 LE | payload
//! payload tag u8, then
//!           1 pin recursive   CID bytes
//!           2 pin direct      CID bytes
//!           3 unpin           CID bytes
//!           4 set metadata    key length u32 LE | key (UTF-8) | value
//!           5 remove metadata key (UTF-8)
//! ```
//!
//! Each change is appended and fsynced before the call returns (and
//! before it shows in memory); a write that fails is cut off again, so the
//! file always ends at a whole entry. Open replays the file into memory
//! (pins and metadata are small next to the blocks). A torn last entry
//! is cut off; a damaged entry with intact ones after it is skipped and
//! logged as an error, and the journal rewritten. When the file has grown
//! past twice its live content (plus [`SLACK_BYTES`]) it is rewritten as
//! one entry per live pin and key: temp file, fsync, rename, fsync the
//! directory.

use super::io_err;
use crate::block::Cid;
use crate::store::{PinKind, Result, StoreError};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// First bytes of the journal file.
const MAGIC: [u8; 8] = *b"CJOURNL2";

/// Bytes before an entry's payload: its length and checksum.
const FRAME: usize = 8;

/// Largest payload an entry may have (a damaged length above it is not
/// believed, so no allocation follows it).
const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// Growth allowed past twice the live content before a rewrite.
const SLACK_BYTES: u64 = 1 << 20;

const PIN_RECURSIVE: u8 = 1;
const PIN_DIRECT: u8 = 2;
const UNPIN: u8 = 3;
const META_SET: u8 = 4;
const META_REMOVE: u8 = 5;

/// One change to the pins or the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Pin(Cid, PinKind),
    Unpin(Cid),
    MetaSet(String, Vec<u8>),
    MetaRemove(String),
}

impl Entry {
    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::new();
        match self {
            Entry::Pin(cid, kind) => {
                p.push(match kind {
                    PinKind::Recursive => PIN_RECURSIVE,
                    PinKind::Direct => PIN_DIRECT,
                });
                p.extend_from_slice(&cid.to_bytes());
            }
            Entry::Unpin(cid) => {
                p.push(UNPIN);
                p.extend_from_slice(&cid.to_bytes());
            }
            Entry::MetaSet(key, value) => {
                p.push(META_SET);
                p.extend_from_slice(&(key.len() as u32).to_le_bytes());
                p.extend_from_slice(key.as_bytes());
                p.extend_from_slice(value);
            }
            Entry::MetaRemove(key) => {
                p.push(META_REMOVE);
                p.extend_from_slice(key.as_bytes());
            }
        }
        p
    }

    /// The entry framed for the file.
    fn framed(&self) -> Vec<u8> {
        let payload = self.payload();
        let mut out = Vec::with_capacity(FRAME + payload.len());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn decode(p: &[u8]) -> Option<Entry> {
        let (&tag, rest) = p.split_first()?;
        let cid = || crate::block::cid_from_bytes(rest).ok();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        Some(match tag {
            PIN_RECURSIVE => Entry::Pin(cid()?, PinKind::Recursive),
            PIN_DIRECT => Entry::Pin(cid()?, PinKind::Direct),
            UNPIN => Entry::Unpin(cid()?),
            META_SET => {
                let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                let key = rest.get(4..4usize.checked_add(len)?)?;
                Entry::MetaSet(text(key)?, rest[4 + len..].to_vec())
            }
            META_REMOVE => Entry::MetaRemove(text(rest)?),
            _ => return None,
        })
    }

    /// The entry framed at the start of `buf` and its framed length, if
    /// whole and intact.
    fn parse(buf: &[u8]) -> Option<(Entry, usize)> {
        let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
        if len > MAX_PAYLOAD_BYTES {
            return None;
        }
        let payload = buf.get(FRAME..FRAME + len)?;
        if crc32fast::hash(payload) != crc {
            return None;
        }
        Some((Entry::decode(payload)?, FRAME + len))
    }
}

/// Pins and metadata as the journal says they are now.
#[derive(Default)]
struct State {
    pins: BTreeMap<Cid, PinKind>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl State {
    fn apply(&mut self, e: Entry) {
        match e {
            Entry::Pin(cid, kind) => {
                self.pins.insert(cid, kind);
            }
            Entry::Unpin(cid) => {
                self.pins.remove(&cid);
            }
            Entry::MetaSet(k, v) => {
                self.meta.insert(k, v);
            }
            Entry::MetaRemove(k) => {
                self.meta.remove(&k);
            }
        }
    }

    /// The journal holding just this state.
    fn snapshot(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (cid, kind) in &self.pins {
            out.extend(Entry::Pin(*cid, *kind).framed());
        }
        for (k, v) in &self.meta {
            out.extend(Entry::MetaSet(k.clone(), v.clone()).framed());
        }
        out
    }
}

/// The open journal file.
struct Appender {
    file: File,
    /// Bytes in the file, all of them whole entries.
    len: u64,
    /// Bytes of the file when last rewritten (or opened).
    compact_len: u64,
}

/// The pins and metadata of a store, in memory and in the journal file.
pub(super) struct Journal {
    path: PathBuf,
    out: Mutex<Appender>,
    state: RwLock<State>,
}

/// Writes `bytes` to a new file at `path` atomically: temp file, fsync,
/// rename, fsync the directory.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and replays it.
    pub fn open(path: &Path) -> Result<Journal> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(path)(e)),
        };
        let mut state = State::default();
        let mut rewrite = false;
        if data.len() < MAGIC.len() && MAGIC.starts_with(&data) {
            // New, or its creation was cut short.
            rewrite = true;
        } else if !data.starts_with(&MAGIC) {
            return Err(StoreError::JournalDamaged {
                path: path.to_path_buf(),
                offset: 0,
            });
        } else {
            let mut pos = MAGIC.len();
            while pos < data.len() {
                if let Some((entry, n)) = Entry::parse(&data[pos..]) {
                    state.apply(entry);
                    pos += n;
                    continue;
                }
                let next = (pos + 1..data.len()).find(|&q| Entry::parse(&data[q..]).is_some());
                match next {
                    Some(q) => tracing::error!(
                        journal = %path.display(),
                        "damaged entries at bytes {pos}..{q} skipped: a pin or metadata change there is lost"
                    ),
                    None => tracing::warn!(
                        journal = %path.display(),
                        "cutting off a torn last entry at byte {pos}"
                    ),
                }
                rewrite = true;
                pos = next.unwrap_or(data.len());
            }
        }
        if rewrite {
            replace_file(path, &state.snapshot()).map_err(io_err(path))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        Ok(Journal {
            path: path.to_path_buf(),
            out: Mutex::new(Appender {
                file,
                len,
                compact_len: len,
            }),
            state: RwLock::new(state),
        })
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `entry` durably, then applies it in memory; rewrites the
    /// file when it has grown enough.
    fn append(&self, entry: Entry) -> Result<()> {
        self.append_many(vec![entry])
    }

    /// Appends `entries` with one write and one sync, then applies them
    /// in memory in order. A crash during the write keeps a prefix of
    /// them (the torn last one is cut off at open).
    fn append_many(&self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = entries.iter().flat_map(Entry::framed).collect();
        let written = out
            .file
            .write_all(&bytes)
            .and_then(|()| out.file.sync_data());
        if let Err(e) = written {
            // Cut a partial entry off so the file ends at a whole one.
            if let Err(cut) = out.file.set_len(out.len) {
                tracing::warn!(journal = %self.path.display(), "cutting off a failed entry: {cut}");
            }
            return Err(io_err(&self.path)(e));
        }
        out.len += bytes.len() as u64;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            state.apply(entry);
        }
        if out.len > 2 * out.compact_len + SLACK_BYTES {
            let snapshot = state.snapshot();
            drop(state);
            self.rewrite(&mut out, &snapshot);
        }
        Ok(())
    }

    /// Replaces the file with `snapshot`; on failure the longer file,
    /// which says the same, stays.
    fn rewrite(&self, out: &mut Appender, snapshot: &[u8]) {
        let reopened = replace_file(&self.path, snapshot)
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match reopened {
            Ok(file) => {
                out.file = file;
                out.len = snapshot.len() as u64;
                out.compact_len = out.len;
            }
            Err(e) => {
                tracing::warn!(journal = %self.path.display(), "rewriting the journal: {e}")
            }
        }
    }

    /// Adds or replaces a pin, durably.
    pub fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()> {
        self.append(Entry::Pin(*cid, kind))
    }

    /// Removes a pin, durably; returns its kind if there was one.
    pub fn unpin(&self, cid: &Cid) -> Result<Option<PinKind>> {
        let Some(kind) = self.pin_of(cid) else {
            return Ok(None);
        };
        self.append(Entry::Unpin(*cid))?;
        Ok(Some(kind))
    }

    /// Adds or replaces a pin of each of `cids`, durably, with one sync.
    pub fn pin_many(&self, cids: &[Cid], kind: PinKind) -> Result<()> {
        self.append_many(cids.iter().map(|c| Entry::Pin(*c, kind)).collect())
    }

    /// Removes the pins of `cids`, durably, with one sync; returns the
    /// kind each had (none: it was not pinned).
    pub fn unpin_many(&self, cids: &[Cid]) -> Result<Vec<Option<PinKind>>> {
        let kinds: Vec<Option<PinKind>> = {
            let state = self.state();
            let mut seen = std::collections::HashSet::new();
            cids.iter()
                .map(|c| state.pins.get(c).copied().filter(|_| seen.insert(*c)))
                .collect()
        };
        let entries = cids
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| k.is_some())
            .map(|(c, _)| Entry::Unpin(*c))
            .collect();
        self.append_many(entries)?;
        Ok(kinds)
    }

    /// The pin on `cid` itself, if any.
    pub fn pin_of(&self, cid: &Cid) -> Option<PinKind> {
        self.state().pins.get(cid).copied()
    }

    /// All pins, in CID order.
    pub fn pins(&self) -> Vec<(Cid, PinKind)> {
        self.state().pins.iter().map(|(c, k)| (*c, *k)).collect()
    }

    /// How many pins there are.
    pub fn pin_count(&self) -> u64 {
        self.state().pins.len() as u64
    }

    /// Node metadata under `key`.
    pub fn meta_get(&self, key: &str) -> Option<Vec<u8>> {
        self.state().meta.get(key).cloned()
    }

    /// Sets or (with `None`) removes node metadata under `key`, durably.
    pub fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.append(Entry::MetaSet(key.to_string(), v.to_vec())),
            None if self.state().meta.contains_key(key) => {
                self.append(Entry::MetaRemove(key.to_string()))
            }
            None => Ok(()),
        }
    }

    /// Every metadata entry whose key starts with `prefix`, in key order.
    pub fn meta_scan(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.state()
            .meta
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};

    fn cid(i: u32) -> Cid {
        Cid::new_v1(RAW, HashAlg::Sha2_256.digest(&i.to_be_bytes()))
    }

    fn filled(path: &Path) {
        let j = Journal::open(path).unwrap();
        j.pin(&cid(1), PinKind::Recursive).unwrap();
        j.pin(&cid(2), PinKind::Direct).unwrap();
        j.meta_put("a/x", Some(b"one")).unwrap();
        j.meta_put("a/y", Some(b"two")).unwrap();
        j.meta_put("b", Some(b"three")).unwrap();
        j.unpin(&cid(1)).unwrap();
        j.meta_put("a/y", None).unwrap();
    }

    fn assert_filled(j: &Journal) {
        assert_eq!(j.pins(), vec![(cid(2), PinKind::Direct)]);
        assert_eq!(j.meta_scan("a/"), vec![("a/x".into(), b"one".to_vec())]);
        assert_eq!(j.meta_get("b"), Some(b"three".to_vec()));
    }

    #[test]
    fn changes_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        filled(&path);
        assert_filled(&Journal::open(&path).unwrap());
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&Entry::Unpin(cid(2)).framed()[..9]).unwrap();
        drop(f);
        let j = Journal::open(&path).unwrap();
        assert_filled(&j);
        // Rewritten to what is live: no torn bytes left.
        assert!(std::fs::metadata(&path).unwrap().len() < whole);
        j.pin(&cid(3), PinKind::Recursive).unwrap();
        assert_eq!(Journal::open(&path).unwrap().pin_count(), 2);
    }

    #[test]
    fn a_damaged_entry_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        filled(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        // The first entry (pin 1, later removed anyway): its checksum.
        bytes[MAGIC.len() + 5] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert_filled(&Journal::open(&path).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Journal::open(&path),
            Err(StoreError::JournalDamaged { offset: 0, .. })
        ));
    }

    #[test]
    fn a_long_journal_is_rewritten_to_what_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::open(&path).unwrap();
        let value = vec![7u8; 64 << 10];
        for _ in 0..40 {
            j.meta_put("routing", Some(&value)).unwrap();
        }
        j.pin(&cid(9), PinKind::Recursive).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < 2 * (64 << 10) + SLACK_BYTES + 1000, "{len}");
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.meta_get("routing"), Some(value));
        assert_eq!(j.pins(), vec![(cid(9), PinKind::Recursive)]);
    }
}
