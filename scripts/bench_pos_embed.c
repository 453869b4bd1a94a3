/* bench_pos_embed.c -- times the vision tower's position-table resample
 * (glmv_vision_pos_embed) for an 80x80 patch grid (a 1120x1120 image) of the
 * 9B shape on synthetic weights, three runs. Not part of the build:
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude -o bench_pos_embed \
 *      scripts/bench_pos_embed.c build/release/libglmv.a $(pkg-config --libs libavformat \
 *      libavcodec libswscale libavutil libwebp libwebpdemux libpng libexif libcjson \
 *      libpcre2-8 libcurl) -ljpeg -lgif -lm -lpthread && ./bench_pos_embed
 */
#include <stdio.h>
#include <stdlib.h>
#include "base.h"
#include "model.h"
int main(void) { glmv_model *m; glmv_model_params mp; glmv_model_params_default(&mp); mp.device=GLMV_DEVICE_CPU; char err[512];
 if(glmv_model_load(&m,"synthetic:9b,layers=1",&mp,err)){puts(err);return 1;}
 float *o=malloc(sizeof(float)*6400*1536); for(int i=0;i<3;i++){ double t=glmv_now_ms(); glmv_vision_pos_embed(m,80,80,o); printf("pos_embed 80x80: %.1f ms\n", glmv_now_ms()-t);} return 0;}
