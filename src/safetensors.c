/* safetensors.c -- a checkpoint's tensors, mmap'd and validated.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}), then the data; offsets are relative to the data.
 * Every header is checked in full before a tensor is handed out (sizes, dtypes,
 * offsets inside the file, no overlaps, alignment, no duplicate names across
 * shards), so the model code can trust every glmv_tensor. Sharded checkpoints
 * are read through model.safetensors.index.json's weight_map. The synthetic
 * source fills the same table with random BF16 weights for benchmarks.
 * Matrices quantized by `glmv quantize` (save.c) are U8 [rows, bytes per row] of llama.cpp's
 * Q8_0/Q4_0/Q5_0/Q4_K/Q6_K blocks, their format in __metadata__ ("glmv.quant:NAME": "Q8_0"); they are read
 * as such, with the matrix's own shape.
 * What this file does not do: convert dtypes or copy tensor data. */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base.h"

/* A header larger than this is refused (the 9B index-free file has ~60 KB;
 * the reference implementation's limit is 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* JSON integers are doubles: above 2^53 they are no longer exact. */
#define ST_MAX_INT 9007199254740992.0

typedef struct {
    char *path;          /* full path, for messages */
    void *map;           /* mmap'd file (or caller's memory) */
    size_t size;         /* bytes of the file */
    int owned_map;       /* munmap on free */
} st_file;

struct glmv_weights {
    glmv_tensor *t;      /* [n] */
    int *file_of;        /* [n] index into files */
    int64_t n, cap;
    st_file *files;
    int n_files;
    char **names;        /* owned name strings, [n] */
    int64_t *slot;       /* open-addressing table of tensor indices, -1 = empty */
    int64_t n_slots;     /* power of two */
    void **blocks;       /* synthetic allocations */
    int64_t n_blocks;
    int64_t bytes;
};

void glmv_weights_release(glmv_weights *w, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p, e = a + n;
    int ours = w->n_files == 0 && w->n_blocks > 0; /* random weights: every byte is ours */
    for (int i = 0; i < w->n_files && !ours; i++) {
        uintptr_t m0 = (uintptr_t)w->files[i].map;
        ours = w->files[i].owned_map && a >= m0 && e <= m0 + w->files[i].size;
    }
    if (!ours) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a0 = (a + pg - 1) & ~(pg - 1), e0 = e & ~(pg - 1);
    if (e0 > a0) madvise((void *)a0, e0 - a0, MADV_DONTNEED);
}

/* Keep an allocation owned by w (freed with it). */
static int st_keep_block(glmv_weights *w, void *p) {
    void **nb = realloc(w->blocks, (size_t)(w->n_blocks + 1) * sizeof *nb);
    if (!nb) return -1;
    w->blocks = nb;
    w->blocks[w->n_blocks++] = p;
    return 0;
}

/* Names and dtypes in messages come from the file: keep the message one
 * printable line whatever they hold. */
static int st_clean(char *err) {
    if (err)
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return -1;
}

/* ---------------------------------------------------------------- table */

static uint64_t st_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int64_t st_lookup_slot(const glmv_weights *w, const char *name) {
    uint64_t m = (uint64_t)w->n_slots - 1;
    for (uint64_t i = st_hash(name) & m;; i = (i + 1) & m) {
        int64_t k = w->slot[i];
        if (k < 0 || strcmp(w->t[k].name, name) == 0) return (int64_t)i;
    }
}

static int st_rehash(glmv_weights *w, int64_t n_slots) {
    int64_t *s = malloc((size_t)n_slots * sizeof *s);
    if (!s) return -1;
    for (int64_t i = 0; i < n_slots; i++) s[i] = -1;
    free(w->slot);
    w->slot = s;
    w->n_slots = n_slots;
    for (int64_t k = 0; k < w->n; k++) w->slot[st_lookup_slot(w, w->t[k].name)] = k;
    return 0;
}

/* Append a tensor (name copied). Returns its index, -1 on OOM, -2 when the
 * name already exists (*dup = the existing index). */
static int64_t st_add(glmv_weights *w, const char *name, int file, int64_t *dup) {
    if ((w->n + 1) * 2 > w->n_slots && st_rehash(w, w->n_slots ? w->n_slots * 2 : 1024)) return -1;
    int64_t s = st_lookup_slot(w, name);
    if (w->slot[s] >= 0) {
        *dup = w->slot[s];
        return -2;
    }
    if (w->n == w->cap) {
        int64_t nc = w->cap ? w->cap * 2 : 256;
        glmv_tensor *t = realloc(w->t, (size_t)nc * sizeof *t);
        if (!t) return -1;
        w->t = t;
        int *f = realloc(w->file_of, (size_t)nc * sizeof *f);
        if (!f) return -1;
        w->file_of = f;
        char **nm = realloc(w->names, (size_t)nc * sizeof *nm);
        if (!nm) return -1;
        w->names = nm;
        w->cap = nc;
    }
    char *copy = strdup(name);
    if (!copy) return -1;
    int64_t k = w->n++;
    memset(&w->t[k], 0, sizeof w->t[k]);
    w->names[k] = copy;
    w->t[k].name = copy;
    w->file_of[k] = file;
    w->slot[s] = k;
    return k;
}

static glmv_weights *st_new(void) {
    glmv_weights *w = calloc(1, sizeof *w);
    if (w && st_rehash(w, 1024)) {
        free(w);
        return NULL;
    }
    return w;
}

void glmv_weights_free(glmv_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_files; i++) {
        if (w->files[i].owned_map && w->files[i].map) munmap(w->files[i].map, w->files[i].size);
        free(w->files[i].path);
    }
    for (int64_t k = 0; k < w->n; k++) free(w->names[k]);
    for (int64_t b = 0; b < w->n_blocks; b++) free(w->blocks[b]);
    free(w->blocks);
    free(w->files);
    free(w->names);
    free(w->file_of);
    free(w->t);
    free(w->slot);
    free(w);
}

glmv_tensor *glmv_weights_find(glmv_weights *w, const char *name) {
    if (!w || !name) return NULL;
    int64_t k = w->slot[st_lookup_slot(w, name)];
    return k < 0 ? NULL : &w->t[k];
}

int64_t glmv_weights_count(const glmv_weights *w) { return w ? w->n : 0; }
glmv_tensor *glmv_weights_at(glmv_weights *w, int64_t i) {
    return w && i >= 0 && i < w->n ? &w->t[i] : NULL;
}
int64_t glmv_weights_bytes(const glmv_weights *w) { return w ? w->bytes : 0; }

const char *glmv_weights_file_of(const glmv_weights *w, const glmv_tensor *t) {
    if (!w || !t || t < w->t || t >= w->t + w->n) return NULL;
    int f = w->file_of[t - w->t];
    return f >= 0 && f < w->n_files ? w->files[f].path : "synthetic";
}

static void st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

int glmv_weights_require(glmv_weights *w, const char *name, int ndim, const int64_t *shape,
                         glmv_tensor **out, char *err) {
    glmv_tensor *t = glmv_weights_find(w, name);
    char want[160], got[160];
    st_shape_str(want, sizeof want, ndim, shape);
    if (!t) {
        *out = NULL;
        return glmv_errf(err, "tensor %s %s is missing from the checkpoint", name, want);
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        st_shape_str(got, sizeof got, t->ndim, t->shape);
        *out = NULL;
        glmv_errf(err, "%s: tensor %s has shape %s, expected %s (from config.json)",
                  glmv_weights_file_of(w, t), name, got, want);
        return st_clean(err);
    }
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------- header */

static int st_json_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_INT) || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

static int st_dtype(const char *s, glmv_dtype *out) {
    if (!strcmp(s, "BF16")) *out = GLMV_BF16;
    else if (!strcmp(s, "F16")) *out = GLMV_F16;
    else if (!strcmp(s, "F32")) *out = GLMV_F32;
    else return -1;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int64_t k;
} st_range;

/* The header's "glmv.quant:NAME" entries, sorted by name, so that each U8 tensor finds its
 * format in log time however large a hostile header is. */
typedef struct {
    const char *name; /* after the prefix */
    const char *format;
} st_quant;

static int st_quant_cmp(const void *a, const void *b) {
    return strcmp(((const st_quant *)a)->name, ((const st_quant *)b)->name);
}

#define ST_QUANT_PREFIX "glmv.quant:"

static int st_range_cmp(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse and check the header of file f (already mapped) and add its tensors. */
static int st_parse(glmv_weights *w, int fi, char *err) {
    const st_file *f = &w->files[fi];
    const char *path = f->path;
    const unsigned char *p = f->map;
    if (f->size < 8) return glmv_errf(err, "%s: %zu bytes, too short for a safetensors header", path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > ST_MAX_HEADER)
        return glmv_errf(err, "%s: header length %llu exceeds the %llu-byte limit", path,
                         (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen < 2 || hlen > f->size - 8)
        return glmv_errf(err, "%s: header length %llu does not fit the %zu-byte file (truncated?)",
                         path, (unsigned long long)hlen, f->size);
    const uint64_t data0 = 8 + hlen, data_len = f->size - data0;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)p - 8) : 0;
        return glmv_errf(err, "%s: header is not valid JSON (near byte %zu)", path, at);
    }
    int rc = -1;
    st_range *ranges = NULL;
    st_quant *quant = NULL;
    int64_t nq = 0;
    if (!cJSON_IsObject(root)) {
        glmv_errf(err, "%s: header is not a JSON object", path);
        goto done;
    }
    int64_t n_entries = cJSON_GetArraySize(root);
    ranges = malloc((size_t)(n_entries + 1) * sizeof *ranges);
    if (!ranges) {
        glmv_errf(err, "%s: out of memory", path);
        goto done;
    }
    int64_t nr = 0;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), *e;
    if (cJSON_IsObject(meta)) {
        quant = malloc((size_t)(cJSON_GetArraySize(meta) + 1) * sizeof *quant);
        if (!quant) {
            glmv_errf(err, "%s: out of memory", path);
            goto done;
        }
        cJSON_ArrayForEach(e, meta)
            if (e->string && cJSON_IsString(e) && !strncmp(e->string, ST_QUANT_PREFIX, strlen(ST_QUANT_PREFIX)))
                quant[nq++] = (st_quant){e->string + strlen(ST_QUANT_PREFIX), e->valuestring};
        qsort(quant, (size_t)nq, sizeof *quant, st_quant_cmp);
    }
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                glmv_errf(err, "%s: __metadata__ is not an object", path);
                goto done;
            }
            continue;
        }
        if (!*name) {
            glmv_errf(err, "%s: a tensor has an empty name", path);
            goto done;
        }
        if (!cJSON_IsObject(e)) {
            glmv_errf(err, "%s: tensor %s: entry is not an object", path, name);
            goto done;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
            glmv_errf(err, "%s: tensor %s: needs string dtype, array shape, array data_offsets",
                      path, name);
            goto done;
        }
        glmv_dtype dt;
        int qblock = 0; /* bytes per block of a quantized matrix (glmv quantize's U8 rows) */
        if (!strcmp(jd->valuestring, "U8")) {
            st_quant want = {name, NULL}, *q = nq ? bsearch(&want, quant, (size_t)nq, sizeof *quant, st_quant_cmp) : NULL;
            const char *qs = q ? q->format : "";
            static const glmv_dtype fmts[] = {GLMV_Q8_0, GLMV_Q4_0, GLMV_Q5_0, GLMV_Q4_K, GLMV_Q6_K};
            for (size_t fmt_i = 0; fmt_i < sizeof fmts / sizeof *fmts && !qblock; fmt_i++)
                if (!strcmp(qs, glmv_dtype_name(fmts[fmt_i])))
                    dt = fmts[fmt_i], qblock = (int)glmv_dtype_row_bytes(fmts[fmt_i], glmv_dtype_block(fmts[fmt_i]));
            if (!qblock) {
                glmv_errf(err, "%s: tensor %s: U8 without a block format in __metadata__ (\"" ST_QUANT_PREFIX
                          "%s\": \"Q8_0\", \"Q4_0\", \"Q5_0\", \"Q4_K\" or \"Q6_K\", as glmv quantize writes "
                          "it)", path, name, name);
                goto done;
            }
        } else if (st_dtype(jd->valuestring, &dt)) {
            glmv_errf(err, "%s: tensor %s: unsupported dtype \"%.32s\" (glmv reads BF16, F16, F32, "
                      "and glmv quantize's rows of blocks)", path, name, jd->valuestring);
            goto done;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > GLMV_MAX_DIMS) {
            glmv_errf(err, "%s: tensor %s: %d dimensions (at most %d)", path, name, ndim,
                      GLMV_MAX_DIMS);
            goto done;
        }
        int64_t shape[GLMV_MAX_DIMS] = {0};
        uint64_t numel = 1;
        int big = 0;
        for (int i = 0; i < ndim; i++) {
            if (st_json_int(cJSON_GetArrayItem(js, i), &shape[i])) {
                glmv_errf(err, "%s: tensor %s: shape[%d] is not a non-negative integer", path,
                          name, i);
                goto done;
            }
            /* numel beyond 2^62 cannot be in a file anyway: flag, then report below */
            if (shape[i] && numel > ((uint64_t)1 << 62) / (uint64_t)shape[i]) big = 1;
            else numel *= (uint64_t)shape[i];
        }
        int64_t o0, o1;
        if (cJSON_GetArraySize(jo) != 2 || st_json_int(cJSON_GetArrayItem(jo, 0), &o0) ||
            st_json_int(cJSON_GetArrayItem(jo, 1), &o1)) {
            glmv_errf(err, "%s: tensor %s: data_offsets must be two non-negative integers", path,
                      name);
            goto done;
        }
        if (o1 < o0) {
            glmv_errf(err, "%s: tensor %s: data_offsets [%lld, %lld] end before they begin", path,
                      name, (long long)o0, (long long)o1);
            goto done;
        }
        if (big) {
            glmv_errf(err, "%s: tensor %s: absurd shape (more than 2^62 elements)", path, name);
            goto done;
        }
        if (qblock && (ndim != 2 || shape[1] % qblock)) {
            glmv_errf(err, "%s: tensor %s: %s rows must be 2-D with whole %d-byte blocks", path, name,
                      glmv_dtype_name(dt), qblock);
            goto done;
        }
        uint64_t nbytes = qblock ? numel : numel * glmv_dtype_size(dt);
        if ((uint64_t)(o1 - o0) != nbytes) {
            char sh[160];
            st_shape_str(sh, sizeof sh, ndim, shape);
            glmv_errf(err, "%s: tensor %s: data_offsets [%lld, %lld] hold %lld bytes but %s %s "
                      "needs %llu", path, name, (long long)o0, (long long)o1,
                      (long long)(o1 - o0), jd->valuestring, sh, (unsigned long long)nbytes);
            goto done;
        }
        if ((uint64_t)o1 > data_len) {
            glmv_errf(err, "%s: tensor %s: data_offsets [%lld, %lld] run past the end of the "
                      "data (%llu bytes; file truncated?)", path, name, (long long)o0,
                      (long long)o1, (unsigned long long)data_len);
            goto done;
        }
        int64_t dup = -1;
        int64_t k = st_add(w, name, fi, &dup);
        if (k == -2) {
            glmv_errf(err, "%s: tensor %s is also in %s", path, name,
                      glmv_weights_file_of(w, &w->t[dup]));
            goto done;
        }
        if (k < 0) {
            glmv_errf(err, "%s: out of memory", path);
            goto done;
        }
        glmv_tensor *t = &w->t[k];
        t->dtype = dt;
        t->ndim = ndim;
        if (qblock) shape[1] = shape[1] / qblock * glmv_dtype_block(dt); /* the matrix's columns */
        memcpy(t->shape, shape, sizeof shape);
        t->host = t->data = (void *)(p + data0 + (uint64_t)o0);
        if ((uintptr_t)t->host % (qblock ? 2 : glmv_dtype_size(dt))) {
            /* The format does not promise alignment (writers sort tensors by
             * dtype size, so real files are aligned); copy the rare odd one
             * rather than read it through a misaligned pointer. */
            void *copy = glmv_aligned_alloc((size_t)nbytes);
            if (!copy || st_keep_block(w, copy)) {
                free(copy);
                glmv_errf(err, "%s: tensor %s: out of memory", path, name);
                goto done;
            }
            memcpy(copy, t->host, (size_t)nbytes);
            t->host = t->data = copy;
            glmv_log(2, "%s: tensor %s is not aligned; copied", path, name);
        }
        w->bytes += (int64_t)nbytes;
        ranges[nr].begin = (uint64_t)o0;
        ranges[nr].end = (uint64_t)o1;
        ranges[nr].k = k;
        nr++;
    }
    qsort(ranges, (size_t)nr, sizeof *ranges, st_range_cmp);
    for (int64_t i = 1; i < nr; i++) {
        /* zero-sized tensors occupy nothing and may share an offset */
        if (ranges[i].begin == ranges[i].end) continue;
        for (int64_t j = i - 1; j >= 0; j--) {
            if (ranges[j].begin == ranges[j].end) continue;
            if (ranges[i].begin < ranges[j].end) {
                glmv_errf(err, "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", path,
                          w->t[ranges[j].k].name, (unsigned long long)ranges[j].begin,
                          (unsigned long long)ranges[j].end, w->t[ranges[i].k].name,
                          (unsigned long long)ranges[i].begin, (unsigned long long)ranges[i].end);
                goto done;
            }
            break;
        }
    }
    rc = 0;
done:
    free(ranges);
    free(quant);
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- files */

static int st_add_file(glmv_weights *w, const char *path, char *err) {
    st_file *nf = realloc(w->files, (size_t)(w->n_files + 1) * sizeof *nf);
    if (!nf) return glmv_errf(err, "%s: out of memory", path);
    w->files = nf;
    st_file *f = &w->files[w->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return glmv_errf(err, "%s: out of memory", path);
    w->n_files++;
    return w->n_files - 1;
}

static int st_map_file(glmv_weights *w, int fi, char *err) {
    st_file *f = &w->files[fi];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return glmv_errf(err, "%s: %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return glmv_errf(err, "%s: %s", f->path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return glmv_errf(err, "%s: not a regular file", f->path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return glmv_errf(err, "%s: %lld bytes, too short for a safetensors header", f->path,
                         (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return glmv_errf(err, "%s: mmap: %s", f->path, strerror(e));
    f->map = m;
    f->size = (size_t)sb.st_size;
    f->owned_map = 1;
    return 0;
}

static int st_open_one(glmv_weights *w, const char *path, char *err) {
    int fi = st_add_file(w, path, err);
    if (fi < 0) return -1;
    if (st_map_file(w, fi, err)) return -1;
    return st_parse(w, fi, err);
}

static int st_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Sharded checkpoint: every file named by weight_map is opened once, and every
 * name in weight_map must be found in the file it names. */
static int st_open_index(glmv_weights *w, const char *dir, const char *index_path, char *err) {
    size_t len;
    char *text = glmv_read_file(index_path, &len, err);
    if (!text) return -1;
    int rc = -1;
    char path[4096];
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        glmv_errf(err, "%s: not valid JSON", index_path);
        goto done;
    }
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map) || !map->child) {
        glmv_errf(err, "%s: no weight_map object (or it is empty)", index_path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !*e->valuestring) {
            glmv_errf(err, "%s: weight_map entry %s is not a file name", index_path, e->string);
            goto done;
        }
        const char *fn = e->valuestring;
        if (strchr(fn, '/') || !strcmp(fn, "..") || !strcmp(fn, ".")) {
            glmv_errf(err, "%s: weight_map names file \"%.200s\" for tensor %s, outside the folder",
                      index_path, fn, e->string);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        int seen = 0;
        for (int i = 0; i < w->n_files && !seen; i++) seen = !strcmp(w->files[i].path, path);
        if (seen) continue;
        if (!st_exists(path)) {
            glmv_errf(err, "%s: %s (named by %s for tensor %s)", path, strerror(errno),
                      index_path, e->string);
            goto done;
        }
        if (st_open_one(w, path, err)) goto done;
    }
    cJSON_ArrayForEach(e, map) {
        glmv_tensor *t = glmv_weights_find(w, e->string);
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (!t) {
            glmv_errf(err, "%s: tensor %s is listed in %s but not in the file", path, e->string,
                      index_path);
            goto done;
        }
        const char *actual = glmv_weights_file_of(w, t);
        if (strcmp(actual, path) != 0) {
            glmv_errf(err, "%s: tensor %s is listed in %s for %s but found in %s", index_path,
                      e->string, index_path, path, actual);
            goto done;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int glmv_weights_open(glmv_weights **out, const char *dir, char *err) {
    *out = NULL;
    glmv_weights *w = st_new();
    if (!w) return glmv_errf(err, "%s: out of memory", dir);
    char path[4096];
    int rc;
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) { /* a .safetensors file named directly */
        rc = st_open_one(w, dir, err);
    } else if (st_exists(path)) {
        rc = st_open_index(w, dir, path, err);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!st_exists(path)) {
            glmv_weights_free(w);
            return glmv_errf(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
        }
        rc = st_open_one(w, path, err);
    }
    if (rc) {
        glmv_weights_free(w);
        return st_clean(err);
    }
    glmv_log(1, "weights: %lld tensors, %.2f GB in %d file(s) from %s", (long long)w->n,
             (double)w->bytes / 1e9, w->n_files, dir);
    *out = w;
    return 0;
}

glmv_weights *glmv_weights_new(void) { return st_new(); }

int glmv_weights_adopt_map(glmv_weights *w, const char *path, void *map, size_t size) {
    int fi = st_add_file(w, path, NULL);
    if (fi < 0) return -1;
    w->files[fi].map = map;
    w->files[fi].size = size;
    w->files[fi].owned_map = map != NULL;
    return fi;
}

int glmv_weights_keep(glmv_weights *w, void *p) { return st_keep_block(w, p); }

glmv_tensor *glmv_weights_add(glmv_weights *w, const char *name, int file, glmv_dtype dt, int ndim,
                              const int64_t *shape, void *data, char *err) {
    GLMV_ASSERT(ndim >= 1 && ndim <= GLMV_MAX_DIMS);
    int64_t dup;
    int64_t k = st_add(w, name, file, &dup);
    if (k == -2) {
        glmv_errf(err, "tensor %s is given twice", name);
        return NULL;
    }
    if (k < 0) {
        glmv_errf(err, "out of memory adding tensor %s", name);
        return NULL;
    }
    glmv_tensor *t = &w->t[k];
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = t->host = data;
    w->bytes += (int64_t)glmv_dtype_row_bytes(dt, glmv_tensor_cols(t)) * t->shape[0];
    return t;
}

int glmv_weights_open_memory(glmv_weights **out, const void *buf, size_t size, const char *name,
                             char *err) {
    *out = NULL;
    glmv_weights *w = st_new();
    if (!w) return glmv_errf(err, "%s: out of memory", name);
    int fi = st_add_file(w, name, err);
    if (fi < 0) {
        glmv_weights_free(w);
        return -1;
    }
    w->files[fi].map = (void *)buf;
    w->files[fi].size = size;
    if (st_parse(w, fi, err)) {
        glmv_weights_free(w);
        return st_clean(err);
    }
    *out = w;
    return 0;
}

/* ---------------------------------------------------------------- synthetic */

/* xorshift64* -- fast, good enough for random weights */
typedef struct { uint64_t s; } st_rng;
static inline uint64_t st_next(st_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}
static void st_seed(st_rng *r, uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull; /* splitmix64: never 0 for xorshift */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    r->s = (z ^ (z >> 31)) | 1;
}

/* 4096 BF16 values spaced by normal quantiles, N(0, 0.02): a 12-bit random
 * index then gives a roughly normal value at the cost of a table lookup. */
static uint16_t st_normal_table[4096];

static double st_inv_normal(double p) { /* Acklam's rational approximation */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    if (p < 0.02425) {
        double q = sqrt(-2 * log(p));
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    if (p > 1 - 0.02425) return -st_inv_normal(1 - p);
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

static void st_fill(uint16_t *p, int64_t n, st_rng *r, int kind) {
    if (kind == 1) { /* norm weight: 1 */
        for (int64_t i = 0; i < n; i++) p[i] = glmv_f32_to_bf16(1.0f);
        return;
    }
    if (kind == 2) { /* layernorm bias: 0 */
        memset(p, 0, (size_t)n * 2);
        return;
    }
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) { /* four 12-bit indices from the 16-bit quarters */
        uint64_t x = st_next(r);
        p[i] = st_normal_table[(x >> 4) & 4095];
        p[i + 1] = st_normal_table[(x >> 20) & 4095];
        p[i + 2] = st_normal_table[(x >> 36) & 4095];
        p[i + 3] = st_normal_table[(x >> 52) & 4095];
    }
    for (uint64_t x = st_next(r); i < n; i++, x >>= 16) p[i] = st_normal_table[(x >> 4) & 4095];
}

typedef struct {
    glmv_weights *w;
    st_rng rng;
    char *err;
    int failed;
} st_synth;

static void st_synth_add(st_synth *s, int kind, int ndim, const int64_t *shape, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));

static void st_synth_add(st_synth *s, int kind, int ndim, const int64_t *shape, const char *fmt,
                         ...) {
    if (s->failed) return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    glmv_weights *w = s->w;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    size_t bytes = glmv_mul_size((size_t)numel, 2);
    uint16_t *p = glmv_aligned_alloc(bytes);
    if (!p) goto oom;
    if (st_keep_block(w, p)) {
        free(p);
        goto oom;
    }
    int64_t dup;
    int64_t k = st_add(w, name, -1, &dup);
    if (k < 0) goto oom;
    glmv_tensor *t = &w->t[k];
    t->dtype = GLMV_BF16;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = t->host = p;
    w->bytes += (int64_t)bytes;
    st_fill(p, numel, &s->rng, kind);
    return;
oom:
    s->failed = 1;
    glmv_errf(s->err, "synthetic weights: out of memory at tensor %s (%zu bytes)", name, bytes);
}

#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

int glmv_weights_synthetic(glmv_weights **out, const glmv_config *c, uint64_t seed, char *err) {
    *out = NULL;
    static int table_ready;
    if (!table_ready) { /* idempotent, so a benign race at worst writes equal values */
        for (int i = 0; i < 4096; i++)
            st_normal_table[i] = glmv_f32_to_bf16((float)(0.02 * st_inv_normal((i + 0.5) / 4096)));
        table_ready = 1;
    }
    glmv_weights *w = st_new();
    if (!w) return glmv_errf(err, "synthetic weights: out of memory");
    st_synth s = {.w = w, .err = err};
    st_seed(&s.rng, seed);

    /* ref: Glm4vTextModel (GLM4V.md §2.2) */
    const int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t QD = (int64_t)c->num_attention_heads * c->head_dim;
    const int64_t KD = (int64_t)c->num_key_value_heads * c->head_dim;
    const char *tp = "model.language_model";
    st_synth_add(&s, 0, SHAPE(V, H), "%s.embed_tokens.weight", tp);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        st_synth_add(&s, 1, SHAPE(H), "%s.layers.%d.input_layernorm.weight", tp, l);
        st_synth_add(&s, 0, SHAPE(QD, H), "%s.layers.%d.self_attn.q_proj.weight", tp, l);
        st_synth_add(&s, 0, SHAPE(KD, H), "%s.layers.%d.self_attn.k_proj.weight", tp, l);
        st_synth_add(&s, 0, SHAPE(KD, H), "%s.layers.%d.self_attn.v_proj.weight", tp, l);
        if (c->attention_bias) {
            st_synth_add(&s, 0, SHAPE(QD), "%s.layers.%d.self_attn.q_proj.bias", tp, l);
            st_synth_add(&s, 0, SHAPE(KD), "%s.layers.%d.self_attn.k_proj.bias", tp, l);
            st_synth_add(&s, 0, SHAPE(KD), "%s.layers.%d.self_attn.v_proj.bias", tp, l);
        }
        st_synth_add(&s, 0, SHAPE(H, QD), "%s.layers.%d.self_attn.o_proj.weight", tp, l);
        st_synth_add(&s, 1, SHAPE(H), "%s.layers.%d.post_self_attn_layernorm.weight", tp, l);
        st_synth_add(&s, 1, SHAPE(H), "%s.layers.%d.post_attention_layernorm.weight", tp, l);
        st_synth_add(&s, 0, SHAPE(2 * I, H), "%s.layers.%d.mlp.gate_up_proj.weight", tp, l);
        st_synth_add(&s, 0, SHAPE(H, I), "%s.layers.%d.mlp.down_proj.weight", tp, l);
        st_synth_add(&s, 1, SHAPE(H), "%s.layers.%d.post_mlp_layernorm.weight", tp, l);
    }
    st_synth_add(&s, 1, SHAPE(H), "%s.norm.weight", tp);
    if (!c->tie_word_embeddings) st_synth_add(&s, 0, SHAPE(V, H), "lm_head.weight");

    /* ref: Glm4vVisionModel (GLM4V.md §2.3) */
    const int64_t VH = c->v_hidden_size, VO = c->v_out_hidden_size, VI = c->v_intermediate_size;
    const int64_t P = c->v_patch_size, M = c->v_spatial_merge_size;
    const int64_t side = c->v_patch_size ? c->v_image_size / c->v_patch_size : 0;
    const char *vp = "model.visual";
    st_synth_add(&s, 0, SHAPE(VH, c->v_in_channels, c->v_temporal_patch_size, P, P),
                 "%s.patch_embed.proj.weight", vp);
    st_synth_add(&s, 0, SHAPE(VH), "%s.patch_embed.proj.bias", vp);
    st_synth_add(&s, 1, SHAPE(VH), "%s.post_conv_layernorm.weight", vp);
    st_synth_add(&s, 0, SHAPE(side * side, VH), "%s.embeddings.position_embedding.weight", vp);
    for (int l = 0; l < c->v_depth; l++) {
        st_synth_add(&s, 1, SHAPE(VH), "%s.blocks.%d.norm1.weight", vp, l);
        st_synth_add(&s, 0, SHAPE(3 * VH, VH), "%s.blocks.%d.attn.qkv.weight", vp, l);
        if (c->v_attention_bias) st_synth_add(&s, 0, SHAPE(3 * VH), "%s.blocks.%d.attn.qkv.bias", vp, l);
        st_synth_add(&s, 0, SHAPE(VH, VH), "%s.blocks.%d.attn.proj.weight", vp, l);
        st_synth_add(&s, 1, SHAPE(VH), "%s.blocks.%d.norm2.weight", vp, l);
        st_synth_add(&s, 0, SHAPE(VO, VH), "%s.blocks.%d.mlp.gate_proj.weight", vp, l);
        st_synth_add(&s, 0, SHAPE(VO, VH), "%s.blocks.%d.mlp.up_proj.weight", vp, l);
        st_synth_add(&s, 0, SHAPE(VH, VO), "%s.blocks.%d.mlp.down_proj.weight", vp, l);
    }
    st_synth_add(&s, 1, SHAPE(VH), "%s.post_layernorm.weight", vp);
    st_synth_add(&s, 0, SHAPE(VO, VH, M, M), "%s.downsample.weight", vp);
    st_synth_add(&s, 0, SHAPE(VO), "%s.downsample.bias", vp);
    st_synth_add(&s, 0, SHAPE(VO, VO), "%s.merger.proj.weight", vp);
    st_synth_add(&s, 1, SHAPE(VO), "%s.merger.post_projection_norm.weight", vp);
    st_synth_add(&s, 2, SHAPE(VO), "%s.merger.post_projection_norm.bias", vp);
    st_synth_add(&s, 0, SHAPE(VI, VO), "%s.merger.gate_proj.weight", vp);
    st_synth_add(&s, 0, SHAPE(VI, VO), "%s.merger.up_proj.weight", vp);
    st_synth_add(&s, 0, SHAPE(VO, VI), "%s.merger.down_proj.weight", vp);

    if (s.failed) {
        glmv_weights_free(w);
        return -1;
    }
    *out = w;
    return 0;
}
