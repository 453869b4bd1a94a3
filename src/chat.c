/* chat.c -- the GLM-4.1V prompt format and the <think>/<answer> splitter.
 *
 * Rendering is native C, not a Jinja interpreter: it produces byte for byte
 * what HF's Jinja (trim_blocks, lstrip_blocks) makes of the official
 * chat_template.jinja. The checkpoint's template is read and compared with the
 * official one (whitespace-insensitive hash); an unknown template (or none)
 * gets a one-line warning at load and is served in the GLM-4.1V format.
 *
 * The splitter decodes generated ids incrementally and routes text inside
 * <think>...</think> to reasoning and the rest to content; tags are matched
 * both as token ids (looked up in the tokenizer) and as text, so a tag split
 * over several tokens is still found. ref: HF chat_template.jinja of
 * THUDM/GLM-4.1V-9B-Thinking; vLLM glm4 reasoning parser (behaviour only).
 */
#include "chat.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------------ */
/* Template                                                                 */
/* ------------------------------------------------------------------------ */

/* FNV-1a of the official chat_template.jinja with all ASCII whitespace
 * removed (tests recompute it from ../shared/assets/glm41v). */
#define GLM41V_TEMPLATE_HASH 0x337773b80d70e91aull

struct glmv_chat_template {
    char *source;   /* the checkpoint's template text (NULL when none) */
    int official;   /* source is the GLM-4.1V template */
};

uint64_t glmv_chat_template_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        h = (h ^ c) * 0x100000001b3ull;
    }
    return h;
}

static char *template_from_config(const char *path, char *err) {
    size_t n;
    char *text = glmv_read_file(path, &n, err);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root) {
        glmv_errf(err, "%s: not valid JSON", path);
        return NULL;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template"), *e;
    const char *src = NULL;
    if (cJSON_IsString(ct)) src = ct->valuestring;
    /* a list of {name, template}: take "default", else the first */
    const cJSON *list = cJSON_IsArray(ct) ? ct : NULL;
    cJSON_ArrayForEach(e, list) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (!cJSON_IsString(tp)) continue;
        if (!src || (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))) src = tp->valuestring;
    }
    char *out = src ? strdup(src) : NULL;
    cJSON_Delete(root);
    if (!src) glmv_errf(err, "%s: no chat_template", path);
    return out;
}

/* t takes src (malloc'd, NULL when none); where names it in warnings. */
static void template_set(glmv_chat_template *t, char *src, const char *where) {
    t->source = src;
    if (t->source) {
        t->official = glmv_chat_template_hash(t->source, strlen(t->source)) == GLM41V_TEMPLATE_HASH;
        if (!t->official)
            glmv_log(0, "warning: %s: the chat template is not GLM-4.1V's; prompts are rendered in "
                        "the GLM-4.1V format regardless", where);
    } else {
        glmv_log(0, "warning: %s: no chat template; prompts are rendered in the GLM-4.1V format", where);
    }
}

int glmv_chat_template_load(glmv_chat_template **out, const char *dir, char *err) {
    *out = NULL;
    glmv_chat_template *t = calloc(1, sizeof *t);
    if (!t) return glmv_errf(err, "chat template: out of memory");
    char path[4096], e2[GLMV_ERR_SIZE];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    char *src = glmv_read_file(path, NULL, e2);
    if (!src) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        src = template_from_config(path, e2);
    }
    if (!src) snprintf(path, sizeof path, "%s (chat_template.jinja or tokenizer_config.json)", dir);
    template_set(t, src, path);
    *out = t;
    return 0;
}

int glmv_chat_template_from_source(glmv_chat_template **out, const char *src, const char *where, char *err) {
    *out = NULL;
    glmv_chat_template *t = calloc(1, sizeof *t);
    char *copy = src ? strdup(src) : NULL;
    if (!t || (src && !copy)) {
        free(t);
        free(copy);
        return glmv_errf(err, "chat template: out of memory");
    }
    template_set(t, copy, where);
    *out = t;
    return 0;
}

void glmv_chat_template_free(glmv_chat_template *t) {
    if (!t) return;
    free(t->source);
    free(t);
}

int glmv_chat_template_is_official(const glmv_chat_template *t) { return t && t->official; }

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *np = realloc(b->p, c);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) {
    if (s) sb_put(b, s, strlen(s));
}

/* system / assistant content: the text parts, concatenated (HF is given a string) */
static void put_texts(sbuf *b, const glmv_message *m) {
    for (int i = 0; i < m->n_parts; i++)
        if (m->parts[i].kind == GLMV_PART_TEXT) sb_puts(b, m->parts[i].text);
}

/* ref: chat_template.jinja; trim_blocks/lstrip_blocks leave exactly these strings */
char *glmv_chat_render(const glmv_chat_template *t, const glmv_message *msgs, int n_msgs,
                       int add_generation_prompt, char *err) {
    (void)t; /* every template is rendered in the GLM-4.1V format */
    sbuf b = {0};
    sb_puts(&b, "[gMASK]<sop>");
    for (int i = 0; i < n_msgs; i++) {
        const glmv_message *m = &msgs[i];
        const char *role = m->role ? m->role : "";
        if (m->n_parts > 0 && !m->parts) {
            free(b.p);
            glmv_errf(err, "chat: message %d has n_parts %d and no parts", i, m->n_parts);
            return NULL;
        }
        if (!strcmp(role, "system")) {
            sb_puts(&b, "<|system|>\n");
            put_texts(&b, m);
        } else if (!strcmp(role, "user")) {
            sb_puts(&b, "<|user|>\n");
            for (int k = 0; k < m->n_parts; k++) {
                const glmv_part *p = &m->parts[k];
                if (p->kind == GLMV_PART_VIDEO) sb_puts(&b, "<|begin_of_video|><|video|><|end_of_video|>");
                else if (p->kind == GLMV_PART_IMAGE)
                    sb_puts(&b, "<|begin_of_image|><|image|><|end_of_image|>");
                else sb_puts(&b, p->text);
            }
        } else if (!strcmp(role, "assistant")) {
            sb_puts(&b, "<|assistant|>");
            sb_puts(&b, m->metadata); /* empty metadata is falsy in Jinja: nothing */
            sb_puts(&b, "\n");
            put_texts(&b, m);
        }
        /* other roles: the template renders nothing */
    }
    if (add_generation_prompt) sb_puts(&b, "<|assistant|>\n");
    if (b.oom) {
        free(b.p);
        glmv_errf(err, "chat: out of memory rendering %d messages", n_msgs);
        return NULL;
    }
    return b.p;
}

/* ------------------------------------------------------------------------ */
/* Splitter                                                                 */
/* ------------------------------------------------------------------------ */

enum { TAG_THINK, TAG_END_THINK, TAG_ANSWER, TAG_END_ANSWER, N_TAGS };
static const char *const tag_text[N_TAGS] = {"<think>", "</think>", "<answer>", "</answer>"};

enum {
    S_START,       /* before any tag: content; leading whitespace dropped */
    S_PRE,         /* content seen before any tag */
    S_THINK,       /* reasoning */
    S_AFTER_THINK, /* after </think>: content (the <answer> tag may be missing); leading ws dropped */
    S_ANSWER,      /* content */
    S_DONE         /* after </answer>: content */
};

struct glmv_splitter {
    const glmv_tokenizer *tok;
    int32_t tag_id[N_TAGS]; /* -1 when the tag is not a single token */
    glmv_detok detok;
    int state;
    sbuf hold; /* text not yet emitted: a possible tag prefix at its end */
};

glmv_splitter *glmv_splitter_new(const glmv_tokenizer *tok) {
    glmv_splitter *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tok = tok;
    for (int k = 0; k < N_TAGS; k++) s->tag_id[k] = glmv_token_id(tok, tag_text[k]);
    glmv_detok_init(&s->detok, tok, 1);
    s->state = S_START;
    return s;
}

void glmv_splitter_free(glmv_splitter *s) {
    if (!s) return;
    free(s->hold.p);
    free(s);
}

glmv_text_kind glmv_splitter_state(const glmv_splitter *s) {
    return s->state == S_THINK ? GLMV_TEXT_REASONING : GLMV_TEXT_CONTENT;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Emit text that is known to contain no tag. */
static void emit_text(glmv_splitter *s, const char *p, size_t n, glmv_split_emit emit, void *user) {
    if (s->state == S_START || s->state == S_AFTER_THINK) {
        while (n && is_space(*p)) p++, n--;
        if (!n) return;
        s->state = s->state == S_START ? S_PRE : S_ANSWER; /* S_ANSWER: no <answer> tag */
    }
    if (n) emit(user, glmv_splitter_state(s), p, n);
}

static void apply_tag(glmv_splitter *s, int tag) {
    switch (tag) {
    case TAG_THINK:
        if (s->state == S_START || s->state == S_PRE || s->state == S_AFTER_THINK) s->state = S_THINK;
        break;
    case TAG_END_THINK:
        if (s->state == S_START || s->state == S_PRE || s->state == S_THINK) s->state = S_AFTER_THINK;
        break;
    case TAG_ANSWER:
        if (s->state != S_DONE) s->state = S_ANSWER;
        break;
    case TAG_END_ANSWER: s->state = S_DONE; break;
    }
}

/* Scan hold for tags; emit what precedes them; keep a trailing tag prefix
 * (and, in the states that drop leading whitespace, trailing whitespace). */
static void scan(glmv_splitter *s, int final, glmv_split_emit emit, void *user) {
    char *p = s->hold.p;
    size_t n = s->hold.n, start = 0, i = 0;
    while (i < n) {
        if (p[i] != '<') {
            i++;
            continue;
        }
        int tag = -1, prefix = 0;
        for (int k = 0; k < N_TAGS; k++) {
            size_t l = strlen(tag_text[k]);
            if (n - i >= l) {
                if (!memcmp(p + i, tag_text[k], l)) tag = k;
            } else if (!memcmp(p + i, tag_text[k], n - i)) {
                prefix = 1;
            }
        }
        if (tag >= 0) {
            emit_text(s, p + start, i - start, emit, user);
            apply_tag(s, tag);
            i += strlen(tag_text[tag]);
            start = i;
        } else if (prefix && !final) {
            break; /* wait for more text */
        } else {
            i++;
        }
    }
    if (!p) return; /* nothing held */
    emit_text(s, p + start, i - start, emit, user);
    memmove(p, p + i, n - i);
    s->hold.n = n - i;
    p[s->hold.n] = 0;
}

void glmv_splitter_push(glmv_splitter *s, int32_t id, glmv_split_emit emit, void *user) {
    for (int k = 0; k < N_TAGS; k++) {
        if (id >= 0 && id == s->tag_id[k]) {
            char *t;
            size_t l;
            if (glmv_detok_flush(&s->detok, &t, &l) == 0) sb_put(&s->hold, t, l);
            free(t);
            scan(s, 1, emit, user);
            apply_tag(s, k);
            return;
        }
    }
    char *t;
    size_t l;
    if (glmv_detok_push(&s->detok, id, &t, &l) != 0) return;
    sb_put(&s->hold, t, l);
    free(t);
    scan(s, 0, emit, user);
}

void glmv_splitter_finish(glmv_splitter *s, glmv_split_emit emit, void *user) {
    char *t;
    size_t l;
    if (glmv_detok_flush(&s->detok, &t, &l) == 0) sb_put(&s->hold, t, l);
    free(t);
    scan(s, 1, emit, user);
}
