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

/// Shows the peers of running fetches in `bar`'s message while a command
/// waits on the daemon (polls `bitswap/stat` twice a second).
pub struct PeerWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn watch_peers(client: cairn::rpc::client::Client, bar: ProgressBar) -> PeerWatch {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if bar.is_hidden() {
        return PeerWatch { stop, thread: None };
    }
    let flag = std::sync::Arc::clone(&stop);
    let what = bar.message();
    let thread = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(v) = client.call_json("bitswap/stat", &[]) {
                let peers = v["SessionPeers"].as_u64().unwrap_or(0);
                bar.set_message(format!("{what} ({peers} peers)"));
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

/// A reader that reports how many bytes went through it.
pub struct CountingRead<R, F> {
    inner: R,
    total: u64,
    report: F,
}

impl<R, F: FnMut(u64)> CountingRead<R, F> {
    pub fn new(inner: R, report: F) -> Self {
        CountingRead {
            inner,
            total: 0,
            report,
        }
    }
}

impl<R: std::io::Read, F: FnMut(u64)> std::io::Read for CountingRead<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        (self.report)(self.total);
        Ok(n)
    }
}
