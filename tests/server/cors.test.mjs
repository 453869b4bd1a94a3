// cors.test.mjs -- the official openai SDK running in a browser page of another origin against
// glmv serve: a static server on a second loopback port serves a page and the SDK's own ES
// modules (from node_modules); headless Chromium runs the page, whose requests carry the SDK's
// x-stainless-* headers and an Authorization header, so every call needs the CORS preflight.
// Skips when Chromium or playwright-core is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startServer, ROOT, SLOW } from './common.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
let chromium = null;
try { ({ chromium } = await import('playwright-core')); } catch { /* skipped below */ }
const skip = !fs.existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : !chromium ? 'playwright-core not installed' : false;
const SDK = path.join(ROOT, 'tests/server/node_modules/openai');
const KEY = 'sk-cors';

let srv, web, ctx, userDir;

before(async () => {
  if (skip) return;
  srv = await startServer(['-m', 'echo:', '--api-key', KEY]);
  web = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><script type="module">
        import OpenAI from '/openai/index.mjs';
        const c = new OpenAI({ baseURL: ${JSON.stringify(srv.url + '/v1')}, apiKey: ${JSON.stringify(KEY)},
          dangerouslyAllowBrowser: true, maxRetries: 0 });
        try {
          const r = await c.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'from a page' }] });
          const s = await c.chat.completions.create({ model: 'echo', stream: true, messages: [{ role: 'user', content: 'streamed' }] });
          let text = '';
          for await (const ch of s) text += ch.choices[0]?.delta?.content || '';
          const models = await c.models.list();
          window.result = { content: r.choices[0].message.content, text, model: models.data[0].id };
        } catch (e) { window.result = { error: String(e) }; }
      </script>`);
      return;
    }
    const f = path.join(SDK, path.normalize(u.pathname.replace(/^\/openai\//, '/')));
    if (!u.pathname.startsWith('/openai/') || !f.startsWith(SDK) || !fs.existsSync(f)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(fs.readFileSync(f));
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glmv-cors-'));
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  if (ctx) await ctx.close();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  if (web) web.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

test('the openai SDK in a page of another origin: completion, stream, models', { skip }, async () => {
  const page = ctx.pages()[0] || await ctx.newPage();
  const origin = `http://127.0.0.1:${web.address().port}`;
  assert.notEqual(origin, srv.url, 'two origins');
  const preflights = [];
  page.on('request', (r) => { if (r.method() === 'OPTIONS') preflights.push(r.url()); });
  await page.goto(origin + '/');
  await page.waitForFunction(() => window.result, null, { timeout: SLOW ? 60000 : 20000 });
  const r = await page.evaluate(() => window.result);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.content, '**Echo:** from a page');
  assert.equal(r.text, '**Echo:** streamed');
  assert.equal(r.model, 'echo');
});
