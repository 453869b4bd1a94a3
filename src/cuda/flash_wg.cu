/* flash_wg.cu -- prefill and vision attention on Hopper's asynchronous warpgroup products
 * (wgmma): flash_wg_kernel computes attention.cu's flash_kernel's function for head dim 128
 * and 64 query rows or more, on compute capability 9.0 (the sm_90a code; compiled empty
 * elsewhere and not launched there). attention.cu converts K and V to bf16 and calls
 * k_flash_wg; the decode kernels and the f32 paths stay there. */
#include "cuda/cuda_impl.h"
#include "cuda/flash.h"

/* ------------------------------------------------- Hopper (wgmma) flash */

/* flash_wg_kernel: flash_kernel's function for head dim 128 on the Hopper tensor cores.
 * A block is WG warpgroups of 4 warps, each warpgroup 64 query rows (wgmma's M); they
 * share each BN-key tile of K and Vt (64 or 128), copied into shared memory by all threads with
 * cp.async, three stages deep (see the loop). S = Q Kᵀ is wgmma m64n64k16 with Q's fragments in registers
 * (the mma.sync A layout, which is wgmma's) and K from shared memory; O += P Vᵀᵀ is
 * m64n128k16 with P from the S accumulators (as in flash_kernel) and Vt from shared
 * memory. Both B tiles are K-major (the reduced dimension contiguous: K's rows are d,
 * Vt's rows are keys) in the 128-byte swizzle: 8 rows of 128 bytes make a 1024-byte
 * atom, whose 16-byte chunk c of row r sits at chunk c ^ (r & 7). The K tile's 128 d
 * are two such column halves of 64 rows (8 KB each); the Vt tile is 128 rows of 64 keys.
 * The same roundings and online softmax as flash_kernel: the same function to within
 * summation order. sm_90a only: compiled empty elsewhere, and launched only where
 * c->wgmma says the device is 9.0. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GLMV_WGMMA_CODE 1
#endif

/* Whether the code loaded for this device holds the wgmma kernel (the Makefile's sm_90a; a
 * build for plain sm_90, NVARCH overridden, compiles it empty): asked of the device once, when
 * the backend starts, so that such a build falls back to flash_kernel instead of running an
 * empty kernel. */
__global__ void wgmma_probe_kernel(int *ok) {
#ifdef GLMV_WGMMA_CODE
    *ok = 1;
#else
    *ok = 0;
#endif
}

int k_wgmma_built(cuda_ctx *c) {
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    wgmma_probe_kernel<<<1, 1, 0, c->stream>>>(d);
    bool ok = cudaGetLastError() == cudaSuccess &&
              cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, c->stream) == cudaSuccess &&
              cudaStreamSynchronize(c->stream) == cudaSuccess;
    cudaFree(d);
    if (!ok) cudaGetLastError();
    return ok && h == 1;
}

/* D[64 x 64] (+)= A[64 x 16] (registers, bf16) B (shared memory, K-major, 128-byte swizzle) */
__device__ __forceinline__ void wgmma_m64n64(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* D[64 x 128] (+)= A[64 x 16] (registers, bf16) B (shared memory, K-major, 128-byte swizzle) */
__device__ __forceinline__ void wgmma_m64n128(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* S tile of 64 or 128 keys */
template <int BN> __device__ __forceinline__ void wgmma_s(float (&d)[BN / 2], const uint32_t (&a)[4], uint64_t b, int acc);
template <> __device__ __forceinline__ void wgmma_s<64>(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
    wgmma_m64n64(d, a, b, acc);
}
template <> __device__ __forceinline__ void wgmma_s<128>(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
    wgmma_m64n128(d, a, b, acc);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ float ex2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
/* keeps the compiler from moving accesses of an accumulator across the asynchronous product */
template <int N> __device__ __forceinline__ void wg_hold(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
/* the same for A fragments: defined before the fence, not among the products */
template <int N> __device__ __forceinline__ void wg_hold(uint32_t (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(a[i][0]), "+r"(a[i][1]), "+r"(a[i][2]), "+r"(a[i][3])::"memory");
}

/* the shared-memory descriptor of a K-major, 128-byte-swizzled operand at shared address a
 * (its atoms 1024-byte aligned; a k step of 16 elements inside an atom adds 32 bytes):
 * start address >> 4, leading offset 1 (unused in this layout), stride 1024 bytes
 * between groups of 8 rows, swizzle mode 1 (128 bytes) */
__device__ __forceinline__ uint64_t wg_desc(uint32_t a) {
    return (uint64_t)((a & 0x3FFFF) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

/* bytes of a K tile of BN keys (and of a Vt tile): BN x 128 bf16 */
#define FW_TILE(BN) ((BN) * 128 * 2)
/* shared memory of ST stages (+ room to align the atoms): tiles t + 1 .. t + ST - 2 loading,
 * t in S, t - 1 in P·V */
#define FW_SMEM(ST, BN) ((ST) * 2 * FW_TILE(BN) + 1024 + 64) /* + the ping-pong's mbarriers */

/* named barriers 1 and 2 of the two warpgroups' turns (0 is __syncthreads') */
__device__ __forceinline__ void nbar_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void nbar_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }

/* one K tile (keys k0 .. k0 + BN of kb, 128 d each: two column halves of 64 d, BN rows of
 * 128 bytes) and one Vt tile (128 rows of keys k0..: BN / 64 column blocks of 128 rows of
 * 128 bytes) into a stage at shared address st, swizzled, by NT threads */
template <int NT, int BN>
__device__ __forceinline__ void fw_issue(uint32_t st, const __nv_bfloat16 *kb, const __nv_bfloat16 *vt,
                                         int64_t nk_pad, int64_t k0) {
#pragma unroll
    for (int i = threadIdx.x; i < BN * 16; i += NT) { /* K: BN rows of 16 chunks */
        int r = i >> 4, c = i & 15;
        uint32_t dst = st + (c >> 3) * (BN * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(kb + (k0 + r) * 128 + c * 8));
    }
    constexpr int VC = BN / 8; /* chunks of a Vt row */
#pragma unroll
    for (int i = threadIdx.x; i < 128 * VC; i += NT) { /* Vt: 128 rows of VC chunks */
        int d = i / VC, c = i % VC;
        uint32_t dst = st + FW_TILE(BN) + (c >> 3) * (128 * 128) + d * 128 + (((c & 7) ^ (d & 7)) << 4);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst),
                     "l"(vt + (int64_t)d * nk_pad + k0 + c * 8));
    }
}

/* grid (q tiles of 64*WG rows, heads); arguments as flash_kernel's */
/* PP (two warpgroups only): the warpgroups issue their products in turn (ping-pong, named
 * barriers), so that one's softmax runs while the other's products are on the tensor cores, and
 * the stages are handed over by mbarriers (full: a tile's copies landed; empty: both warpgroups'
 * P·V read it) instead of a block barrier a tile, which would keep the two in step. */
/* PROD (with PP): each tile's K and Vt come from their images in global memory (conv_img_kernel:
 * the shared-memory layout, 64 KB a tile) in one bulk copy (cp.async.bulk, completing on the stage's
 * full mbarrier) that thread 0 issues, where otherwise every thread issues 16 cp.async of its
 * share and its swizzled addresses a tile; kb is then the images (nk_pad x 256 bf16 a kv head)
 * and vt unused. (A producer warp of its own, as FlashAttention-3 has, made the block 288 threads:
 * ptxas then gave the consumers 168 registers and spilled.) qcs / qsn (rows of 64 floats, row r of
 * q at qcs + 64 r; NULL: none): Q rotated as it is loaded (rope_rot, as rope_neox_kernel rotates). */
template <int WG, int ST, int BN, bool PP, bool PROD>
__device__ __forceinline__ void flash_wg_body(float *__restrict__ out, int64_t ldo, const float *__restrict__ q,
                                              int64_t ldq, const __nv_bfloat16 *__restrict__ kb,
                                              const __nv_bfloat16 *__restrict__ vt, int64_t nq, int64_t nk,
                                              int64_t nk_pad, int causal, int64_t pos0, int group, float scale_log2,
                                              const float *__restrict__ qcs, const float *__restrict__ qsn,
                                              __nv_bfloat16 *__restrict__ outb) {
#ifdef GLMV_WGMMA_CODE
    PDL_ENTRY();
    static_assert(!PROD || PP, "bulk copies feed the ping-pong variant");
    constexpr int HD = 128, BM = 64 * WG, NT = 128 * WG;
    extern __shared__ __align__(16) unsigned char fw_sh[];
    const uint32_t sbase = ((uint32_t)__cvta_generic_to_shared(fw_sh) + 1023u) & ~1023u;

    const int h = blockIdx.y, g_kv = h / group;
    const int64_t q0 = (int64_t)blockIdx.x * BM;
    kb += (int64_t)g_kv * nk_pad * (PROD ? 2 * HD : HD);
    vt += PROD ? 0 : (int64_t)g_kv * nk_pad * HD;
    q += (int64_t)h * HD;
    out += (int64_t)h * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tig = lane & 3;
    const int64_t row_a = q0 + warp * 16 + gq, row_b = row_a + 8; /* warp w: rows 16 w.. of the block */

    int64_t kend = nk;
    if (causal && pos0 + q0 + BM < kend) kend = pos0 + q0 + BM;
    const int ntiles = (int)((kend + BN - 1) / BN);
    constexpr int AHEAD = ST - 2; /* tiles in flight ahead of the one computed */
    static_assert(!PP || (WG == 2 && AHEAD == 1), "ping-pong: two warpgroups, one tile ahead");
    const uint32_t full = sbase + ST * 2 * FW_TILE(BN), empty = full + 8 * ST; /* mbarriers (PP) */
    const int wgi = threadIdx.x >> 7;                                           /* this warpgroup */
    if constexpr (PP) {
        if (threadIdx.x == 0) {
            for (int i = 0; i < ST; i++) {
                mbar_init(full + 8 * i, PROD ? 1 : NT);
                mbar_init(empty + 8 * i, NT);
            }
            if constexpr (PROD) asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        }
        __syncthreads();
        if constexpr (PROD) {
            if (threadIdx.x == 0 && ntiles > 0) {
                mbar_expect_tx(full, 2 * FW_TILE(BN));
                bulk_g2s(sbase, kb, 2 * FW_TILE(BN), full); /* tile t's image: kb + t * FW_TILE(BN) bf16 */
            }
        } else if (ntiles > 0) {
            fw_issue<NT, BN>(sbase, kb, vt, nk_pad, 0);
            mbar_cp_async_arrive(full);
        }
        if (wgi == 1) nbar_arrive(1); /* warpgroup 0 issues first */
    } else {
#pragma unroll
        for (int i = 0; i < AHEAD; i++) { /* a group per tile, empty past the last */
            if (i < ntiles) fw_issue<NT, BN>(sbase + i * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)i * BN);
            cp_commit();
        }
    }

    uint32_t qf[HD / 16][4];
    if (qcs)
        load_q_frags_rope<HD>(qf, q + row_a * ldq + tig * 2, q + row_b * ldq + tig * 2, row_a < nq, row_b < nq,
                              qcs + row_a * (HD / 2) + tig * 2, qsn + row_a * (HD / 2) + tig * 2,
                              qcs + row_b * (HD / 2) + tig * 2, qsn + row_b * (HD / 2) + tig * 2);
    else
        load_q_frags<HD>(qf, q + row_a * ldq + tig * 2, q + row_b * ldq + tig * 2, row_a < nq, row_b < nq);
    float o[HD / 2]; /* m64n128 accumulators: o[4 nb + e] as flash_kernel's o[nb][e] */
#pragma unroll
    for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

    /* Tile t: its K and V landed (the copy issued AHEAD tiles before), the copy of tile
     * t + AHEAD goes into the stage that P·V of tile t - 2 read (done before this tile's
     * barrier);
     * then S(t) and P·V(t - 1) go to the tensor cores together, and the softmax of S(t)
     * runs while P·V(t - 1) is in flight; O is rescaled once that is done. Tile 0 has no
     * tile before it: its P·V(t - 1) multiplies P = 0 by tile 0's V (finite values), which
     * adds exact zeros. (A branch around the products, or tile 0 peeled off, makes ptxas
     * serialize them.) */
    uint32_t pf[BN / 16][4]; /* P of the tile before, bf16 A fragments */
#pragma unroll
    for (int i = 0; i < BN / 16; i++) pf[i][0] = pf[i][1] = pf[i][2] = pf[i][3] = 0u;
    float al_a, al_b;           /* the rescale of what O held before this tile */
    auto begin_tile = [&](int t) {
        if constexpr (PP) {
            mbar_wait(full + 8 * (t % ST), (t / ST) & 1);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            nbar_sync(1 + wgi); /* this warpgroup's turn */
            return;
        }
        cp_wait<AHEAD - 1>(); /* one group a tile: tile t's is the oldest left */
        /* the tensor cores read what cp.async wrote: order it for the async proxy */
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        if (t + AHEAD < ntiles)
            fw_issue<NT, BN>(sbase + ((t + AHEAD) % ST) * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)(t + AHEAD) * BN);
        cp_commit();
    };
    /* the descriptors are made before the fence: an instruction that defines a product's
     * input between the products makes ptxas serialize them */
    auto desc_k = [&](int t) { return wg_desc(sbase + (t % ST) * 2 * FW_TILE(BN)); };
    auto desc_v = [&](int t) { return wg_desc(sbase + (t % ST) * 2 * FW_TILE(BN) + FW_TILE(BN)); };
    auto issue_s = [&](float (&s)[BN / 2], uint64_t dk) { /* S = Q K(t)ᵀ; the start field counts 16 bytes */
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
            wgmma_s<BN>(s, qf[kk], dk + (((kk >> 2) * (BN * 128) + (kk & 3) * 32) >> 4), kk);
        wg_commit();
    };
    auto issue_pv = [&](uint64_t dv) { /* O += P(t) V(t) */
#pragma unroll
        for (int kq = 0; kq < BN / 16; kq++)
            wgmma_m64n128(o, pf[kq], dv + (((kq >> 2) * (128 * 128) + (kq & 3) * 32) >> 4), 1);
        wg_commit();
    };
    /* S(t) into P(t) (float), al and l. The maxima are taken on the raw scores and scaled
     * once (scaling by a positive factor keeps the order, and rounding is monotonic, so it
     * is the maximum of the scaled scores); each exponent is one fma and one ex2.approx.ftz
     * (flash_kernel: a multiply, a subtraction and exp2f, whose denormal handling adds
     * instructions; the results differ by rounding alone) */
    auto softmax = [&](float (&s)[BN / 2], int t) {
        const int64_t k0 = (int64_t)t * BN;
        const bool need_mask = k0 + BN > nk || (causal && k0 + BN - 1 > pos0 + q0);
        /* four partial maxima and sums a row: a serial chain of 32 dependent max (or add)
         * instructions with two warps a scheduler leaves the scheduler idle */
        if (need_mask) {
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int64_t col = k0 + nb * 8 + tig * 2 + (e & 1);
                    int64_t row = e < 2 ? row_a : row_b;
                    if (col >= nk || (causal && col > pos0 + row)) s[4 * nb + e] = -INFINITY;
                }
        }
        float ma[4], mb[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            ma[i] = fmaxf(s[8 * i + 0], s[8 * i + 1]);
            mb[i] = fmaxf(s[8 * i + 2], s[8 * i + 3]);
            ma[i] = fmaxf(ma[i], fmaxf(s[8 * i + 4], s[8 * i + 5]));
            mb[i] = fmaxf(mb[i], fmaxf(s[8 * i + 6], s[8 * i + 7]));
        }
#pragma unroll
        for (int nb = 8; nb < BN / 8; nb += 2)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int i = (nb / 2 + h) & 3, b = 4 * (nb + h);
                ma[i] = fmaxf(ma[i], fmaxf(s[b + 0], s[b + 1]));
                mb[i] = fmaxf(mb[i], fmaxf(s[b + 2], s[b + 3]));
            }
        const float mx_a = fmaxf(fmaxf(ma[0], ma[1]), fmaxf(ma[2], ma[3]));
        const float mx_b = fmaxf(fmaxf(mb[0], mb[1]), fmaxf(mb[2], mb[3]));
        float ref_a, ref_b;
        online_max(m_a, m_b, mx_a * scale_log2, mx_b * scale_log2, ref_a, ref_b, al_a, al_b);
        float sa[4] = {0.f, 0.f, 0.f, 0.f}, sb[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int nb = 0; nb < BN / 8; nb++) {
            s[4 * nb + 0] = ex2_ftz(fmaf(s[4 * nb + 0], scale_log2, -ref_a));
            s[4 * nb + 1] = ex2_ftz(fmaf(s[4 * nb + 1], scale_log2, -ref_a));
            s[4 * nb + 2] = ex2_ftz(fmaf(s[4 * nb + 2], scale_log2, -ref_b));
            s[4 * nb + 3] = ex2_ftz(fmaf(s[4 * nb + 3], scale_log2, -ref_b));
            sa[nb & 3] += s[4 * nb + 0] + s[4 * nb + 1];
            sb[nb & 3] += s[4 * nb + 2] + s[4 * nb + 3];
        }
        l_a = l_a * al_a + ((sa[0] + sa[1]) + (sa[2] + sa[3]));
        l_b = l_b * al_b + ((sb[0] + sb[1]) + (sb[2] + sb[3]));
    };
    for (int t = 0; t < ntiles; t++) {
        float s[BN / 2]; /* m64nBN: s[4 nb + e] */
        begin_tile(t);
        const uint64_t dk = desc_k(t), dv = desc_v(t ? t - 1 : 0);
        wg_hold(o);
        wg_hold(pf);
        wg_fence();
        issue_s(s, dk);
        issue_pv(dv);
        if constexpr (PP) {
            nbar_arrive(2 - wgi); /* the other warpgroup's turn */
            const int u = t + 1;  /* its copy goes into the stage tile u - ST used */
            if (PROD && threadIdx.x == 0 && u < ntiles) {
                if (u >= ST) mbar_wait(empty + 8 * (u % ST), (u / ST - 1) & 1);
                mbar_expect_tx(full + 8 * (u % ST), 2 * FW_TILE(BN));
                bulk_g2s(sbase + (u % ST) * 2 * FW_TILE(BN), kb + (int64_t)u * FW_TILE(BN), 2 * FW_TILE(BN),
                         full + 8 * (u % ST));
            }
            if (!PROD && u < ntiles) {
                if (u >= ST) mbar_wait(empty + 8 * (u % ST), (u / ST - 1) & 1);
                fw_issue<NT, BN>(sbase + (u % ST) * 2 * FW_TILE(BN), kb, vt, nk_pad, (int64_t)u * BN);
                mbar_cp_async_arrive(full + 8 * (u % ST));
            }
        }
        wg_wait<1>(); /* S(t) done, P·V(t - 1) may still run */
        wg_hold(s);
        softmax(s, t);
        wg_wait<0>(); /* P·V(t - 1) has read pf: it may now take P(t) */
        wg_hold(o);
        if constexpr (PP)
            if (t > 0) mbar_arrive(empty + 8 * ((t - 1) % ST)); /* this thread is done with tile t - 1 */
#pragma unroll
        for (int kq = 0; kq < BN / 16; kq++) {
            pf[kq][0] = pack_bf16(s[8 * kq + 0], s[8 * kq + 1]);
            pf[kq][1] = pack_bf16(s[8 * kq + 2], s[8 * kq + 3]);
            pf[kq][2] = pack_bf16(s[8 * kq + 4], s[8 * kq + 5]);
            pf[kq][3] = pack_bf16(s[8 * kq + 6], s[8 * kq + 7]);
        }
        if (__any_sync(0xffffffffu, al_a != 1.f || al_b != 1.f)) { /* no row's maximum moved: nothing to do */
#pragma unroll
            for (int nb = 0; nb < HD / 8; nb++) {
                o[4 * nb + 0] *= al_a;
                o[4 * nb + 1] *= al_a;
                o[4 * nb + 2] *= al_b;
                o[4 * nb + 3] *= al_b;
            }
        }
    }
    if constexpr (PP)
        if (wgi == 0) nbar_sync(1); /* warpgroup 1's last turn handed back: the barrier left balanced */
    if (ntiles > 0) { /* P·V of the last tile */
        const uint64_t dv = desc_v(ntiles - 1);
        wg_hold(o);
        wg_hold(pf);
        wg_fence();
        issue_pv(dv);
        wg_wait<0>();
        wg_hold(o);
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
    }
    float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
#pragma unroll
    for (int nb = 0; nb < HD / 8; nb++) {
        int cc = nb * 8 + tig * 2;
        const float2 ya = make_float2(o[4 * nb + 0] * inv_a, o[4 * nb + 1] * inv_a);
        const float2 yb = make_float2(o[4 * nb + 2] * inv_b, o[4 * nb + 3] * inv_b);
        if (row_a < nq) *(float2 *)(out + row_a * ldo + cc) = ya;
        if (row_b < nq) *(float2 *)(out + row_b * ldo + cc) = yb;
        if (PROD && outb) { /* the same values in bf16, as k_to_bf16 rounds them */
            if (row_a < nq) *(uint32_t *)(outb + row_a * ldo + cc) = pack_bf16(ya.x, ya.y);
            if (row_b < nq) *(uint32_t *)(outb + row_b * ldo + cc) = pack_bf16(yb.x, yb.y);
        }
    }
#endif
}

template <int WG, int ST, int BN, bool PP = false>
__global__ void __launch_bounds__(WG * 128, 1) flash_wg_kernel(
    float *__restrict__ out, int64_t ldo, const float *__restrict__ q, int64_t ldq,
    const __nv_bfloat16 *__restrict__ kb, const __nv_bfloat16 *__restrict__ vt, int64_t nq,
    int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int group, float scale_log2) {
    flash_wg_body<WG, ST, BN, PP, false>(out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, group, scale_log2,
                                         NULL, NULL, NULL);
}

/* two warpgroups, three stages of 128-key tiles, ping-pong, each tile one bulk copy */
__global__ void __launch_bounds__(2 * 128, 1) flash_wp_kernel(
    float *__restrict__ out, int64_t ldo, const float *__restrict__ q, int64_t ldq,
    const __nv_bfloat16 *__restrict__ img, int64_t nq, int64_t nk, int64_t nk_pad, int causal, int64_t pos0,
    int group, float scale_log2, const float *__restrict__ qcs, const float *__restrict__ qsn,
    __nv_bfloat16 *__restrict__ outb) {
    flash_wg_body<2, 3, 128, true, true>(out, ldo, q, ldq, img, NULL, nq, nk, nk_pad, causal, pos0, group,
                                         scale_log2, qcs, qsn, outb);
}

template <int WG, int ST, int BN, bool PP = false>
static int flash_wg_run(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq,
                        const __nv_bfloat16 *kb, const __nv_bfloat16 *vt, int64_t nq, int64_t nk,
                        int64_t nk_pad, int causal, int64_t pos0, int n_heads, int group, float scale) {
    static int attr_set[64];
    return flash_grid(c, flash_wg_kernel<WG, ST, BN, PP>, attr_set, 64 * WG, 128 * WG, FW_SMEM(ST, BN), out, ldo, q,
                      ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale, "attention (flash, wgmma)");
}

int k_flash_wg(cuda_ctx *c, int variant, float *out, int64_t ldo, const float *q, int64_t ldq, const __nv_bfloat16 *kb,
               const __nv_bfloat16 *vt, int64_t nq, int64_t nk, int64_t nk_pad, int causal, int64_t pos0, int n_heads,
               int group, float scale) {
    switch (variant) {
    case 0: return flash_wg_run<1, 3, 64>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale);
    case 1: return flash_wg_run<2, 3, 64>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale);
    case 2: return flash_wg_run<2, 3, 128>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group, scale);
    default:
        return flash_wg_run<2, 3, 128, true>(c, out, ldo, q, ldq, kb, vt, nq, nk, nk_pad, causal, pos0, n_heads, group,
                                             scale);
    }
}

/* ------------------------------------- the bulk-copy variant's tile images */

__device__ __forceinline__ void ld8(const float *p, float (&x)[8]) {
    const float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
}
__device__ __forceinline__ void ld8(const __nv_bfloat16 *p, float (&x)[8]) {
    const uint4 u = *(const uint4 *)p;
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        x[2 * i] = __uint_as_float(w[i] << 16);
        x[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* K and V of the kv heads (head g at column 128 g of rows of ldk / ldv; KT float or bf16) as the
 * bulk-copy kernel's tile images: tile t (keys 128 t ..) of head g at img + (g * gridDim.x + t) *
 * 32768 bf16, the K tile then the Vt tile, each byte where fw_issue puts it in shared memory (K: two
 * column halves of 64 d, 128 key rows of 128 bytes; Vt: two blocks of 64 keys, 128 d rows of 128
 * bytes; the 16-byte chunk c of row r at chunk c ^ (r & 7)), zero past nk: a stage is one
 * contiguous copy. With cs / sn (rows of 64 floats, key r at cs + 64 r), K rotated first as
 * rope_neox_kernel rotates it. The same roundings as conv_k_kernel and conv_vt_kernel. Grid
 * (tiles, kv heads), 256 threads. */
template <typename KT>
__global__ void __launch_bounds__(256) conv_img_kernel(__nv_bfloat16 *img, const KT *k, int64_t ldk, const KT *v,
                                                       int64_t ldv, int64_t nk, const float *cs, const float *sn) {
    PDL_ENTRY();
    __shared__ __align__(16) __nv_bfloat16 svt[128][136]; /* the V tile transposed: [d][key] */
    const int g = blockIdx.y, t = blockIdx.x;
    __nv_bfloat16 *dst = img + ((int64_t)g * gridDim.x + t) * 32768;
    const int64_t r0 = (int64_t)t * 128;
    k += (int64_t)g * 128;
    v += (int64_t)g * 128;
    /* V: thread i takes key i % 128 (a warp's 32 keys side by side in shared memory), 8 d at a time */
    for (int i = threadIdx.x; i < 2048; i += 256) {
        const int rr = i & 127, dc = (i >> 7) * 8;
        const int64_t r = r0 + rr;
        float x[8];
        if (r < nk) ld8(v + r * ldv + dc, x);
        else
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) svt[dc + e][rr] = __float2bfloat16_rn(x[e]);
    }
    /* K: image chunk j (16 bytes) holds key rr's 8 d at logical chunk (j & 7) ^ (rr & 7) of its half */
    for (int j = threadIdx.x; j < 2048; j += 256) {
        const int half = j >> 10, rr = (j >> 3) & 127;
        const int d0 = half * 64 + (((j & 7) ^ (rr & 7)) << 3);
        const int64_t r = r0 + rr;
        float x[8];
        if (r < nk) {
            ld8(k + r * ldk + d0, x);
            if (cs) {
                float p[8], unused;
                ld8(k + r * ldk + (d0 ^ 64), p); /* the partners, d +- 64 */
                const int e0 = d0 & 63;
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float c = cs[r * 64 + e0 + e], s = sn[r * 64 + e0 + e];
                    if (half == 0) rope_rot(x[e], p[e], c, s, x[e], unused);
                    else rope_rot(p[e], x[e], c, s, unused, x[e]);
                }
            }
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] = 0.f;
        }
        uint4 u;
        u.x = pack_bf16(x[0], x[1]);
        u.y = pack_bf16(x[2], x[3]);
        u.z = pack_bf16(x[4], x[5]);
        u.w = pack_bf16(x[6], x[7]);
        *(uint4 *)(dst + 8 * j) = u;
    }
    __syncthreads();
    /* Vt: image chunk j holds d's 8 keys at logical chunk (j & 7) ^ (d & 7) of its block of 64 */
    for (int j = threadIdx.x; j < 2048; j += 256) {
        const int cb = j >> 10, d = (j >> 3) & 127;
        const int k0 = cb * 64 + (((j & 7) ^ (d & 7)) << 3);
        *(uint4 *)(dst + 16384 + 8 * j) = *(const uint4 *)&svt[d][k0];
    }
}

/* 1 when flash_launch takes the bulk-copy variant for these operands: the wgmma kernel's shape (head
 * dim 128, 64 query rows or more, Hopper), c->flash_bulk, and 16-byte rows of K and V */
int k_flash_bulk_takes(const cuda_ctx *c, int hd, int64_t nq, const void *k, int64_t ldk_bytes, const void *v,
                       int64_t ldv_bytes) {
    return c->wgmma && c->flash_bulk && hd == 128 && nq >= 64 && !((uintptr_t)k % 16) && !((uintptr_t)v % 16) &&
           !(ldk_bytes % 16) && !(ldv_bytes % 16);
}

template <typename KT>
int k_flash_bulk(cuda_ctx *c, float *out, int64_t ldo, const float *q, int64_t ldq, const KT *k, int64_t ldk,
                 const KT *v, int64_t ldv, int64_t nq, int64_t nk, int causal, int64_t pos0, int n_heads, int n_kv,
                 float scale, const float *kcs, const float *ksn, const float *qcs, const float *qsn,
                 __nv_bfloat16 *outb) {
    static int attr_set[64];
    const size_t sh = FW_SMEM(3, 128);
    if (!attr_set[c->dev & 63]) {
        cudaError_t e = cudaFuncSetAttribute(flash_wp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return cuda_fail(c, "attention: shared memory", e);
        attr_set[c->dev & 63] = 1;
    }
    const int64_t tiles = (nk + 127) / 128, nk_pad = tiles * 128;
    __nv_bfloat16 *img =
        (__nv_bfloat16 *)cuda_scratch(c, sizeof(__nv_bfloat16) * (size_t)(nk_pad * 256) * (size_t)n_kv);
    if (!img) return -1;
    if (tiles > 65535) return cuda_fail(c, "attention: more than 65535 tiles of keys", cudaErrorInvalidValue);
    cuda_launch(c, conv_img_kernel<KT>, dim3((unsigned)tiles, (unsigned)n_kv), 256, 0, img, k, ldk, v, ldv, nk, kcs,
                ksn);
    if (cuda_check(c, "attention (k/v tiles)")) return -1;
    const int group = n_heads / n_kv;
    for (int64_t t0 = 0; t0 < nq; t0 += (int64_t)128 * 65535) { /* grid.x is ample */
        const int64_t nqq = nq - t0;
        dim3 grid(cdiv(nqq, 128), (unsigned)n_heads);
        cuda_launch(c, flash_wp_kernel, grid, 2 * 128, sh, out + t0 * ldo, ldo, q + t0 * ldq, ldq,
                    (const __nv_bfloat16 *)img, nqq, nk, nk_pad, causal, pos0 + t0, group, scale * LOG2E,
                    qcs ? qcs + t0 * 64 : qcs, qsn ? qsn + t0 * 64 : qsn, outb ? outb + t0 * ldo : outb);
    }
    return cuda_check(c, "attention (flash, wgmma, bulk copies)");
}
template int k_flash_bulk<float>(cuda_ctx *, float *, int64_t, const float *, int64_t, const float *, int64_t,
                                 const float *, int64_t, int64_t, int64_t, int, int64_t, int, int, float,
                                 const float *, const float *, const float *, const float *, __nv_bfloat16 *);
template int k_flash_bulk<__nv_bfloat16>(cuda_ctx *, float *, int64_t, const float *, int64_t,
                                         const __nv_bfloat16 *, int64_t, const __nv_bfloat16 *, int64_t, int64_t,
                                         int64_t, int, int64_t, int, int, float, const float *, const float *,
                                         const float *, const float *, __nv_bfloat16 *);
