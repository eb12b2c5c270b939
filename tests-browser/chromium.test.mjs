// The demo against a real browser: headless Chromium's own EventSource, through playwright-core.
// Each test starts its own demo server and uses a fresh browser context.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  RETRY_MS,
  STORAGE_KEY,
  UUID,
  eventsRequest,
  chromiumForFile,
  logMessages,
  openEventSource,
  openPage,
  openTab,
  pageConnect,
  pageLog,
  parseEventId,
  readyState,
  received,
  request,
  screenshotPath,
  sessions,
  shown,
  sleep,
  startDemo,
  startProxy,
  stats,
  waitFor,
} from './lib.mjs';

const TIMEOUT = 30_000;
const browser = chromiumForFile();

// The connect events of `openEventSource`'s log, each with its JSON data parsed into `id`
// and `resumed` (contract v3: `{"id": "<session id>", "resumed": <bool>, "topics": [..], "gaps": [..]}`).
const connects = async (page) => (await pageLog(page))
  .filter((e) => e.type === 'connect')
  .map((e) => ({ ...e, ...JSON.parse(e.data) }));
// Resolves to the first connect event, once there is one.
const firstConnect = (page) => waitFor('the connect event', async () => (await connects(page))[0]);

test('connect arrives with data {id, resumed: false} and lastEventId = the session id, which /sessions lists', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base);

  const connect = await firstConnect(page);
  assert.deepEqual(JSON.parse(connect.data), { id: connect.id, resumed: false, topics: [], gaps: [] },
    'connect data is {id, resumed, topics, gaps}');
  assert.match(connect.id, UUID, 'a fresh id is a UUID v4');
  assert.equal(connect.lastEventId, connect.id, 'the preamble id sets lastEventId before connect');
  assert.equal(connect.readyState, 1, 'OPEN');
  assert.deepEqual(await sessions(demo.base), [connect.id]);

  // The first request carries no Last-Event-ID and is seen as an EventSource request.
  const first = await eventsRequest(events, 0);
  assert.equal(events.length, 1);
  assert.equal(first.type, 'EventSource');
  assert.equal(first.headers.accept, 'text/event-stream');
  assert.equal(first.headers['last-event-id'], undefined);
  assert.equal(first.status, 200);
  assert.deepEqual(await stats(demo.base), { events_requests: 1, no_content: 0 });
});

test('events to one session and broadcasts arrive exactly as sent', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base, { names: ['note'] });
  const { id } = await firstConnect(page);

  const post = (route, body) => request(demo.base, 'POST', route, body);
  assert.equal((await post(`/sessions/${id}/events`, ' leading space\nline 2\r\nline 3\rline 4')).status, 202);
  assert.equal((await post(`/sessions/${id}/events`, '')).status, 202);
  assert.equal((await post(`/sessions/${id}/events?event=note`, 'named')).status, 202);
  assert.equal((await post('/broadcast?event=note', 'to all')).text, '1');
  assert.equal((await post(`/sessions/${id}/events?event=bad%0Aname`, 'x')).status, 400);
  assert.equal((await post('/sessions/no-such-id/events', 'x')).status, 404);

  const got = await waitFor('four events', async () => {
    const log = (await pageLog(page)).filter((e) => e.type === 'message' || e.type === 'note');
    return log.length >= 4 && log;
  });
  assert.deepEqual(
    got.map(({ type, data, lastEventId }) => ({ type, data, lastEventId })),
    [
      // CR, LF and CRLF all split lines; the browser joins them with LF; the leading space survives.
      { type: 'message', data: ' leading space\nline 2\nline 3\nline 4', lastEventId: id },
      // Empty data is still dispatched.
      { type: 'message', data: '', lastEventId: id },
      { type: 'note', data: 'named', lastEventId: id },
      { type: 'note', data: 'to all', lastEventId: id },
    ],
  );
});

test('the demo page shows its session id and keeps it across a reload', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t, { tickMs: 200 });
  const { page, events } = await openPage(t, browser, demo.base);
  await page.goto(demo.base + '/');

  const shownId = () => page.evaluate(() => {
    const text = document.getElementById('session-id')?.textContent.trim() ?? '';
    return /^[0-9a-f-]{36}$/.test(text) ? text : null;
  });
  const id = await waitFor('the page to show its session id', shownId);
  assert.match(id, UUID);
  assert.deepEqual(await sessions(demo.base), [id]);
  const connect = await pageConnect(page);
  assert.deepEqual({ id: connect.id, resumed: connect.resumed }, { id, resumed: false });
  assert.equal(connect.lastEventId, id, 'without --resume-ms the last event id is the bare session id');
  assert.equal((await shown(page)).resumed, 'no');
  assert.ok((await shown(page)).curl.includes(`/sessions/${id}/events`), 'the curl line reaches this session');
  // Read and cleared on load: a duplicated tab copies nothing while this one lives.
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), STORAGE_KEY), null);
  assert.equal(new URL((await eventsRequest(events, 0)).url).search, '', 'the first load has no stored id');

  // sync-time ticks reach the clock.
  await waitFor('a sync-time tick on the clock', () =>
    page.evaluate(() => /\d/.test(document.getElementById('clock').textContent)));

  // A message to this tab shows up in its log.
  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/events`, 'hello from the test')).status, 202);
  await waitFor('the message in the page log', () =>
    page.evaluate(() => document.getElementById('log').textContent.includes('hello from the test')));
  await page.setViewportSize({ width: 1000, height: 760 });
  await page.screenshot({ path: screenshotPath('demo-page.png'), fullPage: true });

  // Reload: pagehide stores the last event id, the new page offers it as ?id= and clears it.
  const lastEventId = (await received(page)).at(-1).lastEventId;
  assert.equal(lastEventId, id);
  await page.reload();
  const second = await eventsRequest(events, 1);
  assert.equal(new URL(second.url).searchParams.get('id'), lastEventId,
    'the reload offers the last event id that pagehide stored, as ?id=');
  assert.equal(second.headers['last-event-id'], undefined, 'a new EventSource starts without one');
  await waitFor('the page to show its id after the reload', async () => (await shownId()) === id);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), STORAGE_KEY), null, 'read and cleared again');
  assert.deepEqual(await waitFor('the old connection to be gone', async () => {
    const ids = await sessions(demo.base);
    return ids.length === 1 && ids;
  }), [id]);

  // Leaving the page (pagehide) stores it: a same-origin page in this tab sees it.
  await page.goto(demo.base + '/blank');
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), STORAGE_KEY), id);
});

test('the close button ends the session: 204 on reconnect, the page says closed, a reload starts afresh', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await page.goto(demo.base + '/');
  await page.locator('#close:not([disabled])').waitFor();
  const id = (await page.locator('#session-id').textContent()).trim();
  assert.match(id, UUID);

  await page.click('#close');
  await waitFor('the page to report the close', () =>
    page.evaluate(() => document.getElementById('status-text').textContent.includes('closed')));
  assert.deepEqual(await sessions(demo.base), []);
  const reconnect = await eventsRequest(events, 1);
  assert.equal(reconnect.headers['last-event-id'], id);
  assert.equal(reconnect.status, 204);
  assert.deepEqual(events.map((e) => e.status), [200, 204]);
  assert.deepEqual(await stats(demo.base), { events_requests: 2, no_content: 1 });

  // Closed by the server: pagehide stores nothing, so a reload starts a new session.
  await page.reload();
  const third = await eventsRequest(events, 2);
  assert.equal(new URL(third.url).search, '', 'no ?id= after a server close');
  assert.equal(third.status, 200);
  const { id: fresh } = await pageConnect(page);
  assert.match(fresh, UUID);
  assert.notEqual(fresh, id);
});

test('a dropped connection reconnects with Last-Event-ID and keeps its id', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base);
  const { id } = await firstConnect(page);

  const dropped = await request(demo.base, 'POST', `/sessions/${id}/drop`);
  assert.equal(dropped.status, 204, `POST /sessions/{id}/drop answered ${dropped.status}: is the route missing?`);

  // Browser side: the error (readyState CONNECTING, not CLOSED), then a second connect, same id.
  const second = await waitFor('a second connect event', async () => (await connects(page))[1]);
  assert.equal(second.id, id, 'the server resolved the same session id');
  assert.equal(second.resumed, false, 'without --resume-ms nothing is resumed');
  assert.equal(second.lastEventId, id);
  const log = await pageLog(page);
  const error = log.find((e) => e.type === 'error');
  assert.ok(error, 'the drop fires an error event');
  assert.equal(error.readyState, 0, 'CONNECTING: the browser will reconnect');

  // The reconnect request carried the id back in Last-Event-ID (no ?id= here: the header did it).
  const reconnect = await eventsRequest(events, 1);
  assert.equal(events.length, 2);
  assert.equal(reconnect.headers['last-event-id'], id);
  assert.equal(new URL(reconnect.url).search, '');
  assert.equal(reconnect.status, 200);

  // Server side: the same id is live again.
  assert.deepEqual(await sessions(demo.base), [id]);
  assert.deepEqual(await stats(demo.base), { events_requests: 2, no_content: 0 });
  assert.equal(await readyState(page), 1);
});

test('after a server close the reconnect gets 204 and the browser stops for good', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base);
  const { id } = await firstConnect(page);

  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/close`)).status, 204);
  await waitFor('readyState CLOSED', async () => (await readyState(page)) === 2);

  // The reconnect carried the id and was answered 204.
  const reconnect = await eventsRequest(events, 1);
  assert.equal(events.length, 2);
  assert.equal(reconnect.headers['last-event-id'], id);
  assert.equal(reconnect.status, 204);
  const errors = (await pageLog(page)).filter((e) => e.type === 'error');
  assert.ok(errors.length >= 1 && errors.at(-1).readyState === 2, `the last error event is CLOSED: ${JSON.stringify(errors)}`);
  assert.deepEqual(await sessions(demo.base), []);

  // No further request, however long we wait.
  await sleep(RETRY_MS * 6);
  assert.equal(events.length, 2, 'no request after the 204');
  assert.equal(await readyState(page), 2);
  assert.deepEqual(await stats(demo.base), { events_requests: 2, no_content: 1 });
  assert.equal((await connects(page)).length, 1);
});

// --- Resume mode, reloads and duplicated tabs on the demo page ---------------------------------

/** Resume mode with a wide reconnect window: the browser waits 1 s after a cut. */
const RESUME = { resumeMs: 5_000, retryMs: 1_000 };

// The data of the plain messages the demo page received, in order.
const messages = async (page) => (await received(page)).filter((e) => e.type === 'message').map((e) => e.data);

/**
 * The ids of the events in `log` (from `received`), checked to be `<id>~<epoch>.<seq>` with one
 * epoch and strictly increasing sequence numbers.
 */
function assertPositions(log, id) {
  const parsed = log.map((e) => ({ e, p: parseEventId(e.lastEventId) }));
  for (const { e, p } of parsed) {
    assert.ok(p && p.session === id && p.seq !== null, `${JSON.stringify(e)}: lastEventId is ${id}~<epoch>.<seq>`);
  }
  for (let i = 1; i < parsed.length; i++) {
    const [a, b] = [parsed[i - 1].p, parsed[i].p];
    assert.equal(b.epoch, a.epoch, 'one epoch');
    assert.ok(b.seq > a.seq, `positions increase: ${a.position} then ${b.position}`);
  }
}

/**
 * The page is connected; the connection is cut (`server`: POST /sessions/{id}/drop; `reset`:
 * the proxy resets both sides; `half-open`: the proxy resets the browser's side only, the
 * server's side stays open and its writes go nowhere). While the tab is away, numbered events
 * and a broadcast are sent; after the reconnect every event is there exactly once, in order.
 */
async function exactlyOnceAcrossACut(t, cut) {
  const demo = await startDemo(t, RESUME);
  const proxy = cut === 'server' ? null : await startProxy(t, demo.base);
  const origin = proxy?.base ?? demo.base;
  const { page, events } = await openPage(t, browser, origin);
  await page.goto(origin + '/');
  const first = await pageConnect(page);
  const { id } = first;
  assert.match(id, UUID);
  assert.equal(first.resumed, false);
  assert.equal(parseEventId(first.lastEventId)?.session, id, `lastEventId is <session>~<position>: ${first.lastEventId}`);

  const post = (route, body) => request(demo.base, 'POST', route, body);
  const send = async (body) => {
    const res = await post(`/sessions/${encodeURIComponent(id)}/events`, body);
    assert.equal(res.status, 202, `POST ${body}: ${res.status} ${res.text}`);
  };
  const before = ['before 1', 'before 2'];
  for (const body of before) await send(body);
  await waitFor('the events sent before the cut', async () => (await messages(page)).length === before.length);
  const seen = (await received(page)).at(-1).lastEventId;

  // The cut, and at once the sends, while the browser waits out its retry (1 s).
  if (cut === 'server') {
    assert.equal((await post(`/sessions/${encodeURIComponent(id)}/drop`)).status, 204);
  } else {
    assert.ok(proxy.cut({ halfOpen: cut === 'half-open' }) >= 1, 'the proxy had a connection to cut');
  }
  const cutAt = Date.now();
  const away = ['away 1', 'away 2', 'away 3', 'away 4', 'away 5'];
  for (const body of away) await send(body);
  const count = await post('/broadcast', 'to all while away');
  assert.equal(count.text, '1', 'the broadcast is queued for the (detached) session');
  const sentWithin = Date.now() - cutAt;
  assert.equal(events.length, 1, `the sends (done ${sentWithin} ms after the cut) came before the reconnect`);
  if (cut === 'half-open') {
    assert.deepEqual(await sessions(demo.base), [id], 'half-open: the server still sees a live stream');
  }

  const second = await pageConnect(page, 1);
  const reconnectAfter = Date.now() - cutAt;
  assert.deepEqual({ id: second.id, resumed: second.resumed }, { id, resumed: true }, 'the same session, resumed');
  await send('after');
  const expected = [...before, ...away, 'to all while away', 'after'];
  await waitFor('the event sent after the reconnect', async () => (await messages(page)).includes('after'));
  await sleep(100); // room for a wrongly repeated event to show up
  assert.deepEqual(await messages(page), expected, `every event exactly once, in order (reconnect ${reconnectAfter} ms after the cut)`);
  assert.deepEqual(await logMessages(page), expected, 'the #log shows the same');

  const log = await received(page);
  assertPositions(log.filter((e) => e.type === 'message'), id);
  const replayed = log.filter((e) => e.type === 'message' && e.data === 'to all while away')[0];
  assert.equal(second.lastEventId, replayed.lastEventId, 'connect comes after the replay and has no id of its own');

  // The reconnect offered what the tab had seen, in Last-Event-ID.
  const reconnect = await eventsRequest(events, 1);
  assert.equal(reconnect.headers['last-event-id'], seen);
  assert.equal(new URL(reconnect.url).search, '', 'the header carried the id, not ?id=');
  assert.equal(reconnect.status, 200);
  assert.equal(events.length, 2, 'one reconnect');

  const state = await shown(page);
  assert.deepEqual({ id: state.id, resumed: state.resumed, status: state.status }, { id, resumed: 'yes: nothing was lost', status: 'open' });
  assert.deepEqual(await sessions(demo.base), [id]);
  return { page };
}

test('resume: a server-side drop, events sent while away arrive exactly once, in order', { timeout: TIMEOUT }, async (t) => {
  const { page } = await exactlyOnceAcrossACut(t, 'server');
  await page.setViewportSize({ width: 1000, height: 760 });
  await page.screenshot({ path: screenshotPath('demo-resumed.png'), fullPage: true });
});

test('resume: the network cut from the client side (both ends reset), every event exactly once', { timeout: TIMEOUT }, async (t) => {
  await exactlyOnceAcrossACut(t, 'reset');
});

test('resume: a half-open cut (the server does not notice), every event exactly once', { timeout: TIMEOUT }, async (t) => {
  await exactlyOnceAcrossACut(t, 'half-open');
});

test('resume: five quick reloads keep the id, each offering ?id=<id>~<position>', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t, { resumeMs: 5_000 });
  const { page, events } = await openPage(t, browser, demo.base);
  await page.goto(demo.base + '/');
  const { id } = await pageConnect(page);
  assert.equal((await request(demo.base, 'POST', `/sessions/${encodeURIComponent(id)}/events`, 'before the reloads')).status, 202);
  await waitFor('the message', async () => (await messages(page)).length === 1);
  let offer = (await received(page)).at(-1).lastEventId;
  assert.equal(parseEventId(offer)?.session, id);

  // Reload as soon as the page is connected again, five times.
  const started = Date.now();
  for (let i = 1; i <= 5; i++) {
    const n = events.length;
    await page.reload();
    const req = await eventsRequest(events, n);
    assert.equal(new URL(req.url).searchParams.get('id'), offer,
      `reload ${i}: ?id= carries the last event id that pagehide stored`);
    assert.equal(req.status, 200);
    const c = await pageConnect(page);
    assert.deepEqual({ id: c.id, resumed: c.resumed }, { id, resumed: true }, `reload ${i}: the same session, resumed`);
    assert.equal((await shown(page)).id, id, `reload ${i}: the page shows the id`);
    assert.deepEqual(await messages(page), [], `reload ${i}: nothing replayed (nothing was missed)`);
    assert.equal(events.length, n + 1, `reload ${i}: one request`);
    offer = c.lastEventId;
    assert.equal(parseEventId(offer)?.session, id);
  }
  const took = Date.now() - started;

  // And five back to back: each as soon as the page's script ran (its EventSource is opening),
  // without waiting for the connection.
  const n = events.length;
  for (let i = 0; i < 5; i++) await page.reload({ waitUntil: 'domcontentloaded' });
  const last = await pageConnect(page);
  assert.equal(last.id, id, 'the id survives back-to-back reloads');
  assert.equal((await shown(page)).id, id);
  for (const req of events.slice(n)) {
    assert.equal(parseEventId(new URL(req.url).searchParams.get('id'))?.session, id, `${req.url} offers ${id}~<position>`);
  }
  assert.ok(events.length - n <= 5, `at most one request per reload (${events.length - n})`);
  assert.equal((await request(demo.base, 'POST', `/sessions/${encodeURIComponent(id)}/events`, 'after the reloads')).status, 202);
  await waitFor('the message after the reloads', async () => (await messages(page)).length >= 1);
  await sleep(100);
  assert.deepEqual(await messages(page), ['after the reloads'], 'nothing replayed, nothing lost');
  assert.deepEqual(await waitFor('one live session', async () => {
    const ids = await sessions(demo.base);
    return ids.length === 1 && ids;
  }), [id]);
  t.diagnostic(`five reloads, each waiting for connect: ${took} ms`);
});

/**
 * Tab A is connected; tab B, in the same context, starts with a copy of A's stored last event
 * id in sessionStorage (as Chrome's "Duplicate tab" copies it). B offers A's id; the newer
 * connection takes the session, A's stream ends with a fresh id, and A reconnects with it as a
 * new session: distinct ids, and no more than 3 requests to /events over 4 s. Default retry (3 s).
 */
async function duplicatedTab(t, { resumeMs }) {
  const demo = await startDemo(t, { retryMs: null, resumeMs });
  const context = await browser.newContext();
  t.after(() => context.close());
  const a = await openTab(t, context, demo.base);
  await a.page.goto(demo.base + '/');
  const first = await pageConnect(a.page);
  // A cleared its own copy on load; what it would store is its last event id.
  const copied = (await received(a.page)).at(-1).lastEventId;
  if (resumeMs) assert.equal(parseEventId(copied)?.session, first.id);
  else assert.equal(copied, first.id);

  const b = await openTab(t, context, demo.base, {
    init: ([origin, key, value]) => {
      if (location.origin === origin) sessionStorage.setItem(key, value);
    },
    arg: [demo.base, STORAGE_KEY, copied],
  });
  const windowStart = Date.now();
  await b.page.goto(demo.base + '/');
  const bFirst = await eventsRequest(b.events, 0);
  assert.equal(new URL(bFirst.url).searchParams.get('id'), copied, 'the duplicate offers the copied id');
  const bConnect = await pageConnect(b.page);

  // A's stream is replaced: it reconnects (after the 3 s retry) with a fresh id.
  const aConnect = await pageConnect(a.page, 1);
  const aReconnect = await eventsRequest(a.events, 1);
  const settledAfter = Date.now() - windowStart;
  await sleep(Math.max(0, windowStart + 4_000 - Date.now()));

  const all = [...a.events.map((e) => ({ tab: 'A', ...e })), ...b.events.map((e) => ({ tab: 'B', ...e }))]
    .sort((x, y) => x.at - y.at);
  const timeline = all.map((e) => `${e.tab} +${e.at - windowStart} ms ${new URL(e.url).search || '(no ?id)'} ` +
    `last-event-id=${e.headers?.['last-event-id'] ?? '-'} -> ${e.status ?? e.failed}`).join('; ');
  t.diagnostic(`requests: ${timeline}; A settled ${settledAfter} ms after B opened`);
  assert.ok(all.length <= 3, `at most 3 requests to /events over 4 s, saw ${all.length}: ${timeline}`);

  assert.notEqual(aConnect.id, bConnect.id, 'the two tabs have distinct ids');
  assert.equal(bConnect.id, first.id, 'the newer tab took the session');
  const fresh = aReconnect.headers['last-event-id'];
  assert.ok(fresh && !fresh.includes('~'), `A reconnects with the fresh bare id: ${fresh}`);
  assert.equal(aConnect.id, fresh, 'A became a new session with it');
  assert.equal(aConnect.resumed, false);
  assert.equal((await shown(a.page)).id, aConnect.id);
  assert.equal((await shown(b.page)).id, bConnect.id);
  assert.deepEqual((await sessions(demo.base)).sort(), [aConnect.id, bConnect.id].sort());
  assert.ok([...a.events, ...b.events].every((e) => e.status === 200), timeline);
}

test('resume: a duplicated tab gets its own id, without a reconnect loop', { timeout: TIMEOUT }, async (t) => {
  await duplicatedTab(t, { resumeMs: 5_000 });
});

test('a duplicated tab gets its own id without --resume-ms too', { timeout: TIMEOUT }, async (t) => {
  await duplicatedTab(t, { resumeMs: undefined });
});

// --- Many tabs of one origin: six HTTP/1.1 connections, or one HTTP/2 connection over TLS ----

/** Tabs opened in one browser context (one profile: one pool of connections). */
const TABS = 10;

/** The session id the demo page shows, once it shows one; null before. */
const shownSessionId = (page) => page.evaluate(() => {
  const text = document.getElementById('session-id')?.textContent.trim() ?? '';
  return /^[0-9a-f-]{36}$/.test(text) ? text : null;
});

/** The protocol that brought the page itself (`h2`, `http/1.1`), from its navigation timing. */
const pageProtocol = (page) => page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);

/**
 * Opens tab number `n` in `context`, loads the demo page and waits for it to show its
 * session id.
 */
async function openDemoTab(t, context, base, n) {
  const tab = await openTab(t, context, base);
  try {
    await tab.page.goto(base + '/');
    tab.id = await waitFor('the page to show its session id', () => shownSessionId(tab.page));
  } catch (err) {
    err.message = `tab ${n}: ${err.message}`;
    throw err;
  }
  return tab;
}

test('ten tabs over TLS: one HTTP/2 connection carries them all, and every tab gets a session', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t, { tls: true });
  assert.match(demo.base, /^https:\/\/127\.0\.0\.1:\d+$/, 'the demo says it listens on https://');
  // The certificate is self-signed: this context accepts it (request() pins its fingerprint).
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  t.after(() => context.close());

  // One tab after another, as a person opens them.
  const started = Date.now();
  const tabs = [];
  for (let i = 0; i < TABS; i++) tabs.push(await openDemoTab(t, context, demo.base, i + 1));
  const took = Date.now() - started;

  const ids = tabs.map((tab) => tab.id);
  for (const id of ids) assert.match(id, UUID);
  assert.equal(new Set(ids).size, TABS, 'ten distinct session ids');
  assert.deepEqual((await sessions(demo.base)).sort(), [...ids].sort(), 'GET /sessions over HTTPS lists the ten');
  for (const [i, tab] of tabs.entries()) {
    assert.equal(await pageProtocol(tab.page), 'h2', `tab ${i + 1}: the page came over HTTP/2`);
    const stream = await eventsRequest(tab.events, 0);
    assert.equal(stream.status, 200);
    assert.equal(stream.protocol, 'h2', `tab ${i + 1}: its event stream runs over HTTP/2`);
  }
  const connections = new Set(tabs.map((tab) => tab.events[0].connectionId));
  assert.equal(connections.size, 1, `one connection carries the ten streams: ${[...connections]}`);

  // Every stream is live: a broadcast reaches the ten tabs.
  assert.equal((await request(demo.base, 'POST', '/broadcast', 'to every tab')).text, String(TABS));
  for (const [i, tab] of tabs.entries()) {
    await waitFor(`tab ${i + 1} to show the broadcast`, () =>
      tab.page.evaluate(() => document.getElementById('log').textContent.includes('to every tab')));
  }

  // The graceful shutdown holds over TLS: the ten streams end, and the demo exits in time.
  const stopping = Date.now();
  demo.child.kill('SIGTERM');
  const exit = await Promise.race([demo.exited, sleep(4_000).then(() => null)]);
  assert.deepEqual(exit, { code: 0, signal: null }, `the demo exits on SIGTERM within 4 s:\n${demo.log()}`);
  assert.match(demo.log(), /ending 10 streams/);
  t.diagnostic(`ten tabs over TLS in ${took} ms, all on one h2 connection; shutdown took ${Date.now() - stopping} ms`);
});

test('ten tabs over plain HTTP/1.1: six get a session, the other four cannot even load the page', { timeout: TIMEOUT }, async (t) => {
  // Chromium opens at most six HTTP/1.1 connections per origin in a profile, and each tab's
  // EventSource holds one for as long as it is open. So tabs 1 to 6 load and connect, and
  // tabs 7 to 10 wait for a connection that never frees up: their navigation stays pending
  // (no page, no error shown; playwright's goto gives up here after WAIT ms), so they do not
  // even show the page. When a tab closes, its connection goes to one of the waiting tabs,
  // which then loads and connects. HTTP/2 (the test above) has no such limit.
  const WAIT = 3_000;
  const demo = await startDemo(t);
  const context = await browser.newContext();
  t.after(() => context.close());

  const connected = [];
  for (let i = 0; i < 6; i++) connected.push(await openDemoTab(t, context, demo.base, i + 1));
  for (const [i, tab] of connected.entries()) {
    assert.equal(await pageProtocol(tab.page), 'http/1.1', `tab ${i + 1}: the page came over HTTP/1.1`);
  }
  assert.equal(new Set(connected.map((tab) => tab.events[0].connectionId)).size, 6, 'six connections, one per stream');

  const waiting = [];
  for (let i = 6; i < TABS; i++) waiting.push(await openTab(t, context, demo.base));
  const started = Date.now();
  const loads = await Promise.allSettled(waiting.map((tab) => tab.page.goto(demo.base + '/', { timeout: WAIT })));
  const waited = Date.now() - started;
  for (const [i, load] of loads.entries()) {
    assert.equal(load.status, 'rejected', `tab ${i + 7} could not load the page`);
    assert.equal(load.reason.name, 'TimeoutError', `tab ${i + 7}: ${load.reason}`);
    // (Not page.evaluate: it waits for the pending navigation.)
    assert.equal(waiting[i].page.url(), 'about:blank', `tab ${i + 7} still shows no page`);
    assert.equal(waiting[i].events.length, 0, `tab ${i + 7} never asked for an event stream`);
  }
  const ids = connected.map((tab) => tab.id);
  assert.equal(new Set(ids).size, 6);
  assert.deepEqual((await sessions(demo.base)).sort(), [...ids].sort(), 'the server has the six sessions, no more');

  // Closing a tab hands its connection to a waiting tab.
  await connected[0].page.close();
  const next = await waitFor('a waiting tab to load and open its stream',
    () => waiting.find((tab) => tab.events.some((e) => e.status === 200)));
  const late = await waitFor('the tab to show its session id', () => shownSessionId(next.page));
  assert.deepEqual((await sessions(demo.base)).sort(), [...ids.slice(1), late].sort());
  t.diagnostic(`HTTP/1.1: 6 of ${TABS} tabs connected; the other 4 waited ${waited} ms without a page`);
});
