/* fuzz_image.c -- libFuzzer target for the image decoders: any bytes into
 * glmv_image_decode_mem (JPEG, PNG, WebP, GIF, BMP, EXIF orientation) must
 * give an image or an error message, never a crash, leak or UB. Decoded
 * images are also run through preprocess when small, to cover resize and
 * patchify on odd sizes. Build: make fuzz; run: build/fuzz/tests/fuzz_image
 * -max_len=200000 tests/fixtures/image (the committed files make a seed corpus).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[GLMV_ERR_SIZE];
    glmv_rgb im;
    /* a small pixel cap keeps each run fast and memory bounded */
    if (glmv_image_decode_mem(data, size, 4 << 20, &im, err) == 0) {
        if ((int64_t)im.w * im.h <= 1 << 16) {
            glmv_image_params p;
            glmv_image_params_default(&p);
            p.max_pixels = 28 * 28 * 2 * 64;
            uint8_t *rows = NULL;
            int grid[3];
            if (glmv_image_preprocess(&im, &p, &rows, grid, err) == 0) free(rows);
        }
        glmv_rgb_free(&im);
    }
    return 0;
}
