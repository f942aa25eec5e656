//! The S3 clients people use, unchanged, pinned to exact versions and
//! installed by the tests' own scripts, against a cairn daemon's S3
//! endpoint on 127.0.0.1 (each test with its own daemon and access key):
//!
//! - the AWS CLI v1 (`tests/s3-tools/awscli`): `aws s3api` and `aws s3
//!   cp/sync/ls/rm/rb/presign` (a 20 MiB cp in multipart), driven from
//!   here;
//! - s3fs with pyarrow and pandas (`tests/s3-tools/pydata`,
//!   `tests/s3-clients/s3fs_run.py`): a Parquet dataset of several files
//!   and a CSV on `s3://`, a 12 MiB file written in 5 MiB parts;
//! - Django's file storage through django-storages' S3 backend
//!   (`tests/s3-tools/django`, `tests/s3-clients/django_run.py`);
//! - rclone, Debian's package (`tests/s3-tools/rclone-setup.sh`): copy,
//!   sync, check, ls (and a 70 MiB copy in multipart), driven from here.
//!
//! Each tool directory's venv is its own: the AWS CLI carries its own
//! botocore and s3fs's aiobotocore pins another. Needs Python >= 3.11 with
//! its venv module and PyPI, and (for rclone's install) apt-get as root.
//! A failed setup fails the test with its reason.

mod common;

use common::process::{root, run_bounded, setup_once};
use common::s3::{
    create_key, etag_of, hex, md5_of, multipart_etag, run_script_with, s3_url, sha256_hex,
    venv_python, Signer,
};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// When one client command that has not finished is killed.
const COMMAND_KILL: Duration = Duration::from_secs(120);

/// A daemon serving S3 on 127.0.0.1 (any port) with one access key for
/// every bucket; the daemon stops on drop, before its repo goes.
struct S3Daemon {
    _daemon: Daemon,
    url: String,
    key: String,
    secret: String,
    repo: TestRepo,
}

impl S3Daemon {
    fn start() -> S3Daemon {
        let repo = TestRepo::new();
        let (key, secret) = create_key(&repo, &[]);
        let (daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
        S3Daemon {
            _daemon: daemon,
            url: s3_url(&banner),
            key,
            secret,
            repo,
        }
    }

    /// The answer to `method` (GET or HEAD) on `path` (`/bucket/key`) with
    /// `query`, signed with the daemon's key; it must succeed.
    fn signed(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> ureq::http::Response<ureq::Body> {
        let (url, headers) =
            Signer::new(&self.key, &self.secret).sign(method, &self.url, path, query);
        let mut req = match method {
            "HEAD" => ureq::head(&url),
            _ => ureq::get(&url),
        };
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req.call().unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// The ETag of the object at `path` (`/bucket/key`), from a signed HEAD.
    fn head_etag(&self, path: &str) -> String {
        let resp = self.signed("HEAD", path, &[]);
        let etag = resp.headers().get("etag").expect("an ETag");
        etag.to_str().expect("an ASCII ETag").to_string()
    }
}

/// Every file under `dir`, by its `/`-separated path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy();
                out.insert(rel.replace('\\', "/"), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Writes `files` (relative path → bytes) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, data) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

/// Runs `cmd` bounded by [`COMMAND_KILL`].
fn run(cmd: Command) -> Output {
    run_bounded(cmd, None, COMMAND_KILL).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `out`'s stdout, asserting it succeeded.
fn stdout_ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The AWS CLI as a user sets it up for an S3-compatible endpoint: keys in
/// its credentials file, region and path-style addressing in its config
/// file, `--endpoint-url` on each command. Nothing from the environment's
/// own AWS settings reaches it.
struct Aws {
    bin: PathBuf,
    endpoint: String,
    home: PathBuf,
}

impl Aws {
    fn new(s3: &S3Daemon) -> Aws {
        venv_python("tests/s3-tools/awscli", "AWS CLI");
        let home = s3.repo.scratch("aws-home");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(
            home.join(".aws/credentials"),
            format!(
                "[default]\naws_access_key_id = {0}\naws_secret_access_key = {1}\n\
                 [v4]\naws_access_key_id = {0}\naws_secret_access_key = {1}\n",
                s3.key, s3.secret
            ),
        )
        .unwrap();
        std::fs::write(
            home.join(".aws/config"),
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n\
             [profile v4]\nregion = us-east-1\ns3 =\n    addressing_style = path\n    \
             signature_version = s3v4\n",
        )
        .unwrap();
        Aws {
            bin: root().join("tests/s3-tools/awscli/.venv/bin/aws"),
            endpoint: s3.url.clone(),
            home,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CA_BUNDLE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", &self.home)
            .env("AWS_CONFIG_FILE", self.home.join(".aws/config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join(".aws/credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .args(["--endpoint-url", &self.endpoint])
            .args(args);
        if args.first() == Some(&"s3") && ["cp", "sync"].contains(&args[1]) {
            // One line per file, none of the progress lines.
            cmd.arg("--no-progress");
        }
        run(cmd)
    }

    /// `aws ARGS`' stdout; it must succeed.
    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&format!("aws {args:?}"), self.run(args))
    }

    /// `aws ARGS`' JSON answer; it must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {out}"))
    }
}

/// GETs `url` with curl into `out`; the HTTP status.
fn curl(url: &str, out: &Path) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}", url]);
    let status = stdout_ok("curl", run(cmd));
    status
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("curl status {status:?}: {e}"))
}

/// Sorted lines of `out` with their first `skip` fields dropped.
fn last_fields(out: &str, skip: usize) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .skip(skip)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn aws_cli_s3api_and_s3_commands() {
    let s3 = S3Daemon::start();
    let aws = Aws::new(&s3);
    let scratch = s3.repo.scratch("cli");
    std::fs::create_dir_all(&scratch).unwrap();

    // s3api: create-bucket, put-object (type, metadata), head-object,
    // list-objects-v2, get-object.
    let made = aws.json(&["s3api", "create-bucket", "--bucket", "cli"]);
    assert_eq!(made["Location"], "/cli");
    let data = common::random_bytes(300_000, 7);
    let one = scratch.join("one.bin");
    std::fs::write(&one, &data).unwrap();
    let put = aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "cli",
        "--key",
        "api/one.bin",
        "--body",
        one.to_str().unwrap(),
        "--content-type",
        "application/x-test",
        "--metadata",
        "owner=alice,purpose=cli",
    ]);
    assert_eq!(put["ETag"], etag_of(&data));
    let head_one = [
        "s3api",
        "head-object",
        "--bucket",
        "cli",
        "--key",
        "api/one.bin",
    ];
    let head = aws.json(&head_one);
    assert_eq!(head["ContentLength"], data.len());
    assert_eq!(head["ETag"], etag_of(&data));
    assert_eq!(head["ContentType"], "application/x-test");
    assert_eq!(
        head["Metadata"],
        json!({"owner": "alice", "purpose": "cli"})
    );
    // The CID cairn names in `x-cairn-cid` is not S3 metadata, so the
    // CLI's JSON leaves it out; its --debug log of the response headers
    // shows it, and it is what `cairn add` makes of the same bytes.
    let cid = TestRepo::new().add(&one, &["-n"]);
    assert!(head.get("x-cairn-cid").is_none() && !head.to_string().contains(&cid));
    let debug = aws.run(&[&["--debug"][..], &head_one].concat());
    let log = String::from_utf8_lossy(&debug.stderr);
    assert!(debug.status.success(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("Response headers")
                && l.contains(&format!("'x-cairn-cid': '{cid}'"))),
        "no x-cairn-cid {cid} among the logged response headers:\n{log}"
    );
    let missing = aws.run(&["s3api", "head-object", "--bucket", "cli", "--key", "nope"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("404"), "{err}");
    let listed = aws.json(&[
        "s3api",
        "list-objects-v2",
        "--no-paginate",
        "--bucket",
        "cli",
        "--prefix",
        "api/",
    ]);
    assert_eq!(listed["KeyCount"], 1);
    assert_eq!(listed["Contents"][0]["Key"], "api/one.bin");
    assert_eq!(listed["Contents"][0]["Size"], data.len());
    assert_eq!(listed["Contents"][0]["ETag"], etag_of(&data));
    let got_path = scratch.join("got.bin");
    let got = aws.json(&[
        "s3api",
        "get-object",
        "--bucket",
        "cli",
        "--key",
        "api/one.bin",
        "--range",
        "bytes=100-199",
        got_path.to_str().unwrap(),
    ]);
    assert_eq!(got["ContentRange"], format!("bytes 100-199/{}", data.len()));
    assert!(std::fs::read(&got_path).unwrap() == data[100..200]);

    // s3 presign: a URL plain HTTP fetches without any key; tampered
    // with or expired, refused. The CLI v1 signs these URLs with
    // Signature V2 unless the profile says `signature_version = s3v4`;
    // both are what its users get.
    for (profile, signed_by) in [("default", "Signature="), ("v4", "X-Amz-Signature=")] {
        let presign = |expires: &str| {
            let args = [
                "--profile",
                profile,
                "s3",
                "presign",
                "s3://cli/api/one.bin",
            ];
            let url = aws.ok(&[&args[..], &["--expires-in", expires]].concat());
            assert!(url.trim().contains(signed_by), "{profile}: {url}");
            url.trim().to_string()
        };
        let url = presign("300");
        let fetched = scratch.join(format!("presigned-{profile}"));
        assert_eq!(curl(&url, &fetched), 200, "{profile}: {url}");
        assert!(
            std::fs::read(&fetched).unwrap() == data,
            "{profile}: presigned GET returns the bytes"
        );
        let refused = scratch.join(format!("refused-{profile}.xml"));
        let tampered = url.replace("api/one.bin", "api/one.bin2");
        assert_eq!(curl(&tampered, &refused), 403, "{profile}: {tampered}");
        let short = presign("1");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(curl(&short, &refused), 403, "{profile}: expired {short}");
        let body = std::fs::read_to_string(&refused).unwrap();
        assert!(
            body.contains("<Code>AccessDenied</Code>"),
            "{profile}: {body}"
        );
    }

    // s3 cp up and down: 6 MiB in one PUT and one GET; 20 MiB, past the
    // CLI's 8 MiB multipart threshold, as a multipart upload of 8 MiB
    // parts (S3's ETag of them) and ranged GETs.
    for (name, len, seed) in [("big.bin", 6 << 20, 8), ("large.bin", 20 << 20, 10)] {
        let data = common::random_bytes(len, seed);
        let path = scratch.join(name);
        std::fs::write(&path, &data).unwrap();
        let url = format!("s3://cli/cp/{name}");
        let up = aws.ok(&["s3", "cp", path.to_str().unwrap(), &url]);
        assert!(up.contains("upload:") && up.contains(&url), "{up}");
        let parts: Vec<&[u8]> = data.chunks(8 << 20).collect();
        let etag = match parts.len() {
            1 => etag_of(&data),
            _ => multipart_etag(&parts),
        };
        let key = format!("cp/{name}");
        let head = aws.json(&["s3api", "head-object", "--bucket", "cli", "--key", &key]);
        assert_eq!(head["ETag"], etag, "{name}");
        assert_eq!(head["ContentLength"], len, "{name}");
        let down = scratch.join(format!("down-{name}"));
        aws.ok(&["s3", "cp", &url, down.to_str().unwrap()]);
        assert_eq!(
            sha256_hex(&std::fs::read(&down).unwrap()),
            sha256_hex(&data),
            "{name}: cp down returns the bytes"
        );
    }

    // s3 sync of a tree up, again (nothing to do), after changes with
    // --delete, and back down.
    let src = scratch.join("tree");
    write_tree(
        &src,
        &[
            ("a.txt", b"alpha\n".to_vec()),
            ("empty", Vec::new()),
            ("sub/b.txt", b"bravo\n".to_vec()),
            ("sub/deep/c.bin", common::random_bytes(200_000, 9)),
        ],
    );
    let first = aws.ok(&["s3", "sync", src.to_str().unwrap(), "s3://cli/tree/"]);
    assert_eq!(first.matches("upload:").count(), 4, "{first}");
    let again = aws.ok(&["s3", "sync", src.to_str().unwrap(), "s3://cli/tree/"]);
    assert_eq!(again.trim(), "", "nothing changed, nothing to sync");
    let ls = aws.ok(&["s3", "ls", "--recursive", "s3://cli/tree/"]);
    assert_eq!(
        last_fields(&ls, 2),
        [
            "0 tree/empty",
            "200000 tree/sub/deep/c.bin",
            "6 tree/a.txt",
            "6 tree/sub/b.txt"
        ],
        "{ls}"
    );
    std::fs::write(src.join("a.txt"), b"alpha, changed\n").unwrap();
    std::fs::remove_file(src.join("sub/b.txt")).unwrap();
    let changed = aws.ok(&[
        "s3",
        "sync",
        "--delete",
        src.to_str().unwrap(),
        "s3://cli/tree/",
    ]);
    assert_eq!(
        last_fields(&changed, 0)
            .iter()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["delete:", "upload:"],
        "{changed}"
    );
    assert!(changed.contains("s3://cli/tree/sub/b.txt"), "{changed}");
    let back = scratch.join("back");
    aws.ok(&["s3", "sync", "s3://cli/tree/", back.to_str().unwrap()]);
    assert!(
        tree(&back) == tree(&src),
        "the tree synced down is the tree synced up"
    );

    // s3 ls of the bucket's top level and of the buckets.
    let top = aws.ok(&["s3", "ls", "s3://cli/"]);
    assert_eq!(
        last_fields(&top, 0),
        ["PRE api/", "PRE cp/", "PRE tree/"],
        "{top}"
    );
    let buckets = aws.ok(&["s3", "ls"]);
    assert_eq!(last_fields(&buckets, 2), ["cli"], "{buckets}");

    // s3 rm, one key and a prefix; then rb.
    for name in ["big.bin", "large.bin"] {
        let rm = aws.ok(&["s3", "rm", &format!("s3://cli/cp/{name}")]);
        assert!(rm.contains(&format!("delete: s3://cli/cp/{name}")), "{rm}");
    }
    let rm = aws.ok(&["s3", "rm", "--recursive", "s3://cli/tree/"]);
    assert_eq!(rm.matches("delete:").count(), 3, "{rm}");
    aws.ok(&["s3", "rm", "s3://cli/api/one.bin"]);
    let left = aws.json(&[
        "s3api",
        "list-objects-v2",
        "--no-paginate",
        "--bucket",
        "cli",
    ]);
    assert_eq!(left["KeyCount"], 0, "{left}");
    aws.ok(&["s3", "rb", "s3://cli"]);
    assert_eq!(aws.ok(&["s3", "ls"]).trim(), "");
}

/// `aws s3api` on a versioned bucket: put-bucket-versioning,
/// get-bucket-versioning, two versions of a key and a delete marker
/// listed by list-object-versions (newest first, the marker latest, each
/// version's checksum algorithm), get-object of an older version by
/// `--version-id`, and the marker removed by its version ID.
#[test]
fn aws_cli_s3api_object_versions() {
    let s3 = S3Daemon::start();
    let aws = Aws::new(&s3);
    let scratch = s3.repo.scratch("versions");
    std::fs::create_dir_all(&scratch).unwrap();
    aws.json(&["s3api", "create-bucket", "--bucket", "kept"]);
    aws.ok(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "kept",
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let state = aws.json(&["s3api", "get-bucket-versioning", "--bucket", "kept"]);
    assert_eq!(state["Status"], "Enabled", "{state}");

    let mut ids = Vec::new();
    for (n, text) in ["first words", "second words, longer"].iter().enumerate() {
        let body = scratch.join(format!("v{n}.txt"));
        std::fs::write(&body, text).unwrap();
        let put = aws.json(&[
            "s3api",
            "put-object",
            "--bucket",
            "kept",
            "--key",
            "notes.txt",
            "--body",
            body.to_str().unwrap(),
        ]);
        let id = put["VersionId"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty() && id != "null", "{put}");
        ids.push(id);
    }
    let deleted = aws.json(&[
        "s3api",
        "delete-object",
        "--bucket",
        "kept",
        "--key",
        "notes.txt",
    ]);
    assert_eq!(deleted["DeleteMarker"], true, "{deleted}");
    let marker = deleted["VersionId"].as_str().unwrap().to_string();

    let listed = aws.json(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        "kept",
        "--prefix",
        "notes",
    ]);
    let versions = listed["Versions"].as_array().expect("Versions");
    let found: Vec<(&str, bool, u64)> = versions
        .iter()
        .map(|v| {
            assert_eq!(v["Key"], "notes.txt", "{v}");
            assert!(v["ChecksumAlgorithm"].is_array(), "{v}");
            (
                v["VersionId"].as_str().unwrap(),
                v["IsLatest"].as_bool().unwrap(),
                v["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [(ids[1].as_str(), false, 20), (ids[0].as_str(), false, 11)],
        "newest first, neither current under the marker"
    );
    let markers = listed["DeleteMarkers"].as_array().expect("DeleteMarkers");
    assert_eq!(markers.len(), 1, "{listed}");
    assert_eq!(markers[0]["VersionId"], marker.as_str());
    assert_eq!(markers[0]["IsLatest"], true);

    let gone = aws.run(&[
        "s3api",
        "head-object",
        "--bucket",
        "kept",
        "--key",
        "notes.txt",
    ]);
    assert!(!gone.status.success(), "the marker hides the key");
    let old = scratch.join("old.txt");
    let got = aws.json(&[
        "s3api",
        "get-object",
        "--bucket",
        "kept",
        "--key",
        "notes.txt",
        "--version-id",
        &ids[0],
        old.to_str().unwrap(),
    ]);
    assert_eq!(got["VersionId"], ids[0].as_str());
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "first words");

    // Removing the marker by its ID brings the newest version back.
    aws.json(&[
        "s3api",
        "delete-object",
        "--bucket",
        "kept",
        "--key",
        "notes.txt",
        "--version-id",
        &marker,
    ]);
    let head = aws.json(&[
        "s3api",
        "head-object",
        "--bucket",
        "kept",
        "--key",
        "notes.txt",
    ]);
    assert_eq!(head["VersionId"], ids[1].as_str());
    assert_eq!(head["ContentLength"], 20);
    let listed = aws.json(&["s3api", "list-object-versions", "--bucket", "kept"]);
    assert!(listed.get("DeleteMarkers").is_none(), "{listed}");
    assert_eq!(listed["Versions"][0]["IsLatest"], true, "{listed}");
}

#[test]
fn s3fs_pyarrow_and_pandas_on_s3_urls() {
    let s3 = S3Daemon::start();
    let python = venv_python("tests/s3-tools/pydata", "s3fs, pyarrow and pandas");
    let parts = [1000u64, 2500, 40];
    let csv: Vec<(String, i64)> = (0..500).map(|i| (format!("name {i}"), i * 3 - 7)).collect();
    let large = common::random_bytes(12 << 20, 14);
    let large_file = s3.repo.scratch("large.bin");
    std::fs::write(&large_file, &large).unwrap();
    let spec = json!({
        "endpoint": s3.url,
        "key": s3.key,
        "secret": s3.secret,
        "parts": parts,
        "csv": csv,
        "large_file": large_file,
    });
    let got = run_script_with(&python, "s3fs_run.py", &spec);
    eprintln!("{got}");
    // pandas writes a CSV as header, rows, "\n" line ends.
    let mut csv_text = String::from("name,value\n");
    for (name, value) in &csv {
        csv_text.push_str(&format!("{name},{value}\n"));
    }
    let rows: u64 = parts.iter().sum();
    let n_sum: u64 = parts.iter().map(|n| n * (n - 1) / 2).sum();
    let files: Vec<String> = (0..parts.len())
        .map(|i| format!("tables/events/part-{i}.parquet"))
        .collect();
    let mut find = files.clone();
    find.insert(0, "tables/csv/frame.csv".to_string());
    let expect = json!({
        "buckets": ["tables"],
        "dataset_files": files,
        "dataset_rows": rows,
        "dataset_n_sum": n_sum,
        "dataset_equal": true,
        "part1_last_label": format!("row-1-{}", parts[1] - 1),
        "pandas_parquet_rows": rows,
        "csv_equal": true,
        "csv_sha256": sha256_hex(csv_text.as_bytes()),
        "csv_value_sum": csv.iter().map(|(_, v)| v).sum::<i64>(),
        "csv_size": csv_text.len(),
        "csv_etag": etag_of(csv_text.as_bytes()),
        "csv_head": &csv_text[..10],
        "top": ["tables/csv", "tables/events"],
        "isdir_events": true,
        "exists_missing": false,
        "find": find,
        "exists_after_rm": false,
        "left_after_rm": [],
        "large_size": large.len(),
        "large_etag": multipart_etag(&large.chunks(5 << 20).collect::<Vec<_>>()),
        "large_cat_sha256": sha256_hex(&large),
        "large_read_sha256": sha256_hex(&large),
    });
    for (name, want) in expect.as_object().unwrap() {
        assert_eq!(&got[name], want, "{name}");
    }
}

#[test]
fn django_storages_s3_backend() {
    let s3 = S3Daemon::start();
    let python = venv_python("tests/s3-tools/django", "Django and django-storages");
    let data = common::random_bytes(1_500_000, 11);
    let file = s3.repo.scratch("photo.bin");
    std::fs::write(&file, &data).unwrap();
    let spec = json!({
        "endpoint": s3.url,
        "key": s3.key,
        "secret": s3.secret,
        "bucket": "site-media",
        "file": file,
    });
    let got = run_script_with(&python, "django_run.py", &spec);
    eprintln!("{got}");
    let expect = json!({
        "saved_text": "docs/hello.txt",
        "saved_binary": "media/photo.bin",
        "saved_again_differs": true,
        "saved_again_prefix": true,
        "read_text": "hello from django\n",
        "read_binary_sha256": sha256_hex(&data),
        "size_binary": data.len(),
        "exists_text": true,
        "exists_missing": false,
        "url_presigned": true,
        "url_sha256": sha256_hex(&data),
        "url_text": "hello from django\n",
        "listdir_root": [["docs", "media"], []],
        "listdir_docs_files": 2,
        "modified_time_known": true,
        "exists_after_delete": false,
        "listdir_after_delete": [[], []],
    });
    for (name, want) in expect.as_object().unwrap() {
        assert_eq!(&got[name], want, "{name}");
    }
}

/// rclone with the remote `cairn:` set up through its environment, as a
/// user scripts it: provider Other, path style, the daemon's key.
struct Rclone<'a> {
    s3: &'a S3Daemon,
}

impl Rclone<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("rclone");
        // The AWS SDK inside rclone reads these too.
        for var in [
            "AWS_CA_BUNDLE",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RCLONE_CONFIG", self.s3.repo.scratch("rclone.conf"))
            .env("RCLONE_CONFIG_CAIRN_TYPE", "s3")
            .env("RCLONE_CONFIG_CAIRN_PROVIDER", "Other")
            .env("RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID", &self.s3.key)
            .env("RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY", &self.s3.secret)
            .env("RCLONE_CONFIG_CAIRN_ENDPOINT", &self.s3.url)
            .env("RCLONE_CONFIG_CAIRN_REGION", "us-east-1")
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(args);
        run(cmd)
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&format!("rclone {args:?}"), self.run(args))
    }
}

#[test]
fn rclone_copy_sync_check_ls() {
    setup_once(
        &["tests/s3-tools/rclone-setup.sh"],
        "Debian's rclone (apt-get as root)",
    );
    let s3 = S3Daemon::start();
    let rclone = Rclone { s3: &s3 };
    let scratch = s3.repo.scratch("rclone");
    let src = scratch.join("src");
    write_tree(
        &src,
        &[
            ("a.txt", b"alpha\n".to_vec()),
            ("empty", Vec::new()),
            ("sub/b.bin", common::random_bytes(1_200_000, 12)),
            ("sub/deep/c.txt", b"charlie\n".to_vec()),
        ],
    );
    let src_s = src.to_str().unwrap();
    rclone.ok(&["mkdir", "cairn:rcl"]);
    rclone.ok(&["copy", src_s, "cairn:rcl/data"]);
    let ls = rclone.ok(&["ls", "cairn:rcl/data"]);
    assert_eq!(
        last_fields(&ls, 0),
        [
            "0 empty",
            "1200000 sub/b.bin",
            "6 a.txt",
            "8 sub/deep/c.txt"
        ],
        "{ls}"
    );
    // md5sum: the ETags rclone reads are the files' MD5s.
    let sums = rclone.ok(&["md5sum", "cairn:rcl/data"]);
    let mut want: Vec<String> = tree(&src)
        .iter()
        .map(|(p, d)| format!("{} {p}", hex(&md5_of(d))))
        .collect();
    want.sort();
    assert_eq!(last_fields(&sums, 0), want, "{sums}");
    let check = rclone.run(&["check", src_s, "cairn:rcl/data"]);
    stdout_ok("rclone check", check);

    // A local change is a difference for check; sync makes them equal.
    std::fs::write(src.join("a.txt"), b"alpha, changed\n").unwrap();
    std::fs::remove_file(src.join("sub/deep/c.txt")).unwrap();
    std::fs::write(src.join("new.txt"), b"new\n").unwrap();
    let differs = rclone.run(&["check", src_s, "cairn:rcl/data"]);
    assert!(!differs.status.success(), "check sees the changed tree");
    let err = String::from_utf8_lossy(&differs.stderr);
    assert!(err.contains("3 differences found"), "{err}");
    rclone.ok(&["sync", src_s, "cairn:rcl/data"]);
    rclone.ok(&["check", src_s, "cairn:rcl/data"]);
    let ls = rclone.ok(&["ls", "cairn:rcl/data"]);
    assert_eq!(
        last_fields(&ls, 0),
        ["0 empty", "1200000 sub/b.bin", "15 a.txt", "4 new.txt"],
        "{ls}"
    );
    let lsd = rclone.ok(&["lsd", "cairn:"]);
    assert_eq!(last_fields(&lsd, 4), ["rcl"], "{lsd}");

    // Back down: the same tree.
    let back = scratch.join("back");
    rclone.ok(&["copy", "cairn:rcl/data", back.to_str().unwrap()]);
    assert!(
        tree(&back) == tree(&src),
        "the tree copied down is the tree synced up"
    );

    // A 70 MiB file past the upload cutoff (200 MiB by default, 32 MiB
    // here) goes up as a multipart upload of 16 MiB parts, rclone keeping
    // the whole file's MD5 in its metadata for md5sum and check.
    let large = common::random_bytes(70 << 20, 13);
    let large_dir = scratch.join("large");
    write_tree(&large_dir, &[("large.bin", large.clone())]);
    let large_s = large_dir.to_str().unwrap();
    let cutoff = ["--s3-upload-cutoff", "32M", "--s3-chunk-size", "16M"];
    rclone.ok(&[&["copy", large_s, "cairn:rcl/large"][..], &cutoff].concat());
    let parts: Vec<&[u8]> = large.chunks(16 << 20).collect();
    assert_eq!(s3.head_etag("/rcl/large/large.bin"), multipart_etag(&parts));
    let sums = rclone.ok(&["md5sum", "cairn:rcl/large"]);
    assert_eq!(
        last_fields(&sums, 0),
        [format!("{} large.bin", hex(&md5_of(&large)))],
        "{sums}"
    );
    rclone.ok(&["check", large_s, "cairn:rcl/large"]);
    let large_back = scratch.join("large-back");
    rclone.ok(&["copy", "cairn:rcl/large", large_back.to_str().unwrap()]);
    assert_eq!(
        sha256_hex(&std::fs::read(large_back.join("large.bin")).unwrap()),
        sha256_hex(&large),
        "the 70 MiB file copied down is the one copied up"
    );

    // Before purge deletes, rclone asks whether the bucket keeps
    // versions: never, says cairn, as S3 says of a bucket never versioned.
    let mut resp = s3.signed("GET", "/rcl", &[("versioning", "")]);
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(
        body.contains("<VersioningConfiguration") && !body.contains("<Status>"),
        "{body}"
    );

    // purge deletes every object, then the bucket.
    rclone.ok(&["purge", "cairn:rcl"]);
    assert_eq!(rclone.ok(&["lsd", "cairn:"]).trim(), "");
}
