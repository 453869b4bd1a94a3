/* gguf.c -- a GGUF file mapped and checked in full (see gguf.h for the layout).
 *
 * The reader walks the file once with a cursor that refuses to step past the end;
 * every count read from the file is compared with the bytes left before anything
 * is allocated for it, so a 40-byte file cannot ask for a terabyte. Keys and tensor
 * names are copied (NUL-terminated); string values and tensor data are used in place. */
#include "gguf.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

#define GGUF_MAX_KV (1 << 20)
#define GGUF_MAX_TENSORS (1 << 20)
#define GGUF_MAX_NAME 4096 /* bytes of a key or a tensor name */

struct glmv_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    int owned_map;             /* munmap on free */
    uint32_t version;
    uint64_t alignment;
    glmv_gguf_kv *kv;
    int64_t n_kv, kv_cap;      /* pairs read, entries allocated (a failed parse frees them all) */
    glmv_gguf_tensor *t;
    int64_t n_t;
    char *names;               /* keys and tensor names, NUL-terminated */
    int64_t *slot;             /* open addressing: tensor index by name hash, -1 = empty */
    uint64_t n_slots;          /* a power of two, at least twice n_t */
};

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---------------------------------------------------------------- types */

static const struct { const char *name; int elems, bytes; } ggml_types[] = {
    [GGML_F32] = {"F32", 1, 4},       [GGML_F16] = {"F16", 1, 2},
    [GGML_Q4_0] = {"Q4_0", 32, 18},   [GGML_Q4_1] = {"Q4_1", 32, 20},
    [GGML_Q5_0] = {"Q5_0", 32, 22},   [GGML_Q5_1] = {"Q5_1", 32, 24},
    [GGML_Q8_0] = {"Q8_0", 32, 34},   [GGML_Q8_1] = {"Q8_1", 32, 36},
    [GGML_Q2_K] = {"Q2_K", 256, 84},  [GGML_Q3_K] = {"Q3_K", 256, 110},
    [GGML_Q4_K] = {"Q4_K", 256, 144}, [GGML_Q5_K] = {"Q5_K", 256, 176},
    [GGML_Q6_K] = {"Q6_K", 256, 210}, [GGML_Q8_K] = {"Q8_K", 256, 292},
    [GGML_I8] = {"I8", 1, 1},         [GGML_I16] = {"I16", 1, 2},
    [GGML_I32] = {"I32", 1, 4},       [GGML_I64] = {"I64", 1, 8},
    [GGML_F64] = {"F64", 1, 8},       [GGML_BF16] = {"BF16", 1, 2},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

int glmv_ggml_block(uint32_t t, int *elems, int *bytes) {
    if (t >= N_GGML_TYPES || !ggml_types[t].name) return -1;
    *elems = ggml_types[t].elems;
    *bytes = ggml_types[t].bytes;
    return 0;
}

const char *glmv_ggml_type_name(uint32_t t) {
    static _Thread_local char buf[32];
    if (t < N_GGML_TYPES && ggml_types[t].name) return ggml_types[t].name;
    snprintf(buf, sizeof buf, "type %u", t);
    return buf;
}

static const int kv_size[GGUF_N_TYPES] = {
    [GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4, [GGUF_I32] = 4,
    [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

/* ---------------------------------------------------------------- cursor */

typedef struct {
    const uint8_t *p;
    size_t size, at;
} cursor;

static int rd(cursor *c, void *dst, size_t n) {
    if (n > c->size - c->at) return -1;
    memcpy(dst, c->p + c->at, n); /* little-endian hosts only, as the rest of glmv */
    c->at += n;
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v) { return rd(c, v, 4); }
static int rd_u64(cursor *c, uint64_t *v) { return rd(c, v, 8); }

/* A string: u64 length, bytes. Returns its bytes in place. */
static int rd_str(cursor *c, const uint8_t **s, uint64_t *len) {
    if (rd_u64(c, len) || *len > c->size - c->at) return -1;
    *s = c->p + c->at;
    c->at += (size_t)*len;
    return 0;
}

/* Messages quote names from the file: one printable line. */
static int gg_clean(char *err) {
    if (err)
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return -1;
}

/* ---------------------------------------------------------------- parse */

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char DUP_OOM[] = "";

/* A name held twice among n structs of size sz (the name pointer at off), by
 * sorting (a file may hold a million names); NULL when all differ. */
static const char *dup_name(const void *items, size_t n, size_t sz, size_t off) {
    const char **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return DUP_OOM;
    for (size_t i = 0; i < n; i++) memcpy(&v[i], (const char *)items + i * sz + off, sizeof *v);
    qsort(v, n, sizeof *v, str_cmp);
    const char *d = NULL;
    for (size_t i = 1; i < n && !d; i++)
        if (!strcmp(v[i - 1], v[i])) d = v[i];
    free(v);
    return d;
}

typedef struct {
    uint64_t begin, end, i;
} extent;

static int extent_cmp(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int parse(glmv_gguf *g, char *err) {
    const char *path = g->path;
    cursor c = {g->map, g->size, 0};
    uint32_t magic = 0;
    uint64_t n_t = 0, n_kv = 0;
    if (g->size < 24) return glmv_errf(err, "%s: %zu bytes, too short for a GGUF header", path, g->size);
    rd_u32(&c, &magic);
    if (memcmp(g->map, "GGUF", 4) != 0) return glmv_errf(err, "%s: not a GGUF file (no GGUF magic)", path);
    rd_u32(&c, &g->version);
    if (g->version == 2u << 24 || g->version == 3u << 24)
        return glmv_errf(err, "%s: a big-endian GGUF file (glmv reads little-endian ones)", path);
    if (g->version != 2 && g->version != 3)
        return glmv_errf(err, "%s: GGUF version %u (glmv reads versions 2 and 3)", path, g->version);
    rd_u64(&c, &n_t);
    rd_u64(&c, &n_kv);
    if (n_kv > GGUF_MAX_KV || n_kv > (g->size - c.at) / 12)
        return glmv_errf(err, "%s: %llu key-value pairs cannot fit the %zu-byte file (truncated?)", path,
                         (unsigned long long)n_kv, g->size);
    if (n_t > GGUF_MAX_TENSORS || n_t > (g->size - c.at) / 28)
        return glmv_errf(err, "%s: %llu tensors cannot fit the %zu-byte file (truncated?)", path,
                         (unsigned long long)n_t, g->size);
    g->kv = calloc((size_t)n_kv + 1, sizeof *g->kv);
    g->kv_cap = g->kv ? (int64_t)n_kv + 1 : 0;
    g->t = calloc((size_t)n_t + 1, sizeof *g->t);
    /* names: every key and name is at most GGUF_MAX_NAME and inside the file */
    size_t names_cap =
        GLMV_MIN(g->size, (size_t)(n_kv + n_t) * (GGUF_MAX_NAME + 1)) + (size_t)(n_kv + n_t) + 1;
    g->names = malloc(names_cap);
    if (!g->kv || !g->t || !g->names) return glmv_errf(err, "%s: out of memory", path);
    size_t names_at = 0;

    /* key-value pairs */
    for (uint64_t i = 0; i < n_kv; i++) {
        glmv_gguf_kv *kv = &g->kv[i];
        const uint8_t *k;
        uint64_t kl;
        if (rd_str(&c, &k, &kl))
            return glmv_errf(err, "%s: key %llu runs past the end of the file (truncated?)", path,
                             (unsigned long long)i);
        if (kl == 0 || kl > GGUF_MAX_NAME)
            return glmv_errf(err, "%s: key %llu has length %llu", path, (unsigned long long)i,
                             (unsigned long long)kl);
        if (memchr(k, 0, (size_t)kl))
            return glmv_errf(err, "%s: key %llu holds a NUL byte", path, (unsigned long long)i);
        memcpy(g->names + names_at, k, (size_t)kl);
        g->names[names_at + kl] = 0;
        kv->key = g->names + names_at;
        names_at += (size_t)kl + 1;
        if (rd_u32(&c, &kv->type)) return glmv_errf(err, "%s: key %s: truncated", path, kv->key);
        kv->n = 1;
        uint32_t et = kv->type;
        if (kv->type == GGUF_ARRAY) {
            if (rd_u32(&c, &kv->arr_type) || rd_u64(&c, &kv->n))
                return glmv_errf(err, "%s: key %s: truncated array header", path, kv->key);
            et = kv->arr_type;
            if (et == GGUF_ARRAY)
                return glmv_errf(err, "%s: key %s: arrays of arrays are not supported", path, kv->key);
        }
        if (et >= GGUF_N_TYPES) return glmv_errf(err, "%s: key %s: unknown value type %u", path, kv->key, et);
        kv->data = g->map + c.at;
        if (et == GGUF_STRING) {
            if (kv->n > (c.size - c.at) / 8)
                return glmv_errf(err, "%s: key %s: %llu strings cannot fit the file (truncated?)", path,
                                 kv->key, (unsigned long long)kv->n);
            if (kv->type == GGUF_ARRAY) {
                kv->str_off = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
                if (!kv->str_off) return glmv_errf(err, "%s: out of memory", path);
            }
            size_t a0 = c.at;
            for (uint64_t j = 0; j < kv->n; j++) {
                const uint8_t *s;
                uint64_t sl;
                if (kv->str_off) kv->str_off[j] = c.at - a0;
                if (rd_str(&c, &s, &sl))
                    return glmv_errf(err,
                                     "%s: key %s: string %llu runs past the end of the file (truncated?)",
                                     path, kv->key, (unsigned long long)j);
            }
        } else {
            uint64_t bytes = (uint64_t)kv_size[et];
            if (kv->n > (c.size - c.at) / bytes)
                return glmv_errf(err, "%s: key %s: %llu values run past the end of the file (truncated?)",
                                 path, kv->key, (unsigned long long)kv->n);
            c.at += (size_t)(kv->n * bytes);
        }
        g->n_kv++;
    }

    const char *dup = dup_name(g->kv, (size_t)g->n_kv, sizeof *g->kv, offsetof(glmv_gguf_kv, key));
    if (dup == DUP_OOM) return glmv_errf(err, "%s: out of memory", path);
    if (dup) return glmv_errf(err, "%s: key %s appears twice", path, dup);

    /* alignment */
    g->alignment = 32;
    int64_t al;
    int r = glmv_gguf_get_int(g, "general.alignment", &al, err);
    if (r < 0) return -1;
    if (r == 0) {
        if (al <= 0 || al > (1 << 20) || (al & (al - 1)))
            return glmv_errf(err, "%s: general.alignment %lld is not a power of two up to 1 MiB", path,
                             (long long)al);
        g->alignment = (uint64_t)al;
    }

    /* tensor infos */
    for (uint64_t i = 0; i < n_t; i++) {
        glmv_gguf_tensor *t = &g->t[i];
        const uint8_t *nm;
        uint64_t nl;
        if (rd_str(&c, &nm, &nl))
            return glmv_errf(err, "%s: tensor %llu's name runs past the end of the file (truncated?)", path,
                             (unsigned long long)i);
        if (nl == 0 || nl > GGUF_MAX_NAME || memchr(nm, 0, (size_t)nl))
            return glmv_errf(err, "%s: tensor %llu has an empty, overlong or NUL-holding name", path,
                             (unsigned long long)i);
        memcpy(g->names + names_at, nm, (size_t)nl);
        g->names[names_at + nl] = 0;
        t->name = g->names + names_at;
        names_at += (size_t)nl + 1;
        uint32_t nd;
        if (rd_u32(&c, &nd)) return glmv_errf(err, "%s: tensor %s: truncated", path, t->name);
        if (nd < 1 || nd > GGUF_MAX_DIMS)
            return glmv_errf(err, "%s: tensor %s: %u dimensions (1 to %d)", path, t->name, nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t numel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if (rd_u64(&c, &ne)) return glmv_errf(err, "%s: tensor %s: truncated", path, t->name);
            if (ne == 0 || ne > ((uint64_t)1 << 40) || numel > ((uint64_t)1 << 50) / ne)
                return glmv_errf(err, "%s: tensor %s: dimension %u is %llu (empty or absurdly large)", path,
                                 t->name, d, (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
            numel *= ne;
        }
        uint64_t off;
        if (rd_u32(&c, &t->type) || rd_u64(&c, &off))
            return glmv_errf(err, "%s: tensor %s: truncated", path, t->name);
        int be, bb;
        if (glmv_ggml_block(t->type, &be, &bb))
            return glmv_errf(err, "%s: tensor %s has ggml type %u, which glmv does not know", path, t->name,
                             t->type);
        if (t->ne[0] % be)
            return glmv_errf(err, "%s: tensor %s: row of %lld is not whole %s blocks of %d", path, t->name,
                             (long long)t->ne[0], glmv_ggml_type_name(t->type), be);
        t->bytes = numel / (uint64_t)be * (uint64_t)bb;
        if (off % g->alignment)
            return glmv_errf(err, "%s: tensor %s: offset %llu is not a multiple of the alignment %llu", path,
                             t->name, (unsigned long long)off, (unsigned long long)g->alignment);
        t->data = (const void *)(uintptr_t)off; /* relative for now */
        g->n_t++;
    }

    dup = dup_name(g->t, (size_t)g->n_t, sizeof *g->t, offsetof(glmv_gguf_tensor, name));
    if (dup == DUP_OOM) return glmv_errf(err, "%s: out of memory", path);
    if (dup) return glmv_errf(err, "%s: tensor %s appears twice", path, dup);

    /* data: starts at the next multiple of the alignment */
    uint64_t d0 = (c.at + g->alignment - 1) / g->alignment * g->alignment;
    if (n_t && d0 > g->size)
        return glmv_errf(err, "%s: the tensor data would start past the end of the file (truncated?)", path);
    uint64_t avail = n_t ? g->size - d0 : 0;
    /* every extent inside the data section, and no two overlapping */
    extent *ord = malloc((size_t)(n_t ? n_t : 1) * sizeof *ord);
    if (!ord) return glmv_errf(err, "%s: out of memory", path);
    for (uint64_t i = 0; i < n_t; i++) {
        glmv_gguf_tensor *t = &g->t[i];
        uint64_t off = (uint64_t)(uintptr_t)t->data;
        if (off > avail || t->bytes > avail - off) {
            free(ord);
            return glmv_errf(err, "%s: tensor %s: bytes [%llu, %llu) of the data lie past the end of the "
                             "file (%llu bytes of data; truncated?)", path, t->name, (unsigned long long)off,
                             (unsigned long long)(off + t->bytes), (unsigned long long)avail);
        }
        ord[i] = (extent){off, off + t->bytes, i};
    }
    qsort(ord, (size_t)n_t, sizeof *ord, extent_cmp);
    for (uint64_t i = 1; i < n_t; i++)
        if (ord[i - 1].end > ord[i].begin) {
            const char *a = g->t[ord[i - 1].i].name, *b = g->t[ord[i].i].name;
            free(ord);
            return glmv_errf(err, "%s: tensors %s and %s overlap", path, a, b);
        }
    free(ord);
    for (uint64_t i = 0; i < n_t; i++) g->t[i].data = g->map + d0 + (uint64_t)(uintptr_t)g->t[i].data;
    /* names unique (checked above): a hash table for glmv_gguf_find_tensor */
    for (g->n_slots = 16; g->n_slots < 2 * n_t; g->n_slots *= 2) {}
    g->slot = malloc(g->n_slots * sizeof *g->slot);
    if (!g->slot) return glmv_errf(err, "%s: out of memory", path);
    for (uint64_t i = 0; i < g->n_slots; i++) g->slot[i] = -1;
    for (uint64_t i = 0; i < n_t; i++) {
        uint64_t h = name_hash(g->t[i].name) & (g->n_slots - 1);
        while (g->slot[h] >= 0) h = (h + 1) & (g->n_slots - 1);
        g->slot[h] = (int64_t)i;
    }
    return 0;
}

/* ---------------------------------------------------------------- open */

static int finish_open(glmv_gguf **out, glmv_gguf *g, char *err) {
    if (parse(g, err)) {
        gg_clean(err);
        glmv_gguf_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

int glmv_gguf_open_memory(glmv_gguf **out, const void *buf, size_t size, const char *name, char *err) {
    *out = NULL;
    glmv_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return glmv_errf(err, "%s: out of memory", name);
    }
    g->map = buf;
    g->size = size;
    return finish_open(out, g, err);
}

int glmv_gguf_open(glmv_gguf **out, const char *path, char *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return glmv_errf(err, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return glmv_errf(err, "%s: not a regular file", path);
    }
    if (sb.st_size < 24) {
        close(fd);
        return glmv_errf(err, "%s: %lld bytes, too short for a GGUF header", path, (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return glmv_errf(err, "%s: mmap: %s", path, strerror(e));
    glmv_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        munmap(m, (size_t)sb.st_size);
        return glmv_errf(err, "%s: out of memory", path);
    }
    g->map = m;
    g->size = (size_t)sb.st_size;
    g->owned_map = 1;
    return finish_open(out, g, err);
}

void glmv_gguf_free(glmv_gguf *g) {
    if (!g) return;
    if (g->owned_map && g->map) munmap((void *)g->map, g->size);
    for (int64_t i = 0; i < g->kv_cap; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->t);
    free(g->names);
    free(g->slot);
    free(g->path);
    free(g);
}

const char *glmv_gguf_path(const glmv_gguf *g) { return g->path; }
uint32_t glmv_gguf_version(const glmv_gguf *g) { return g->version; }

void glmv_gguf_take_map(glmv_gguf *g, void **map, size_t *size) {
    *map = g->owned_map ? (void *)g->map : NULL;
    *size = g->owned_map ? g->size : 0;
    g->owned_map = 0;
}

int glmv_gguf_is_gguf(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char m[4];
    ssize_t n = read(fd, m, 4);
    close(fd);
    return n == 4 && !memcmp(m, "GGUF", 4);
}

/* ---------------------------------------------------------------- access */

int64_t glmv_gguf_n_kv(const glmv_gguf *g) { return g->n_kv; }
const glmv_gguf_kv *glmv_gguf_kv_at(const glmv_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}
const glmv_gguf_kv *glmv_gguf_find_kv(const glmv_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

static double num_at(uint32_t type, const uint8_t *p) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, (size_t)kv_size[type]);
    switch (type) {
    case GGUF_U8: case GGUF_BOOL: return v.u8;
    case GGUF_I8: return v.i8;
    case GGUF_U16: return v.u16;
    case GGUF_I16: return v.i16;
    case GGUF_U32: return v.u32;
    case GGUF_I32: return v.i32;
    case GGUF_F32: return v.f32;
    case GGUF_U64: return (double)v.u64;
    case GGUF_I64: return (double)v.i64;
    case GGUF_F64: return v.f64;
    }
    return 0;
}

static int is_int_type(uint32_t t) { return t <= GGUF_I32 || t == GGUF_U64 || t == GGUF_I64; }

int glmv_gguf_get_int(const glmv_gguf *g, const char *key, int64_t *out, char *err) {
    const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, key);
    if (!kv) return 1;
    if (!is_int_type(kv->type)) return glmv_errf(err, "%s: %s is not an integer", g->path, key);
    if (kv->type == GGUF_U64) {
        uint64_t u;
        memcpy(&u, kv->data, 8);
        if (u > INT64_MAX)
            return glmv_errf(err, "%s: %s = %llu is out of range", g->path, key, (unsigned long long)u);
        *out = (int64_t)u;
    } else if (kv->type == GGUF_I64) {
        memcpy(out, kv->data, 8);
    } else {
        *out = (int64_t)num_at(kv->type, kv->data);
    }
    return 0;
}

int glmv_gguf_get_float(const glmv_gguf *g, const char *key, double *out, char *err) {
    const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type == GGUF_ARRAY || kv->type == GGUF_STRING || kv->type == GGUF_BOOL)
        return glmv_errf(err, "%s: %s is not a number", g->path, key);
    *out = num_at(kv->type, kv->data);
    return 0;
}

int glmv_gguf_get_bool(const glmv_gguf *g, const char *key, int *out, char *err) {
    const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_BOOL) return glmv_errf(err, "%s: %s is not a bool", g->path, key);
    *out = kv->data[0] != 0;
    return 0;
}

int glmv_gguf_get_str(const glmv_gguf *g, const char *key, const char **s, size_t *len, char *err) {
    const glmv_gguf_kv *kv = glmv_gguf_find_kv(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING) return glmv_errf(err, "%s: %s is not a string", g->path, key);
    uint64_t l;
    memcpy(&l, kv->data, 8);
    *s = (const char *)kv->data + 8;
    *len = (size_t)l;
    return 0;
}

double glmv_gguf_arr_num(const glmv_gguf_kv *kv, uint64_t i) {
    GLMV_ASSERT(kv->type == GGUF_ARRAY && kv->arr_type != GGUF_STRING && i < kv->n);
    return num_at(kv->arr_type, kv->data + i * (uint64_t)kv_size[kv->arr_type]);
}

const char *glmv_gguf_arr_str(const glmv_gguf_kv *kv, uint64_t i, size_t *len) {
    GLMV_ASSERT(kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && i < kv->n);
    const uint8_t *p = kv->data + kv->str_off[i];
    uint64_t l;
    memcpy(&l, p, 8);
    *len = (size_t)l;
    return (const char *)p + 8;
}

int64_t glmv_gguf_n_tensors(const glmv_gguf *g) { return g->n_t; }
const glmv_gguf_tensor *glmv_gguf_tensor_at(const glmv_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_t ? &g->t[i] : NULL;
}
const glmv_gguf_tensor *glmv_gguf_find_tensor(const glmv_gguf *g, const char *name) {
    for (uint64_t h = name_hash(name) & (g->n_slots - 1);; h = (h + 1) & (g->n_slots - 1)) {
        int64_t i = g->slot[h];
        if (i < 0) return NULL;
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    }
}
