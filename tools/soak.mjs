// soak.mjs [N] [CONCURRENCY] [-- glmv serve options] -- N mixed requests against a glmv serve it
// starts (default 10000 on the echo engine, 16 at a time): completions and streams, malformed
// JSON, wrong parameters, bad images, clients that leave mid-stream and half-sent requests. Prints
// the server's resident memory and open file descriptors after a warm-up (the first fifth) and at
// the end, both read once the server is quiet (no connection but the probe's, no sequence running
// or waiting), so the figures compare like with like; they should stay flat. Also the answers by
// status. Uses only node's standard library.
//   node tools/soak.mjs 10000 16
//   node tools/soak.mjs 2000 8 -- -m models/demo
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const dd = argv.indexOf('--');
const N = Number(argv[0] || 10000), C = Number(argv[1] || 16);
const extra = dd >= 0 ? argv.slice(dd + 1) : ['-m', 'echo:'];
const BIN = process.env.GLMV_BIN || path.join(ROOT, 'build/release/glmv');

const proc = spawn(BIN, ['serve', '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((resolve, reject) => {
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/listening on (http:\/\/[^/\s]+)\//);
    if (m) resolve(m[1]);
  });
  proc.on('exit', (c) => reject(new Error('server exited ' + c)));
});
const port = Number(new URL(url).port);

function usage() {
  const st = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
  const rss = Number(st.match(/VmRSS:\s+(\d+)/)[1]);
  return { rss_mib: +(rss / 1024).toFixed(1), fds: fs.readdirSync(`/proc/${proc.pid}/fd`).length };
}

const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const msg = (content, extraFields = {}) => JSON.stringify({ model: 'm', max_tokens: 16, messages: [{ role: 'user', content }], ...extraFields });
const kinds = [
  ['completion', () => fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: msg('hello there') })],
  ['stream', async () => {
    const r = await fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: msg('stream me', { stream: true }) });
    await r.text();
    return r;
  }],
  ['image', () => fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: msg([{ type: 'image_url', image_url: { url: 'data:image/png;base64,' + png } }, { type: 'text', text: 'x' }]) })],
  ['bad json', () => fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages": [' })],
  ['bad param', () => fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: msg('x', { temperature: 'hot' }) })],
  ['bad image', () => fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: msg([{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }]) })],
  ['left mid-stream', async () => {
    const ctl = new AbortController();
    const r = await fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: msg('leave early', { stream: true, max_tokens: 64 }), signal: ctl.signal });
    const rd = r.body.getReader();
    await rd.read();
    ctl.abort();
    return { status: 'left' };
  }],
  ['half-sent', () => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'); s.end(); });
    s.on('close', () => resolve({ status: 'half' }));
    s.on('error', () => resolve({ status: 'half' }));
  })],
];

// GET /metrics on a fresh connection that closes after the answer (not one of fetch's pooled ones)
function metrics() {
  return new Promise((resolve) => {
    let buf = '';
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    s.on('data', (d) => { buf += d; });
    s.on('close', () => resolve(buf));
    s.on('error', () => resolve(''));
  });
}
const gauge = (text, name) => Number((text.match(new RegExp('^' + name + ' (\\d+)', 'm')) || [0, NaN])[1]);
// wait (up to 20 s: fetch's pool keeps idle connections for 4 s) until only the probe is connected
// and no sequence is running or waiting, then read memory and descriptors
async function quietUsage() {
  let quiet = false;
  for (let k = 0; k < 100 && !quiet; k++) {
    const m = await metrics();
    quiet = gauge(m, 'glmv_http_connections') <= 1 && gauge(m, 'glmv_sequences_running') === 0 &&
      gauge(m, 'glmv_sequences_waiting') === 0;
    if (!quiet) await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 200)); // the probe's own connection closes
  return { ...usage(), quiet };
}

const counts = {};
let next = 0;
async function worker(upto) {
  for (;;) {
    const i = next++;
    if (i >= upto) { next = Math.min(next, upto); return; }
    const [name, f] = kinds[i % kinds.length];
    let key;
    try {
      const r = await f();
      key = `${name}: ${r.status}`;
    } catch (e) {
      key = `${name}: ${e.name === 'AbortError' ? 'left' : 'error ' + e.message}`;
    }
    counts[key] = (counts[key] || 0) + 1;
  }
}
const t0 = Date.now();
const W = Math.floor(N / 5);
await Promise.all(Array.from({ length: C }, () => worker(W)));
const warm = await quietUsage();
next = W;
await Promise.all(Array.from({ length: C }, () => worker(N)));
const end = await quietUsage();
proc.kill('SIGTERM');
console.log(JSON.stringify({ requests: N, concurrency: C, seconds: (Date.now() - t0) / 1000, after_warmup: warm, end, answers: counts }, null, 1));
