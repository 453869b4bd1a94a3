/* bench_image.c -- times each stage of the image path on one file and can
 * dump its intermediate results for parity checks against Python:
 *
 *   bench_image [-n reps] [-t threads] [-d decoded.rgb] [-r resized.rgb] [-p pixels.f32] FILE
 *
 * Prints the decoded and resized sizes, the grid, and the best-of-n time of
 * decode, smart_resize+resize and patchify in ms: the patch rows as the
 * pixels' bytes, which is what a prompt keeps (the rescale and normalisation
 * happen where the rows are used: on the GPU, in a kernel), and apart the
 * same rows rescaled and normalised to floats on the host. Built by
 * `make bench-image`; not part of the test suite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "image.h"

static int dump(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f) fclose(f);
        return -1;
    }
    return fclose(f);
}

int main(int argc, char **argv) {
    int reps = 5, opt;
    const char *dd = NULL, *dr = NULL, *dp = NULL;
    while ((opt = getopt(argc, argv, "n:t:d:r:p:")) != -1) {
        if (opt == 'n') reps = atoi(optarg);
        else if (opt == 't') setenv("GLMV_IMAGE_THREADS", optarg, 1);
        else if (opt == 'd') dd = optarg;
        else if (opt == 'r') dr = optarg;
        else if (opt == 'p') dp = optarg;
        else return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: bench_image [-n reps] [-t threads] [-d f] [-r f] [-p f] FILE\n");
        return 2;
    }
    const char *path = argv[optind];
    char err[GLMV_ERR_SIZE];
    size_t len;
    char *buf = glmv_read_file(path, &len, err);
    if (!buf) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    glmv_image_params p;
    glmv_image_params_default(&p);
    double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
    glmv_rgb im = {0}, rs = {0};
    float *rows = NULL;
    uint8_t *rows8 = NULL;
    int oh = 0, ow = 0;
    for (int r = 0; r < reps; r++) {
        glmv_rgb_free(&im);
        glmv_rgb_free(&rs);
        free(rows);
        free(rows8);
        double t0 = glmv_now_ms();
        if (glmv_image_decode_mem(buf, len, 0, &im, err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        double t1 = glmv_now_ms();
        if (glmv_smart_resize(p.temporal_patch_size, im.h, im.w, p.patch_size * p.merge_size,
                              p.min_pixels, p.max_pixels, &oh, &ow, err) ||
            glmv_image_resize(&im, ow, oh, &rs, err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        double t2 = glmv_now_ms();
        size_t n = (size_t)(oh / p.patch_size) * (ow / p.patch_size) * 1176;
        rows8 = malloc(n);
        if (!rows8 || glmv_patchify_u8(&rs, 1, &p, rows8, err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        double t3 = glmv_now_ms();
        rows = malloc(n * sizeof(float));
        if (!rows || glmv_patchify(&rs, 1, &p, rows, err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        double t4 = glmv_now_ms();
        double d[5] = {t1 - t0, t2 - t1, t3 - t2, t3 - t0, t4 - t3};
        for (int i = 0; i < 5; i++)
            if (d[i] < best[i]) best[i] = d[i];
    }
    printf("%s: %dx%d -> %dx%d grid 1x%dx%d | decode %.1f ms resize %.1f ms patchify %.1f ms "
           "total %.1f ms (best of %d) | patchify to floats %.1f ms\n",
           path, im.w, im.h, ow, oh, oh / p.patch_size, ow / p.patch_size, best[0], best[1],
           best[2], best[3], reps, best[4]);
    int rc = 0;
    if (dd) rc |= dump(dd, im.rgb, (size_t)im.w * im.h * 3);
    if (dr) rc |= dump(dr, rs.rgb, (size_t)rs.w * rs.h * 3);
    if (dp) rc |= dump(dp, rows, (size_t)(oh / p.patch_size) * (ow / p.patch_size) * 1176 * 4);
    glmv_rgb_free(&im);
    glmv_rgb_free(&rs);
    free(rows);
    free(rows8);
    free(buf);
    return rc ? 1 : 0;
}
