/* save.c -- glmv_model_save: a model loaded from a Hugging Face folder, with its matrices as
 * they are held (quantized by --quant, or not), written as a new folder that glmv loads as
 * it is (`glmv quantize`). The folder's other files (config, tokenizer, chat template,
 * processor) are copied; the weights go into one model.safetensors, the quantized matrices as
 * U8 rows of llama.cpp's blocks named in __metadata__ (safetensors.c reads them back).
 * Tensors are laid out 4-byte types first, then 2-byte ones, then the blocks (whose 2-byte
 * scales need 2-byte alignment), after a header padded to 64 bytes, so that every tensor is
 * aligned for its type when the file is mapped. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base.h"
#include "model.h"

/* a checkpoint's weights and what stands for them: not copied */
static int is_weight_file(const char *n) {
    size_t l = strlen(n);
    static const char *const ext[] = {".safetensors", ".safetensors.index.json", ".bin", ".pt", ".pth",
                                      ".gguf", ".bin.index.json", ".h5", ".msgpack"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t e = strlen(ext[i]);
        if (l >= e && !strcmp(n + l - e, ext[i])) return 1;
    }
    return 0;
}

/* Written under a temporary name, then renamed over `to`: a link already at `to` (into the
 * checkpoint itself, as in a Hugging Face cache) is replaced, never written through. */
static int copy_file(const char *from, const char *to, char *err) {
    char tmp[PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s.partial", to);
    FILE *in = fopen(from, "rb");
    if (!in) return glmv_errf(err, "%s: %s", from, strerror(errno));
    unlink(tmp);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        int e = errno;
        fclose(in);
        return glmv_errf(err, "%s: %s", tmp, strerror(e));
    }
    char buf[1 << 16];
    size_t n;
    int bad = 0, e = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) bad = 1, e = errno;
    if (!bad && ferror(in)) bad = 1, e = EIO;
    fclose(in);
    if (fclose(out) && !bad) bad = 1, e = errno;
    if (!bad && rename(tmp, to)) bad = 1, e = errno;
    if (bad) {
        unlink(tmp);
        return glmv_errf(err, "copying %s to %s: %s", from, to, strerror(e ? e : EIO));
    }
    return 0;
}

/* 0: 4-byte elements, 1: 2-byte, 2: blocks (the order in the file) */
static int tensor_class(const glmv_tensor *t) {
    return glmv_dtype_is_quant(t->dtype) ? 2 : t->dtype == GLMV_F32 ? 0 : 1;
}

static size_t tensor_bytes(const glmv_tensor *t) {
    return glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t)) * (size_t)glmv_tensor_rows(t);
}

static int write_weights(glmv_model *m, const char *path, char *err) {
    int64_t n = glmv_weights_count(m->w);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    int oom = !root || !meta || !cJSON_AddItemToObject(root, "__metadata__", meta);
    if (!oom) oom = !cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int cls = 0; cls < 3 && !oom; cls++)
        for (int64_t i = 0; i < n && !oom; i++) {
            const glmv_tensor *t = glmv_weights_at(m->w, i);
            if (tensor_class(t) != cls) continue;
            cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *o = cJSON_CreateArray();
            oom = !e || !sh || !o;
            if (oom) {
                cJSON_Delete(e), cJSON_Delete(sh), cJSON_Delete(o);
                break;
            }
            size_t bytes = tensor_bytes(t);
            if (cls == 2) { /* [rows, bytes per row] of blocks */
                char key[512];
                snprintf(key, sizeof key, "glmv.quant:%s", t->name);
                oom |= !cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)glmv_tensor_rows(t)));
                oom |= !cJSON_AddItemToArray(
                    sh, cJSON_CreateNumber((double)glmv_dtype_row_bytes(t->dtype, glmv_tensor_cols(t))));
                oom |= !cJSON_AddStringToObject(e, "dtype", "U8");
                oom |= !cJSON_AddStringToObject(meta, key, glmv_dtype_name(t->dtype));
            } else {
                for (int d = 0; d < t->ndim; d++)
                    oom |= !cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
                oom |= !cJSON_AddStringToObject(e, "dtype", glmv_dtype_name(t->dtype));
            }
            oom |= !cJSON_AddItemToObject(e, "shape", sh);
            oom |= !cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
            oom |= !cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
            oom |= !cJSON_AddItemToObject(e, "data_offsets", o);
            oom |= !cJSON_AddItemToObject(root, t->name, e);
            off += bytes;
        }
    char *js = oom ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!js) return glmv_errc(err, GLMV_E_NOMEM, "out of memory writing the header of %s", path);
    size_t jl = strlen(js), hl = (8 + jl + 63) / 64 * 64 - 8; /* data starts 64-byte aligned */
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(js);
        return glmv_errf(err, "%s: %s", path, strerror(errno));
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    int bad = fwrite(len, 1, 8, f) != 8 || fwrite(js, 1, jl, f) != jl;
    for (size_t i = jl; i < hl && !bad; i++) bad = fputc(' ', f) == EOF;
    free(js);
    for (int cls = 0; cls < 3 && !bad; cls++)
        for (int64_t i = 0; i < n && !bad; i++) {
            const glmv_tensor *t = glmv_weights_at(m->w, i);
            if (tensor_class(t) != cls) continue;
            size_t bytes = tensor_bytes(t);
            bad = bytes && fwrite(t->host ? t->host : t->data, 1, bytes, f) != bytes;
        }
    int e = bad ? errno : 0;
    if (fclose(f) && !bad) bad = 1, e = errno; /* a full disk may show only here */
    if (bad) return glmv_errf(err, "writing %s: %s", path, strerror(e ? e : EIO));
    return 0;
}

int glmv_model_save(glmv_model *m, const char *out_dir, char *err) {
    if (m->is_gguf || !strncmp(m->dir, "synthetic:", 10))
        return glmv_errc(err, GLMV_E_INVALID, "%s: only a Hugging Face folder can be saved (its config and "
                         "tokenizer files are copied)", m->dir);
    if (m->be->caps.device)
        return glmv_errc(err, GLMV_E_INVALID, "saving needs the model on the CPU (its weights are on %s)",
                         m->device);
    char rs[PATH_MAX], ro[PATH_MAX];
    if (!realpath(m->dir, rs)) return glmv_errf(err, "%s: %s", m->dir, strerror(errno));
    if (mkdir(out_dir, 0777) && errno != EEXIST) return glmv_errf(err, "%s: %s", out_dir, strerror(errno));
    if (!realpath(out_dir, ro)) return glmv_errf(err, "%s: %s", out_dir, strerror(errno));
    if (!strcmp(rs, ro))
        return glmv_errc(err, GLMV_E_INVALID, "%s: the output folder is the checkpoint's own", out_dir);
    char path[PATH_MAX + 64], tmp[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
    if (access(path, F_OK) == 0)
        return glmv_errc(err, GLMV_E_INVALID, "%s holds a sharded checkpoint (%s): choose an empty folder",
                         out_dir, path);
    DIR *d = opendir(m->dir);
    if (!d) return glmv_errf(err, "%s: %s", m->dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.' || is_weight_file(de->d_name)) continue;
        char from[PATH_MAX + 300];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", m->dir, de->d_name);
        if (stat(from, &st) || !S_ISREG(st.st_mode)) continue;
        snprintf(path, sizeof path, "%s/%s", out_dir, de->d_name);
        rc = copy_file(from, path, err);
    }
    closedir(d);
    if (rc) return -1;
    snprintf(tmp, sizeof tmp, "%s/model.safetensors.partial", out_dir);
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (write_weights(m, tmp, err)) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return glmv_errf(err, "%s: %s", path, strerror(e));
    }
    return 0;
}
