// http.test.mjs -- malformed and hostile requests at the HTTP level, sent
// over raw sockets: each must get the right status and OpenAI's error shape,
// and the server must stay healthy after every one of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rawHttp, statusOf, bodyOf, post, tinyPng, ASSETS } from './common.mjs';

let srv;
before(async () => { srv = await startServer(['-m', 'echo:', '--max-body-mb', '1', '--media-dir', ASSETS + '/images']); });
after(async () => { assert.equal(await srv.stop(), 0); });

async function expectError(body, status, check = () => {}, headers = {}) {
  const r = await post(srv.url, '/v1/chat/completions', body, headers);
  const text = await r.text();
  assert.equal(r.status, status, text);
  const j = JSON.parse(text);
  assert.equal(typeof j.error.message, 'string');
  assert.ok(j.error.message.length > 0);
  assert.ok('type' in j.error && 'param' in j.error && 'code' in j.error, 'OpenAI error shape');
  check(j.error);
  return j.error;
}

async function healthy() {
  const r = await fetch(srv.url + '/health');
  assert.equal(r.status, 200);
  assert.equal((await r.json()).status, 'ok');
}

const user = (content) => ({ messages: [{ role: 'user', content }] });

test('malformed JSON', async () => {
  for (const b of ['', '{', '{"messages":[', 'null', '[]', '"str"', '{"messages":[{"role":"user","content":"x"}]} trailing', '\u0000\u0001']) {
    await expectError(b, 400);
  }
  await expectError('{'.repeat(5000) + '}'.repeat(5000), 400); // nesting bomb
  await healthy();
});

test('wrong types and values name the parameter', async () => {
  const cases = [
    [{ messages: 'hi' }, 'messages'],
    [{ messages: [] }, 'messages'],
    [{}, 'messages'],
    [{ messages: [{ role: 'user' }] }, 'messages[0]'],
    [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0]'],
    [{ messages: [{ role: 'user', content: 42 }] }, 'messages[0]'],
    [{ messages: [{ role: 'user', content: [{ type: 'audio', text: 'x' }] }] }, 'messages[0].content[0]'],
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 7 }] }] }, 'messages[0].content[0]'],
    [{ ...user('x'), temperature: 'hot' }, 'temperature'],
    [{ ...user('x'), temperature: 5 }, 'temperature'],
    [{ ...user('x'), top_p: 0 }, 'top_p'],
    [{ ...user('x'), top_k: 1.5 }, 'top_k'],
    [{ ...user('x'), max_tokens: -1 }, 'max_tokens'],
    [{ ...user('x'), max_tokens: '10' }, 'max_tokens'],
    [{ ...user('x'), stream: 'yes' }, 'stream'],
    [{ ...user('x'), stop: 5 }, 'stop'],
    [{ ...user('x'), stop: new Array(20).fill('a') }, 'stop'],
    [{ ...user('x'), seed: 'abc' }, 'seed'],
    [{ ...user('x'), n: 9 }, 'n'],
    [{ ...user('x'), repetition_penalty: 1e-300 }, 'repetition_penalty'], // 0 as a float
    [{ ...user('x'), model: 12 }, 'model'],
  ];
  for (const [body, param] of cases) {
    await expectError(body, 400, (e) => assert.equal(e.param, param, JSON.stringify(body)));
  }
  await healthy();
});

test('requests glmv cannot honour are refused, not silently half-served', async () => {
  // legacy function calling, like tools
  await expectError({ ...user('x'), functions: [{ name: 'f', parameters: {} }] }, 400, (e) => assert.equal(e.param, 'functions'));
  // JSON output needs a tokenizer: the echo engine has none (tests/server/sampling.test.mjs runs it on the demo model)
  for (const rf of [{ type: 'json_object' }, { type: 'json_schema', json_schema: { name: 'a', schema: {} } }, 'json', { type: 3 }]) {
    await expectError({ ...user('x'), response_format: rf }, 400, (e) => assert.equal(e.param, 'response_format'));
  }
  const ok = await post(srv.url, '/v1/chat/completions', { ...user('plain'), response_format: { type: 'text' } });
  assert.equal(ok.status, 200);
  // a NUL character would cut the text short without a word
  await expectError(JSON.stringify(user('before\u0000after')), 400, (e) => assert.match(e.message, /NUL/));
  await expectError('{"messages":[{"role":"user","content":[{"type":"text","text":"a\\u0000b"}]}]}', 400);
  // an escaped backslash before u0000 is plain text, not a NUL
  const lit = await post(srv.url, '/v1/chat/completions', '{"messages":[{"role":"user","content":"a\\\\u0000b"}]}');
  assert.equal(lit.status, 200);
  assert.equal((await lit.json()).choices[0].message.content, '**Echo:** a\\u0000b');
  await healthy();
});

test('any model name is served (no --served-model-name), too many tokens is 400 context_length_exceeded', async () => {
  const any = await post(srv.url, '/v1/chat/completions', { ...user('x'), model: 'nope' });
  assert.equal(any.status, 200);
  assert.equal((await any.json()).model, 'nope');
  await expectError({ ...user('x'), max_tokens: 1e9 }, 400);
  await expectError({ ...user('x'.repeat(20000)), max_tokens: 10 }, 400, (e) => assert.equal(e.code, 'context_length_exceeded'));
});

test('undecodable images and refused media', async () => {
  const img = (url) => user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]);
  await expectError(img('data:image/png;base64,!!!notbase64!!!'), 400, (e) => assert.equal(e.code, 'invalid_image'));
  await expectError(img('data:image/png;base64,' + Buffer.from('GIF? no, text').toString('base64')), 400, (e) => assert.equal(e.code, 'invalid_image'));
  await expectError(img('data:image/png,rawnotbase64'), 400);
  await expectError(img('data:image/png;base64,' + tinyPng().subarray(0, 10).toString('base64')), 400, (e) => assert.equal(e.code, 'invalid_image'));
  await expectError(img('https://example.com/cat.png'), 400, (e) => assert.equal(e.code, 'remote_media_refused'));
  await expectError(img('/etc/passwd'), 403);
  await expectError(img('../../../../../../../../../../../../etc/passwd'), 403);
  await expectError(img('../../../../no/such/file.png'), 403);
  await expectError(img('file:///etc/shadow'), 403);
  await expectError(img('no_such_file.png'), 400);
  // a path longer than the system allows is refused as such, not cut to another file
  await expectError(img(ASSETS + '/images/' + 'x/'.repeat(3000) + 'a.png'), 400, (e) => assert.match(e.message, /too long/));
  await expectError(img('x/'.repeat(3000) + 'a.png'), 400, (e) => assert.match(e.message, /too long/));
  await expectError(user([{ type: 'video_url', video_url: { url: 'ftp://x/y.mp4' } }]), 400);
  // frames go in pairs: a cap of 1 is refused as the command line refuses it
  const vid = (extra) => user([{ type: 'video_url', video_url: { url: 'data:video/mp4;base64,AAAA', ...extra } }]);
  await expectError(vid({ max_frames: 1 }), 400, (e) => assert.equal(e.param, 'max_frames'));
  await expectError(vid({ max_frames: 2, fps: 0 }), 400, (e) => assert.equal(e.param, 'fps'));
  await healthy();
});

test('a --media-dir path that is a folder or a huge file is the client\'s error, not a 500', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glmv-media-'));
  fs.mkdirSync(path.join(dir, 'folder.png'));
  fs.writeFileSync(path.join(dir, 'huge.png'), '');
  fs.truncateSync(path.join(dir, 'huge.png'), 2 ** 31); // sparse: no disk used
  const m = await startServer(['-m', 'echo:', '--media-dir', dir]);
  try {
    const img = (url) => user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]);
    let r = await post(m.url, '/v1/chat/completions', img('folder.png'));
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /not a regular file/);
    r = await post(m.url, '/v1/chat/completions', img('huge.png'));
    assert.equal(r.status, 413);
    assert.equal((await r.json()).error.code, 'media_too_large');
  } finally {
    assert.equal(await m.stop(), 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a --media-dir given through a symbolic link: paths spelt either way are served, links out are not', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'glmv-media-'));
  fs.mkdirSync(path.join(base, 'real'));
  fs.writeFileSync(path.join(base, 'real', 'tiny.png'), tinyPng());
  fs.symlinkSync('real', path.join(base, 'link'));            // the folder, by another name
  fs.writeFileSync(path.join(base, 'secret.png'), tinyPng());  // beside the folder, not in it
  fs.symlinkSync(base, path.join(base, 'real', 'out'));       // a link inside leading out
  const m = await startServer(['-m', 'echo:', '--media-dir', path.join(base, 'link')]);
  try {
    const img = (url) => user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]);
    for (const url of ['tiny.png', path.join(base, 'link', 'tiny.png'), 'file://' + path.join(base, 'link', 'tiny.png'),
      path.join(base, 'real', 'tiny.png')]) {
      const r = await post(m.url, '/v1/chat/completions', img(url));
      assert.equal(r.status, 200, url + ': ' + await r.text());
    }
    for (const url of ['out/secret.png', path.join(base, 'link', 'out', 'secret.png'), '../link/../secret.png',
      path.join(base, 'secret.png'), 'file://' + path.join(base, 'link', '..', 'secret.png')]) {
      const r = await post(m.url, '/v1/chat/completions', img(url));
      assert.equal(r.status, 403, url + ': ' + await r.text());
    }
  } finally {
    assert.equal(await m.stop(), 0);
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('oversized body is 413, by Content-Length and by chunked upload', async () => {
  const big = JSON.stringify(user('z'.repeat(2 << 20)));
  await expectError(big, 413);
  // a huge declared body is refused before any of it is read
  const huge = await rawHttp(srv.url, 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n{', { idleMs: 2000 });
  assert.equal(statusOf(huge), 413);
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
  const chunk = 'a'.repeat(256 << 10);
  const parts = [head];
  for (let i = 0; i < 6; i++) parts.push((chunk.length).toString(16) + '\r\n' + chunk + '\r\n');
  parts.push('0\r\n\r\n');
  const raw = await rawHttp(srv.url, parts, { idleMs: 2000 });
  assert.equal(statusOf(raw), 413);
  assert.match(bodyOf(raw), /body_too_large/);
  // far past the limit, chunked: the connection is closed long before the client has sent it all
  const sock = (await import('node:net')).connect(Number(new URL(srv.url).port), '127.0.0.1');
  let got = '', sent = 0, closed = false;
  sock.on('data', (d) => { got += d; });
  sock.on('error', () => { closed = true; });
  sock.on('close', () => { closed = true; });
  await new Promise((r) => sock.on('connect', r));
  sock.write(head);
  while (!got && !closed && sent < (64 << 20)) {
    await new Promise((r) => sock.write((chunk.length).toString(16) + '\r\n' + chunk + '\r\n', () => r()));
    sent += chunk.length;
  }
  sock.destroy();
  assert.ok(closed || got, 'the server gave up on the upload');
  assert.ok(sent < 16 << 20, `still reading after ${sent} bytes`);
  await healthy();
});

test('two Content-Length headers are refused; an empty user content is a 400', async () => {
  const raw = await rawHttp(srv.url, 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n' +
    'Content-Length: 50\r\nConnection: close\r\n\r\n{"a":', { idleMs: 1000 });
  const st = statusOf(raw);
  assert.equal(st, 400, raw.slice(0, 200));
  await expectError({ messages: [{ role: 'user', content: [] }] }, 400, (e) => assert.equal(e.param, 'messages[0]'));
  await healthy();
});

test('wrong methods, unknown paths, CORS preflight', async () => {
  assert.equal((await fetch(srv.url + '/v1/chat/completions')).status, 405);
  assert.equal((await fetch(srv.url + '/v1/nothing')).status, 404);
  assert.equal((await fetch(srv.url + '/../../etc/passwd')).status, 404);
  assert.equal((await fetch(srv.url + '/health', { method: 'DELETE' })).status, 405);
  const o = await fetch(srv.url + '/v1/chat/completions', { method: 'OPTIONS' });
  assert.equal(o.status, 204);
  assert.equal(o.headers.get('access-control-allow-origin'), '*');
});

test('garbage, truncated and abandoned requests do not hurt the server', async () => {
  const bad = [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"messages"',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'h'.repeat(200000) + '\r\n\r\n',
    'GET /health HTTP/1.1\r\n' + 'X-A: b\r\n'.repeat(5000) + '\r\n',
    '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', // a TLS hello
  ];
  for (const b of bad) {
    const raw = await rawHttp(srv.url, b, { idleMs: 300, closeAfterWrite: b.includes('Content-Length: 100') });
    const st = statusOf(raw);
    assert.ok(st === 0 || st >= 400, `status ${st} for ${JSON.stringify(b.slice(0, 40))}`);
  }
  // a stream whose client vanishes before reading anything
  await rawHttp(srv.url, 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n' +
    '{"stream":true,"messages":[{"role":"user","content":"a"}]}', { idleMs: 1, closeAfterWrite: true });
  await healthy();
  const r = await post(srv.url, '/v1/chat/completions', user('still fine?'));
  assert.equal(r.status, 200);
  assert.equal((await r.json()).choices[0].message.content, '**Echo:** still fine?');
});

// What libmicrohttpd answers itself, before glmv sees a request (README: a fixed HTML body, the
// right status): pinned here so that a library update that changes them is noticed.
test('requests the HTTP library cannot parse get its own status codes', async () => {
  const cases = [
    ['GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 400],
    ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n', 400],
    ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 400],
    ['GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'h'.repeat(200000) + '\r\n\r\n', 431],
    ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n', 413],
    ['GET / HTTP/9.9\r\nHost: x\r\n\r\n', 505],
  ];
  for (const [req, want] of cases)
    assert.equal(statusOf(await rawHttp(srv.url, req, { idleMs: 300 })), want, JSON.stringify(req.slice(0, 60)));
  await healthy();
});

test('keep-alive: several requests on one connection, then pipelined', async () => {
  const one = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
  const raw = await rawHttp(srv.url, one + one + one, { idleMs: 500 });
  assert.equal((raw.match(/HTTP\/1\.1 200/g) || []).length, 3);
});

test('/metrics is Prometheus text with the required series', async () => {
  const t = await (await fetch(srv.url + '/metrics')).text();
  for (const name of ['glmv_http_responses_total{code="400"}', 'glmv_chat_requests_total', 'glmv_prompt_tokens_total', 'glmv_prompt_tokens_cached_total',
    'glmv_completion_tokens_total', 'glmv_queue_depth', 'glmv_requests_in_flight', 'glmv_request_duration_seconds_bucket',
    'glmv_time_to_first_token_seconds_count']) {
    assert.ok(t.includes(name), name);
  }
  assert.match(t, /^glmv_http_responses_total\{code="400"\} [1-9]\d*$/m);
  for (const line of t.split('\n')) {
    if (line && !line.startsWith('#')) assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+$/, line);
  }
});

test('--allow-remote-media downloads http URLs (here from a loopback server), with errors for bad ones', async () => {
  const http = await import('node:http');
  const media = http.createServer((req, res) => {
    if (req.url === '/cat.png') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(tinyPng()); }
    else if (req.url === '/moved') { res.writeHead(302, { location: '/cat.png' }); res.end(); }
    else if (req.url === '/text') { res.writeHead(200); res.end('hello'); }
    else if (req.url === '/big') { res.writeHead(200); res.end(Buffer.alloc(2 << 20)); }
    else { res.writeHead(404); res.end(); }
  });
  await new Promise((r) => media.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${media.address().port}`;
  const remote = await startServer(['-m', 'echo:', '--allow-remote-media', '--max-body-mb', '1']);
  try {
    const ask = (url) => post(remote.url, '/v1/chat/completions', user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]));
    for (const u of [base + '/cat.png', base + '/moved']) {
      const r = await ask(u);
      assert.equal(r.status, 200);
      assert.match((await r.json()).choices[0].message.reasoning_content, /1 image\(s\)/);
    }
    for (const [u, code] of [['/missing', 'media_fetch_failed'], ['/text', 'invalid_image'], ['/big', 'media_fetch_failed']]) {
      const r = await ask(base + u);
      assert.equal(r.status, 400, u);
      assert.equal((await r.json()).error.code, code, u);
    }
    const ftp = await ask('ftp://127.0.0.1/x.png');
    assert.equal(ftp.status, 400);
  } finally {
    media.close();
    assert.equal(await remote.stop(), 0);
  }
});
