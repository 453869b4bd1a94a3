/* eval.c -- `glmv eval`: accuracy on a set of questions with reference
 * answers (a JSONL file, eval.h), under one thinking budget or a sweep of them.
 * Every line is checked before the model loads; then each item runs through
 * the engine (or a server, --url), its answer is matched by the item's rule,
 * and a table per budget gives accuracy, thinking and answer tokens and time
 * per category. --out writes one JSON line per item and budget, --plot an SVG
 * of accuracy against the budget. Greedy unless a temperature is given.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"

#define MAX_BUDGETS 32
#define MAX_LINE ((size_t)16 << 20)
#define MAX_CATEGORIES 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv eval ITEMS.jsonl [-m DIR | --url URL] [options]\n\n"
            "Accuracy on a set of questions with reference answers, one JSON object per line:\n"
            "  {\"id\": \"7\", \"category\": \"count\", \"images\": [\"7.png\"], \"question\": \"How many?\",\n"
            "   \"answer\": \"4\", \"match\": \"number\"}\n"
            "match: exact (default; case and spacing ignored), number (\"tolerance\": absolute,\n"
            "\"rel_tolerance\": relative), choice (\"choices\": [...]; the answer is a letter or an\n"
            "option), regex (\"answer\" is a PCRE2 pattern). Media paths are relative to the file.\n\n"
            "  --budget N            thinking budget: after N thinking tokens </think><answer> is\n"
            "                        forced (N >= 1, or 'unlimited': the default)\n"
            "  --budgets LIST        a sweep, e.g. 1,8,32,unlimited: every item at every budget\n"
            "  --limit N             the first N items of each category\n"
            "  --category C[,C...]   only these categories (repeatable)\n"
            "  --out FILE            one JSON line per item and budget: id, category, budget,\n"
            "                        expected, got, ok, thinking_tokens, answer_tokens, seconds\n"
            "  --plot FILE.svg       accuracy against the budget, per category and overall\n"
            "  --min-accuracy X      exit 3 when the overall accuracy at any budget is below X (0-1)\n"
            "  --url URL             ask a running server (glmv serve, or any OpenAI-compatible\n"
            "                        chat completions API) instead of loading a model: http://host:port\n"
            "  --api-key KEY         its key (default: $GLMV_API_KEY)\n"
            "  --api-model NAME      the model name sent to it (default: glmv)\n"
            "Decoding is greedy unless --temp > 0 is given; with sampling each item's seed is\n"
            "--seed plus its line number. Exit status: 0 done, 1 the model or server failed,\n"
            "2 bad options or items, 3 below --min-accuracy.\n\n%s",
            cli_opts_help);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* "unlimited" -> 0, else an integer >= 1. */
static int parse_budget(const char *flag, const char *s, size_t n, int *out) {
    if ((n == 9 && !strncmp(s, "unlimited", 9))) return *out = 0, 0;
    char buf[32];
    if (n == 0 || n >= sizeof buf) goto bad;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (*end || errno || v > (1 << 24)) goto bad;
    if (v < 1) {
        fprintf(stderr, "glmv eval: %s: a budget of %ld tokens cannot be run: the smallest is 1 "
                        "(the engine reads 0 as no budget; write 'unlimited' for that)\n", flag, v);
        return -1;
    }
    *out = (int)v;
    return 0;
bad:
    fprintf(stderr, "glmv eval: %s expects budgets as integers in [1, %d] or 'unlimited', got '%.*s'\n",
            flag, 1 << 24, (int)n, s);
    return -1;
}

static int parse_budgets(const char *s, int *budgets, int *n) {
    *n = 0;
    for (const char *p = s;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (*n >= MAX_BUDGETS) {
            fprintf(stderr, "glmv eval: --budgets: at most %d budgets\n", MAX_BUDGETS);
            return -1;
        }
        if (parse_budget("--budgets", p, len, &budgets[*n])) return -1;
        for (int i = 0; i < *n; i++)
            if (budgets[i] == budgets[*n]) {
                fprintf(stderr, "glmv eval: --budgets: '%.*s' is given twice\n", (int)len, p);
                return -1;
            }
        ++*n;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The items                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    eval_item *v;
    int n, cap;
} item_list;

static void items_free(item_list *l) {
    for (int i = 0; i < l->n; i++) eval_item_free(&l->v[i]);
    free(l->v);
}

/* Every line parsed and checked; the first bad one is reported and fails the load. */
static int items_load(item_list *l, const char *path) {
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "glmv eval: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "glmv eval: %s: %s\n", path,
                S_ISDIR(st.st_mode) ? "is a directory, not an items file" : "is not a regular file");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "glmv eval: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (dir) {
        if (slash == dir) slash[1] = 0;
        else if (slash) *slash = 0;
        else dir[0] = 0;
    }
    char *line = NULL, err[512];
    size_t cap = 0;
    ssize_t len;
    int ln = 0, rc = 0;
    while (dir && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        if ((size_t)len > MAX_LINE) {
            fprintf(stderr, "glmv eval: %s:%d: line longer than %zu MiB\n", path, ln, MAX_LINE >> 20);
            rc = -1;
            break;
        }
        if (strlen(line) != (size_t)len) {
            fprintf(stderr, "glmv eval: %s:%d: a NUL byte in the line (not a text file?)\n", path, ln);
            rc = -1;
            break;
        }
        if (l->n == l->cap) {
            int nc = l->cap ? l->cap * 2 : 256;
            eval_item *nv = realloc(l->v, sizeof *nv * (size_t)nc);
            if (!nv) {
                rc = -1;
                fprintf(stderr, "glmv eval: out of memory\n");
                break;
            }
            l->v = nv;
            l->cap = nc;
        }
        int r = eval_item_parse(&l->v[l->n], line, ln, dir, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "glmv eval: %s:%d: %s\n", path, ln, err);
            rc = -1;
            break;
        }
        if (r > 0) continue;
        for (int i = 0; i < l->n; i++)
            if (!strcmp(l->v[i].id, l->v[l->n].id)) {
                fprintf(stderr, "glmv eval: %s:%d: id '%s' is also the id of line %d\n", path, ln,
                        l->v[i].id, l->v[i].line);
                eval_item_free(&l->v[l->n]);
                rc = -1;
                break;
            }
        if (rc) break;
        l->n++;
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "glmv eval: %s: read error\n", path);
        rc = -1;
    }
    if (!rc && l->n == 0) {
        fprintf(stderr, "glmv eval: %s: no items\n", path);
        rc = -1;
    }
    free(line);
    free(dir);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tallies and tables                                                       */
/* ------------------------------------------------------------------------ */

typedef struct {
    int ok, n;
    double think, answer, secs; /* sums */
} tally;

static void tally_add(tally *t, int ok, int think, int answer, double secs) {
    t->ok += ok;
    t->n++;
    t->think += think;
    t->answer += answer;
    t->secs += secs;
}

static double acc_of(const tally *t) { return t->n ? (double)t->ok / t->n : NAN; }

static void budget_name(int b, char *buf, size_t n) {
    if (b) snprintf(buf, n, "%d", b);
    else snprintf(buf, n, "unlimited");
}

static void print_row(const char *name, const tally *t) {
    printf("%-14s %7d %6d %8.1f%% %9.1f %7.1f %8.1f\n", name, t->ok, t->n, 100 * acc_of(t),
           t->n ? t->think / t->n : 0.0, t->n ? t->answer / t->n : 0.0, t->secs);
}

static void print_table(int budget, const char *const *cats, int n_cats, const tally *row,
                        const tally *all) {
    char b[32];
    budget_name(budget, b, sizeof b);
    printf("\nthinking budget: %s%s\n", b, budget == 1 ? " token" : budget ? " tokens" : "");
    printf("%-14s %7s %6s %9s %9s %7s %8s\n", "category", "correct", "n", "accuracy", "thinking",
           "answer", "seconds");
    for (int c = 0; c < n_cats; c++)
        if (row[c].n) print_row(cats[c], &row[c]);
    print_row("overall", all);
}

/* ------------------------------------------------------------------------ */
/* Progress on a terminal                                                   */
/* ------------------------------------------------------------------------ */

static void progress(int done, int total, int budget, const tally *all, double t0) {
    char b[32];
    budget_name(budget, b, sizeof b);
    const int w = 30;
    int fill = total ? done * w / total : w;
    double el = now_s() - t0, eta = done ? el / done * (total - done) : 0;
    fprintf(stderr, "\r\033[K[");
    for (int i = 0; i < w; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %d/%d  budget %s  accuracy %.1f%%  %.0f s, %.0f s left", done, total, b,
            all->n ? 100.0 * all->ok / all->n : 0.0, el, eta);
    fflush(stderr);
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    glmv_model *m;
    glmv_session *s;
    glmv_sampling sp;
    eval_url *url;
    char *url_sampling; /* the request's sampling fields, a JSON object */
} runner;

/* One item at one budget; 0 ok (content malloc'd), -1 with err. */
static int run_item(runner *r, const eval_item *it, int budget, char **content, int *think,
                    int *answer, const char **finish, char *err, size_t errsz) {
    *content = NULL;
    if (r->url) {
        eval_url_result res;
        static char fin[16];
        char *body = r->url_sampling;
        char *seeded = NULL;
        if (strstr(body, "\"seed\"")) { /* a sampled run: this item's own seed */
            cJSON *j = cJSON_Parse(body);
            cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "seed");
            cJSON_SetNumberValue(sd, sd->valuedouble + it->line);
            seeded = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
            if (seeded) body = seeded;
        }
        int rc = eval_url_ask(r->url, it, body, budget, &res, err, errsz);
        free(seeded);
        if (rc) return -1;
        *content = res.content;
        *think = res.reasoning_tokens;
        *answer = res.completion_tokens - res.reasoning_tokens;
        snprintf(fin, sizeof fin, "%s", res.finish);
        *finish = fin;
        return 0;
    }
    glmv_part parts[EVAL_MAX_IMAGES + 2];
    int n = 0;
    memset(parts, 0, sizeof parts);
    for (int i = 0; i < it->n_images; i++) {
        parts[n].kind = GLMV_PART_IMAGE;
        parts[n++].path = it->images[i];
    }
    if (it->video) {
        parts[n].kind = GLMV_PART_VIDEO;
        parts[n++].path = it->video;
    }
    parts[n].kind = GLMV_PART_TEXT;
    parts[n++].text = it->question;
    glmv_message msg = {"user", parts, n, NULL};
    glmv_sampling sp = r->sp;
    sp.max_thinking_tokens = budget;
    if (sp.do_sample) sp.seed += (uint64_t)it->line;
    glmv_result res;
    char e[GLMV_ERR_SIZE];
    if (glmv_generate(r->s, &msg, 1, &sp, NULL, NULL, &res, e)) {
        snprintf(err, errsz, "%s", e);
        return -1;
    }
    *content = strdup(res.content ? res.content : "");
    *think = res.reasoning_tokens;
    *answer = res.completion_tokens - res.reasoning_tokens;
    *finish = res.finish_reason ? res.finish_reason : "stop";
    glmv_result_free(&res);
    return *content ? 0 : (snprintf(err, errsz, "out of memory"), -1);
}

/* The request's sampling fields in --url mode: greedy (temperature 0) unless --temp. */
static char *url_sampling(const cli_opts *o) {
    cJSON *j = cJSON_CreateObject();
    int sample = o->set_temp && o->temp > 0 && !o->greedy;
    cJSON_AddNumberToObject(j, "temperature", sample ? o->temp : 0);
    if (o->max_tokens) cJSON_AddNumberToObject(j, "max_tokens", o->max_tokens);
    if (o->set_top_p) cJSON_AddNumberToObject(j, "top_p", o->top_p);
    if (o->set_top_k) cJSON_AddNumberToObject(j, "top_k", o->top_k);
    if (o->set_repeat_penalty) cJSON_AddNumberToObject(j, "repetition_penalty", o->repeat_penalty);
    if (o->set_presence) cJSON_AddNumberToObject(j, "presence_penalty", o->presence_penalty);
    if (o->set_frequency) cJSON_AddNumberToObject(j, "frequency_penalty", o->frequency_penalty);
    if (sample) cJSON_AddNumberToObject(j, "seed", o->set_seed ? (double)o->seed : 0);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void write_record(FILE *f, const eval_item *it, int budget, const char *got, int ok,
                         int think, int answer, double secs, const char *finish) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", it->id);
    cJSON_AddStringToObject(j, "category", it->category);
    cJSON_AddNumberToObject(j, "line", it->line);
    if (budget) cJSON_AddNumberToObject(j, "budget", budget);
    else cJSON_AddNullToObject(j, "budget");
    cJSON_AddStringToObject(j, "match", eval_rule_name(it->rule));
    cJSON_AddStringToObject(j, "expected", it->answer);
    cJSON_AddStringToObject(j, "got", got);
    cJSON_AddBoolToObject(j, "ok", ok);
    cJSON_AddNumberToObject(j, "thinking_tokens", think);
    cJSON_AddNumberToObject(j, "answer_tokens", answer);
    cJSON_AddNumberToObject(j, "seconds", round(secs * 1e4) / 1e4);
    cJSON_AddStringToObject(j, "finish_reason", finish);
    char *s = cJSON_PrintUnformatted(j);
    if (s) fprintf(f, "%s\n", s);
    free(s);
    cJSON_Delete(j);
}

int cmd_eval(int argc, char **argv) {
    cli_opts o;
    cli_opts_init(&o);
    const char *items_path = NULL, *out_path = NULL, *plot_path = NULL, *url = NULL;
    const char *api_key = NULL, *api_model = NULL;
    const char *cats_arg[MAX_CATEGORIES];
    int n_cats_arg = 0, budgets[MAX_BUDGETS], n_budgets = 0, budget_flag = 0;
    long limit = 0;
    double min_acc = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--budget") && has_val) {
            const char *v = argv[++i];
            if (budget_flag++) goto twice;
            if (parse_budget(a, v, strlen(v), &budgets[0])) return 2;
            n_budgets = 1;
        } else if (!strcmp(a, "--budgets") && has_val) {
            if (budget_flag++) goto twice;
            if (parse_budgets(argv[++i], budgets, &n_budgets)) return 2;
        } else if (!strcmp(a, "--limit") && has_val) {
            if (cli_parse_int(a, argv[++i], 1, 1 << 30, &limit)) return 2;
        } else if (!strcmp(a, "--category") && has_val) {
            if (n_cats_arg >= MAX_CATEGORIES) {
                fprintf(stderr, "glmv eval: at most %d --category\n", MAX_CATEGORIES);
                return 2;
            }
            cats_arg[n_cats_arg++] = argv[++i];
        } else if (!strcmp(a, "--out") && has_val) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--plot") && has_val) {
            plot_path = argv[++i];
        } else if (!strcmp(a, "--min-accuracy") && has_val) {
            if (cli_parse_float(a, argv[++i], 0, 1, &min_acc)) return 2;
        } else if (!strcmp(a, "--url") && has_val) {
            url = argv[++i];
        } else if (!strcmp(a, "--api-key") && has_val) {
            api_key = argv[++i];
        } else if (!strcmp(a, "--api-model") && has_val) {
            api_model = argv[++i];
        } else if (a[0] != '-' && !items_path) {
            items_path = a;
        } else {
            fprintf(stderr, "glmv eval: unknown or incomplete option '%s' (see glmv eval --help)\n", a);
            return 2;
        }
    }
    if (0) {
    twice:
        fprintf(stderr, "glmv eval: give one of --budget and --budgets, once\n");
        return 2;
    }
    if (!items_path) {
        fprintf(stderr, "glmv eval: an items file is required: glmv eval ITEMS.jsonl (see glmv eval --help)\n");
        return 2;
    }
    if (o.max_thinking) {
        if (budget_flag) {
            fprintf(stderr, "glmv eval: give the budget once: --max-thinking or --budget(s)\n");
            return 2;
        }
        budgets[0] = o.max_thinking;
        n_budgets = 1;
    }
    if (!n_budgets) budgets[n_budgets++] = 0;
    if (!url && (api_model || api_key)) {
        fprintf(stderr, "glmv eval: --api-key and --api-model go with --url\n");
        return 2;
    }
    if (url && o.model_dir) {
        fprintf(stderr, "glmv eval: -m and --url: the server has its own model (--api-model names it)\n");
        return 2;
    }
    if (plot_path && (strlen(plot_path) < 4 || strcmp(plot_path + strlen(plot_path) - 4, ".svg"))) {
        fprintf(stderr, "glmv eval: --plot writes SVG: give a file name ending in .svg, got '%s'\n", plot_path);
        return 2;
    }

    /* the items, every line checked before anything is loaded */
    item_list items = {0};
    if (items_load(&items, items_path)) {
        items_free(&items);
        return 2;
    }
    const char *cats[MAX_CATEGORIES];
    int n_cats = 0, rc = 2;
    for (int i = 0; i < items.n; i++) {
        int c = 0;
        while (c < n_cats && strcmp(cats[c], items.v[i].category)) c++;
        if (c == n_cats) {
            if (n_cats == MAX_CATEGORIES) {
                fprintf(stderr, "glmv eval: %s: more than %d categories\n", items_path, MAX_CATEGORIES);
                items_free(&items);
                return 2;
            }
            cats[n_cats++] = items.v[i].category;
        }
    }
    /* --category (comma lists allowed) and --limit pick the items to run */
    char *want = calloc((size_t)n_cats, 1);
    int *sel = malloc(sizeof(int) * (size_t)items.n), n_sel = 0;
    int *cat_of = malloc(sizeof(int) * (size_t)items.n);
    FILE *out = NULL;
    tally *rows = NULL;
    double *acc = NULL;
    runner rn = {0};
    if (!want || !sel || !cat_of) goto oom;
    for (int k = 0; k < n_cats_arg; k++)
        for (const char *p = cats_arg[k];;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            int f = -1;
            for (int j = 0; j < n_cats; j++)
                if (strlen(cats[j]) == len && !strncmp(cats[j], p, len)) f = j;
            if (f < 0) {
                fprintf(stderr, "glmv eval: no item has category '%.*s' (%s has:", (int)len, p, items_path);
                for (int j = 0; j < n_cats; j++) fprintf(stderr, " %s", cats[j]);
                fprintf(stderr, ")\n");
                goto done;
            }
            want[f] = 1;
            if (!c) break;
            p = c + 1;
        }
    {
        int taken[MAX_CATEGORIES] = {0};
        for (int i = 0; i < items.n; i++) {
            int c = 0;
            while (strcmp(cats[c], items.v[i].category)) c++;
            cat_of[i] = c;
            if (n_cats_arg && !want[c]) continue;
            if (limit && taken[c] >= limit) continue;
            taken[c]++;
            sel[n_sel++] = i;
        }
    }
    struct stat st_items, st_out; /* --out over the items file would destroy the set */
    if (out_path && !stat(items_path, &st_items) && !stat(out_path, &st_out) &&
        st_items.st_dev == st_out.st_dev && st_items.st_ino == st_out.st_ino) {
        fprintf(stderr, "glmv eval: --out %s is the items file itself\n", out_path);
        goto done;
    }
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "glmv eval: cannot write %s: %s\n", out_path, strerror(errno));
        goto done;
    }
    rows = calloc((size_t)(n_cats + 1) * (size_t)n_budgets, sizeof *rows);
    acc = malloc(sizeof *acc * (size_t)(n_cats + 1) * (size_t)n_budgets);
    if (!rows || !acc) goto oom;

    /* the model, or the server */
    rc = 1;
    char err[1024];
    if (url) {
        if (eval_url_open(&rn.url, url, api_key ? api_key : getenv("GLMV_API_KEY"), api_model, err,
                          sizeof err)) {
            fprintf(stderr, "glmv eval: %s\n", err);
            rc = 2;
            goto done;
        }
        if (!(rn.url_sampling = url_sampling(&o))) goto oom;
    } else {
        if (cli_load_model(&o, &rn.m, &rn.s)) goto done;
        cli_opts_sampling(&o, rn.m, &rn.sp);
        if (!o.set_temp || o.temp <= 0) rn.sp.do_sample = 0; /* greedy unless asked */
    }

    int tty = isatty(STDERR_FILENO), total = n_sel * n_budgets, done_n = 0;
    double t_start = now_s();
    for (int b = 0; b < n_budgets; b++) {
        tally *row = rows + (size_t)b * (n_cats + 1), *all = row + n_cats;
        for (int k = 0; k < n_sel; k++) {
            const eval_item *it = &items.v[sel[k]];
            if (tty && done_n == 0) progress(done_n, total, budgets[b], all, t_start);
            char *content;
            int think = 0, answer = 0;
            const char *finish = "stop";
            double t0 = now_s();
            if (run_item(&rn, it, budgets[b], &content, &think, &answer, &finish, err, sizeof err)) {
                if (tty) fprintf(stderr, "\r\033[K");
                fprintf(stderr, "glmv eval: item '%s' (%s line %d): %s\n", it->id, items_path, it->line, err);
                goto done;
            }
            double secs = now_s() - t0;
            char *got = eval_extract_answer(content);
            free(content);
            if (!got) goto oom;
            int ok = eval_match(it, got);
            tally_add(&row[cat_of[sel[k]]], ok, think, answer, secs);
            tally_add(all, ok, think, answer, secs);
            if (out) write_record(out, it, budgets[b], got, ok, think, answer, secs, finish);
            free(got);
            done_n++;
            if (tty) progress(done_n, total, budgets[b], all, t_start);
        }
        if (tty) fprintf(stderr, "\r\033[K");
        if (out) fflush(out);
        print_table(budgets[b], cats, n_cats, row, all);
        fflush(stdout);
    }
    if (n_budgets > 1) { /* the sweep at a glance */
        printf("\n%-10s", "budget");
        for (int c = 0; c < n_cats; c++)
            if (rows[c].n) printf(" %*.*s", 9, 9, cats[c]);
        printf(" %9s %9s %8s\n", "overall", "thinking", "seconds");
        for (int b = 0; b < n_budgets; b++) {
            const tally *row = rows + (size_t)b * (n_cats + 1);
            char name[32];
            budget_name(budgets[b], name, sizeof name);
            printf("%-10s", name);
            for (int c = 0; c < n_cats; c++)
                if (rows[c].n) printf(" %8.1f%%", 100 * acc_of(&row[c]));
            printf(" %8.1f%% %9.1f %8.1f\n", 100 * acc_of(&row[n_cats]),
                   row[n_cats].think / row[n_cats].n, row[n_cats].secs);
        }
    }
    rc = 0;
    if (out && (fflush(out) || ferror(out))) {
        fprintf(stderr, "glmv eval: cannot write %s\n", out_path);
        rc = 1;
    }
    if (plot_path) { /* the categories that ran, then overall */
        const char *names[MAX_CATEGORIES + 1];
        int nn = 0;
        for (int c = 0; c <= n_cats; c++) {
            if (c < n_cats && !rows[c].n) continue;
            names[nn] = c < n_cats ? cats[c] : "overall";
            for (int b = 0; b < n_budgets; b++)
                acc[nn * n_budgets + b] = acc_of(&rows[(size_t)b * (n_cats + 1) + c]);
            nn++;
        }
        if (eval_plot_svg(plot_path, budgets, n_budgets, names, nn, acc, err, sizeof err)) {
            fprintf(stderr, "glmv eval: %s\n", err);
            rc = 1;
        }
    }
    if (!rc && min_acc >= 0)
        for (int b = 0; b < n_budgets; b++) {
            double a = acc_of(&rows[(size_t)b * (n_cats + 1) + n_cats]);
            char name[32];
            budget_name(budgets[b], name, sizeof name);
            if (a < min_acc) {
                fprintf(stderr, "glmv eval: overall accuracy %.1f%% at budget %s is below "
                                "--min-accuracy %.1f%%\n", 100 * a, name, 100 * min_acc);
                rc = 3;
            }
        }
    goto done;
oom:
    fprintf(stderr, "glmv eval: out of memory\n");
    rc = 1;
done:
    if (out) fclose(out);
    eval_url_close(rn.url);
    free(rn.url_sampling);
    glmv_session_free(rn.s);
    glmv_model_free(rn.m);
    free(rows);
    free(acc);
    free(want);
    free(sel);
    free(cat_of);
    items_free(&items);
    return rc;
}
