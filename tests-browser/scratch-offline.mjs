import { startDemo, launchChromium, openPage, request, sleep, waitFor } from './lib.mjs';
const t = { after: (f) => cleanups.push(f) }; const cleanups = [];
const demo = await startDemo(t, { retryMs: 500 });
const browser = await launchChromium();
for (const mode of ['cdp', 'playwright']) {
  const { context, page, events } = await openPage(t, browser, demo.base);
  await page.goto(demo.base + '/');
  await waitFor('connect', () => page.evaluate(() => window.received.length > 0));
  const id = JSON.parse((await page.evaluate(() => window.received[0])).data).id;
  const t0 = Date.now();
  const cdp = await context.newCDPSession(page);
  if (mode === 'cdp') {
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  } else await context.setOffline(true);
  await page.evaluate(() => { window.errs = []; document.defaultView.__es = null; });
  for (let i = 0; i < 20; i++) {
    const st = await page.evaluate(() => document.getElementById('status-text').textContent);
    const s = await (await fetch(demo.base + '/sessions')).text();
    console.log(mode, Date.now() - t0, st, s, events.map(e => e.status));
    if (i === 3) await request(demo.base, 'POST', `/sessions/${id}/events`, 'during-offline');
    if (i === 10) { if (mode === 'cdp') await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }); else await context.setOffline(false); console.log('online'); }
    await sleep(200);
  }
  console.log(JSON.stringify(await page.evaluate(() => window.received)));
  await context.close();
}
await browser.close(); for (const f of cleanups) await f();
