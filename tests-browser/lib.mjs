// Shared helpers of the end-to-end tests: start the demo server on a free port, talk to its
// routes, poll with a deadline, launch headless Chromium. Not a test file itself (node --test
// only picks `*.test.mjs`).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..');

/** The demo binary: `$DEMO_BIN`, else the debug example that `cargo test` builds. */
export const demoBin = process.env.DEMO_BIN || path.join(repoRoot, 'target/debug/examples/demo');

/** Debian's chromium (scripts/install-test-deps installs it), or `$CHROMIUM`. */
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/** The reconnection time the demo sends (`retry:`), small so reconnects are fast. */
export const RETRY_MS = 300;

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts the demo on 127.0.0.1 and a free port; resolves once it printed
 * `listening on http://ADDR`. Stop it with `demo.stop()`; `demo.log()` is what it printed.
 * Pass the test context `t` to stop it when the test ends, passed or failed.
 */
export async function startDemo(t, { retryMs = RETRY_MS, tickMs = 0, keepAliveMs } = {}) {
  if (!existsSync(demoBin)) {
    throw new Error(`demo binary not found at ${demoBin}: build it (cargo build -p sse-conformance --bin demo-hyper) or set DEMO_BIN`);
  }
  const args = ['--addr', '127.0.0.1:0', '--retry-ms', String(retryMs), '--tick-ms', String(tickMs)];
  if (keepAliveMs !== undefined) args.push('--keep-alive-ms', String(keepAliveMs));
  const child = spawn(demoBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child);
    resolve({ code, signal });
  }));
  const demo = {
    child,
    log: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  if (t) t.after(() => demo.stop());

  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('the demo did not print "listening on" within 10 s')), 10_000);
    function fail(err) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}\n--- demo output ---\n${output}`));
    }
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
    child.once('error', fail);
    exited.then(({ code, signal }) => fail(new Error(`the demo exited early (code ${code}, signal ${signal})`)));
  });
  demo.base = base;
  return demo;
}

/** One HTTP request to the demo, bounded by a timeout. */
export async function request(base, method, route, body) {
  const res = await fetch(base + route, { method, body, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text() };
}

export async function sessions(base) {
  const res = await request(base, 'GET', '/sessions');
  if (res.status !== 200) throw new Error(`GET /sessions answered ${res.status}`);
  return JSON.parse(res.text);
}

export async function stats(base) {
  const res = await request(base, 'GET', '/stats');
  if (res.status !== 200) throw new Error(`GET /stats answered ${res.status}: is the /stats route missing?`);
  return JSON.parse(res.text);
}

/**
 * Polls `check` (sync or async) until it returns a truthy value, which it resolves to;
 * rejects after `timeout` ms with `what` and the last value seen.
 */
export async function waitFor(what, check, { timeout = 5_000, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

export function screenshotPath(name) {
  const dir = path.join(repoRoot, 'target');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** Headless Chromium through playwright-core (no browser download: Debian's build). */
export async function launchChromium() {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: run scripts/install-test-deps (scripts/test does)`);
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30_000,
  });
}

/**
 * A fresh context and page; `/blank` on the demo's origin is a blank same-origin page (served
 * by the browser, not the demo) so a test's own EventSource needs no CORS.
 *
 * Every request to `/events` is recorded in `events`: `{ url, type, headers, status }`, where
 * `headers` are the headers Chromium put on the wire (lower-case names; null until known) and
 * `status` the response status (null until known). They come from the DevTools protocol's
 * Network domain: Playwright's `request.headers()` and `allHeaders()` do not show the
 * `Last-Event-ID` that Chromium adds to an EventSource reconnect, the wire headers do.
 */
export async function openPage(t, browser, base) {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  await page.route(`${base}/blank`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><html><body></body></html>' }),
  );

  const events = [];
  const byId = new Map();
  const early = new Map(); // extra info that came before its request
  const lower = (headers) => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.requestWillBeSent', (e) => {
    if (new URL(e.request.url).pathname !== '/events') return;
    const entry = { url: e.request.url, type: e.type, headers: early.get(e.requestId) ?? null, status: null };
    early.delete(e.requestId);
    events.push(entry);
    byId.set(e.requestId, entry);
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    const entry = byId.get(e.requestId);
    if (entry) entry.headers = lower(e.headers);
    else early.set(e.requestId, lower(e.headers));
  });
  const status = (requestId, code) => {
    const entry = byId.get(requestId);
    if (entry && entry.status === null) entry.status = code;
  };
  cdp.on('Network.responseReceived', (e) => status(e.requestId, e.response.status));
  cdp.on('Network.responseReceivedExtraInfo', (e) => status(e.requestId, e.statusCode));
  await cdp.send('Network.enable');

  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  t.after(() => {
    if (errors.length) throw new Error(`errors in the page: ${errors.join('; ')}`);
  });
  return { context, page, events };
}

/** Waits until request `n` to `/events` was sent and its wire headers and status are known. */
export function eventsRequest(events, n) {
  return waitFor(`request #${n + 1} to /events (seen: ${events.length})`, () => {
    const entry = events[n];
    return entry && entry.headers && entry.status !== null && entry;
  });
}

/**
 * Opens an EventSource on `/events` in the page and records, in `window.sse`, each
 * `connect`, `message`, named (`names`) and `error` event with the readyState at that moment.
 */
export async function openEventSource(page, base, { names = [] } = {}) {
  await page.goto(`${base}/blank`);
  await page.evaluate((names) => {
    const log = [];
    const es = new EventSource('/events');
    const record = (e) => log.push({
      type: e.type,
      data: e.data ?? null,
      lastEventId: e.lastEventId ?? null,
      readyState: es.readyState,
      at: Date.now(),
    });
    for (const name of ['connect', 'message', 'error', 'open', ...names]) es.addEventListener(name, record);
    window.sse = { es, log };
  }, names);
}

/** The events recorded by `openEventSource` so far. */
export function pageLog(page) {
  return page.evaluate(() => window.sse.log);
}

export function readyState(page) {
  return page.evaluate(() => window.sse.es.readyState);
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
