/* util_ckpt.h -- test helpers that write small checkpoints: safetensors files
 * (well-formed or with a hand-written, lying header), an index, JSON text, and
 * temporary folders. Used by the loader tests and the fuzz seeds; the model
 * tests may use ckpt_write_weights to save synthetic weights as a checkpoint. */
#ifndef GLMV_UTIL_CKPT_H
#define GLMV_UTIL_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

typedef struct {
    const char *name;
    const char *dtype;          /* "BF16", "F16", "F32" (or anything, for bad files) */
    int ndim;
    int64_t shape[5];
    const void *data;           /* bytes of numel * dtype size; NULL = zeros */
} ckpt_tensor;

/* A fresh folder under $TMPDIR (or /tmp); NULL on failure. Free with ckpt_rmdir. */
char *ckpt_tmpdir(const char *tag);
/* Remove the folder and the files in it (not recursive beyond one level), free dir. */
void ckpt_rmdir(char *dir);

/* Write dir/name with text; returns 0 on success. */
int ckpt_write_text(const char *dir, const char *name, const char *text);
/* Write a well-formed safetensors file (header padded to 8 bytes, tensors in order). */
int ckpt_write_safetensors(const char *path, const ckpt_tensor *t, int n);
/* Write a raw file: 8-byte length of header (or hdr_len_override when nonzero),
 * header text, then data_bytes of data (zeros when data is NULL). */
int ckpt_write_raw(const char *path, const char *header, uint64_t hdr_len_override,
                   const void *data, size_t data_bytes);
/* Save every tensor of w into dir: one model.safetensors when n_shards <= 1,
 * else model-0000i-of-0000n.safetensors plus model.safetensors.index.json. */
int ckpt_write_weights(const char *dir, glmv_weights *w, int n_shards);

#endif
