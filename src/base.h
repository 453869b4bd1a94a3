/* base.h -- what every file of the library uses: asserts, allocation,
 * error messages, bf16/f16 conversion, timing and logging.
 *
 * Expected failures (bad files, bad input) are reported through an error
 * buffer of GLMV_ERR_SIZE bytes and a non-zero return; only broken internal
 * invariants abort, with file:line (GLMV_ASSERT).
 */
#ifndef GLMV_BASE_H
#define GLMV_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "glmv.h"

#define GLMV_ASSERT(c) \
    do { if (!(c)) glmv_panic(__FILE__, __LINE__, #c); } while (0)

_Noreturn void glmv_panic(const char *file, int line, const char *what);

/* printf into err (GLMV_ERR_SIZE bytes); returns -1 so callers can
 * `return glmv_errf(err, ...)`. err may be NULL. */
int glmv_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with the kind of failure (glmv_last_error); glmv_errf records GLMV_E_INTERNAL. */
int glmv_errc(char *err, glmv_errcode code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Where a failing call's kind is known by the caller: record `code` unless the callee
 * recorded a kind of its own (anything but INTERNAL). */
void glmv_errcode_default(glmv_errcode code);
void glmv_errcode_set(glmv_errcode code);

/* Run fn(job) for each of n jobs (an array of job_size bytes each; n <= 32): the first on the
 * calling thread, the others on threads of their own (in place where none can be made).
 * Returns -1 when any fn returned non-NULL, else 0. */
int glmv_run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int n);

/* Allocation that returns NULL on failure (callers report it). Memory from
 * glmv_aligned_alloc is 64-byte aligned and freed with free(). */
void *glmv_aligned_alloc(size_t bytes);
/* The same for large buffers about to be written: from 1 MB up it aligns them to 2 MB and asks for
 * transparent huge pages (madvise), where 4 KB pages would cost a page fault each (~100 MB of patch
 * rows; a decoded PNG's rows). Freed with free(). */
void *glmv_alloc_big(size_t bytes);
/* Overflow-checked a*b for sizes; returns SIZE_MAX on overflow. */
size_t glmv_mul_size(size_t a, size_t b);

/* Read a whole file into malloc'd memory (NUL-terminated). Folders and files
 * (or streams) larger than GLMV_READ_FILE_MAX bytes are refused. */
#define GLMV_READ_FILE_MAX ((size_t)1 << 30)
char *glmv_read_file(const char *path, size_t *len, char *err);
/* 0 if path is a regular file (links followed); else -1 naming what it is, before anything
 * opens it: a named pipe would block the open, a device would be read to the size limit. */
int glmv_check_regular(const char *path, const char *what, char *err);

/* Monotonic milliseconds. */
double glmv_now_ms(void);

/* SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash that a client who
 * does not know the key cannot steer into collisions. glmv_hash_key() is this
 * process's random key (getrandom, drawn once). */
uint64_t glmv_siphash(const uint8_t key[16], const void *data, size_t n);
const uint8_t *glmv_hash_key(void);
/* The same keyed hash over large data on `threads` threads: up to GLMV_HASH_CHUNK bytes it is
 * glmv_siphash; beyond, the SipHash (same key) of the chunks' SipHashes, 8 little-endian bytes
 * each, chunk c being bytes [c, c+1) x GLMV_HASH_CHUNK: the same value for any thread count
 * (threads < 1: one; with no memory for the chunks' hashes, another value: at worst a
 * prompt-cache miss). */
#define GLMV_HASH_CHUNK ((size_t)1 << 20)
uint64_t glmv_siphash_chunked(const uint8_t key[16], const void *data, size_t n, int threads);

/* Logging to stderr; level from GLMV_LOG (0 quiet, 1 info, 2 debug). */
extern int glmv_log_level;
void glmv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bf16 / f16 <-> f32 */
static inline float glmv_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t glmv_f32_to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
float glmv_f16_to_f32(uint16_t h);
uint16_t glmv_f32_to_f16(float f);

#define GLMV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GLMV_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
