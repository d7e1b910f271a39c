/* mplb_quant: quantize float32 tensors into mplb's formats and back.
 *
 * A tensor is rows x cols float32, row-major; blocks run along the last axis
 * (cols) and never cross a row. A row whose length is not a multiple of the
 * block size ends in a partial block: its scale comes from the valid elements
 * only and the packed row is padded to whole blocks with zero codes, which
 * dequantize writes nowhere (only rows x cols floats come out).
 *
 * Packed layouts (read the same bytes in C, CUDA and numpy):
 *   fp8_e4m3, fp8_e5m2, mxfp8, int8: one byte per element.
 *   fp4_e2m1, mxfp4, nvfp4, int4_*: two elements per byte, element 2i in the
 *     low nibble and 2i+1 in the high nibble (E2M1 = S.EE.M; INT4 sym = two's
 *     complement in [-7, 7]; INT4 asym = unsigned [0, 15]).
 *   bf16, fp16: two bytes per element, little-endian.
 *   scales: mxfp8/mxfp4: one E8M0 byte per 32-element block; nvfp4: one E4M3
 *     byte per 16-element block (1x16) or per 16x16 tile (opts.nvfp4_2d),
 *     plus global_scale (FP32) = amax / (448 * 6); int8: one float32 per row;
 *     int4_g32/g128: one FP16 per group, plus one uint8 zero point per group
 *     when asymmetric; fp8_e4m3, fp8_e5m2, fp4_e2m1: per-tensor float32 global_scale when
 *     opts.scaling = MPLB_SCALE_TENSOR, else 1 (a plain cast).
 *   Blocks are stored row by row: scale of (row r, block b) at r * nblocks + b
 *   (for 16x16 tiles: tile_row * nblocks + b).
 * MX scale: spec rule 2^(floor(log2 amax) - emax_elem) (emax 8 for E4M3, 2
 * for E2M1; elements then saturate) or, with opts.mx_round_up, the cuBLAS /
 * Transformer Engine rule 2^ceil(log2(amax / max_elem)), which never clips
 * within float32's range: an element that would round up to 2^128 (block
 * amax above 3.5 x 2^126 for mxfp4, 248 x 2^120 for mxfp8) takes the largest
 * code that dequantizes to a finite float instead of becoming Inf.
 * A block holding NaN or Inf gets a NaN scale (E8M0 0xFF, E4M3 0x7F) and
 * dequantizes to NaN; an all-zero block gets the smallest scale and zeros.
 */
#ifndef MPLB_QUANT_H
#define MPLB_QUANT_H

#include "mplb/api.h"

#include <stddef.h>
#include <stdint.h>
#include "mplb/err.h"
#include "mplb/prec.h"

MPLB_BEGIN_DECLS

enum { MPLB_SCALE_NONE = 0, MPLB_SCALE_TENSOR = 1 };

typedef struct mplb_qopts {
    int saturate;      /* fp8_*: clamp overflow to +-max instead of NaN/Inf */
    int scaling;       /* fp8_*, fp4_e2m1: MPLB_SCALE_NONE (cast) or MPLB_SCALE_TENSOR */
    int mx_round_up;   /* mxfp*: ceil rule (cuBLAS/TE) instead of the spec's floor rule */
    int nvfp4_2d;      /* nvfp4: 16x16 tiles (weights) instead of 1x16 blocks */
    int int4_asym;     /* int4_*: asymmetric with zero point */
} mplb_qopts;

typedef struct mplb_qtensor {
    mplb_prec fmt;
    mplb_qopts opts;
    int64_t rows, cols;
    uint8_t *data;       /* data_bytes */
    uint8_t *scales;     /* scale_bytes */
    uint8_t *zeros;      /* zero_bytes (int4 asym) */
    size_t data_bytes, scale_bytes, zero_bytes;
    float global_scale;
} mplb_qtensor;

/* Block size along cols for fmt (1 for per-tensor/per-row formats). */
MPLB_API int mplb_quant_block(mplb_prec fmt);
/* Bytes needed for each buffer. */
MPLB_API int mplb_quant_sizes(mplb_prec fmt, const mplb_qopts *o, int64_t rows, int64_t cols,
                     size_t *data_bytes, size_t *scale_bytes, size_t *zero_bytes, mplb_err *err);
/* Allocate t's buffers for rows x cols; free with mplb_qtensor_free. */
MPLB_API int mplb_qtensor_alloc(mplb_qtensor *t, mplb_prec fmt, const mplb_qopts *o, int64_t rows,
                       int64_t cols, mplb_err *err);
MPLB_API void mplb_qtensor_free(mplb_qtensor *t);

/* Scalar reference paths: the source of truth every fast path must equal. */
MPLB_API int mplb_quant_quantize_ref(const float *x, mplb_qtensor *t, mplb_err *err);
MPLB_API int mplb_quant_dequantize_ref(const mplb_qtensor *t, float *y, mplb_err *err);
/* Fast paths (SIMD where the CPU has it, else the reference), bit-identical. */
MPLB_API int mplb_quant_quantize(const float *x, mplb_qtensor *t, mplb_err *err);
MPLB_API int mplb_quant_dequantize(const mplb_qtensor *t, float *y, mplb_err *err);
/* The fast path kept to one instruction set (tests and benches reach the
 * AVX2 paths on an AVX-512 machine this way): AUTO is mplb_quant_quantize,
 * SCALAR the reference; AVX512 allows AVX-512 kernels (only NVFP4 has one;
 * other formats run their AVX2 kernel); a forced set the CPU lacks is
 * MPLB_EINVAL. */
typedef enum mplb_isa { MPLB_ISA_AUTO = 0, MPLB_ISA_AVX512, MPLB_ISA_AVX2, MPLB_ISA_SCALAR } mplb_isa;
MPLB_API int mplb_quant_quantize_isa(const float *x, mplb_qtensor *t, mplb_isa isa, mplb_err *err);
/* y = dequantize(quantize(x)); y may equal x. */
MPLB_API int mplb_quant_fake(const float *x, float *y, int64_t rows, int64_t cols, mplb_prec fmt,
                    const mplb_qopts *o, mplb_err *err);

typedef struct mplb_qstats { double max_abs, rms_rel, snr_db; int64_t nonfinite; } mplb_qstats;
/* Error of y against reference x over finite reference elements:
 * max |y-x|, sqrt(sum (y-x)^2 / sum x^2), 10 log10(sum x^2 / sum (y-x)^2). */
MPLB_API void mplb_quant_stats(const float *x, const float *y, int64_t n, mplb_qstats *s);

MPLB_END_DECLS

#endif
