/* md.js -- a small markdown renderer and code highlighter for the glmv page.
 * Every character of the model's text is HTML-escaped first; only the markup
 * built here reaches innerHTML, and links keep http(s)/mailto targets only.
 * Blocks: fenced code (also unterminated, while streaming), headings, lists
 * (nested by indent), block quotes, tables, rules, paragraphs. Inline: code,
 * bold, italic, strike, links. Highlighting: comments, strings, numbers,
 * keywords and calls for C-like languages, Python, shell, JSON, and the like.
 */
(function () {
  'use strict';
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

  const KEYWORDS = {
    c: 'auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while bool true false NULL size_t int64_t int32_t uint8_t uint32_t uint64_t include define ifdef ifndef endif',
    cpp: 'class namespace template typename public private protected virtual override new delete this using nullptr auto const constexpr std vector string',
    js: 'break case catch class const continue debugger default delete do else export extends finally for function if import in instanceof let new return super switch this throw try typeof var void while with yield async await of null undefined true false',
    py: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield self print',
    rs: 'as break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while async await dyn Option Some None Result Ok Err Vec String',
    go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false string int error',
    java: 'abstract boolean break byte case catch char class const continue default do double else enum extends final finally float for if implements import instanceof int interface long new package private protected public return short static super switch this throw throws try void while null true false String',
    sh: 'if then else elif fi for while do done case esac function in return exit export local echo cd set unset source sudo apt make git',
    sql: 'select from where and or not insert into values update set delete create table drop alter join left right inner outer on group by order limit as null',
  };
  const ALIAS = { h: 'c', cc: 'cpp', 'c++': 'cpp', hpp: 'cpp', javascript: 'js', ts: 'js', typescript: 'js',
    jsx: 'js', tsx: 'js', json: 'js', python: 'py', py3: 'py', rust: 'rs', golang: 'go', kotlin: 'java',
    bash: 'sh', shell: 'sh', zsh: 'sh', console: 'sh', cuda: 'cpp', cu: 'cpp' };
  const kwCache = {};
  function keywordSet(lang) {
    const l = ALIAS[lang] || lang;
    if (kwCache[l]) return kwCache[l];
    let words = KEYWORDS[l] || (KEYWORDS.c + ' ' + KEYWORDS.js + ' ' + KEYWORDS.py);
    if (l === 'cpp') words += ' ' + KEYWORDS.c;
    return (kwCache[l] = new Set(words.split(/\s+/)));
  }

  // One pass over the code: the first matching rule at each position wins.
  function highlight(code, lang) {
    const l = ALIAS[lang] || lang || '';
    const hashComment = ['py', 'sh', 'rb', 'yaml', 'yml', 'toml', 'r', 'perl'].includes(l);
    const kws = keywordSet(l);
    const rules = [
      ['com', hashComment ? /#[^\n]*/y : /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
      ['str', /"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`(?:[^`\\]|\\.)*`?/y],
      ['num', /\b(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)[uUlLfF]*\b/y],
      ['word', /[A-Za-z_$][\w$]*/y],
    ];
    if (l === 'sql') rules[0][1] = /--[^\n]*/y;
    let out = '', i = 0, plain = '';
    const flush = () => { if (plain) { out += esc(plain); plain = ''; } };
    while (i < code.length) {
      let hit = null;
      for (const [kind, re] of rules) {
        re.lastIndex = i;
        const m = re.exec(code);
        if (m && m[0].length) { hit = [kind, m[0]]; break; }
      }
      if (!hit) { plain += code[i++]; continue; }
      const [kind, text] = hit;
      i += text.length;
      if (kind === 'word') {
        const lw = l === 'sql' ? text.toLowerCase() : text;
        if (kws.has(lw)) { flush(); out += '<span class="tok-kw">' + esc(text) + '</span>'; }
        else if (code[i] === '(') { flush(); out += '<span class="tok-fn">' + esc(text) + '</span>'; }
        else plain += text;
      } else {
        flush();
        out += '<span class="tok-' + kind + '">' + esc(text) + '</span>';
      }
    }
    flush();
    return out;
  }

  function safeUrl(u) {
    const t = u.trim();
    return /^(https?:|mailto:|#)/i.test(t) ? t : null;
  }

  // Inline markup on raw text: code spans are cut out first so that nothing
  // inside them is interpreted; the rest is escaped, then marked up.
  function inline(s) {
    const parts = s.split(/(`+[^`]*?`+)/);
    return parts.map((p, k) => {
      if (k % 2 === 1 && /^`+[\s\S]*`+$/.test(p)) {
        const inner = p.replace(/^`+|`+$/g, '');
        return '<code>' + esc(inner) + '</code>';
      }
      let h = esc(p);
      h = h.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (m, text, url) => {
        const u = safeUrl(url.replace(/&amp;/g, '&'));
        return u ? '<a href="' + esc(u) + '" target="_blank" rel="noopener noreferrer">' + text + '</a>' : text;
      });
      h = h.replace(/\*\*([^*\n]+?)\*\*|__([^_\n]+?)__/g, (m, a, b) => '<strong>' + (a || b) + '</strong>');
      h = h.replace(/(^|[^*\w])\*([^*\s][^*\n]*?)\*(?!\w)/g, '$1<em>$2</em>');
      h = h.replace(/(^|[^_\w])_([^_\s][^_\n]*?)_(?!\w)/g, '$1<em>$2</em>');
      h = h.replace(/~~([^~\n]+?)~~/g, '<del>$1</del>');
      h = h.replace(/&lt;\|(?:begin|end)_of_box\|&gt;/g, '');
      return h;
    }).join('');
  }

  function codeBlock(code, lang) {
    const l = (lang || '').toLowerCase();
    return '<pre>' + (l ? '<span class="lang">' + esc(l) + '</span>' : '') +
      '<button class="copy" type="button">copy</button><code>' + highlight(code, l) + '</code></pre>';
  }

  function isTableSep(line) { return /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line); }
  function cells(line) {
    let t = line.trim();
    if (t.startsWith('|')) t = t.slice(1);
    if (t.endsWith('|')) t = t.slice(0, -1);
    return t.split('|').map((c) => c.trim());
  }

  function renderList(lines, start) {
    // lines[start] is a list item; consume the list at its indent.
    const first = lines[start].match(/^(\s*)([-*+]|\d+[.)])\s+/);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    let html = ordered ? '<ol>' : '<ul>';
    let i = start;
    while (i < lines.length) {
      const m = lines[i].match(/^(\s*)([-*+]|\d+[.)])\s+(.*)$/);
      if (!m || m[1].length < indent) break;
      if (m[1].length > indent) { // a nested list belongs to the previous item
        const sub = renderList(lines, i);
        html = html.replace(/<\/li>$/, sub.html + '</li>');
        i = sub.next;
        continue;
      }
      let text = m[3];
      i++;
      while (i < lines.length && lines[i].trim() && !/^\s*([-*+]|\d+[.)])\s+/.test(lines[i]) &&
             /^\s+/.test(lines[i])) { text += ' ' + lines[i].trim(); i++; }
      const task = text.match(/^\[([ xX])\]\s+(.*)$/);
      html += '<li>' + (task ? (task[1] === ' ' ? '☐ ' : '☑ ') + inline(task[2]) : inline(text)) + '</li>';
      if (i < lines.length && !lines[i].trim() && i + 1 < lines.length &&
          /^\s*([-*+]|\d+[.)])\s+/.test(lines[i + 1])) i++; // loose list
    }
    return { html: html + (ordered ? '</ol>' : '</ul>'), next: i };
  }

  function render(src) {
    const lines = String(src).replace(/\r\n?/g, '\n').split('\n');
    let html = '', i = 0, para = [];
    const endPara = () => { if (para.length) { html += '<p>' + para.map(inline).join('<br>') + '</p>'; para = []; } };
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(/^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/);
      if (fence) {
        endPara();
        const close = new RegExp('^\\s*' + fence[1][0] + '{' + fence[1].length + ',}\\s*$');
        const body = [];
        i++;
        while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
        i++; // the closing fence (or past the end while streaming)
        html += codeBlock(body.join('\n'), fence[2]);
        continue;
      }
      const h = line.match(/^(#{1,6})\s+(.*?)\s*#*\s*$/);
      if (h) { endPara(); html += '<h' + h[1].length + '>' + inline(h[2]) + '</h' + h[1].length + '>'; i++; continue; }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { endPara(); html += '<hr>'; i++; continue; }
      if (/^\s*>/.test(line)) {
        endPara();
        const q = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*>\s?/, ''));
        html += '<blockquote>' + render(q.join('\n')) + '</blockquote>';
        continue;
      }
      if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
        endPara();
        const l = renderList(lines, i);
        html += l.html;
        i = l.next;
        continue;
      }
      if (line.includes('|') && i + 1 < lines.length && isTableSep(lines[i + 1])) {
        endPara();
        const head = cells(line);
        const aligns = cells(lines[i + 1]).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'right') : ''));
        const td = (tag, c, k) => '<' + tag + (aligns[k] ? ' style="text-align:' + aligns[k] + '"' : '') + '>' + inline(c) + '</' + tag + '>';
        html += '<table><thead><tr>' + head.map((c, k) => td('th', c, k)).join('') + '</tr></thead><tbody>';
        i += 2;
        while (i < lines.length && lines[i].includes('|') && lines[i].trim()) {
          html += '<tr>' + cells(lines[i]).map((c, k) => td('td', c, k)).join('') + '</tr>';
          i++;
        }
        html += '</tbody></table>';
        continue;
      }
      if (!line.trim()) { endPara(); i++; continue; }
      para.push(line);
      i++;
    }
    endPara();
    return html;
  }

  window.GlmvMd = { render, highlight, escape: esc };
})();
