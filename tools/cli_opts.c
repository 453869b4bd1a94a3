/* cli_opts.c -- the options that run, chat and serve share: which model,
 * which device, how many threads, image token limits and sampling. Each
 * subcommand parses its own flags and hands the rest to cli_opts_parse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void cli_opts_init(cli_opts *o) {
    memset(o, 0, sizeof *o);
    glmv_model_params_default(&o->mp);
}

const char *cli_default_model(void) {
    struct stat st;
    static const char *cands[] = {"models/demo", NULL};
    for (int i = 0; cands[i]; i++)
        if (stat(cands[i], &st) == 0 && S_ISDIR(st.st_mode)) return cands[i];
    return NULL;
}

const char *cli_opts_help =
    "model:\n"
    "  -m, --model DIR          checkpoint folder (default: models/demo when present), or\n"
    "                           llama.cpp's GGUF text model (FILE.gguf, or a folder holding\n"
    "                           one .gguf and one mmproj*.gguf)\n"
    "      --mmproj FILE        the GGUF model's vision tower (llama.cpp's mmproj file)\n"
    "      --tokenizer DIR      with -m synthetic:9b[,layers=N]: random weights of the 9B shape\n"
    "                           that read messages through DIR's tokenizer.json (the checkpoint's\n"
    "                           tokenizer files alone): timings and load tests without the weights\n"
    "  -t, --threads N          CPU threads (default: all cores)\n"
    "      --device D           auto, cpu or cuda (default: auto)\n"
    "      --precision P        f32 or bf16 GEMM inputs (default: $GLMV_PRECISION, else f32 on\n"
    "                           the CPU, bf16 on CUDA; bf16 needs AVX512-BF16 on a CPU)\n"
    "      --quant Q            q8_0, q4_0 or q4_k_m: the decoder's weights quantized at load\n"
    "                           time (llama.cpp's block formats, and its Q4_K_M recipe: CPU\n"
    "                           only; default none)\n"
    "  -tp, --tensor-parallel N split the decoder over N GPUs (NCCL; GLM-4.1V allows 1 or 2)\n"
    "      --ctx N              context size in tokens (default: the model's maximum that fits)\n"
    "      --kv-memory GB       memory the KV caches may take together, in GiB, where they grow\n"
    "                           with their sequences (the CPU; CUDA with GLMV_CUDA_VMM=1); default:\n"
    "                           on a GPU most of what the weights leave, on the CPU no limit\n"
    "      --min-image-tokens N, --max-image-tokens N\n"
    "                           bound the vision tokens per image (trade detail for speed)\n"
    "sampling (defaults from the checkpoint's generation_config.json):\n"
    "  -n, --max-tokens N       maximum new tokens\n"
    "      --temp T             temperature (0 = greedy)\n"
    "      --top-k K, --top-p P, --repeat-penalty R, --seed S\n"
    "      --presence-penalty P, --frequency-penalty F\n"
    "                           OpenAI's penalties on ids already generated, in [-2, 2]\n"
    "      --greedy             greedy decoding\n"
    "      --max-thinking N     thinking budget: after N tokens force </think><answer>\n"
    "  -v, --verbose            print load, vision, prefill and decode times\n";

#define NEED_ARG()                                                                   \
    do {                                                                             \
        if (*i + 1 >= argc) {                                                        \
            fprintf(stderr, "glmv: %s needs a value\n", a);                          \
            return -1;                                                               \
        }                                                                            \
    } while (0)

int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    long l;
    double d;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        NEED_ARG();
        o->model_dir = argv[++*i];
    } else if (!strcmp(a, "--mmproj")) {
        NEED_ARG();
        o->mp.mmproj = argv[++*i];
    } else if (!strcmp(a, "--tokenizer")) {
        NEED_ARG();
        o->mp.tokenizer = argv[++*i];
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 0, 1024, &l)) return -1;
        o->mp.n_threads = (int)l;
    } else if (!strcmp(a, "--device")) {
        NEED_ARG();
        const char *v = argv[++*i];
        if (!strcmp(v, "cpu")) o->mp.device = GLMV_DEVICE_CPU;
        else if (!strcmp(v, "cuda") || !strcmp(v, "gpu")) o->mp.device = GLMV_DEVICE_CUDA;
        else if (!strcmp(v, "auto")) o->mp.device = GLMV_DEVICE_AUTO;
        else {
            fprintf(stderr, "glmv: --device expects auto, cpu or cuda, got '%s'\n", v);
            return -1;
        }
    } else if (!strcmp(a, "--quant")) {
        NEED_ARG();
        if (glmv_quant_parse(argv[++*i], &o->mp.quant)) {
            fprintf(stderr, "glmv: --quant expects q8_0, q4_0, q4_k_m or none, got '%s'\n", argv[*i]);
            return -1;
        }
    } else if (!strcmp(a, "--precision")) {
        NEED_ARG();
        if (glmv_precision_parse(argv[++*i], &o->mp.precision)) {
            fprintf(stderr, "glmv: --precision expects f32, bf16 or auto, got '%s'\n", argv[*i]);
            return -1;
        }
    } else if (!strcmp(a, "-tp") || !strcmp(a, "--tensor-parallel")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 1, 8, &l)) return -1;
        o->mp.tensor_parallel = (int)l;
    } else if (!strcmp(a, "--ctx")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 16, 1 << 24, &l)) return -1;
        o->n_ctx = (int)l;
    } else if (!strcmp(a, "--kv-memory")) {
        NEED_ARG();
        if (cli_parse_float(a, argv[++*i], 0.001, 1 << 20, &d)) return -1;
        o->mp.kv_memory = (int64_t)(d * (double)(1 << 30));
    } else if (!strcmp(a, "--min-image-tokens")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 1, 1 << 20, &l)) return -1;
        o->mp.min_image_tokens = (int)l;
    } else if (!strcmp(a, "--max-image-tokens")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 1, 1 << 20, &l)) return -1;
        o->mp.max_image_tokens = (int)l;
    } else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 1, 1 << 24, &l)) return -1;
        o->max_tokens = (int)l;
    } else if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) {
        NEED_ARG();
        if (cli_parse_float(a, argv[++*i], 0, 100, &d)) return -1;
        o->temp = d;
        o->set_temp = 1;
    } else if (!strcmp(a, "--top-k")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 0, 1 << 24, &l)) return -1;
        o->top_k = (int)l;
        o->set_top_k = 1;
    } else if (!strcmp(a, "--top-p")) {
        NEED_ARG();
        if (cli_parse_float(a, argv[++*i], 0, 1, &d)) return -1;
        if (d == 0) { /* the sampler reads top_p <= 0 as "off": the opposite of what 0 asks */
            fprintf(stderr, "glmv: --top-p expects a number in (0, 1], got '%s' (--greedy keeps "
                            "only the best token)\n", argv[*i]);
            return -1;
        }
        o->top_p = d;
        o->set_top_p = 1;
    } else if (!strcmp(a, "--repeat-penalty") || !strcmp(a, "--repetition-penalty")) {
        NEED_ARG();
        if (cli_parse_float(a, argv[++*i], 0.01, 100, &d)) return -1;
        o->repeat_penalty = d;
        o->set_repeat_penalty = 1;
    } else if (!strcmp(a, "--presence-penalty") || !strcmp(a, "--frequency-penalty")) {
        NEED_ARG();
        if (cli_parse_float(a, argv[++*i], -2, 2, &d)) return -1;
        if (a[2] == 'p') {
            o->presence_penalty = d;
            o->set_presence = 1;
        } else {
            o->frequency_penalty = d;
            o->set_frequency = 1;
        }
    } else if (!strcmp(a, "--seed")) {
        NEED_ARG();
        char *end;
        const char *v = argv[++*i];
        errno = 0;
        o->seed = strtoull(v, &end, 10);
        /* strtoull takes "", "-5" (as 2^64-5) and saturates on overflow */
        if (*end || end == v || errno || strchr(v, '-')) {
            fprintf(stderr, "glmv: --seed expects an integer in [0, 18446744073709551615], got '%s'\n",
                    v);
            return -1;
        }
        o->set_seed = 1;
    } else if (!strcmp(a, "--greedy")) {
        o->greedy = 1;
    } else if (!strcmp(a, "--max-thinking")) {
        NEED_ARG();
        if (cli_parse_int(a, argv[++*i], 1, 1 << 24, &l)) return -1;
        o->max_thinking = (int)l;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
        o->mp.verbose = 1;
    } else {
        return 0;
    }
    return 1;
}

void cli_opts_sampling(const cli_opts *o, const glmv_model *m, glmv_sampling *s) {
    glmv_sampling_default(m, s);
    if (o->max_tokens) s->max_new_tokens = o->max_tokens;
    s->max_new_is_default = !o->max_tokens; /* no -n: the checkpoint's default may shrink */
    if (o->set_temp) {
        s->temperature = (float)o->temp;
        s->do_sample = o->temp > 0;
    }
    if (o->set_top_k) s->top_k = o->top_k;
    if (o->set_top_p) s->top_p = (float)o->top_p;
    if (o->set_repeat_penalty) s->repetition_penalty = (float)o->repeat_penalty;
    if (o->set_presence) s->presence_penalty = (float)o->presence_penalty;
    if (o->set_frequency) s->frequency_penalty = (float)o->frequency_penalty;
    if (o->set_seed) s->seed = o->seed;
    if (o->greedy) s->do_sample = 0;
    if (o->max_thinking) s->max_thinking_tokens = o->max_thinking;
}

int cli_load_model(cli_opts *o, glmv_model **m, glmv_session **s) {
    char err[GLMV_ERR_SIZE];
    if (!o->model_dir) o->model_dir = cli_default_model();
    if (!o->model_dir) {
        fprintf(stderr, "glmv: no model: give -m DIR (a Hugging Face checkpoint folder) or -m FILE.gguf\n");
        return -1;
    }
    /* run and chat print their own timings after each reply: keep the
     * library quiet so its lines do not interleave with the streamed text */
    glmv_model_params mp = o->mp;
    mp.verbose = 0;
    if (glmv_model_load(m, o->model_dir, &mp, err)) {
        fprintf(stderr, "glmv: %s\n", err);
        return -1;
    }
    if (glmv_session_new(s, *m, o->n_ctx, err)) {
        fprintf(stderr, "glmv: %s\n", err);
        glmv_model_free(*m);
        *m = NULL;
        return -1;
    }
    glmv_model_info info;
    glmv_model_get_info(*m, &info);
    /* positions past the trained range are computed, but the answers degrade */
    if (o->n_ctx > 0 && info.max_position_embeddings > 0 && o->n_ctx > info.max_position_embeddings)
        fprintf(stderr, "glmv: warning: --ctx %d is beyond the %d positions %s was trained on\n",
                o->n_ctx, info.max_position_embeddings, info.name);
    if (o->mp.verbose) {
        fprintf(stderr, "glmv: loaded %s on %s in %.0f ms (%.3g B parameters), context %d tokens\n"
                        "glmv: precision %s (%s), weights %s (%.1f MiB)\n",
                info.name, info.device, info.load_ms, info.n_params / 1e9, glmv_session_n_ctx(*s),
                info.precision, info.precision_why, info.quant, info.weight_bytes / 1048576.0);
    }
    return 0;
}
