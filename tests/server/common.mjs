// common.mjs -- helpers shared by the glmv serve tests: start a server on a
// free loopback port (the binary from $GLMV_BIN), a raw HTTP/1.1 exchange over
// a socket (for requests no client library would send), small test images.
// Every server started here is stopped by stopAll() (and on process exit).
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.GLMV_BIN || path.join(ROOT, 'build/release/glmv');
export const SLOW = !!process.env.GLMV_SANITIZE; // ASan build: allow more time
export const ASSETS = path.resolve(ROOT, '../shared/assets');

const live = new Set();

export async function startServer(args = [], { timeoutMs = 60000 } = {}) {
  const proc = spawn(BIN, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '', errText = '';
  proc.stderr.on('data', (d) => { errText += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start: ' + errText)), timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^/\s]+)\//);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${errText}`)); });
  });
  proc.removeAllListeners('exit');
  const modelLine = out.match(/model '([^']+)'/);
  return {
    url, proc, model: modelLine ? modelLine[1] : '',
    stderr: () => errText,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      const code = await done;
      clearTimeout(t);
      live.delete(proc);
      return code;
    },
  };
}

export async function stopAll() { await Promise.all([...live].map((p) => { p.kill('SIGKILL'); })); }
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch {} });

// Send raw bytes, read until the server closes or `idleMs` passes without data.
export function rawHttp(url, bytes, { idleMs = 3000, closeAfterWrite = false } = {}) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const chunks = [];
    const sock = net.connect(Number(u.port), u.hostname);
    let timer;
    const finish = () => { clearTimeout(timer); sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(finish, idleMs); };
    sock.on('connect', () => {
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) sock.write(b);
      if (closeAfterWrite) sock.end();
      arm();
    });
    sock.on('data', (d) => { chunks.push(d); arm(); });
    sock.on('error', finish);
    sock.on('close', finish);
  });
}

export function statusOf(raw) {
  const m = raw.match(/^HTTP\/1\.[01] (\d{3})/);
  return m ? Number(m[1]) : 0;
}

export function bodyOf(raw) {
  const i = raw.indexOf('\r\n\r\n');
  return i < 0 ? '' : raw.slice(i + 4);
}

export function post(url, path_, body, headers = {}, signal = undefined) {
  const b = typeof body === 'string' ? body : JSON.stringify(body);
  return fetch(url + path_, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: b, signal });
}

// A real PNG from the shared assets when present, else a 1x1 PNG.
const TINY_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
export function pngDataUrl() {
  const p = path.join(ASSETS, 'images/variants');
  try {
    const f = fs.readdirSync(p).find((n) => n.endsWith('.png') && /crop|20x30/.test(n));
    if (f) return 'data:image/png;base64,' + fs.readFileSync(path.join(p, f)).toString('base64');
  } catch {}
  return 'data:image/png;base64,' + TINY_PNG;
}
export const tinyPng = () => Buffer.from(TINY_PNG, 'base64');

export async function metric(url, name, headers = {}) {
  const t = await (await fetch(url + '/metrics', { headers })).text();
  const m = t.match(new RegExp('^' + name + ' (\\S+)$', 'm'));
  return m ? Number(m[1]) : NaN;
}
