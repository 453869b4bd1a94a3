// api.test.mjs -- glmv serve through the official `openai` npm client, as an
// app would use it: models, completions streaming and not, reasoning apart
// from the answer, several images, usage, stop, max_tokens, and the errors the
// client maps to its exception classes. Runs on the echo engine (exact
// content known) and, when $GLMV_REAL_MODEL names a checkpoint, on it too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, pngDataUrl, ASSETS } from './common.mjs';

const KEY = 'sk-test-key';
let srv, client;

before(async () => {
  srv = await startServer(['-m', 'echo:delay_ms=1', '--api-key', KEY, '--media-dir', ASSETS,
    '--served-model-name', 'echo,echo-alias']);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: KEY, maxRetries: 0, timeout: 30000 });
});
after(async () => { assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM'); });

test('models.list names the served model', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, ['echo']);
  const one = await client.models.retrieve('echo');
  assert.equal(one.id, 'echo');
  // --served-model-name: each of its names is served and answered back
  const alias = await client.chat.completions.create({ model: 'echo-alias', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(alias.model, 'echo-alias');
  assert.equal((await client.models.retrieve('echo-alias')).id, 'echo-alias');
  await assert.rejects(client.models.retrieve('gpt-4o'), (e) => e instanceof OpenAI.NotFoundError);
});

test('non-streaming completion: content, reasoning_content, usage, finish_reason', async () => {
  const r = await client.chat.completions.create({
    model: 'echo', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2+2?' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  const m = r.choices[0].message;
  assert.equal(m.role, 'assistant');
  assert.equal(m.content, '**Echo:** What is 2+2?');
  assert.match(m.reasoning_content, /0 image\(s\).*What is 2\+2\?/);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streaming: reasoning deltas come before content deltas, then [DONE]', async () => {
  const stream = await client.chat.completions.create({
    model: 'echo', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream me ünïcödé ✓' }],
  });
  let reasoning = '', content = '', finish = null, usage = null, sawContentBeforeReasoning = false, n = 0;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.reasoning_content) { if (content) sawContentBeforeReasoning = true; reasoning += c.delta.reasoning_content; }
    if (c.delta.content) content += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(n > 5, 'many chunks');
  assert.equal(sawContentBeforeReasoning, false);
  assert.equal(content, '**Echo:** stream me ünïcödé ✓');
  assert.match(reasoning, /wrote: stream me ünïcödé ✓$/);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0);
});

test('several images in one message (data: URLs and a --media-dir path)', async () => {
  const img = pngDataUrl();
  const r = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: img } },
      { type: 'text', text: 'Compare these.' },
      { type: 'image_url', image_url: { url: img, detail: 'high' } },
      { type: 'image_url', image_url: { url: 'images/coco_000000039769.png' } },
    ] }],
  });
  assert.match(r.choices[0].message.reasoning_content, /3 image\(s\)/);
  assert.equal(r.choices[0].message.content, '**Echo:** Compare these.');
});

test('a video (data: URL) beside an image', async () => {
  const fs = await import('node:fs');
  const clip = ASSETS + '/videos/mmcv_test.mp4';
  const bytes = fs.existsSync(clip) ? fs.readFileSync(clip) : Buffer.alloc(64, 1);
  const r = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: [
      { type: 'video_url', video_url: { url: 'data:video/mp4;base64,' + bytes.toString('base64') } },
      { type: 'image_url', image_url: { url: pngDataUrl() } },
      { type: 'text', text: 'What happens?' },
    ] }],
  });
  assert.match(r.choices[0].message.reasoning_content, /1 image\(s\) and 1 video\(s\)/);
});

test('a BMP data: URL is accepted like the other formats glmv decodes', async () => {
  // 2x2, 24 bits: BITMAPFILEHEADER + BITMAPINFOHEADER, rows of 6 bytes padded to 8
  const bmp = Buffer.alloc(54 + 16);
  bmp.write('BM', 0); bmp.writeUInt32LE(bmp.length, 2); bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14); bmp.writeInt32LE(2, 18); bmp.writeInt32LE(2, 22);
  bmp.writeUInt16LE(1, 26); bmp.writeUInt16LE(24, 28); bmp.writeUInt32LE(16, 34);
  bmp.fill(0x80, 54);
  const r = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: 'data:image/bmp;base64,' + bmp.toString('base64') } },
      { type: 'text', text: 'What is this?' },
    ] }],
  });
  assert.match(r.choices[0].message.reasoning_content, /1 image\(s\)/);
});

test('max_tokens ends with finish_reason "length"; stop strings end the answer', async () => {
  const r = await client.chat.completions.create({ model: 'echo', max_tokens: 3, messages: [{ role: 'user', content: 'long question here' }] });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 3);
  const s = await client.chat.completions.create({ model: 'echo', stop: ['STOP'], messages: [{ role: 'user', content: 'before STOP after' }] });
  assert.equal(s.choices[0].message.content, '**Echo:** before ');
  assert.equal(s.choices[0].finish_reason, 'stop');
});

test('sampling parameters are accepted', async () => {
  const r = await client.chat.completions.create({
    model: 'echo', temperature: 0.6, top_p: 0.9, seed: 42, max_completion_tokens: 500,
    top_k: 2, repetition_penalty: 1.1, messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(r.choices[0].message.content, '**Echo:** hi');
});

test('assistant history keeps the answer and drops <think>', async () => {
  const r = await client.chat.completions.create({ model: 'echo', messages: [
    { role: 'user', content: 'first' },
    { role: 'assistant', content: '<think>secret</think><answer>one</answer>' },
    { role: 'user', content: 'second' },
  ] });
  assert.equal(r.choices[0].message.content, '**Echo:** second');
});

test('errors map to the client exceptions', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  const bad = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(bad.models.list(), (e) => e.status === 401);
  await assert.rejects(client.chat.completions.create({ model: 'echo', temperature: 'hot', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  await assert.rejects(client.chat.completions.create({ model: 'echo', max_tokens: 4000, messages: [{ role: 'user', content: 'y'.repeat(4000) }] }),
    (e) => e.status === 400 && e.code === 'context_length_exceeded');
  await assert.rejects(client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: 'data:image/png;base64,' + Buffer.from('not an image at all').toString('base64') } }] }] }),
    (e) => e.status === 400 && e.code === 'invalid_image');
  await assert.rejects(client.chat.completions.create({ model: 'echo', stream: true, messages: [{ role: 'user', content: '[[fail]]' }] }),
    (e) => e.status === 500);
});

const REAL = process.env.GLMV_REAL_MODEL;
test('a real checkpoint answers through the client', { skip: !REAL && 'no small checkpoint (set GLMV_REAL_MODEL)' }, async () => {
  const real = await startServer(['-m', REAL], { timeoutMs: 300000 });
  try {
    const c = new OpenAI({ baseURL: real.url + '/v1', apiKey: 'none', maxRetries: 0, timeout: 600000 });
    const r = await c.chat.completions.create({ model: real.model, max_tokens: 8, temperature: 0,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: pngDataUrl() } }, { type: 'text', text: 'What is this?' }] }] });
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
    assert.ok(r.usage.prompt_tokens > 10);
    const s = await c.chat.completions.create({ model: real.model, max_tokens: 8, temperature: 0, stream: true,
      messages: [{ role: 'user', content: 'What is this?' }] });
    let text = '', chunks = 0, finish = null;
    for await (const ch of s) {
      const d = ch.choices[0]?.delta || {};
      text += (d.reasoning_content || '') + (d.content || '');
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      chunks++;
    }
    assert.ok(chunks >= 2 && finish, 'stream ends with a finish_reason');
    // the library's own errors keep OpenAI's shape and a 400
    const truncated = 'data:image/png;base64,' + Buffer.from(pngDataUrl().split(',')[1], 'base64').subarray(0, 60).toString('base64');
    await assert.rejects(c.chat.completions.create({ model: real.model, max_tokens: 4, stream: true, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: truncated } }, { type: 'text', text: 'x' }] }] }),
      (e) => e.status === 400 && e.code === 'invalid_image');
    await assert.rejects(c.chat.completions.create({ model: real.model, max_tokens: 4,
      messages: [{ role: 'user', content: 'a '.repeat(40000) }] }),
      (e) => e.status === 400 && e.code === 'context_length_exceeded');
    const fs = await import('node:fs');
    // presence/frequency penalties reach the sampler: on the demo model's example, asked something
    // outside its world (its next-token distribution is broad there), a frequency penalty changes
    // the greedy output; the question it knows is answered with certainty, penalty or not
    const ex = REAL + '/example.png';
    if (fs.existsSync(ex)) {
      const ask = (extra, text = 'How many shapes are there?') => c.chat.completions.create({ model: real.model,
        max_tokens: 48, temperature: 0, ...extra,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(ex).toString('base64') } },
          { type: 'text', text }] }] });
      const said = (x) => (x.choices[0].message.reasoning_content || '') + '|' + (x.choices[0].message.content || '');
      const first = await ask({});
      const plain = said(first), zero = said(await ask({ frequency_penalty: 0, presence_penalty: 0 }));
      assert.equal(zero, plain);
      // the same request again is served from the cache (all but its last token), with the same answer
      const again = await ask({});
      assert.equal(said(again), plain);
      assert.equal(again.usage.prompt_tokens_details.cached_tokens, again.usage.prompt_tokens - 1);
      // a second turn keeps the first turn's prompt, image included, and answers as a fresh server does
      const turn2 = (extra) => c.chat.completions.create({ model: real.model, max_tokens: 48, temperature: 0, ...extra,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(ex).toString('base64') } },
          { type: 'text', text: 'How many shapes are there?' }] },
        { role: 'assistant', content: first.choices[0].message.content },
        { role: 'user', content: 'What colour is the circle?' }] });
      const t2 = await turn2({});
      assert.ok(t2.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1, JSON.stringify(t2.usage));
      const fresh = await startServer(['-m', REAL, '--no-prompt-cache'], { timeoutMs: 300000 });
      try {
        const cf = new OpenAI({ baseURL: fresh.url + '/v1', apiKey: 'none', maxRetries: 0, timeout: 600000 });
        const f2 = await cf.chat.completions.create({ model: fresh.model, max_tokens: 48, temperature: 0,
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(ex).toString('base64') } },
            { type: 'text', text: 'How many shapes are there?' }] },
          { role: 'assistant', content: first.choices[0].message.content },
          { role: 'user', content: 'What colour is the circle?' }] });
        assert.equal(f2.usage.prompt_tokens_details.cached_tokens, 0);
        assert.equal(said(f2), said(t2));
        const f3 = await cf.chat.completions.create({ model: fresh.model, max_tokens: 48, temperature: 0,
          messages: [{ role: 'user', content: 'What colour is the circle?' }] });
        const f4 = await cf.chat.completions.create({ model: fresh.model, max_tokens: 48, temperature: 0,
          messages: [{ role: 'user', content: 'What colour is the circle?' }] });
        assert.equal(f4.usage.prompt_tokens_details.cached_tokens, 0, '--no-prompt-cache keeps nothing');
        assert.equal(said(f3), said(f4));
      } finally {
        assert.equal(await fresh.stop(), 0);
      }
      // (last: these prompts replace the cached one that the checks above rely on)
      const open = said(await ask({}, 'Describe the image.'));
      assert.notEqual(said(await ask({ frequency_penalty: 2 }, 'Describe the image.')), open);
    }
    const clip = ASSETS + '/videos/mmcv_test.mp4';
    if (fs.existsSync(clip)) {
      const v = await c.chat.completions.create({ model: real.model, max_tokens: 8, temperature: 0,
        messages: [{ role: 'user', content: [
          { type: 'video_url', video_url: { url: 'data:video/mp4;base64,' + fs.readFileSync(clip).toString('base64'), max_frames: 2 } },
          { type: 'text', text: 'What happens?' }] }] });
      assert.ok(v.usage.prompt_tokens > r.usage.prompt_tokens / 2 && v.usage.completion_tokens >= 1);
    }
  } finally {
    assert.equal(await real.stop(), 0);
  }
});

test('PDF documents as file parts: pages read, a page range, refusals', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { ROOT } = await import('./common.mjs');
  const pdf = (name) => 'data:application/pdf;base64,' + fs.readFileSync(path.join(ROOT, 'tests/fixtures/pdf', name)).toString('base64');
  const ask = (c, model, file, text, extra = {}) => c.chat.completions.create({ model, max_tokens: 48, temperature: 0, ...extra,
    messages: [{ role: 'user', content: [{ type: 'file', file: { filename: 'doc.pdf', ...file } }, { type: 'text', text }] }] });
  // refused while the request is read, on any engine
  const refused = async (file, status, code, re) => assert.rejects(ask(client, 'echo', file, 'x'),
    (e) => e.status === status && (code === undefined || e.code === code) && re.test(e.message));
  await refused({ file_id: 'file-abc' }, 400, undefined, /file_id' is not supported/);
  await refused({}, 400, undefined, /file_data' must be a string/);
  await refused({ file_data: 'data:application/pdf;base64,' + Buffer.from('hello, not a pdf').toString('base64') }, 400, 'invalid_file', /not a PDF/);
  await refused({ file_data: 'data:application/pdf;base64,@@@' }, 400, 'invalid_file', /not valid base64/);
  await refused({ file_data: pdf('example.pdf'), pages: 3 }, 400, undefined, /pages' must be a string/);
  // the echo engine accepts the part (its pages are the model's to read)
  assert.equal((await ask(client, 'echo', { file_data: pdf('example.pdf') }, 'x')).choices[0].finish_reason, 'stop');
  if (!REAL) return;
  const real = await startServer(['-m', REAL], { timeoutMs: 300000 });
  try {
    const c = new OpenAI({ baseURL: real.url + '/v1', apiKey: 'none', maxRetries: 0, timeout: 600000 });
    const one = await ask(c, real.model, { file_data: pdf('example.pdf') }, 'How many shapes are there?');
    assert.equal(one.choices[0].message.content, '4');
    // bare base64 (no data: prefix) and glmv's "pages"
    const digits = await ask(c, real.model, { file_data: pdf('pages.pdf').split(',')[1], pages: '2' }, 'What number is written in the image?');
    assert.equal(digits.choices[0].message.content, '267');
    const all = await ask(c, real.model, { file_data: pdf('pages.pdf') }, 'x', { max_tokens: 1 });
    assert.ok(all.usage.prompt_tokens > digits.usage.prompt_tokens + 200, 'three pages, three images');
    // the Responses API's input_file
    const rr = await fetch(real.url + '/v1/responses', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: real.model, max_output_tokens: 48, temperature: 0, input: [{ role: 'user', content: [
        { type: 'input_file', filename: 'p.pdf', file_data: pdf('pages.pdf'), pages: '1' },
        { type: 'input_text', text: 'How many shapes are there?' }] }] }) });
    assert.equal(rr.status, 200);
    assert.equal((await rr.json()).output_text, '4');
    // the document's faults are the client's: 400, with the reason
    const bad = async (file, code, re) => assert.rejects(ask(c, real.model, file, 'x'),
      (e) => e.status === 400 && e.code === code && re.test(e.message));
    await bad({ file_data: pdf('encrypted.pdf') }, 'invalid_image', /encrypted/);
    await bad({ file_data: pdf('broken.pdf') }, 'invalid_image', /damaged/);
    await bad({ file_data: pdf('many_pages.pdf') }, 'invalid_image', /2000 pages: at most 1024/);
    await bad({ file_data: pdf('pages.pdf'), pages: '4' }, 'invalid_request', /page 4 is beyond/);
    assert.equal((await ask(c, real.model, { file_data: pdf('many_pages.pdf'), pages: '2000' }, 'x', { max_tokens: 1 })).choices.length, 1);
  } finally {
    assert.equal(await real.stop(), 0);
  }
});
