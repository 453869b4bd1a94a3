// load.mjs -- drive a running `glmv serve` with C concurrent streaming clients for S seconds
// and report what users see: aggregate generated tokens/s, time to first token (p50, p99) and
// tokens/s per stream. Each client sends the same request again and again (an image of the
// demo model and a question, or the text given). Only node's standard library.
//   node tools/load.mjs URL [CLIENTS] [SECONDS] [MAX_TOKENS] [--text "prompt"] [--image FILE]
//   node tools/load.mjs http://127.0.0.1:8080 8 30 64
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : dflt; };
const text = opt('--text', 'Describe the image.');
const image = opt('--image', new URL('../models/demo/example.png', import.meta.url).pathname);
const [url = 'http://127.0.0.1:8080', clients = '8', seconds = '20', maxTokens = '64'] = args;
const C = Number(clients), S = Number(seconds), N = Number(maxTokens);
if (!(C >= 1 && S > 0 && N >= 1)) {
  console.error('usage: node tools/load.mjs URL [CLIENTS] [SECONDS] [MAX_TOKENS] [--text T] [--image FILE]');
  process.exit(2);
}
const content = [{ type: 'text', text }];
if (image !== 'none') content.unshift({ type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(image).toString('base64') } });
const body = JSON.stringify({ model: 'any', stream: true, stream_options: { include_usage: true },
  max_tokens: N, temperature: 0, messages: [{ role: 'user', content }] });

const ttft = [], rates = [];
let tokens = 0, requests = 0, failed = 0;
const end = Date.now() + S * 1000;

async function one() {
  const t0 = performance.now();
  let first = 0, done = 0, buf = '';
  const r = await fetch(url + '/v1/chat/completions', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  if (r.status !== 200) { failed++; await r.text(); return; }
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      const d = j.choices && j.choices[0] && j.choices[0].delta;
      if (!first && d && (d.content || d.reasoning_content)) first = performance.now();
      if (j.usage) done = j.usage.completion_tokens;
    }
  }
  const t1 = performance.now();
  requests++;
  tokens += done;
  if (first) {
    ttft.push(first - t0);
    if (done > 1 && t1 > first) rates.push((done - 1) / ((t1 - first) / 1000));
  }
}

async function client() { while (Date.now() < end) await one().catch(() => { failed++; }); }
const t0 = Date.now();
await Promise.all(Array.from({ length: C }, client));
const wall = (Date.now() - t0) / 1000;
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : 0; };
console.log(JSON.stringify({
  clients: C, seconds: Number(wall.toFixed(2)), requests, failed, generated_tokens: tokens,
  aggregate_tokens_per_s: Number((tokens / wall).toFixed(2)),
  ttft_ms: { p50: Number(q(ttft, 0.5).toFixed(1)), p99: Number(q(ttft, 0.99).toFixed(1)) },
  per_stream_tokens_per_s: { p50: Number(q(rates, 0.5).toFixed(2)), min: Number(q(rates, 0).toFixed(2)) },
}, null, 1));
process.exit(failed ? 1 : 0);
