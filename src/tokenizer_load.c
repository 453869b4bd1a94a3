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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* GPT-2 regex of ByteLevel(use_regex=true), as tokenizers spells it */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------------ */
/* The byte-level alphabet (GPT-2 bytes_to_unicode)                         */
/* ------------------------------------------------------------------------ */

static int16_t char_to_byte[324]; /* code point -> byte, -1 if not in the alphabet */

static void init_byte_level(void) {
    static int done;
    if (done) return; /* idempotent: concurrent first calls write the same values */
    for (int i = 0; i < 324; i++) char_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        char_to_byte[printable ? b : 256 + n++] = (int16_t)b;
    }
    done = 1;
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
    uint32_t i = (uint32_t)tok_hash_bytes(s, n) & t->vmask;
    for (;;) {
        int32_t o = t->vmap[i];
        if (o < 0) {
            t->vmap[i] = id;
            return 0;
        }
        if (t->off[o + 1] - t->off[o] == n && !memcmp(t->bytes + t->off[o], s, n)) return 1;
        i = (i + 1) & t->vmask;
    }
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
        st->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opt, &ec, &eo, NULL);
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
    return glmv_errf(err, "%s: unsupported pre-tokenizer type '%s'", path, type);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_added(const void *a, const void *b) {
    const tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int load_json(glmv_tokenizer *t, const char *path, char *err) {
    size_t flen;
    char *text = glmv_read_file(path, &flen, err);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, flen);
    free(text);
    if (!root) return glmv_errf(err, "%s: not valid JSON", path);
    int rc = -1;
    char *tmp = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *e;
    if (cJSON_IsString(mtype) && strcmp(mtype->valuestring, "BPE") != 0) {
        glmv_errf(err, "%s: model type '%s' is not supported (BPE only)", path, mtype->valuestring);
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        glmv_errf(err, "%s: model.vocab or model.merges missing", path);
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

    /* ids and byte lengths */
    int64_t max_id = -1;
    size_t total = 0, longest = 0;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            glmv_errf(err, "%s: vocab entry '%.40s' has a bad id", path, e->string);
            goto done;
        }
        max_id = GLMV_MAX(max_id, (int64_t)e->valuedouble);
        size_t l = strlen(e->string);
        total += l;
        longest = GLMV_MAX(longest, l);
    }
    int n_added = cJSON_GetArraySize(added);
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 ||
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
    uint32_t *len = calloc((size_t)t->n_ids, sizeof *len);
    const char **src = calloc((size_t)t->n_ids, sizeof *src);
    tmp = malloc(longest * 2 + 8);
    if (!t->off || !t->flags || !t->bytes || !len || !src || !tmp || total > UINT32_MAX) {
        free(len);
        free(src);
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    /* the added tokens' text wins over the vocab's for the same id, as in
     * tokenizers' id_to_token */
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        src[id] = e->string;
        t->flags[id] |= TOK_EXISTS | TOK_IN_VOCAB;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        t->flags[id] |= TOK_EXISTS | TOK_ADDED;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"))) t->flags[id] |= TOK_SPECIAL;
        src[id] = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
    }
    init_byte_level();
    uint32_t o = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->off[id] = o;
        if (!src[id]) continue;
        size_t l = strlen(src[id]);
        if (t->flags[id] & TOK_ADDED) memcpy(t->bytes + o, src[id], l);
        else l = byte_level_decode(src[id], l, t->bytes + o);
        o += (uint32_t)l;
    }
    t->off[t->n_ids] = o;
    free(len);
    free(src);

    /* bytes -> id for the model vocab */
    t->vmask = pow2_at_least((uint64_t)t->n_ids * 2) - 1;
    t->vmap = malloc(((size_t)t->vmask + 1) * sizeof *t->vmap);
    if (!t->vmap) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    memset(t->vmap, 0xff, ((size_t)t->vmask + 1) * sizeof *t->vmap);
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (t->flags[id] & TOK_ADDED) continue; /* its bytes are the added text */
        vmap_insert(t, id);
    }
    /* an added token that is also in the vocab under the same text */
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if ((t->flags[id] & TOK_ADDED)) vmap_insert(t, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
    }
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        size_t l = byte_level_decode(unk->valuestring, strlen(unk->valuestring), tmp);
        t->unk_id = tok_vocab_find(t, tmp, l);
    }

    /* merges */
    int64_t nm = cJSON_GetArraySize(merges);
    t->mmask = pow2_at_least((uint64_t)nm * 3 / 2 + 1) - 1;
    t->mmap = calloc((size_t)t->mmask + 1, sizeof *t->mmap);
    if (!t->mmap) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    int32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                glmv_errf(err, "%s: merge %d '%.40s' is not two tokens", path, rank, e->valuestring);
                goto done;
            }
            a = e->valuestring, la = (size_t)(sp - a);
            b = sp + 1, lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, la = strlen(a);
            b = e->child->next->valuestring, lb = strlen(b);
        } else {
            glmv_errf(err, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, rank);
            goto done;
        }
        if (la + lb > longest) {
            glmv_errf(err, "%s: merge %d makes a token longer than any in the vocab", path, rank);
            goto done;
        }
        size_t ra = byte_level_decode(a, la, tmp);
        size_t rb = byte_level_decode(b, lb, tmp + ra);
        int32_t ia = tok_vocab_find(t, tmp, ra), ib = tok_vocab_find(t, tmp + ra, rb);
        int32_t im = tok_vocab_find(t, tmp, ra + rb);
        if (ia < 0 || ib < 0 || im < 0) {
            glmv_errf(err, "%s: merge %d (%.*s %.*s): a token is missing from the vocab", path,
                      rank, (int)GLMV_MIN(la, 40), a, (int)GLMV_MIN(lb, 40), b);
            goto done;
        }
        mmap_insert(t, ia, ib, rank, im);
        rank++;
    }
    t->n_merges = rank;

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
        t->n_added++;
        if (a->special) t->n_special++;
        else t->n_nonspecial++;
        t->added_first[(unsigned char)c[0]] |= a->special ? 1 : 2;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added);

    if (parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, err)) goto done;
    rc = 0;
done:
    free(tmp);
    cJSON_Delete(root);
    return rc;
}

int glmv_tokenizer_load(glmv_tokenizer **out, const char *dir, char *err) {
    *out = NULL;
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
