/* cuBLASLt's tiled layout of 1D block-scaling factors, shared by the host
 * (weights' scales, built once at upload) and the device quantizers (the
 * activations' scales, written in place).
 *
 * Block-scaled FP4 GEMMs (CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3 for
 * NVFP4, VEC32_UE8M0 for MXFP4) read one scale per block of K for every
 * row of the operand (the "outer" index: a weight's output row, or a
 * token). The cuBLAS documentation, "1D Block Scaling Factors Layout"
 * (https://docs.nvidia.com/cuda/cublas/index.html#d-block-scaling-factors-layout),
 * tiles the [outer x k-blocks] matrix of scales into 128 x 4 tiles, padded
 * to whole tiles, tiles ordered with the k-block tile fastest, each tile
 * 512 contiguous bytes in which outer index o and k-block j sit at
 * (o % 32) * 16 + (o / 32) * 4 + j. Its worked examples, as NVIDIA's
 * nvmath-python restates them (get_block_scale_offset in
 * nvmath/linalg/advanced/helpers/matmul.py): for a 128 x 128 NVFP4 operand,
 * block (5, 2) is at 82 and (5, 5) at 593. tests/test_device_logic.c holds
 * these functions to a direct implementation of that description.
 *
 *   size_t n = mplb_lt_scale_bytes(rows, kblocks);          // zero-filled
 *   out[mplb_lt_scale_offset(r, j, kblocks)] = scale(r, j);
 */
#ifndef MPLB_LT_SCALES_H
#define MPLB_LT_SCALES_H

#include "quant_elem.h"

/* k-blocks rounded up to whole tiles (4) */
MPLB_HD int64_t mplb_lt_scale_kpad(int64_t kblocks) { return (kblocks + 3) / 4 * 4; }

/* bytes of the tiled scales of an [outer x kblocks] matrix of scales */
MPLB_HD int64_t mplb_lt_scale_bytes(int64_t outer, int64_t kblocks) {
    return (outer + 127) / 128 * 128 * mplb_lt_scale_kpad(kblocks);
}

/* byte offset of the scale of row o, k-block j */
MPLB_HD int64_t mplb_lt_scale_offset(int64_t o, int64_t j, int64_t kblocks) {
    int64_t tile = (o / 128) * (mplb_lt_scale_kpad(kblocks) / 4) + j / 4, oi = o % 128;
    return tile * 512 + (oi % 32) * 16 + (oi / 32) * 4 + j % 4;
}

/* The tiled scales of mplb's row-major [rows / tile x kblocks] scales (tile
 * 16: NVFP4 16x16 weight tiles, one scale row per 16 rows; else 1) into out
 * (mplb_lt_scale_bytes(rows, kblocks) bytes; padding zero). */
MPLB_HD void mplb_lt_scales_from_rows(const uint8_t *s, int64_t rows, int64_t kblocks, int tile, uint8_t *out) {
    int64_t n = mplb_lt_scale_bytes(rows, kblocks);
    for (int64_t i = 0; i < n; i++) out[i] = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < kblocks; j++) out[mplb_lt_scale_offset(r, j, kblocks)] = s[(r / tile) * kblocks + j];
}

#endif
