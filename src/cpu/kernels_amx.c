/* kernels_amx.c -- the bf16 GEMM tile on AMX (Sapphire Rapids and later: AMX-TILE and
 * AMX-BF16), the rest of the table being the AVX512-BF16 one (backend.c makes it).
 *
 * kern_bf16's contract (kernels.h) for 16 rows of x by the panel's 32 columns: C tiles of 16 x
 * 16 float32 (two), x rows as the A tile (16 rows of 16 pairs of bf16), the pair-packed panel
 * ([K2][32][2] bf16, so each row of pairs is 128 bytes) as two B tiles of 16 columns each, at
 * a stride of 128 bytes; TDPBF16PS adds each pair's two products to the float32 sums, as
 * vdpbf16ps does. Fewer than 16 rows, or pairs not a multiple of 16, go to the AVX512-BF16
 * kernel. Linux hands the tile registers out on request (arch_prctl): glmv_cpu_amx_init asks. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/kernels.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int glmv_cpu_amx_init(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* palette 1: tiles 0, 1 the two C halves, 2 the A tile, 3 and 4 the B halves; 16 rows of 64
 * bytes each */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void tile_setup(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 5; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

void glmv_cpu_kern_bf16_amx(int64_t K2, const uint16_t *A, int64_t lda, const uint16_t *B, float *C,
                            int64_t ldc, int rows, int acc) {
    const glmv_cpu_kernels *v = &glmv_cpu_kernels_avx512bf16;
    if (rows < 16 || K2 % 16 != 0) { /* the vector kernel, 8 rows at a time */
        for (int r = 0; r < rows; r += v->mr) {
            int n = rows - r < v->mr ? rows - r : v->mr;
            v->kern_bf16(K2, A + r * lda, lda, B, C + r * ldc, ldc, n, acc);
        }
        return;
    }
    tile_setup();
    if (acc) {
        _tile_loadd(0, C, ldc * 4);
        _tile_loadd(1, C + 16, ldc * 4);
    } else {
        _tile_zero(0);
        _tile_zero(1);
    }
    for (int64_t p = 0; p < K2; p += 16) {
        _tile_loadd(2, A + 2 * p, lda * 2);
        _tile_loadd(3, B + p * 64, 128);
        _tile_loadd(4, B + p * 64 + 32, 128);
        _tile_dpbf16ps(0, 2, 3);
        _tile_dpbf16ps(1, 2, 4);
    }
    _tile_stored(0, C, ldc * 4);
    _tile_stored(1, C + 16, ldc * 4);
    _tile_release();
}
