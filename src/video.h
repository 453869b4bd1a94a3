/* video.h -- videos from a file or bytes to the vision tower's patch rows, as
 * transformers' Glm4vVideoProcessor does it (GLM4V.md §7): frames sampled at
 * 2 per second (at most 300 s worth, spread over longer videos), duplicates
 * removed, an even count; one smart_resize for the whole clip; frames paired
 * into temporal patches; each pair's integer timestamp for the prompt.
 *
 * Decoding uses FFmpeg (libavformat/libavcodec/libswscale). Frames are
 * resized as soon as they are decoded, so memory is bounded by the pixel
 * budget, not by the length of the video.
 */
#ifndef GLMV_VIDEO_H
#define GLMV_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

typedef struct {
    double fps;                 /* frames sampled per second (0 = 2) */
    double max_duration;        /* seconds spread over at most (0 = 300) */
    int max_frames;             /* cap on sampled frames (0 = none) */
    double start, end;          /* time range in seconds (end 0 = to the end) */
    int64_t max_decode_pixels;  /* refuse frames larger than this (0 = 8192*8192) */
    int apply_rotation;         /* honour the display-matrix rotation */
    int64_t max_tokens;         /* refuse, before decoding, frames that would make more vision
                                   tokens than this (0 = no limit) */
} glmv_video_params;

typedef struct {
    int total_frames;           /* frames in the stream (or the range) */
    double video_fps;           /* the stream's average frame rate */
    double duration;            /* seconds */
    int n_frames;               /* sampled frames (even) */
    int *frame_indices;         /* [n_frames], absolute indices in the stream */
    int n_groups;               /* n_frames / 2 temporal groups */
    int *timestamps;            /* [n_groups]: int(frame_indices[2k] / video_fps) */
    int grid[3];                /* (n_groups, gh, gw) in patches */
    uint8_t *rows;              /* [n_groups*gh*gw, 3*tp*p*p] patch rows as bytes (glmv_patchify_u8) */
    glmv_patch_lut lut;         /* what they stand for (the video processor's normalisation) */
    double decode_ms, preprocess_ms;
} glmv_video;

void glmv_video_free(glmv_video *v);

/* Glm4vVideoProcessor.sample_frames: the indices (relative to the first
 * frame considered) to sample. *idx is malloc'd. duration <= 0 means "not
 * known" (then round((total-1)/video_fps)+1, as HF does). */
int glmv_video_sample_indices(int total_frames, double video_fps, double duration,
                              double fps, double max_duration, int **idx, int *n, char *err);

/* Decode, sample, resize and patchify a whole video (path, or data/size when
 * path is NULL). ip: the video processor's normalisation and pixel budget. */
int glmv_video_load(const char *path, const void *data, size_t size,
                    const glmv_video_params *vp, const glmv_image_params *ip, glmv_video *out,
                    char *err);

/* The text that replaces a video's <|video|> placeholder, as Glm4vProcessor
 * builds it: for each temporal group k, "<|begin_of_image|>" + "<|image|>" x
 * (gh*gw/merge^2) + "<|end_of_image|>" + the decimal timestamp. malloc'd. */
char *glmv_video_prompt(const glmv_video *v, int merge_size);

#endif
