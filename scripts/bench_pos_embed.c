/* bench_pos_embed.c -- times the vision tower's position-table resample
 * (glmv_vision_pos_embed) for a GH x GW patch grid (default 80x80, a
 * 1120x1120 image; 32 58 is a 720p video frame) of the 9B shape on synthetic
 * weights, three calls on 1 thread and three on THREADS (default 2). Not part of the build:
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude -o bench_pos_embed \
 *      scripts/bench_pos_embed.c build/release/libglmv.a $(pkg-config --libs libavformat \
 *      libavcodec libswscale libavutil libwebp libwebpdemux libpng libexif libcjson \
 *      libpcre2-8 libcurl) -ljpeg -lgif -lm -lpthread && ./bench_pos_embed [GH GW [THREADS]]
 */
#include <stdio.h>
#include <stdlib.h>

#include "base.h"
#include "model.h"

int main(int argc, char **argv) {
    int gh = argc > 2 ? atoi(argv[1]) : 80, gw = argc > 2 ? atoi(argv[2]) : 80;
    if (gh < 2 || gw < 2 || gh % 2 || gw % 2) {
        fprintf(stderr, "grid %dx%d: both even and at least 2\n", gh, gw);
        return 2;
    }
    glmv_model *m;
    glmv_model_params mp;
    glmv_model_params_default(&mp);
    mp.device = GLMV_DEVICE_CPU;
    char err[GLMV_ERR_SIZE];
    if (glmv_model_load(&m, "synthetic:9b,layers=1", &mp, err)) {
        puts(err);
        return 1;
    }
    float *o = malloc(sizeof(float) * (size_t)gh * gw * m->cfg.v_hidden_size);
    if (!o) return 1;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    for (int i = 0; i < 6; i++) {
        int t = i < 3 ? 1 : threads;
        double t0 = glmv_now_ms();
        if (glmv_vision_pos_embed(m, gh, gw, o, t)) return 1;
        printf("pos_embed %dx%d, %d thread(s): %.1f ms\n", gh, gw, t, glmv_now_ms() - t0);
    }
    free(o);
    glmv_model_free(m);
    return 0;
}
