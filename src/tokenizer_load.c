/* tokenizer_load.c -- reads a Hugging Face tokenizer.json (BPE model,
 * byte-level) into the tables tokenizer.c encodes with: token bytes by id, a
 * hash of bytes -> id, a hash of merge pairs -> (rank, merged id), the added
 * tokens and the pre-tokenizer's regex stages.
 *
 * Supported pre-tokenizers: Split (Isolated, Regex or String pattern),
 * ByteLevel (use_regex true = the GPT-2 regex, add_prefix_space), and a
 * Sequence of these. Merges may be "a b" strings or ["a", "b"] pairs.
 * ref: tokenizers (Rust) models/bpe/model.rs, pre_tokenizers/byte_level.rs
 */
#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_model.h"
#include "tokenizer_impl.h"

/* GPT-2 regex of ByteLevel(use_regex=true), as tokenizers spells it */
/* ids at or above this are refused (tables are sized by the largest id) */
#define TOK_MAX_ID (1 << 22)

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------------ */
/* The byte-level alphabet (GPT-2 bytes_to_unicode)                         */
/* ------------------------------------------------------------------------ */

static int16_t char_to_byte[324]; /* code point -> byte, -1 if not in the alphabet */

static void init_byte_level_once(void) {
    for (int i = 0; i < 324; i++) char_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        char_to_byte[printable ? b : 256 + n++] = (int16_t)b;
    }
}

static void init_byte_level(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_byte_level_once);
}

/* Byte-level string s (UTF-8) -> raw bytes in out (at most strlen(s) bytes).
 * A string with a character outside the alphabet is kept as its own UTF-8
 * bytes, as the ByteLevel decoder does. Returns the length. */
static size_t byte_level_decode(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i];
        unsigned cp;
        if (c < 0x80) cp = c, i += 1;
        else if ((c & 0xE0) == 0xC0 && i + 1 < n)
            cp = (c & 0x1F) << 6 | ((unsigned char)s[i + 1] & 0x3F), i += 2;
        else
            goto raw;
        if (cp >= 324 || char_to_byte[cp] < 0) goto raw;
        out[o++] = (char)char_to_byte[cp];
    }
    return o;
raw:
    memcpy(out, s, n);
    return n;
}

/* A token for an error message: at most 40 bytes, control bytes as \xNN,
 * so that the message stays one line. */
static const char *esc(const char *s, size_t n, char out[200]) {
    size_t o = 0;
    for (size_t i = 0; i < n && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */
/* ------------------------------------------------------------------------ */

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t p = 1024;
    while (p < n) p <<= 1;
    return p;
}

static int vmap_insert(glmv_tokenizer *t, int32_t id) {
    const char *s = t->bytes + t->off[id];
    size_t n = t->off[id + 1] - t->off[id];
    if (tok_vocab_find(t, s, n) >= 0) return 1; /* the same bytes twice: the first id stays */
    uint32_t i = (uint32_t)tok_hash_bytes(s, n) & t->vmask;
    while (t->vmap[i].id >= 0) i = (i + 1) & t->vmask;
    tok_vslot *v = &t->vmap[i];
    memset(v, 0, sizeof *v);
    v->len = (uint8_t)(n < 255 ? n : 255);
    memcpy(v->head, s, n < TOK_INLINE ? n : TOK_INLINE);
    v->id = id;
    return 0;
}

static void mmap_insert(glmv_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t k = tok_pair_key(a, b);
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & t->mmask;
    while (t->mmap[i].key && t->mmap[i].key != k) i = (i + 1) & t->mmask;
    /* a repeated pair: the later rank wins, as in tokenizers' HashMap collect */
    t->mmap[i] = (tok_merge){k, rank, new_id};
}

void glmv_tokenizer_free(glmv_tokenizer *t) {
    if (!t) return;
    free(t->bytes);
    free(t->off);
    free(t->flags);
    free(t->vmap);
    free(t->mmap);
    for (int k = 0; k < t->n_added; k++) free(t->added[k].text);
    free(t->added);
    for (int k = 0; k < t->n_stages; k++) pcre2_code_free(t->stages[k].re);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Pre-tokenizer                                                            */
/* ------------------------------------------------------------------------ */

/* Unicode White_Space, what Oniguruma's \s matches in tokenizers. PCRE2's
 * \s (UCP) also takes U+180E, so \s and \S are spelled out. */
#define WS_CLASS "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}" \
                 "\\x{202f}\\x{205f}\\x{3000}"

/* Copy of pattern with \s -> [WS], \S -> [^WS], and \s inside a class -> WS;
 * other escapes are kept as they are. malloc'd. */
static char *rewrite_spaces(const char *pat) {
    size_t n = strlen(pat), cap = n * (sizeof WS_CLASS + 4) + 1, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[++i];
            if (d == 's' && in_class) o += (size_t)sprintf(out + o, "%s", WS_CLASS);
            else if (d == 's') o += (size_t)sprintf(out + o, "[%s]", WS_CLASS);
            else if (d == 'S' && !in_class) o += (size_t)sprintf(out + o, "[^%s]", WS_CLASS);
            else out[o++] = c, out[o++] = d;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            out[o++] = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pat[i + 1] == '^') out[o++] = pat[++i];
            if (i + 1 < n && pat[i + 1] == ']') out[o++] = pat[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        out[o++] = c;
    }
    out[o] = 0;
    return out;
}

static int add_stage(glmv_tokenizer *t, const char *pattern, int literal, int prefix_space,
                     const char *path, char *err) {
    if (t->n_stages == TOK_MAX_STAGES)
        return glmv_errf(err, "%s: more than %d pre-tokenizer stages", path, TOK_MAX_STAGES);
    tok_stage *st = &t->stages[t->n_stages];
    st->prefix_space = prefix_space;
    st->re = NULL;
    if (pattern) {
        int ec;
        PCRE2_SIZE eo;
        uint32_t opt = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
        char *rw = literal ? NULL : rewrite_spaces(pattern);
        if (!literal && !rw) return glmv_errf(err, "%s: out of memory", path);
        st->re = pcre2_compile((PCRE2_SPTR)(rw ? rw : pattern), PCRE2_ZERO_TERMINATED, opt, &ec,
                               &eo, NULL);
        free(rw);
        if (!st->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return glmv_errf(err, "%s: pre-tokenizer regex at offset %zu: %s", path, (size_t)eo,
                             (const char *)msg);
        }
        pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    }
    t->n_stages++;
    return 0;
}

static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int parse_pretok(glmv_tokenizer *t, const cJSON *p, const char *path, char *err) {
    if (!p || cJSON_IsNull(p)) return 0;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
    const char *type = cJSON_IsString(ty) ? ty->valuestring : "";
    if (!strcmp(type, "Sequence")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        cJSON_ArrayForEach(e, l) if (parse_pretok(t, e, path, err)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        int prefix = json_bool(p, "add_prefix_space", 1);
        int use_regex = json_bool(p, "use_regex", 1);
        if (!use_regex && !prefix) return 0; /* only the byte mapping, which BPE does on bytes */
        return add_stage(t, use_regex ? GPT2_REGEX : NULL, 0, prefix, path, err);
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 ||
            json_bool(p, "invert", 0))
            return glmv_errf(err, "%s: Split pre-tokenizer: only behavior Isolated without invert "
                                  "is supported", path);
        if (cJSON_IsString(rx)) return add_stage(t, rx->valuestring, 0, 0, path, err);
        if (cJSON_IsString(str)) return add_stage(t, str->valuestring, 1, 0, path, err);
        return glmv_errf(err, "%s: Split pre-tokenizer without a pattern", path);
    }
    char e1[200];
    return glmv_errf(err, "%s: unsupported pre-tokenizer type '%s'", path, esc(type, strlen(type), e1));
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_added(const void *a, const void *b) {
    const tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ------------------------------------------------------------------------ */
/* A small JSON scanner for the two big values (model.vocab, model.merges): */
/* cJSON would build ~800k nodes for them; the rest goes through cJSON.     */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} jscan;

static void js_ws(jscan *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int js_skip_string(jscan *j) {
    if (j->p >= j->end || *j->p != '"') return -1;
    const char *p = j->p + 1;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(j->end - p));
        if (!q) return -1;
        /* escaped when preceded by an odd number of backslashes */
        const char *b = q;
        while (b > p && b[-1] == '\\') b--;
        p = q + 1;
        if (((q - b) & 1) == 0) {
            j->p = p;
            return 0;
        }
    }
}

static int js_skip_value(jscan *j, int depth) {
    js_ws(j);
    if (j->p >= j->end || depth > 64) return -1;
    char c = *j->p;
    if (c == '"') return js_skip_string(j);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                js_ws(j);
                if (js_skip_string(j)) return -1;
                js_ws(j);
                if (j->p >= j->end || *j->p++ != ':') return -1;
            }
            if (js_skip_value(j, depth + 1)) return -1;
            js_ws(j);
            if (j->p >= j->end) return -1;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ == close) return 0;
            return -1;
        }
    }
    /* number, true, false, null */
    const char *s = j->p;
    while (j->p < j->end && !strchr(",}] \n\r\t", *j->p)) j->p++;
    return j->p > s ? 0 : -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *p, const char *end, uint32_t *v) {
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Unescape the string at j->p into out (room for its escaped length). */
static int js_string(jscan *j, char *out, size_t *len) {
    if (j->p >= j->end || *j->p != '"') return -1;
    size_t o = 0;
    for (j->p++; j->p < j->end;) {
        char c = *j->p++;
        if (c == '"') {
            *len = o;
            return 0;
        }
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (j->p >= j->end) return -1;
        c = *j->p++;
        switch (c) {
        case 'n': out[o++] = '\n'; break;
        case 't': out[o++] = '\t'; break;
        case 'r': out[o++] = '\r'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(j->p, j->end, &cp)) return -1;
            j->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u' && !hex4(j->p + 2, j->end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                j->p += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD; /* a lone surrogate */
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default: out[o++] = c; /* \" \\ \/ */
        }
    }
    return -1;
}

/* Find the value of `key` in the object at j->p; on success j->p is at the
 * value. Leaves j->p past the object when the key is absent (returns 1). */
static int js_find_key(jscan *j, const char *key) {
    js_ws(j);
    if (j->p >= j->end || *j->p != '{') return -1;
    j->p++;
    size_t kl = strlen(key);
    for (;;) {
        js_ws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 1;
        }
        const char *ks = j->p;
        if (js_skip_string(j)) return -1;
        int match = (size_t)(j->p - ks) == kl + 2 && !memcmp(ks + 1, key, kl);
        js_ws(j);
        if (j->p >= j->end || *j->p++ != ':') return -1;
        js_ws(j);
        if (match) return 0;
        if (js_skip_value(j, 0)) return -1;
        js_ws(j);
        if (j->p < j->end && *j->p == ',') j->p++;
    }
}

typedef struct {
    int32_t id;
    uint32_t off, len; /* raw bytes in the scratch arena */
} vocab_entry;

/* Parse model.vocab: {"token": id, ...} into entries with raw bytes. */
static int scan_vocab(const char *s, const char *e, vocab_entry **out, int64_t *n_out,
                      char **arena_out, size_t *longest) {
    jscan j = {s, e};
    size_t cap = 1 << 16;
    int64_t n = 0;
    vocab_entry *v = malloc(cap * sizeof *v);
    char *arena = malloc((size_t)(e - s) + 1), *tmp = malloc((size_t)(e - s) + 1);
    size_t ao = 0;
    *longest = 0;
    if (!v || !arena || !tmp) goto fail;
    js_ws(&j);
    if (j.p >= j.end || *j.p++ != '{') goto fail;
    for (;;) {
        js_ws(&j);
        if (j.p < j.end && *j.p == '}') break;
        size_t l;
        if (js_string(&j, tmp, &l)) goto fail;
        js_ws(&j);
        if (j.p >= j.end || *j.p++ != ':') goto fail;
        js_ws(&j);
        int64_t id = 0;
        const char *d0 = j.p;
        while (j.p < j.end && *j.p >= '0' && *j.p <= '9' && id < TOK_MAX_ID) id = id * 10 + (*j.p++ - '0');
        if (j.p == d0 || id >= TOK_MAX_ID) goto fail;
        if ((size_t)n == cap) {
            vocab_entry *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) goto fail;
            v = nv;
        }
        size_t rl = byte_level_decode(tmp, l, arena + ao);
        v[n++] = (vocab_entry){(int32_t)id, (uint32_t)ao, (uint32_t)rl};
        ao += rl;
        *longest = GLMV_MAX(*longest, l);
        js_ws(&j);
        if (j.p < j.end && *j.p == ',') j.p++;
    }
    free(tmp);
    *out = v;
    *n_out = n;
    *arena_out = arena;
    return 0;
fail:
    free(v);
    free(arena);
    free(tmp);
    return -1;
}

/* Parse model.merges ("a b" or ["a", "b"]) and fill the merge table. */
static int scan_merges(glmv_tokenizer *t, const char *s, const char *e, size_t longest,
                       const char *path, char *err) {
    jscan j = {s, e};
    /* raw holds a batch of decoded pairs (each at most `longest` bytes) */
    char *tmp = malloc((size_t)(e - s) + 1), *raw = malloc(64 * (longest + 16));
    int rc = -1;
    int64_t count = 0;
    if (!tmp || !raw) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    /* size the table from the quotes: 2 per "a b" merge, 4 per pair
     * (escaped quotes only make it larger) */
    js_ws(&j);
    if (j.p >= j.end || *j.p != '[') goto bad;
    for (const char *q = j.p; (q = memchr(q, '"', (size_t)(e - q))) != NULL; q++) count++;
    {
        jscan k = {j.p + 1, e};
        js_ws(&k);
        count = count / (k.p < e && *k.p == '[' ? 4 : 2) + 1;
    }
    t->mmask = pow2_at_least((uint64_t)count * 5 / 4 + 1) - 1;
    t->mmap = calloc((size_t)t->mmask + 1, sizeof *t->mmap);
    if (!t->mmap) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    j.p++;
    /* Merges go in batches: parse and hash a batch, prefetch its hash slots,
     * then look up; the table misses of a batch overlap instead of queueing. */
    enum { BATCH = 64 };
    struct {
        uint32_t ra, rb; /* raw lengths; bytes at raw + off */
        size_t off;
        uint64_t ha, hb, hab;
    } q[BATCH];
    int32_t rank = 0;
    int end_seen = 0;
    while (!end_seen) {
        int nq = 0;
        size_t ro = 0;
        while (nq < BATCH) {
            js_ws(&j);
            if (j.p < j.end && *j.p == ']') {
                end_seen = 1;
                break;
            }
            const char *a, *b;
            size_t la, lb;
            int32_t r = rank + nq;
            if (j.p < j.end && *j.p == '"') {
                size_t l;
                if (js_string(&j, tmp, &l)) goto bad;
                tmp[l] = 0;
                const char *sp = memchr(tmp, ' ', l);
                if (!sp || memchr(sp + 1, ' ', l - (size_t)(sp + 1 - tmp))) {
                    char e1[200];
                    glmv_errf(err, "%s: merge %d '%s' is not two tokens", path, r, esc(tmp, l, e1));
                    goto done;
                }
                a = tmp, la = (size_t)(sp - tmp), b = sp + 1, lb = l - la - 1;
            } else if (j.p < j.end && *j.p == '[') {
                j.p++;
                js_ws(&j);
                if (js_string(&j, tmp, &la)) goto bad;
                js_ws(&j);
                if (j.p >= j.end || *j.p++ != ',') goto bad;
                js_ws(&j);
                if (js_string(&j, tmp + la, &lb)) goto bad;
                js_ws(&j);
                if (j.p >= j.end || *j.p++ != ']') {
                    glmv_errf(err, "%s: merge %d is not a pair", path, r);
                    goto done;
                }
                a = tmp, b = tmp + la;
            } else {
                glmv_errf(err, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, r);
                goto done;
            }
            if (la + lb > longest) {
                glmv_errf(err, "%s: merge %d makes a token longer than any in the vocab", path, r);
                goto done;
            }
            char *dst = raw + ro;
            size_t ra = byte_level_decode(a, la, dst);
            size_t rb = byte_level_decode(b, lb, dst + ra);
            q[nq].ra = (uint32_t)ra, q[nq].rb = (uint32_t)rb, q[nq].off = ro;
            q[nq].ha = tok_hash_bytes(dst, ra);
            q[nq].hb = tok_hash_bytes(dst + ra, rb);
            q[nq].hab = tok_hash_bytes(dst, ra + rb);
            __builtin_prefetch(&t->vmap[q[nq].ha & t->vmask]);
            __builtin_prefetch(&t->vmap[q[nq].hb & t->vmask]);
            __builtin_prefetch(&t->vmap[q[nq].hab & t->vmask]);
            ro += ra + rb;
            nq++;
            js_ws(&j);
            if (j.p < j.end && *j.p == ',') j.p++;
        }
        int32_t ids[BATCH][3];
        for (int k = 0; k < nq; k++) {
            const char *d = raw + q[k].off;
            ids[k][0] = tok_vocab_find_h(t, d, q[k].ra, q[k].ha);
            ids[k][1] = tok_vocab_find_h(t, d + q[k].ra, q[k].rb, q[k].hb);
            ids[k][2] = tok_vocab_find_h(t, d, q[k].ra + q[k].rb, q[k].hab);
            if (ids[k][0] < 0 || ids[k][1] < 0 || ids[k][2] < 0) {
                char e1[200], e2[200];
                glmv_errf(err, "%s: merge %d (%s + %s): a token is missing from the vocab", path,
                          rank + k, esc(d, q[k].ra, e1), esc(d + q[k].ra, q[k].rb, e2));
                goto done;
            }
            uint64_t key = tok_pair_key(ids[k][0], ids[k][1]);
            __builtin_prefetch(&t->mmap[(uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->mmask]);
        }
        for (int k = 0; k < nq; k++) mmap_insert(t, ids[k][0], ids[k][1], rank + k, ids[k][2]);
        rank += nq;
    }
    t->n_merges = rank;
    rc = 0;
    goto done;
bad:
    glmv_errf(err, "%s: model.merges is not a valid JSON array", path);
done:
    free(tmp);
    free(raw);
    return rc;
}

static int load_json(glmv_tokenizer *t, const char *path, char *err) {
    size_t flen;
    double t0 = glmv_now_ms();
    char *text = glmv_read_file(path, &flen, err);
    if (!text) return -1;
    double t_read = glmv_now_ms();
    int rc = -1;
    cJSON *root = NULL;
    char *rest = NULL, *arena = NULL;
    vocab_entry *ve = NULL;
    int64_t nv = 0;
    size_t longest = 0;
    const cJSON *e;

    /* locate model.vocab and model.merges; cJSON gets the rest */
    jscan j = {text, text + flen};
    const char *vs = NULL, *vend = NULL, *ms = NULL, *mend = NULL;
    if (js_find_key(&j, "model") == 0) {
        const char *model_at = j.p;
        if (js_find_key(&j, "vocab") == 0) {
            vs = j.p;
            if (js_skip_value(&j, 0) == 0) vend = j.p;
        }
        j.p = model_at;
        if (js_find_key(&j, "merges") == 0) {
            ms = j.p;
            if (js_skip_value(&j, 0) == 0) mend = j.p;
        }
    }
    if (!vs || !vend || !ms || !mend) {
        glmv_errf(err, "%s: model.vocab or model.merges missing (or not valid JSON)", path);
        goto done;
    }
    rest = malloc(flen + 8);
    if (!rest) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    {
        /* the two spans, in file order, become {} and [] */
        const char *s1 = vs, *e1 = vend, *s2 = ms, *e2 = mend, *r1 = "{}", *r2 = "[]";
        if (ms < vs) s1 = ms, e1 = mend, s2 = vs, e2 = vend, r1 = "[]", r2 = "{}";
        size_t o = 0;
        memcpy(rest + o, text, (size_t)(s1 - text)), o += (size_t)(s1 - text);
        memcpy(rest + o, r1, 2), o += 2;
        memcpy(rest + o, e1, (size_t)(s2 - e1)), o += (size_t)(s2 - e1);
        memcpy(rest + o, r2, 2), o += 2;
        memcpy(rest + o, e2, (size_t)(text + flen - e2)), o += (size_t)(text + flen - e2);
        root = cJSON_ParseWithLength(rest, o);
    }
    if (!root) {
        glmv_errf(err, "%s: not valid JSON", path);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (cJSON_IsString(mtype) && strcmp(mtype->valuestring, "BPE") != 0) {
        char e1[200];
        glmv_errf(err, "%s: model type '%s' is not supported (BPE only)", path,
                  esc(mtype->valuestring, strlen(mtype->valuestring), e1));
        goto done;
    }
    if (norm && !cJSON_IsNull(norm)) {
        glmv_errf(err, "%s: normalizers are not supported", path);
        goto done;
    }
    const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affix[k]);
        if (cJSON_IsString(a) && a->valuestring[0]) {
            glmv_errf(err, "%s: model.%s is not supported", path, affix[k]);
            goto done;
        }
    }
    t->ignore_merges = json_bool(model, "ignore_merges", 0);
    init_byte_level();
    double t_json = glmv_now_ms();
    if (scan_vocab(vs, vend, &ve, &nv, &arena, &longest)) {
        glmv_errf(err, "%s: model.vocab is not an object of token: id (ids below %d)", path, TOK_MAX_ID);
        goto done;
    }

    /* ids, then bytes in id order; the added tokens' text wins over the
     * vocab's for the same id, as in tokenizers' id_to_token */
    int64_t max_id = -1;
    size_t total = 0;
    for (int64_t i = 0; i < nv; i++) max_id = GLMV_MAX(max_id, ve[i].id), total += ve[i].len;
    int n_added = cJSON_GetArraySize(added);
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= TOK_MAX_ID ||
            !cJSON_IsString(c) || !c->valuestring[0]) {
            glmv_errf(err, "%s: an added token lacks an id or content", path);
            goto done;
        }
        max_id = GLMV_MAX(max_id, (int64_t)id->valuedouble);
        total += strlen(c->valuestring);
    }
    if (max_id < 0) {
        glmv_errf(err, "%s: empty vocabulary", path);
        goto done;
    }
    t->n_ids = (int32_t)(max_id + 1);
    t->off = calloc((size_t)t->n_ids + 1, sizeof *t->off);
    t->flags = calloc((size_t)t->n_ids, 1);
    t->bytes = malloc(total + 1);
    const char **src = calloc((size_t)t->n_ids, sizeof *src);
    uint32_t *slen = calloc((size_t)t->n_ids, sizeof *slen);
    if (!t->off || !t->flags || !t->bytes || !src || !slen || total > UINT32_MAX) {
        free(src);
        free(slen);
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    for (int64_t i = 0; i < nv; i++) {
        src[ve[i].id] = arena + ve[i].off;
        slen[ve[i].id] = ve[i].len;
        t->flags[ve[i].id] |= TOK_EXISTS | TOK_IN_VOCAB;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        t->flags[id] |= TOK_EXISTS | TOK_ADDED;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"))) t->flags[id] |= TOK_SPECIAL;
        src[id] = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        slen[id] = (uint32_t)strlen(src[id]);
    }
    uint32_t o = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->off[id] = o;
        if (src[id]) memcpy(t->bytes + o, src[id], slen[id]), o += slen[id];
    }
    t->off[t->n_ids] = o;
    free(src);
    free(slen);

    /* bytes -> id for the model vocab (an added token's own text is what its
     * id decodes to; it is looked up under the vocab's text only when equal) */
    t->vmask = pow2_at_least((uint64_t)nv * 2) - 1;
    t->vmap = malloc(((size_t)t->vmask + 1) * sizeof *t->vmap);
    if (!t->vmap) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i <= t->vmask; i++) t->vmap[i].id = -1;
    for (int64_t i = 0; i < nv; i++) {
        int32_t id = ve[i].id;
        if (!(t->flags[id] & TOK_ADDED) ||
            (ve[i].len == t->off[id + 1] - t->off[id] &&
             !memcmp(arena + ve[i].off, t->bytes + t->off[id], ve[i].len)))
            vmap_insert(t, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
    }
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        char *u = malloc(strlen(unk->valuestring) + 1);
        if (u) {
            size_t l = byte_level_decode(unk->valuestring, strlen(unk->valuestring), u);
            t->unk_id = tok_vocab_find(t, u, l);
            free(u);
        }
    }
    double t_vocab = glmv_now_ms();
    if (scan_merges(t, ms, mend, longest, path, err)) goto done;
    double t_merges = glmv_now_ms();

    /* added tokens, longest first for leftmost-longest matching */
    t->added = calloc((size_t)(n_added ? n_added : 1), sizeof *t->added);
    if (!t->added) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    cJSON_ArrayForEach(e, added) {
        tok_added *a = &t->added[t->n_added];
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        a->len = strlen(c);
        a->text = malloc(a->len + 1);
        if (!a->text) {
            glmv_errf(err, "%s: out of memory", path);
            goto done;
        }
        memcpy(a->text, c, a->len + 1);
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        a->special = (uint8_t)cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        a->lstrip = (uint8_t)json_bool(e, "lstrip", 0);
        a->rstrip = (uint8_t)json_bool(e, "rstrip", 0);
        if (json_bool(e, "single_word", 0))
        {
            char e1[200];
            glmv_log(0, "warning: %s: added token '%s' has single_word, which glmv ignores", path,
                     esc(c, strlen(c), e1));
        }
        t->n_added++;
        /* tokenizers splits on normalized=false tokens first, then on the
         * others in the normalized pieces (no normalizer here: same text) */
        a->normalized = (uint8_t)json_bool(e, "normalized", !a->special);
        if (a->normalized) t->n_norm++;
        else t->n_raw++;
        t->added_first[(unsigned char)c[0]] |= a->normalized ? 2 : 1;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    if (parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, err)) goto done;
    glmv_log(2, "tokenizer load: read %.1f ms, locate + cJSON %.1f ms, vocab %.1f ms, merges %.1f ms, "
                "regex %.1f ms", t_read - t0, t_json - t_read, t_vocab - t_json, t_merges - t_vocab,
             glmv_now_ms() - t_merges);
    rc = 0;
done:
    free(text);
    free(rest);
    free(arena);
    free(ve);
    cJSON_Delete(root);
    return rc;
}

int glmv_tokenizer_load(glmv_tokenizer **out, const char *dir, char *err) {
    *out = NULL;
    char text[4096], mm[4096];
    int gguf = glmv_gguf_locate(dir, NULL, text, mm, sizeof text, err);
    if (gguf) return gguf < 0 ? -1 : glmv_gguf_tokenizer_load(out, text, err);
    double t0 = glmv_now_ms();
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path)
        return glmv_errf(err, "tokenizer: path too long: %s", dir);
    glmv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return glmv_errf(err, "%s: out of memory", path);
    if (load_json(t, path, err) != 0) {
        glmv_tokenizer_free(t);
        return -1;
    }
    t->load_ms = glmv_now_ms() - t0;
    glmv_log(1, "tokenizer: %d ids, %lld merges, %d added, loaded in %.1f ms\n", t->n_ids,
             (long long)t->n_merges, t->n_added, t->load_ms);
    *out = t;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* From lists (a GGUF file)                                                 */
/* ------------------------------------------------------------------------ */

/* GLM-4's pre-tokenizer (tokenizer.json: Split Isolated on this regex, then
 * ByteLevel without regex or prefix space), which llama.cpp calls "glm4" */
static const char GLM4_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int build_lists(glmv_tokenizer *t, const glmv_tokenizer_spec *sp, const char *name, char *err) {
    char e1[200], e2[200];
    if (!sp->pre || strcmp(sp->pre, "glm4") != 0)
        return glmv_errf(err, "%s: pre-tokenizer '%s' is not known to glmv (only GLM-4's, \"glm4\")",
                         name, sp->pre ? esc(sp->pre, strlen(sp->pre), e1) : "(none)");
    if (sp->n_tokens <= 0 || sp->n_tokens >= TOK_MAX_ID)
        return glmv_errf(err, "%s: %d tokens (1 to %d)", name, sp->n_tokens, TOK_MAX_ID - 1);
    init_byte_level();
    t->n_ids = sp->n_tokens;
    size_t total = 0, n_added = 0;
    int64_t nv = 0;
    for (int32_t i = 0; i < sp->n_tokens; i++) {
        int ty = sp->types ? sp->types[i] : TT_NORMAL;
        if (ty < TT_NORMAL || ty > TT_BYTE)
            return glmv_errf(err, "%s: token %d has type %d (1 to 6)", name, i, ty);
        if (ty == TT_UNUSED) continue;
        if (sp->token_len[i] == 0 || sp->token_len[i] > (1 << 16))
            return glmv_errf(err, "%s: token %d is empty or longer than 64 KiB", name, i);
        total += sp->token_len[i];
        if (ty == TT_CONTROL || ty == TT_USER) n_added++;
        else nv++;
    }
    if (total > UINT32_MAX) return glmv_errf(err, "%s: the tokens hold more than 4 GiB", name);
    size_t n_ids = (size_t)(uint32_t)t->n_ids;
    t->off = calloc(n_ids + 1, sizeof *t->off);
    t->flags = calloc(n_ids, 1);
    t->bytes = malloc(total + 1);
    t->added = calloc(n_added ? n_added : 1, sizeof *t->added);
    t->vmask = pow2_at_least((uint64_t)nv * 2) - 1;
    t->vmap = malloc(((size_t)t->vmask + 1) * sizeof *t->vmap);
    if (!t->off || !t->flags || !t->bytes || !t->added || !t->vmap)
        return glmv_errf(err, "%s: out of memory", name);
    for (size_t i = 0; i <= t->vmask; i++) t->vmap[i].id = -1;
    uint32_t o = 0;
    size_t longest = 0;
    for (int32_t i = 0; i < t->n_ids; i++) {
        int ty = sp->types ? sp->types[i] : TT_NORMAL;
        const char *s = sp->tokens[i];
        size_t l = sp->token_len[i];
        t->off[i] = o;
        if (ty == TT_UNUSED) continue;
        if (ty == TT_CONTROL || ty == TT_USER) { /* added tokens are literal text */
            tok_added *a = &t->added[t->n_added++];
            a->text = malloc(l + 1);
            if (!a->text) return glmv_errf(err, "%s: out of memory", name);
            memcpy(a->text, s, l);
            a->text[l] = 0;
            a->len = l;
            a->id = i;
            a->special = ty == TT_CONTROL;
            t->n_raw++; /* GLM's added tokens are normalized: false, no strip */
            t->added_first[(unsigned char)s[0]] |= 1;
            memcpy(t->bytes + o, s, l);
            o += (uint32_t)l;
            t->flags[i] = TOK_EXISTS | TOK_ADDED | (ty == TT_CONTROL ? TOK_SPECIAL : 0);
            continue;
        }
        o += (uint32_t)byte_level_decode(s, l, t->bytes + o);
        t->off[i + 1] = o;
        t->flags[i] = TOK_EXISTS | TOK_IN_VOCAB;
        vmap_insert(t, i);
        longest = GLMV_MAX(longest, l);
    }
    t->off[t->n_ids] = o;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
    }
    t->unk_id = -1;
    t->ignore_merges = 1;
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    /* merges "a b", rank = position */
    t->mmask = pow2_at_least((uint64_t)sp->n_merges * 5 / 4 + 1) - 1;
    t->mmap = calloc((size_t)t->mmask + 1, sizeof *t->mmap);
    char *raw = malloc(2 * longest + 2);
    if (!t->mmap || !raw) {
        free(raw);
        return glmv_errf(err, "%s: out of memory", name);
    }
    for (int64_t r = 0; r < sp->n_merges; r++) {
        const char *m = sp->merges[r];
        size_t l = sp->merge_len[r];
        const char *sp1 = memchr(m, ' ', l);
        if (!sp1 || sp1 == m || sp1 == m + l - 1 || memchr(sp1 + 1, ' ', l - (size_t)(sp1 + 1 - m)) ||
            l - 1 > longest) {
            free(raw);
            return glmv_errf(err, "%s: merge %lld '%s' is not two tokens of the vocabulary", name,
                             (long long)r, esc(m, l, e1));
        }
        size_t la = (size_t)(sp1 - m), lb = l - la - 1;
        size_t ra = byte_level_decode(m, la, raw);
        size_t rb = byte_level_decode(sp1 + 1, lb, raw + ra);
        int32_t a = tok_vocab_find(t, raw, ra), b = tok_vocab_find(t, raw + ra, rb);
        int32_t ab = tok_vocab_find(t, raw, ra + rb);
        if (a < 0 || b < 0 || ab < 0) {
            glmv_errf(err, "%s: merge %lld (%s + %s): a token is missing from the vocabulary", name,
                      (long long)r, esc(raw, ra, e1), esc(raw + ra, rb, e2));
            free(raw);
            return -1;
        }
        mmap_insert(t, a, b, (int32_t)r, ab);
    }
    free(raw);
    t->n_merges = sp->n_merges;
    return add_stage(t, GLM4_REGEX, 0, 0, name, err);
}

int glmv_tokenizer_build(glmv_tokenizer **out, const glmv_tokenizer_spec *spec, const char *name,
                         char *err) {
    *out = NULL;
    glmv_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return glmv_errf(err, "%s: out of memory", name);
    if (build_lists(t, spec, name, err)) {
        glmv_tokenizer_free(t);
        return -1;
    }
    glmv_log(1, "tokenizer: %d ids, %lld merges, %d added, from %s", t->n_ids,
             (long long)t->n_merges, t->n_added, name);
    *out = t;
    return 0;
}
