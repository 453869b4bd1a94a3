/* run.c -- `glmv run`: one prompt with any number of images and videos,
 * the reply streamed as it is generated. On a terminal the reasoning is shown
 * dimmed, apart from the answer; --json prints one object at the end instead.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_MEDIA 1024

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv run [-m DIR] [--image FILE]... [--video FILE]... [--pdf FILE [--pages RANGE]]...\n"
            "                -p TEXT [options]\n\n"
            "  -p, --prompt TEXT        the question ('-' reads it from standard input)\n"
            "      --image FILE         an image (repeatable; JPEG, PNG, WebP, BMP, GIF)\n"
            "      --video FILE         a video (repeatable; mp4, mkv, webm, avi, mov)\n"
            "      --pdf FILE           a PDF document: its pages as images (repeatable)\n"
            "      --pages RANGE        the previous --pdf's pages, e.g. 1-5 or 1,3,7- (default all;\n"
            "                           at most 1024, and all must fit the context)\n"
            "      --video-fps F        sampled frames per second (default 2)\n"
            "      --video-max-frames N cap on sampled frames\n"
            "      --video-start S, --video-end S   a time range in seconds\n"
            "      --system TEXT        a system prompt\n"
            "      --json               print one JSON object (reasoning, content, tokens, timings)\n"
            "      --no-reasoning       do not print the thinking, only the answer\n"
            "%s",
            cli_opts_help);
}

typedef struct {
    int tty, show_reasoning, started_content, printed_any;
    glmv_text_kind last;
} run_out;

static int on_token(void *user, const glmv_event *ev) {
    run_out *o = user;
    if (!ev->len) return 0;
    if (ev->kind == GLMV_TEXT_REASONING) {
        if (!o->show_reasoning) return 0;
        if (o->tty) fputs("\033[2m", stdout);
        fwrite(ev->text, 1, ev->len, stdout);
        if (o->tty) fputs("\033[0m", stdout);
    } else {
        if (!o->started_content && o->printed_any && o->show_reasoning) fputs("\n\n", stdout);
        o->started_content = 1;
        fwrite(ev->text, 1, ev->len, stdout);
    }
    o->printed_any = 1;
    o->last = ev->kind;
    fflush(stdout);
    return 0;
}

static int on_quiet(void *user, const glmv_event *ev) {
    (void)user;
    (void)ev;
    return 0;
}

static void print_json(const glmv_result *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "reasoning", r->reasoning ? r->reasoning : "");
    cJSON_AddStringToObject(j, "content", r->content ? r->content : "");
    cJSON_AddNumberToObject(j, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(j, "completion_tokens", r->completion_tokens);
    cJSON_AddNumberToObject(j, "image_tokens", r->image_tokens);
    cJSON *ids = cJSON_AddArrayToObject(j, "token_ids");
    for (int i = 0; i < r->n_tokens; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->token_ids[i]));
    cJSON_AddStringToObject(j, "finish_reason", r->finish_reason ? r->finish_reason : "stop");
    cJSON *t = cJSON_AddObjectToObject(j, "timings");
    cJSON_AddNumberToObject(t, "preprocess_ms", r->preprocess_ms);
    cJSON_AddNumberToObject(t, "vision_ms", r->vision_ms);
    cJSON_AddNumberToObject(t, "prefill_ms", r->prefill_ms);
    cJSON_AddNumberToObject(t, "decode_ms", r->decode_ms);
    if (r->decode_ms > 0 && r->completion_tokens > 1)
        cJSON_AddNumberToObject(t, "decode_tokens_per_s", (r->completion_tokens - 1) * 1e3 / r->decode_ms);
    char *s = cJSON_PrintUnformatted(j);
    if (s) puts(s);
    free(s);
    cJSON_Delete(j);
}

/* A prompt beyond this is far beyond any context (and /dev/zero never ends) */
#define MAX_STDIN_PROMPT ((size_t)256 << 20)

static char *read_stdin(int *too_big) {
    size_t cap = 4096, n = 0;
    *too_big = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += r;
        if (n > MAX_STDIN_PROMPT) {
            *too_big = 1;
            free(buf);
            return NULL;
        }
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    buf[n] = 0;
    return buf;
}

int cmd_run(int argc, char **argv) {
    cli_opts o;
    cli_opts_init(&o);
    const char *prompt = NULL, *system = NULL;
    int json = 0, no_reasoning = 0, n_parts = 0;
    double vfps = 0, vstart = 0, vend = 0;
    long vmax = 0;
    static glmv_part parts[MAX_MEDIA + 1];
    memset(parts, 0, sizeof parts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--system") && has_val) {
            system = argv[++i];
        } else if ((!strcmp(a, "--image") || !strcmp(a, "--video") || !strcmp(a, "--pdf")) && has_val) {
            if (n_parts >= MAX_MEDIA) {
                fprintf(stderr, "glmv: at most %d images, videos and PDFs\n", MAX_MEDIA);
                return 2;
            }
            parts[n_parts].kind = a[2] == 'i' ? GLMV_PART_IMAGE : a[2] == 'v' ? GLMV_PART_VIDEO : GLMV_PART_PDF;
            parts[n_parts++].path = argv[++i];
        } else if (!strcmp(a, "--pages") && has_val) {
            if (!n_parts || parts[n_parts - 1].kind != GLMV_PART_PDF || parts[n_parts - 1].pages) {
                fprintf(stderr, "glmv run: --pages follows the --pdf it selects from\n");
                return 2;
            }
            parts[n_parts - 1].pages = argv[++i];
        } else if (!strcmp(a, "--video-fps") && has_val) {
            if (cli_parse_float(a, argv[++i], 0.01, 240, &vfps)) return 2;
        } else if (!strcmp(a, "--video-max-frames") && has_val) {
            if (cli_parse_int(a, argv[++i], 2, 100000, &vmax)) return 2;
        } else if (!strcmp(a, "--video-start") && has_val) {
            if (cli_parse_float(a, argv[++i], 0, 1e7, &vstart)) return 2;
        } else if (!strcmp(a, "--video-end") && has_val) {
            if (cli_parse_float(a, argv[++i], 0, 1e7, &vend)) return 2;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--no-reasoning")) {
            no_reasoning = 1;
        } else {
            fprintf(stderr, "glmv run: unknown or incomplete option '%s' (see glmv run --help)\n", a);
            return 2;
        }
    }
    if (!prompt) {
        fprintf(stderr, "glmv run: -p TEXT is required (see glmv run --help)\n");
        return 2;
    }
    char *prompt_buf = NULL;
    if (!strcmp(prompt, "-")) {
        int too_big;
        prompt = prompt_buf = read_stdin(&too_big);
        if (!prompt) {
            if (too_big)
                fprintf(stderr, "glmv run: the prompt on standard input is larger than %d MiB\n",
                        (int)(MAX_STDIN_PROMPT >> 20));
            else fprintf(stderr, "glmv run: cannot read the prompt from standard input\n");
            return 2;
        }
    }
    for (int i = 0; i < n_parts; i++)
        if (parts[i].kind == GLMV_PART_VIDEO) {
            parts[i].video_fps = vfps;
            parts[i].video_max_frames = (int)vmax;
            parts[i].video_start = vstart;
            parts[i].video_end = vend;
        }
    parts[n_parts].kind = GLMV_PART_TEXT;
    parts[n_parts++].text = prompt;

    glmv_model *m = NULL;
    glmv_session *s = NULL;
    if (cli_load_model(&o, &m, &s)) {
        free(prompt_buf);
        return 1;
    }
    glmv_sampling sp;
    cli_opts_sampling(&o, m, &sp);

    glmv_part sys_part = {.kind = GLMV_PART_TEXT, .text = system};
    glmv_message msgs[2];
    int n_msgs = 0;
    if (system) msgs[n_msgs++] = (glmv_message){"system", &sys_part, 1, NULL};
    msgs[n_msgs++] = (glmv_message){"user", parts, n_parts, NULL};

    run_out out = {.tty = isatty(STDOUT_FILENO), .show_reasoning = !no_reasoning};
    glmv_result res;
    char err[GLMV_ERR_SIZE];
    if (json) out.show_reasoning = 0, out.printed_any = 0;
    int rc = glmv_generate(s, msgs, n_msgs, &sp, json ? on_quiet : on_token, &out, &res, err);
    if (rc) {
        if (!json && out.printed_any) fputc('\n', stdout);
        fprintf(stderr, "glmv: %s\n", err);
    } else {
        if (json) print_json(&res);
        else if (out.printed_any) fputc('\n', stdout);
        fflush(stdout);
        if (o.mp.verbose) {
            fprintf(stderr,
                    "glmv: %d prompt tokens (%d from images/video), %d generated (%s)\n"
                    "glmv: preprocess %.1f ms, vision %.1f ms, prefill %.1f ms (%.1f tok/s), "
                    "decode %.1f ms (%.2f tok/s)\n",
                    res.prompt_tokens, res.image_tokens, res.completion_tokens, res.finish_reason,
                    res.preprocess_ms, res.vision_ms, res.prefill_ms,
                    res.prefill_ms > 0 ? res.prompt_tokens * 1e3 / res.prefill_ms : 0.0,
                    res.decode_ms,
                    res.decode_ms > 0 && res.completion_tokens > 1
                        ? (res.completion_tokens - 1) * 1e3 / res.decode_ms
                        : 0.0);
        }
        glmv_result_free(&res);
    }
    glmv_session_free(s);
    glmv_model_free(m);
    free(prompt_buf);
    return rc ? 1 : 0;
}
