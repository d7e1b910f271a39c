/* mplb_ffn: an expert's SwiGLU FFN run for real on the CPU, with weights
 * packed in any mplb format (the CPU backend's kernel).
 *
 *   y = W_down (silu(W_gate x) * (W_up x)),  W_gate, W_up: [f x d], W_down: [d x f]
 *
 * Weights stay packed; the kernel dequantizes 64-row tiles on the fly into
 * a float buffer and multiplies them with the (quantized) activations through
 * OpenBLAS sgemm, accumulating in FP32 (the llama.cpp/ggml approach: less
 * memory traffic per weight, dequantization in the inner loop). Activations
 * are rounded to act_prec first: bf16, or fp8 with one scale per token, or
 * mxfp8 with one per 32 channels. n = 0 is allowed (nothing to do).
 * mplb_ffn_ref_f64 is the float64 reference on the unquantized weights.
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

typedef struct mplb_ffn_ws {
    float *xq, *tile, *g, *u;   /* scratch, grown on demand */
    size_t cap_xq, cap_tile, cap_g;
    double t_dequant_s, t_total_s; /* accumulated timings: the share spent dequantizing */
} mplb_ffn_ws;

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
