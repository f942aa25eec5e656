#!/usr/bin/env node
// Opens pages in Debian's headless Chromium (/usr/bin/chromium, driven by
// playwright-core) and waits for each to say it has finished: a page
// reports by setting document.title to "done:" followed by what it wants
// to report. Used by tests/api_guard.rs, whose pages try to drive cairn's
// API from another origin.
//
//   node visit.mjs [--timeout SECONDS] URL [URL ...]
//
// Pages are opened one after the other, each in a fresh tab. One line of
// JSON per page goes to stdout, in order: {"url", "title", "console"}
// (`console`: the page's console messages, for diagnosis). Exit status: 0
// when every page finished, 1 when one did not within the deadline, 2 for
// bad usage, 4 when the browser could not be started.

import { chromium } from 'playwright-core';

// As in shot.mjs: no sandbox as root, no GPU, nothing beyond loopback.
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

const args = process.argv.slice(2);
let timeout = 60;
if (args[0] === '--timeout') {
  timeout = Number(args[1]);
  args.splice(0, 2);
}
if (!(timeout > 0) || args.length === 0) {
  console.error('usage: node visit.mjs [--timeout SECONDS] URL [URL ...]');
  process.exit(2);
}
const deadline = Date.now() + timeout * 1000;
const remaining = () => Math.max(1000, deadline - Date.now());

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: remaining(),
  });
} catch (e) {
  console.error(`visit.mjs: cannot start Chromium: ${e.message}`);
  process.exit(4);
}
let status = 0;
for (const url of args) {
  const page = await browser.newPage();
  const messages = [];
  page.on('console', (m) => messages.push(m.text()));
  let title = '';
  try {
    await page.goto(url, { waitUntil: 'load', timeout: remaining() });
    await page.waitForFunction(() => document.title.startsWith('done:'), null, {
      timeout: remaining(),
    });
    title = await page.title();
  } catch (e) {
    console.error(`visit.mjs: ${url}: ${e.message}`);
    status = 1;
  }
  console.log(JSON.stringify({ url, title, console: messages }));
  await page.close().catch(() => {});
}
await browser.close();
process.exit(status);
