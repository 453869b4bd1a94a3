// page.test.mjs -- the chat page in headless Chromium (Debian's, driven by
// playwright-core): type a question, attach images (picker, drag and drop,
// paste), watch the answer stream with the thinking in its own foldable
// block, markdown and highlighted code, the stop button. Saves a screenshot
// to tests/artifacts/server-page.png. Skips when Chromium is not installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, metric, ROOT, ASSETS, tinyPng, SLOW } from './common.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
let chromium = null;
try { ({ chromium } = await import('playwright-core')); } catch { /* skipped below */ }
const skip = !haveChromium ? `no Chromium at ${CHROMIUM}` : !chromium ? 'playwright-core not installed' : false;

let srv, ctx, page, userDir;
const T = SLOW ? 60000 : 20000;

before(async () => {
  if (skip) return;
  srv = await startServer(['-m', 'echo:delay_ms=12']);
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glmv-chromium-'));
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1200, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(srv.url) && !u.startsWith('data:') && !u.startsWith('blob:')) throw new Error('off-host request ' + u);
  });
});
after(async () => {
  if (ctx) await ctx.close();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  if (srv) assert.equal(await srv.stop(), 0);
});

function imageFile(name) {
  const p = path.join(ASSETS, 'images', name);
  if (fs.existsSync(p)) return p;
  const t = path.join(os.tmpdir(), 'glmv-test-' + name.replace(/\.\w+$/, '.png'));
  fs.writeFileSync(t, tinyPng());
  return t;
}

test('ask about two images: streamed answer, thinking block, markdown', { skip }, async () => {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(srv.url + '/');
  await page.waitForFunction(() => document.getElementById('model-name').textContent === 'echo', null, { timeout: T });
  await page.setInputFiles('#file-input', [imageFile('coco_000000039769.png'), imageFile('llava_waterview.jpg')]);
  await page.waitForFunction(() => document.querySelectorAll('#attachments .att img').length === 2, null, { timeout: T });
  await page.fill('#prompt', 'What is in these pictures? Answer with *markdown* and `code` [[code]] [[tokens=60]]');
  // record the answer's length at every DOM change, inside the page (no polling races)
  await page.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const a = document.querySelector('.msg.assistant .answer');
      if (a) window.__lengths.push(a.textContent.length);
      if (a && !document.getElementById('stop').hidden) window.__stopSeen = true;
    }).observe(document.getElementById('chat'), { childList: true, subtree: true, characterData: true });
  });
  await page.press('#prompt', 'Enter');
  await page.waitForSelector('.msg.assistant details.think:not([hidden])', { timeout: T });
  await page.waitForSelector('#send:not([hidden])', { timeout: T });
  assert.equal(await page.evaluate(() => window.__stopSeen), true, 'Stop is shown while generating');
  const lengths = new Set(await page.evaluate(() => window.__lengths));
  assert.ok(lengths.size >= 3, 'the answer was seen at several lengths: ' + [...lengths]);
  const think = await page.$eval('.msg.assistant .think-text', (e) => e.textContent);
  assert.match(think, /2 image\(s\)/);
  const open = await page.$eval('.msg.assistant details.think', (e) => e.open);
  assert.equal(open, false, 'the thinking folds when the answer starts');
  const summary = await page.textContent('.msg.assistant details.think summary');
  assert.match(summary, /Thought for/);
  assert.match(await page.textContent('.msg.assistant .answer'), /Echo:/);
  assert.equal(await page.$$eval('.msg.assistant .answer em', (e) => e.length), 1);
  assert.ok(await page.$$eval('.msg.assistant .answer pre .tok-kw', (e) => e.length) >= 2, 'highlighted code');
  assert.equal(await page.$$eval('.msg.user .media img', (e) => e.length), 2);
  assert.match(await page.textContent('.msg.assistant .meta'), /generated tokens/);
  await page.click('.msg.assistant details.think summary');
  const shots = path.join(ROOT, 'tests/artifacts');
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'server-page.png') });
  assert.deepEqual(errors, []);
});

test('drag and drop and paste attach images; a second turn keeps the history', { skip }, async () => {
  const b64 = tinyPng().toString('base64');
  await page.evaluate((b) => {
    const bytes = Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    const dt2 = new DataTransfer();
    dt2.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt2, bubbles: true, cancelable: true }));
  }, b64);
  await page.waitForFunction(() => document.querySelectorAll('#attachments .att').length === 2, null, { timeout: T });
  await page.fill('#prompt', 'And these two?');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 2 &&
    !document.getElementById('send').hidden, null, { timeout: T });
  const think = await page.$$eval('.msg.assistant .think-text', (e) => e[1].textContent);
  assert.match(think, /4 image\(s\)/, 'all images of the conversation are sent again');
  await page.click('#toggle-settings');
  await page.fill('#system', 'You are a careful assistant.');
  await page.screenshot({ path: path.join(ROOT, 'tests/artifacts/server-page-settings.png') });
  await page.fill('#system', '');
  await page.click('#toggle-settings');
});

test('the stop button cancels the generation on the server', { skip }, async () => {
  const before_ = await metric(srv.url, 'glmv_requests_cancelled_total');
  await page.fill('#prompt', 'a very long answer please [[tokens=3000]]');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 3 &&
    (document.querySelectorAll('.msg.assistant')[2].querySelector('.answer').textContent.length > 20), null, { timeout: T });
  await page.click('#stop');
  await page.waitForSelector('#send:not([hidden])', { timeout: T });
  assert.match(await page.$$eval('.msg.assistant .meta', (e) => e[2].textContent), /stopped/);
  let n = before_;
  for (let k = 0; k < 100 && n === before_; k++) { await page.waitForTimeout(50); n = await metric(srv.url, 'glmv_requests_cancelled_total'); }
  assert.equal(n, before_ + 1);
  assert.equal(await metric(srv.url, 'glmv_requests_in_flight'), 0);
});

const DEMO = path.join(ROOT, 'models/demo');
const haveDemo = fs.existsSync(path.join(DEMO, 'model.safetensors'));
test('the demo model answers a question about its example image in the page', { skip: skip || (!haveDemo && 'no models/demo') }, async () => {
  const demo = await startServer(['-m', DEMO], { timeoutMs: 120000 });
  try {
    const p = await ctx.newPage();
    await p.goto(demo.url + '/');
    await p.waitForFunction(() => document.getElementById('model-name').textContent === 'demo', null, { timeout: T });
    await p.setInputFiles('#file-input', [path.join(DEMO, 'example.png')]);
    await p.fill('#prompt', 'How many shapes are there?');
    await p.press('#prompt', 'Enter');
    await p.waitForSelector('.msg.assistant details.think:not([hidden])', { timeout: T * 3 });
    await p.waitForSelector('#send:not([hidden])', { timeout: T * 3 });
    const think = await p.$eval('.msg.assistant .think-text', (e) => e.textContent);
    const answer = (await p.textContent('.msg.assistant .answer')).trim();
    assert.match(think, /shape/i, 'the demo model reasons about shapes');
    assert.ok(answer.length > 0 && !/⚠/.test(answer), 'an answer: ' + answer);
    await p.click('.msg.assistant details.think summary');
    await p.screenshot({ path: path.join(ROOT, 'tests/artifacts/server-page-demo.png') });
    await p.close();
  } finally {
    assert.equal(await demo.stop(), 0);
  }
});

test('a PDF attaches and the demo model reads its page', { skip: skip || (!haveDemo && 'no models/demo') }, async () => {
  const demo = await startServer(['-m', DEMO], { timeoutMs: 120000 });
  try {
    const p = await ctx.newPage();
    await p.goto(demo.url + '/');
    await p.waitForFunction(() => document.getElementById('model-name').textContent === 'demo', null, { timeout: T });
    await p.setInputFiles('#file-input', [path.join(ROOT, 'tests/fixtures/pdf/example.pdf')]);
    await p.waitForFunction(() => document.querySelectorAll('#attachments .att .doc').length === 1, null, { timeout: T });
    const sent = [];
    p.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions')) sent.push(r.postDataJSON()); });
    await p.fill('#prompt', 'How many shapes are there?');
    await p.press('#prompt', 'Enter');
    await p.waitForSelector('.msg.assistant details.think:not([hidden])', { timeout: T * 3 });
    await p.waitForSelector('#send:not([hidden])', { timeout: T * 3 });
    assert.equal((await p.textContent('.msg.assistant .answer')).trim(), '4');
    assert.equal(await p.$$eval('.msg.user .media .doc', (e) => e.length), 1);
    const part = sent[0].messages[0].content[0];
    assert.equal(part.type, 'file');
    assert.equal(part.file.filename, 'example.pdf');
    assert.match(part.file.file_data, /^data:application\/pdf;base64,JVBERi/);
    await p.close();
  } finally {
    assert.equal(await demo.stop(), 0);
  }
});

test('a video attaches and is sent as video_url', { skip }, async () => {
  const clip = path.join(ASSETS, 'videos/mmcv_test.mp4');
  if (!fs.existsSync(clip)) return;
  await page.click('#new-chat');
  await page.setInputFiles('#file-input', [clip]);
  await page.waitForFunction(() => document.querySelectorAll('#attachments .att video').length === 1, null, { timeout: T });
  await page.fill('#prompt', 'What happens in this clip?');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 1 &&
    !document.getElementById('send').hidden, null, { timeout: T });
  assert.match(await page.$eval('.msg.assistant .think-text', (e) => e.textContent), /0 image\(s\) and 1 video\(s\)/);
  assert.equal(await page.$$eval('.msg.user .media video', (e) => e.length), 1);
});

test('markdown rendering escapes HTML and drops unsafe links', { skip }, async () => {
  const out = await page.evaluate(() => [
    GlmvMd.render('<img src=x onerror="alert(1)"> <script>alert(2)</script>'),
    GlmvMd.render('[click](javascript:alert(3)) and [ok](https://example.com/a?b=1&c=2)'),
    GlmvMd.render('```html\n<b onclick="x()">hi</b>\n```'),
    GlmvMd.render('# Title\n\n- one\n- **two**\n  - nested\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n> quote'),
  ]);
  assert.ok(!/<img|<script/i.test(out[0]) && out[0].includes('&lt;img'), out[0]);
  assert.ok(!/href="javascript/i.test(out[1]) && /href="https:\/\/example\.com\/a\?b=1&amp;c=2"/.test(out[1]), out[1]);
  assert.ok(!/<b /.test(out[2]) && out[2].includes('&lt;b'), out[2]);
  for (const tag of ['<h1>', '<ul>', '<strong>two</strong>', '<table>', 'text-align:right', '<blockquote>']) {
    assert.ok(out[3].includes(tag), tag + ' in ' + out[3]);
  }
  assert.match(out[3], /<li>one<\/li><li><strong>two<\/strong><ul><li>nested<\/li><\/ul><\/li>/);
});
