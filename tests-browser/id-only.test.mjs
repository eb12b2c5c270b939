// What sse-rs relies on when it moves a tab's position without an event
// (`Hub::deliver_known`, after Redis applied late a send this node had delivered at once):
// a block with an `id:` line and nothing else sets the EventSource's last event id, fires no
// event, and the reconnect offers that id. Checked in headless Chromium against a bare
// Node server that writes exactly those bytes.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { chromiumForFile, waitFor } from './lib.mjs';

const TIMEOUT = 30_000;
const browser = chromiumForFile();

/** A server on a free loopback port: `/` is a blank page, `/events` answers with `streams` in turn (then 204). */
async function startServer(streams) {
  const requests = [];
  const server = http.createServer((req, res) => {
    if (req.url !== '/events') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body></body></html>');
      return;
    }
    requests.push({ lastEventId: req.headers['last-event-id'] ?? null });
    const body = streams[requests.length - 1];
    if (body === undefined) {
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${server.address().port}`, requests };
}

test('an id-only block moves the last event id, dispatches nothing, and the reconnect offers it', { timeout: TIMEOUT }, async (t) => {
  const { server, base, requests } = await startServer([
    // As the hub writes them: an event with its position, then a position alone.
    'retry: 100\n\nid: tab~e.1\ndata: first\n\nid: tab~e.2\n\n',
  ]);
  const context = await browser.newContext();
  // The browser first, then the server, without waiting for its idle keep-alive connections.
  t.after(async () => {
    await context.close();
    server.closeAllConnections();
    server.close();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(5_000);
  await page.goto(`${base}/`);
  await page.evaluate(() => {
    const log = [];
    const es = new EventSource('/events');
    es.onmessage = (e) => log.push({ data: e.data, lastEventId: e.lastEventId });
    window.sse = { es, log };
  });

  // The stream ends after the id-only block; the reconnect says where the tab is, and its
  // 204 stops the browser.
  await waitFor('the reconnect', () => requests.length >= 2);
  await waitFor('the browser to stop', () => page.evaluate(() => window.sse.es.readyState === EventSource.CLOSED));
  assert.deepEqual(requests.map((r) => r.lastEventId), [null, 'tab~e.2']);
  assert.deepEqual(await page.evaluate(() => window.sse.log), [{ data: 'first', lastEventId: 'tab~e.1' }]);
});
