/* base.c -- asserts, error formatting, allocation, files, time, logging and
 * half-precision conversion shared by the whole library. */
#include "base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int glmv_log_level = -1;

_Noreturn void glmv_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "glmv: internal error at %s:%d: %s\n", file, line, what);
    abort();
}

int glmv_errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, GLMV_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *glmv_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

size_t glmv_mul_size(size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return SIZE_MAX;
    return a * b;
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
