//! The gateway as a person sees it: headless Chromium opens a directory
//! listing, an HTML page showing a PNG with `<img>`, the PNG itself and a
//! subdirectory's listing, and takes a screenshot of each.
//!
//! The browser is Debian's /usr/bin/chromium driven by playwright-core
//! (tests/browser/shot.mjs); `tests/browser/setup.sh` installs both on first
//! use (Chromium with apt-get, which needs root; playwright-core with
//! `npm ci` from the lockfile). Needs Node.js >= 20 and npm. Only loopback
//! is used. The listing's screenshot is also copied to
//! target/gateway-listing.png for people to look at.

mod common;

use common::process::run_bounded;
use common::{gateway_url, Daemon, TestRepo};
use serde_json::Value;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{Duration, Instant};

/// Bound for one run of shot.mjs (it gives itself 60 s).
const SHOT_TIMEOUT: Duration = Duration::from_secs(90);
/// The viewport shot.mjs uses by default, so the screenshots' size.
const VIEWPORT: (u32, u32) = (1280, 800);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs tests/browser/setup.sh once per test binary (playwright-core,
/// Chromium and fonts); panics with its output if it fails.
fn setup() {
    common::process::setup_once(
        &["tests/browser/setup.sh"],
        "Node.js >= 20, npm and /usr/bin/chromium",
    );
}

/// What shot.mjs saw on one page.
struct Page(Value);

impl Page {
    fn str(&self, key: &str) -> &str {
        self.0[key].as_str().unwrap_or("")
    }

    fn names(&self) -> Vec<&str> {
        self.0["names"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no <table>: {}", self.str("url"), self.0))
            .iter()
            .map(|n| n.as_str().expect("a name"))
            .collect()
    }

    fn links(&self) -> Vec<&str> {
        self.0["links"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
            .unwrap_or_default()
    }

    fn images(&self) -> &[Value] {
        self.0["images"].as_array().map_or(&[], |a| a.as_slice())
    }

    fn assert_clean(&self) {
        assert_eq!(self.0["status"], 200, "{}", self.0);
        let problems = self.0["problems"].as_array().expect("problems");
        assert!(problems.is_empty(), "problems on a page: {}", self.0);
    }
}

/// Runs shot.mjs on (URL, PNG) pairs in one browser; one Page per URL.
fn shoot(pages: &[(String, PathBuf)]) -> Vec<Page> {
    let mut cmd = Command::new("node");
    cmd.current_dir(browser_dir())
        .arg("shot.mjs")
        .args(["--timeout", "60"]);
    for (url, png) in pages {
        cmd.arg(url).arg(png);
    }
    let t = Instant::now();
    let out = run_bounded(cmd, None, SHOT_TIMEOUT).unwrap_or_else(|e| panic!("shot.mjs: {e:#}"));
    eprintln!(
        "browser: shot.mjs ({} pages) took {:.1?}, {}",
        pages.len(),
        t.elapsed(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Vec<Page> = stdout
        .lines()
        .map(|l| Page(serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"))))
        .collect();
    assert_eq!(
        seen.len(),
        pages.len(),
        "shot.mjs reported {} of {} pages ({}); stdout:\n{stdout}stderr:\n{stderr}",
        seen.len(),
        pages.len(),
        out.status
    );
    // A non-zero exit with every page reported means page problems: let the
    // per-page assertions say which (after printing what it said).
    if !out.status.success() {
        eprintln!("browser: shot.mjs stderr:\n{stderr}");
    }
    seen
}

/// Asserts `path` is a PNG screenshot of the viewport, over 1 KB.
fn assert_screenshot(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 1024,
        "{}: only {} bytes",
        path.display(),
        bytes.len()
    );
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        (be32(16), be32(20)),
        VIEWPORT,
        "{} has the wrong size",
        path.display()
    );
}

// --- a PNG made by hand: CRC-32, Adler-32 and stored deflate blocks ---------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % MOD;
        b = (b + a) % MOD;
    }
    (b << 16) | a
}

/// A zlib stream holding `data` in stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    // CMF 0x78: deflate, 32 KiB window; FLG 0x01: no dictionary, and
    // 0x7801 is a multiple of 31 as the check bits require.
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(0xFFFF).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        // BFINAL on the last block, BTYPE 00 (stored); the rest of the
        // header byte pads to the byte boundary.
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An 8-bit RGB PNG of `width` x `height` whose pixels `rgb(x, y)` gives.
fn png(width: u32, height: u32, rgb: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::with_capacity((height * (1 + 3 * width)) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&rgb(x, y));
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filters, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// 16x16: four coloured quadrants, so a screenshot shows it is a picture.
fn test_picture() -> Vec<u8> {
    png(16, 16, |x, y| match (x < 8, y < 8) {
        (true, true) => [0xE6, 0x39, 0x46],
        (false, true) => [0x2A, 0x9D, 0x8F],
        (true, false) => [0xE9, 0xC4, 0x6A],
        (false, false) => [0x1D, 0x35, 0x57],
    })
}

#[test]
fn png_building_blocks() {
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    let pic = test_picture();
    // Signature, IHDR (25 bytes), IDAT (12 + 2 + 5 + 784 + 4), IEND (12).
    assert_eq!(pic.len(), 8 + 25 + (12 + 2 + 5 + 16 * 49 + 4) + 12);
    assert_eq!(&pic[pic.len() - 8..], b"IEND\xAE\x42\x60\x82");
    // Several stored blocks when the data needs them.
    let big = zlib_stored(&[7u8; 70_000]);
    assert_eq!(big.len(), 2 + (5 + 65_535) + (5 + 4_465) + 4);
    assert_eq!(big[2], 0);
    assert_eq!(big[2 + 5 + 65_535], 1);
}

// --- the test ----------------------------------------------------------------

const GALLERY: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Gallery</title></head>
<body style="font-family: sans-serif; margin: 32px">
<h1>Gallery</h1>
<p>A 16&times;16 PNG, shown 8&times; larger:</p>
<img src="pic.png" alt="test picture" style="width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #888">
</body>
</html>
"#;

#[test]
fn gateway_pages_render_in_chromium() {
    let started = Instant::now();
    setup();

    let repo = TestRepo::new();
    let site = repo.scratch("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    let pic = test_picture();
    std::fs::write(site.join("pic.png"), &pic).unwrap();
    std::fs::write(site.join("gallery.html"), GALLERY).unwrap();
    std::fs::write(site.join("notes.txt"), "Plain notes.\n".repeat(40)).unwrap();
    std::fs::write(site.join("hello world.txt"), "hello, world\n").unwrap();
    std::fs::write(site.join("sub/deep.txt"), "deeper\n").unwrap();
    let cid = repo.add(&site, &["-r"]);
    let (_daemon, banner) = Daemon::start(&repo, &[]);
    let gw = gateway_url(&banner);
    eprintln!(
        "browser: {cid} added and daemon ready at {gw} after {:.1?}",
        started.elapsed()
    );

    let shots = repo.scratch("shots");
    let listing_png = shots.join("listing.png");
    let gallery_png = shots.join("gallery.png");
    let image_png = shots.join("image.png");
    let sub_png = shots.join("sub.png");
    let base = format!("{gw}/ipfs/{cid}/");
    let seen = shoot(&[
        (base.clone(), listing_png.clone()),
        (format!("{base}gallery.html"), gallery_png.clone()),
        (format!("{base}pic.png"), image_png.clone()),
        (format!("{base}sub/"), sub_png.clone()),
    ]);
    let (listing, gallery, image, sub) = (&seen[0], &seen[1], &seen[2], &seen[3]);

    // Keep a copy for people to look at (target/ is not committed).
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    for (from, name) in [
        (&listing_png, "gateway-listing.png"),
        (&gallery_png, "gateway-gallery.png"),
    ] {
        if from.exists() {
            std::fs::copy(from, target.join(name)).unwrap();
        }
    }

    // (1) The listing: a table with every entry, each linking somewhere real.
    listing.assert_clean();
    assert!(
        listing.str("contentType").starts_with("text/html"),
        "{}",
        listing.0
    );
    assert!(listing.str("title").contains(&cid), "{}", listing.0);
    assert_eq!(
        listing.names(),
        [
            "gallery.html",
            "hello world.txt",
            "notes.txt",
            "pic.png",
            "sub/"
        ],
        "the listing's entries: {}",
        listing.0
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let links = listing.links();
    assert_eq!(links.len(), 5, "a link per entry: {}", listing.0);
    for link in links {
        let status = agent
            .get(link)
            .call()
            .expect("the gateway answers")
            .status();
        assert_eq!(
            status, 200,
            "the listing links to {link}, which answers {status}"
        );
    }
    assert_screenshot(&listing_png);

    // (2) An HTML page from the directory, showing the PNG.
    gallery.assert_clean();
    assert_eq!(gallery.str("title"), "Gallery", "{}", gallery.0);
    let images = gallery.images();
    assert_eq!(images.len(), 1, "{}", gallery.0);
    let img = &images[0];
    assert_eq!(img["src"], format!("{base}pic.png"), "{}", gallery.0);
    assert_eq!(img["loaded"], true, "the <img> did not load: {}", gallery.0);
    assert_eq!(img["width"], 16, "naturalWidth: {}", gallery.0);
    assert_eq!(img["height"], 16, "naturalHeight: {}", gallery.0);
    assert_screenshot(&gallery_png);

    // (3) The PNG itself, as Chromium shows an image URL.
    image.assert_clean();
    assert_eq!(image.str("contentType"), "image/png", "{}", image.0);
    assert_eq!(image.images().len(), 1, "{}", image.0);
    assert_eq!(image.images()[0]["width"], 16, "{}", image.0);
    assert_screenshot(&image_png);

    // (4) A subdirectory's listing: its own entries, not the parent row.
    sub.assert_clean();
    assert_eq!(sub.names(), ["deep.txt"], "{}", sub.0);
    assert_screenshot(&sub_png);

    eprintln!(
        "browser: screenshots in {} (listing copied to {}); total {:.1?}",
        shots.display(),
        target.join("gateway-listing.png").display(),
        started.elapsed()
    );
}
