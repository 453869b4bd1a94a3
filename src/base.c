/* base.c -- asserts, error formatting, allocation, files, time, logging and
 * half-precision conversion shared by the whole library. */
#include "base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int glmv_log_level = -1;

_Noreturn void glmv_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "glmv: internal error at %s:%d: %s\n", file, line, what);
    abort();
}

static _Thread_local glmv_errcode last_code;

int glmv_errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, GLMV_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    last_code = GLMV_E_INTERNAL;
    return -1;
}

int glmv_errc(char *err, glmv_errcode code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, GLMV_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    last_code = code;
    return -1;
}

void glmv_errcode_default(glmv_errcode code) {
    if (last_code == GLMV_E_INTERNAL || last_code == GLMV_E_OK) last_code = code;
}

void glmv_errcode_set(glmv_errcode code) { last_code = code; }

glmv_errcode glmv_last_error(void) { return last_code; }

const char *glmv_errcode_name(glmv_errcode c) {
    static const char *names[] = {"ok", "invalid", "media", "context", "nomem", "backend", "internal"};
    return (unsigned)c < sizeof names / sizeof *names ? names[c] : "internal";
}

void *glmv_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void *glmv_alloc_big(size_t bytes) {
    if (bytes < ((size_t)1 << 20)) return glmv_aligned_alloc(bytes);
    void *p = NULL; /* 2 MB-aligned, so that huge pages can back all of it */
    if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

size_t glmv_mul_size(size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return SIZE_MAX;
    return a * b;
}

int glmv_check_regular(const char *path, const char *what, char *err) {
    struct stat st;
    if (stat(path, &st)) return glmv_errf(err, "%s %s: %s", what, path, strerror(errno));
    if (S_ISREG(st.st_mode)) return 0;
    const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a named pipe"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return glmv_errf(err, "%s %s is %s, not a file", what, path, kind);
}

char *glmv_read_file(const char *path, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        glmv_errf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* a folder opens but reads as an error; a huge (or sparse) file would be
     * read whole before any check, a device such as /dev/zero for ever */
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            glmv_errf(err, "%s: is a directory, not a file", path);
            return NULL;
        }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > GLMV_READ_FILE_MAX) {
            fclose(f);
            glmv_errf(err, "%s: %lld bytes, above the %d MiB limit for a file glmv reads whole", path,
                      (long long)st.st_size, (int)(GLMV_READ_FILE_MAX >> 20));
            return NULL;
        }
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n > GLMV_READ_FILE_MAX) { /* a pipe or device that does not end */
            free(buf);
            fclose(f);
            glmv_errf(err, "%s: more than the %d MiB limit for a file glmv reads whole", path,
                      (int)(GLMV_READ_FILE_MAX >> 20));
            return NULL;
        }
        if (n + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            while (ncap < n + 65536 + 1) ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                glmv_errf(err, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        glmv_errf(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

double glmv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void glmv_log(int level, const char *fmt, ...) {
    if (glmv_log_level < 0) {
        const char *e = getenv("GLMV_LOG");
        glmv_log_level = e ? atoi(e) : 0;
    }
    if (level > glmv_log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("glmv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

float glmv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t glmv_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < 6.103515625e-05f) { /* subnormal: round to nearest even in units of 2^-24 */
        float m = nearbyintf(a * 16777216.0f);
        return sign | (uint16_t)m;
    }
    uint32_t e = ((u >> 23) & 0xff) - 112, man = u & 0x7fffff;
    uint32_t r = (e << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t)r;
}

/* ---------------------------------------------------------------- SipHash */

static uint64_t rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND(v0, v1, v2, v3)                                                              \
    do {                                                                                      \
        v0 += v1, v1 = rotl64(v1, 13), v1 ^= v0, v0 = rotl64(v0, 32);                          \
        v2 += v3, v3 = rotl64(v3, 16), v3 ^= v2;                                               \
        v0 += v3, v3 = rotl64(v3, 21), v3 ^= v0;                                               \
        v2 += v1, v1 = rotl64(v1, 17), v1 ^= v2, v2 = rotl64(v2, 32);                          \
    } while (0)

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t glmv_siphash(const uint8_t key[16], const void *data, size_t n) {
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    const uint8_t *p = data;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++, p += 8) {
        uint64_t m;
        memcpy(&m, p, 8); /* little-endian hosts (x86-64, aarch64) */
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < n % 8; i++) b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++) SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

int glmv_run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int n) {
    GLMV_ASSERT(n <= 32);
    pthread_t th[32];
    int started[32] = {0}, rc = 0;
    char *j = jobs;
    for (int i = 1; i < n; i++) {
        started[i] = pthread_create(&th[i], NULL, fn, j + i * job_size) == 0;
        if (!started[i] && fn(j + i * job_size)) rc = -1;
    }
    if (n > 0 && fn(j)) rc = -1;
    for (int i = 1; i < n; i++) {
        void *ret = NULL;
        if (started[i]) pthread_join(th[i], &ret);
        if (ret) rc = -1;
    }
    return rc;
}

typedef struct {
    const uint8_t *key, *data;
    size_t n, c0, c1;
    uint8_t *out; /* 8 little-endian bytes a chunk */
} chunk_job;

static void *chunk_worker(void *arg) {
    const chunk_job *j = arg;
    for (size_t c = j->c0; c < j->c1; c++) {
        size_t off = c * GLMV_HASH_CHUNK, len = j->n - off < GLMV_HASH_CHUNK ? j->n - off : GLMV_HASH_CHUNK;
        uint64_t h = glmv_siphash(j->key, j->data + off, len);
        for (int b = 0; b < 8; b++) j->out[8 * c + (size_t)b] = (uint8_t)(h >> (8 * b));
    }
    return NULL;
}

uint64_t glmv_siphash_chunked(const uint8_t key[16], const void *data, size_t n, int threads) {
    if (n <= GLMV_HASH_CHUNK) return glmv_siphash(key, data, n);
    size_t nc = (n + GLMV_HASH_CHUNK - 1) / GLMV_HASH_CHUNK;
    uint8_t stack[8 * 64], *hs = nc <= 64 ? stack : malloc(8 * nc);
    if (!hs) return glmv_siphash(key, data, n) ^ 0x9e3779b97f4a7c15ull; /* no room for the chunks' hashes */
    int nt = threads < 1 ? 1 : threads > 32 ? 32 : threads;
    if ((size_t)nt > nc) nt = (int)nc;
    chunk_job jobs[32];
    for (int i = 0; i < nt; i++)
        jobs[i] = (chunk_job){key, data, n, nc * (size_t)i / (size_t)nt, nc * (size_t)(i + 1) / (size_t)nt, hs};
    glmv_run_jobs(chunk_worker, jobs, sizeof *jobs, nt);
    uint64_t h = glmv_siphash(key, hs, 8 * nc);
    if (hs != stack) free(hs);
    return h;
}

static uint8_t hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void) {
    size_t got = 0;
    while (got < sizeof hash_key) {
        ssize_t r = getrandom(hash_key + got, sizeof hash_key - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got < sizeof hash_key) { /* no getrandom: weaker, but still per process */
        uint64_t a = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(glmv_now_ms() * 1e6);
        uint64_t b = (uint64_t)(uintptr_t)&got * 0xbf58476d1ce4e5b9ull ^ a;
        memcpy(hash_key, &a, 8);
        memcpy(hash_key + 8, &b, 8);
    }
}

const uint8_t *glmv_hash_key(void) {
    pthread_once(&hash_key_once, hash_key_init);
    return hash_key;
}

/* Under AddressSanitizer: fontconfig (loaded by poppler and cairo to draw PDF text and the
 * agent's labels) keeps a pattern cache it never frees, which LeakSanitizer reports as a leak
 * at exit. Not ours to fix; everything else is still checked. */
#if defined(__SANITIZE_ADDRESS__)
#define GLMV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLMV_ASAN 1
#endif
#endif
#ifdef GLMV_ASAN
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
#endif
