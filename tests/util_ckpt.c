/* util_ckpt.c -- writes small safetensors checkpoints for tests (see util_ckpt.h).
 * Headers are built with plain snprintf so a test can also write headers that
 * lie; nothing here validates what it writes. */
#include "util_ckpt.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

char *ckpt_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/glmv-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(tmpl)) return NULL;
    return strdup(tmpl);
}

void ckpt_rmdir(char *dir) {
    if (!dir) return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

int ckpt_write_text(const char *dir, const char *name, const char *text) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

int ckpt_write_raw(const char *path, const char *header, uint64_t hdr_len_override,
                   const void *data, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char len[8];
    size_t hl = strlen(header);
    put_u64(len, hdr_len_override ? hdr_len_override : hl);
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(header, 1, hl, f) == hl;
    if (data_bytes) {
        void *z = data ? NULL : calloc(1, data_bytes);
        ok = ok && (data || z) && fwrite(data ? data : z, 1, data_bytes, f) == data_bytes;
        free(z);
    }
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static size_t dtype_bytes(const char *dt) { return !strcmp(dt, "F32") ? 4 : 2; }

static int64_t numel_of(const ckpt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int ckpt_write_safetensors(const char *path, const ckpt_tensor *t, int n) {
    size_t cap = 256, o = 0; /* names + dtype + 5 dims + 2 offsets of at most 20 digits */
    for (int i = 0; i < n; i++) cap += strlen(t[i].name) + strlen(t[i].dtype) + 256;
    char *h = malloc(cap);
    if (!h) return -1;
    uint64_t off = 0;
    o += (size_t)snprintf(h + o, cap - o, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)numel_of(&t[i]) * dtype_bytes(t[i].dtype);
        o += (size_t)snprintf(h + o, cap - o, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                              t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            o += (size_t)snprintf(h + o, cap - o, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        o += (size_t)snprintf(h + o, cap - o, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    o += (size_t)snprintf(h + o, cap - o, "}");
    while (o % 8) h[o++] = ' '; /* like the reference writer: data 8-byte aligned */
    h[o] = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return -1;
    }
    unsigned char len[8];
    put_u64(len, o);
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(h, 1, o, f) == o;
    for (int i = 0; i < n && ok; i++) {
        size_t bytes = (size_t)numel_of(&t[i]) * dtype_bytes(t[i].dtype);
        void *z = t[i].data ? NULL : calloc(1, bytes ? bytes : 1);
        ok = (t[i].data || z) && fwrite(t[i].data ? t[i].data : z, 1, bytes, f) == bytes;
        free(z);
    }
    free(h);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int ckpt_write_weights(const char *dir, glmv_weights *w, int n_shards) {
    int64_t n = glmv_weights_count(w);
    if (n_shards < 1) n_shards = 1;
    ckpt_tensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    if (!ts) return -1;
    for (int64_t i = 0; i < n; i++) {
        glmv_tensor *t = glmv_weights_at(w, i);
        ts[i].name = t->name;
        ts[i].dtype = glmv_dtype_name(t->dtype);
        ts[i].ndim = t->ndim;
        memcpy(ts[i].shape, t->shape, sizeof ts[i].shape);
        ts[i].data = t->host;
    }
    char p[4096];
    int rc = 0;
    if (n_shards == 1) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        rc = ckpt_write_safetensors(p, ts, (int)n);
    } else {
        size_t cap = 256, o = 0;
        for (int64_t i = 0; i < n; i++) cap += strlen(ts[i].name) + 64;
        char *idx = malloc(cap);
        if (!idx) rc = -1;
        else o += (size_t)snprintf(idx + o, cap - o, "{\"metadata\":{},\"weight_map\":{");
        for (int s = 0; s < n_shards && !rc; s++) {
            int64_t a = n * s / n_shards, b = n * (s + 1) / n_shards;
            char fn[64];
            snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
            snprintf(p, sizeof p, "%s/%s", dir, fn);
            rc = ckpt_write_safetensors(p, ts + a, (int)(b - a));
            for (int64_t i = a; i < b; i++)
                o += (size_t)snprintf(idx + o, cap - o, "%s\"%s\":\"%s\"", i ? "," : "",
                                      ts[i].name, fn);
        }
        if (!rc) {
            snprintf(idx + o, cap - o, "}}");
            rc = ckpt_write_text(dir, "model.safetensors.index.json", idx);
        }
        free(idx);
    }
    free(ts);
    return rc;
}
