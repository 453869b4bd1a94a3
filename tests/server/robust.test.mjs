// robust.test.mjs -- what one bad client costs and how the server stops: 3,000 connections that
// send half a request and close leave nothing behind; one address cannot take every slot;
// /health/live and /health/ready; SIGTERM drains what is in flight (streams end with [DONE]), and
// past --drain-timeout the rest end with an error event or a 503, and the exit status says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, post, SLOW } from './common.mjs';

const user = (content) => ({ model: 'echo', messages: [{ role: 'user', content }] });

async function timed(url, ms) {
  const t0 = Date.now();
  const r = await fetch(url, { signal: AbortSignal.timeout(ms) });
  return { status: r.status, body: await r.json(), ms: Date.now() - t0 };
}

function openHalf(port, host, localAddress, close) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host, localAddress }, () => {
      s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
      if (close) s.end();
      resolve(s);
    });
    s.on('error', () => resolve(s));
  });
}

test('3,000 half-sent requests that close leave /health answering within a second', async () => {
  const srv = await startServer(['-m', 'echo:']);
  try {
    const port = Number(new URL(srv.url).port);
    for (let i = 0; i < 3000; i += 100)
      await Promise.all(Array.from({ length: 100 }, () => openHalf(port, '127.0.0.1', undefined, true)));
    await new Promise((r) => setTimeout(r, 200));
    const h = await timed(srv.url + '/health', SLOW ? 5000 : 1000);
    assert.equal(h.status, 200);
    const r = await post(srv.url, '/v1/chat/completions', user('still here'));
    assert.equal(r.status, 200);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('one client address cannot hold every connection slot (--max-conns-per-ip)', async () => {
  const srv = await startServer(['-m', 'echo:', '--max-conns-per-ip', '8']);
  const held = [];
  try {
    const port = Number(new URL(srv.url).port);
    // 40 slow connections from 127.0.0.2: 8 are kept, the rest closed at once
    for (let i = 0; i < 40; i++) held.push(await openHalf(port, '127.0.0.1', '127.0.0.2', false));
    await new Promise((r) => setTimeout(r, 300));
    const open = held.filter((s) => !s.destroyed && s.readyState === 'open').length;
    assert.ok(open <= 8 + 1, `${open} of 40 still open`);
    const h = await timed(srv.url + '/health', SLOW ? 5000 : 1000);
    assert.equal(h.status, 200);
    const live = await timed(srv.url + '/health/live', 2000);
    assert.equal(live.status, 200);
    const ready = await timed(srv.url + '/health/ready', 2000);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, 'ok');
  } finally {
    for (const s of held) s.destroy();
    assert.equal(await srv.stop(), 0);
  }
});

// Open a socket and keep sending `pieces` (strings), one every gapMs; resolves with how long
// the server kept it open (ms) and whether any byte came back.
function trickle(port, pieces, gapMs, localAddress) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let got = '', i = 0, timer;
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => {
      const next = () => {
        if (s.destroyed) return;
        s.write(pieces[Math.min(i++, pieces.length - 1)]); // the last piece repeats
        timer = setTimeout(next, gapMs);
      };
      next();
    });
    const done = () => { clearTimeout(timer); resolve({ ms: Date.now() - t0, got, sock: s }); };
    s.on('data', (d) => { got += d; });
    s.on('error', () => {});
    s.on('close', done);
  });
}

test('a request trickled in is closed at --header-timeout however often bytes come; an idle connection is not cut early', async () => {
  const srv = await startServer(['-m', 'echo:', '--header-timeout', '2', '--idle-timeout', '4']);
  try {
    const port = Number(new URL(srv.url).port);
    const headerLines = ['GET /health HTTP/1.1\r\n', ...Array(100).fill('X-Slow: 1\r\n')];
    const body = ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
                  'Content-Length: 100000\r\n\r\n{', ...Array(100).fill(' ')];
    const requestLine = [...'GET /health HTTP/1.1\r\n'];
    const [h, b, r] = await Promise.all([trickle(port, headerLines, 250), trickle(port, body, 250),
                                         trickle(port, requestLine, 250)]);
    // each byte restarts the 4 s idle timer; the deadlines do not move
    assert.ok(h.ms >= 1800 && h.ms < 3500, `headers trickled: closed after ${h.ms} ms`);
    assert.ok(b.ms >= 1800 && b.ms < 3500, `body trickled: closed after ${b.ms} ms`);
    assert.ok(r.ms >= 3800 && r.ms < 5500, `request line trickled: closed after ${r.ms} ms`);
    // a kept-alive connection that waits 3 s (past --header-timeout) before its request is answered
    const s = net.connect(port, '127.0.0.1');
    await new Promise((res) => s.on('connect', res));
    await new Promise((res) => setTimeout(res, 3000));
    const answer = await new Promise((res) => {
      let t = '';
      s.on('data', (d) => { t += d; if (t.includes('"status"')) res(t); });
      s.on('close', () => res(t));
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    s.destroy();
    assert.match(answer, /^HTTP\/1\.1 200/);
    const m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /glmv_http_read_timeouts_total 3\n/);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test('3,000 slow connections from 50 addresses: /health and a request answer within a second, the deadline frees them', async () => {
  const { spawnSync } = await import('node:child_process');
  // this process needs a descriptor per connection too
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -n']).stdout.toString().trim()) || 1024;
  const n = Math.min(3000, limit - 200);
  const srv = await startServer(['-m', 'echo:', '--header-timeout', '3']);
  const socks = [];
  try {
    const port = Number(new URL(srv.url).port);
    const waits = [];
    for (let i = 0; i < n; i += 100)
      await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => new Promise((res) => {
        const from = `127.0.0.${10 + ((i + k) % 50)}`;
        const p = trickle(port, ['POST /v1/chat/completions HTTP/1.1\r\n', 'X-Slow: 1\r\n'], 500, from);
        waits.push(p);
        setImmediate(res);
      })));
    await new Promise((r) => setTimeout(r, 300));
    const h = await timed(srv.url + '/health', SLOW ? 5000 : 1000);
    assert.equal(h.status, 200);
    const t0 = Date.now();
    const r = await post(srv.url, '/v1/chat/completions', user('through the crowd'));
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 < (SLOW ? 5000 : 1000), `request took ${Date.now() - t0} ms`);
    const closed = await Promise.all(waits);
    const late = closed.filter((c) => c.ms > 6000).length;
    assert.equal(late, 0, `${late} of ${n} slow connections outlived the 3 s deadline by 3 s`);
    const m = await (await fetch(srv.url + '/metrics')).text();
    const t = Number(m.match(/glmv_http_read_timeouts_total (\d+)/)[1]);
    assert.ok(t >= n * 0.99, `${t} of ${n} closed at the deadline`);
    for (const c of closed) socks.push(c.sock);
  } finally {
    for (const s of socks) s.destroy();
    assert.equal(await srv.stop(), 0);
  }
});

test('media URLs that never answer are downloaded off the HTTP threads: everything else still answers', async () => {
  const http = await import('node:http');
  const hang = http.createServer(() => { /* accept, never answer */ });
  await new Promise((r) => hang.listen(0, '127.0.0.1', r));
  const srv = await startServer(['-m', 'echo:', '--allow-remote-media', '--http-threads', '2']);
  try {
    const url = `http://127.0.0.1:${hang.address().port}/never.png`;
    const body = user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]);
    const ctl = new AbortController();
    const slow = Array.from({ length: 8 }, () => post(srv.url, '/v1/chat/completions', body, {}, ctl.signal).catch(() => null));
    await new Promise((r) => setTimeout(r, 500)); // eight downloads hang, more than there are HTTP threads
    for (let i = 0; i < 3; i++) {
      const h = await timed(srv.url + '/health', SLOW ? 5000 : 1000);
      assert.equal(h.status, 200);
      const t0 = Date.now();
      const r = await post(srv.url, '/v1/chat/completions', user('meanwhile'));
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < (SLOW ? 5000 : 2000));
    }
    ctl.abort(); // the clients leave; their downloads end at the 20 s limit without them
    await Promise.all(slow);
  } finally {
    hang.closeAllConnections?.();
    hang.close();
    await srv.stop();
  }
});

// until the server holds n requests (queued or running), so a stop cannot race their arrival
async function waitBusy(url, n) {
  for (let i = 0; i < 250; i++) {
    const h = await (await fetch(url + '/health')).json();
    if (h.queue_depth + h.in_flight >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the server never held ${n} requests`);
}

async function readStream(r) {
  const text = await r.text();
  return { done: text.includes('data: [DONE]'), error: /"server_shutdown"/.test(text), text };
}

test('SIGTERM drains: requests in flight finish, streams end with [DONE], exit 0', async () => {
  const srv = await startServer(['-m', 'echo:delay_ms=40', '--drain-timeout', '60']);
  const jobs = [];
  for (let i = 0; i < 4; i++) jobs.push(post(srv.url, '/v1/chat/completions', { ...user('stream ' + i), stream: true }).then(readStream));
  for (let i = 0; i < 3; i++) jobs.push(post(srv.url, '/v1/chat/completions', user('plain ' + i)).then(async (r) => ({ status: r.status, body: await r.json() })));
  await waitBusy(srv.url, 7); // all queued or running
  const code = await srv.stop();
  const out = await Promise.all(jobs);
  for (const s of out.slice(0, 4)) assert.ok(s.done && !s.error, s.text.slice(-200));
  for (const p of out.slice(4)) {
    assert.equal(p.status, 200);
    assert.match(p.body.choices[0].message.content, /plain/);
  }
  assert.equal(code, 0);
});

test('past --drain-timeout the rest end with an error event or a 503, exit status 3', async () => {
  const srv = await startServer(['-m', 'echo:delay_ms=200', '--drain-timeout', '0']);
  // the stream is running (its first chunk is in) before the second request queues behind it
  const r0 = await post(srv.url, '/v1/chat/completions', { ...user('a long stream that will not finish'), stream: true });
  const rd = r0.body.getReader();
  let text = new TextDecoder().decode((await rd.read()).value);
  const q = post(srv.url, '/v1/chat/completions', user('queued behind it')).then(async (r) => ({ status: r.status, body: await r.json() }));
  await new Promise((r) => setTimeout(r, 300));
  const code = await srv.stop();
  for (let c = await rd.read(); !c.done; c = await rd.read()) text += new TextDecoder().decode(c.value);
  const st = { done: text.includes('data: [DONE]'), error: /"server_shutdown"/.test(text), text };
  const qq = await q;
  assert.ok(st.error && st.done, st.text.slice(-300));
  assert.equal(qq.status, 503);
  assert.equal(qq.body.error.code, 'server_shutdown');
  assert.equal(code, 3);
});

test('at the drain deadline a running non-stream request gets a 503, not a reset', async () => {
  const srv = await startServer(['-m', 'echo:delay_ms=300', '--drain-timeout', '0']);
  const a = post(srv.url, '/v1/chat/completions', user('plain running job'))
    .then(async (r) => ({ status: r.status, body: await r.json() })).catch((e) => ({ err: String(e.cause?.code || e) }));
  await waitBusy(srv.url, 1);
  await new Promise((r) => setTimeout(r, 200));
  const code = await srv.stop();
  const got = await a;
  assert.equal(got.status, 503, JSON.stringify(got));
  assert.equal(got.body.error.code, 'server_shutdown');
  assert.equal(code, 3);
});

test('a download still running at shutdown ends with an answer and exit 3, not an abort', async () => {
  const http = await import('node:http');
  const hang = http.createServer(() => {});
  await new Promise((r) => hang.listen(0, '127.0.0.1', r));
  const srv = await startServer(['-m', 'echo:', '--allow-remote-media', '--drain-timeout', '1']);
  try {
    const url = `http://127.0.0.1:${hang.address().port}/never.png`;
    const p = post(srv.url, '/v1/chat/completions', user([{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'x' }]))
      .then(async (r) => ({ status: r.status })).catch((e) => ({ err: String(e.cause?.code || e) }));
    await new Promise((r) => setTimeout(r, 300));
    const code = await srv.stop();
    const got = await p;
    assert.equal(got.status, 503, JSON.stringify(got) + srv.stderr().slice(-300));
    assert.equal(code, 3);
  } finally {
    hang.closeAllConnections?.();
    hang.close();
  }
});

test('during the drain a new connection is refused at once, not left hanging', async () => {
  const srv = await startServer(['-m', 'echo:delay_ms=100', '--drain-timeout', '4']);
  const a = post(srv.url, '/v1/chat/completions', user('a long one')).then((r) => r.status).catch(() => 0);
  await waitBusy(srv.url, 1);
  const stopping = srv.stop();
  await new Promise((r) => setTimeout(r, 300));
  const port = Number(new URL(srv.url).port);
  const t0 = Date.now();
  const r = await new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('error', (e) => resolve({ err: e.code, ms: Date.now() - t0 }));
    s.on('close', () => resolve({ ms: Date.now() - t0 }));
  });
  assert.ok(r.ms < 1000, JSON.stringify(r));
  assert.equal(await stopping, 0);
  assert.equal(await a, 200);
});

test('/health and /health/ready answer 503 "busy" while the queue is full, /health/live 200', async () => {
  const srv = await startServer(['-m', 'echo:delay_ms=100', '--queue', '1', '--parallel', '1']);
  try {
    const a = post(srv.url, '/v1/chat/completions', user('running')).then((r) => r.status);
    await waitBusy(srv.url, 1);
    const b = post(srv.url, '/v1/chat/completions', user('queued')).then((r) => r.status);
    let h;
    for (let i = 0; i < 100; i++) { // until the second one is queued
      h = await fetch(srv.url + '/health/ready');
      if (h.status === 503) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(h.status, 503);
    assert.equal((await h.json()).status, 'busy');
    assert.equal((await fetch(srv.url + '/health/live')).status, 200);
    assert.deepEqual([await a, await b], [200, 200]);
    assert.equal((await fetch(srv.url + '/health')).status, 200);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
