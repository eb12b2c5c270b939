// Reads cases from stdin, parses each with eventsource-parser, writes what an EventSource
// would see to stdout. Driven by sse-proto/tests/differential.rs.
//
// stdin:  [{"chunks": [[byte, ...], ...]}, ...]
// stdout: [[{"event": "...", "data": "...", "id": "..."} | {"retry": 1234}, ...], ...]
//
// Bytes become text with a streaming TextDecoder that keeps the BOM (the parser strips one
// leading BOM itself, as the WHATWG text asks). `onId` keeps the last event id the way
// EventSource does: it persists across events until an `id` field changes it.
// The parser package is the first argument: `eventsource-parser` (4.x) or
// `eventsource-parser-v3` (3.0.6, kept to show where it departs from the WHATWG text).
const { createParser } = await import(process.argv[2] ?? 'eventsource-parser');

const input = await new Promise((resolve, reject) => {
  const parts = [];
  process.stdin.on('data', (c) => parts.push(c));
  process.stdin.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
  process.stdin.on('error', reject);
});

const results = JSON.parse(input).map(({ chunks }) => {
  const items = [];
  let lastEventId = '';
  const parser = createParser({
    onId: (id) => { lastEventId = id; },
    onEvent: (e) => {
      // 3.x has no onId: the event's own id is all it reports.
      if (e.id !== undefined) lastEventId = e.id;
      items.push({ event: e.event ?? 'message', data: e.data, id: lastEventId });
    },
    onRetry: (ms) => items.push({ retry: ms }),
  });
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  for (const chunk of chunks) {
    parser.feed(decoder.decode(Uint8Array.from(chunk), { stream: true }));
  }
  parser.feed(decoder.decode());
  return items;
});

process.stdout.write(JSON.stringify(results));
