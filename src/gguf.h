/* gguf.h -- a GGUF file (llama.cpp's format, version 2 or 3), mmap'd read-only and
 * validated as a whole before anything is handed out: every string, array, tensor
 * extent and offset lies inside the file, tensor data is aligned and does not
 * overlap, names are unique, byte sizes match shapes. A hostile file is refused
 * with one line naming what is wrong.
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv pairs (string key,
 * u32 type, value; arrays are u32 element type, u64 count, elements); n_tensors
 * infos (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type,
 * u64 offset); padding to general.alignment (32 when absent); tensor data.
 * ref: llama.cpp ggml/src/gguf.cpp, gguf-py/gguf/gguf_reader.py
 *
 * What this file does not do: know any model (gguf_model.c maps GLM-4.1V's tensors
 * to their Hugging Face names), or convert tensor data. */
#ifndef GLMV_GGUF_H
#define GLMV_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* value types of the key-value section */
enum {
    GGUF_U8 = 0, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_N_TYPES
};

/* ggml tensor types glmv knows the block size of (ggml.h's numbering) */
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
    GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12,
    GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_Q8_K = 15, GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26,
    GGML_I64 = 27, GGML_F64 = 28, GGML_BF16 = 30
};

#define GGUF_MAX_DIMS 4
/* Elements of one block and its bytes for ggml type t; 0 for a type glmv does not know. */
int glmv_ggml_block(uint32_t t, int *elems, int *bytes);
/* "Q4_K", ... or "type N" (in a static buffer for unknown ones: messages only). */
const char *glmv_ggml_type_name(uint32_t t);

/* A row of k values of ggml type t (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K) to floats (gguf_dequant.c); -1 for another type or a k that
 * is not whole blocks. */
int glmv_ggml_dequantize_row(uint32_t t, const void *src, float *dst, int64_t k);

typedef struct {
    const char *key;      /* NUL-terminated copy */
    uint32_t type;        /* GGUF_* */
    uint32_t arr_type;    /* element type when type is GGUF_ARRAY */
    uint64_t n;           /* elements of an array (1 otherwise) */
    const uint8_t *data;  /* the value in the file (an array's first element) */
    uint64_t *str_off;    /* array of strings: offset of each string's u64 length, from data */
} glmv_gguf_kv;

typedef struct {
    const char *name;     /* NUL-terminated copy */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* innermost first, as ggml writes them; unused dims are 1 */
    uint32_t type;        /* GGML_* */
    const void *data;     /* in the mapped file */
    uint64_t bytes;
} glmv_gguf_tensor;

typedef struct glmv_gguf glmv_gguf;

/* Map and validate the file at path. */
int glmv_gguf_open(glmv_gguf **out, const char *path, char *err);
/* The same over bytes in memory (not copied: buf must outlive *out); name for messages. */
int glmv_gguf_open_memory(glmv_gguf **out, const void *buf, size_t size, const char *name,
                          char *err);
void glmv_gguf_free(glmv_gguf *g);
const char *glmv_gguf_path(const glmv_gguf *g);
/* Hand the file mapping to the caller (who munmaps it); tensor data stays valid. */
void glmv_gguf_take_map(glmv_gguf *g, void **map, size_t *size);
uint32_t glmv_gguf_version(const glmv_gguf *g);

int64_t glmv_gguf_n_kv(const glmv_gguf *g);
const glmv_gguf_kv *glmv_gguf_kv_at(const glmv_gguf *g, int64_t i);
const glmv_gguf_kv *glmv_gguf_find_kv(const glmv_gguf *g, const char *key);

/* Typed reads of one key. Each returns 0 with the value, 1 when the key is absent
 * (out untouched), -1 with a message when it holds another type or an
 * out-of-range value. Integers of any width are accepted where they fit. */
int glmv_gguf_get_int(const glmv_gguf *g, const char *key, int64_t *out, char *err);
int glmv_gguf_get_float(const glmv_gguf *g, const char *key, double *out, char *err);
int glmv_gguf_get_bool(const glmv_gguf *g, const char *key, int *out, char *err);
/* A string (not NUL-terminated: *len bytes). */
int glmv_gguf_get_str(const glmv_gguf *g, const char *key, const char **s, size_t *len, char *err);
/* Element i of an array of numbers as a double / of strings; i < kv->n. */
double glmv_gguf_arr_num(const glmv_gguf_kv *kv, uint64_t i);
const char *glmv_gguf_arr_str(const glmv_gguf_kv *kv, uint64_t i, size_t *len);

int64_t glmv_gguf_n_tensors(const glmv_gguf *g);
const glmv_gguf_tensor *glmv_gguf_tensor_at(const glmv_gguf *g, int64_t i);
const glmv_gguf_tensor *glmv_gguf_find_tensor(const glmv_gguf *g, const char *name);

/* Does the file at path start with the GGUF magic? */
int glmv_gguf_is_gguf(const char *path);

#endif
