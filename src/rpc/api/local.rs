//! [`NodeApi`] on a repo open in this process (no daemon runs): reads and
//! writes the store directly; network commands need a daemon.

use super::{AddSource, BlockInput, CommandError, DagPutArgs, NodeApi};
use crate::block::{parse_cid, CidFormat, HashAlg, DAG_PB, RAW};
use crate::dag::ipld;
use crate::dag::reader::ExportStats;
use crate::names::ipns::ResolveOptions;
use crate::names::{KeyFormat, KeyInfo};
use crate::node::{AddOptions, Node, NodeError};
use crate::node::{DagPutOptions, MAX_DAG_PUT_INPUT};
use crate::rpc::types;
use crate::store::RebuildReport;
use std::io::{Read, Write};
use std::path::Path;

/// A key as the RPC API answers it (its IPNS name as the ID).
fn key_output(k: &KeyInfo) -> types::KeyOutput {
    types::KeyOutput {
        name: k.name.clone(),
        id: k.ipns_name(),
    }
}

/// A key file to import (refused past 64 KiB: no key is that large).
pub(super) fn read_key_file(file: &Path) -> Result<Vec<u8>, CommandError> {
    const MAX_KEY_BYTES: u64 = 64 * 1024;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(CommandError::file(file))?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(CommandError::Invalid(format!(
            "{}: over {MAX_KEY_BYTES} bytes, not a key",
            file.display()
        )));
    }
    Ok(bytes)
}

/// A block's input, at most `limit` bytes of it.
fn read_input(input: BlockInput, limit: u64) -> Result<Vec<u8>, CommandError> {
    let mut data = Vec::new();
    match input {
        BlockInput::File(f) => std::fs::File::open(&f)
            .and_then(|file| file.take(limit).read_to_end(&mut data))
            .map_err(CommandError::file(&f))?,
        BlockInput::Stdin => std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut data)
            .map_err(CommandError::file(Path::new("<stdin>")))?,
    };
    Ok(data)
}

/// The codec called `name`, given as option `key` (the daemon's words).
fn codec(key: &str, name: &str) -> Result<u64, CommandError> {
    ipld::codec_named(name).map_err(|e| CommandError::Invalid(format!("{key}: {e}")))
}

impl NodeApi for Node {
    fn id(&self) -> Result<types::IdResponse, CommandError> {
        // Offline, the configured addresses are where it will listen; one
        // with port 0 names no address until a daemon picks the port.
        use libp2p::multiaddr::Protocol;
        let addrs: Vec<String> = self
            .config()
            .net
            .listen
            .iter()
            .filter(|a| {
                a.parse::<libp2p::Multiaddr>().is_ok_and(|m| {
                    !m.iter()
                        .any(|p| matches!(p, Protocol::Tcp(0) | Protocol::Udp(0)))
                })
            })
            .cloned()
            .collect();
        Ok(types::IdResponse::for_node(self, &addrs)?)
    }

    fn add(
        &self,
        input: AddSource<'_>,
        opts: &AddOptions,
        on_added: &mut dyn FnMut(&types::AddedLine),
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<String>, CommandError> {
        let (paths, recursive) = match input {
            AddSource::Stdin => {
                let entry = self.add_reader(std::io::stdin().lock(), opts, progress)?;
                let line = types::AddedLine {
                    name: entry.cid.to_string(),
                    ..types::AddedLine::from(&entry)
                };
                on_added(&line);
                return Ok(Some(line.hash));
            }
            AddSource::Paths { paths, recursive } => (paths, recursive),
        };
        let mut last = None;
        // Each root's bytes count after those of the roots before it.
        let mut done = 0u64;
        for path in paths {
            let mut seen = 0u64;
            let root = self.add_path(
                path,
                recursive,
                opts,
                &mut |e| on_added(&types::AddedLine::from(e)),
                &mut |n| {
                    seen = n;
                    progress(done + n)
                },
            )?;
            done += seen;
            last = Some(root.cid.to_string());
        }
        Ok(last)
    }

    fn cat(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), CommandError> {
        let mut written = 0u64;
        for chunk in Node::cat(self, path, offset, length)? {
            let chunk = chunk.map_err(NodeError::from)?;
            out.write_all(&chunk).map_err(CommandError::Output)?;
            written += chunk.len() as u64;
            progress(written);
        }
        Ok(())
    }

    fn get(
        &self,
        path: &str,
        out: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportStats, CommandError> {
        Ok(Node::get(self, path, out, progress)?)
    }

    fn ls(&self, path: &str) -> Result<Vec<types::LsLink>, CommandError> {
        Ok(Node::ls(self, path)?
            .iter()
            .map(types::LsLink::from_entry)
            .collect())
    }

    fn pin_add(
        &self,
        path: &str,
        recursive: bool,
        replication: Option<u8>,
        _progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<String>, CommandError> {
        if replication.is_some() && !recursive {
            return Err(CommandError::Invalid(
                "--replication needs a recursive pin".into(),
            ));
        }
        let cid = self.resolve(path)?;
        Node::pin_add(self, &cid, recursive)?;
        if let Some(n) = replication {
            // Placed on peers when a daemon next runs.
            self.replicate_later(&cid, n)?;
        }
        Ok(vec![cid.to_string()])
    }

    fn pin_rm(&self, path: &str) -> Result<Vec<String>, CommandError> {
        let cid = self.resolve(path)?;
        // A replicated root is removed network-wide (a tombstone the next
        // daemon spreads), even where this node held no pin of its own.
        // The logs hold their heads already (a holder of every Node); the
        // S3 bucket index is asked when the repo has one.
        crate::s3::hold_pins_offline(self)?;
        match Node::pin_rm(self, &cid) {
            // Still named by the S3 endpoint (its pin now): its
            // replication, if any, is not the user's to end.
            Ok(crate::node::Unpinned::KeptBy(_)) => {}
            Ok(crate::node::Unpinned::Removed(_)) => {
                self.replication_tombstone(&cid)?;
            }
            Err(e @ NodeError::HeldBy { .. }) => return Err(e.into()),
            Err(e) => {
                if !self.replication_tombstone(&cid)? {
                    return Err(e.into());
                }
            }
        }
        Ok(vec![cid.to_string()])
    }

    fn pin_ls(&self, kind: &str) -> Result<Vec<(String, String)>, CommandError> {
        let kinds = Node::pin_kinds(kind).ok_or_else(|| {
            CommandError::Invalid(format!(
                "unknown pin type {kind:?} (expected all, recursive, direct or indirect)"
            ))
        })?;
        Ok(Node::pin_ls(self, kinds)?
            .into_iter()
            .map(|p| (p.cid.to_string(), p.kind.to_string()))
            .collect())
    }

    fn block_get(&self, cid: &str, out: &mut dyn Write) -> Result<(), CommandError> {
        let cid = parse_cid(cid).map_err(NodeError::from)?;
        let block = Node::block_get(self, &cid)?;
        out.write_all(block.data()).map_err(CommandError::Output)
    }

    fn block_put(
        &self,
        input: BlockInput,
        codec: &str,
        hash: HashAlg,
        pin: bool,
    ) -> Result<types::BlockStat, CommandError> {
        let codec = match codec {
            "raw" => RAW,
            "dag-pb" => DAG_PB,
            other => {
                return Err(CommandError::Invalid(format!(
                    "unsupported codec {other:?} (expected raw or dag-pb)"
                )))
            }
        };
        // One byte past the limit, so an oversized block is refused by
        // size rather than read whole.
        let data = read_input(input, crate::block::MAX_BLOCK_BYTES as u64 + 1)?;
        // Kubo's rule: dag-pb over SHA-256 keeps the CIDv0 form.
        let version = if codec == DAG_PB && hash == HashAlg::Sha2_256 {
            0
        } else {
            1
        };
        let size = data.len() as u64;
        let cid = Node::block_put(self, data, CidFormat { version, hash }, codec, pin)?;
        Ok(types::BlockStat {
            key: cid.to_string(),
            size,
        })
    }

    fn block_stat(&self, cid: &str) -> Result<types::BlockStat, CommandError> {
        let cid = parse_cid(cid).map_err(NodeError::from)?;
        let size = Node::block_stat(self, &cid)?;
        Ok(types::BlockStat {
            key: cid.to_string(),
            size,
        })
    }

    fn dag_get(
        &self,
        path: &str,
        codec_name: &str,
        out: &mut dyn Write,
    ) -> Result<(), CommandError> {
        let codec = codec("output-codec", codec_name)?;
        let r = self.dag_resolve(path)?;
        let bytes =
            ipld::encode(codec, &r.value).map_err(|e| CommandError::Invalid(e.to_string()))?;
        out.write_all(&bytes).map_err(CommandError::Output)
    }

    fn dag_put(
        &self,
        input: BlockInput,
        args: &DagPutArgs,
    ) -> Result<types::DagPutOutput, CommandError> {
        let opts = DagPutOptions {
            input_codec: codec("input-codec", &args.input_codec)?,
            store_codec: codec("store-codec", &args.store_codec)?,
            hash: args.hash,
            pin: args.pin,
        };
        // Past the limit the node refuses it, by size.
        let data = read_input(input, MAX_DAG_PUT_INPUT as u64 + 1)?;
        if data.len() > MAX_DAG_PUT_INPUT {
            return Err(CommandError::Invalid(format!(
                "input over {MAX_DAG_PUT_INPUT} bytes"
            )));
        }
        let cid = Node::dag_put(self, &data, opts)?;
        Ok(types::DagPutOutput {
            cid: types::CidLink {
                cid: cid.to_string(),
            },
        })
    }

    fn dag_resolve(&self, path: &str) -> Result<types::DagResolveOutput, CommandError> {
        Ok(types::DagResolveOutput::from(&Node::dag_resolve(
            self, path,
        )?))
    }

    fn resolve_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<types::ResolveOutput, CommandError> {
        let path = if path.starts_with("/ipns/") {
            let opts = ResolveOptions {
                recursive,
                nocache: false,
            };
            let named = Node::name_resolve(self, path, opts)?;
            if !recursive {
                return Ok(types::ResolveOutput { path: named });
            }
            named
        } else {
            path.to_string()
        };
        Ok(types::ResolveOutput::from(&Node::dag_resolve(self, &path)?))
    }

    fn object_stat(&self, path: &str) -> Result<types::ObjectStatOutput, CommandError> {
        Ok(types::ObjectStatOutput::from(&Node::object_stat(
            self, path,
        )?))
    }

    fn config_show(&self) -> Result<serde_json::Value, CommandError> {
        self.config()
            .redacted_json()
            .map_err(|e| CommandError::Invalid(format!("the config: {e}")))
    }

    fn dag_export(&self, path: &str, out: &mut dyn Write) -> Result<(), CommandError> {
        let cid = self.resolve(path)?;
        Node::dag_export(self, &cid, out)?;
        Ok(())
    }

    fn dag_import(
        &self,
        file: &Path,
        pin_roots: bool,
    ) -> Result<Vec<types::DagImportEvent>, CommandError> {
        let input = std::fs::File::open(file).map_err(CommandError::file(file))?;
        let r = Node::dag_import(self, input, pin_roots)?;
        let mut events: Vec<types::DagImportEvent> = r
            .roots
            .iter()
            .map(|root| {
                types::DagImportEvent::Root(types::DagImportRoot {
                    root: types::ImportedRoot {
                        cid: types::CidLink {
                            cid: root.to_string(),
                        },
                        pin_error_msg: String::new(),
                    },
                })
            })
            .collect();
        events.push(types::DagImportEvent::Stats(types::DagImportStats {
            stats: types::ImportStats {
                block_bytes_count: r.new_bytes,
                block_count: r.blocks,
            },
        }));
        Ok(events)
    }

    fn key_gen(&self, name: &str, kind: &str) -> Result<types::KeyOutput, CommandError> {
        Ok(key_output(
            &self.keys().generate(name, kind).map_err(NodeError::from)?,
        ))
    }

    fn key_list(&self) -> Result<Vec<types::KeyOutput>, CommandError> {
        let keys = self.keys().list().map_err(NodeError::from)?;
        Ok(keys.iter().map(key_output).collect())
    }

    fn key_rm(&self, name: &str) -> Result<types::KeyOutput, CommandError> {
        Ok(key_output(
            &self.keys().remove(name).map_err(NodeError::from)?,
        ))
    }

    fn key_rename(
        &self,
        old: &str,
        new: &str,
        force: bool,
    ) -> Result<types::KeyRenameOutput, CommandError> {
        let (key, overwrite) = self
            .keys()
            .rename(old, new, force)
            .map_err(NodeError::from)?;
        Ok(types::KeyRenameOutput {
            was: old.to_string(),
            now: key.name.clone(),
            id: key.ipns_name(),
            overwrite,
        })
    }

    fn key_export(&self, name: &str, format: KeyFormat) -> Result<Vec<u8>, CommandError> {
        Ok(self.keys().export(name, format).map_err(NodeError::from)?)
    }

    fn name_publish(
        &self,
        value: &str,
        opts: &crate::names::ipns::PublishOptions,
        allow_offline: bool,
    ) -> Result<types::NamePublishOutput, CommandError> {
        let (name, rec) = Node::name_publish(self, value, opts, allow_offline)?;
        Ok(types::NamePublishOutput {
            name: crate::names::keystore::ipns_name(&name),
            value: rec.value_text(),
        })
    }

    fn name_resolve(
        &self,
        name: &str,
        opts: crate::names::ipns::ResolveOptions,
    ) -> Result<types::NameResolveOutput, CommandError> {
        Ok(types::NameResolveOutput {
            path: Node::name_resolve(self, name, opts)?,
        })
    }

    fn key_import(
        &self,
        name: &str,
        file: &Path,
        format: KeyFormat,
    ) -> Result<types::KeyOutput, CommandError> {
        let bytes = read_key_file(file)?;
        let key = self.keys().import(name, &bytes, format);
        Ok(key_output(&key.map_err(NodeError::from)?))
    }

    fn repo_gc(&self) -> Result<types::GcResponse, CommandError> {
        Ok(types::GcResponse::from(&self.gc()?))
    }

    fn repo_stat(&self) -> Result<types::RepoStatResponse, CommandError> {
        Ok(types::RepoStatResponse::from(&self.stat()?))
    }

    fn repo_verify(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<types::VerifyResponse, CommandError> {
        Ok(types::VerifyResponse::from(&self.verify(progress)?))
    }

    fn repo_rebuild_index(&self) -> Result<RebuildReport, CommandError> {
        Ok(self.index_rebuilt().cloned().unwrap_or_default())
    }
}
