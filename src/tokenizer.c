/* tokenizer.c -- the checkpoint's tokenizer.json as Hugging Face tokenizers
 * runs it: added tokens matched first (those with normalized=false, then the
 * others in the pieces left, each pass leftmost-longest), a pre-tokenizer of regex splits (PCRE2, UTF + UCP, JIT)
 * and ByteLevel, then byte-level BPE with merge ranks (ignore_merges honoured).
 * Decoding maps ids back to bytes and replaces ill-formed UTF-8 by U+FFFD
 * (maximal subparts, as Rust's from_utf8_lossy and Python's "replace").
 *
 * Input that is not valid UTF-8 is first repaired the same way (each maximal
 * ill-formed subpart becomes U+FFFD), so the ids equal HF's on
 * bytes.decode("utf-8", "replace"). Loading is in tokenizer_load.c.
 * Not supported: normalizers, non-byte-level models (WordPiece, Unigram).
 */
#include "tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */
/* ------------------------------------------------------------------------ */

/* Length of the well-formed sequence at s[0..n) (1..4), 0 when ill-formed,
 * -1 when it is a valid but truncated prefix. *bad receives the length of
 * the maximal ill-formed subpart (>= 1) when 0 is returned. */
static int utf8_seq(const unsigned char *s, size_t n, int *bad) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else {
        *bad = 1;
        return 0;
    }
    for (int k = 0; k < need; k++) {
        if ((size_t)(k + 1) >= n) return -1;
        unsigned b = s[k + 1];
        if (b < lo || b > hi) {
            *bad = k + 1;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

size_t tok_utf8_lossy(const char *in, size_t n, int final, char *out, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, o = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            out[o++] = (char)s[i++];
            continue;
        }
        int bad = 0, k = utf8_seq(s + i, n - i, &bad);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (k < 0) {
            if (!final) break;
            bad = (int)(n - i);
        }
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += (size_t)bad;
    }
    *out_len = o;
    return i;
}

/* Offset of the first ill-formed byte, or n. */
static size_t utf8_valid_prefix(const char *in, size_t n) {
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int bad = 0, k = utf8_seq(s + i, n - i, &bad);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Output buffer of ids                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    int32_t *v;
    int64_t n, cap;
    int oom;
} idbuf;

static inline void ids_push(idbuf *b, int32_t id) {
    if (b->n == b->cap) {
        int64_t nc = b->cap ? b->cap * 2 : 256;
        int32_t *nv = realloc(b->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            b->oom = 1;
            return;
        }
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = id;
}

/* ------------------------------------------------------------------------ */
/* BPE over the bytes of one pre-tokenized chunk                            */
/* ------------------------------------------------------------------------ */

typedef struct {
    int32_t id;
    int32_t prev, next;    /* -1 at the ends */
    int32_t alive;
    int32_t rank, new_id;  /* of the pair (this, next); scan mode only */
} bpe_sym;

static inline void pair_rank(const glmv_tokenizer *t, bpe_sym *sym, int32_t i) {
    sym[i].rank = INT32_MAX;
    if (sym[i].next != -1 &&
        !tok_merge_find(t, sym[i].id, sym[sym[i].next].id, &sym[i].rank, &sym[i].new_id))
        sym[i].rank = INT32_MAX;
}

typedef struct {
    int32_t rank, pos, new_id;
} bpe_cand;

/* scratch reused across the chunks of one call */
typedef struct {
    bpe_sym *sym;
    bpe_cand *heap;
    size_t cap_sym, cap_heap;
    int oom;
} bpe_scratch;

static int scratch_reserve(bpe_scratch *sc, size_t n) {
    if (n > sc->cap_sym) {
        size_t c = n * 2;
        bpe_sym *s = realloc(sc->sym, c * sizeof *s);
        if (!s) return -1;
        sc->sym = s;
        sc->cap_sym = c;
    }
    if (2 * n + 8 > sc->cap_heap) {
        size_t c = 4 * n + 16;
        bpe_cand *h = realloc(sc->heap, c * sizeof *h);
        if (!h) return -1;
        sc->heap = h;
        sc->cap_heap = c;
    }
    return 0;
}

/* The heap orders by rank, then by position (leftmost first), as HF's
 * word.rs does; the linear scan below makes the same choice. */
static inline int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const bpe_cand *best = &last;
        if (l < m && cand_less(&h[l], best)) s = l, best = &h[l];
        if (r < m && cand_less(&h[r], best)) s = r;
        if (s == i) break;
        h[i] = h[s];
        i = s;
    }
    if (m) h[i] = last;
    return top;
}

int tok_bpe_heap_threshold = 48; /* chunks of more symbols use the heap */
int tok_no_cache;

static void bpe_chunk(const glmv_tokenizer *t, const unsigned char *s, size_t n, bpe_scratch *sc,
                      idbuf *out) {
    if (n == 0) return;
    if (t->ignore_merges || n == 1) {
        int32_t id = tok_vocab_find(t, (const char *)s, n);
        if (id >= 0) {
            ids_push(out, id);
            return;
        }
    }
    if (scratch_reserve(sc, n) != 0) {
        sc->oom = 1;
        return;
    }
    bpe_sym *sym = sc->sym;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0) id = t->unk_id; /* HF drops the byte when there is no unk token */
        if (id < 0) continue;
        sym[m].id = id;
        sym[m].alive = 1;
        m++;
    }
    for (int32_t i = 0; i < m; i++) {
        sym[i].prev = i - 1;
        sym[i].next = i + 1 < m ? i + 1 : -1;
    }
    if (m <= tok_bpe_heap_threshold) {
        /* short chunk: the rank of each adjacent pair is cached in the left
         * symbol (rank INT32_MAX: no merge); each round scans for the best
         * and re-ranks only the two pairs the merge touched */
        for (int32_t i = 0; i < m; i++) pair_rank(t, sym, i);
        for (;;) {
            int32_t best_rank = INT32_MAX, best = -1;
            for (int32_t i = 0; i != -1; i = sym[i].next)
                if (sym[i].rank < best_rank) best_rank = sym[i].rank, best = i;
            if (best < 0) break;
            int32_t r = sym[best].next;
            sym[best].id = sym[best].new_id;
            sym[best].next = sym[r].next;
            if (sym[r].next != -1) sym[sym[r].next].prev = best;
            sym[r].alive = 0;
            pair_rank(t, sym, best);
            if (sym[best].prev != -1) pair_rank(t, sym, sym[best].prev);
        }
    } else {
        bpe_cand *heap = sc->heap;
        size_t hn = 0;
        for (int32_t i = 0; i + 1 < m; i++) {
            int32_t rank, nid;
            if (tok_merge_find(t, sym[i].id, sym[i + 1].id, &rank, &nid))
                heap_push(heap, &hn, (bpe_cand){rank, i, nid});
        }
        while (hn) {
            bpe_cand c = heap_pop(heap, &hn);
            bpe_sym *a = &sym[c.pos];
            if (!a->alive || a->next == -1) continue;
            int32_t r = a->next, rank, nid;
            if (!tok_merge_find(t, a->id, sym[r].id, &rank, &nid) || nid != c.new_id) continue;
            a->id = nid;
            a->next = sym[r].next;
            if (a->next != -1) sym[a->next].prev = c.pos;
            sym[r].alive = 0;
            if (hn + 2 > sc->cap_heap) { /* cannot happen: each merge adds <= 2 */
                sc->oom = 1;
                return;
            }
            if (a->prev != -1 && tok_merge_find(t, sym[a->prev].id, a->id, &rank, &nid))
                heap_push(heap, &hn, (bpe_cand){rank, a->prev, nid});
            if (a->next != -1 && tok_merge_find(t, a->id, sym[a->next].id, &rank, &nid))
                heap_push(heap, &hn, (bpe_cand){rank, c.pos, nid});
        }
    }
    for (int32_t i = 0; i != -1 && m > 0; i = sym[i].next) ids_push(out, sym[i].id);
}

/* ------------------------------------------------------------------------ */
/* Pre-tokenizer: the regex stages in series, then BPE                      */
/* ------------------------------------------------------------------------ */

/* Per-call cache of short chunks -> ids (words repeat in long texts; HF
 * keeps a similar word cache). Direct-mapped; allocated for long inputs. */
#define CACHE_KEY 24
#define CACHE_IDS 6
typedef struct {
    uint64_t hash;
    uint8_t len, n_ids;
    char key[CACHE_KEY];
    int32_t ids[CACHE_IDS];
} chunk_cache_slot;

typedef struct {
    const glmv_tokenizer *t;
    chunk_cache_slot *cache;
    size_t cache_mask;
    pcre2_match_data *md[TOK_MAX_STAGES];
    pcre2_jit_stack *jit;
    pcre2_match_context *mctx;
    bpe_scratch sc;
    idbuf out;
    int err; /* PCRE2 error code, 0 when fine */
} enc_ctx;

static void bpe_cached(enc_ctx *c, const char *s, size_t n) {
    if (!c->cache || n > CACHE_KEY || n < 2) {
        bpe_chunk(c->t, (const unsigned char *)s, n, &c->sc, &c->out);
        return;
    }
    uint64_t h = tok_hash_bytes(s, n);
    chunk_cache_slot *e = &c->cache[h & c->cache_mask];
    if (e->hash == h && e->len == n && !memcmp(e->key, s, n)) {
        for (int i = 0; i < e->n_ids; i++) ids_push(&c->out, e->ids[i]);
        return;
    }
    int64_t before = c->out.n;
    bpe_chunk(c->t, (const unsigned char *)s, n, &c->sc, &c->out);
    int64_t made = c->out.n - before;
    if (made > 0 && made <= CACHE_IDS && !c->out.oom) {
        e->hash = h;
        e->len = (uint8_t)n;
        e->n_ids = (uint8_t)made;
        memcpy(e->key, s, n);
        memcpy(e->ids, c->out.v + before, (size_t)made * sizeof(int32_t));
    }
}

static void stage_run(enc_ctx *c, int k, const char *s, size_t n);

static void stage_piece(enc_ctx *c, int k, const char *s, size_t n) {
    if (n == 0) return;
    if (k + 1 < c->t->n_stages) stage_run(c, k + 1, s, n);
    else bpe_cached(c, s, n);
}

static void stage_run(enc_ctx *c, int k, const char *s, size_t n) {
    const tok_stage *st = &c->t->stages[k];
    char *tmp = NULL;
    if (st->prefix_space && n > 0 && s[0] != ' ') {
        /* ByteLevel(add_prefix_space): each split gets a leading space */
        tmp = malloc(n + 1);
        if (!tmp) {
            c->sc.oom = 1;
            return;
        }
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp;
        n++;
    }
    if (!st->re) {
        stage_piece(c, k, s, n);
        free(tmp);
        return;
    }
    pcre2_match_data *md = c->md[k];
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, c->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            c->err = rc;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            /* empty match: HF skips it; step one character */
            pos = ms + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > last) stage_piece(c, k, s + last, ms - last); /* Isolated: gaps are pieces */
        stage_piece(c, k, s + ms, me - ms);
        last = pos = me;
    }
    if (last < n) stage_piece(c, k, s + last, n - last);
    free(tmp);
}

/* ------------------------------------------------------------------------ */
/* Added tokens                                                             */
/* ------------------------------------------------------------------------ */

static int is_ws_at(const char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= 9 && c <= 13)) {
        *len = 1;
        return 1;
    }
    if (c < 0x80) return 0;
    /* Unicode White_Space beyond ASCII (Rust char::is_whitespace) */
    static const char *ws[] = {"\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\xA8", "\xE2\x80\xA9",
                               "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80"};
    for (size_t k = 0; k < sizeof ws / sizeof *ws; k++) {
        size_t l = strlen(ws[k]);
        if (i + l <= n && !memcmp(s + i, ws[k], l)) {
            *len = l;
            return 1;
        }
    }
    if (i + 3 <= n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
        (unsigned char)s[i + 2] >= 0x80 && (unsigned char)s[i + 2] <= 0x8A) { /* U+2000..U+200A */
        *len = 3;
        return 1;
    }
    return 0;
}

/* Leftmost-longest match of an added token of the pass `norm` (its
 * normalized flag) in s[from..n):
 * [*ms, *me) bounds the text the token consumes (lstrip/rstrip widen it). */
static int added_find(const glmv_tokenizer *t, int norm, const char *s, size_t from, size_t n,
                      size_t *ms, size_t *me, int32_t *id) {
    for (size_t i = from; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(t->added_first[c] & (norm ? 2 : 1))) continue;
        for (int k = 0; k < t->n_added; k++) { /* sorted by length, longest first */
            const tok_added *a = &t->added[k];
            if (a->normalized != norm || (unsigned char)a->text[0] != c || a->len > n - i ||
                memcmp(s + i, a->text, a->len) != 0)
                continue;
            size_t b = i, e = i + a->len, l;
            if (a->lstrip) {
                /* widen left over whitespace (characters end on non-continuation bytes) */
                while (b > from) {
                    size_t p = b - 1;
                    while (p > from && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                    if (!is_ws_at(s, n, p, &l) || p + l != b) break;
                    b = p;
                }
            }
            if (a->rstrip)
                while (e < n && is_ws_at(s, n, e, &l)) e += l;
            *ms = b;
            *me = e;
            *id = a->id;
            return 1;
        }
    }
    return 0;
}

static void encode_plain(enc_ctx *c, const char *s, size_t n) {
    if (n == 0) return;
    if (c->t->n_stages) stage_run(c, 0, s, n);
    else bpe_cached(c, s, n);
}

static void encode_pass2(enc_ctx *c, const char *s, size_t n) {
    size_t pos = 0, ms, me;
    int32_t id;
    while (c->t->n_norm && added_find(c->t, 1, s, pos, n, &ms, &me, &id)) {
        encode_plain(c, s + pos, ms - pos);
        ids_push(&c->out, id);
        pos = me;
    }
    encode_plain(c, s + pos, n - pos);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

int64_t glmv_tokenize(const glmv_tokenizer *t, const char *text, size_t len, int32_t **ids,
                      char *err) {
    *ids = NULL;
    if (!t || (!text && len)) return glmv_errf(err, "tokenize: no tokenizer or text");
    char *fixed = NULL;
    size_t bad = utf8_valid_prefix(text, len);
    if (bad < len) {
        /* each ill-formed subpart becomes U+FFFD (3 bytes for at most 1) */
        size_t cap = glmv_mul_size(len, 3);
        fixed = cap == SIZE_MAX ? NULL : malloc(cap + 1);
        if (!fixed) return glmv_errf(err, "tokenize: out of memory for %zu bytes", len);
        size_t o;
        tok_utf8_lossy(text, len, 1, fixed, &o);
        text = fixed;
        len = o;
    }
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    int fail = 0;
    for (int k = 0; k < t->n_stages; k++) {
        if (!t->stages[k].re) continue;
        c.md[k] = pcre2_match_data_create_from_pattern(t->stages[k].re, NULL);
        if (!c.md[k]) fail = 1;
    }
    if (!fail && len > 4096 && !tok_no_cache) {
        size_t slots = 1024; /* about one slot per 64 bytes of text, at most 64k */
        while (slots < len / 64 && slots < 65536) slots *= 2;
        c.cache_mask = slots - 1;
        c.cache = calloc(slots, sizeof *c.cache); /* NULL: run without */
    }
    if (!fail && t->n_stages && len > 4096) {
        /* long subjects may need more than the default 32 KiB JIT stack */
        c.mctx = pcre2_match_context_create(NULL);
        c.jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!c.mctx || !c.jit) fail = 1;
        else pcre2_jit_stack_assign(c.mctx, NULL, c.jit);
    }
    if (!fail) {
        size_t pos = 0, ms, me;
        int32_t id;
        while (t->n_raw && added_find(t, 0, text, pos, len, &ms, &me, &id)) {
            encode_pass2(&c, text + pos, ms - pos);
            ids_push(&c.out, id);
            pos = me;
        }
        encode_pass2(&c, text + pos, len - pos);
    }
    for (int k = 0; k < t->n_stages; k++) pcre2_match_data_free(c.md[k]);
    pcre2_match_context_free(c.mctx);
    pcre2_jit_stack_free(c.jit);
    free(c.sc.sym);
    free(c.sc.heap);
    free(c.cache);
    free(fixed);
    if (fail || c.sc.oom || c.out.oom) {
        free(c.out.v);
        return glmv_errf(err, "tokenize: out of memory for %zu bytes", len);
    }
    if (c.err) {
        free(c.out.v);
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(c.err, msg, sizeof msg);
        return glmv_errf(err, "tokenize: pre-tokenizer regex failed: %s", (const char *)msg);
    }
    if (!c.out.v) c.out.v = malloc(sizeof(int32_t)); /* a valid pointer for 0 ids */
    if (!c.out.v) return glmv_errf(err, "tokenize: out of memory");
    *ids = c.out.v;
    return c.out.n;
}

const char *glmv_token_bytes(const glmv_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_ids || !(t->flags[id] & TOK_EXISTS)) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->off[id + 1] - t->off[id];
    return t->bytes + t->off[id];
}

int glmv_token_is_special(const glmv_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_ids && (t->flags[id] & TOK_SPECIAL);
}

int glmv_token_is_added(const glmv_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_ids && (t->flags[id] & TOK_ADDED);
}

int32_t glmv_tokenizer_size(const glmv_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t glmv_token_id(const glmv_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->added[k].text, piece, n)) return t->added[k].id;
    return tok_vocab_find(t, piece, n);
}

char *glmv_detokenize(const glmv_tokenizer *t, const int32_t *ids, int64_t n, int skip_special) {
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t l;
        if (glmv_token_bytes(t, ids[i], &l) && !(skip_special && glmv_token_is_special(t, ids[i])))
            total += l;
    }
    char *raw = malloc(total + 1);
    size_t cap = glmv_mul_size(total, 3);
    char *out = cap == SIZE_MAX ? NULL : malloc(cap + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t l;
        const char *b = glmv_token_bytes(t, ids[i], &l);
        if (b && !(skip_special && glmv_token_is_special(t, ids[i]))) {
            memcpy(raw + o, b, l);
            o += l;
        }
    }
    size_t ol;
    tok_utf8_lossy(raw, o, 1, out, &ol);
    out[ol] = 0;
    free(raw);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Incremental decoding                                                     */
/* ------------------------------------------------------------------------ */

void glmv_detok_init(glmv_detok *d, const glmv_tokenizer *tok, int skip_special) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->skip_special = skip_special;
}

int glmv_detok_push(glmv_detok *d, int32_t id, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    size_t l = 0;
    const char *b = glmv_token_bytes(d->tok, id, &l);
    if (!b || (d->skip_special && glmv_token_is_special(d->tok, id))) l = 0;
    size_t n = (size_t)d->n_pending + l;
    char *in = malloc(n + 1), *o = malloc(3 * n + 1);
    if (!in || !o) {
        free(in);
        free(o);
        return -1;
    }
    memcpy(in, d->pending, (size_t)d->n_pending);
    if (l) memcpy(in + d->n_pending, b, l);
    size_t ol, used = tok_utf8_lossy(in, n, 0, o, &ol);
    /* what is left is a valid but unfinished sequence: at most 3 bytes */
    d->n_pending = (int)(n - used);
    GLMV_ASSERT(d->n_pending <= 3);
    memcpy(d->pending, in + used, (size_t)d->n_pending);
    free(in);
    o[ol] = 0;
    *out = o;
    *len = ol;
    return 0;
}

int glmv_detok_flush(glmv_detok *d, char **out, size_t *len) {
    char *o = malloc(3 * 8 + 1);
    *out = o;
    *len = 0;
    if (!o) return -1;
    size_t ol;
    tok_utf8_lossy(d->pending, (size_t)d->n_pending, 1, o, &ol);
    o[ol] = 0;
    *len = ol;
    d->n_pending = 0;
    return 0;
}
