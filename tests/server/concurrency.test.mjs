// concurrency.test.mjs -- many clients at once: 24 concurrent streams through
// the openai client each get their own answer; a full queue answers 503 with
// Retry-After; a client that leaves mid-stream (or while queued) frees the
// inference thread at once, so the next request does not wait for it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, post, metric, SLOW } from './common.mjs';

const servers = [];
after(async () => { for (const s of servers) assert.equal(await s.stop(), 0); });
async function server(args) { const s = await startServer(args); servers.push(s); return s; }

test('24 concurrent streaming clients each get their own answer', async () => {
  const srv = await server(['-m', 'echo:delay_ms=1', '--queue', '64']);
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 120000 });
  const N = 24;
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const s = await client.chat.completions.create({ model: 'echo', stream: true,
      messages: [{ role: 'user', content: `client number ${i} says hello` }] });
    let content = '', reasoning = '', finish = null;
    for await (const ch of s) {
      const c = ch.choices[0];
      if (!c) continue;
      content += c.delta.content || '';
      reasoning += c.delta.reasoning_content || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    return { i, content, reasoning, finish };
  }));
  for (const r of results) {
    assert.equal(r.content, `**Echo:** client number ${r.i} says hello`);
    assert.ok(r.reasoning.endsWith(`client number ${r.i} says hello`));
    assert.equal(r.finish, 'stop');
  }
  assert.ok(Date.now() - t0 < (SLOW ? 90000 : 30000));
  assert.equal(await metric(srv.url, 'glmv_chat_requests_total'), N);
  assert.equal(await metric(srv.url, 'glmv_queue_depth'), 0);
  assert.equal(await metric(srv.url, 'glmv_requests_in_flight'), 0);
});

test('a full queue answers 503 with Retry-After, the accepted ones finish', async () => {
  const srv = await server(['-m', 'echo:delay_ms=10', '--queue', '2']);
  const body = { stream: true, messages: [{ role: 'user', content: 'busy? [[delay=30]]' }] }; // ~1.5 s each
  const rs = await Promise.all(Array.from({ length: 8 }, () => post(srv.url, '/v1/chat/completions', body)));
  const codes = rs.map((r) => r.status).sort();
  const busy = rs.filter((r) => r.status === 503);
  assert.ok(busy.length >= 1, 'some 503: ' + codes);
  assert.ok(rs.filter((r) => r.status === 200).length >= 2, 'some 200: ' + codes);
  for (const r of busy) {
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    const j = await r.json();
    assert.equal(j.error.code, 'queue_full');
  }
  for (const r of rs.filter((x) => x.status === 200)) {
    const t = await r.text();
    assert.ok(t.trimEnd().endsWith('data: [DONE]'));
  }
  assert.ok(await metric(srv.url, 'glmv_requests_rejected_total') >= 1);
});

test('a client leaving mid-stream or while queued frees its slot at once', async () => {
  const srv = await server(['-m', 'echo:delay_ms=20', '--queue', '8']);
  const long = { stream: true, messages: [{ role: 'user', content: 'long [[tokens=2000]]' }] }; // ~40 s if not cancelled
  // A: streaming, leaves after a few chunks. B: queued behind A, leaves while waiting.
  const ca = new AbortController(), cb = new AbortController();
  const ra = await post(srv.url, '/v1/chat/completions', long, {}, ca.signal);
  const pb = fetch(srv.url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify(long), signal: cb.signal }).catch(() => null);
  const reader = ra.body.getReader();
  let got = 0;
  while (got < 3) { const { done } = await reader.read(); if (done) break; got++; }
  let depth = 0;
  for (let k = 0; k < 200 && depth !== 1; k++) { // B reaches the queue (bounded wait)
    depth = await metric(srv.url, 'glmv_queue_depth');
    if (depth !== 1) await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(depth, 1, 'B waits in the queue');
  cb.abort();
  ca.abort();
  await pb;
  // C must start right away: neither A's 2000 tokens nor B's run first.
  const t0 = Date.now();
  const rc = await post(srv.url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'next [[delay=0]]' }] });
  assert.equal(rc.status, 200);
  assert.equal((await rc.json()).choices[0].message.content, '**Echo:** next [[delay=0]]');
  const dt = Date.now() - t0;
  assert.ok(dt < (SLOW ? 5000 : 2000), `the next request waited ${dt} ms`);
  assert.equal(await metric(srv.url, 'glmv_requests_cancelled_total'), 2);
  assert.equal(await metric(srv.url, 'glmv_queue_depth'), 0);
  // a client leaving is counted, not logged as an error
  assert.doesNotMatch(srv.stderr(), /error generating response/);
});
