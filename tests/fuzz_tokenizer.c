/* fuzz_tokenizer.c -- libFuzzer target over the tokenizer (`make fuzz`, then
 * build/fuzz/tests/fuzz_tokenizer [corpus_dir]). Two modes, by the first byte:
 *  'T': the rest is text for the GLM-4 tokenizer ($GLMV_FUZZ_TOKENIZER or
 *       ../shared/assets/glm4-tokenizer, loaded once): encode, decode (must
 *       give the text with ill-formed UTF-8 repaired), decode by streaming
 *       (same text, pieces always well-formed) and split into reasoning and
 *       answer.
 *  else: the input up to the first NUL is a tokenizer.json, the rest a text:
 *       loading must succeed or fail with one line; a loaded one encodes,
 *       decodes and streams the text without a fault.
 * Chat templates go through the same file reader with no parsing of their own. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "tokenizer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *u, glmv_text_kind k, const char *t, size_t n) {
    (void)k;
    size_t *total = u;
    if (!t || !n) abort(); /* the splitter never emits empty text */
    *total += n;
}

static void exercise(const glmv_tokenizer *tok, const char *text, size_t len, int check_roundtrip) {
    char err[GLMV_ERR_SIZE];
    int32_t *ids;
    int64_t n = glmv_tokenize(tok, text, len, &ids, err);
    if (n < 0) {
        if (strchr(err, '\n')) abort();
        return;
    }
    char *full = glmv_detokenize(tok, ids, n, 0);
    if (!full) abort();
    /* the decoded length (the text may hold NUL bytes) */
    size_t fulllen = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t l;
        if (glmv_token_bytes(tok, ids[i], &l)) fulllen += l;
    }
    {
        char *raw = malloc(fulllen + 1), *o = malloc(3 * fulllen + 1);
        size_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            size_t l;
            const char *b = glmv_token_bytes(tok, ids[i], &l);
            if (b) memcpy(raw + k, b, l), k += l;
        }
        tok_utf8_lossy(raw, k, 1, o, &fulllen);
        if (memcmp(o, full, fulllen) || full[fulllen]) abort();
        free(raw);
        free(o);
    }
    if (check_roundtrip) {
        char *fixed = malloc(3 * len + 1);
        size_t fl;
        tok_utf8_lossy(text, len, 1, fixed, &fl);
        if (fl != fulllen || memcmp(fixed, full, fl)) abort();
        free(fixed);
    }
    /* streaming gives the same text in well-formed pieces */
    glmv_detok d;
    glmv_detok_init(&d, tok, 0);
    size_t at = 0;
    for (int64_t i = 0; i <= n; i++) {
        char *p;
        size_t l;
        if ((i < n ? glmv_detok_push(&d, ids[i], &p, &l) : glmv_detok_flush(&d, &p, &l)) != 0) abort();
        if (at + l > fulllen || memcmp(full + at, p, l)) abort();
        at += l;
        free(p);
    }
    if (at != fulllen) abort();
    glmv_splitter *s = glmv_splitter_new(tok);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) glmv_splitter_push(s, ids[i], ignore, &total);
    glmv_splitter_finish(s, ignore, &total);
    glmv_splitter_free(s);
    free(full);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static glmv_tokenizer *glm;
    static int tried;
    static char dir[256];
    char err[GLMV_ERR_SIZE];
    if (size && data[0] == 'T') {
        if (!tried) {
            tried = 1;
            const char *d = getenv("GLMV_FUZZ_TOKENIZER");
            if (glmv_tokenizer_load(&glm, d ? d : "../shared/assets/glm4-tokenizer", err))
                fprintf(stderr, "fuzz_tokenizer: %s (mode T does nothing)\n", err);
        }
        if (glm) exercise(glm, (const char *)data + 1, size - 1, 1);
        return 0;
    }
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/glmv-fuzztok-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t jl = nul ? (size_t)(nul - data) : size;
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (jl) fwrite(data, 1, jl, f);
    fclose(f);
    glmv_tokenizer *t;
    if (glmv_tokenizer_load(&t, dir, err) != 0) {
        if (strchr(err, '\n') || !err[0]) abort();
        return 0;
    }
    if (nul) exercise(t, (const char *)nul + 1, size - jl - 1, 0);
    glmv_tokenizer_free(t);
    return 0;
}
