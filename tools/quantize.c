/* quantize.c -- `glmv quantize DIR OUT --type q8_0|q4_0|q4_k_m`: the checkpoint's decoder matrices
 * quantized once (as --quant does at every load) and written with the rest of the folder to
 * OUT, which then loads without quantizing: a quarter to a half of the bytes to read. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv quantize DIR OUT --type q8_0|q4_0|q4_k_m [-t N]\n\n"
            "  DIR         a Hugging Face checkpoint folder (BF16, as published)\n"
            "  OUT         the folder to write (made if missing): DIR's config, tokenizer and\n"
            "              template files, and one model.safetensors with the decoder's matrices\n"
            "              in llama.cpp's blocks; the vision tower and norms as in DIR\n"
            "  --type T    q8_0 (8.5 bits a weight) or q4_0 (4.5 bits; lm_head Q8_0 in both, the\n"
            "              token table as in DIR), or q4_k_m (llama.cpp's recipe of that name,\n"
            "              about 4.9 bits: Q4_K, Q6_K for lm_head and some v and down matrices,\n"
            "              the token table Q4_K; the blocks llama-quantize writes; runs on the CPU)\n"
            "  -t N        threads (default: all cores)\n\n"
            "Then: glmv run -m OUT ... (no --quant needed; --quant of another type is refused).\n");
}

int cmd_quantize(int argc, char **argv) {
    const char *dirs[2] = {NULL, NULL};
    int nd = 0;
    glmv_model_params mp;
    glmv_model_params_default(&mp);
    mp.device = GLMV_DEVICE_CPU;
    int have_type = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--type")) {
            if (i + 1 >= argc || glmv_quant_parse(argv[++i], &mp.quant) || mp.quant == GLMV_QUANT_NONE) {
                fprintf(stderr, "glmv quantize: --type needs q8_0, q4_0 or q4_k_m\n");
                return 2;
            }
            have_type = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long t;
            if (i + 1 >= argc || cli_parse_int(a, argv[++i], 1, 1024, &t)) return 2;
            mp.n_threads = (int)t;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "glmv quantize: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (nd < 2) {
            dirs[nd++] = a;
        } else {
            fprintf(stderr, "glmv quantize: one checkpoint and one output folder (got %s too)\n", a);
            return 2;
        }
    }
    if (nd != 2 || !have_type) {
        usage(stderr);
        return 2;
    }
    char err[GLMV_ERR_SIZE];
    glmv_model *m = NULL;
    if (glmv_model_load(&m, dirs[0], &mp, err)) {
        fprintf(stderr, "glmv quantize: %s\n", err);
        return 1;
    }
    glmv_model_info info;
    glmv_model_get_info(m, &info);
    int rc = glmv_model_save(m, dirs[1], err);
    if (rc) fprintf(stderr, "glmv quantize: %s\n", err);
    else
        fprintf(stderr, "glmv quantize: %s -> %s: %s, %.1f MiB of weights (loaded and quantized in %.1f s)\n", dirs[0],
                dirs[1], info.quant, info.weight_bytes / 1048576.0, info.load_ms / 1e3);
    glmv_model_free(m);
    return rc ? 1 : 0;
}
