/* safetensors.h -- a checkpoint's tensors: one model.safetensors or shards
 * listed by model.safetensors.index.json, mmap'd read-only and used in place.
 * Headers are validated before any tensor is touched: offsets inside the
 * file, no overlapping ranges, known dtypes (F32, F16, BF16), sizes that
 * match shapes. A synthetic source builds random weights in memory for
 * benchmarks, with the same lookup interface. */
#ifndef GLMV_SAFETENSORS_H
#define GLMV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ops.h"

typedef struct glmv_weights glmv_weights;

/* Open the safetensors of checkpoint folder dir: model.safetensors.index.json
 * and its shards, else model.safetensors; dir may also name one .safetensors file. */
int glmv_weights_open(glmv_weights **out, const char *dir, char *err);
/* Random BF16 weights with every tensor the model of config c needs, named as
 * in the HF checkpoint (values ~ N(0, 0.02), norms ~1). */
int glmv_weights_synthetic(glmv_weights **out, const glmv_config *c, uint64_t seed, char *err);
void glmv_weights_free(glmv_weights *w);

/* The tensor called name, or NULL. */
glmv_tensor *glmv_weights_find(glmv_weights *w, const char *name);
/* The tensor called name with exactly this shape (ndim dims); on failure the
 * error names the tensor and the expected and actual shapes (or "missing"). */
int glmv_weights_require(glmv_weights *w, const char *name, int ndim, const int64_t *shape,
                         glmv_tensor **out, char *err);

int64_t glmv_weights_count(const glmv_weights *w);
glmv_tensor *glmv_weights_at(glmv_weights *w, int64_t i);
/* Total bytes of tensor data. */
int64_t glmv_weights_bytes(const glmv_weights *w);

/* Bytes [p, p + n) of a tensor that will not be read again (it was quantized into a buffer
 * of its own): the whole pages among them are returned to the system (a file's pages leave
 * the resident set; random weights' memory is freed page by page). Memory the caller gave
 * (glmv_weights_open_memory) is left alone. */
void glmv_weights_release(glmv_weights *w, const void *p, size_t n);

/* Building a table from another format (gguf_model.c): an empty table; a file
 * mapping it takes over (munmap'd with it; NULL map for a name only), returning
 * the file's index; memory it keeps (malloc'd, freed with it); a tensor (name
 * copied, shape outermost first, data in a kept block or an adopted map). */
glmv_weights *glmv_weights_new(void);
int glmv_weights_adopt_map(glmv_weights *w, const char *path, void *map, size_t size);
int glmv_weights_keep(glmv_weights *w, void *p);
glmv_tensor *glmv_weights_add(glmv_weights *w, const char *name, int file, glmv_dtype dt, int ndim,
                              const int64_t *shape, void *data, char *err);

/* The file tensor t came from ("synthetic" for random weights), for messages. */
const char *glmv_weights_file_of(const glmv_weights *w, const glmv_tensor *t);
/* Parse one safetensors image held in memory (not copied: buf must outlive
 * *out); name is used in messages. For fuzzing and tests. */
int glmv_weights_open_memory(glmv_weights **out, const void *buf, size_t size, const char *name,
                             char *err);

#endif
