/* fuzz_video.c -- libFuzzer target for the video path: any bytes into
 * glmv_video_load (FFmpeg demuxers and decoders, frame sampling, resize,
 * patchify) must give patch rows or an error, never a crash, hang or leak.
 * A small frame-size limit and pixel budget keep each run bounded.
 * Build: make fuzz; run: build/fuzz/tests/fuzz_video -max_len=300000 SEED_DIR
 * (seed with the clips of ../shared/assets/videos/).
 */
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "video.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[GLMV_ERR_SIZE];
    glmv_image_params ip = {.patch_size = 14, .temporal_patch_size = 2, .merge_size = 2,
                            .min_pixels = 784, .max_pixels = 28 * 28 * 2 * 16,
                            .mean = {0.5f, 0.5f, 0.5f}, .std = {0.5f, 0.5f, 0.5f},
                            .rescale_factor = 1.0 / 255};
    glmv_video_params vp = {.max_decode_pixels = 1 << 20, .max_frames = 8};
    glmv_video v;
    if (glmv_video_load(NULL, data, size, &vp, &ip, &v, err) == 0) glmv_video_free(&v);
    return 0;
}
