/* Internal: AVX2 quantize paths for fp16, fp4_e2m1, int8 and int4 (quant_cast.c),
 * called by mplb_quant_quantize before it falls back to the reference.
 * Returns 1 when it quantized x into t (bit-identical to the reference),
 * 0 when this CPU or shape has no fast path (t untouched). */
#ifndef MPLB_QUANT_FAST_H
#define MPLB_QUANT_FAST_H

#include "mplb/quant.h"

int mplb_quant_cast_fast(const float *x, mplb_qtensor *t);

/* quant_simd.c: max |x| over the finite values (NaN, Inf skipped), the
 * reference's amax; AVX2 instructions: call only where the CPU has them. */
float mplb_quant_amax_finite_avx2(const float *x, int64_t n);

/* quant_avx512.c: 1 when the CPU has AVX-512 F/BW/VL/DQ; NVFP4 1x16 quantize
 * (rows a multiple of 16 long) on it, 1 when done, 0 (t untouched) if not. */
int mplb_quant_have_avx512(void);
int mplb_quant_nvfp4_avx512(const float *x, mplb_qtensor *t);

#endif
