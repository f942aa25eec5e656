//! MFS writes against `add` of the same bytes: a file written in 1 MiB
//! appends (`files write --offset END`), then a 4 KiB overwrite at a random
//! offset, each timed with the blocks it wrote and the process's peak RSS,
//! and `add` of the same bytes into a fresh repo (same import options: the
//! repo's defaults). Both repos are on disk, in-process (`Node`).
//!
//! Run: `cargo bench --bench mfs`; `CAIRN_BENCH_MFS_MIB` sets the file size
//! (default 1024), `CAIRN_BENCH_DIR` where the repos go.

use cairn::names::mfs::{MfsPath, WriteOptions};
use cairn::node::{AddOptions, Node};
use std::time::Instant;

const MIB: usize = 1 << 20;

/// Peak RSS since the last reset, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Starts a new peak-RSS window.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Deterministic bytes for append `i`.
fn piece(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; MIB];
    for w in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
    }
    out
}

/// The same bytes as the appends, as one stream.
struct Pieces {
    next: usize,
    count: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl std::io::Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.next == self.count {
                return Ok(0);
            }
            self.buf = piece(self.next);
            self.next += 1;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn main() {
    let mib: usize = std::env::var("CAIRN_BENCH_MFS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let base = std::env::var("CAIRN_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let dir = tempfile::tempdir_in(base).expect("bench dir");
    let node = Node::open(&dir.path().join("mfs")).expect("open repo");
    let path = MfsPath::parse("/big").expect("path");
    let mfs = node.mfs_checked().expect("import options");

    reset_peak();
    let t = Instant::now();
    let before = mfs.blocks_written();
    for i in 0..mib {
        let opts = WriteOptions {
            offset: (i * MIB) as u64,
            create: true,
            ..WriteOptions::default()
        };
        mfs.write(&path, &mut &piece(i)[..], &opts).expect("append");
    }
    let append_s = t.elapsed().as_secs_f64();
    let append_blocks = mfs.blocks_written() - before;
    let append_rss = peak_rss_mib();
    let mfs_cid = mfs.resolve(&path).expect("written");

    reset_peak();
    let offset = (mib * MIB / 3 + 12_345) as u64;
    let before = mfs.blocks_written();
    let t = Instant::now();
    let opts = WriteOptions {
        offset,
        ..WriteOptions::default()
    };
    mfs.write(&path, &mut &[0x5a; 4096][..], &opts)
        .expect("overwrite");
    let overwrite_ms = t.elapsed().as_secs_f64() * 1000.0;
    let overwrite_blocks = mfs.blocks_written() - before;
    let overwrite_rss = peak_rss_mib();

    let added_node = Node::open(&dir.path().join("add")).expect("open repo");
    let opts = AddOptions::from_config(added_node.config()).expect("import options");
    reset_peak();
    let t = Instant::now();
    let reader = Pieces {
        next: 0,
        count: mib,
        buf: Vec::new(),
        pos: 0,
    };
    let added = added_node
        .add_reader(reader, &opts, &mut |_| {})
        .expect("add");
    let add_s = t.elapsed().as_secs_f64();
    let add_rss = peak_rss_mib();
    assert_eq!(added.cid, mfs_cid, "MFS and add disagree");

    let rate = |s: f64| mib as f64 / s;
    println!("size {mib} MiB, import {:?}", mfs.import_options());
    println!(
        "mfs: {mib} appends of 1 MiB: {append_s:.2} s ({:.0} MiB/s), {append_blocks} blocks, peak RSS {append_rss:.0} MiB",
        rate(append_s)
    );
    println!(
        "mfs: 4 KiB overwrite at {offset}: {overwrite_ms:.1} ms, {overwrite_blocks} blocks, peak RSS {overwrite_rss:.0} MiB"
    );
    println!(
        "add: same bytes: {add_s:.2} s ({:.0} MiB/s), peak RSS {add_rss:.0} MiB",
        rate(add_s)
    );
    println!("same CID: {mfs_cid}");
}
