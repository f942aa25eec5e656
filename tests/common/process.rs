//! Child processes the tests start besides cairn: run to completion under a
//! time bound (a hang fails the test instead of blocking CI), killed with
//! whatever they started; and the one-time setup of the JS harnesses
//! (`tests/npm-ci.sh DIR` installs a directory's pinned npm packages).

use anyhow::{anyhow, Context};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound for a setup script: the first run downloads packages (and the
/// browser tests' Chromium), later runs do nothing.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(900);

/// The crate's root directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed (by its PID, which the test started) and reaped
/// on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child started in a process group of its own; on drop the whole group
/// (the process and whatever it started: Chromium, npm...) is killed.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test created; its ID is
        // the PID of the child we started.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion with its output captured (and `stdin` fed to
/// it); kills it and what it started if it runs past `timeout`, and kills
/// whatever it left behind when it ends.
pub fn run_bounded(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<Output> {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut p = Group(cmd.spawn().with_context(|| format!("cannot run {what}"))?);
    if let Some(input) = stdin {
        let mut pipe = p.0.stdin.take().expect("piped");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(p.0.stdout.take().expect("piped")));
    let err = reader(Box::new(p.0.stderr.take().expect("piped")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = p.0.try_wait().context("waiting for the child")? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Stragglers (a browser left behind) and, on timeout, the command itself.
    drop(p);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(anyhow!(
            "{what} did not finish within {timeout:?} (killed)\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )),
    }
}

/// Runs `python SCRIPT ARGS` in `dir` with `env` added to its environment
/// and `spec` as JSON on its standard input, bounded by `timeout`; asserts
/// it succeeds and returns its last line of output parsed as JSON (the
/// Python client harnesses' results).
pub fn run_json_script(
    python: &Path,
    dir: &Path,
    script: &str,
    (args, env): (&[&str], &[(&str, &str)]),
    spec: &serde_json::Value,
    timeout: Duration,
) -> serde_json::Value {
    let mut cmd = Command::new(python);
    cmd.arg(dir.join(script))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied());
    let out = run_bounded(cmd, Some(spec.to_string().into_bytes()), timeout)
        .unwrap_or_else(|e| panic!("{script}: {e:#}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    serde_json::from_str(last.unwrap_or("")).unwrap_or_else(|e| {
        panic!("{script} printed no JSON ({e})\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    })
}

/// Runs `bash SCRIPT ARGS...` (paths relative to the crate root) once per
/// test binary and command line, bounded by [`SETUP_TIMEOUT`]; panics with
/// its output if it fails, saying that the tests need `needs`.
pub fn setup_once(script_and_args: &[&str], needs: &str) {
    static DONE: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
    let key: Vec<String> = script_and_args.iter().map(|s| s.to_string()).collect();
    // Held while the script runs: the binary's other tests wait for it.
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(&key) {
        return;
    }
    let t = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.args(script_and_args.iter().map(|a| root().join(a)));
    let problem = match run_bounded(cmd, None, SETUP_TIMEOUT) {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Some(format!("{e:#}")),
    };
    let line = script_and_args.join(" ");
    if let Some(e) = problem {
        panic!("these tests need {needs}: `bash {line}` failed: {e}");
    }
    eprintln!("`bash {line}` took {:.1?}", t.elapsed());
    done.push(key);
}

/// Installs the pinned npm packages of the JS harness in `dir` (relative to
/// the crate root, e.g. `tests/helia`) once per test binary.
pub fn npm_ci(dir: &str) -> PathBuf {
    setup_once(
        &["tests/npm-ci.sh", dir],
        "Node.js (the version in package.json's engines) and npm",
    );
    root().join(dir)
}
