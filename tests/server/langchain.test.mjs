// langchain.test.mjs -- LangChain JS (@langchain/openai's ChatOpenAI) against glmv serve on a
// real checkpoint (the demo model): an image question, streaming, log-probabilities, and
// structured output with a zod schema (withStructuredOutput, strict JSON schema).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer } from './common.mjs';

const REAL = process.env.GLMV_REAL_MODEL;
const EX = REAL ? REAL + '/example.png' : '';
let lc = null, z = null;
try {
  lc = await import('@langchain/openai');
  ({ z } = await import('zod'));
} catch { /* skipped below */ }
const skip = !lc ? '@langchain/openai not installed (run .ci/setup-server.sh)'
  : !(REAL && fs.existsSync(EX)) ? 'no demo checkpoint with example.png (GLMV_REAL_MODEL)' : false;

let srv;
before(async () => { if (!skip) srv = await startServer(['-m', REAL], { timeoutMs: 300000 }); });
after(async () => { if (srv) assert.equal(await srv.stop(), 0); });

const question = () => [{ role: 'user', content: [
  { type: 'image_url', image_url: { url: 'data:image/png;base64,' + fs.readFileSync(EX).toString('base64') } },
  { type: 'text', text: 'How many shapes are there?' }] }];

test('ChatOpenAI: invoke, stream, logprobs, withStructuredOutput', { skip }, async () => {
  const make = (o = {}) => new lc.ChatOpenAI({ model: 'demo', apiKey: 'none', temperature: 0, maxTokens: 64,
    maxRetries: 0, configuration: { baseURL: srv.url + '/v1' }, ...o });
  const m = make();
  const r = await m.invoke(question());
  assert.ok(typeof r.content === 'string' && r.content.length > 0);
  let streamed = '';
  for await (const ch of await m.stream(question())) streamed += ch.content;
  assert.equal(streamed, r.content);
  const lp = await make({ logprobs: true, topLogprobs: 2 }).invoke(question());
  const content = lp.response_metadata.logprobs.content;
  assert.ok(content.length > 0 && content.every((e) => e.top_logprobs.length === 2 && e.logprob <= 0));
  const schema = z.object({ count: z.number().int(), shapes: z.array(z.enum(['circle', 'square', 'triangle', 'diamond'])).max(6) });
  const structured = make({ maxTokens: 1000 }).withStructuredOutput(schema, { name: 'shapes', method: 'jsonSchema', strict: true });
  const out = await structured.invoke(question());
  assert.ok(Number.isInteger(out.count), JSON.stringify(out));
  assert.ok(Array.isArray(out.shapes) && out.shapes.length <= 6);
});
