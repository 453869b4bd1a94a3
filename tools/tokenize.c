/* tokenize.c -- `glmv tokenize`: prints the ids of a text (and with --pieces
 * each token's text) using only the checkpoint's tokenizer files. --decode
 * goes the other way; --bench N times N encodes of the text and prints the
 * load time and the encoding throughput (single thread). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: glmv tokenize -m DIR [TEXT | -f FILE] [--pieces]\n"
            "       glmv tokenize -m DIR --decode ID... [--skip-special]\n"
            "       glmv tokenize -m DIR -f FILE --bench N\n\n"
            "  -m DIR          checkpoint folder (only tokenizer.json is read), or llama.cpp's GGUF\n"
            "                  text model (only its tokenizer.ggml.* keys are read)\n"
            "  -f FILE         read the text from FILE ('-' = stdin) instead of TEXT\n"
            "  --pieces        one line per token: id, then its bytes as an escaped string\n"
            "  --decode        print the text of the ids given as arguments\n"
            "  --skip-special  with --decode: drop special tokens\n"
            "  --bench N       encode the text N times; print load ms and MB/s\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (!r) break;
        n += r;
        if (n > ((size_t)1 << 30)) { /* /dev/zero, or a device that never ends */
            free(buf);
            errno = EFBIG;
            buf = NULL;
            break;
        }
    }
    if (buf && ferror(f)) { /* a folder opens, then fails to read (errno says why) */
        free(buf);
        buf = NULL;
    }
    int e = errno;
    if (f != stdin) fclose(f);
    errno = e;
    *len = n;
    return buf;
}

static void print_escaped(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c == '\r') printf("\\r");
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else if (c >= 0x80) {
            /* keep well-formed UTF-8, escape stray bytes */
            size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0, j;
            for (j = 1; k && j < k && i + j < n; j++)
                if (((unsigned char)s[i + j] & 0xC0) != 0x80) break;
            if (k && j == k) {
                fwrite(s + i, 1, k, stdout);
                i += k - 1;
            } else {
                printf("\\x%02x", c);
            }
        } else putchar(c);
    }
    putchar('"');
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    int pieces = 0, decode = 0, skip = 0, first_id = 0;
    long bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(a, "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(a, "--pieces")) pieces = 1;
        else if (!strcmp(a, "--skip-special")) skip = 1;
        else if (!strcmp(a, "--decode")) {
            decode = 1;
            first_id = i + 1;
            break;
        } else if (!strcmp(a, "--bench") && i + 1 < argc) {
            if (cli_parse_int("--bench", argv[++i], 1, 1000000, &bench)) return 2;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-f") || !strcmp(a, "--bench")) {
            fprintf(stderr, "glmv tokenize: %s needs a value\n", a); /* it came last */
            return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "glmv tokenize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!text) text = a;
        else {
            fprintf(stderr, "glmv tokenize: one TEXT only (quote it)\n");
            return 2;
        }
    }
    if (!dir || (!decode && !file && !text) || (file && text)) {
        fprintf(stderr, "glmv tokenize: %s\n", !dir ? "-m DIR is required (the folder with tokenizer.json)"
                                                : file && text ? "give TEXT or -f FILE, not both"
                                                               : "nothing to tokenize: give TEXT or -f FILE");
        usage(stderr);
        return 2;
    }
    char err[GLMV_ERR_SIZE];
    glmv_tokenizer *tok;
    double t0 = now_ms();
    if (glmv_tokenizer_load(&tok, dir, err)) {
        fprintf(stderr, "glmv tokenize: %s\n", err);
        return 1;
    }
    double load_ms = now_ms() - t0;
    if (decode) {
        int n = 0;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(argc - first_id + 1));
        for (int i = first_id; i < argc; i++) {
            long v;
            if (!strcmp(argv[i], "--skip-special")) { /* the usage puts it after the ids */
                skip = 1;
                continue;
            }
            if (!ids || cli_parse_int("--decode", argv[i], 0, 2147483647L, &v)) {
                free(ids);
                glmv_tokenizer_free(tok);
                return 2;
            }
            if (!glmv_token_bytes(tok, (int32_t)v, NULL)) {
                fprintf(stderr, "glmv tokenize: --decode: id %ld is not a token of %s/tokenizer.json\n",
                        v, dir);
                free(ids);
                glmv_tokenizer_free(tok);
                return 1;
            }
            ids[n++] = (int32_t)v;
        }
        if (n == 0) {
            fprintf(stderr, "glmv tokenize: --decode needs at least one id\n");
            free(ids);
            glmv_tokenizer_free(tok);
            return 2;
        }
        char *s = glmv_detokenize(tok, ids, n, skip);
        if (s) printf("%s\n", s);
        free(s);
        free(ids);
        glmv_tokenizer_free(tok);
        return s ? 0 : 1;
    }
    size_t len = 0;
    char *buf = NULL;
    if (file) {
        buf = read_all(file, &len);
        if (!buf) {
            fprintf(stderr, "glmv tokenize: cannot read %s: %s\n", file,
                    errno == EFBIG ? "larger than 1024 MiB" : strerror(errno));
            glmv_tokenizer_free(tok);
            return 1;
        }
        text = buf;
    } else {
        len = strlen(text);
    }
    int rc = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    double enc_ms = 0, best_ms = 1e300;
    for (long r = 0; r < (bench ? bench : 1); r++) {
        free(ids);
        double t1 = now_ms();
        n = glmv_tokenize(tok, text, len, &ids, err);
        double dt = now_ms() - t1;
        enc_ms += dt;
        best_ms = dt < best_ms ? dt : best_ms;
        if (n < 0) break;
    }
    if (n < 0) {
        fprintf(stderr, "glmv tokenize: %s\n", err);
        rc = 1;
    } else if (bench) {
        double mb = (double)len * (double)bench / 1e6;
        printf("load_ms %.1f\nbytes %zu\ntokens %lld\nencode_ms_mean %.3f\nencode_ms_best %.3f\n"
               "MB_per_s_best %.2f\nMB_per_s_mean %.2f\n",
               load_ms, len, (long long)n, enc_ms / (double)bench, best_ms,
               (double)len / 1e6 / (best_ms / 1e3), mb / (enc_ms / 1e3));
    } else if (pieces) {
        for (int64_t i = 0; i < n; i++) {
            size_t l;
            const char *b = glmv_token_bytes(tok, ids[i], &l);
            printf("%d\t", ids[i]);
            print_escaped(b ? b : "", l);
            putchar('\n');
        }
    } else {
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    free(buf);
    glmv_tokenizer_free(tok);
    return rc;
}
