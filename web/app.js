/* app.js -- the glmv chat page: a conversation kept in the browser and sent
 * whole to /v1/chat/completions with stream: true (the server keeps no state
 * between requests). Images, videos and PDFs attach by the picker, drag and
 * drop or paste, several per message, and travel as data: URLs (a PDF as a
 * file part, whose pages the server reads as images). The reasoning
 * (delta.reasoning_content) streams into a foldable block, the answer
 * (delta.content) is rendered as markdown by md.js. Stop aborts the request,
 * which makes the server cancel the generation.
 */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const chat = $('chat'), promptEl = $('prompt'), attachEl = $('attachments'), statusEl = $('status');
  // empty = the checkpoint's generation_config.json, as the server applies it
  const DEFAULTS = { system: '', temperature: '', top_p: '', top_k: '', repetition_penalty: '',
    max_tokens: '', max_thinking_tokens: '', seed: '', api_key: '' };
  const FIELDS = Object.keys(DEFAULTS);
  let modelId = '';
  let conv = [];          // {role, text, media:[{kind,dataUrl,objUrl}]} | {role:'assistant', content, reasoning}
  let pending = [];       // attachments of the message being written
  let controller = null;  // AbortController of the running request

  /* ---------------------------------------------------------------- settings */
  function loadSettings() {
    let s = {};
    try { s = JSON.parse(localStorage.getItem('glmv.settings') || '{}'); } catch (e) { s = {}; }
    for (const f of FIELDS) $(f).value = f in s ? s[f] : DEFAULTS[f];
  }
  function saveSettings() {
    const s = {};
    for (const f of FIELDS) s[f] = $(f).value;
    try { localStorage.setItem('glmv.settings', JSON.stringify(s)); } catch (e) { /* private mode */ }
  }
  function authHeaders() {
    const k = $('api_key').value.trim();
    return k ? { Authorization: 'Bearer ' + k } : {};
  }
  function num(id) { const v = $(id).value.trim(); return v === '' ? null : Number(v); }

  /* ------------------------------------------------------------- attachments */
  function readDataUrl(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.readAsDataURL(file);
    });
  }
  function addFiles(files) {
    for (const f of files) {
      const kind = f.type.startsWith('video/') ? 'video' : f.type.startsWith('image/') ? 'image'
        : f.type === 'application/pdf' || /\.pdf$/i.test(f.name) ? 'pdf' : null;
      if (!kind) { setStatus('Not an image, video or PDF: ' + f.name, true); continue; }
      pending.push({ kind, name: f.name, objUrl: URL.createObjectURL(f), dataUrl: readDataUrl(f) });
    }
    drawAttachments();
  }
  // the thumbnail of an attachment: the picture, the video, or a PDF's name on a page
  function preview(a, small) {
    if (a.kind === 'pdf') {
      const d = document.createElement('div');
      d.className = 'doc';
      d.textContent = small ? 'PDF' : '📄 ' + (a.name || 'document.pdf');
      d.title = a.name || 'PDF';
      return d;
    }
    const m = document.createElement(a.kind === 'video' ? 'video' : 'img');
    m.src = a.objUrl;
    if (a.kind === 'video' && !small) m.controls = true;
    if (a.kind === 'image') m.alt = a.name || 'image';
    m.title = a.name || '';
    return m;
  }
  function drawAttachments() {
    attachEl.textContent = '';
    pending.forEach((a, k) => {
      const d = document.createElement('div');
      d.className = 'att';
      const m = preview(a, true);
      const x = document.createElement('button');
      x.type = 'button';
      x.textContent = '×';
      x.title = 'Remove';
      x.onclick = () => { URL.revokeObjectURL(a.objUrl); pending.splice(k, 1); drawAttachments(); };
      d.append(m, x);
      attachEl.append(d);
    });
  }

  /* ------------------------------------------------------------------ render */
  function setStatus(t, err) { statusEl.textContent = t; statusEl.classList.toggle('error', !!err); }
  function scrollDown() {
    if (chat.scrollHeight - chat.scrollTop - chat.clientHeight < 160) chat.scrollTop = chat.scrollHeight;
  }
  function userElement(m) {
    const el = document.createElement('div');
    el.className = 'msg user';
    if (m.media.length) {
      const box = document.createElement('div');
      box.className = 'media';
      for (const a of m.media) box.append(preview(a, false));
      el.append(box);
    }
    const b = document.createElement('div');
    b.className = 'bubble';
    b.textContent = m.text;
    if (m.text) el.append(b);
    return el;
  }
  function assistantElement() {
    const el = document.createElement('div');
    el.className = 'msg assistant';
    el.innerHTML = '<div class="bubble"><details class="think live" open hidden><summary>Thinking…</summary>' +
      '<div class="think-text"></div></details><div class="answer cursor"></div></div><div class="meta"></div>';
    return {
      el, think: el.querySelector('details'), thinkText: el.querySelector('.think-text'),
      summary: el.querySelector('summary'), answer: el.querySelector('.answer'), meta: el.querySelector('.meta'),
    };
  }

  /* --------------------------------------------------------------------- SSE */
  async function* sseEvents(response) {
    const reader = response.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, k);
        buf = buf.slice(k).replace(/^\r?\n\r?\n/, '');
        const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (data) yield data;
      }
    }
  }

  /* -------------------------------------------------------------------- send */
  async function buildMessages() {
    const msgs = [];
    const sys = $('system').value.trim();
    if (sys) msgs.push({ role: 'system', content: sys });
    for (const m of conv) {
      if (m.role === 'assistant') { msgs.push({ role: 'assistant', content: m.content || '' }); continue; }
      if (!m.media.length) { msgs.push({ role: 'user', content: m.text }); continue; }
      const parts = [];
      for (const a of m.media) {
        const url = await a.dataUrl;
        parts.push(a.kind === 'video' ? { type: 'video_url', video_url: { url } }
          : a.kind === 'pdf' ? { type: 'file', file: { filename: a.name, file_data: url } }
          : { type: 'image_url', image_url: { url } });
      }
      if (m.text) parts.push({ type: 'text', text: m.text });
      msgs.push({ role: 'user', content: parts });
    }
    return msgs;
  }

  function requestBody(messages) {
    const body = { model: modelId || undefined, messages, stream: true, stream_options: { include_usage: true } };
    const t = num('temperature'), p = num('top_p'), k = num('top_k'), rp = num('repetition_penalty');
    const mt = num('max_tokens'), tb = num('max_thinking_tokens'), seed = num('seed');
    if (t !== null) body.temperature = t;
    if (p !== null) body.top_p = p;
    if (k !== null) body.top_k = k;
    if (rp !== null) body.repetition_penalty = rp;
    if (mt) body.max_tokens = mt;
    if (tb) body.max_thinking_tokens = tb;
    if (seed !== null) body.seed = seed;
    return body;
  }

  function busy(on) {
    $('send').hidden = on;
    $('stop').hidden = !on;
    promptEl.placeholder = on ? 'Generating… (Stop to interrupt)' : 'Message glmv (Enter to send, Shift+Enter for a new line)';
  }

  async function send() {
    if (controller) return;
    const text = promptEl.value.trim();
    if (!text && !pending.length) return;
    $('empty').hidden = true;
    const um = { role: 'user', text, media: pending };
    pending = [];
    drawAttachments();
    promptEl.value = '';
    autoGrow();
    conv.push(um);
    chat.append(userElement(um));
    const ui = assistantElement();
    chat.append(ui.el);
    chat.scrollTop = chat.scrollHeight;
    const am = { role: 'assistant', content: '', reasoning: '' };
    controller = new AbortController();
    busy(true);
    const t0 = performance.now();
    let tThinkEnd = 0, nTok = 0, usage = null, finish = null, errorText = '', frame = 0;
    const draw = () => {
      frame = 0;
      if (am.reasoning) { ui.think.hidden = false; ui.thinkText.textContent = am.reasoning; }
      ui.answer.innerHTML = GlmvMd.render(am.content);
      scrollDown();
    };
    const schedule = () => { if (!frame) frame = requestAnimationFrame(draw); };
    try {
      const messages = await buildMessages();
      setStatus('Sending…');
      const r = await fetch('/v1/chat/completions', {
        method: 'POST', signal: controller.signal,
        headers: { 'Content-Type': 'application/json', ...authHeaders() },
        body: JSON.stringify(requestBody(messages)),
      });
      if (!r.ok) {
        let msg = r.status + ' ' + r.statusText;
        try { const j = await r.json(); if (j.error) msg = j.error.message + ' (' + r.status + ')'; } catch (e) { /* not JSON */ }
        throw new Error(msg);
      }
      setStatus('Generating…');
      for await (const data of sseEvents(r)) {
        if (data === '[DONE]') break;
        let j;
        try { j = JSON.parse(data); } catch (e) { continue; }
        if (j.error) throw new Error(j.error.message || 'server error');
        if (j.usage) usage = j.usage;
        const c = j.choices && j.choices[0];
        if (!c) continue;
        const d = c.delta || {};
        if (d.reasoning_content) { am.reasoning += d.reasoning_content; nTok++; }
        if (d.content) {
          if (!tThinkEnd) {
            tThinkEnd = performance.now();
            if (am.reasoning) {
              ui.think.classList.remove('live');
              ui.summary.textContent = 'Thought for ' + ((tThinkEnd - t0) / 1000).toFixed(1) + ' s';
              ui.think.open = false;
            }
          }
          am.content += d.content;
          nTok++;
        }
        if (c.finish_reason) finish = c.finish_reason;
        const secs = (performance.now() - t0) / 1000;
        setStatus('Generating… ' + nTok + ' chunks, ' + (nTok / Math.max(secs, 1e-3)).toFixed(1) + ' /s');
        schedule();
      }
    } catch (e) {
      errorText = e.name === 'AbortError' ? '' : (e.message || String(e));
      if (e.name === 'AbortError') finish = 'stopped';
    }
    if (frame) cancelAnimationFrame(frame);
    draw();
    ui.answer.classList.remove('cursor');
    if (!tThinkEnd && am.reasoning) {
      ui.think.classList.remove('live');
      ui.summary.textContent = 'Thinking' + (finish === 'stopped' ? ' (stopped)' : '');
    }
    if (errorText) {
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = '⚠ ' + errorText;
      ui.answer.append(p);
    }
    const secs = (performance.now() - t0) / 1000;
    const bits = [secs.toFixed(1) + ' s'];
    if (usage) bits.unshift(usage.prompt_tokens + ' prompt + ' + usage.completion_tokens + ' generated tokens',
      (usage.completion_tokens / Math.max(secs, 1e-3)).toFixed(1) + ' tokens/s');
    if (finish && finish !== 'stop') bits.push(finish === 'length' ? 'stopped at max tokens' : finish);
    ui.meta.textContent = bits.join(' · ');
    conv.push(am);
    controller = null;
    busy(false);
    setStatus(errorText ? 'Error' : '', !!errorText);
    promptEl.focus();
  }

  /* ------------------------------------------------------------------ events */
  function autoGrow() { promptEl.style.height = 'auto'; promptEl.style.height = Math.min(promptEl.scrollHeight, 200) + 'px'; }
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  promptEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  promptEl.addEventListener('input', autoGrow);
  $('stop').addEventListener('click', () => { if (controller) controller.abort(); });
  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (e) => { addFiles(e.target.files); e.target.value = ''; });
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.items : [])].filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  let dragDepth = 0;
  window.addEventListener('dragenter', (e) => { if ([...e.dataTransfer.types].includes('Files')) { dragDepth++; $('drop').hidden = false; } });
  window.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; $('drop').hidden = true; } });
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    dragDepth = 0;
    $('drop').hidden = true;
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  });
  chat.addEventListener('click', (e) => {
    const b = e.target.closest('button.copy');
    if (!b) return;
    const code = b.parentElement.querySelector('code').textContent;
    const done = () => { b.textContent = 'copied'; setTimeout(() => { b.textContent = 'copy'; }, 1200); };
    if (navigator.clipboard) navigator.clipboard.writeText(code).then(done, () => {});
  });
  $('toggle-settings').addEventListener('click', () => { $('settings').hidden = !$('settings').hidden; });
  $('reset-settings').addEventListener('click', () => { for (const f of FIELDS) $(f).value = DEFAULTS[f]; saveSettings(); });
  for (const f of FIELDS) $(f).addEventListener('change', () => { saveSettings(); if (f === 'api_key') loadModel(); });
  $('new-chat').addEventListener('click', () => {
    if (controller) controller.abort();
    conv = [];
    for (const el of [...chat.querySelectorAll('.msg')]) el.remove();
    $('empty').hidden = false;
    setStatus('');
  });

  async function loadModel() {
    try {
      const r = await fetch('/v1/models', { headers: authHeaders() });
      if (r.status === 401) { $('model-name').textContent = '(API key needed: see Settings)'; return; }
      const j = await r.json();
      modelId = j.data && j.data[0] ? j.data[0].id : '';
      $('model-name').textContent = modelId;
    } catch (e) {
      $('model-name').textContent = '(server unreachable)';
    }
  }

  loadSettings();
  loadModel();
  promptEl.focus();
})();
