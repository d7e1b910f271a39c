/* mplb_ffn: an expert's SwiGLU FFN run for real on the CPU, with weights
 * packed in any mplb format (the CPU backend's kernel).
 *
 *   y = W_down (silu(W_gate x) * (W_up x)),  W_gate, W_up: [f x d], W_down: [d x f]
 *
 * Weights stay packed and are decoded on the fly (the llama.cpp/ggml
 * approach: less memory traffic per weight): on AVX-512 BF16 CPUs to bf16 rows
 * for vdpbf16ps (Debian's OpenBLAS 0.3.21 has no bf16 GEMM: built without
 * BUILD_BFLOAT16, it exports no sbgemm), else 256-row tiles dequantized into
 * a float buffer for OpenBLAS sgemm; sums in FP32 either way. Activations
 * are rounded to act_prec first: bf16, or fp8 with one scale per token, or
 * mxfp8 with one per 32 channels. n = 0 is allowed (nothing to do).
 * mplb_ffn_ref_f64 is the float64 reference on the unquantized weights.
 *
 * Paths (mplb_ffn_ws.path; MPLB_FFN_AUTO picks by cpuid, token count and
 * act_prec: avx512_bf16 only for activations exact in bf16 once rounded --
 * bf16, mxfp8, mxfp4, fp4_e2m1 -- so results do not depend on the CPU but
 * for float32 summation order):
 *   avx512_bf16  weights decoded once per GEMM to bf16, activations rounded to
 *                bf16, vdpbf16ps with float32 sums (mplb_ffn_gemm_bf16), for
 *                weights exact in bf16 (bf16, fp8, fp4, mxfp8/4, nvfp4)
 *   avx512_f32   weights dequantized 16 rows at a time, float32 FMA on 16
 *                tokens a vector (mplb_ffn_gemm_f32): every other format and
 *                activation, summation order the only difference from sgemm
 *   avx2         registers-widened small batches (mplb_ffn_gemm_small), else
 *                the SIMD dequantizers + sgemm
 *   scalar       the reference dequantizers + sgemm
 * Formats a path does not take (int8, int4, fp16 on avx512_bf16) take
 * avx512_f32 where the CPU has it, else the next one down. Accuracy contract of avx512_bf16: the products are exact (bf16
 * x bf16 fits float32) and each output is one float32 sum over k in order, so
 * against float64 on the same bf16-rounded activations and decoded weights
 * |err| <= (k + 2) 2^-24 sum_i |w_i x_i| (+ 2^-126 per flushed subnormal
 * input: vdpbf16ps flushes denormals); forced onto activations not exact in
 * bf16 (fp8 with a per-token scale, nvfp4, int8) it adds one rounding of each
 * (2^-9 relative, 1/16 of an e4m3 step). tests/test_ffn.c checks that bound
 * per output (test_gemm_bf16) and every path's FFN against float64 within
 * 1.5/256 (the bf16 rounding of the hidden activations dominates).
 */
#ifndef MPLB_FFN_H
#define MPLB_FFN_H

#include "mplb/api.h"

#include "mplb/err.h"
#include "mplb/quant.h"

MPLB_BEGIN_DECLS

typedef struct mplb_expert_w {
    int d, f;
    mplb_prec prec;
    mplb_qtensor gate, up, down;
} mplb_expert_w;

/* Small batches of bf16, fp8, nvfp4 or mxfp4 weights: out[n x rows(W)] =
 * a[n x k] . W^T with the weights widened in registers instead of
 * dequantized to memory (x86 with AVX2; k a multiple of 8 and of the block,
 * an even number of rows), for n up to where it beats dequantize + sgemm on
 * this machine (bench/gemm: 64 tokens for bf16, 24 for fp8, 16 for FP4). Returns 1, touching nothing, where it does not apply.
 * The sums run in another order than sgemm's: results agree to float
 * rounding. */
MPLB_API int mplb_ffn_gemm_small(const mplb_qtensor *W, const float *a, int n, int k, float *out);

MPLB_API int mplb_expert_quantize(const float *gate, const float *up, const float *down, int d, int f, mplb_prec p,
                         const mplb_qopts *o, mplb_expert_w *w, mplb_err *err);
MPLB_API void mplb_expert_free(mplb_expert_w *w);

typedef enum mplb_ffn_path {
    MPLB_FFN_AUTO = 0, MPLB_FFN_AVX512_BF16, MPLB_FFN_AVX2, MPLB_FFN_SCALAR, MPLB_FFN_AVX512_F32, MPLB_FFN_PATH_COUNT
} mplb_ffn_path;

typedef struct mplb_ffn_ws {
    float *xq, *tile, *g, *u;   /* scratch, grown on demand */
    size_t cap_xq, cap_tile, cap_g;
    double t_dequant_s, t_total_s; /* accumulated timings: the share spent dequantizing */
    mplb_ffn_path path;         /* the caller's choice; a forced path the CPU lacks is an error */
    void *wb, *ab, *dtile;      /* avx512_bf16 scratch: bf16 weights, activation panel, a decoded tile */
    size_t cap_wb, cap_ab, cap_dtile;
} mplb_ffn_ws;

/* 1 when the CPU has AVX-512 F/BW/VL and BF16 (vdpbf16ps). */
MPLB_API int mplb_ffn_have_bf16(void);
/* out[n x rows(W)] = a[n x k] . W^T on AVX-512 BF16 (contract above), any
 * n >= 1, k, rows; scratch in ws. Returns 1, touching nothing, when the CPU
 * lacks it or W's format is not exact in bf16; < 0 with err on failure. */
MPLB_API int mplb_ffn_gemm_bf16(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws,
                                mplb_err *err);
/* 1 when the CPU has AVX-512F. out[n x rows(W)] = a . W^T in float32 on it:
 * W dequantized 16 rows at a time (the floats sgemm would get), any format,
 * n, k, rows; results differ from sgemm's only by summation order. Returns
 * 1 when the CPU lacks it, < 0 with err on failure. */
MPLB_API int mplb_ffn_have_avx512f(void);
MPLB_API int mplb_ffn_gemm_f32(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws,
                               mplb_err *err);
/* "auto", "avx512_bf16", "avx2", "scalar", "avx512_f32" -> path; -1 for anything else */
MPLB_API int mplb_ffn_path_parse(const char *name);
MPLB_API const char *mplb_ffn_path_name(mplb_ffn_path p);

MPLB_API void mplb_ffn_ws_free(mplb_ffn_ws *ws);
/* A view of rows [r0, r0 + n) of a packed tensor (r0 a multiple of 16). */
MPLB_API int mplb_qtensor_rows(const mplb_qtensor *t, int64_t r0, int64_t n, mplb_qtensor *view);
MPLB_API int mplb_ffn_forward(const mplb_expert_w *w, const float *x, int n, mplb_prec act_prec, float *y,
                     mplb_ffn_ws *ws, mplb_err *err);
MPLB_API void mplb_ffn_ref_f64(const float *gate, const float *up, const float *down, int d, int f,
                      const float *x, int n, double *y);

/* Relative L2 error and cosine similarity of y against the float64 reference. */
MPLB_API void mplb_ffn_compare(const float *y, const double *ref, int64_t n, double *rel_err, double *cosine);

MPLB_END_DECLS

#endif
