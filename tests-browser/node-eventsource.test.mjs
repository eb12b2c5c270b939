// The demo against a second, independent client: the npm `eventsource` package, run in Node.
//
// `eventsource` 2.x (the classic Node client on node:http) follows the WHATWG rule this design
// relies on: an `id:` field in a block without data still sets the last event id. So it gets the
// whole session behaviour: lastEventId, Last-Event-ID on reconnect, stop on 204.
//
// `eventsource` 3.x/4.x (`eventsource-v4` here, a fetch-based rewrite on eventsource-parser) does
// not: its parser drops a block without data together with its `id:`, and a MessageEvent's
// lastEventId is the id of that very block, not the last one seen. The preamble's id is lost on
// it; so the server repeats `id:` on the first event of each connection, which this client keeps
// and sends back as Last-Event-ID. (Later events carry no id, so their lastEventId is '' here.)

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import EventSource from 'eventsource';
import { EventSource as EventSourceV4 } from 'eventsource-v4';
import { RETRY_MS, UUID, parseEventId, request, sessions, sleep, startDemo, stats, waitFor } from './lib.mjs';

const TIMEOUT = 20_000;

// eventsource 2.x sends its requests with `http.request`: record those to /events (headers as
// sent, response status) so the tests can see the client side of a reconnect.
let recording = null;
const httpRequest = http.request;
http.request = function (options, callback) {
  const entry = recording && typeof options === 'object' && options.path?.startsWith('/events')
    ? { path: options.path, headers: { ...options.headers }, status: null }
    : null;
  if (entry) recording.push(entry);
  return httpRequest.call(this, options, (res) => {
    if (entry) entry.status = res.statusCode;
    callback?.(res);
  });
};

/** An eventsource 2.x client on the demo's /events; records events and requests. */
function openV2(t, base) {
  const requests = [];
  recording = requests;
  const log = [];
  const es = new EventSource(`${base}/events`);
  t.after(() => {
    es.close();
    recording = null;
  });
  const record = (type) => (e) => log.push({
    type,
    data: e.data ?? null,
    lastEventId: e.lastEventId ?? null,
    status: e.status ?? null,
    readyState: es.readyState,
  });
  for (const name of ['connect', 'message', 'error', 'open']) es.addEventListener(name, record(name));
  return { es, log, requests, connects: () => connects(log) };
}

// The connect events in `log`, each with its JSON data (`{"id": ..., "resumed": ...}`) parsed
// into `id` and `resumed`.
const connects = (log) => log.filter((e) => e.type === 'connect').map((e) => ({ ...e, ...JSON.parse(e.data) }));

test('eventsource 2: connect arrives with data {id, resumed: false} and lastEventId = the session id', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const client = openV2(t, demo.base);
  const connect = await waitFor('the connect event', () => client.connects()[0]);
  assert.deepEqual(JSON.parse(connect.data), { id: connect.id, resumed: false, topics: [], gaps: [] });
  assert.match(connect.id, UUID);
  assert.equal(connect.lastEventId, connect.id);
  assert.equal(client.es.readyState, EventSource.OPEN);
  assert.deepEqual(await sessions(demo.base), [connect.id]);
  assert.equal(client.requests.length, 1);
  assert.equal(client.requests[0].headers.Accept, 'text/event-stream');
  assert.equal(client.requests[0].headers['Last-Event-ID'], undefined);
  assert.equal(client.requests[0].status, 200);

  // Data arrives exactly, leading space and line breaks included.
  assert.equal((await request(demo.base, 'POST', `/sessions/${connect.id}/events`, ' a\r\nb')).status, 202);
  const message = await waitFor('a message', () => client.log.find((e) => e.type === 'message'));
  assert.equal(message.data, ' a\nb');
  assert.equal(message.lastEventId, connect.id);
});

test('eventsource 2: a dropped connection reconnects with Last-Event-ID and keeps its id', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const client = openV2(t, demo.base);
  const { id } = await waitFor('the connect event', () => client.connects()[0]);
  assert.equal(client.es.reconnectInterval, RETRY_MS, 'retry: from the preamble');

  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/drop`)).status, 204);
  const second = await waitFor('a second connect event', () => client.connects()[1]);
  assert.equal(second.id, id, 'the server resolved the same session id');
  assert.equal(second.resumed, false, 'without --resume-ms nothing is resumed');
  assert.equal(second.lastEventId, id);

  assert.equal(client.requests.length, 2);
  assert.equal(client.requests[1].headers['Last-Event-ID'], id);
  assert.equal(client.requests[1].path, '/events', 'no ?id=: the header carried the id');
  assert.equal(client.requests[1].status, 200);
  const error = client.log.find((e) => e.type === 'error');
  assert.equal(error?.readyState, EventSource.CONNECTING, 'the drop makes it reconnect');
  assert.deepEqual(await sessions(demo.base), [id]);
  assert.deepEqual(await stats(demo.base), { events_requests: 2, no_content: 0 });
});

test('eventsource 2: after a server close the reconnect gets 204 and the client stops', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const client = openV2(t, demo.base);
  const { id } = await waitFor('the connect event', () => client.connects()[0]);

  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/close`)).status, 204);
  await waitFor('readyState CLOSED', () => client.es.readyState === EventSource.CLOSED);
  assert.equal(client.requests.length, 2);
  assert.equal(client.requests[1].headers['Last-Event-ID'], id);
  assert.equal(client.requests[1].status, 204);
  const last = client.log.filter((e) => e.type === 'error').at(-1);
  assert.equal(last?.status, 204, 'the error event reports the 204');
  assert.deepEqual(await sessions(demo.base), []);

  await sleep(RETRY_MS * 6);
  assert.equal(client.requests.length, 2, 'no request after the 204');
  assert.equal(client.es.readyState, EventSource.CLOSED);
  assert.deepEqual(await stats(demo.base), { events_requests: 2, no_content: 1 });
});

/** An eventsource 4.x client; its `fetch` option shows every request. */
function openV4(t, base, url = `${base}/events`) {
  const requests = [];
  const log = [];
  const es = new EventSourceV4(url, {
    fetch: async (input, init) => {
      const entry = { url: String(input), headers: new Headers(init.headers), status: null };
      requests.push(entry);
      const res = await fetch(input, init);
      entry.status = res.status;
      return res;
    },
  });
  t.after(() => es.close());
  const record = (e) => log.push({
    type: e.type,
    data: e.data ?? null,
    lastEventId: e.lastEventId ?? null,
    code: e.code ?? null,
    readyState: es.readyState,
  });
  for (const name of ['connect', 'message', 'error', 'open']) es.addEventListener(name, record);
  return { es, log, requests, connects: () => connects(log) };
}

test('eventsource 4: gets the id from the connect data; ?id= keeps it across a drop and ends on 204', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const first = openV4(t, demo.base);
  const connect = await waitFor('the connect event', () => first.connects()[0]);
  const { id } = connect;
  assert.match(id, UUID);
  assert.equal(connect.resumed, false);
  // The id-only preamble is lost on this client, but the id repeated on the first event
  // reaches it (see the top of this file).
  assert.equal(connect.lastEventId, id);
  first.es.close();
  await waitFor('the first session to end', async () => (await sessions(demo.base)).length === 0);

  // What the demo page does with sessionStorage works for it: the id in the URL.
  const client = openV4(t, demo.base, `${demo.base}/events?id=${id}`);
  assert.equal((await waitFor('the connect event', () => client.connects()[0])).id, id);
  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/drop`)).status, 204);
  assert.equal((await waitFor('a second connect event', () => client.connects()[1])).id, id);
  assert.equal(client.requests[1].headers.get('last-event-id'), id);

  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/close`)).status, 204);
  await waitFor('readyState CLOSED', () => client.es.readyState === EventSourceV4.CLOSED);
  assert.equal(client.requests.length, 3);
  assert.equal(client.requests[2].status, 204);
  assert.equal(client.log.filter((e) => e.type === 'error').at(-1)?.code, 204);
  await sleep(RETRY_MS * 4);
  assert.equal(client.requests.length, 3, 'no request after the 204');
});

// eventsource 4 (on eventsource-parser) ignores the id-only preamble, against WHATWG; the
// connection repeats `id:` on its first dispatched event, which this client does honour.
test('eventsource 4: a reconnect sends Last-Event-ID = the session id', {
  timeout: TIMEOUT,
}, async (t) => {
  const demo = await startDemo(t);
  const client = openV4(t, demo.base);
  const { id } = await waitFor('the connect event', () => client.connects()[0]);
  assert.equal((await request(demo.base, 'POST', `/sessions/${id}/drop`)).status, 204);
  await waitFor('a second connect event', () => client.connects()[1]);
  assert.equal(client.requests[1].headers.get('last-event-id'), id);
  assert.equal(client.connects()[1].id, id);
});

/**
 * Resume mode: the connection is dropped by the server, numbered events and a broadcast are
 * sent while the client waits out its retry (1 s); after the reconnect every event is there
 * exactly once, in order, and connect says resumed. `open` makes the client (2.x or 4.x).
 */
async function resumeExactlyOnce(t, open, lastEventIdOf) {
  const demo = await startDemo(t, { resumeMs: 5_000, retryMs: 1_000 });
  const client = open(t, demo.base);
  const first = await waitFor('the connect event', () => client.connects()[0]);
  const { id } = first;
  assert.match(id, UUID);
  assert.equal(first.resumed, false);
  assert.equal(parseEventId(first.lastEventId)?.session, id, `lastEventId is <session>~<position>: ${first.lastEventId}`);

  const post = (route, body) => request(demo.base, 'POST', route, body);
  const send = async (body) => assert.equal((await post(`/sessions/${encodeURIComponent(id)}/events`, body)).status, 202, body);
  const messages = () => client.log.filter((e) => e.type === 'message');
  const before = ['before 1', 'before 2'];
  for (const body of before) await send(body);
  await waitFor('the events sent before the drop', () => messages().length === before.length);
  const seen = messages().at(-1).lastEventId;
  assert.equal(parseEventId(seen)?.session, id);

  assert.equal((await post(`/sessions/${encodeURIComponent(id)}/drop`)).status, 204);
  const away = ['away 1', 'away 2', 'away 3', 'away 4', 'away 5'];
  for (const body of away) await send(body);
  assert.equal((await post('/broadcast', 'to all while away')).text, '1');
  assert.equal(client.requests.length, 1, 'the sends came before the reconnect');

  const second = await waitFor('a second connect event', () => client.connects()[1]);
  assert.deepEqual({ id: second.id, resumed: second.resumed }, { id, resumed: true });
  await send('after');
  await waitFor('the event sent after the reconnect', () => messages().some((e) => e.data === 'after'));
  await sleep(100);
  assert.deepEqual(messages().map((e) => e.data), [...before, ...away, 'to all while away', 'after'], 'every event exactly once, in order');
  const ids = messages().map((e) => parseEventId(e.lastEventId));
  assert.ok(ids.every((p) => p?.session === id), `every event id names the session: ${JSON.stringify(ids)}`);
  assert.ok(ids.every((p, i) => i === 0 || p.seq > ids[i - 1].seq), 'positions increase');

  assert.equal(client.requests.length, 2, 'one reconnect');
  assert.equal(lastEventIdOf(client.requests[1]), seen, 'the reconnect offered the last event id it saw');
  assert.equal(client.requests[1].status, 200);
  assert.deepEqual(await sessions(demo.base), [id]);
}

test('eventsource 2: resume mode, a drop loses nothing and repeats nothing', { timeout: TIMEOUT }, async (t) => {
  await resumeExactlyOnce(t, openV2, (req) => req.headers['Last-Event-ID']);
});

test('eventsource 4: resume mode, a drop loses nothing and repeats nothing', { timeout: TIMEOUT }, async (t) => {
  await resumeExactlyOnce(t, openV4, (req) => req.headers.get('last-event-id'));
});
