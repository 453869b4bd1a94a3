/* eval_item.c -- the items of `glmv eval`: one JSON line parsed and checked
 * (fields, match rule, regex, media files) before any model work, and the
 * rules that say whether a model's answer is the reference (eval.h documents
 * both). Pure string work: no model, no I/O beyond stat() of media paths.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval.h"

const char *eval_rule_name(eval_rule r) {
    static const char *const names[] = {"exact", "number", "choice", "regex"};
    return (unsigned)r < 4 ? names[r] : "?";
}

int eval_fail(char *err, size_t errsz, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Normalising and matching                                                 */
/* ------------------------------------------------------------------------ */

/* Trimmed, ASCII case folded, white space runs as one space, one final '.' dropped. */
static char *normalize(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(n + 1), *q = o;
    if (!o) return NULL;
    int space = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            space = q > o;
            continue;
        }
        if (space) *q++ = ' ';
        space = 0;
        *q++ = (char)tolower(c);
    }
    if (q > o && q[-1] == '.') q--;
    *q = 0;
    return o;
}

static int same_text(const char *a, const char *b) {
    char *x = normalize(a), *y = normalize(b);
    int r = x && y && !strcmp(x, y);
    free(x);
    free(y);
    return r;
}

static void cut(char *s, const char *tag) { /* remove every occurrence of tag */
    size_t n = strlen(tag);
    for (char *p; (p = strstr(s, tag));) memmove(p, p + n, strlen(p + n) + 1);
}

char *eval_extract_answer(const char *content) {
    const char *a = strstr(content, "<answer>");
    const char *s = a ? a + 8 : content;
    const char *e = a ? strstr(s, "</answer>") : NULL;
    size_t n = e ? (size_t)(e - s) : strlen(s);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = 0;
    cut(o, "<|begin_of_box|>");
    cut(o, "<|end_of_box|>");
    char *b = o;
    while (isspace((unsigned char)*b)) b++;
    size_t m = strlen(b);
    while (m && isspace((unsigned char)b[m - 1])) m--;
    memmove(o, b, m);
    o[m] = 0;
    return o;
}

/* A number at s: [+-]digits[.digits][e[+-]digits], ',' between digits skipped.
 * Returns its length (0: none) and the value. */
static size_t scan_number(const char *s, double *v) {
    char buf[128];
    size_t k = 0, i = 0;
    if (s[i] == '+' || s[i] == '-') buf[k++] = s[i++];
    size_t digits = 0;
    for (;; i++) {
        if (isdigit((unsigned char)s[i])) {
            digits++;
        } else if (s[i] == ',' && digits && isdigit((unsigned char)s[i + 1])) {
            continue;
        } else break;
        if (k < sizeof buf - 8) buf[k++] = s[i];
    }
    if (s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        buf[k++] = s[i++];
        for (; isdigit((unsigned char)s[i]); i++, digits++)
            if (k < sizeof buf - 8) buf[k++] = s[i];
    }
    if (!digits) return 0;
    if ((s[i] == 'e' || s[i] == 'E') &&
        (isdigit((unsigned char)s[i + 1]) ||
         ((s[i + 1] == '+' || s[i + 1] == '-') && isdigit((unsigned char)s[i + 2])))) {
        buf[k++] = s[i++];
        if (s[i] == '+' || s[i] == '-') buf[k++] = s[i++];
        for (; isdigit((unsigned char)s[i]); i++)
            if (k < sizeof buf - 1) buf[k++] = s[i];
    }
    buf[k] = 0;
    errno = 0;
    *v = strtod(buf, NULL);
    return isfinite(*v) ? i : 0;
}

int eval_parse_number(const char *s, double *out) {
    while (isspace((unsigned char)*s)) s++;
    double v, last = 0;
    size_t n = scan_number(s, &v);
    if (n) { /* the whole answer is one number (trailing white space or '.' allowed) */
        const char *t = s + n;
        while (isspace((unsigned char)*t) || *t == '.') t++;
        if (!*t) return *out = v, 0;
    }
    int found = 0;
    for (const char *p = s; *p;) {
        /* a sign only where it starts a token: "3-4" is 3 then 4, not 3 then -4 */
        int sign_ok = (*p == '-' || *p == '+') && (p == s || isspace((unsigned char)p[-1]));
        if (isdigit((unsigned char)*p) || sign_ok) {
            size_t m = scan_number(p, &v);
            if (m) {
                last = v;
                found = 1;
                p += m;
                continue;
            }
        }
        p++;
    }
    if (!found) return -1;
    *out = last;
    return 0;
}

/* The option an answer names: its letter ("B", "(B)", "B.", "B)", "B. text") or
 * its text; -1 for none. */
static int choice_index(const eval_item *it, const char *got) {
    for (int i = 0; i < it->n_choices; i++)
        if (same_text(got, it->choices[i])) return i;
    const char *p = got;
    while (isspace((unsigned char)*p)) p++;
    int paren = *p == '(';
    if (paren) p++;
    char c = (char)toupper((unsigned char)*p);
    if (c < 'A' || c >= 'A' + it->n_choices) return -1;
    p++;
    if (paren) {
        if (*p != ')') return -1;
        p++;
    } else if (*p == '.' || *p == ')' || *p == ':') {
        p++;
    } else if (*p && !isspace((unsigned char)*p)) {
        return -1; /* "Blue" is a word, not the letter B */
    }
    while (isspace((unsigned char)*p)) p++;
    /* "B" alone, or "B. text" whose text is option B's */
    if (!*p || same_text(p, it->choices[c - 'A'])) return c - 'A';
    return -1;
}

int eval_match(const eval_item *it, const char *got) {
    switch (it->rule) {
    case EVAL_EXACT:
        return same_text(got, it->answer);
    case EVAL_NUMBER: {
        double v;
        if (eval_parse_number(got, &v)) return 0;
        double d = fabs(v - it->number);
        return d <= it->tolerance || d <= it->rel_tolerance * fabs(it->number);
    }
    case EVAL_CHOICE:
        return choice_index(it, got) == it->choice;
    case EVAL_REGEX: {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(it->re, NULL);
        if (!md) return 0;
        int rc = pcre2_match(it->re, (PCRE2_SPTR)got, strlen(got), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        return rc >= 0;
    }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing an item                                                          */
/* ------------------------------------------------------------------------ */

void eval_item_free(eval_item *it) {
    free(it->id);
    free(it->category);
    free(it->question);
    free(it->answer);
    for (int i = 0; i < it->n_choices; i++) free(it->choices[i]);
    for (int i = 0; i < it->n_images; i++) free(it->images[i]);
    free(it->video);
    if (it->re) pcre2_code_free(it->re);
    memset(it, 0, sizeof *it);
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) abort(); /* a line is at most a few MiB: out of memory here is not recoverable */
    return d;
}

/* dir/path (path itself when absolute), checked to be a readable regular file. */
static char *media_path(const char *dir, const char *path, const char *field, char *err,
                        size_t errsz) {
    if (!*path) return eval_fail(err, errsz, "'%s' has an empty path", field), NULL;
    size_t n = strlen(dir) + strlen(path) + 2;
    char *p = malloc(n);
    if (!p) abort();
    if (path[0] == '/' || !*dir) snprintf(p, n, "%s", path);
    else snprintf(p, n, "%s/%s", dir, path);
    struct stat st;
    const char *why = NULL;
    if (stat(p, &st)) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file";
    else if (access(p, R_OK)) why = strerror(errno);
    if (why) {
        eval_fail(err, errsz, "%s file '%s': %s", field, p, why);
        free(p);
        return NULL;
    }
    return p;
}

static const char *const known_keys[] = {"id", "category", "images", "image", "video", "question",
                                         "answer", "match", "tolerance", "rel_tolerance", "choices",
                                         NULL};

static int get_string(const cJSON *root, const char *key, int required, const char **out,
                      char *err, size_t errsz) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return required ? eval_fail(err, errsz, "missing field '%s'", key) : 0;
    if (!cJSON_IsString(v)) return eval_fail(err, errsz, "'%s' must be a string", key);
    *out = v->valuestring;
    return 0;
}

static int get_tolerance(const cJSON *root, const char *key, double *out, char *err, size_t errsz) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || !isfinite(v->valuedouble))
        return eval_fail(err, errsz, "'%s' must be a number >= 0", key);
    *out = v->valuedouble;
    return 0;
}

int eval_item_parse(eval_item *it, const char *text, int line, const char *dir, char *err,
                    size_t errsz) {
    memset(it, 0, sizeof *it);
    it->line = line;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (!*p || *p == '#') return 1;
    cJSON *root = cJSON_Parse(text);
    int rc = -1;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        eval_fail(err, errsz, "not valid JSON (near column %d)", at ? (int)(at - text) + 1 : 1);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        eval_fail(err, errsz, "an item must be a JSON object");
        goto done;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        int known = 0;
        for (int i = 0; known_keys[i]; i++) known |= !strcmp(c->string, known_keys[i]);
        if (!known) {
            eval_fail(err, errsz,
                      "unknown field '%.60s' (known: id, category, images, video, question, "
                      "answer, match, tolerance, rel_tolerance, choices)",
                      c->string);
            goto done;
        }
    }
    const char *s;
    if (get_string(root, "question", 1, &s, err, errsz)) goto done;
    if (!*s) {
        eval_fail(err, errsz, "'question' is empty");
        goto done;
    }
    it->question = xstrdup(s);
    if (get_string(root, "id", 0, &s, err, errsz)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "id");
        if (!cJSON_IsNumber(v)) goto done;
        char b[32];
        snprintf(b, sizeof b, "%.17g", v->valuedouble);
        s = b;
        it->id = xstrdup(s);
    } else {
        char b[32];
        snprintf(b, sizeof b, "line %d", line);
        it->id = xstrdup(s ? s : b);
    }
    if (get_string(root, "category", 0, &s, err, errsz)) goto done;
    it->category = xstrdup(s && *s ? s : "all");

    /* the answer: a string, or a number (kept as written) */
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(root, "answer");
    if (cJSON_IsString(ans)) {
        it->answer = xstrdup(ans->valuestring);
    } else if (cJSON_IsNumber(ans)) {
        char b[32];
        snprintf(b, sizeof b, "%.17g", ans->valuedouble);
        it->answer = xstrdup(b);
    } else {
        eval_fail(err, errsz, ans && !cJSON_IsNull(ans) ? "'answer' must be a string or a number"
                                                   : "missing field 'answer'");
        goto done;
    }

    if (get_string(root, "match", 0, &s, err, errsz)) goto done;
    const char *rule = s ? s : "exact";
    if (!strcmp(rule, "exact")) it->rule = EVAL_EXACT;
    else if (!strcmp(rule, "number")) it->rule = EVAL_NUMBER;
    else if (!strcmp(rule, "choice")) it->rule = EVAL_CHOICE;
    else if (!strcmp(rule, "regex")) it->rule = EVAL_REGEX;
    else {
        eval_fail(err, errsz, "unknown match rule '%.40s' (exact, number, choice or regex)", rule);
        goto done;
    }
    if (get_tolerance(root, "tolerance", &it->tolerance, err, errsz) ||
        get_tolerance(root, "rel_tolerance", &it->rel_tolerance, err, errsz))
        goto done;
    if (it->rule != EVAL_NUMBER && (cJSON_GetObjectItemCaseSensitive(root, "tolerance") ||
                                    cJSON_GetObjectItemCaseSensitive(root, "rel_tolerance"))) {
        eval_fail(err, errsz,
                  "'tolerance' applies only to \"match\": \"number\" (this item's is \"%s\")",
                  rule);
        goto done;
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
    if (ch && !cJSON_IsNull(ch) && it->rule != EVAL_CHOICE) {
        eval_fail(err, errsz,
                  "'choices' applies only to \"match\": \"choice\" (this item's is \"%s\")", rule);
        goto done;
    }
    switch (it->rule) {
    case EVAL_EXACT:
        if (!it->answer[0]) {
            eval_fail(err, errsz, "'answer' is empty");
            goto done;
        }
        break;
    case EVAL_NUMBER: {
        double v;
        size_t n = scan_number(it->answer, &v);
        const char *t = it->answer + n;
        while (isspace((unsigned char)*t)) t++;
        if (!n || *t) {
            eval_fail(err, errsz, "'answer' \"%.40s\" is not a number (match \"number\")",
                      it->answer);
            goto done;
        }
        it->number = v;
        break;
    }
    case EVAL_CHOICE: {
        if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 2 || cJSON_GetArraySize(ch) > EVAL_MAX_CHOICES) {
            eval_fail(err, errsz, "match \"choice\" needs 'choices': an array of 2 to %d strings",
                      EVAL_MAX_CHOICES);
            goto done;
        }
        for (const cJSON *c = ch->child; c; c = c->next) {
            if (!cJSON_IsString(c) || !c->valuestring[0]) {
                eval_fail(err, errsz, "'choices' must hold non-empty strings");
                goto done;
            }
            it->choices[it->n_choices++] = xstrdup(c->valuestring);
        }
        it->choice = choice_index(it, it->answer);
        if (it->choice < 0) {
            eval_fail(err, errsz,
                      "'answer' \"%.40s\" is neither a letter A-%c nor one of the choices",
                      it->answer, 'A' + it->n_choices - 1);
            goto done;
        }
        /* the options go to the model after the question, one per line */
        size_t n = strlen(it->question) + 2;
        for (int i = 0; i < it->n_choices; i++) n += strlen(it->choices[i]) + 5;
        char *q = malloc(n);
        if (!q) abort();
        size_t k = (size_t)snprintf(q, n, "%s", it->question);
        for (int i = 0; i < it->n_choices; i++)
            k += (size_t)snprintf(q + k, n - k, "\n%c. %s", 'A' + i, it->choices[i]);
        free(it->question);
        it->question = q;
        break;
    }
    case EVAL_REGEX: {
        int ec;
        PCRE2_SIZE off;
        it->re = pcre2_compile((PCRE2_SPTR)it->answer, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
        if (!it->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            eval_fail(err, errsz, "'answer' is not a valid regex: %s at offset %d", (char *)msg,
                      (int)off);
            goto done;
        }
        break;
    }
    }

    /* media: "images" (or "image"), "video" */
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *im1 = cJSON_GetObjectItemCaseSensitive(root, "image");
    if (im && im1) {
        eval_fail(err, errsz, "give 'images' or 'image', not both");
        goto done;
    }
    if (im && !cJSON_IsNull(im)) {
        if (!cJSON_IsArray(im)) {
            eval_fail(err, errsz, "'images' must be an array of paths");
            goto done;
        }
        if (cJSON_GetArraySize(im) > EVAL_MAX_IMAGES) {
            eval_fail(err, errsz, "more than %d images", EVAL_MAX_IMAGES);
            goto done;
        }
        for (const cJSON *c = im->child; c; c = c->next) {
            if (!cJSON_IsString(c)) {
                eval_fail(err, errsz, "'images' must be an array of paths");
                goto done;
            }
            char *path = media_path(dir, c->valuestring, "image", err, errsz);
            if (!path) goto done;
            it->images[it->n_images++] = path;
        }
    } else if (im1 && !cJSON_IsNull(im1)) {
        if (!cJSON_IsString(im1)) {
            eval_fail(err, errsz, "'image' must be a path");
            goto done;
        }
        if (!(it->images[0] = media_path(dir, im1->valuestring, "image", err, errsz))) goto done;
        it->n_images = 1;
    }
    if (get_string(root, "video", 0, &s, err, errsz)) goto done;
    if (s && !(it->video = media_path(dir, s, "video", err, errsz))) goto done;
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) eval_item_free(it);
    return rc;
}
