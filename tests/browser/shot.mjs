#!/usr/bin/env node
// Opens pages in Debian's headless Chromium (/usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded), reports what a person
// would see and saves a PNG screenshot of each.
//
//   node shot.mjs [options] URL PNG [URL PNG ...]
//
// Options:
//   --timeout SECONDS   deadline for the whole run, launch included (default 60)
//   --viewport WxH      window size in CSS pixels (default 1280x800)
//   --full-page         screenshot the whole page, not just the viewport
//   --chromium PATH     browser binary (default $CHROMIUM or /usr/bin/chromium)
//
// All pages are opened one after the other in one browser, each in a fresh
// tab. For each page one line of JSON goes to stdout, in order:
//   {"url", "status", "contentType", "title",
//    "names":  [text of the Name column of the page's <table>] | null,
//    "links":  [absolute href of the link in each of those cells],
//    "images": [{"src", "loaded", "width", "height"}],   (naturalWidth/Height)
//    "screenshot": PNG path, "problems": [strings]}
// A directly opened image counts too: Chromium shows it in an <img>.
//
// Exit status: 0 when every page answered 2xx, every <img> loaded, no
// sub-request failed and no script threw; 1 when a page had a problem (its
// JSON line is still printed, with `problems`); 2 for bad usage; 3 when the
// deadline passed; 4 when the browser could not be started or a page could
// not be opened or captured. Diagnostics go to stderr.

import { chromium } from 'playwright-core';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

// The flags this machine needs: no sandbox as root, no GPU, and nothing that
// reaches outside loopback (the network is closed and refuses it noisily).
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function usage(msg) {
  if (msg) console.error(`shot.mjs: ${msg}`);
  console.error('usage: node shot.mjs [--timeout S] [--viewport WxH] [--full-page] [--chromium PATH] URL PNG [URL PNG ...]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    timeout: 60,
    width: 1280,
    height: 800,
    fullPage: false,
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
    pages: [],
  };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--timeout') {
      opts.timeout = Number(value());
      if (!(opts.timeout > 0)) usage('--timeout must be a positive number of seconds');
    } else if (a === '--viewport') {
      const m = /^(\d+)x(\d+)$/.exec(value());
      if (!m) usage('--viewport must look like 1280x800');
      opts.width = Number(m[1]);
      opts.height = Number(m[2]);
    } else if (a === '--full-page') {
      opts.fullPage = true;
    } else if (a === '--chromium') {
      opts.chromium = value();
    } else if (a === '-h' || a === '--help') {
      usage();
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else {
      rest.push(a);
    }
  }
  if (rest.length === 0 || rest.length % 2 !== 0) usage('give URL PNG pairs');
  for (let i = 0; i < rest.length; i += 2) {
    let url;
    try {
      url = new URL(rest[i]).href;
    } catch {
      usage(`not a URL: ${rest[i]}`);
    }
    opts.pages.push({ url, png: resolve(rest[i + 1]) });
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const remaining = () => Math.max(1000, opts.timeout * 1000 - (Date.now() - started));

let browser = null;
let launching = null; // the launch promise, until it settles

const within = (ms, promise) =>
  Promise.race([promise.catch(() => {}), new Promise((r) => setTimeout(r, ms))]);

async function cleanup() {
  // Never let a hung browser keep us long past the deadline: should it
  // outlive this, playwright kills it (and removes its profile) when node
  // exits.
  if (!browser && launching) browser = await within(5000, launching);
  if (browser) {
    const b = browser;
    browser = null;
    await within(5000, b.close());
  }
}

let timedOut = false;
const deadline = setTimeout(async () => {
  timedOut = true;
  console.error(`shot.mjs: timed out after ${opts.timeout} s`);
  await cleanup();
  process.exit(3);
}, opts.timeout * 1000);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });
}

// Runs in the page: what a person would see.
function inspect() {
  const names = [];
  const links = [];
  let table = document.querySelector('table');
  if (table) {
    const heads = [...table.querySelectorAll('thead th, tr:first-child th')].map((th) =>
      th.textContent.trim().toLowerCase(),
    );
    let col = heads.indexOf('name');
    const rows = [...table.querySelectorAll('tbody tr')];
    if (col < 0 && rows.length) {
      // No "Name" header: the first cell holding a link.
      col = [...rows[0].cells].findIndex((td) => td.querySelector('a'));
    }
    for (const tr of rows) {
      const cell = tr.cells[col];
      if (!cell) continue;
      const text = cell.textContent.trim();
      if (text === '..') continue; // the parent-directory row
      names.push(text);
      const a = cell.querySelector('a');
      links.push(a ? a.href : null);
    }
  } else {
    table = null;
  }
  const images = [...document.images].map((img) => ({
    src: img.currentSrc || img.src,
    loaded: img.complete && img.naturalWidth > 0,
    width: img.naturalWidth,
    height: img.naturalHeight,
  }));
  return { title: document.title, names: table ? names : null, links, images };
}

async function visit(page, { url, png }) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('requestfailed', (r) => {
    problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText ?? '?'}`);
  });
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (r.status() >= 400 && r.url() !== url && u.pathname !== '/favicon.ico') {
      problems.push(`sub-request ${r.url()} answered ${r.status()}`);
    }
  });

  const response = await page.goto(url, { waitUntil: 'load', timeout: remaining() });
  const status = response ? response.status() : null;
  const contentType = response ? (response.headers()['content-type'] ?? null) : null;
  if (status === null || status < 200 || status > 299) {
    problems.push(`${url} answered ${status}`);
  }
  // Every <img> settled (loaded or failed) and fonts ready before looking.
  await page.evaluate(async () => {
    await Promise.all(
      [...document.images].map((img) =>
        img.complete
          ? null
          : new Promise((r) => {
              img.addEventListener('load', r, { once: true });
              img.addEventListener('error', r, { once: true });
            }),
      ),
    );
    await document.fonts.ready;
  });
  const seen = await page.evaluate(inspect);
  for (const img of seen.images) {
    if (!img.loaded) problems.push(`image did not load: ${img.src}`);
  }
  mkdirSync(dirname(png), { recursive: true });
  // A full-page screenshot of a document without <body> (an SVG or XML file
  // opened directly) never finishes in Chromium: take the viewport then.
  const fullPage = opts.fullPage && (await page.evaluate(() => document.body !== null));
  await page.screenshot({ path: png, fullPage, timeout: remaining() });
  statSync(png);
  return { url, status, contentType, ...seen, screenshot: png, problems };
}

let code = 0;
try {
  try {
    // Playwright gives the browser a new, empty --user-data-dir of its own
    // (a temporary directory it removes afterwards, even when node exits early).
    launching = chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      args: FLAGS,
      timeout: remaining(),
    });
    browser = await launching;
    launching = null;
  } catch (e) {
    console.error(`shot.mjs: cannot start ${opts.chromium}: ${e.message}`);
    code = 4;
  }
  if (browser) {
    const context = await browser.newContext({
      viewport: { width: opts.width, height: opts.height },
    });
    context.setDefaultTimeout(remaining());
    for (const target of opts.pages) {
      const page = await context.newPage();
      let result;
      try {
        result = await visit(page, target);
      } catch (e) {
        console.error(`shot.mjs: ${target.url}: ${e.message}`);
        code = 4;
        break;
      } finally {
        await page.close().catch(() => {});
      }
      process.stdout.write(JSON.stringify(result) + '\n');
      if (result.problems.length) {
        for (const p of result.problems) console.error(`shot.mjs: ${target.url}: ${p}`);
        code = Math.max(code, 1);
      }
    }
  }
} catch (e) {
  console.error(`shot.mjs: ${e.stack || e.message}`);
  code = 4;
} finally {
  await cleanup();
  clearTimeout(deadline);
}
console.error(`shot.mjs: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(timedOut ? 3 : code);
