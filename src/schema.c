/* schema.c -- JSON Schema to a byte-level recognizer, and the token mask of
 * constrained decoding (schema.h says what is supported).
 *
 * The schema becomes a graph of nodes (object, array, string, number,
 * integer, literal set, union, any; $ref edges make it cyclic for recursive
 * schemas). A partial output is a stack of frames, one per open value; each
 * byte advances the top frame, pushes a frame for a nested value or pops a
 * finished one. Numbers and numeric literals end only when a byte that cannot
 * continue them arrives: it is then fed to the frame below.
 *
 * The mask walks the tokens in byte order (glmv_vocab_index), so tokens that
 * share a prefix share the work: the state after each prefix is kept by
 * length, and once a prefix is refused every token that starts with it is
 * skipped. Inside a free string, tokens of whole UTF-8 characters without a
 * quote, a backslash or a control byte are allowed without walking them.
 * Strings must be UTF-8 (a continuation byte only after its lead byte).
 */
#include "schema.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "tokenizer.h"

#define MAX_PROPS 64
#define MAX_LITS 64
#define MAX_ALTS 8
#define WS_MAX 8           /* whitespace bytes in a row between tokens */
#define NUM_MAX 32         /* bytes of one number */

enum { K_ANY, K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_LIT, K_UNION, K_REF };

typedef struct node node;
struct node {
    int kind;
    /* object */
    int n_props;
    char *names[MAX_PROPS];
    size_t name_len[MAX_PROPS];
    node *props[MAX_PROPS];
    uint64_t required;
    node *additional;       /* free objects: the values' schema (any keys) */
    /* array */
    node *items;
    int min_items, max_items;
    /* string */
    int min_len, max_len;
    /* number, integer: bounds (has_lo/has_hi; excl_*: exclusive) */
    int has_lo, has_hi, excl_lo, excl_hi;
    double lo, hi;
    /* literals (enum, const, true/false/null): compact JSON texts */
    int n_lits;
    char *lits[MAX_LITS];
    size_t lit_len[MAX_LITS];
    /* union */
    int n_alts;
    node *alts[MAX_ALTS];
    /* $ref */
    char *ref;
    node *target;
    node *next_all;         /* every node, for freeing */
};

struct glmv_schema {
    node *root;
    node *all;
    node *any, *any_obj, *any_arr, *any_str, *any_num, *any_lit;
    cJSON *doc;             /* for $ref lookups while compiling */
};

/* frame kinds */
enum { F_VALUE, F_OBJECT, F_ARRAY, F_STRING, F_KEY, F_FREEKEY, F_NUMBER, F_LIT };
/* object states */
enum { OS_START, OS_NEXT, OS_COLON, OS_AFTER };
/* array states */
enum { AS_START, AS_NEXT, AS_AFTER };

/* ------------------------------------------------------------------ compiling */

static node *new_node(glmv_schema *s, int kind) {
    node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->max_len = -1;
    n->max_items = -1;
    n->next_all = s->all;
    s->all = n;
    return n;
}

static int add_lit(node *n, const char *text) {
    if (n->n_lits >= MAX_LITS) return -1;
    n->lits[n->n_lits] = strdup(text);
    if (!n->lits[n->n_lits]) return -1;
    n->lit_len[n->n_lits] = strlen(text);
    n->n_lits++;
    return 0;
}

static const node *deref(const node *n) {
    for (int i = 0; n && n->kind == K_REF && i < 64; i++) n = n->target;
    return n && n->kind == K_REF ? NULL : n;
}

/* the bytes a value of node n may start with */
static void first_bytes(const node *n, uint8_t set[256], int depth) {
    n = deref(n);
    if (!n || depth > 16) return;
    switch (n->kind) {
    case K_ANY:
        memset(set, 1, 256);
        break;
    case K_OBJECT: set['{'] = 1; break;
    case K_ARRAY: set['['] = 1; break;
    case K_STRING: set['"'] = 1; break;
    case K_NUMBER:
    case K_INTEGER:
        set['-'] = 1;
        for (int c = '0'; c <= '9'; c++) set[c] = 1;
        break;
    case K_LIT:
        for (int i = 0; i < n->n_lits; i++) set[(unsigned char)n->lits[i][0]] = 1;
        break;
    case K_UNION:
        for (int i = 0; i < n->n_alts; i++) first_bytes(n->alts[i], set, depth + 1);
        break;
    }
}

static node *compile(glmv_schema *s, const cJSON *j, int depth, char *err);

static int plain_name(const char *k) {
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p == '"' || *p == '\\' || *p < 0x20) return 0;
    return 1;
}

static int get_count(const cJSON *j, const char *key, int *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return glmv_errf(err, "schema: '%s' must be a non-negative integer", key);
    *out = (int)v->valuedouble;
    return 0;
}

/* minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, or draft 4's booleans) */
static int compile_bounds(node *n, const cJSON *j, char *err) {
    const char *names[4] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, names[i]);
        if (!v) continue;
        if (cJSON_IsBool(v) && i >= 2) { /* draft 4: makes minimum / maximum exclusive */
            if (i == 2) n->excl_lo = cJSON_IsTrue(v);
            else n->excl_hi = cJSON_IsTrue(v);
            continue;
        }
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return glmv_errf(err, "schema: '%s' must be a number", names[i]);
        if (fabs(v->valuedouble) > 1e21) /* past what a number of NUM_MAX bytes without exponent holds */
            return glmv_errf(err, "schema: '%s' %g: bounds beyond 1e21 are not supported", names[i],
                             v->valuedouble);
        double x = v->valuedouble;
        if (i % 2 == 0) { /* lower */
            if (!n->has_lo || x > n->lo || (x == n->lo && i == 2)) n->lo = x, n->excl_lo = i == 2 || (n->excl_lo && x == n->lo);
            n->has_lo = 1;
        } else {
            if (!n->has_hi || x < n->hi || (x == n->hi && i == 3)) n->hi = x, n->excl_hi = i == 3 || (n->excl_hi && x == n->hi);
            n->has_hi = 1;
        }
    }
    if (n->kind == K_INTEGER) { /* to inclusive integer bounds */
        if (n->has_lo) n->lo = floor(n->lo) + 1 - (n->lo == floor(n->lo) && !n->excl_lo), n->excl_lo = 0;
        if (n->has_hi) n->hi = ceil(n->hi) - 1 + (n->hi == ceil(n->hi) && !n->excl_hi), n->excl_hi = 0;
    }
    if (n->has_lo && n->has_hi && (n->lo > n->hi || (n->lo == n->hi && (n->excl_lo || n->excl_hi))))
        return glmv_errf(err, "schema: no number is within its minimum and maximum");
    return 0;
}

/* one "type" of a schema object (its other keywords apply) */
static node *compile_type(glmv_schema *s, const cJSON *j, const char *type, int depth, char *err) {
    node *n;
    if (!strcmp(type, "object")) {
        n = new_node(s, K_OBJECT);
        if (!n) return NULL;
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "required");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(j, "additionalProperties");
        if (props && !cJSON_IsObject(props)) return glmv_errf(err, "schema: 'properties' must be an object"), NULL;
        for (const cJSON *p = props ? props->child : NULL; p; p = p->next) {
            if (n->n_props >= MAX_PROPS)
                return glmv_errf(err, "schema: more than %d properties in one object", MAX_PROPS), NULL;
            if (!plain_name(p->string))
                return glmv_errf(err, "schema: property name '%.40s' needs escaping in JSON: not "
                                 "supported", p->string), NULL;
            int k = n->n_props++; /* counted first: glmv_schema_free frees the name on failure */
            n->names[k] = strdup(p->string);
            n->name_len[k] = strlen(p->string);
            if (!n->names[k]) return glmv_errf(err, "out of memory"), NULL;
            n->props[k] = compile(s, p, depth + 1, err);
            if (!n->props[k]) return NULL;
        }
        if (req && !cJSON_IsArray(req)) return glmv_errf(err, "schema: 'required' must be an array"), NULL;
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
            int k = -1;
            for (int i = 0; cJSON_IsString(r) && i < n->n_props; i++)
                if (!strcmp(n->names[i], r->valuestring)) k = i;
            if (k < 0)
                return glmv_errf(err, "schema: required '%.40s' is not among the properties",
                                 cJSON_IsString(r) ? r->valuestring : "?"), NULL;
            n->required |= (uint64_t)1 << k;
        }
        if (n->n_props == 0) { /* a free object: any keys, values by additionalProperties */
            if (cJSON_IsFalse(add)) return n; /* only {} */
            n->additional = add && cJSON_IsObject(add) ? compile(s, add, depth + 1, err) : s->any;
            if (!n->additional) return NULL;
        } else if (add && !cJSON_IsFalse(add)) {
            return glmv_errf(err, "schema: 'additionalProperties' beside 'properties' must be false "
                             "(strict mode)"), NULL;
        }
        return n;
    }
    if (!strcmp(type, "array")) {
        n = new_node(s, K_ARRAY);
        if (!n) return NULL;
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "items");
        n->items = it ? compile(s, it, depth + 1, err) : s->any;
        if (!n->items) return NULL;
        if (get_count(j, "minItems", &n->min_items, err) || get_count(j, "maxItems", &n->max_items, err))
            return NULL;
        if (n->max_items >= 0 && n->max_items < n->min_items)
            return glmv_errf(err, "schema: maxItems below minItems"), NULL;
        return n;
    }
    if (!strcmp(type, "string")) {
        n = new_node(s, K_STRING);
        if (!n) return NULL;
        if (get_count(j, "minLength", &n->min_len, err) || get_count(j, "maxLength", &n->max_len, err))
            return NULL;
        if (n->max_len >= 0 && n->max_len < n->min_len)
            return glmv_errf(err, "schema: maxLength below minLength"), NULL;
        return n;
    }
    if (!strcmp(type, "number") || !strcmp(type, "integer")) {
        n = new_node(s, type[0] == 'n' ? K_NUMBER : K_INTEGER);
        if (!n || compile_bounds(n, j, err)) return NULL;
        return n;
    }
    if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
        n = new_node(s, K_LIT);
        if (!n) return NULL;
        if (type[0] == 'b' ? add_lit(n, "true") || add_lit(n, "false") : add_lit(n, "null")) return NULL;
        return n;
    }
    return glmv_errf(err, "schema: unknown type '%.40s'", type), NULL;
}

/* Do two alternatives start with a common byte? (Checked again once $refs
 * are resolved: an alternative that leads back to its own union before any
 * byte, left recursion, overlaps with every other.) */
static int alts_overlap(node *const *alts, int n_alts, char *err) {
    uint8_t seen[256] = {0};
    for (int i = 0; i < n_alts; i++) {
        uint8_t f[256] = {0};
        first_bytes(alts[i], f, 0);
        for (int c = 0; c < 256; c++) {
            if (f[c] && seen[c])
                return glmv_errf(err, "schema: alternatives (anyOf, oneOf or a type list) that can "
                                 "start with the same character ('%c') are not supported",
                                 c >= 32 && c < 127 ? c : '?');
            seen[c] |= f[c];
        }
    }
    return 0;
}

/* alternatives become a union; their first bytes must differ so that the
 * first byte of the output chooses one */
static node *make_union(glmv_schema *s, node **alts, int n_alts, char *err) {
    if (n_alts == 1) return alts[0];
    if (n_alts > MAX_ALTS) return glmv_errf(err, "schema: more than %d alternatives", MAX_ALTS), NULL;
    if (alts_overlap(alts, n_alts, err)) return NULL;
    node *u = new_node(s, K_UNION);
    if (!u) return NULL;
    memcpy(u->alts, alts, sizeof(node *) * (size_t)n_alts);
    u->n_alts = n_alts;
    return u;
}

static const char *const known_keys[] = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    /* annotations: they constrain nothing */
    "title", "description", "$schema", "$id", "$comment", "examples", "default", NULL};

static node *compile(glmv_schema *s, const cJSON *j, int depth, char *err) {
    if (depth > 64) return glmv_errf(err, "schema: nested too deeply"), NULL;
    if (cJSON_IsTrue(j)) return s->any;
    if (!cJSON_IsObject(j)) return glmv_errf(err, "schema: a schema must be an object or true"), NULL;
    for (const cJSON *k = j->child; k; k = k->next) {
        int ok = 0;
        for (int i = 0; known_keys[i]; i++) ok |= !strcmp(k->string, known_keys[i]);
        if (!ok) return glmv_errf(err, "schema: keyword '%.40s' is not supported", k->string), NULL;
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "$ref");
    if (ref) {
        if (!cJSON_IsString(ref)) return glmv_errf(err, "schema: '$ref' must be a string"), NULL;
        node *n = new_node(s, K_REF);
        if (!n || !(n->ref = strdup(ref->valuestring))) return NULL;
        return n;
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(j, "const");
    if (en || cn) {
        if (en && (!cJSON_IsArray(en) || !en->child)) return glmv_errf(err, "schema: 'enum' must be a non-empty array"), NULL;
        node *n = new_node(s, K_LIT);
        if (!n) return NULL;
        for (const cJSON *v = en ? en->child : cn; v; v = en ? v->next : NULL) {
            char *t = cJSON_PrintUnformatted(v);
            int rc = t ? add_lit(n, t) : -1;
            free(t);
            if (rc) return glmv_errf(err, "schema: more than %d enum values", MAX_LITS), NULL;
        }
        return n;
    }
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(j, "anyOf");
    if (!any) any = cJSON_GetObjectItemCaseSensitive(j, "oneOf");
    if (any) {
        if (!cJSON_IsArray(any) || !any->child) return glmv_errf(err, "schema: 'anyOf' must be a non-empty array"), NULL;
        node *alts[MAX_ALTS + 1];
        int n = 0;
        for (const cJSON *a = any->child; a; a = a->next) {
            if (n > MAX_ALTS) return glmv_errf(err, "schema: more than %d alternatives", MAX_ALTS), NULL;
            if (!(alts[n++] = compile(s, a, depth + 1, err))) return NULL;
        }
        return make_union(s, alts, n, err);
    }
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!ty) return s->any;
    if (cJSON_IsString(ty)) return compile_type(s, j, ty->valuestring, depth, err);
    if (!cJSON_IsArray(ty) || !ty->child) return glmv_errf(err, "schema: 'type' must be a string or a list"), NULL;
    node *alts[MAX_ALTS + 1];
    int n = 0, has_num = 0, has_int = 0;
    for (const cJSON *t = ty->child; t; t = t->next) {
        has_num |= cJSON_IsString(t) && !strcmp(t->valuestring, "number");
        has_int |= cJSON_IsString(t) && !strcmp(t->valuestring, "integer");
    }
    for (const cJSON *t = ty->child; t; t = t->next) {
        if (!cJSON_IsString(t)) return glmv_errf(err, "schema: 'type' list must hold strings"), NULL;
        if (has_num && has_int && !strcmp(t->valuestring, "integer")) continue; /* within number */
        if (n > MAX_ALTS) return glmv_errf(err, "schema: more than %d types", MAX_ALTS), NULL;
        if (!(alts[n++] = compile_type(s, j, t->valuestring, depth, err))) return NULL;
    }
    return make_union(s, alts, n, err);
}

/* "#", "#/$defs/Name" or "#/definitions/Name" */
static int resolve_refs(glmv_schema *s, char *err) {
    /* compiling a definition adds nodes at the head of s->all: walk until none is left unresolved */
    for (int changed = 1; changed;) {
        changed = 0;
        for (node *n = s->all; n; n = n->next_all) {
            if (n->kind != K_REF || n->target) continue;
            if (!strcmp(n->ref, "#")) {
                n->target = s->root;
                continue;
            }
            const char *name = NULL;
            const cJSON *defs = NULL;
            if (!strncmp(n->ref, "#/$defs/", 8)) {
                name = n->ref + 8;
                defs = cJSON_GetObjectItemCaseSensitive(s->doc, "$defs");
            } else if (!strncmp(n->ref, "#/definitions/", 14)) {
                name = n->ref + 14;
                defs = cJSON_GetObjectItemCaseSensitive(s->doc, "definitions");
            }
            const cJSON *d = defs && name ? cJSON_GetObjectItemCaseSensitive(defs, name) : NULL;
            if (!d) return glmv_errf(err, "schema: '$ref' '%.60s' is not #, #/$defs/NAME or "
                                     "#/definitions/NAME of this schema", n->ref);
            /* one node per definition: other refs to it share it (recursion ends here) */
            for (node *m = s->all; m; m = m->next_all)
                if (m->kind == K_REF && m->target && m->ref && !strcmp(m->ref, n->ref)) n->target = m->target;
            if (!n->target) {
                n->target = compile(s, d, 1, err);
                if (!n->target) return -1;
            }
            changed = 1;
            break; /* s->all changed under us */
        }
    }
    /* a cycle of refs alone (A -> B -> A) matches nothing */
    for (node *n = s->all; n; n = n->next_all)
        if (n->kind == K_REF && !deref(n))
            return glmv_errf(err, "schema: '$ref' '%.60s' refers only to itself", n->ref);
    for (node *n = s->all; n; n = n->next_all)
        if (n->kind == K_UNION && alts_overlap(n->alts, n->n_alts, err)) return -1;
    return 0;
}

glmv_schema *glmv_schema_compile(const char *schema_json, char *err) {
    glmv_schema *s = calloc(1, sizeof *s);
    if (!s) return glmv_errf(err, "out of memory"), NULL;
    s->any = new_node(s, K_ANY);
    s->any_obj = new_node(s, K_OBJECT);
    s->any_arr = new_node(s, K_ARRAY);
    s->any_str = new_node(s, K_STRING);
    s->any_num = new_node(s, K_NUMBER);
    s->any_lit = new_node(s, K_LIT);
    if (!s->any || !s->any_obj || !s->any_arr || !s->any_str || !s->any_num || !s->any_lit ||
        add_lit(s->any_lit, "true") || add_lit(s->any_lit, "false") || add_lit(s->any_lit, "null")) {
        glmv_schema_free(s);
        return glmv_errf(err, "out of memory"), NULL;
    }
    s->any_obj->additional = s->any;
    s->any_arr->items = s->any;
    if (!schema_json || !*schema_json) {
        s->root = s->any_obj;
        return s;
    }
    s->doc = cJSON_Parse(schema_json);
    if (!s->doc) {
        glmv_schema_free(s);
        return glmv_errf(err, "schema: not valid JSON"), NULL;
    }
    s->root = compile(s, s->doc, 0, err);
    int rc = s->root ? resolve_refs(s, err) : -1;
    cJSON_Delete(s->doc);
    s->doc = NULL;
    if (rc) {
        glmv_schema_free(s);
        return NULL;
    }
    return s;
}

void glmv_schema_free(glmv_schema *s) {
    if (!s) return;
    for (node *n = s->all, *next; n; n = next) {
        next = n->next_all;
        for (int i = 0; i < n->n_props; i++) free(n->names[i]);
        for (int i = 0; i < n->n_lits; i++) free(n->lits[i]);
        free(n->ref);
        free(n);
    }
    cJSON_Delete(s->doc);
    free(s);
}

/* ------------------------------------------------------------------ the recognizer */

void glmv_json_init(glmv_json_state *st, const glmv_schema *s) {
    memset(st, 0, sizeof *st);
    st->s = s;
    st->depth = 1;
    st->f[0].kind = F_VALUE;
    st->f[0].node = s->root;
}

static int is_ws(unsigned c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static int push(glmv_json_state *st, int kind, const node *n) {
    if (st->depth >= GLMV_JSON_DEPTH) return -1;
    glmv_json_frame *f = &st->f[st->depth++];
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    f->node = n;
    return 0;
}

/* a value (or key) is finished: the frame below already expects what follows */
static void pop(glmv_json_state *st) {
    if (--st->depth == 0) st->done = 1;
}

static int ws(glmv_json_frame *f) { return ++f->ws > WS_MAX ? -1 : 0; }

static int number_end_ok(int st) { return st == 2 || st == 3 || st == 5 || st == 8; }

static int lit_complete(const glmv_json_frame *f) {
    const node *n = f->node;
    for (int i = 0; i < n->n_lits; i++)
        if ((f->cand >> i & 1) && n->lit_len[i] == (size_t)f->pos) return 1;
    return 0;
}

/* f is a F_VALUE frame: turn it into the frame for a value of node n starting with c */
static int start_value(glmv_json_state *st, glmv_json_frame *f, const glmv_schema *s, const node *n,
                       unsigned c, int depth) {
    n = deref(n);
    if (!n || depth > 32) return -1;
    f->ws = 0;
    switch (n->kind) {
    case K_ANY:
        if (c == '{') n = s->any_obj;
        else if (c == '[') n = s->any_arr;
        else if (c == '"') n = s->any_str;
        else if (c == '-' || (c >= '0' && c <= '9')) n = s->any_num;
        else n = s->any_lit;
        return start_value(st, f, s, n, c, depth + 1);
    case K_UNION:
        for (int i = 0; i < n->n_alts; i++) {
            uint8_t set[256] = {0};
            first_bytes(n->alts[i], set, 0);
            if (set[c]) return start_value(st, f, s, n->alts[i], c, depth + 1);
        }
        return -1;
    case K_OBJECT:
        if (c != '{') return -1;
        f->kind = F_OBJECT, f->node = n, f->st = OS_START, f->seen = 0;
        return 1;
    case K_ARRAY:
        if (c != '[') return -1;
        f->kind = F_ARRAY, f->node = n, f->st = AS_START, f->n = 0;
        return 1;
    case K_STRING:
        if (c != '"') return -1;
        f->kind = F_STRING, f->node = n, f->st = 0, f->n = 0;
        return 1;
    case K_NUMBER:
    case K_INTEGER:
        f->kind = F_NUMBER, f->node = n, f->st = 0, f->n = 0;
        st->num_len = 0;
        return 0; /* c is the number's first byte: feed it */
    case K_LIT:
        f->kind = F_LIT, f->node = n, f->pos = 0;
        f->cand = n->n_lits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n->n_lits) - 1);
        return 0;
    }
    return -1;
}

/* ---- numbers with bounds ---- */

static int in_bounds(const node *n, double x) {
    if (n->has_lo && (x < n->lo || (n->excl_lo && x == n->lo))) return 0;
    if (n->has_hi && (x > n->hi || (n->excl_hi && x == n->hi))) return 0;
    return 1;
}

/* does the interval from a to b (each end closed or open) meet the bounds? */
static int meets(const node *n, double a, int a_closed, double b, int b_closed) {
    double lo = n->has_lo ? n->lo : -INFINITY, hi = n->has_hi ? n->hi : INFINITY;
    int lo_closed = !n->excl_lo, hi_closed = !n->excl_hi;
    double L = a > lo ? a : lo, H = b < hi ? b : hi;
    int Lc = a > lo ? a_closed : a < lo ? lo_closed : (a_closed && lo_closed);
    int Hc = b < hi ? b_closed : b > hi ? hi_closed : (b_closed && hi_closed);
    return L < H || (L == H && Lc && Hc);
}

/* positive magnitudes [a, b) (b open) for a number of sign neg */
static int meets_mag(const node *n, int neg, double a, double b, int b_closed) {
    return neg ? meets(n, -b, b_closed, -a, 1) : meets(n, a, 1, b, b_closed);
}

/* Can the number written so far (st->num, a prefix: sign, digits, maybe '.' and digits)
 * still end within n's bounds? Its value is parsed with strtod, as the bounds were, so a
 * number at a bound compares equal to it. An integer part of digits D (not 0) can still
 * grow to D*10^k + t, t < 10^k, for any k the byte budget allows. */
static int num_feasible(const node *n, const char *t, int len) {
    if (!n->has_lo && !n->has_hi) return 1;
    int neg = t[0] == '-', integer = n->kind == K_INTEGER;
    const char *d = t + neg;
    int nd = len - neg;
    const char *dot = memchr(d, '.', (size_t)nd);
    if (nd == 0) return meets_mag(n, neg, 0, INFINITY, 0);
    char buf[40];
    memcpy(buf, t, (size_t)len);
    buf[len] = 0;
    if (dot) { /* the value so far, then less than one unit of its last digit more */
        int m = (int)(t + len - dot) - 1;
        if (m == 0) buf[len - 1] = 0; /* "12." */
        double a = fabs(strtod(buf, NULL));
        return meets_mag(n, neg, a, a + pow(10, -m), 0);
    }
    if (nd == 1 && d[0] == '0') /* "0": 0, or 0.x for a number */
        return integer ? meets(n, 0, 1, 0, 1) : meets_mag(n, neg, 0, 1, 0);
    double D = fabs(strtod(buf, NULL)), p = 1;
    for (int k = 0; nd + k <= NUM_MAX - neg; k++, p *= 10) {
        double a = D * p, b = (D + 1) * p; /* integer parts [a, b) */
        if (integer ? meets_mag(n, neg, a, b - 1, 1) : meets_mag(n, neg, a, b, 0)) return 1;
    }
    return 0;
}

static double num_value(const glmv_json_state *st) {
    char buf[40];
    memcpy(buf, st->num, (size_t)st->num_len);
    buf[st->num_len] = 0;
    return strtod(buf, NULL);
}

static int step(glmv_json_state *st, unsigned c) {
    for (;;) {
        if (st->depth == 0) return -1; /* complete: nothing may follow */
        glmv_json_frame *f = &st->f[st->depth - 1];
        const node *n = f->node;
        switch (f->kind) {
        case F_VALUE: {
            if (is_ws(c)) return ws(f);
            int r = start_value(st, f, st->s, n, c, 0);
            if (r < 0) return -1;
            if (r > 0) return 0; /* c opened the value */
            continue;            /* c is the value's first byte */
        }
        case F_OBJECT:
            if (is_ws(c)) return ws(f);
            f->ws = 0;
            if (f->st == OS_START || f->st == OS_NEXT) {
                if (c == '}' && f->st == OS_START) {
                    if (n->required & ~f->seen) return -1;
                    pop(st);
                    return 0;
                }
                if (c != '"') return -1;
                if (n->n_props == 0) {
                    if (!n->additional) return -1; /* {} only */
                    return push(st, F_FREEKEY, NULL);
                }
                uint64_t all = n->n_props >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n->n_props) - 1);
                uint64_t cand = all & ~f->seen;
                if (!cand) return -1;
                if (push(st, F_KEY, n)) return -1;
                st->f[st->depth - 1].cand = cand;
                return 0;
            }
            if (f->st == OS_COLON) {
                if (c != ':') return -1;
                f->st = OS_AFTER;
                return push(st, F_VALUE, f->prop >= 0 ? n->props[f->prop] : n->additional);
            }
            /* OS_AFTER */
            if (c == '}') {
                if (n->required & ~f->seen) return -1;
                pop(st);
                return 0;
            }
            if (c != ',') return -1;
            if (n->n_props > 0) {
                uint64_t all = n->n_props >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n->n_props) - 1);
                if (!(all & ~f->seen)) return -1;
            }
            f->st = OS_NEXT;
            return 0;
        case F_KEY: {
            glmv_json_frame *obj = &st->f[st->depth - 2];
            if (c == '"') {
                int k = -1;
                for (int i = 0; i < n->n_props; i++)
                    if ((f->cand >> i & 1) && n->name_len[i] == (size_t)f->pos) k = i;
                if (k < 0) return -1;
                st->depth--;
                obj->prop = (int16_t)k;
                obj->seen |= (uint64_t)1 << k;
                obj->st = OS_COLON;
                return 0;
            }
            uint64_t cand = 0;
            for (int i = 0; i < n->n_props; i++)
                if ((f->cand >> i & 1) && (size_t)f->pos < n->name_len[i] &&
                    (unsigned char)n->names[i][f->pos] == c)
                    cand |= (uint64_t)1 << i;
            if (!cand) return -1;
            f->cand = cand;
            f->pos++;
            return 0;
        }
        case F_STRING:
        case F_FREEKEY: {
            int max_len = n ? n->max_len : -1, min_len = n ? n->min_len : 0;
            if (f->st == 1) { /* after a backslash */
                if (c == 'u') {
                    f->st = 2;
                    return 0;
                }
                if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return -1;
                f->st = 0;
                f->n++;
                return 0;
            }
            if (f->st >= 2 && f->st <= 5) { /* \uXXXX */
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return -1;
                if (++f->st == 6) {
                    f->st = 0;
                    f->n++;
                }
                return 0;
            }
            if (f->pos > 0) { /* inside a multi-byte character: only its continuation bytes */
                if ((c & 0xC0) != 0x80) return -1;
                if (f->st >= 6) { /* the first after E0, ED, F0, F4: no overlong, no surrogate */
                    static const unsigned char lo[4] = {0xA0, 0x80, 0x90, 0x80}, hi[4] = {0xBF, 0x9F, 0xBF, 0x8F};
                    if (c < lo[f->st - 6] || c > hi[f->st - 6]) return -1;
                    f->st = 0;
                }
                f->pos--;
                return 0;
            }
            if (c == '"') {
                if (f->n < min_len) return -1;
                if (f->kind == F_FREEKEY) {
                    st->depth--;
                    glmv_json_frame *obj = &st->f[st->depth - 1];
                    obj->prop = -1;
                    obj->st = OS_COLON;
                } else {
                    pop(st);
                }
                return 0;
            }
            if (c < 0x20) return -1;
            if (max_len >= 0 && f->n >= max_len) return -1;
            if (c == '\\') {
                f->st = 1;
                return 0;
            }
            if (c >= 0x80) { /* UTF-8: a lead byte, then its continuation bytes */
                int more = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
                if (more < 0) return -1;
                f->pos = more;
                f->st = c == 0xE0 ? 6 : c == 0xED ? 7 : c == 0xF0 ? 8 : c == 0xF4 ? 9 : 0;
            }
            f->n++;
            return 0;
        }
        case F_NUMBER: {
            int integer = n->kind == K_INTEGER, s = f->st, d = c >= '0' && c <= '9', nx = -1;
            int bounded = n->has_lo || n->has_hi;
            if (bounded && (c == 'e' || c == 'E')) return -1; /* no exponent beside bounds */
            switch (s) {
            case 0: nx = c == '-' ? 1 : c == '0' ? 2 : d ? 3 : -1; break;
            case 1: nx = c == '0' ? 2 : d ? 3 : -1; break;
            case 2: nx = (c == '.' && !integer) ? 4 : ((c == 'e' || c == 'E') && !integer) ? 6 : -2; break;
            case 3: nx = d ? 3 : (c == '.' && !integer) ? 4 : ((c == 'e' || c == 'E') && !integer) ? 6 : -2; break;
            case 4: nx = d ? 5 : -1; break;
            case 5: nx = d ? 5 : (c == 'e' || c == 'E') ? 6 : -2; break;
            case 6: nx = (c == '+' || c == '-') ? 7 : d ? 8 : -1; break;
            case 7: nx = d ? 8 : -1; break;
            case 8: nx = d ? 8 : -2; break;
            }
            if (nx == -1) return -1;
            if (nx == -2) { /* the number ended before c: c belongs to what follows */
                if (bounded && !in_bounds(n, num_value(st))) return -1;
                pop(st);
                continue;
            }
            /* room left for what must follow: a digit after '-', '.', 'e' or 'e+' */
            if (++f->n > NUM_MAX || ((nx == 1 || nx == 4 || nx == 6 || nx == 7) && f->n >= NUM_MAX))
                return -1;
            st->num[st->num_len++] = (char)c;
            if (bounded && !num_feasible(n, st->num, st->num_len)) { /* no way into the bounds */
                st->num_len--;
                return -1;
            }
            f->st = (uint8_t)nx;
            return 0;
        }
        case F_LIT: {
            uint64_t cand = 0, longer = 0;
            for (int i = 0; i < n->n_lits; i++)
                if ((f->cand >> i & 1) && (size_t)f->pos < n->lit_len[i] &&
                    (unsigned char)n->lits[i][f->pos] == c) {
                    cand |= (uint64_t)1 << i;
                    if (n->lit_len[i] > (size_t)f->pos + 1) longer = 1;
                }
            if (!cand) {
                if (!lit_complete(f)) return -1;
                pop(st); /* a literal like 12 ended: c belongs to what follows */
                continue;
            }
            f->cand = cand;
            f->pos++;
            if (!longer) pop(st); /* every candidate left is complete */
            return 0;
        }
        case F_ARRAY:
            if (is_ws(c)) return ws(f);
            f->ws = 0;
            if (c == ']' && ((f->st == AS_START && n->min_items == 0) ||
                             (f->st == AS_AFTER && f->n >= n->min_items))) {
                pop(st);
                return 0;
            }
            if (f->st == AS_AFTER) {
                if (c != ',' || (n->max_items >= 0 && f->n >= n->max_items)) return -1;
                f->st = AS_NEXT;
                return 0;
            }
            if (n->max_items >= 0 && f->n >= n->max_items) return -1;
            f->n++;
            f->st = AS_AFTER;
            if (push(st, F_VALUE, n->items)) return -1;
            continue; /* c starts the item */
        }
        return -1;
    }
}

int glmv_json_feed(glmv_json_state *st, const char *bytes, size_t n) {
    if (st->failed) return -1;
    for (size_t i = 0; i < n; i++) {
        if (step(st, (unsigned char)bytes[i])) {
            st->failed = 1;
            return -1;
        }
        st->started = 1;
    }
    return 0;
}

int glmv_json_complete(const glmv_json_state *st) {
    if (st->failed) return 0;
    if (st->done) return 1;
    /* a number or numeric literal at the top level ends with the output */
    if (st->depth != 1) return 0;
    const glmv_json_frame *f = &st->f[0];
    if (f->kind == F_NUMBER) {
        const node *n = f->node;
        return number_end_ok(f->st) && (!(n->has_lo || n->has_hi) || in_bounds(n, num_value(st)));
    }
    if (f->kind == F_LIT) return lit_complete(f);
    return 0;
}

/* ------------------------------------------------------------------ the token mask */

struct glmv_vocab_index {
    int n, max_len;
    int32_t *ids;            /* ordinary tokens, by bytes */
    const char **bytes;
    uint32_t *len, *lcp;     /* lcp: bytes shared with the token before */
    uint8_t *plain;          /* no '"', '\\' or byte < 0x20: free inside a string */
};

int glmv_vocab_index_max_len(const glmv_vocab_index *v) { return v->max_len; }

static int cmp_tok(const void *a, const void *b, void *ctx) {
    int i = *(const int *)a, j = *(const int *)b;
    const glmv_vocab_index *v = ctx;
    uint32_t li = v->len[i], lj = v->len[j];
    int c = memcmp(v->bytes[i], v->bytes[j], li < lj ? li : lj);
    if (c) return c;
    return li < lj ? -1 : li > lj ? 1 : (i < j ? -1 : 1);
}

glmv_vocab_index *glmv_vocab_index_new(const glmv_tokenizer *tok) {
    glmv_vocab_index *v = calloc(1, sizeof *v);
    int32_t n_ids = glmv_tokenizer_size(tok);
    if (!v) return NULL;
    v->ids = malloc(sizeof(int32_t) * (size_t)n_ids);
    v->bytes = malloc(sizeof(char *) * (size_t)n_ids);
    v->len = malloc(sizeof(uint32_t) * (size_t)n_ids);
    v->lcp = malloc(sizeof(uint32_t) * (size_t)n_ids);
    v->plain = malloc((size_t)n_ids);
    int *ord = malloc(sizeof(int) * (size_t)n_ids);
    if (!v->ids || !v->bytes || !v->len || !v->lcp || !v->plain || !ord) goto fail;
    int k = 0;
    for (int32_t id = 0; id < n_ids; id++) {
        size_t l = 0;
        const char *b = glmv_token_bytes(tok, id, &l);
        if (!b || l == 0 || glmv_token_is_added(tok, id)) continue; /* tags are not JSON */
        v->ids[k] = id;
        v->bytes[k] = b;
        v->len[k] = (uint32_t)l;
        k++;
    }
    v->n = k;
    for (int i = 0; i < k; i++) ord[i] = i;
    qsort_r(ord, (size_t)k, sizeof(int), cmp_tok, v);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(k + 1));
    const char **bytes = malloc(sizeof(char *) * (size_t)(k + 1));
    uint32_t *len = malloc(sizeof(uint32_t) * (size_t)(k + 1));
    if (!ids || !bytes || !len) {
        free(ids), free(bytes), free(len);
        goto fail;
    }
    for (int i = 0; i < k; i++) ids[i] = v->ids[ord[i]], bytes[i] = v->bytes[ord[i]], len[i] = v->len[ord[i]];
    free(v->ids), free(v->bytes), free(v->len);
    v->ids = ids, v->bytes = bytes, v->len = len;
    for (int i = 0; i < k; i++) {
        uint32_t c = 0;
        if (i > 0)
            while (c < len[i] && c < len[i - 1] && bytes[i][c] == bytes[i - 1][c]) c++;
        v->lcp[i] = c;
        /* plain: whole UTF-8 characters, none of them a quote, a backslash or a control */
        int plain = 1, more = 0;
        unsigned char lead = 0;
        for (uint32_t j = 0; j < len[i]; j++) {
            unsigned char ch = (unsigned char)bytes[i][j];
            if (more > 0) {
                if ((ch & 0xC0) != 0x80) plain = 0;
                if ((lead == 0xE0 && ch < 0xA0) || (lead == 0xED && ch > 0x9F) ||
                    (lead == 0xF0 && ch < 0x90) || (lead == 0xF4 && ch > 0x8F))
                    plain = 0; /* overlong or surrogate: walked, and refused there */
                lead = 0;
                more--;
            } else if (ch == '"' || ch == '\\' || ch < 0x20 || (ch & 0xC0) == 0x80 || ch > 0xF4 ||
                       ch == 0xC0 || ch == 0xC1) {
                plain = 0;
            } else if (ch >= 0x80) {
                more = ch <= 0xDF ? 1 : ch <= 0xEF ? 2 : 3;
                lead = ch;
            }
        }
        if (more) plain = 0;
        v->plain[i] = (uint8_t)plain;
        if ((int)len[i] > v->max_len) v->max_len = (int)len[i];
    }
    free(ord);
    return v;
fail:
    free(ord);
    glmv_vocab_index_free(v);
    return NULL;
}

void glmv_vocab_index_free(glmv_vocab_index *v) {
    if (!v) return;
    free(v->ids);
    free(v->bytes);
    free(v->len);
    free(v->lcp);
    free(v->plain);
    free(v);
}

/* copy only the frames in use */
static void state_copy(glmv_json_state *d, const glmv_json_state *s) {
    size_t head = offsetof(glmv_json_state, f);
    memcpy(d, s, head + sizeof(glmv_json_frame) * (size_t)s->depth);
}

int glmv_schema_mask(const glmv_json_state *st, const glmv_vocab_index *v, uint8_t *allow,
                     int vocab, glmv_json_state *S) {
    memset(allow, 0, (size_t)vocab);
    if (st->failed || st->depth == 0) return 0;
    const glmv_json_frame *top = &st->f[st->depth - 1];
    const node *tn = top->node;
    int free_string = (top->kind == F_STRING || top->kind == F_FREEKEY) && top->st == 0 &&
                      top->pos == 0 && (!tn || tn->max_len < 0);
    int count = 0;
    if (free_string) {
        for (int i = 0; i < v->n; i++) {
            int ok = v->plain[i];
            if (!ok) {
                state_copy(&S[0], st);
                ok = glmv_json_feed(&S[0], v->bytes[i], v->len[i]) == 0;
            }
            if (ok && v->ids[i] < vocab) {
                allow[v->ids[i]] = 1;
                count++;
            }
        }
        return count;
    }
    /* S[k]: the state after the first k bytes of the current token */
    state_copy(&S[0], st);
    uint32_t have = 0;          /* S[0..have] are valid for the current prefix */
    int64_t dead = -1;          /* the last token failed at this byte */
    for (int i = 0; i < v->n; i++) {
        uint32_t l = v->lcp[i], len = v->len[i];
        if (dead >= 0 && l > (uint32_t)dead) continue; /* shares the refused prefix */
        dead = -1;
        if (have > l) have = l;
        uint32_t k = have;
        for (; k < len; k++) {
            state_copy(&S[k + 1], &S[k]);
            if (glmv_json_feed(&S[k + 1], v->bytes[i] + k, 1)) break;
        }
        if (k < len) {
            dead = k;
            have = k;
            continue;
        }
        have = len;
        if (v->ids[i] < vocab) {
            allow[v->ids[i]] = 1;
            count++;
        }
    }
    return count;
}
