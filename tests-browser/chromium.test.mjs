// The demo against a real browser: headless Chromium's own EventSource, through playwright-core.
// Each test starts its own demo server and uses a fresh browser context.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  RETRY_MS,
  UUID,
  eventsRequest,
  launchChromium,
  openEventSource,
  openPage,
  pageLog,
  readyState,
  request,
  screenshotPath,
  sessions,
  sleep,
  startDemo,
  stats,
  waitFor,
} from './lib.mjs';

const TIMEOUT = 30_000;
let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

const connects = async (page) => (await pageLog(page)).filter((e) => e.type === 'connect');
// Resolves to the first connect event, once there is one.
const firstConnect = (page) => waitFor('the connect event', async () => (await connects(page))[0]);

test('connect arrives with lastEventId = data = the session id, which /sessions lists', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base);

  const connect = await firstConnect(page);
  assert.match(connect.data, UUID, 'a fresh id is a UUID v4');
  assert.equal(connect.lastEventId, connect.data, 'the preamble id sets lastEventId before connect');
  assert.equal(connect.readyState, 1, 'OPEN');
  assert.deepEqual(await sessions(demo.base), [connect.data]);

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
  const { data: id } = await firstConnect(page);

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
  assert.equal(await page.evaluate(() => sessionStorage.getItem('sseId')), id);
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

  // Reload: the tab's sessionStorage brings the same id back through ?id=.
  await page.reload();
  const second = await eventsRequest(events, 1);
  assert.equal(new URL(second.url).searchParams.get('id'), id);
  assert.equal(second.headers['last-event-id'], undefined, 'a new EventSource starts without one');
  await waitFor('the page to show its id after the reload', async () => (await shownId()) === id);
  assert.deepEqual(await waitFor('the old connection to be gone', async () => {
    const ids = await sessions(demo.base);
    return ids.length === 1 && ids;
  }), [id]);
});

test('the close button ends the session: 204 on reconnect, the page says closed', { timeout: TIMEOUT }, async (t) => {
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
});

test('a dropped connection reconnects with Last-Event-ID and keeps its id', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const { page, events } = await openPage(t, browser, demo.base);
  await openEventSource(page, demo.base);
  const { data: id } = await firstConnect(page);

  const dropped = await request(demo.base, 'POST', `/sessions/${id}/drop`);
  assert.equal(dropped.status, 204, `POST /sessions/{id}/drop answered ${dropped.status}: is the route missing?`);

  // Browser side: the error (readyState CONNECTING, not CLOSED), then a second connect, same id.
  const second = await waitFor('a second connect event', async () => (await connects(page))[1]);
  assert.equal(second.data, id, 'the server resolved the same session id');
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
  const { data: id } = await firstConnect(page);

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
