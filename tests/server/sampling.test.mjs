// sampling.test.mjs -- the sampling controls and protocol details clients rely on, through the
// official `openai` client against a real checkpoint (the demo model): logprobs and
// top_logprobs (chat and streaming shapes), n, logit_bias, min_tokens, ignore_eos, the
// reasoning under both field names, usage's reasoning_tokens, any model name answered back;
// and, on the echo engine, CORS preflight for a browser SDK, 404 for unknown paths, and
// parameters glmv cannot honour refused by name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { startServer, post, rawHttp } from './common.mjs';

const REAL = process.env.GLMV_REAL_MODEL;
const EX = REAL ? REAL + '/example.png' : '';
const HAVE = REAL && fs.existsSync(EX);
let real, c;

before(async () => {
  if (!HAVE) return;
  real = await startServer(['-m', REAL], { timeoutMs: 300000 });
  c = new OpenAI({ baseURL: real.url + '/v1', apiKey: 'none', maxRetries: 0, timeout: 600000 });
});
after(async () => { if (real) assert.equal(await real.stop(), 0); });

// text: the question; the default is one the demo model answers with certainty, 'Describe the image.'
// is outside its world, so its next-token distribution is broad there (for sampling to show)
const ask = (extra = {}, text = 'How many shapes are there?') => c.chat.completions.create({
  model: 'any-name-at-all', max_tokens: 64, temperature: 0, ...extra,
  messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(EX).toString('base64') } },
    { type: 'text', text }] }] });

const skip = !HAVE && 'no demo checkpoint with example.png (GLMV_REAL_MODEL)';

test('any model name is accepted and answered back; reasoning under both names', { skip }, async () => {
  const r = await ask();
  assert.equal(r.model, 'any-name-at-all');
  const m = r.choices[0].message;
  assert.ok(m.reasoning_content && m.reasoning_content.length > 0);
  assert.equal(m.reasoning, m.reasoning_content);
  assert.ok(m.content.length > 0);
  assert.equal(r.choices[0].logprobs, null);
  const d = r.usage.completion_tokens_details;
  assert.ok(d.reasoning_tokens > 0 && d.reasoning_tokens < r.usage.completion_tokens, JSON.stringify(r.usage));
});

test('logprobs and top_logprobs, chat and streaming shapes', { skip }, async () => {
  const r = await ask({ logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  // every generated token, the final eos (</answer> here) included
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const e of lp) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0 && Array.isArray(e.bytes));
    assert.equal(e.top_logprobs.length, 3);
    // greedy: the token taken is the most likely one
    assert.equal(e.top_logprobs[0].token, e.token);
    assert.equal(e.top_logprobs[0].logprob, e.logprob);
    assert.ok(e.top_logprobs[1].logprob <= e.top_logprobs[0].logprob);
  }
  // the tokens' bytes spell the reasoning and the answer (with the tags between them)
  const text = Buffer.from(lp.flatMap((e) => e.bytes)).toString('utf8');
  assert.ok(text.includes(r.choices[0].message.content), text);
  const s = await ask({ logprobs: true, top_logprobs: 2, stream: true });
  const streamed = [];
  for await (const ch of s) {
    const l = ch.choices[0]?.logprobs;
    if (l && l.content) streamed.push(...l.content);
  }
  assert.deepEqual(streamed.map((e) => e.token), lp.map((e) => e.token));
  assert.deepEqual(streamed.map((e) => e.logprob), lp.map((e) => e.logprob));
  await assert.rejects(ask({ top_logprobs: 2 }), (e) => e.status === 400 && e.param === 'top_logprobs');
  await assert.rejects(ask({ logprobs: true, top_logprobs: 21 }), (e) => e.status === 400 && e.param === 'top_logprobs');
});

test('n choices: greedy ones agree, sampled ones follow their seeds', { skip }, async () => {
  const g = await ask({ n: 2 });
  assert.equal(g.choices.length, 2);
  assert.deepEqual(g.choices.map((x) => x.index), [0, 1]);
  assert.equal(g.choices[0].message.content, g.choices[1].message.content);
  const a = await ask({ n: 3, temperature: 1.5, seed: 7, max_tokens: 24 }, 'Describe the image.');
  const b = await ask({ n: 3, temperature: 1.5, seed: 7, max_tokens: 24 }, 'Describe the image.');
  const texts = (x) => x.choices.map((ch) => ch.message.reasoning_content + '|' + ch.message.content);
  assert.deepEqual(texts(a), texts(b), 'same seed, same choices');
  assert.ok(new Set(texts(a)).size > 1, 'choices differ from each other: ' + JSON.stringify(texts(a)));
  // streaming: every choice's chunks carry its index and end with its finish_reason
  const s = await ask({ n: 2, stream: true, stream_options: { include_usage: true } });
  const fin = {}, got = {};
  let usage = null;
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    for (const x of ch.choices) {
      got[x.index] = (got[x.index] || '') + (x.delta.content || '');
      if (x.finish_reason) fin[x.index] = x.finish_reason;
    }
  }
  assert.deepEqual(Object.keys(fin).sort(), ['0', '1']);
  assert.equal(got[0], g.choices[0].message.content);
  assert.equal(usage.completion_tokens, g.usage.completion_tokens);
  await assert.rejects(ask({ n: 9 }), (e) => e.status === 400 && e.param === 'n');
});

test('logit_bias, min_tokens and ignore_eos change the output as asked', { skip }, async () => {
  const base = await ask({ logprobs: true });
  const first = base.choices[0].logprobs.content[0];
  // the API gives no token ids: ban blocks of ids until the first token changes
  let banned = null;
  for (let id = 0; id < 2048 && banned === null; id += 256) {
    const bias = {};
    for (let k = id; k < id + 256; k++) bias[String(k)] = -100;
    const r = await ask({ logit_bias: bias, max_tokens: 1, logprobs: true });
    if (r.choices[0].logprobs.content[0].token !== first.token) banned = id;
  }
  assert.notEqual(banned, null, 'banning some block of ids changes the first token');
  const n = base.usage.completion_tokens;
  const longer = await ask({ min_tokens: n + 6, max_tokens: n + 20 });
  assert.ok(longer.usage.completion_tokens >= n + 6, `${longer.usage.completion_tokens} < ${n + 6}`);
  const ign = await ask({ ignore_eos: true, max_tokens: n + 3 });
  assert.equal(ign.usage.completion_tokens, n + 3);
  assert.equal(ign.choices[0].finish_reason, 'length');
  await assert.rejects(ask({ logit_bias: { abc: 1 } }), (e) => e.status === 400 && e.param === 'logit_bias');
  await assert.rejects(ask({ logit_bias: { 5: 200 } }), (e) => e.status === 400 && e.param === 'logit_bias');
  await assert.rejects(ask({ logit_bias: { 999999999: 1 } }), (e) => e.status === 400 && e.param === 'logit_bias');
  await assert.rejects(ask({ min_p: 2 }), (e) => e.status === 400 && e.param === 'min_p');
  // temperatures below float's range are greedy, not garbage
  for (const t of [1e-300, 1e-40]) {
    const tiny = await ask({ temperature: t, seed: 4 });
    assert.equal(tiny.choices[0].message.content, base.choices[0].message.content);
    assert.equal(tiny.choices[0].message.reasoning_content, base.choices[0].message.reasoning_content);
  }
  const mp = await ask({ min_p: 0.5, temperature: 1, seed: 1 });
  assert.ok(mp.choices[0].message.content.length > 0);
});

test('response_format: json_object and json_schema (strict) through the client, .parse() included', { skip }, async () => {
  const schema = { type: 'object', additionalProperties: false, required: ['count', 'shapes'],
    properties: { count: { type: 'integer' }, shapes: { type: 'array', maxItems: 6,
      items: { type: 'object', additionalProperties: false, required: ['shape', 'colour'],
        properties: { shape: { enum: ['circle', 'square', 'triangle', 'diamond'] },
          colour: { type: ['string', 'null'], maxLength: 10 } } } } } };
  const rf = { type: 'json_schema', json_schema: { name: 'shapes', strict: true, schema } };
  for (const extra of [{}, { temperature: 1, seed: 3 }]) {
    const r = await ask({ response_format: rf, max_tokens: 1000, ...extra });
    assert.equal(r.choices[0].finish_reason, 'stop', r.choices[0].message.content);
    const j = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(j).sort(), ['count', 'shapes']);
    assert.ok(Number.isInteger(j.count) && Array.isArray(j.shapes) && j.shapes.length <= 6);
    for (const x of j.shapes) {
      assert.ok(['circle', 'square', 'triangle', 'diamond'].includes(x.shape), JSON.stringify(x));
      assert.ok(x.colour === null || (typeof x.colour === 'string' && [...x.colour].length <= 10));
    }
    assert.ok(r.choices[0].message.reasoning_content.length > 0, 'the reasoning stays free');
  }
  const p = await c.chat.completions.parse({ model: 'm', max_tokens: 1000, temperature: 0, response_format: rf,
    messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(EX).toString('base64') } },
      { type: 'text', text: 'How many shapes are there?' }] }] });
  assert.deepEqual(p.choices[0].message.parsed, JSON.parse(p.choices[0].message.content));
  // streaming: the content chunks concatenate to the same JSON
  const st = await ask({ response_format: rf, max_tokens: 1000, stream: true });
  let text = '';
  for await (const ch of st) text += ch.choices[0]?.delta?.content || '';
  const again = await ask({ response_format: rf, max_tokens: 1000 });
  assert.equal(text, again.choices[0].message.content);
  // json_object: a JSON object (or, if max_tokens cut it, a valid beginning of one)
  const o = await ask({ response_format: { type: 'json_object' }, max_tokens: 120 });
  const body = o.choices[0].message.content.trim();
  assert.ok(body.startsWith('{'), body);
  if (o.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(body), 'object');
  // what glmv cannot promise is refused up front, naming the feature
  const bad = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { d: { type: 'string', format: 'date' } } } } };
  await assert.rejects(ask({ response_format: bad }), (e) => e.status === 400 && e.param === 'response_format' && /format/.test(e.message));
  await assert.rejects(ask({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }),
    (e) => e.status === 400 && e.param === 'response_format');
});

test('/v1/completions: a raw prompt, its text unsplit, legacy logprobs, streaming', { skip }, async () => {
  const prompt = '[gMASK]<sop><|user|>\nHow many shapes are there?<|assistant|>\n';
  const r = await c.completions.create({ model: 'm', prompt, max_tokens: 40, temperature: 0, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  const ch = r.choices[0];
  assert.ok(ch.text.startsWith('<think>'), ch.text);
  assert.equal(ch.logprobs.tokens.length, r.usage.completion_tokens);
  assert.equal(ch.logprobs.token_logprobs.length, ch.logprobs.tokens.length);
  assert.ok(ch.logprobs.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
  assert.equal(ch.logprobs.text_offset[0], 0);
  // the chat endpoint gives the same tokens, split
  const chat = await c.chat.completions.create({ model: 'm', max_tokens: 40, temperature: 0,
    messages: [{ role: 'user', content: 'How many shapes are there?' }] });
  assert.ok(ch.text.includes(chat.choices[0].message.reasoning_content), ch.text);
  assert.equal(r.usage.completion_tokens, chat.usage.completion_tokens);
  const st = await c.completions.create({ model: 'm', prompt, max_tokens: 40, temperature: 0, stream: true });
  let text = '', fin = null;
  for await (const x of st) { text += x.choices[0]?.text || ''; fin = x.choices[0]?.finish_reason || fin; }
  assert.equal(text, ch.text);
  assert.ok(fin);
  // OpenAI's default for this endpoint: 16 tokens
  const d = await c.completions.create({ model: 'm', prompt: 'Once', temperature: 0 });
  assert.ok(d.usage.completion_tokens <= 16);
});

test('/v1/responses: text and image input, reasoning and message items, streaming events, JSON format', { skip }, async () => {
  const input = [{ role: 'user', content: [
    { type: 'input_image', image_url: 'data:image/png;base64,' + fs.readFileSync(EX).toString('base64') },
    { type: 'input_text', text: 'How many shapes are there?' }] }];
  const r = await c.responses.create({ model: 'm', input, max_output_tokens: 64, temperature: 0 });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, 'completed');
  const chat = await ask({});
  assert.equal(r.output_text, chat.choices[0].message.content);
  const reasoning = r.output.find((o) => o.type === 'reasoning');
  assert.equal(reasoning.content[0].text, chat.choices[0].message.reasoning_content);
  assert.equal(r.output.find((o) => o.type === 'message').content[0].text, r.output_text);
  assert.equal(r.usage.output_tokens, chat.usage.completion_tokens);
  assert.ok(r.usage.output_tokens_details.reasoning_tokens > 0);
  // streaming: typed events, in order, ending with response.completed
  const st = await c.responses.create({ model: 'm', input, max_output_tokens: 64, temperature: 0, stream: true });
  const types = [];
  let text = '', rtext = '', final = null, seq = -1;
  for await (const ev of st) {
    types.push(ev.type);
    assert.ok(ev.sequence_number > seq, 'sequence numbers increase');
    seq = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.reasoning_text.delta') rtext += ev.delta;
    if (ev.type === 'response.completed') final = ev.response;
  }
  assert.equal(types[0], 'response.created');
  assert.equal(types[types.length - 1], 'response.completed');
  for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.output_item.done'])
    assert.ok(types.includes(t), t);
  assert.equal(text, r.output_text);
  assert.equal(rtext, reasoning.content[0].text);
  assert.equal(final.output_text, r.output_text);
  // the SDK's own stream helper accumulates the events into the same response
  const helper = c.responses.stream({ model: 'm', input, max_output_tokens: 64, temperature: 0 });
  const acc = await helper.finalResponse();
  assert.equal(acc.output_text, r.output_text);
  assert.equal(acc.output.find((o) => o.type === 'reasoning').content[0].text, reasoning.content[0].text);
  // a string input and instructions; max_output_tokens that cuts it short is 'incomplete'
  const short = await c.responses.create({ model: 'm', input: 'Hello', instructions: 'Be brief.', max_output_tokens: 3 });
  assert.equal(short.status, 'incomplete');
  assert.equal(short.incomplete_details.reason, 'max_output_tokens');
  // text.format: JSON of a schema
  const js = await c.responses.create({ model: 'm', input, max_output_tokens: 1000, temperature: 0,
    text: { format: { type: 'json_schema', name: 'n', strict: true, schema: { type: 'object', additionalProperties: false,
      required: ['count'], properties: { count: { type: 'integer' } } } } } });
  assert.ok(Number.isInteger(JSON.parse(js.output_text).count), js.output_text);
  // what is not kept or not supported is refused by name
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', previous_response_id: 'resp_1' }),
    (e) => e.status === 400 && e.param === 'previous_response_id');
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', store: true }), (e) => e.status === 400 && e.param === 'store');
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', reasoning: { effort: 'low' } }), (e) => e.status === 400 && e.param === 'reasoning');
  await assert.rejects(c.responses.create({ model: 'm', input: [{ type: 'function_call_output', call_id: 'a', output: 'b' }] }),
    (e) => e.status === 400 && e.param === 'input[0]');
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', temperature: 9 }), (e) => e.status === 400 && e.param === 'temperature');
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', top_logprobs: 2 }), (e) => e.status === 400 && e.param === 'top_logprobs');
  await assert.rejects(c.responses.create({ model: 'm', input: 'before\u0000after' }), (e) => e.status === 400 && /NUL/.test(e.message));
  // with instructions first, an error in input[0] is still named input[0]
  await assert.rejects(c.responses.create({ model: 'm', instructions: 'Be brief.',
    input: [{ role: 'user', content: [{ type: 'input_text', text: 7 }] }] }),
  (e) => e.status === 400 && e.param === 'input[0].content[0]', 'param');
  await assert.rejects(c.responses.create({ model: 'm', input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'string', pattern: 'a' } } } }),
    (e) => e.status === 400 && e.param === 'text.format');
});

test('undecodable images in data: URLs are the client\'s error (400 invalid_image), not a 500', { skip }, async () => {
  const bmp = Buffer.concat([Buffer.from('BM'), Buffer.alloc(40, 0x30)]).toString('base64');
  for (const url of ['data:image/gif;base64,R0lGODlh', 'data:image/bmp;base64,' + bmp]) {
    await assert.rejects(c.chat.completions.create({ model: 'm', max_tokens: 4, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }] }] }),
    (e) => e.status === 400 && e.code === 'invalid_image' && /cannot decode image 1/.test(e.message), url);
  }
});

// how the official GLM-V clients (vllm_request_gui_agent.py, gui_agent_41v.py) read an answer
// they asked for with skip_special_tokens: false: the text after <answer> in message.content, up
// to </answer> (the demo model ends its answer with the end-of-turn token instead of </answer>)
const officialAnswer = (content) => { const m = content.match(/<answer>([\s\S]*?)(?:<\/answer>|$)/); return m ? m[1].trim() : null; };

test('skip_special_tokens: false returns the answer with its <think>/<answer> tags, as the official clients parse it', { skip }, async () => {
  const plain = await ask({ max_tokens: 96 });
  const tagged = await ask({ max_tokens: 96, skip_special_tokens: false });
  const t = tagged.choices[0].message;
  assert.match(t.content, /^<think>[\s\S]*<\/think>\s*<answer>[\s\S]*$/);
  assert.ok(!t.reasoning_content, 'the reasoning stays in content');
  assert.equal(officialAnswer(t.content), plain.choices[0].message.content.trim());
  assert.equal(t.content.match(/<think>([\s\S]*?)<\/think>/)[1].trim(), plain.choices[0].message.reasoning_content.trim());
  assert.equal(tagged.usage.completion_tokens, plain.usage.completion_tokens);
  assert.equal(tagged.usage.completion_tokens_details.reasoning_tokens, plain.usage.completion_tokens_details.reasoning_tokens);
  // streamed: the same text, all of it in content deltas
  const s = await c.chat.completions.create({ model: 'm', max_tokens: 96, temperature: 0, stream: true, skip_special_tokens: false,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(EX).toString('base64') } },
      { type: 'text', text: 'How many shapes are there?' }] }] });
  let text = '', reasoning = '';
  for await (const ch of s) { const d = ch.choices[0] && ch.choices[0].delta; if (d) { text += d.content || ''; reasoning += d.reasoning_content || ''; } }
  assert.equal(text, t.content);
  assert.equal(reasoning, '');
});

test('media are decoded before a request queues: an undecodable one is refused without entering the queue', { skip }, async () => {
  const { metric } = await import('./common.mjs');
  const before = await metric(real.url, 'glmv_chat_requests_total');
  const bmp = Buffer.concat([Buffer.from('BM'), Buffer.alloc(40, 0x30)]).toString('base64');
  await assert.rejects(c.chat.completions.create({ model: 'm', max_tokens: 4, messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: 'data:image/bmp;base64,' + bmp } }, { type: 'text', text: 'x' }] }] }),
  (e) => e.status === 400 && e.code === 'invalid_image');
  assert.equal(await metric(real.url, 'glmv_chat_requests_total'), before, 'the refused request was queued');
  const r = await ask({ max_tokens: 8 });
  assert.ok(r.choices[0].message);
  assert.equal(await metric(real.url, 'glmv_chat_requests_total'), before + 1);
});

test('a video cut in half is the client\'s error (400, "cut short"), not answered from the part that decodes', { skip }, async () => {
  const clip = fs.readFileSync(new URL('../../../shared/assets/videos/videollava_sample_demo_1.mp4', import.meta.url));
  const half = clip.subarray(0, clip.length >> 1).toString('base64');
  await assert.rejects(c.chat.completions.create({ model: 'm', max_tokens: 4, messages: [{ role: 'user', content: [
    { type: 'video_url', video_url: { url: 'data:video/mp4;base64,' + half } }, { type: 'text', text: 'x' }] }] }),
  (e) => e.status === 400 && /cut short or damaged/.test(e.message));
});

// ---- the echo engine: protocol details, no model needed
let echo;
before(async () => { echo = await startServer(['-m', 'echo:']); });
after(async () => { assert.equal(await echo.stop(), 0); });

test('CORS preflight allows the headers a browser SDK asks for', async () => {
  const raw = await rawHttp(echo.url, 'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: http://example.com\r\n' +
    'Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type, authorization, x-stainless-os, x-stainless-retry-count\r\n' +
    'Connection: close\r\n\r\n', { closeAfterWrite: false });
  assert.match(raw, /^HTTP\/1\.1 204/);
  const allow = (raw.match(/access-control-allow-headers: ([^\r\n]*)/i) || [])[1] || '';
  for (const h of ['content-type', 'authorization', 'x-stainless-os', 'x-stainless-retry-count'])
    assert.ok(allow.toLowerCase().includes(h), allow);
  assert.match(raw, /access-control-allow-origin: \*/i);
  // a header list that is not one is not echoed
  const odd = await rawHttp(echo.url, 'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
    'Access-Control-Request-Headers: x-a\u0001b\r\nConnection: close\r\n\r\n', { closeAfterWrite: false });
  assert.ok(!/\u0001/.test(odd));
});

test('/v1/completions on the echo engine: shapes and refusals', async () => {
  const r = await post(echo.url, '/v1/completions', { model: 'x', prompt: 'hello there', max_tokens: 200 });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.object, 'text_completion');
  assert.match(j.choices[0].text, /hello there/);
  for (const [body, param] of [[{}, 'prompt'], [{ prompt: [1, 2] }, 'prompt'], [{ prompt: '' }, 'prompt'],
    [{ prompt: 'x', messages: [] }, 'messages'], [{ prompt: 'x', echo: true }, 'echo'], [{ prompt: 'x', suffix: 'y' }, 'suffix'],
    [{ prompt: 'x', logprobs: 6 }, 'logprobs'], [{ prompt: 'x', response_format: { type: 'json_object' } }, 'response_format']]) {
    const e = await post(echo.url, '/v1/completions', body);
    assert.equal(e.status, 400, JSON.stringify(body));
    assert.equal((await e.json()).error.param, param, JSON.stringify(body));
  }
  const g = await fetch(echo.url + '/v1/completions');
  assert.equal(g.status, 405);
});

test('unknown POST paths are 404 (NotFoundError); other methods on known paths 405', async () => {
  for (const p of ['/v1/embeddings', '/v1/nope', '/foo']) {
    const r = await post(echo.url, p, { input: 'x' });
    assert.equal(r.status, 404, p);
    assert.ok((await r.json()).error);
  }
  const r = await post(echo.url, '/v1/models', {});
  assert.equal(r.status, 405);
  assert.match(r.headers.get('allow') || '', /GET/);
  const g = await fetch(echo.url + '/v1/responses');
  assert.equal(g.status, 405);
  assert.match(g.headers.get('allow') || '', /POST/);
  const cl = new OpenAI({ baseURL: echo.url + '/v1', apiKey: 'none', maxRetries: 0 });
  await assert.rejects(cl.embeddings.create({ model: 'x', input: 'y' }), (e) => e instanceof OpenAI.NotFoundError);
});

test('parameters glmv cannot honour are refused by name, not ignored', async () => {
  const user = { model: 'echo', messages: [{ role: 'user', content: 'x' }] };
  const cases = [
    [{ reasoning_effort: 'low' }, 'reasoning_effort'],
    [{ chat_template_kwargs: { enable_thinking: false } }, 'chat_template_kwargs'],
    [{ skip_special_tokens: 'no' }, 'skip_special_tokens'],
    [{ best_of: 2 }, 'best_of'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }], tool_choice: 'none' }, 'tools'],
    [{ logprobs: true }, 'logprobs'], // the echo engine has no tokenizer
    [{ logprobs: 'yes' }, 'logprobs'],
    [{ min_tokens: -1 }, 'min_tokens'],
    [{ ignore_eos: 1 }, 'ignore_eos'],
    [{ n: 0 }, 'n'],
  ];
  for (const [extra, param] of cases) {
    const r = await post(echo.url, '/v1/chat/completions', { ...user, ...extra });
    const j = await r.json();
    assert.equal(r.status, 400, JSON.stringify(extra));
    assert.equal(j.error.param, param, JSON.stringify(j));
  }
  // what is accepted does something: the empty kwargs and skip_special_tokens: true are the defaults
  const ok = await post(echo.url, '/v1/chat/completions', { ...user, chat_template_kwargs: {}, skip_special_tokens: true });
  assert.equal(ok.status, 200);
  const tagged = await (await post(echo.url, '/v1/chat/completions', { ...user, skip_special_tokens: false })).json();
  assert.match(tagged.choices[0].message.content, /^<think>The user sent 0 image\(s\) and 0 video\(s\) and wrote: x<\/think><answer>\*\*Echo:\*\* x<\/answer>$/);
});
