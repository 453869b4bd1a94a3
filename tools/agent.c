/* agent.c -- `glmv agent`: one step of GLM-4.1V as a GUI agent. A screenshot,
 * a task, a mode (mobile, pc, web) and the earlier steps go into the official
 * prompt of the mode (src/agent_prompts.c); the model's answer is parsed into
 * a typed action, printed as one JSON object with its box or point in the
 * screenshot's pixels, and drawn on the screenshot with --draw. --raw parses a
 * saved answer instead of running the model; --print-prompt shows the prompt.
 * It does not act on a device: the caller performs the action. The prompt,
 * parser and drawing live in src/agent*.c (agent.h) so tests/test_agent.c can
 * reach them. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "image.h"

#define MAX_STEPS 256
#define MAX_PREVIOUS 4 /* pc: the guide's 1-5 images, the current one first */
#define MAX_FILE ((size_t)16 << 20)

/* exit statuses: a malformed answer is told apart from a failure to run */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_MALFORMED = 3 };

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv agent --mode mobile|pc|web --screenshot FILE --task TEXT [options]\n"
            "       glmv agent --mode MODE --screenshot FILE --raw ANSWER_FILE [--draw OUT.png]\n\n"
            "One step of a GUI agent with GLM-4.1V's official prompts (GLM-V docs/gui_agent_41v.md):\n"
            "prints the action as one JSON object; the caller performs it.\n\n"
            "  --mode M                 mobile (AndroidWorld, boxes in 0-999), pc (OSWorld, points\n"
            "                           in 0-1000) or web (WebVoyager, numbered elements)\n"
            "  -s, --screenshot FILE    the current screen (JPEG, PNG, WebP, BMP, GIF); for web, with\n"
            "                           the elements' numbers drawn on it (set of marks)\n"
            "  --task TEXT              what to do ('-' reads it from standard input)\n"
            "  --step TEXT              an earlier step, oldest first (repeatable): mobile its whole\n"
            "                           answer (Memory/Reason/Action), pc its explanation and action\n"
            "                           line, web 'Thought:..  Action:..  Observation:..'; the\n"
            "                           previous call's \"raw\" may be given as it is (its thinking\n"
            "                           and box tokens are dropped)\n"
            "  --history FILE           earlier steps as a JSON array of strings (before any --step)\n"
            "  --previous-screenshot FILE\n"
            "                           pc: the screen before one of the last 4 steps (repeatable,\n"
            "                           oldest first); sent at 50%% x 50%% after the current one\n"
            "  --apps LIST              mobile: the apps open_app may name, comma-separated\n"
            "                           (default: AndroidWorld's list)\n"
            "  --memory TEXT            pc: the memory JSON list (default []); web: the memory JSON\n"
            "                           object (default {})\n"
            "  --url URL                web: the site of the task (required for web)\n"
            "  --elements FILE          web: the element list ('[0]: \"Home\";  [1]: <input> \"\";...')\n"
            "  --draw OUT.png           write the screenshot with the action drawn on it\n"
            "  --raw FILE               parse a saved model answer ('-': standard input) instead of\n"
            "                           running the model\n"
            "  --print-prompt           print the filled prompt and exit (no model, no screenshot)\n"
            "  --pretty                 indent the JSON\n\n"
            "output: {\"mode\", \"action\", the model's coordinates (box_2d / start_box, end_box),\n"
            "\"box\" [x1,y1,x2,y2] and \"point\" [x,y] (and \"end_point\") in pixels, the action's\n"
            "arguments (text, override, direction, step, keys, app_name, goal_status, element,\n"
            "element_info), \"memory\", \"reason\", \"width\", \"height\", \"raw\"}. A malformed answer\n"
            "prints {\"mode\", \"error\", \"raw\"} and exits with status 3; other failures exit 1, bad\n"
            "options 2.\n\n"
            "%s",
            cli_opts_help);
}

/* 1 if s is well-formed UTF-8 (JSON output must be) */
static int utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2) || (n == 3 && *p > 0xF4)) return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* A whole file ('-': standard input), NUL-terminated; NULL with a message. */
static char *read_all(const char *path, const char *what) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "glmv agent: cannot open %s %s\n", what, path);
        return NULL;
    }
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n > MAX_FILE) {
            fprintf(stderr, "glmv agent: %s %s is larger than %d MiB\n", what, path,
                    (int)(MAX_FILE >> 20));
            free(buf);
            buf = NULL;
            break;
        }
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = buf && ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        fprintf(stderr, "glmv agent: cannot read %s %s\n", what, path);
        free(buf);
        return NULL;
    }
    if (buf) buf[n] = 0;
    if (buf && (strlen(buf) != n || !utf8_ok(buf))) {
        fprintf(stderr, "glmv agent: %s %s is not UTF-8 text\n", what, path);
        free(buf);
        return NULL;
    }
    return buf;
}

static void print_json(cJSON *o, int pretty) {
    char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
}

static int quiet(void *user, const glmv_event *ev) {
    (void)user;
    (void)ev;
    return 0;
}

int cmd_agent(int argc, char **argv) {
    cli_opts o;
    cli_opts_init(&o);
    const char *mode_s = NULL, *shot = NULL, *task = NULL, *history_file = NULL, *apps = NULL,
               *memory = NULL, *url = NULL, *elements_file = NULL, *draw = NULL, *raw_file = NULL;
    int print_prompt = 0, pretty = 0, n_steps = 0, n_prev = 0;
    static const char *steps_arg[MAX_STEPS];
    const char *prev[MAX_PREVIOUS];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--mode") && has_val) {
            mode_s = argv[++i];
        } else if ((!strcmp(a, "-s") || !strcmp(a, "--screenshot")) && has_val) {
            shot = argv[++i];
        } else if (!strcmp(a, "--task") && has_val) {
            task = argv[++i];
        } else if (!strcmp(a, "--step") && has_val) {
            if (n_steps == MAX_STEPS) {
                fprintf(stderr, "glmv agent: at most %d steps\n", MAX_STEPS);
                return EXIT_USAGE;
            }
            steps_arg[n_steps++] = argv[++i];
        } else if (!strcmp(a, "--previous-screenshot") && has_val) {
            if (n_prev == MAX_PREVIOUS) {
                fprintf(stderr, "glmv agent: at most %d previous screenshots (the guide's 5 images)\n",
                        MAX_PREVIOUS);
                return EXIT_USAGE;
            }
            prev[n_prev++] = argv[++i];
        } else if (!strcmp(a, "--history") && has_val) {
            history_file = argv[++i];
        } else if (!strcmp(a, "--apps") && has_val) {
            apps = argv[++i];
        } else if (!strcmp(a, "--memory") && has_val) {
            memory = argv[++i];
        } else if (!strcmp(a, "--url") && has_val) {
            url = argv[++i];
        } else if (!strcmp(a, "--elements") && has_val) {
            elements_file = argv[++i];
        } else if (!strcmp(a, "--draw") && has_val) {
            draw = argv[++i];
        } else if (!strcmp(a, "--raw") && has_val) {
            raw_file = argv[++i];
        } else if (!strcmp(a, "--print-prompt")) {
            print_prompt = 1;
        } else if (!strcmp(a, "--pretty")) {
            pretty = 1;
        } else {
            fprintf(stderr, "glmv agent: unknown or incomplete option '%s' (see glmv agent --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (!mode_s || agent_mode_parse(mode_s) < 0) {
        fprintf(stderr, "glmv agent: --mode mobile, pc or web is required%s%s%s\n",
                mode_s ? " (got '" : "", mode_s ? mode_s : "", mode_s ? "')" : "");
        return EXIT_USAGE;
    }
    agent_mode mode = (agent_mode)agent_mode_parse(mode_s);
    const char *texts[] = {task, apps, memory, url};
    for (int i = 0; i < 4 + n_steps; i++) {
        const char *t = i < 4 ? texts[i] : steps_arg[i - 4];
        if (t && !utf8_ok(t)) {
            fprintf(stderr, "glmv agent: an argument is not UTF-8 text\n");
            return EXIT_USAGE;
        }
    }
    int run_model = !raw_file && !print_prompt;
    if (!shot && !print_prompt) {
        fprintf(stderr, "glmv agent: --screenshot FILE is required\n");
        return EXIT_USAGE;
    }
    if (!task && !raw_file) {
        fprintf(stderr, "glmv agent: --task TEXT is required\n");
        return EXIT_USAGE;
    }
    if (n_prev && mode != AGENT_PC) {
        fprintf(stderr, "glmv agent: --previous-screenshot is pc's; %s sends the current screen only\n",
                mode_s);
        return EXIT_USAGE;
    }
    if (raw_file && print_prompt) {
        fprintf(stderr, "glmv agent: --raw and --print-prompt do not go together\n");
        return EXIT_USAGE;
    }
    if (raw_file && task && !strcmp(task, "-") && !strcmp(raw_file, "-")) {
        fprintf(stderr, "glmv agent: the task and the answer cannot both come from standard input\n");
        return EXIT_USAGE;
    }

    int rc = EXIT_FAIL, n_hist = 0;
    char *task_buf = NULL, *hist_buf = NULL, *elements = NULL, *raw = NULL, *prompt = NULL;
    cJSON *hist_json = NULL;
    const char **hist = NULL;
    glmv_model *m = NULL;
    glmv_session *s = NULL;
    glmv_rgb im = {0};
    glmv_result res;
    int have_res = 0;
    void *prev_png[MAX_PREVIOUS] = {0};
    char err[GLMV_ERR_SIZE];
    if (task && !strcmp(task, "-")) {
        if (!(task = task_buf = read_all("-", "task from"))) goto out;
        size_t n = strlen(task_buf); /* `echo TASK |` ends it with a newline that is not the task's */
        while (n && (task_buf[n - 1] == '\n' || task_buf[n - 1] == '\r')) task_buf[--n] = 0;
    }

    /* the prompt (also checked with --raw: the options must make sense for the mode) */
    if (history_file) {
        if (!(hist_buf = read_all(history_file, "history file"))) goto out;
        hist_json = cJSON_Parse(hist_buf);
        int okj = cJSON_IsArray(hist_json);
        for (const cJSON *c = okj ? hist_json->child : NULL; c; c = c->next)
            okj &= cJSON_IsString(c) && utf8_ok(c->valuestring);
        if (!okj) {
            fprintf(stderr, "glmv agent: %s is not a JSON array of UTF-8 strings (one per earlier step)\n",
                    history_file);
            rc = EXIT_USAGE;
            goto out;
        }
        n_hist = cJSON_GetArraySize(hist_json);
    }
    hist = calloc((size_t)(n_hist + n_steps + 1), sizeof *hist);
    if (!hist) goto out;
    {
        int k = 0;
        for (const cJSON *c = hist_json ? hist_json->child : NULL; c; c = c->next) hist[k++] = c->valuestring;
        for (int i = 0; i < n_steps; i++) hist[k++] = steps_arg[i];
        n_hist = k;
    }
    if (elements_file && !(elements = read_all(elements_file, "element list"))) goto out;
    if (elements) { /* the file's last newline is not part of the list */
        size_t n = strlen(elements);
        if (n && elements[n - 1] == '\n') elements[--n] = 0;
    }
    if (task) {
        agent_prompt_args pa = {.mode = mode, .task = task, .history = hist, .n_history = n_hist,
                                .apps = apps, .memory = memory, .url = url, .elements = elements};
        prompt = agent_prompt(&pa, err, sizeof err);
        if (!prompt) {
            fprintf(stderr, "glmv agent: %s\n", err);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    if (print_prompt) {
        puts(prompt);
        rc = EXIT_OK;
        goto out;
    }

    /* the screenshot: its size maps the coordinates; the model sees it as is */
    if (glmv_image_decode_file(shot, (int64_t)1 << 27, &im, err)) {
        fprintf(stderr, "glmv agent: %s\n", err);
        goto out;
    }

    if (run_model) {
        if (cli_load_model(&o, &m, &s)) goto out;
        glmv_sampling sp;
        cli_opts_sampling(&o, m, &sp);
        sp.keep_tags = 1; /* the answer with its tags, as the official clients parse it */
        /* the current screen first, then pc's earlier ones at half size, oldest first */
        glmv_part parts[MAX_PREVIOUS + 2] = {{.kind = GLMV_PART_IMAGE, .path = shot}};
        int n_parts = 1;
        for (int i = 0; i < n_prev; i++) {
            size_t sz;
            if (agent_half_png(prev[i], &prev_png[i], &sz, err, sizeof err)) {
                fprintf(stderr, "glmv agent: --previous-screenshot %s: %s\n", prev[i], err);
                goto out;
            }
            parts[n_parts++] = (glmv_part){.kind = GLMV_PART_IMAGE, .data = prev_png[i], .size = sz};
        }
        parts[n_parts++] = (glmv_part){.kind = GLMV_PART_TEXT, .text = prompt};
        glmv_message msg = {"user", parts, n_parts, NULL};
        if (glmv_generate(s, &msg, 1, &sp, quiet, NULL, &res, err)) {
            fprintf(stderr, "glmv agent: %s\n", err);
            goto out;
        }
        have_res = 1;
        if (o.mp.verbose)
            fprintf(stderr, "glmv agent: %d prompt tokens (%d from the screenshots), %d generated (%s)\n",
                    res.prompt_tokens, res.image_tokens, res.completion_tokens, res.finish_reason);
        raw = strdup(res.content ? res.content : "");
        if (!raw) goto out;
    } else if (!(raw = read_all(raw_file, "answer file"))) {
        goto out;
    }

    agent_action act;
    if (agent_parse(mode, raw, &act, err, sizeof err)) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", agent_mode_name(mode));
        cJSON_AddStringToObject(j, "error", err);
        if (have_res) cJSON_AddStringToObject(j, "finish_reason", res.finish_reason);
        cJSON_AddStringToObject(j, "raw", raw);
        print_json(j, pretty);
        cJSON_Delete(j);
        fprintf(stderr, "glmv agent: malformed answer: %s%s\n", err,
                have_res && !strcmp(res.finish_reason, "length")
                    ? " (the generation hit its token limit: raise -n or set --max-thinking)"
                    : "");
        rc = EXIT_MALFORMED;
        goto out;
    }
    agent_map(&act, im.w, im.h);
    if (draw && agent_draw(&act, shot, draw, err, sizeof err)) {
        fprintf(stderr, "glmv agent: --draw: %s\n", err);
        agent_action_free(&act);
        goto out;
    }
    cJSON *j = agent_action_json(&act, im.w, im.h, raw);
    if (have_res) cJSON_AddStringToObject(j, "finish_reason", res.finish_reason);
    print_json(j, pretty);
    cJSON_Delete(j);
    agent_action_free(&act);
    rc = EXIT_OK;
out:
    if (have_res) glmv_result_free(&res);
    for (int i = 0; i < MAX_PREVIOUS; i++) free(prev_png[i]);
    glmv_session_free(s);
    glmv_model_free(m);
    glmv_rgb_free(&im);
    free(prompt);
    free(raw);
    free(elements);
    free(hist);
    cJSON_Delete(hist_json);
    free(hist_buf);
    free(task_buf);
    return rc;
}
