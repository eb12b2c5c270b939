// Shared helpers of the end-to-end tests: start the demo server on a free port, talk to its
// routes, poll with a deadline, launch headless Chromium. Not a test file itself (node --test
// only picks `*.test.mjs`).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..');

/**
 * The demo binary: `$DEMO_BIN` (sse-hyper/tests/browser.rs always sets it), else the
 * `demo-hyper` binary that `cargo build -p sse-conformance --bin demo-hyper` builds.
 */
export const demoBin = process.env.DEMO_BIN
  || path.join(process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target'), 'debug/demo-hyper');

/** Debian's chromium (scripts/install-test-deps installs it), or `$CHROMIUM`. */
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/** The reconnection time the demo sends (`retry:`), small so reconnects are fast. */
export const RETRY_MS = 300;

const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * The SHA-256 fingerprint of the certificate that each `--tls` demo printed, by base URL:
 * `request` checks that the server it reaches over HTTPS presents that certificate.
 */
const fingerprints = new Map();

/**
 * Starts the demo on 127.0.0.1 and a free port; resolves once it printed
 * `listening on http://ADDR` (`https://` with `tls`). Stop it with `demo.stop()`;
 * `demo.log()` is what it printed. Pass the test context `t` to stop it when the test ends,
 * passed or failed.
 *
 * Options: `retryMs` (`--retry-ms`; `null` leaves the demo's default, 3000), `tickMs`,
 * `keepAliveMs`, `resumeMs` (`--resume-ms`: resume mode, off unless given), `tls`
 * (`--tls`: HTTPS with HTTP/2 and a self-signed certificate, whose fingerprint the demo
 * prints: `demo.fingerprint`), and `env` (variables for the demo, e.g. `SSE_DEMO_*` limits).
 */
export async function startDemo(t, { retryMs = RETRY_MS, tickMs = 0, keepAliveMs, resumeMs, tls = false, env = {} } = {}) {
  if (!existsSync(demoBin)) {
    throw new Error(`demo binary not found at ${demoBin}: build it (cargo build -p sse-conformance --bin demo-hyper) or set DEMO_BIN`);
  }
  const args = ['--addr', '127.0.0.1:0', '--tick-ms', String(tickMs)];
  if (retryMs !== null) args.push('--retry-ms', String(retryMs));
  if (keepAliveMs !== undefined) args.push('--keep-alive-ms', String(keepAliveMs));
  if (resumeMs !== undefined) args.push('--resume-ms', String(resumeMs));
  if (tls) args.push('--tls');
  const child = spawn(demoBin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(child);
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child);
    resolve({ code, signal });
  }));
  const demo = {
    child,
    log: () => output,
    /** Resolves to the exit `{ code, signal }`. */
    exited,
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
      const m = /listening on (https?:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
    child.once('error', fail);
    exited.then(({ code, signal }) => fail(new Error(`the demo exited early (code ${code}, signal ${signal})`)));
  });
  demo.base = base;
  if (tls) {
    // Printed to stderr before `listening on` went to stdout: the two pipes may arrive in
    // either order.
    const m = await waitFor('the certificate fingerprint on the demo\'s stderr',
      () => /SHA-256 fingerprint ([0-9A-F:]{95})/.exec(output), { timeout: 2_000 });
    demo.fingerprint = m[1];
    fingerprints.set(base, m[1]);
  }
  return demo;
}

/**
 * One HTTP request to the demo, bounded by a timeout. Over HTTPS (a `--tls` demo) it trusts
 * exactly the certificate whose fingerprint the demo printed, and nothing else.
 */
export async function request(base, method, route, body) {
  if (base.startsWith('https:')) return httpsRequest(base, method, route, body);
  const res = await fetch(base + route, { method, body, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text() };
}

function httpsRequest(base, method, route, body) {
  const fingerprint = fingerprints.get(base);
  if (!fingerprint) return Promise.reject(new Error(`no certificate fingerprint known for ${base}`));
  return new Promise((resolve, reject) => {
    const req = https.request(base + route, {
      method,
      // Self-signed: not verified by a CA but pinned, below, before anything is read.
      rejectUnauthorized: false,
      agent: false,
      timeout: 5_000,
    }, (res) => {
      const served = res.socket.getPeerCertificate().fingerprint256;
      if (served !== fingerprint) {
        res.destroy();
        reject(new Error(`${base} presented the certificate ${served}, the demo printed ${fingerprint}`));
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${base}${route}: no answer within 5 s`)));
    req.on('error', reject);
    req.end(body);
  });
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

/**
 * Headless Chromium for every test of one file: launched before the first test, closed after
 * the last. What it returns stands for the browser (its methods are the launched browser's),
 * so that tests can hold it from the start.
 */
export function chromiumForFile() {
  let browser = null;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });
  return new Proxy({}, {
    get(_, name) {
      if (!browser) throw new Error('Chromium is not launched yet');
      const value = browser[name];
      return typeof value === 'function' ? value.bind(browser) : value;
    },
  });
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
 * Every request to `/events` is recorded in `events`: `{ url, type, headers, status, at }`,
 * where `headers` are the headers Chromium put on the wire (lower-case names; null until
 * known), `status` the response status (null until known) and `at` when it was sent
 * (`Date.now()`); once the response head arrived, also `protocol` (`h2`, `http/1.1`) and
 * `connectionId` (Chromium's id of the connection that carried it). They come from the DevTools protocol's Network domain: Playwright's
 * `request.headers()` and `allHeaders()` do not show the `Last-Event-ID` that Chromium adds to
 * an EventSource reconnect, the wire headers do.
 */
export async function openPage(t, browser, base) {
  const context = await browser.newContext();
  t.after(() => context.close());
  return { context, ...await openTab(t, context, base) };
}

/**
 * Another page (a tab) in `context`, set up like `openPage`'s: `/blank` and its own record of
 * `/events` requests. `init`, when given, runs in the page before any of its scripts
 * (`page.addInitScript`), with `arg`.
 */
export async function openTab(t, context, base, { init, arg } = {}) {
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  if (init) await page.addInitScript(init, arg);
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
    const entry = { url: e.request.url, type: e.type, headers: early.get(e.requestId) ?? null, status: null, at: Date.now() };
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
  cdp.on('Network.responseReceived', (e) => {
    status(e.requestId, e.response.status);
    const entry = byId.get(e.requestId);
    if (entry) Object.assign(entry, { protocol: e.response.protocol, connectionId: e.response.connectionId });
  });
  cdp.on('Network.responseReceivedExtraInfo', (e) => status(e.requestId, e.statusCode));
  cdp.on('Network.loadingFailed', (e) => {
    const entry = byId.get(e.requestId);
    if (entry && !entry.failed) entry.failed = e.errorText;
  });
  await cdp.send('Network.enable');

  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  t.after(() => {
    if (errors.length) throw new Error(`errors in the page: ${errors.join('; ')}`);
  });
  return { page, events };
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


// --- The demo page (`GET /`) -------------------------------------------------------------------

/** The demo page's storage key for its last event id (sessionStorage). */
export const STORAGE_KEY = 'sseLastEventId';

/** Everything the demo page received so far (`window.received`: `{type, data, lastEventId}`). */
export function received(page) {
  return page.evaluate(() => window.received ?? []);
}

/**
 * Resolves to the `n`th (0-based) `connect` event the demo page received, once it did, with
 * its JSON data parsed: `{ id, resumed, lastEventId, data }`.
 */
export async function pageConnect(page, n = 0) {
  const e = await waitFor(`connect #${n + 1} on the demo page`, async () =>
    (await received(page)).filter((e) => e.type === 'connect')[n]);
  const { id, resumed } = JSON.parse(e.data);
  return { id, resumed, lastEventId: e.lastEventId, data: e.data };
}

/** The demo page's visible state: `#session-id`, `#resumed`, `#status-text`, `#curl`. */
export function shown(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent.trim() ?? null;
    return { id: text('session-id'), resumed: text('resumed'), status: text('status-text'), curl: text('curl') };
  });
}

/** The `message` entries of the demo page's `#log`, oldest first (the page prepends). */
export function logMessages(page) {
  return page.evaluate(() => [...document.querySelectorAll('#log li')]
    .filter((li) => li.querySelector('.name')?.textContent === 'message')
    .map((li) => li.children[2].textContent)
    .reverse());
}

/**
 * Splits a resume-mode event id `<session>~<epoch>.<seq>` (the session id is the part before
 * the last `~`); null when it has no `~` part.
 */
export function parseEventId(eventId) {
  const at = eventId?.lastIndexOf('~') ?? -1;
  if (at < 0) return null;
  const session = eventId.slice(0, at);
  const position = eventId.slice(at + 1);
  const m = /^(.+)\.(\d+)$/.exec(position);
  return { session, position, epoch: m?.[1] ?? null, seq: m ? Number(m[2]) : null };
}

// --- A TCP proxy that can cut the network -------------------------------------------------------

/**
 * A TCP proxy on 127.0.0.1 and a free port in front of `target` (a base URL): a page loaded
 * through `proxy.base` reaches the demo through it, and the test can cut its connections from
 * the client's side, as a network would (DevTools' offline emulation does not end an open
 * EventSource, so it cannot stand in for a cut).
 *
 * `proxy.cut({ halfOpen })` resets every connection open now, on the browser's side (a TCP RST,
 * so the browser sees a network error at once). With `halfOpen: false` the server's side is
 * closed too; with `halfOpen: true` it stays open and whatever the server writes to it is
 * discarded, as when the peer vanished without a FIN: the server still thinks the stream is
 * live. `proxy.offline(true)` resets new connections at once until `proxy.offline(false)`.
 */
export async function startProxy(t, target) {
  const { hostname, port } = new URL(target);
  const pairs = new Set();
  let offline = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    if (offline) {
      client.resetAndDestroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect(Number(port), hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const gone = () => pairs.delete(pair);
    client.on('error', gone);
    upstream.on('error', () => { gone(); client.destroy(); });
    client.on('close', () => { gone(); if (!pair.halfOpen) upstream.destroy(); });
    upstream.on('close', () => { gone(); client.destroy(); });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  const proxy = {
    base: `http://127.0.0.1:${server.address().port}`,
    /** Connections accepted so far (while online). */
    accepted: () => accepted,
    /** Connections open now. */
    open: () => pairs.size,
    cut({ halfOpen = false } = {}) {
      const n = pairs.size;
      for (const pair of pairs) {
        pairs.delete(pair);
        pair.halfOpen = halfOpen;
        pair.upstream.unpipe(pair.client);
        pair.client.unpipe(pair.upstream);
        pair.client.resetAndDestroy();
        if (halfOpen) {
          // Keep reading, so the server's writes succeed and go nowhere; close when it does.
          pair.upstream.on('data', () => {});
          pair.upstream.on('end', () => pair.upstream.destroy());
          proxy.halfOpen.add(pair.upstream);
        } else {
          pair.upstream.destroy();
        }
      }
      return n;
    },
    halfOpen: new Set(),
    offline(on) { offline = on; },
    async stop() {
      for (const { client, upstream } of pairs) { client.destroy(); upstream.destroy(); }
      for (const s of proxy.halfOpen) s.destroy();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  if (t) t.after(() => proxy.stop());
  return proxy;
}
