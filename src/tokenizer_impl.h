/* tokenizer_impl.h -- the tokenizer's data, shared by tokenizer.c (encode,
 * decode) and tokenizer_load.c (tokenizer.json parsing, hash tables).
 * Token bytes are raw bytes (the byte-level alphabet already undone). */
#ifndef GLMV_TOKENIZER_IMPL_H
#define GLMV_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base.h"
#include "tokenizer.h"

#define TOK_MAX_STAGES 4

enum { TOK_EXISTS = 1, TOK_ADDED = 2, TOK_SPECIAL = 4, TOK_IN_VOCAB = 8 };

typedef struct {
    pcre2_code *re;   /* NULL: no split at this stage */
    int prefix_space; /* ByteLevel add_prefix_space: prepend ' ' to each split */
} tok_stage;

typedef struct {
    char *text;
    size_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, normalized;
} tok_added;

/* A vocab hash slot keeps the token's first bytes, so that most lookups
 * touch one cache line; longer tokens compare the rest in `bytes`. */
#define TOK_INLINE 11
typedef struct {
    uint8_t len;            /* 255: 255 bytes or more */
    char head[TOK_INLINE];  /* first bytes, zero-padded */
    int32_t id;             /* -1: empty */
} tok_vslot;

typedef struct {
    uint64_t key; /* tok_pair_key(left, right); 0 = empty slot */
    int32_t rank, new_id;
} tok_merge;

struct glmv_tokenizer {
    int32_t n_ids;     /* max id + 1 */
    char *bytes;       /* all token bytes */
    uint32_t *off;     /* [n_ids + 1]: token id spans bytes[off[id], off[id+1]) */
    uint8_t *flags;    /* [n_ids] TOK_* */
    tok_vslot *vmap;   /* open addressing: raw bytes -> id (model vocab only) */
    uint32_t vmask;
    tok_merge *mmap;   /* open addressing on the pair */
    uint32_t mmask;
    int64_t n_merges;
    int32_t byte_id[256];
    int32_t unk_id;
    int ignore_merges;
    tok_added *added;  /* sorted longest first */
    int n_added, n_raw, n_norm;   /* tokens matched on the raw text / after normalizing */
    uint8_t added_first[256]; /* bit 1: a raw-pass token starts with this byte, bit 2: normalized */
    tok_stage stages[TOK_MAX_STAGES];
    int n_stages;
    double load_ms;
};

static inline uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    return h;
}

/* hash: tok_hash_bytes(s, n) */
static inline int32_t tok_vocab_find_h(const glmv_tokenizer *t, const char *s, size_t n,
                                       uint64_t hash) {
    uint32_t i = (uint32_t)hash & t->vmask;
    size_t h = n < TOK_INLINE ? n : TOK_INLINE;
    uint8_t l8 = (uint8_t)(n < 255 ? n : 255);
    for (;;) {
        const tok_vslot *v = &t->vmap[i];
        if (v->id < 0) return -1;
        if (v->len == l8 && !memcmp(v->head, s, h) &&
            (n <= TOK_INLINE || (t->off[v->id + 1] - t->off[v->id] == n &&
                                 !memcmp(t->bytes + t->off[v->id], s, n))))
            return v->id;
        i = (i + 1) & t->vmask;
    }
}

static inline int32_t tok_vocab_find(const glmv_tokenizer *t, const char *s, size_t n) {
    return tok_vocab_find_h(t, s, n, tok_hash_bytes(s, n));
}

static inline uint64_t tok_pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; /* +1: 0 marks an empty slot */
}

static inline int tok_merge_find(const glmv_tokenizer *t, int32_t a, int32_t b, int32_t *rank,
                                 int32_t *new_id) {
    uint64_t k = tok_pair_key(a, b);
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & t->mmask;
    for (;;) {
        const tok_merge *m = &t->mmap[i];
        if (m->key == k) {
            *rank = m->rank;
            *new_id = m->new_id;
            return 1;
        }
        if (!m->key) return 0;
        i = (i + 1) & t->mmask;
    }
}

/* ill-formed UTF-8 -> U+FFFD per maximal subpart; out needs 3*n bytes.
 * Returns the bytes consumed: all of them when final, otherwise it stops
 * before a valid but unfinished sequence at the end. */
size_t tok_utf8_lossy(const char *in, size_t n, int final, char *out, size_t *out_len);

/* Chunks with more symbols than this use the heap BPE (tests lower it). */
extern int tok_bpe_heap_threshold;
/* Non-zero: no chunk cache (tests compare both). */
extern int tok_no_cache;

#endif
