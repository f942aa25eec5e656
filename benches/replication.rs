//! Replication figures: a root pinned at factor 3 on a 5-daemon loopback
//! network; one holder is killed; how long until three live holders again,
//! and how many bytes the repair moved (against the root's size).
//!
//! The settings are the test ones (repair every second, grace 3 s, no
//! repair bandwidth limit) so the figure is detection + transfer, not the
//! production grace period (15 min by default).
//!
//! Run: `cargo bench --bench replication`. Size: `CAIRN_BENCH_MB` (default
//! 1024); repos go to `CAIRN_BENCH_DIR` (default the system temp dir).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cairn() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

fn run_ok(repo: &Path, args: &[&str]) -> String {
    let out = Command::new(cairn())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A daemon killed (SIGKILL, by its PID) on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn set(repo: &Path, section: &str, key: &str, value: &str) {
    let path = repo.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let mut doc: toml::Table = toml::from_str(&text).expect("config parses");
    let v: toml::Value =
        toml::from_str::<toml::Table>(&format!("v = {value}")).expect("value")["v"].clone();
    doc.entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .expect("a table")
        .insert(key.to_string(), v);
    std::fs::write(&path, toml::to_string(&doc).expect("toml")).expect("write config");
}

fn start(repo: &Path, bootstrap: Option<&str>) -> (Daemon, String) {
    let mut cmd = Command::new(cairn());
    cmd.arg("--repo").arg(repo).args([
        "daemon",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        "127.0.0.1:0",
        "--gateway",
        "off",
    ]);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("daemon output");
        if let Some(a) = line.strip_prefix("Swarm listening on ") {
            addr.get_or_insert_with(|| a.to_string());
        }
        if line.contains("Daemon is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (Daemon(child), addr.expect("an address"))
}

fn pinned_holders(repo: &Path, cid: &str) -> Vec<String> {
    let out = run_ok(repo, &["pin", "status", "--json", cid]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["state"] == "pinned")
        .filter_map(|h| h["peer"].as_str().map(String::from))
        .collect()
}

fn repair_bytes(repo: &Path) -> u64 {
    let Ok(addr) = std::fs::read_to_string(repo.join("api")) else {
        return 0;
    };
    let port = addr.trim().rsplit('/').next().unwrap_or("0").to_string();
    let Ok(resp) = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call() else {
        return 0;
    };
    let text = resp.into_body().read_to_string().unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("cairn_replication_repair_bytes_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn main() {
    let mb: u64 = std::env::var("CAIRN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("cairn-bench-repl-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let repos: Vec<PathBuf> = (0..5).map(|i| base.join(format!("node-{i}"))).collect();
    for r in &repos {
        run_ok(r, &["init"]);
        set(r, "replication", "repair_interval", "\"1s\"");
        set(r, "replication", "grace", "\"3s\"");
        set(r, "replication", "max", "3");
        set(r, "replication", "repair_bandwidth", "\"0\"");
        set(r, "replication", "scrub_interval", "\"24h\"");
        set(r, "net", "fetch_timeout", "\"30s\"");
    }
    let file = base.join("data.bin");
    {
        let mut f = std::fs::File::create(&file).expect("data");
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for w in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            std::io::Write::write_all(&mut f, &chunk).expect("write");
        }
    }
    let cid = run_ok(&repos[0], &["add", "-Q", file.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let mut daemons: Vec<Option<Daemon>> = Vec::new();
    let (d0, a0) = start(&repos[0], None);
    daemons.push(Some(d0));
    for r in &repos[1..] {
        let (d, _) = start(r, Some(&a0));
        daemons.push(Some(d));
    }
    let ids: Vec<String> = repos
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&run_ok(r, &["id"])).expect("id");
            v["ID"].as_str().expect("an ID").to_string()
        })
        .collect();
    let placed = Instant::now();
    run_ok(&repos[0], &["pin", "add", "--replication", "3", &cid]);
    while pinned_holders(&repos[0], &cid).len() < 3 {
        assert!(
            placed.elapsed() < Duration::from_secs(1800),
            "placement stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let placement = placed.elapsed();
    // Settle: a copy that was slow to confirm may have been placed a second
    // time; wait until the record lists exactly three pinned holders and
    // nothing else for three repair rounds, so the kill below removes one
    // of exactly three copies.
    let mut stable = 0;
    while stable < 3 {
        let out = run_ok(&repos[0], &["pin", "status", "--json", &cid]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let all = v["holders"].as_array().map_or(0, |h| h.len());
        let pinned = pinned_holders(&repos[0], &cid).len();
        stable = if all == 3 && pinned == 3 {
            stable + 1
        } else {
            0
        };
        assert!(
            placed.elapsed() < Duration::from_secs(1800),
            "placement did not settle"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let holders = pinned_holders(&repos[0], &cid);
    // Nodes that fetched a copy during placement and were trimmed keep the
    // blocks until GC; collect them so the repair measured below moves a
    // full copy, the worst case.
    for (i, r) in repos.iter().enumerate() {
        if !holders.contains(&ids[i]) {
            run_ok(r, &["repo", "gc"]);
        }
    }
    if std::env::var_os("CAIRN_BENCH_DEBUG").is_some() {
        eprintln!("{}", run_ok(&repos[0], &["pin", "status", &cid]));
    }
    let victim = ids
        .iter()
        .position(|id| holders.contains(id) && *id != ids[0])
        .expect("a holder besides node 0");
    let before: u64 = repos
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| repair_bytes(r))
        .sum();
    let killed = Instant::now();
    daemons[victim] = None;
    loop {
        let live = pinned_holders(&repos[0], &cid);
        if live.len() == 3 && !live.contains(&ids[victim]) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1800),
            "repair stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let restore = killed.elapsed();
    if std::env::var_os("CAIRN_BENCH_DEBUG").is_some() {
        eprintln!("{}", run_ok(&repos[0], &["pin", "status", &cid]));
    }
    let moved: u64 = repos
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| repair_bytes(r))
        .sum::<u64>()
        .saturating_sub(before);
    let size = mb * 1024 * 1024;
    println!("replication benchmark: {mb} MiB root, factor 3, 5 daemons on 127.0.0.1");
    println!(
        "initial placement of 2 copies: {:.1} s",
        placement.as_secs_f64()
    );
    println!(
        "one holder killed → 3 live holders again: {:.1} s (grace 3 s, repair every 1 s)",
        restore.as_secs_f64()
    );
    println!(
        "bytes moved by the repair: {} ({:.2}× the root)",
        moved,
        moved as f64 / size as f64
    );
    drop(daemons);
    let _ = std::fs::remove_dir_all(&base);
}
