// concurrency.test.mjs -- many clients at once: 24 concurrent streams through
// the openai client each get their own answer; --parallel N runs N at once (on the demo
// model their decode steps are batched, and each answer is the one it gets alone, also with the
// decoder split 2 ways, -tp 2); a full
// queue answers 503 with Retry-After; a client that leaves mid-stream (or while queued)
// frees its slot at once, so the next request does not wait for it.
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
  const srv = await server(['-m', 'echo:delay_ms=20', '--queue', '8', '--parallel', '1']);
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

test('--parallel 4 runs four requests at once; a fifth waits for a free slot', async () => {
  const srv = await server(['-m', 'echo:delay_ms=20', '--parallel', '4']);
  const body = (i) => ({ messages: [{ role: 'user', content: `slot test ${i} [[tokens=40]]` }] }); // ~1 s each
  const t0 = Date.now();
  const pending = Array.from({ length: 5 }, (_, i) => post(srv.url, '/v1/chat/completions', body(i)));
  let running = 0, waiting = 0;
  for (let k = 0; k < 100 && !(running === 4 && waiting === 1); k++) {
    running = await metric(srv.url, 'glmv_sequences_running');
    waiting = await metric(srv.url, 'glmv_sequences_waiting');
    if (!(running === 4 && waiting === 1)) await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual([running, waiting], [4, 1]);
  assert.equal(await metric(srv.url, 'glmv_parallel'), 4);
  const rs = await Promise.all(pending);
  for (const r of rs) assert.equal(r.status, 200);
  const dt = Date.now() - t0;
  // one at a time would take five times one request; four at once, about twice
  const one = Date.now();
  assert.equal((await post(srv.url, '/v1/chat/completions', body(9))).status, 200);
  const single = Date.now() - one;
  assert.ok(dt < 3.5 * single, `5 requests took ${dt} ms, one alone ${single} ms`);
});

const REAL = process.env.GLMV_REAL_MODEL;
test('the demo model with --parallel 4: decode steps batched, each answer the one it gets alone', { skip: !REAL && 'GLMV_REAL_MODEL not set' }, async () => {
  const fs = await import('node:fs');
  const img = 'data:image/png;base64,' + fs.readFileSync(REAL + '/example.png').toString('base64');
  const qs = ['How many shapes are there?', 'What colour is the circle?', 'Where is the square?',
    'What shape is purple?', 'Describe the image.', 'Is there a triangle?'];
  const ask = (url, q) => post(url, '/v1/chat/completions', { max_tokens: 48, temperature: 0, logprobs: true,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img } }, { type: 'text', text: q }] }] })
    .then((r) => r.json());
  const one = await server(['-m', REAL, '--parallel', '1']);
  const alone = [];
  for (const q of qs) alone.push(await ask(one.url, q));
  const many = await server(['-m', REAL, '--parallel', '4']);
  const together = await Promise.all(qs.map((q) => ask(many.url, q)));
  for (let i = 0; i < qs.length; i++) {
    assert.equal(together[i].choices[0].message.content, alone[i].choices[0].message.content, qs[i]);
    assert.equal(together[i].choices[0].message.reasoning_content, alone[i].choices[0].message.reasoning_content);
    // on the CPU the logits are bit for bit those of a lone run
    assert.deepEqual(together[i].choices[0].logprobs.content.map((t) => t.logprob),
      alone[i].choices[0].logprobs.content.map((t) => t.logprob), qs[i]);
  }
  const steps = await metric(many.url, 'glmv_decode_steps_total');
  const rows = await metric(many.url, 'glmv_decode_step_sequences_total');
  assert.ok(rows / steps > 1.5, `${rows} sequence-steps in ${steps} steps: not batched`);
  assert.equal(await metric(many.url, 'glmv_sequences_running'), 0);
  // the caches hold what the requests left (kept for a next turn), within 4 sessions' capacity
  const kv = await metric(many.url, 'glmv_kv_cache_tokens'), cap = await metric(many.url, 'glmv_kv_cache_capacity_tokens');
  assert.ok(kv > 0 && kv <= cap && cap % 4 === 0, `kv ${kv} of ${cap}`);
  // the decoder split 2 ways (-tp 2: on the CPU both ranks share the cores): batched the same
  // way, the same answers (the split sums o's and down's products in halves: the greedy tokens
  // hold, the log-probabilities agree to rounding)
  const split = await server(['-m', REAL, '--parallel', '4', '-tp', '2']);
  const parts = await Promise.all(qs.map((q) => ask(split.url, q)));
  for (let i = 0; i < qs.length; i++) {
    assert.equal(parts[i].choices[0].message.content, alone[i].choices[0].message.content, qs[i]);
    assert.equal(parts[i].choices[0].message.reasoning_content, alone[i].choices[0].message.reasoning_content);
    const a = alone[i].choices[0].logprobs.content.map((t) => t.logprob);
    const b = parts[i].choices[0].logprobs.content.map((t) => t.logprob);
    assert.equal(b.length, a.length);
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) < 1e-3, `${qs[i]} token ${j}: ${b[j]} against ${a[j]}`);
  }
  const srows = await metric(split.url, 'glmv_decode_step_sequences_total'), ssteps = await metric(split.url, 'glmv_decode_steps_total');
  assert.ok(srows / ssteps > 1.5, `${srows} sequence-steps in ${ssteps} steps: not batched`);
});

test('the demo model in a KV budget of about two caches: four long answers, the newest preempted and resumed, each the one it gets alone', { skip: !REAL && 'GLMV_REAL_MODEL not set' }, async () => {
  const fs = await import('node:fs');
  const img = 'data:image/png;base64,' + fs.readFileSync(REAL + '/example.png').toString('base64');
  const qs = ['How many shapes are there?', 'What colour is the circle?', 'Where is the square?', 'Describe the image.'];
  // 300 tokens each: every cache grows past the CPU's 64 KB granules (8 tensors x 128 rows each)
  const ask = (url, q) => post(url, '/v1/chat/completions', { max_tokens: 300, min_tokens: 300, ignore_eos: true,
    temperature: 0, logprobs: true,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img } }, { type: 'text', text: q }] }] })
    .then((r) => r.json());
  const one = await server(['-m', REAL, '--parallel', '1']);
  const alone = [];
  for (const q of qs) alone.push(await ask(one.url, q));
  const tight = await server(['-m', REAL, '--parallel', '4', '--no-prompt-cache', '--kv-memory', '0.003']);
  const together = await Promise.all(qs.map((q) => ask(tight.url, q)));
  for (let i = 0; i < qs.length; i++) {
    assert.equal(together[i].choices[0].message.content, alone[i].choices[0].message.content, qs[i]);
    assert.deepEqual(together[i].choices[0].logprobs.content.map((t) => t.logprob),
      alone[i].choices[0].logprobs.content.map((t) => t.logprob), qs[i]);
  }
  const budget = await metric(tight.url, 'glmv_kv_cache_budget_bytes');
  assert.equal(budget, Math.floor(0.003 * 2 ** 30));
  assert.ok(await metric(tight.url, 'glmv_preemptions_total') >= 1, 'no generation was preempted');
  assert.ok(await metric(tight.url, 'glmv_kv_cache_bytes') <= budget);
});

test('the demo model in a KV budget: a prompt that can never fit fails alone (503), the request beside it is answered', { skip: !REAL && 'GLMV_REAL_MODEL not set' }, async () => {
  // about 786 tokens of the demo model's cache in 0.003 GiB; the long prompt is some 1,500
  const srv = await server(['-m', REAL, '--parallel', '2', '--no-prompt-cache', '--kv-memory', '0.003', '--ctx', '4096']);
  const long = post(srv.url, '/v1/chat/completions', { max_tokens: 4, temperature: 0,
    messages: [{ role: 'user', content: 'The quick brown fox jumps over the lazy dog. '.repeat(150) }] });
  const short = post(srv.url, '/v1/chat/completions', { max_tokens: 8, min_tokens: 8, ignore_eos: true, temperature: 0,
    messages: [{ role: 'user', content: 'Hello!' }] });
  const [l, sh] = await Promise.all([long, short]);
  assert.equal(l.status, 503);
  const le = await l.json();
  assert.match(le.error.message, /does not fit/);
  assert.equal(le.error.code, 'out_of_memory');
  assert.equal(sh.status, 200);
  const sj = await sh.json();
  assert.equal(sj.usage.completion_tokens, 8);
  assert.ok(await metric(srv.url, 'glmv_kv_cache_bytes') <= Math.floor(0.003 * 2 ** 30));
});

test('the demo model with --parallel 2: a request copies the image another slot holds', { skip: !REAL && 'GLMV_REAL_MODEL not set' }, async () => {
  const fs = await import('node:fs');
  const img = 'data:image/png;base64,' + fs.readFileSync(REAL + '/example.png').toString('base64');
  const msgs = (q) => [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img } }, { type: 'text', text: q }] }];
  const srv = await server(['-m', REAL, '--parallel', '2']);
  // A runs long on one slot (its first token is out, 400 to go); B, with the same image and
  // another question, is taken by the other slot and copies the image's rows from A's cache
  const a = await fetch(srv.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ stream: true, max_tokens: 400, min_tokens: 400, ignore_eos: true, temperature: 0,
      messages: msgs('Describe the image.') }) });
  const reader = a.body.getReader();
  await reader.read();
  const b = await (await post(srv.url, '/v1/chat/completions', { max_tokens: 8, temperature: 0,
    messages: msgs('How many shapes are there?') })).json();
  const cached = b.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0 && cached < b.usage.prompt_tokens, JSON.stringify(b.usage));
  assert.equal(await metric(srv.url, 'glmv_prompt_tokens_shared_total'), cached);
  while (!(await reader.read()).done);
  // --no-prompt-cache: nothing kept, nothing shared
  const fresh = await server(['-m', REAL, '--parallel', '2', '--no-prompt-cache']);
  const f1 = await (await post(fresh.url, '/v1/chat/completions', { max_tokens: 4, temperature: 0, messages: msgs('Describe the image.') })).json();
  const f2 = await (await post(fresh.url, '/v1/chat/completions', { max_tokens: 4, temperature: 0, messages: msgs('How many shapes are there?') })).json();
  assert.equal(f1.usage.prompt_tokens_details.cached_tokens + f2.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal(await metric(fresh.url, 'glmv_prompt_tokens_shared_total'), 0);
});

test('the demo model with --parallel 4 under mixed traffic and clients leaving mid-stream: memory and descriptors flat', { skip: !REAL && 'GLMV_REAL_MODEL not set' }, async () => {
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const { ROOT, BIN } = await import('./common.mjs');
  const out = execFileSync('node', [path.join(ROOT, 'tools/soak.mjs'), '400', '16', '--', '-m', REAL, '--parallel', '4'],
    { env: { ...process.env, GLMV_BIN: BIN }, timeout: 240000 }).toString();
  const r = JSON.parse(out.slice(out.indexOf('{')));
  for (const [k, v] of Object.entries(r.answers))
    assert.ok(!/error/.test(k), `${v} answered ${k}`);
  assert.equal(r.answers['completion: 200'], 50);
  assert.equal(r.answers['left mid-stream: left'], 50);
  // both read once the server is quiet (only soak's probe connected, nothing running or queued)
  assert.ok(r.after_warmup.quiet && r.end.quiet, 'the server never went quiet: ' + JSON.stringify(r));
  assert.ok(r.end.fds <= r.after_warmup.fds + 1, `descriptors ${r.after_warmup.fds} -> ${r.end.fds}`);
  // (under AddressSanitizer freed memory stays in its quarantine: resident memory says nothing there)
  if (!SLOW) assert.ok(r.end.rss_mib <= r.after_warmup.rss_mib + 8, `resident memory ${r.after_warmup.rss_mib} -> ${r.end.rss_mib} MiB`);
});
