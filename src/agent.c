/* agent.c -- the GUI agent's prompts and answers (agent.h): fill the official
 * template of a mode, parse the model's answer into an agent_action, map its
 * coordinates to pixels, and write it as JSON. Pure text work: no model, no
 * image (drawing is agent_draw.c).
 *
 * The parsers accept the forms the prompt shows the model -- mobile's JSON
 * also in the Python spelling the document's own prompt uses (single quotes,
 * True/False) -- and refuse everything else with a message that names what
 * is wrong. A refusal is an answer too: the caller reports it with the raw
 * text rather than acting on a guess. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/* ------------------------------------------------------------------------ */
/* Small text helpers                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* sbuf -> malloc'd string ("" when empty), NULL when out of memory */
static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) return calloc(1, 1);
    return b->p;
}

static void set_err(char *err, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* [s, e) without surrounding white space, malloc'd */
static char *dup_trim(const char *s, const char *e) {
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    char *r = malloc((size_t)(e - s) + 1);
    if (!r) return NULL;
    memcpy(r, s, (size_t)(e - s));
    r[e - s] = 0;
    return r;
}

/* The first line that starts (after blanks, and the "3. " the mobile prompt
 * numbers its parts with) with label; *count gets how many do. */
static const char *find_label(const char *s, const char *label, int *count) {
    const char *first = NULL;
    size_t n = strlen(label);
    int c = 0;
    for (const char *line = s; line && *line;) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (isdigit((unsigned char)*p) && p[1] == '.') {
            p += 2;
            while (*p == ' ') p++;
        }
        if (!strncmp(p, label, n)) {
            if (!first) first = p;
            c++;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (count) *count = c;
    return first;
}

/* ------------------------------------------------------------------------ */
/* Prompts                                                                   */
/* ------------------------------------------------------------------------ */

int agent_mode_parse(const char *s) {
    if (!strcmp(s, "mobile")) return AGENT_MOBILE;
    if (!strcmp(s, "pc")) return AGENT_PC;
    if (!strcmp(s, "web")) return AGENT_WEB;
    return -1;
}

const char *agent_mode_name(agent_mode m) {
    return m == AGENT_MOBILE ? "mobile" : m == AGENT_PC ? "pc" : "web";
}

typedef struct {
    const char *name, *value;
} placeholder;

/* The template with each placeholder replaced; the values are not searched again. */
static char *fill(const char *tmpl, const placeholder *ph, int n_ph) {
    sbuf b = {0};
    const char *p = tmpl;
    while (*p) {
        int hit = -1;
        if (*p == '#' || *p == '{')
            for (int i = 0; i < n_ph; i++)
                if (!strncmp(p, ph[i].name, strlen(ph[i].name))) {
                    hit = i;
                    break;
                }
        if (hit >= 0) {
            sb_puts(&b, ph[hit].value);
            p += strlen(ph[hit].name);
        } else {
            const char *q = p + 1;
            while (*q && *q != '#' && *q != '{') q++;
            sb_add(&b, p, (size_t)(q - p));
            p = q;
        }
    }
    return sb_take(&b);
}

/* A step as the history shows it: the answer part of a model output (a
 * saved raw output may be given as it is), without the grounding tokens --
 * the guide's "answer outputs (excluding <|start_of_box|> and <|end_of_box|>)". */
static void add_step(sbuf *b, const char *step) {
    char *t = agent_answer_text(step);
    if (!t) {
        b->oom = 1;
        return;
    }
    size_t n = strlen(t);
    while (n && (t[n - 1] == '\n' || t[n - 1] == ' ')) n--; /* a saved file's last newline */
    sb_add(b, t, n);
    free(t);
}

char *agent_prompt(const agent_prompt_args *a, char *err, size_t err_size) {
    const char *mode = agent_mode_name(a->mode);
    if (!a->task || !*a->task) {
        set_err(err, err_size, "a task is required");
        return NULL;
    }
    if (a->apps && a->mode != AGENT_MOBILE) {
        set_err(err, err_size, "the app list is for mobile, not %s", mode);
        return NULL;
    }
    if (a->memory && a->mode == AGENT_MOBILE) {
        set_err(err, err_size, "mobile's prompt has no memory part (its steps carry their Memory)");
        return NULL;
    }
    if ((a->url || a->elements) && a->mode != AGENT_WEB) {
        set_err(err, err_size, "a URL and an element list are for web, not %s", mode);
        return NULL;
    }
    if (a->mode == AGENT_WEB && (!a->url || !*a->url)) {
        set_err(err, err_size, "web's prompt names the site: a URL is required");
        return NULL;
    }
    sbuf h = {0};
    char *out = NULL;
    if (a->mode == AGENT_MOBILE) {
        /* "Step 0:\nMemory: ...\nReason: ...\nAction: {...}" */
        for (int i = 0; i < a->n_history; i++) {
            if (i) sb_puts(&h, "\n");
            sb_printf(&h, "Step %d:\n", i);
            add_step(&h, a->history[i]);
        }
        char *hist = sb_take(&h);
        if (!hist) goto oom;
        placeholder ph[] = {{"#SUPPORTED_APPS#", a->apps ? a->apps : agent_default_apps},
                            {"#COMMAND#", a->task},
                            {"#HISTORT_STEPS#", hist}};
        out = fill(agent_tmpl_mobile, ph, 3);
        free(hist);
    } else if (a->mode == AGENT_PC) {
        /* "History actions:\nstep 1: <explanation>\n<action>\n...Memory:\n[...]" */
        if (a->n_history > 0) sb_puts(&h, "History actions:\n");
        for (int i = 0; i < a->n_history; i++) {
            sb_printf(&h, "step %d: ", i + 1);
            add_step(&h, a->history[i]);
            sb_puts(&h, "\n");
        }
        sb_puts(&h, "Memory:\n");
        sb_puts(&h, a->memory ? a->memory : "[]");
        char *hist = sb_take(&h);
        if (!hist) goto oom;
        placeholder ph[] = {{"#TASK#", a->task}, {"#HISTORY_WITH_MEMORY#", hist}};
        out = fill(agent_tmpl_pc, ph, 2);
        free(hist);
    } else {
        /* "0.Thought:...    Action:...   Observation:..." */
        for (int i = 0; i < a->n_history; i++) {
            if (i) sb_puts(&h, "\n");
            sb_printf(&h, "%d.", i);
            add_step(&h, a->history[i]);
        }
        char *hist = sb_take(&h);
        if (!hist) goto oom;
        placeholder ph[] = {{"{TASK}", a->task},
                            {"#TASK#", a->task},
                            {"{Web}", a->url},
                            {"#PREVIOUS_ACTIONS#", hist},
                            {"{Memory}", a->memory ? a->memory : "{}"},
                            {"{web_text}", a->elements ? a->elements : ""}};
        out = fill(agent_tmpl_web, ph, 6);
        free(hist);
    }
    if (out) return out;
oom:
    set_err(err, err_size, "out of memory");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */
/* ------------------------------------------------------------------------ */

void agent_action_free(agent_action *a) {
    free(a->text);
    free(a->direction);
    free(a->keys);
    free(a->app_name);
    free(a->goal_status);
    free(a->element_info);
    free(a->memory);
    free(a->reason);
    memset(a, 0, sizeof *a);
}

char *agent_answer_text(const char *raw) {
    const char *s = raw, *e;
    for (const char *q = raw; (q = strstr(q, "</think>")); q += 8) s = q + 8;
    const char *ans = strstr(s, "<answer>");
    if (ans) s = ans + 8;
    e = ans && strstr(s, "</answer>") ? strstr(s, "</answer>") : s + strlen(s);
    static const char *const drop[] = {"<|begin_of_box|>", "<|end_of_box|>", "<|start_of_box|>"};
    sbuf b = {0};
    while (s < e) {
        int hit = -1;
        if (*s == '<')
            for (int i = 0; i < 3; i++)
                if (!strncmp(s, drop[i], strlen(drop[i]))) hit = i;
        if (hit >= 0) {
            s += strlen(drop[hit]);
        } else {
            sb_add(&b, s, 1);
            s++;
        }
    }
    return sb_take(&b);
}

/* --- mobile: "Action: {json}" ------------------------------------------- */

/* The action object as the prompt shows it -> strict JSON: strings in single
 * quotes become double-quoted, True/False become true/false. Any other bare
 * word (None, an unquoted <text>) is refused. */
static char *py_to_json(const char *s, size_t n, char *err, size_t err_size) {
    sbuf b = {0};
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"' || c == '\'') {
            char q = c;
            sb_add(&b, "\"", 1);
            i++;
            for (;;) {
                if (i >= n) {
                    set_err(err, err_size, "a string in the action is not closed");
                    free(b.p);
                    return NULL;
                }
                c = s[i];
                if (c == q) break;
                if (c == '\\' && i + 1 < n) {
                    if (q == '\'' && s[i + 1] == '\'') sb_add(&b, "'", 1);
                    else sb_add(&b, s + i, 2);
                    i += 2;
                    continue;
                }
                if (c == '"') sb_add(&b, "\\\"", 2); /* only reached inside '...' */
                else sb_add(&b, &c, 1);
                i++;
            }
            sb_add(&b, "\"", 1);
            i++;
        } else if (isalpha((unsigned char)c) || c == '_') {
            size_t j = i;
            while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_')) j++;
            size_t len = j - i;
            const char *w = NULL;
            if ((len == 4 && !strncmp(s + i, "True", 4)) || (len == 4 && !strncmp(s + i, "true", 4)))
                w = "true";
            else if ((len == 5 && !strncmp(s + i, "False", 5)) ||
                     (len == 5 && !strncmp(s + i, "false", 5)))
                w = "false";
            if (!w) {
                set_err(err, err_size, "the action holds '%.*s', which is not JSON (quote strings)",
                        (int)(len > 40 ? 40 : len), s + i);
                free(b.p);
                return NULL;
            }
            sb_puts(&b, w);
            i = j;
        } else {
            sb_add(&b, &c, 1);
            i++;
        }
    }
    char *r = sb_take(&b);
    if (!r) set_err(err, err_size, "out of memory");
    return r;
}

/* The end of the {...} starting at s (one past its '}'), quotes respected; NULL if unclosed. */
static const char *object_end(const char *s) {
    int depth = 0;
    char q = 0;
    for (const char *p = s; *p; p++) {
        if (q) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == q) q = 0;
        } else if (*p == '"' || *p == '\'') {
            q = *p;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) return p + 1;
        }
    }
    return NULL;
}

static int is_int_in(const cJSON *v, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (d != floor(d) || d < lo || d > hi) return 0;
    *out = (int)d;
    return 1;
}

/* box_2d: [[xmin,ymin,xmax,ymax]], integers in 0-999. empty_ok: swipe may
 * leave it empty ([] or [[]]), meaning the whole screen. */
static int mobile_box(const cJSON *v, agent_action *a, int empty_ok, char *err, size_t es) {
    if (empty_ok && cJSON_IsArray(v) &&
        (cJSON_GetArraySize(v) == 0 ||
         (cJSON_GetArraySize(v) == 1 && cJSON_IsArray(v->child) && cJSON_GetArraySize(v->child) == 0)))
        return 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 1 || !cJSON_IsArray(v->child) ||
        cJSON_GetArraySize(v->child) != 4) {
        set_err(err, es, "box_2d must be [[xmin,ymin,xmax,ymax]]");
        return -1;
    }
    int i = 0;
    for (const cJSON *c = v->child->child; c; c = c->next, i++)
        if (!is_int_in(c, 0, 999, &a->box[i])) {
            set_err(err, es, "box_2d coordinate %d is not an integer in 0-999", i + 1);
            return -1;
        }
    if (a->box[0] > a->box[2] || a->box[1] > a->box[3]) {
        set_err(err, es, "box_2d [%d,%d,%d,%d] has xmin > xmax or ymin > ymax", a->box[0],
                a->box[1], a->box[2], a->box[3]);
        return -1;
    }
    a->has_box = 1;
    return 0;
}

static int take_string(const cJSON *o, const char *key, char **out, char *err, size_t es) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        set_err(err, es, "%s needs \"%s\" as a string", cJSON_GetObjectItemCaseSensitive(o, "action_type")->valuestring, key);
        return -1;
    }
    *out = strdup(v->valuestring);
    return *out ? 0 : -1;
}

static int one_of(const char *s, const char *const *set) {
    for (int i = 0; set[i]; i++)
        if (!strcmp(s, set[i])) return 1;
    return 0;
}

static int parse_mobile(const char *ans, agent_action *a, char *err, size_t es) {
    int n_act;
    const char *act = find_label(ans, "Action:", &n_act);
    if (!act) {
        set_err(err, es, "the answer has no \"Action:\" line");
        return -1;
    }
    if (n_act > 1) {
        set_err(err, es, "the answer has %d \"Action:\" lines; one action per step", n_act);
        return -1;
    }
    const char *mem = find_label(ans, "Memory:", NULL), *rea = find_label(ans, "Reason:", NULL);
    if (mem && mem < act) a->memory = dup_trim(mem + 7, rea && rea > mem && rea < act ? rea : act);
    if (rea && rea < act) a->reason = dup_trim(rea + 7, act);
    const char *j = act + 7;
    while (isspace((unsigned char)*j)) j++;
    if (*j != '{') {
        set_err(err, es, "\"Action:\" is not followed by a JSON object");
        return -1;
    }
    const char *je = object_end(j);
    if (!je) {
        set_err(err, es, "the action's JSON object is not closed");
        return -1;
    }
    for (const char *p = je; *p; p++)
        if (!isspace((unsigned char)*p)) {
            set_err(err, es, "text follows the action's JSON object");
            return -1;
        }
    char *js = py_to_json(j, (size_t)(je - j), err, es);
    if (!js) return -1;
    const char *at_err = NULL;
    cJSON *o = cJSON_ParseWithOpts(js, &at_err, 1);
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        set_err(err, es, "the action is not valid JSON%s%.20s%s", at_err && *at_err ? " (near '" : "",
                at_err ? at_err : "", at_err && *at_err ? "')" : "");
        free(js);
        goto done;
    }
    free(js);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "action_type");
    if (!cJSON_IsString(at)) {
        set_err(err, es, "the action has no \"action_type\" string");
        goto done;
    }
    static const struct {
        const char *name, *keys; /* allowed keys besides action_type, space-separated */
    } acts[] = {
        {"status", "goal_status"},     {"answer", "text"},          {"click", "box_2d"},
        {"long_press", "box_2d"},      {"input_text", "text box_2d override"},
        {"keyboard_enter", ""},        {"navigate_home", ""},       {"navigate_back", ""},
        {"swipe", "direction box_2d"}, {"open_app", "app_name"},    {"wait", ""},
    };
    int k = -1;
    for (int i = 0; i < (int)(sizeof acts / sizeof acts[0]); i++)
        if (!strcmp(at->valuestring, acts[i].name)) k = i;
    if (k < 0) {
        set_err(err, es, "unknown action_type \"%.40s\" (mobile has status, answer, click, "
                         "long_press, input_text, keyboard_enter, navigate_home, navigate_back, "
                         "swipe, open_app, wait)", at->valuestring);
        goto done;
    }
    snprintf(a->action, sizeof a->action, "%s", acts[k].name);
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!strcmp(c->string, "action_type")) continue;
        const char *w = strstr(acts[k].keys, c->string);
        size_t len = strlen(c->string);
        if (!w || (w > acts[k].keys && w[-1] != ' ') || (w[len] && w[len] != ' ')) {
            set_err(err, es, "%s takes no \"%.40s\"", acts[k].name, c->string);
            goto done;
        }
    }
    const cJSON *box = cJSON_GetObjectItemCaseSensitive(o, "box_2d");
    const char *name = acts[k].name;
    if (!strcmp(name, "status")) {
        static const char *const st[] = {"complete", "infeasible", NULL};
        if (take_string(o, "goal_status", &a->goal_status, err, es)) goto done;
        if (!one_of(a->goal_status, st)) {
            set_err(err, es, "goal_status \"%.40s\" is neither complete nor infeasible", a->goal_status);
            goto done;
        }
    } else if (!strcmp(name, "answer")) {
        if (take_string(o, "text", &a->text, err, es)) goto done;
    } else if (!strcmp(name, "click") || !strcmp(name, "long_press")) {
        if (!box) {
            set_err(err, es, "%s needs box_2d", name);
            goto done;
        }
        if (mobile_box(box, a, 0, err, es)) goto done;
    } else if (!strcmp(name, "input_text")) {
        if (take_string(o, "text", &a->text, err, es)) goto done;
        if (!box) {
            set_err(err, es, "input_text needs box_2d (the text field)");
            goto done;
        }
        if (mobile_box(box, a, 0, err, es)) goto done;
        const cJSON *ov = cJSON_GetObjectItemCaseSensitive(o, "override");
        a->override = -1;
        if (ov) {
            if (!cJSON_IsBool(ov)) {
                set_err(err, es, "override must be true or false");
                goto done;
            }
            a->override = cJSON_IsTrue(ov);
        }
    } else if (!strcmp(name, "swipe")) {
        static const char *const dirs[] = {"up", "down", "left", "right", NULL};
        if (take_string(o, "direction", &a->direction, err, es)) goto done;
        if (!one_of(a->direction, dirs)) {
            set_err(err, es, "swipe direction \"%.40s\" is not up, down, left or right", a->direction);
            goto done;
        }
        if (box && mobile_box(box, a, 1, err, es)) goto done;
    } else if (!strcmp(name, "open_app")) {
        if (take_string(o, "app_name", &a->app_name, err, es)) goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

/* --- pc: "explanation\naction(key='value', ...)\nMemory:\n[...]" --------- */

#define PC_MAX_ARGS 8

typedef struct {
    char key[24];
    char *str; /* quoted value, or NULL */
    long num;  /* unquoted integer */
} pc_arg;

static const char *const pc_names[] = {"left_click", "right_click", "middle_click", "hover",
                                       "left_double_click", "left_drag", "key", "type",
                                       "scroll", "WAIT", "DONE", "FAIL", NULL};

static int ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* '[x,y]' (or '[x1,y1,x2,y2]') in 0-1000 -> n numbers */
static int pc_coords(const char *what, const char *s, int *v, int *n, char *err, size_t es) {
    const char *p = s;
    *n = 0;
    while (isspace((unsigned char)*p)) p++;
    if (*p++ != '[') goto bad;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!isdigit((unsigned char)*p) || *n == 4) goto bad;
        char *end;
        long x = strtol(p, &end, 10);
        if (x > 1000) {
            set_err(err, es, "%s coordinate %ld is outside 0-1000", what, x);
            return -1;
        }
        v[(*n)++] = (int)x;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != ']') goto bad;
        break;
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p || (*n != 2 && *n != 4)) goto bad;
    if (*n == 4 && (v[0] > v[2] || v[1] > v[3])) {
        set_err(err, es, "%s [%d,%d,%d,%d] has x1 > x2 or y1 > y2", what, v[0], v[1], v[2], v[3]);
        return -1;
    }
    return 0;
bad:
    set_err(err, es, "%s '%.60s' is not [x,y] with integers in 0-1000", what, s);
    return -1;
}

/* The call at p ("name(") -> args; *end one past ')'. */
static int pc_call_args(const char *p, pc_arg *args, int *n_args, const char **end, char *err,
                        size_t es) {
    *n_args = 0;
    p = strchr(p, '(') + 1;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (*p == ')' && *n_args == 0) break;
        const char *k = p;
        while (ident_char(*p)) p++;
        size_t kl = (size_t)(p - k);
        if (!kl || kl >= sizeof args[0].key) {
            set_err(err, es, "the action's arguments are not key='value' pairs");
            return -1;
        }
        if (*n_args == PC_MAX_ARGS) {
            set_err(err, es, "the action has too many arguments");
            return -1;
        }
        pc_arg *g = &args[(*n_args)++];
        memcpy(g->key, k, kl);
        g->key[kl] = 0;
        for (int i = 0; i < *n_args - 1; i++)
            if (!strcmp(args[i].key, g->key)) {
                set_err(err, es, "argument %s is given twice", g->key);
                return -1;
            }
        while (isspace((unsigned char)*p)) p++;
        if (*p++ != '=') {
            set_err(err, es, "argument %s has no '='", g->key);
            return -1;
        }
        while (isspace((unsigned char)*p)) p++;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            sbuf b = {0};
            while (*p && *p != q) {
                if (*p == '\\' && p[1]) {
                    char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1];
                    sb_add(&b, &c, 1);
                    p += 2;
                } else {
                    sb_add(&b, p++, 1);
                }
            }
            g->str = sb_take(&b);
            if (!*p) {
                set_err(err, es, "argument %s: the string is not closed", g->key);
                return -1;
            }
            if (!g->str) {
                set_err(err, es, "out of memory");
                return -1;
            }
            p++;
        } else if (isdigit((unsigned char)*p) || *p == '-') {
            char *e;
            g->num = strtol(p, &e, 10);
            if (e == p || (e == p + 1 && *p == '-')) {
                set_err(err, es, "argument %s has no value", g->key);
                return -1;
            }
            p = e;
        } else {
            set_err(err, es, "argument %s: its value is neither quoted nor an integer", g->key);
            return -1;
        }
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ')') break;
        set_err(err, es, "the action call is not closed with ')'");
        return -1;
    }
    *end = p + 1;
    return 0;
}

static pc_arg *pc_get(pc_arg *args, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(args[i].key, key)) return &args[i];
    return NULL;
}

static int parse_pc(const char *ans, agent_action *a, char *err, size_t es) {
    /* the one call of a known action: name( not preceded by a name character */
    const char *call = NULL;
    int k = -1, n_calls = 0;
    for (int i = 0; pc_names[i]; i++) {
        size_t len = strlen(pc_names[i]);
        for (const char *q = ans; (q = strstr(q, pc_names[i])); q += len) {
            if ((q > ans && ident_char(q[-1])) || q[len] != '(') continue;
            if (n_calls++ == 0 || q < call) call = q, k = i;
        }
    }
    if (!n_calls) {
        set_err(err, es, "the answer holds no action call such as left_click(start_box='[x,y]')");
        return -1;
    }
    if (n_calls > 1) {
        set_err(err, es, "the answer holds %d action calls; one action per step", n_calls);
        return -1;
    }
    pc_arg args[PC_MAX_ARGS];
    memset(args, 0, sizeof args);
    int n_args = 0, rc = -1;
    const char *end;
    if (pc_call_args(call, args, &n_args, &end, err, es)) goto done;
    const char *name = pc_names[k];
    snprintf(a->action, sizeof a->action, "%s", name);
    a->reason = dup_trim(ans, call);
    const char *m = strstr(end, "<memory>");
    if (m) {
        const char *me = strstr(m, "</memory>");
        a->memory = dup_trim(m + 8, me ? me : m + strlen(m));
    } else if ((m = find_label(end, "Memory:", NULL))) {
        a->memory = dup_trim(m + 7, m + strlen(m));
    }

    int pointer = k <= 4, drag = !strcmp(name, "left_drag"), scroll = !strcmp(name, "scroll");
    const char *allowed = pointer ? "start_box element_info"
                          : drag  ? "start_box end_box element_info"
                          : scroll ? "start_box direction step element_info"
                          : !strcmp(name, "key") ? "keys key"
                          : !strcmp(name, "type") ? "content"
                                                  : "";
    for (int i = 0; i < n_args; i++) {
        const char *w = strstr(allowed, args[i].key);
        size_t len = strlen(args[i].key);
        if (!w || (w > allowed && w[-1] != ' ') || (w[len] && w[len] != ' ')) {
            set_err(err, es, "%s takes no argument %s", name, args[i].key);
            goto done;
        }
        if (strcmp(args[i].key, "step") && !args[i].str) {
            set_err(err, es, "argument %s must be a quoted string", args[i].key);
            goto done;
        }
    }
    pc_arg *g;
    if (pointer || drag || scroll) {
        if (!(g = pc_get(args, n_args, "start_box"))) {
            set_err(err, es, "%s needs start_box='[x,y]'", name);
            goto done;
        }
        int v[4], n;
        if (pc_coords("start_box", g->str, v, &n, err, es)) goto done;
        if (n == 2) {
            a->has_point = 1;
            memcpy(a->point, v, sizeof a->point);
        } else {
            a->has_box = 1;
            memcpy(a->box, v, sizeof a->box);
        }
        if ((g = pc_get(args, n_args, "element_info"))) a->element_info = strdup(g->str);
    }
    if (drag) {
        int v[4], n;
        if (!(g = pc_get(args, n_args, "end_box"))) {
            set_err(err, es, "left_drag needs end_box='[x,y]'");
            goto done;
        }
        if (pc_coords("end_box", g->str, v, &n, err, es)) goto done;
        if (n != 2) {
            set_err(err, es, "end_box must be one point [x,y]");
            goto done;
        }
        a->has_end = 1;
        memcpy(a->end, v, sizeof a->end);
    }
    if (scroll) {
        if (!(g = pc_get(args, n_args, "direction")) || (strcmp(g->str, "up") && strcmp(g->str, "down"))) {
            set_err(err, es, "scroll needs direction='down' or direction='up'");
            goto done;
        }
        a->direction = strdup(g->str);
        a->scroll_step = 5; /* the document's default */
        if ((g = pc_get(args, n_args, "step"))) {
            if (g->str || g->num < 1 || g->num > 1000) {
                set_err(err, es, "scroll step must be an integer in 1-1000");
                goto done;
            }
            a->scroll_step = (int)g->num;
        }
    }
    if (!strcmp(name, "key")) {
        g = pc_get(args, n_args, "keys");
        if (!g) g = pc_get(args, n_args, "key");
        if (!g || !*g->str || (pc_get(args, n_args, "keys") && pc_get(args, n_args, "key"))) {
            set_err(err, es, "key needs one keys='...' (e.g. keys='ctrl+c')");
            goto done;
        }
        a->keys = strdup(g->str);
    }
    if (!strcmp(name, "type")) {
        if (!(g = pc_get(args, n_args, "content"))) {
            set_err(err, es, "type needs content='...'");
            goto done;
        }
        a->text = strdup(g->str);
    }
    rc = 0;
done:
    for (int i = 0; i < n_args; i++) free(args[i].str);
    return rc;
}

/* --- web: "Thought: ..\nAction: Click [5]\nMemory_Updated: .." ------------ */

/* "[N]" at *p -> N (or -1 for WINDOW when window_ok) */
static int web_label(const char **p, int window_ok, int *out) {
    const char *s = *p;
    if (*s++ != '[') return -1;
    while (*s == ' ') s++;
    if (window_ok && !strncmp(s, "WINDOW", 6)) {
        *out = -1;
        s += 6;
    } else {
        if (!isdigit((unsigned char)*s)) return -1;
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 100000) v = v * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s)) return -1;
        *out = (int)v;
    }
    while (*s == ' ') s++;
    if (*s++ != ']') return -1;
    *p = s;
    return 0;
}

static int parse_web(const char *ans, agent_action *a, char *err, size_t es) {
    int n_act;
    const char *act = find_label(ans, "Action:", &n_act);
    if (!act) {
        set_err(err, es, "the answer has no \"Action:\" line");
        return -1;
    }
    if (n_act > 1) {
        set_err(err, es, "the answer has %d \"Action:\" lines; one action per step", n_act);
        return -1;
    }
    const char *th = find_label(ans, "Thought:", NULL), *mu = find_label(ans, "Memory_Updated:", NULL);
    if (th && th < act) a->reason = dup_trim(th + 8, act);
    if (mu && mu > act) a->memory = dup_trim(mu + 15, mu + strlen(mu));
    char *s = dup_trim(act + 7, mu && mu > act ? mu : act + strlen(act));
    if (!s) {
        set_err(err, es, "out of memory");
        return -1;
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '.') s[--n] = 0; /* "Click [1]." and "Click [1]" both appear */
    int rc = -1;
    const char *p = s;
    a->element = -2;
    if (!strncmp(p, "Click ", 6)) {
        p += 6;
        snprintf(a->action, sizeof a->action, "Click");
        if (web_label(&p, 0, &a->element) || *p) goto bad;
    } else if (!strncmp(p, "Type ", 5)) {
        p += 5;
        snprintf(a->action, sizeof a->action, "Type");
        if (web_label(&p, 0, &a->element) || strncmp(p, "; [", 3) || s[n - 1] != ']') goto bad;
        a->text = dup_trim(p + 3, s + n - 1);
    } else if (!strncmp(p, "Scroll ", 7)) {
        p += 7;
        snprintf(a->action, sizeof a->action, "Scroll");
        if (web_label(&p, 1, &a->element) || strncmp(p, "; [", 3)) goto bad;
        p += 3;
        if (!strcmp(p, "up]") || !strcmp(p, "down]")) a->direction = dup_trim(p, p + strlen(p) - 1);
        else goto bad;
    } else if (!strcmp(p, "Wait") || !strcmp(p, "GoBack") || !strcmp(p, "Bing")) {
        snprintf(a->action, sizeof a->action, "%s", p);
    } else if (!strncmp(p, "ANSWER;", 7)) {
        snprintf(a->action, sizeof a->action, "ANSWER");
        p += 7;
        while (*p == ' ') p++;
        const char *ce = n >= 10 ? s + n - 10 : NULL;
        if (strncmp(p, "<content>", 9) || !ce || ce < p + 9 || strcmp(ce, "</content>")) goto bad;
        a->text = dup_trim(p + 9, ce);
    } else if (!strncmp(p, "Key; [", 6)) {
        snprintf(a->action, sizeof a->action, "Key");
        if (n < 8 || s[n - 1] != ']') goto bad;
        a->keys = dup_trim(p + 6, s + n - 1);
        if (!*a->keys) goto bad;
    } else {
        set_err(err, es, "unknown web action \"%.60s\" (web has Click, Type, Scroll, Wait, GoBack, "
                         "Bing, ANSWER, Key)", s);
        goto out;
    }
    rc = 0;
    goto out;
bad:
    set_err(err, es, "the action \"%.80s\" does not follow the format of %s", s, a->action);
out:
    free(s);
    return rc;
}

int agent_parse(agent_mode mode, const char *raw, agent_action *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    out->mode = mode;
    out->override = -1;
    out->element = -2;
    if (strstr(raw, "<think>") && !strstr(raw, "</think>")) {
        set_err(err, err_size, "the thinking never ended (no </think>): the answer is missing");
        return -1;
    }
    char *ans = agent_answer_text(raw);
    if (!ans) {
        set_err(err, err_size, "out of memory");
        return -1;
    }
    int rc = mode == AGENT_MOBILE ? parse_mobile(ans, out, err, err_size)
             : mode == AGENT_PC   ? parse_pc(ans, out, err, err_size)
                                  : parse_web(ans, out, err, err_size);
    free(ans);
    if (rc) agent_action_free(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Pixels and JSON                                                           */
/* ------------------------------------------------------------------------ */

static int to_px(double v, int size) {
    long p = lround(v * size / 1000.0);
    return (int)(p < 0 ? 0 : p >= size ? size - 1 : p);
}

void agent_map(agent_action *a, int w, int h) {
    a->px_valid = w > 0 && h > 0;
    if (!a->px_valid) return;
    if (a->has_box) {
        for (int i = 0; i < 4; i++) a->px_box[i] = to_px(a->box[i], i % 2 ? h : w);
        a->px_point[0] = to_px((a->box[0] + a->box[2]) / 2.0, w);
        a->px_point[1] = to_px((a->box[1] + a->box[3]) / 2.0, h);
    }
    if (a->has_point) {
        a->px_point[0] = to_px(a->point[0], w);
        a->px_point[1] = to_px(a->point[1], h);
    }
    if (a->has_end) {
        a->px_end[0] = to_px(a->end[0], w);
        a->px_end[1] = to_px(a->end[1], h);
    }
}

static void add_ints(cJSON *o, const char *key, const int *v, int n) {
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[i]));
}

static void add_str(cJSON *o, const char *key, const char *v) {
    if (v) cJSON_AddStringToObject(o, key, v);
}

cJSON *agent_action_json(const agent_action *a, int w, int h, const char *raw) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", agent_mode_name(a->mode));
    cJSON_AddStringToObject(o, "action", a->action);
    if (a->mode == AGENT_MOBILE && a->has_box) add_ints(o, "box_2d", a->box, 4);
    if (a->mode == AGENT_PC && a->has_point) add_ints(o, "start_box", a->point, 2);
    if (a->mode == AGENT_PC && a->has_box) add_ints(o, "start_box", a->box, 4);
    if (a->has_end) add_ints(o, "end_box", a->end, 2);
    if (a->px_valid && a->has_box) add_ints(o, "box", a->px_box, 4);
    if (a->px_valid && (a->has_box || a->has_point)) add_ints(o, "point", a->px_point, 2);
    if (a->px_valid && a->has_end) add_ints(o, "end_point", a->px_end, 2);
    if (a->element >= 0) cJSON_AddNumberToObject(o, "element", a->element);
    if (a->element == -1) cJSON_AddStringToObject(o, "element", "WINDOW");
    add_str(o, "text", a->text);
    if (a->override >= 0) cJSON_AddBoolToObject(o, "override", a->override);
    add_str(o, "direction", a->direction);
    if (a->scroll_step) cJSON_AddNumberToObject(o, "step", a->scroll_step);
    add_str(o, "keys", a->keys);
    add_str(o, "app_name", a->app_name);
    add_str(o, "goal_status", a->goal_status);
    add_str(o, "element_info", a->element_info);
    add_str(o, "memory", a->memory);
    add_str(o, "reason", a->reason);
    if (w > 0 && h > 0) {
        cJSON_AddNumberToObject(o, "width", w);
        cJSON_AddNumberToObject(o, "height", h);
    }
    if (raw) cJSON_AddStringToObject(o, "raw", raw);
    return o;
}
