//! Progress bars on stderr, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

fn visible() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte counter with rate (and ETA when `total` is known).
pub fn bytes_bar(hidden: bool, total: Option<u64>, what: &str) -> ProgressBar {
    if hidden || !visible() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(what.to_string());
    bar
}

/// A spinner with a counter, for work of unknown size.
pub fn spinner(what: &str) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {pos}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Shows, in `bar`'s message, the peers of the daemon's fetch of `path`
/// (`CID[/path]`) while a command waits on it: how many sent blocks, of how
/// many it may ask (polls `bitswap/stat` twice a second).
pub struct PeerWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The peers figure for the sessions fetching `root` in a `bitswap/stat`
/// answer: "from S of P peers", or `None` when no such session runs.
pub fn session_peers(
    stat: &cairn::rpc::types::BitswapStat,
    root: &cairn::block::Cid,
) -> Option<String> {
    let mut found = false;
    let (mut senders, mut peers) = (0u64, 0u64);
    for s in &stat.sessions {
        let same = s
            .root
            .as_deref()
            .and_then(|r| cairn::block::parse_cid(r).ok())
            .is_some_and(|r| r.hash() == root.hash());
        if same {
            found = true;
            senders = senders.max(s.senders);
            peers = peers.max(s.peers);
        }
    }
    found.then(|| format!("from {senders} of {peers} peers"))
}

pub fn watch_peers(
    client: Option<cairn::rpc::client::Client>,
    bar: ProgressBar,
    path: &str,
) -> PeerWatch {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let root = cairn::block::parse_cid(path).ok();
    let (Some(client), Some(root), false) = (client, root, bar.is_hidden()) else {
        return PeerWatch { stop, thread: None };
    };
    let flag = std::sync::Arc::clone(&stop);
    let what = bar.message();
    let thread = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(v) = client.call_json("bitswap/stat", &[]) {
                match session_peers(&v, &root) {
                    Some(peers) => bar.set_message(format!("{what} ({peers})")),
                    None => bar.set_message(what.clone()),
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    PeerWatch {
        stop,
        thread: Some(thread),
    }
}

impl PeerWatch {
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes under `path`, for the progress bar (best effort).
pub fn tree_size(path: &std::path::Path, hidden: bool) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .filter(|e| hidden || !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| tree_size(&e.path(), hidden))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn::block::{Block, CidFormat, HashAlg, RAW};
    use cairn::rpc::types::{BitswapStat, SessionStat};

    fn cid(text: &str) -> cairn::block::Cid {
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        };
        *Block::new(format, RAW, text.as_bytes().to_vec()).cid()
    }

    #[test]
    fn the_peers_shown_are_those_of_this_fetch() {
        let (mine, other) = (cid("mine"), cid("other"));
        let session = |root: Option<String>, peers, senders| SessionStat {
            blocks: 0,
            bytes: 0,
            peers,
            root,
            senders,
        };
        let mut stat = BitswapStat {
            active_sessions: 3,
            blocks_received: 0,
            blocks_sent: 0,
            data_received: 0,
            data_sent: 0,
            peers: Vec::new(),
            session_peers: 9,
            sessions: vec![
                session(Some(mine.to_string()), 3, 2),
                session(Some(other.to_string()), 9, 9),
                session(None, 9, 9),
            ],
        };
        assert_eq!(
            session_peers(&stat, &mine).as_deref(),
            Some("from 2 of 3 peers")
        );
        assert_eq!(session_peers(&stat, &cid("none")), None);
        stat.sessions.clear();
        assert_eq!(session_peers(&stat, &mine), None);
    }
}
