/* image.h -- images from bytes to the vision tower's patch rows, exactly as
 * transformers' Glm4vImageProcessor does it (GLM4V.md §6):
 * decode (JPEG/PNG/WebP/BMP/GIF, EXIF orientation) -> RGB u8 ->
 * smart_resize -> bicubic antialiased resize -> rescale/normalise ->
 * patch rows in merge-block order. Pure CPU code, no model needed. The video
 * path (video.c) reuses resize and patchify. */
#ifndef GLMV_IMAGE_H
#define GLMV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *rgb;               /* [h, w, 3] interleaved, malloc'd */
} glmv_rgb;

void glmv_rgb_free(glmv_rgb *im);

/* Decode a file / a buffer. The format is sniffed from the bytes, not the
 * name. Images with more than max_pixels pixels (w*h) are refused from the
 * header, before decoding. */
int glmv_image_decode_file(const char *path, int64_t max_pixels, glmv_rgb *out, char *err);
int glmv_image_decode_mem(const void *data, size_t size, int64_t max_pixels, glmv_rgb *out,
                          char *err);

typedef struct {
    int patch_size;             /* 14 */
    int temporal_patch_size;    /* 2 */
    int merge_size;             /* 2 */
    int64_t min_pixels, max_pixels;
    float mean[3], std[3];
    double rescale_factor;      /* 1/255 */
} glmv_image_params;

/* The checkpoint's preprocessor_config.json values (GLM4V.md §1.4): patch 14,
 * temporal 2, merge 2, min 12544, max 9633792 pixels, CLIP mean/std. */
void glmv_image_params_default(glmv_image_params *p);

/* User limits on vision tokens per image (--min/--max-image-tokens) as pixel
 * budgets for smart_resize: one LLM token is a merge x merge block of
 * patch x patch pixels, and smart_resize counts an image as
 * temporal_patch_size frames, so pixels = tokens * 28*28 * 2. */
int64_t glmv_image_tokens_to_pixels(int64_t tokens, const glmv_image_params *p);
/* Sets p->min_pixels / p->max_pixels from token limits (0 = keep). */
int glmv_image_apply_token_limits(glmv_image_params *p, int64_t min_tokens, int64_t max_tokens,
                                  char *err);

/* smart_resize (GLM4V.md §6.1): n_frames (2 for an image), h, w -> out_h, out_w,
 * multiples of patch_size*merge_size. Errors on aspect ratio > 200. */
int glmv_smart_resize(int n_frames, int h, int w, int factor, int64_t min_pixels,
                      int64_t max_pixels, int *out_h, int *out_w, char *err);

/* Bicubic antialiased resize of RGB u8, matching the reference resampler. */
int glmv_image_resize(const glmv_rgb *src, int out_w, int out_h, glmv_rgb *dst, char *err);

/* What a patch row's byte stands for: value v of channel c is v[c][v], the
 * pixel rescaled and normalised in fp32 as the reference does it. */
typedef struct {
    float v[3][256];
} glmv_patch_lut;

void glmv_patch_lut_init(const glmv_image_params *p, glmv_patch_lut *lut);

/* out[i] = lut->v[(i / ch) % 3][rows8[i]], i < n: patch rows of bytes widened
 * (ch = tp*p*p values of a channel, the channels one after another in a row). */
void glmv_patch_expand(const uint8_t *rows8, int64_t n, int64_t ch, const glmv_patch_lut *lut, float *out);

/* Patchify n_frames frames of identical size (h, w multiples of
 * patch*merge) into rows [gt*gh*gw, 3*tp*p*p] of the pixels' bytes, with
 * gt = ceil(n_frames / tp) (the last frame repeated to fill), gh = h/p,
 * gw = w/p, in merge-block order (GLM4V.md §5.1, §6.3). An image is one frame. */
int glmv_patchify_u8(const glmv_rgb *frames, int n_frames, const glmv_image_params *p,
                     uint8_t *rows, char *err);

/* The same rows rescaled and normalised to fp32 (glmv_patchify_u8, then
 * glmv_patch_expand with p's table). */
int glmv_patchify(const glmv_rgb *frames, int n_frames, const glmv_image_params *p,
                  float *rows, char *err);

/* Everything for one image: decode result -> smart_resize -> resize ->
 * patchify. *rows is malloc'd [grid[0]*grid[1]*grid[2], 3*tp*p*p] bytes
 * (glmv_patchify_u8); grid is (t, h, w) in patches. */
int glmv_image_preprocess(const glmv_rgb *img, const glmv_image_params *p, uint8_t **rows,
                          int grid[3], char *err);

#endif
