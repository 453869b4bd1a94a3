/* fuzz_config.c -- libFuzzer target over the config readers (`make fuzz`,
 * then build/fuzz/tests/fuzz_config [corpus_dir]). The input is split at the
 * first NUL byte into config.json and generation_config.json (then at the
 * next into processor_config.json), written to a private temp folder, and
 * loaded. Loading must succeed or fail with one line; a loaded config must
 * pass the checks the model relies on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

static void put(const char *name, const uint8_t *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!p) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void cleanup(void) {
    put("config.json", NULL, 0);
    put("generation_config.json", NULL, 0);
    put("processor_config.json", NULL, 0);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/glmv-fuzzcfg-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
    }
    const uint8_t *parts[3] = {data, NULL, NULL};
    size_t lens[3] = {size, 0, 0};
    for (int k = 0; k < 2; k++) {
        const uint8_t *z = memchr(parts[k], 0, lens[k]);
        if (!z) break;
        parts[k + 1] = z + 1;
        lens[k + 1] = lens[k] - (size_t)(z + 1 - parts[k]);
        lens[k] = (size_t)(z - parts[k]);
    }
    put("config.json", parts[0], lens[0]);
    put("generation_config.json", parts[1], lens[1]);
    put("processor_config.json", parts[2], lens[2]);
    glmv_config c;
    char err[GLMV_ERR_SIZE];
    err[0] = 0;
    if (glmv_config_load(&c, dir, err) != 0) {
        if (!err[0] || strchr(err, '\n')) abort();
        return 0;
    }
    int rot = (int)(c.head_dim * c.partial_rotary_factor);
    if (c.hidden_size <= 0 || c.num_attention_heads % c.num_key_value_heads ||
        c.mrope_section[0] + c.mrope_section[1] + c.mrope_section[2] != rot / 2 ||
        c.v_image_size % c.v_patch_size || c.img_min_pixels > c.img_max_pixels)
        abort();
    return 0;
}
