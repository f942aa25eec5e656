//! `add`: a multipart upload of files, directories and symlinks built into
//! a UnixFS DAG as it streams in, with Kubo's import parameters, answered
//! as JSON lines (each entry, and progress through each file).

use super::upload::{feed, next_add_part, AddPart, PartReader};
use super::{
    bad_request, internal, json_lines_or_error, stream_error, ApiError, ApiState, Line, Params,
};
use crate::block::HashAlg;
use crate::node::{AddInput, AddOptions, NodeError};
use crate::rpc::types::{AddEvent, AddProgress, AddedLine};
use axum::extract::{Multipart, RawQuery, State};
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Import options from Kubo's `add` parameters.
fn add_options(s: &ApiState, q: &Params) -> Result<AddOptions, ApiError> {
    let mut import = s
        .online
        .node()
        .config()
        .import
        .options()
        .map_err(internal)?;
    let hash = match q.get("hash") {
        Some(h) => Some(h.parse::<HashAlg>().map_err(bad_request)?),
        None => None,
    };
    import
        .set_cid_version_and_hash(q.num::<u8>("cid-version")?, hash)
        .map_err(bad_request)?;
    if let Some(c) = q.get("chunker") {
        import.chunker = c.parse().map_err(bad_request)?;
    }
    if q.get("raw-leaves").is_some() {
        import.raw_leaves = q.bool("raw-leaves", true)?;
    }
    if let Some(m) = q.num::<usize>("max-links")? {
        import.max_links = m;
    }
    if let Some(l) = q.get("layout") {
        import.layout = l.parse().map_err(bad_request)?;
    }
    if q.bool("trickle", false)? {
        import.layout = crate::dag::builder::Layout::Trickle;
    }
    if let Some(t) = q.num::<u64>("shard-threshold")? {
        import.sharding.threshold_bytes = t;
    }
    match q.get("shard-estimate") {
        None => {}
        Some("links") => import.sharding.estimate = crate::dag::hamt::SizeEstimate::Links,
        Some("block") => import.sharding.estimate = crate::dag::hamt::SizeEstimate::Block,
        Some(other) => {
            return Err(bad_request(format!(
                "shard-estimate: expected links or block, not {other:?}"
            )))
        }
    }
    import.validate().map_err(bad_request)?;
    Ok(AddOptions {
        import,
        pin: q.bool("pin", true)?,
        only_hash: q.bool("only-hash", false)?,
        hidden: true,
        wrap: q.bool("wrap-with-directory", false)?,
    })
}

pub(super) async fn add(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let opts = add_options(&s, &q)?;
    let progress = q.bool("progress", false)?;
    let (entries_tx, entries_rx) = std::sync::mpsc::sync_channel::<Result<AddInput, NodeError>>(1);
    let (out_tx, out_rx) = mpsc::channel::<Line<AddEvent>>(64);
    let guard = s.online.gc_lock().clone().read_owned().await;
    // The builder runs on a blocking thread and pulls entries as they come.
    let node = Arc::clone(s.online.node());
    let builder_out = out_tx.clone();
    let builder = tokio::task::spawn_blocking(move || {
        let mut next = || entries_rx.recv().ok();
        let mut last_progress = 0u64;
        let result = node.add_entries(
            &mut next,
            &opts,
            &mut |e| {
                // Kubo's Size: the cumulative DAG size, as a string.
                let _ = builder_out.blocking_send(Ok(AddEvent::Added(AddedLine::from(e))));
            },
            // The provider lists the blocks itself once the add is done.
            &mut |_| {},
            &mut |name, n, done| {
                // As Kubo: every 256 KiB of a file, and once at its end.
                if progress && (done || n >= last_progress + PROGRESS_STEP_BYTES) {
                    last_progress = if done { 0 } else { n };
                    let _ = builder_out.blocking_send(Ok(AddEvent::Progress(AddProgress {
                        bytes: n,
                        name: name.to_string(),
                    })));
                }
            },
        );
        (result, opts)
    });
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        // Feed parts to the builder, each file's bytes through a channel.
        let mut failure = None;
        loop {
            let entry = match next_add_part(&mut multipart).await {
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
                Ok(Some(AddPart::Directory { path })) => AddInput::Directory { path },
                Ok(Some(AddPart::Symlink { path, target })) => AddInput::Symlink { path, target },
                Ok(Some(AddPart::File { path, field })) => {
                    let (tx, reader) = PartReader::new();
                    let entry = AddInput::File {
                        path,
                        reader: Box::new(reader),
                    };
                    if !send_entry(&entries_tx, Ok(entry)).await {
                        break;
                    }
                    feed(*field, &tx).await;
                    continue;
                }
            };
            if !send_entry(&entries_tx, Ok(entry)).await {
                break;
            }
        }
        if let Some(f) = failure {
            send_entry(&entries_tx, Err(NodeError::Upload(f.into()))).await;
        }
        drop(entries_tx);
        let (result, opts) = match builder.await {
            Ok(r) => r,
            Err(e) => {
                let _ = out_tx
                    .send(Err(stream_error(format!("add failed: {e}"))))
                    .await;
                return;
            }
        };
        drop(guard);
        match result {
            Ok(roots) => {
                if !opts.only_hash {
                    let pin = opts.pin.then_some(crate::store::PinKind::Recursive);
                    for r in &roots {
                        online.announce_added(r.cid, pin).await;
                    }
                }
            }
            Err(e) => {
                let _ = out_tx.send(Err(stream_error(e))).await;
            }
        }
    });
    Ok(json_lines_or_error(out_rx).await)
}

/// Hands `entry` to the builder (waiting on a blocking thread while it is
/// busy); false once the builder has stopped taking entries.
async fn send_entry(
    entries: &std::sync::mpsc::SyncSender<Result<AddInput, NodeError>>,
    entry: Result<AddInput, NodeError>,
) -> bool {
    let entries = entries.clone();
    tokio::task::spawn_blocking(move || entries.send(entry))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Progress lines every this many bytes of a file (Kubo's step).
const PROGRESS_STEP_BYTES: u64 = 256 * 1024;
