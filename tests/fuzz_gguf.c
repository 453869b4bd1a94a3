/* fuzz_gguf.c -- libFuzzer target over the GGUF reader and the GLM-4.1V loader
 * (`make fuzz`, then build/fuzz/tests/fuzz_gguf [corpus_dir]). The input is a
 * whole GGUF file held in memory. Either it is refused with a one-line error
 * naming the file, or every key and tensor it yields lies inside the input and
 * can be read end to end. A file that parses and says it is a glm4 or clip model
 * is also written to a private temp file and loaded as the text model or the
 * mmproj (with the text model $GLMV_FUZZ_TEXT_GGUF, else the tiny fixture's), so
 * the loader meets hostile keys,
 * shapes and vocabularies too; ASan/UBSan catch the rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "gguf.h"
#include "gguf_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

static void cleanup(void) {
    if (path[0]) unlink(path);
}

static void one_line(const char *err, const char *name) {
    if (!err[0] || strchr(err, '\n') || (name && !strstr(err, name))) {
        fprintf(stderr, "bad error message: \"%s\"\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[GLMV_ERR_SIZE];
    err[0] = 0;
    glmv_gguf *g = NULL;
    if (glmv_gguf_open_memory(&g, data, size, "fuzz.gguf", err) != 0) {
        one_line(err, "fuzz.gguf");
        return 0;
    }
    volatile double sink = 0;
    for (int64_t i = 0; i < glmv_gguf_n_kv(g); i++) {
        const glmv_gguf_kv *kv = glmv_gguf_kv_at(g, i);
        if (glmv_gguf_find_kv(g, kv->key) != kv) abort();
        int64_t v;
        double d;
        const char *s;
        size_t n;
        if (glmv_gguf_get_int(g, kv->key, &v, err) == 0) sink += (double)v;
        if (glmv_gguf_get_float(g, kv->key, &d, err) == 0) sink += d;
        if (glmv_gguf_get_str(g, kv->key, &s, &n, err) == 0 && n) sink += s[0] + s[n - 1];
        if (kv->type != GGUF_ARRAY) continue;
        for (uint64_t j = 0; j < kv->n; j++) {
            if (kv->arr_type == GGUF_STRING) {
                s = glmv_gguf_arr_str(kv, j, &n);
                if (n) sink += s[0] + s[n - 1];
            } else {
                sink += glmv_gguf_arr_num(kv, j);
            }
        }
    }
    for (int64_t i = 0; i < glmv_gguf_n_tensors(g); i++) {
        const glmv_gguf_tensor *t = glmv_gguf_tensor_at(g, i);
        if (glmv_gguf_find_tensor(g, t->name) != t) abort();
        const uint8_t *p = t->data;
        if (p < data || p + t->bytes > data + size) abort();
        if (t->bytes) sink += p[0] + p[t->bytes - 1];
    }
    (void)sink;
    const char *arch;
    size_t al = 0;
    int text = glmv_gguf_get_str(g, "general.architecture", &arch, &al, err) == 0 && al == 4 &&
               !memcmp(arch, "glm4", 4);
    int clip = al == 4 && !memcmp(arch, "clip", 4);
    glmv_gguf_free(g);
    if (!text && !clip) return 0;

    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/glmv-fuzzgguf-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0) abort();
        close(fd);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    glmv_gguf_model gm;
    const char *tm = getenv("GLMV_FUZZ_TEXT_GGUF");
    int rc = text ? glmv_gguf_model_load(&gm, path, NULL, 2, err)
                  : glmv_gguf_model_load(&gm, tm ? tm : "tests/fixtures/gguf/tiny-Q8_0.gguf", path, 2, err);
    if (rc) one_line(err, NULL);
    else glmv_gguf_model_clear(&gm);
    return 0;
}
