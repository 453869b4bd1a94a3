/* fuzz_safetensors.c -- libFuzzer target over the safetensors header parser
 * (`make fuzz`, then build/fuzz/tests/fuzz_safetensors [corpus_dir]).
 * The input is a whole safetensors file held in memory. Either it is refused
 * with a one-line error naming the file, or every tensor it yields lies inside
 * the input and can be read end to end; ASan/UBSan catch the rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[GLMV_ERR_SIZE];
    err[0] = 0;
    glmv_weights *w = NULL;
    if (glmv_weights_open_memory(&w, data, size, "fuzz.safetensors", err) != 0) {
        if (!err[0] || strchr(err, '\n') || !strstr(err, "fuzz.safetensors")) {
            fprintf(stderr, "bad error message: \"%s\"\n", err);
            abort();
        }
        return 0;
    }
    volatile float sink = 0;
    for (int64_t i = 0; i < glmv_weights_count(w); i++) {
        glmv_tensor *t = glmv_weights_at(w, i);
        if (glmv_weights_find(w, t->name) != t) abort();
        int64_t n = glmv_tensor_numel(t);
        if (n > 0) sink += glmv_tensor_get(t, 0) + glmv_tensor_get(t, n - 1);
    }
    (void)sink;
    glmv_weights_free(w);
    return 0;
}
