// Topics in a real browser: tabs of the demo page that ask for a topic in their URL
// (`/?topic=room`), a tab outside it, and a reload that keeps the tab's topics and replays
// what the topic published while the page was reloading.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromiumForFile, logMessages, openTab, pageConnect, request, waitFor, startDemo } from './lib.mjs';

const TIMEOUT = 30_000;
const browser = chromiumForFile();

const shownTopics = (page) => page.evaluate(() => document.getElementById('topics').textContent.trim());

test('topics: a publish reaches exactly the two tabs in the topic; a reload keeps the topics and replays what was published meanwhile', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t, { resumeMs: 10_000 });
  const context = await browser.newContext();
  t.after(() => context.close());
  const tab = async (path) => {
    const { page, events } = await openTab(t, context, demo.base);
    await page.goto(demo.base + path);
    return { page, events, connect: await pageConnect(page) };
  };
  const a = await tab('/?topic=room');
  const b = await tab('/?topic=room');
  const c = await tab('/');
  const data = (x) => JSON.parse(x.connect.data);
  assert.deepEqual([data(a).topics, data(b).topics, data(c).topics], [['room'], ['room'], []]);
  assert.deepEqual(data(a).gaps, []);
  assert.equal(await waitFor('the page to show its topic', async () => (await shownTopics(a.page)) === 'room' && 'room'), 'room');

  const members = JSON.parse((await request(demo.base, 'GET', '/topics/room/members')).text);
  assert.deepEqual(members.sessions.sort(), [a.connect.id, b.connect.id].sort());
  assert.equal(members.users, 0, 'no user cookie: no user');

  // A publish reaches the two members, and only them: a broadcast after it reaches c.
  assert.equal((await request(demo.base, 'POST', '/topics/room/events', 'hello room')).text, '2');
  assert.equal((await request(demo.base, 'POST', '/broadcast', 'to everyone')).text, '3');
  for (const x of [a, b]) {
    assert.deepEqual(await waitFor('both messages', async () => {
      const got = await logMessages(x.page);
      return got.length === 2 && got;
    }), ['hello room', 'to everyone']);
  }
  assert.deepEqual(await waitFor('the broadcast in c', async () => {
    const got = await logMessages(c.page);
    return got.length === 1 && got;
  }), ['to everyone'], 'c is not in the topic');

  // Reload a, holding its new EventSource request back until a publish went out: the session
  // is detached meanwhile, and the reload resumes it.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let asked = false;
  await a.page.route(`${demo.base}/events*`, async (route) => {
    asked = true;
    await held;
    await route.continue();
  });
  const reloaded = a.page.reload();
  await waitFor('the reloaded page to ask for its stream', () => asked);
  await waitFor('the old stream to be gone', async () =>
    !JSON.parse((await request(demo.base, 'GET', '/sessions')).text).includes(a.connect.id));
  assert.equal((await request(demo.base, 'POST', '/topics/room/events', 'during the reload')).text, '2',
    'the detached session is still a member');
  release();
  await reloaded;
  const again = await pageConnect(a.page);
  const after = JSON.parse(again.data);
  assert.equal(after.id, a.connect.id, 'the reload keeps the session');
  assert.equal(after.resumed, true);
  assert.deepEqual(after.topics, ['room']);
  assert.deepEqual(after.gaps, []);
  assert.deepEqual(await waitFor('the replayed publish', async () => {
    const got = await logMessages(a.page);
    return got.length === 1 && got;
  }), ['during the reload'], 'replayed once, after the reload');
  assert.equal(await shownTopics(a.page), 'room');
  const url = new URL(a.events.at(-1).url);
  assert.deepEqual(url.searchParams.getAll('topic'), ['room']);
  assert.ok(url.searchParams.get('id')?.startsWith(a.connect.id + '~'), 'the reload offered its position');

  // b got it live; c never.
  assert.deepEqual(await waitFor('b to get it', async () => {
    const got = await logMessages(b.page);
    return got.length === 3 && got;
  }), ['hello room', 'to everyone', 'during the reload']);
  assert.deepEqual(await logMessages(c.page), ['to everyone']);
});

test('topics: the page joins a topic; a staff topic is refused to anyone but the staff user', { timeout: TIMEOUT }, async (t) => {
  const demo = await startDemo(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const { page } = await openTab(t, context, demo.base);
  await page.goto(demo.base + '/?topic=staff-room');
  const connect = await pageConnect(page);
  assert.deepEqual(JSON.parse(connect.data).topics, [], 'asked for, not granted: left out');

  await page.fill('#topic-name', 'lobby');
  await page.click('#join');
  await waitFor('the page to show lobby', async () => (await shownTopics(page)) === 'lobby');
  await page.fill('#topic-name', 'staff-room');
  await page.click('#join');
  await waitFor('the refusal in the log', () =>
    page.evaluate(() => document.getElementById('log').textContent.includes('staff-room: 403')));
  assert.equal(await shownTopics(page), 'lobby');
  assert.equal((await request(demo.base, 'POST', '/topics/lobby/events', 'in the lobby')).text, '1');
  assert.deepEqual(await waitFor('the lobby message', async () => {
    const got = await logMessages(page);
    return got.length === 1 && got;
  }), ['in the lobby']);
});
