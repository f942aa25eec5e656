//! [`NodeApi`] through a running daemon's RPC API (the daemon owns the
//! repo while it runs): each command is one call whose answer is read into
//! the same values the local path gives.

use super::{AddSource, BlockInput, CommandError, DagPutArgs};
use super::{ExportStats, NodeApi};
use crate::block::HashAlg;
use crate::dag::hamt::SizeEstimate;
use crate::names::KeyFormat;
use crate::node::AddOptions;
use crate::rpc::client::{Client, UploadPart};
use crate::rpc::types;
use std::path::{Path, PathBuf};

/// The one part of a `block put` or `dag put` upload.
fn input_part(input: BlockInput, name: &str) -> UploadPart {
    match input {
        BlockInput::File(path) => UploadPart::File {
            name: name.into(),
            path,
        },
        BlockInput::Stdin => UploadPart::Stdin { name: name.into() },
    }
}

/// The parts of an upload of `paths`, in the order a local add walks them
/// (sorted names, directories before their contents), with the same checks.
fn plan_upload(
    paths: &[PathBuf],
    recursive: bool,
    hidden: bool,
) -> Result<Vec<UploadPart>, CommandError> {
    let mut parts = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(CommandError::file(path))?;
        if meta.is_dir() && !recursive {
            return Err(CommandError::Invalid(format!(
                "{}: is a directory (use -r)",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        plan_entry(path, name, hidden, &mut parts)?;
    }
    Ok(parts)
}

/// Appends `path` (named `name` in the upload) and, for a directory, what
/// it holds.
fn plan_entry(
    path: &Path,
    name: String,
    hidden: bool,
    parts: &mut Vec<UploadPart>,
) -> Result<(), CommandError> {
    let not = |what: &str| CommandError::Invalid(format!("{}: {what}", path.display()));
    let meta = std::fs::symlink_metadata(path).map_err(CommandError::file(path))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(CommandError::file(path))?;
        let target = target
            .to_str()
            .ok_or_else(|| not("symlink target is not valid UTF-8"))?;
        parts.push(UploadPart::Symlink {
            name,
            target: target.to_string(),
        });
    } else if ft.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(CommandError::file(path))? {
            let entry = entry.map_err(CommandError::file(path))?;
            let Some(child) = entry.file_name().to_str().map(String::from) else {
                return Err(CommandError::Invalid(format!(
                    "{}: file name is not valid UTF-8 (UnixFS names are UTF-8)",
                    entry.path().display()
                )));
            };
            if hidden || !child.starts_with('.') {
                names.push(child);
            }
        }
        names.sort();
        parts.push(UploadPart::Directory { name: name.clone() });
        for child in names {
            plan_entry(&path.join(&child), format!("{name}/{child}"), hidden, parts)?;
        }
    } else if ft.is_file() {
        parts.push(UploadPart::File {
            name,
            path: path.to_path_buf(),
        });
    } else {
        return Err(not("not a regular file, directory or symlink"));
    }
    Ok(())
}

/// `add`'s arguments for `opts`, sent explicitly so the daemon builds the
/// same CIDs as a local add with this repo's config and these flags.
fn add_args(opts: &AddOptions) -> Vec<(&'static str, String)> {
    let import = &opts.import;
    vec![
        ("cid-version", import.format.version.to_string()),
        ("hash", import.format.hash.to_string()),
        ("chunker", import.chunker.to_string()),
        ("raw-leaves", import.raw_leaves.to_string()),
        ("max-links", import.max_links.to_string()),
        ("layout", import.layout.to_string()),
        (
            "shard-threshold",
            import.sharding.threshold_bytes.to_string(),
        ),
        (
            "shard-estimate",
            match import.sharding.estimate {
                SizeEstimate::Links => "links",
                SizeEstimate::Block => "block",
            }
            .to_string(),
        ),
        ("pin", opts.pin.to_string()),
        ("only-hash", opts.only_hash.to_string()),
        ("progress", "true".into()),
    ]
}

/// Unpacks the tar stream of `get` into `tmp`; returns its one top entry
/// and what it held.
fn unpack(reader: impl std::io::Read, tmp: &Path) -> Result<(PathBuf, ExportStats), String> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    archive.set_preserve_mtime(false);
    let mut stats = ExportStats::default();
    let mut top: Option<PathBuf> = None;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let entry_path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let first = entry_path
            .components()
            .next()
            .map(|c| PathBuf::from(c.as_os_str()));
        if top.is_none() {
            top = first.clone();
        } else if first != top {
            return Err("the daemon sent a tar with more than one top entry".into());
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => stats.directories += 1,
            tar::EntryType::Symlink => stats.symlinks += 1,
            tar::EntryType::Regular => {
                stats.files += 1;
                stats.bytes += entry.header().size().map_err(|e| e.to_string())?;
            }
            _ => {}
        }
        // unpack_in refuses absolute paths, `..` and writes through
        // symlinks outside the target.
        if !entry.unpack_in(tmp).map_err(|e| e.to_string())? {
            return Err(format!("refusing unsafe entry {}", entry_path.display()));
        }
    }
    let top = top.ok_or("the daemon sent an empty tar")?;
    Ok((top, stats))
}

/// Counts bytes read through it for a progress callback.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

impl NodeApi for Client {
    fn id(&self) -> Result<types::IdResponse, CommandError> {
        Ok(self.call_json("id", &[])?)
    }

    fn add(
        &self,
        input: AddSource<'_>,
        opts: &AddOptions,
        on_added: &mut dyn FnMut(&types::AddedLine),
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<String>, CommandError> {
        let args = add_args(opts);
        let arg_refs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (parts, stdin) = match input {
            AddSource::Stdin => (
                vec![UploadPart::Stdin {
                    name: "stdin".into(),
                }],
                true,
            ),
            AddSource::Paths { paths, recursive } => {
                (plan_upload(paths, recursive, opts.hidden)?, false)
            }
        };
        let mut last = None;
        // Progress lines count each file's bytes; the total sums them.
        let (mut done, mut current, mut current_bytes) = (0u64, String::new(), 0u64);
        self.call_lines("add", &arg_refs, Some(parts), &mut |v| {
            let mut added = match v {
                types::AddEvent::Progress(p) => {
                    if p.name != current {
                        done += current_bytes;
                        current = p.name;
                    }
                    current_bytes = p.bytes;
                    progress(done + p.bytes);
                    return Ok(());
                }
                types::AddEvent::Added(a) => a,
            };
            if stdin {
                // Named by its CID, as a local add of stdin names it.
                added.name = added.hash.clone();
            }
            if stdin || !added.name.contains('/') {
                last = Some(added.hash.clone());
            }
            on_added(&added);
            Ok(())
        })?;
        Ok(last)
    }

    fn cat(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), CommandError> {
        let offset = offset.to_string();
        let length = length.map(|l| l.to_string());
        let mut args = vec![("arg", path), ("offset", offset.as_str())];
        if let Some(l) = &length {
            args.push(("length", l.as_str()));
        }
        self.call_to("cat", &args, out, progress)?;
        Ok(())
    }

    fn get(
        &self,
        path: &str,
        out: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportStats, CommandError> {
        if out.symlink_metadata().is_ok() {
            return Err(CommandError::Invalid(format!(
                "{}: already exists; refusing to overwrite",
                out.display()
            )));
        }
        // Unpacked into a hidden sibling, renamed into place when complete.
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("out")
            .to_string();
        let tmp = out.with_file_name(format!(".{name}.cairn-partial-{}", std::process::id()));
        std::fs::create_dir(&tmp).map_err(CommandError::file(&tmp))?;
        let result = (|| {
            let reader = self.call_reader("get", &[("arg", path)])?;
            let counting = Counting {
                inner: reader,
                read: 0,
                progress,
            };
            let (top, stats) = unpack(counting, &tmp).map_err(|reason| CommandError::Unpack {
                path: out.to_path_buf(),
                reason,
            })?;
            std::fs::rename(tmp.join(&top), out).map_err(CommandError::file(out))?;
            Ok(stats)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    fn ls(&self, path: &str) -> Result<Vec<types::LsLink>, CommandError> {
        let v: types::LsResponse = self.call_json("ls", &[("arg", path)])?;
        Ok(v.objects.into_iter().flat_map(|o| o.links).collect())
    }

    fn pin_add(
        &self,
        path: &str,
        recursive: bool,
        replication: Option<u8>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<String>, CommandError> {
        let r = recursive.to_string();
        let factor = replication.map(|n| n.to_string());
        let mut args = vec![
            ("arg", path),
            ("recursive", r.as_str()),
            ("progress", "true"),
        ];
        if let Some(f) = &factor {
            args.push(("replication", f.as_str()));
        }
        let mut pinned = Vec::new();
        self.call_lines("pin/add", &args, None, &mut |v| {
            match v {
                types::PinAddEvent::Progress(p) => progress(p.progress),
                types::PinAddEvent::Done(p) => pinned.extend(p.pins),
            }
            Ok(())
        })?;
        Ok(pinned)
    }

    fn pin_rm(&self, path: &str) -> Result<Vec<String>, CommandError> {
        let v: types::Pins = self.call_json("pin/rm", &[("arg", path)])?;
        Ok(v.pins)
    }

    fn pin_ls(&self, kind: &str) -> Result<Vec<(String, String)>, CommandError> {
        let v: types::PinLsResponse = self.call_json("pin/ls", &[("type", kind)])?;
        Ok(v.order)
    }

    fn pin_status(&self, path: &str) -> Result<types::PinStatus, CommandError> {
        Ok(self.call_json("pin/status", &[("arg", path)])?)
    }

    fn block_get(&self, cid: &str, out: &mut dyn std::io::Write) -> Result<(), CommandError> {
        self.call_to("block/get", &[("arg", cid)], out, &mut |_| {})?;
        Ok(())
    }

    fn block_put(
        &self,
        input: BlockInput,
        codec: &str,
        hash: HashAlg,
        pin: bool,
    ) -> Result<types::BlockStat, CommandError> {
        let part = input_part(input, "block");
        let (hash, pin) = (hash.to_string(), pin.to_string());
        let args = [("cid-codec", codec), ("mhtype", &hash), ("pin", &pin)];
        Ok(self.call_last("block/put", &args, Some(vec![part]))?)
    }

    fn block_stat(&self, cid: &str) -> Result<types::BlockStat, CommandError> {
        Ok(self.call_json("block/stat", &[("arg", cid)])?)
    }

    fn dag_get(
        &self,
        path: &str,
        codec: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<(), CommandError> {
        let args = [("arg", path), ("output-codec", codec)];
        self.call_to("dag/get", &args, out, &mut |_| {})?;
        Ok(())
    }

    fn dag_put(
        &self,
        input: BlockInput,
        a: &DagPutArgs,
    ) -> Result<types::DagPutOutput, CommandError> {
        let (hash, pin) = (a.hash.to_string(), a.pin.to_string());
        let args = [
            ("input-codec", a.input_codec.as_str()),
            ("store-codec", a.store_codec.as_str()),
            ("hash", &hash),
            ("pin", &pin),
        ];
        let part = input_part(input, "data");
        Ok(self.call_last("dag/put", &args, Some(vec![part]))?)
    }

    fn dag_resolve(&self, path: &str) -> Result<types::DagResolveOutput, CommandError> {
        Ok(self.call_json("dag/resolve", &[("arg", path)])?)
    }

    fn resolve_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<types::ResolveOutput, CommandError> {
        let recursive = recursive.to_string();
        Ok(self.call_json("resolve", &[("arg", path), ("recursive", &recursive)])?)
    }

    fn object_stat(&self, path: &str) -> Result<types::ObjectStatOutput, CommandError> {
        Ok(self.call_json("object/stat", &[("arg", path)])?)
    }

    fn config_show(&self) -> Result<serde_json::Value, CommandError> {
        Ok(self.call_json("config/show", &[])?)
    }

    fn dag_export(&self, path: &str, out: &mut dyn std::io::Write) -> Result<(), CommandError> {
        self.call_to("dag/export", &[("arg", path)], out, &mut |_| {})?;
        Ok(())
    }

    fn dag_import(
        &self,
        file: &Path,
        pin_roots: bool,
    ) -> Result<Vec<types::DagImportEvent>, CommandError> {
        if !file.is_file() {
            return Err(CommandError::Invalid(format!(
                "{}: not a readable file",
                file.display()
            )));
        }
        let part = UploadPart::File {
            name: "car".into(),
            path: file.to_path_buf(),
        };
        let pin = pin_roots.to_string();
        let mut events = Vec::new();
        self.call_lines(
            "dag/import",
            &[("pin-roots", &pin)],
            Some(vec![part]),
            &mut |v| {
                events.push(v);
                Ok(())
            },
        )?;
        Ok(events)
    }

    fn key_gen(&self, name: &str, kind: &str) -> Result<types::KeyOutput, CommandError> {
        Ok(self.call_json("key/gen", &[("arg", name), ("type", kind)])?)
    }

    fn key_list(&self) -> Result<Vec<types::KeyOutput>, CommandError> {
        let v: types::KeyList = self.call_json("key/list", &[("l", "true")])?;
        Ok(v.keys)
    }

    fn key_rm(&self, name: &str) -> Result<types::KeyOutput, CommandError> {
        let v: types::KeyList = self.call_json("key/rm", &[("arg", name)])?;
        v.keys.into_iter().next().ok_or_else(|| {
            CommandError::Client(crate::rpc::client::ClientError::NoResult {
                call: "key/rm".into(),
            })
        })
    }

    fn key_rename(
        &self,
        old: &str,
        new: &str,
        force: bool,
    ) -> Result<types::KeyRenameOutput, CommandError> {
        let force = force.to_string();
        let args = [("arg", old), ("arg", new), ("force", force.as_str())];
        Ok(self.call_json("key/rename", &args)?)
    }

    fn key_export(&self, name: &str, format: KeyFormat) -> Result<Vec<u8>, CommandError> {
        let format = format.to_string();
        let mut bytes = Vec::new();
        let args = [("arg", name), ("format", format.as_str())];
        self.call_to("key/export", &args, &mut bytes, &mut |_| {})?;
        Ok(bytes)
    }

    fn key_import(
        &self,
        name: &str,
        file: &Path,
        format: KeyFormat,
    ) -> Result<types::KeyOutput, CommandError> {
        // Read here, so a missing or oversized file is the same error as
        // without a daemon.
        super::local::read_key_file(file)?;
        let part = UploadPart::File {
            name: "key".into(),
            path: file.to_path_buf(),
        };
        let format = format.to_string();
        let args = [("arg", name), ("format", format.as_str())];
        Ok(self.call_last("key/import", &args, Some(vec![part]))?)
    }

    fn name_publish(
        &self,
        value: &str,
        opts: &crate::names::ipns::PublishOptions,
        allow_offline: bool,
    ) -> Result<types::NamePublishOutput, CommandError> {
        let go = |d: std::time::Duration| format!("{}ms", d.as_millis());
        let key = opts.key.clone().unwrap_or_else(|| "self".into());
        let lifetime = opts.lifetime.map(go);
        let ttl = opts.ttl.map(go);
        let offline = allow_offline.to_string();
        let mut args = vec![("arg", value), ("key", key.as_str())];
        args.push(("allow-offline", offline.as_str()));
        if let Some(l) = &lifetime {
            args.push(("lifetime", l.as_str()));
        }
        if let Some(t) = &ttl {
            args.push(("ttl", t.as_str()));
        }
        Ok(self.call_json("name/publish", &args)?)
    }

    fn name_resolve(
        &self,
        name: &str,
        opts: crate::names::ipns::ResolveOptions,
    ) -> Result<types::NameResolveOutput, CommandError> {
        let recursive = opts.recursive.to_string();
        let nocache = opts.nocache.to_string();
        let args = [
            ("arg", name),
            ("recursive", recursive.as_str()),
            ("nocache", nocache.as_str()),
        ];
        Ok(self.call_json("name/resolve", &args)?)
    }

    fn repo_gc(&self) -> Result<types::GcResponse, CommandError> {
        Ok(self.call_json("repo/gc", &[])?)
    }

    fn repo_stat(&self) -> Result<types::RepoStatResponse, CommandError> {
        Ok(self.call_json("repo/stat", &[])?)
    }

    fn repo_verify(
        &self,
        _progress: &mut dyn FnMut(u64),
    ) -> Result<types::VerifyResponse, CommandError> {
        Ok(self.call_json("repo/verify", &[])?)
    }

    fn swarm_peers(&self) -> Result<Vec<types::SwarmPeer>, CommandError> {
        let v: types::SwarmPeers = self.call_json("swarm/peers", &[])?;
        Ok(v.peers)
    }

    fn swarm_connect(&self, addr: &str) -> Result<Vec<String>, CommandError> {
        let v: types::Strings = self.call_json("swarm/connect", &[("arg", addr)])?;
        Ok(v.strings)
    }

    fn find_providers(&self, cid: &str, max: usize) -> Result<Vec<String>, CommandError> {
        let n = max.to_string();
        let mut found = Vec::new();
        self.call_lines(
            "routing/findprovs",
            &[("arg", cid), ("num-providers", &n)],
            None,
            &mut |v: types::RoutingEvent| {
                if v.r#type == types::RoutingEvent::PROVIDER {
                    found.extend(v.responses.into_iter().map(|r| r.id));
                }
                Ok(())
            },
        )?;
        Ok(found)
    }

    fn reprovide(&self) -> Result<u64, CommandError> {
        let v: types::ReprovideResponse = self.call_json("routing/reprovide", &[])?;
        Ok(v.keys)
    }

    fn stats_bw(&self) -> Result<types::BandwidthStats, CommandError> {
        Ok(self.call_json("stats/bw", &[])?)
    }

    fn stats_dht(&self) -> Result<types::DhtStats, CommandError> {
        Ok(self.call_json("stats/dht", &[])?)
    }

    fn bitswap_stat(&self) -> Result<types::BitswapStat, CommandError> {
        Ok(self.call_json("bitswap/stat", &[])?)
    }

    fn shutdown(&self) -> Result<(), CommandError> {
        Ok(self.call("shutdown", &[])?)
    }

    fn client(&self) -> Option<&Client> {
        Some(self)
    }
}
