/* The CPU expert FFN: see include/mplb/ffn.h. */
#include "mplb/ffn.h"
#include "cpu.h"
#include "quant_elem.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TILE 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mplb_expert_quantize(const float *gate, const float *up, const float *down, int d, int f, mplb_prec p,
                         const mplb_qopts *o, mplb_expert_w *w, mplb_err *err) {
    memset(w, 0, sizeof *w);
    if (d < 1 || f < 1) return mplb_err_set(err, MPLB_EINVAL, "expert: d and f must be >= 1 (got %d, %d)", d, f);
    w->d = d; w->f = f; w->prec = p;
    mplb_qopts opt = o ? *o : (mplb_qopts){0};
    /* weight formats: fp8/fp4 casts get a per-tensor scale, values saturate */
    opt.saturate = 1;
    if (!o) opt.scaling = MPLB_SCALE_TENSOR;
    int rc;
    if ((rc = mplb_qtensor_alloc(&w->gate, p, &opt, f, d, err)) < 0 || (rc = mplb_quant_quantize(gate, &w->gate, err)) < 0 ||
        (rc = mplb_qtensor_alloc(&w->up, p, &opt, f, d, err)) < 0 || (rc = mplb_quant_quantize(up, &w->up, err)) < 0 ||
        (rc = mplb_qtensor_alloc(&w->down, p, &opt, d, f, err)) < 0 || (rc = mplb_quant_quantize(down, &w->down, err)) < 0) {
        mplb_expert_free(w);
        return rc;
    }
    return 0;
}

void mplb_expert_free(mplb_expert_w *w) {
    mplb_qtensor_free(&w->gate);
    mplb_qtensor_free(&w->up);
    mplb_qtensor_free(&w->down);
}

void mplb_ffn_ws_free(mplb_ffn_ws *ws) {
    free(ws->xq); free(ws->tile); free(ws->g); free(ws->u);
    free(ws->wb); free(ws->ab); free(ws->dtile);
    mplb_ffn_path keep = ws->path;
    memset(ws, 0, sizeof *ws);
    ws->path = keep;
}

#define FFN_PATHS(X) X(MPLB_FFN_AUTO, "auto") X(MPLB_FFN_AVX512_BF16, "avx512_bf16") X(MPLB_FFN_AVX2, "avx2") \
    X(MPLB_FFN_SCALAR, "scalar") X(MPLB_FFN_AVX512_F32, "avx512_f32")

const char *mplb_ffn_path_name(mplb_ffn_path p) {
#define X(e, s) if (p == e) return s;
    FFN_PATHS(X)
#undef X
    return "?";
}

int mplb_ffn_path_parse(const char *name) {
#define X(e, s) if (name && strcmp(name, s) == 0) return e;
    FFN_PATHS(X)
#undef X
    return -1;
}

/* From this many tokens the bf16 path beats the register-widened AVX2 one
 * (bench/gemm, forced paths side by side). */
#define BF16_MIN_TOKENS 8
/* the same for the float32 AVX-512 path against the AVX2 one */
#define F32_MIN_TOKENS 16

/* Activations of this precision are exact in bf16 once rounded (bf16, MX
 * and unscaled E2M1: a few significant bits times a power of two), so the
 * bf16 path computes what the float32 paths compute but for summation order.
 * Per-token or per-tensor float32 scales (fp8, nvfp4, int8, int4) and fp16
 * are not: auto keeps those on the float32 paths, so that a quantized
 * plan's result does not depend on the CPU (the accuracy harness compares
 * it with a numpy model of "round the activations, then float32 GEMMs"). */
static int acts_exact_in_bf16(mplb_prec p) {
    return p == MPLB_PREC_BF16 || p == MPLB_PREC_MXFP8 || p == MPLB_PREC_MXFP4 || p == MPLB_PREC_FP4_E2M1;
}

int mplb_qtensor_rows(const mplb_qtensor *t, int64_t r0, int64_t n, mplb_qtensor *v) {
    if (r0 < 0 || n < 0 || r0 + n > t->rows || (r0 % 16) != 0) return MPLB_EINVAL;
    *v = *t;
    v->rows = n;
    size_t drow = t->rows ? t->data_bytes / (size_t)t->rows : 0;
    v->data = t->data + (size_t)r0 * drow;
    v->data_bytes = (size_t)n * drow;
    if (t->fmt == MPLB_PREC_NVFP4 && t->opts.nvfp4_2d) {
        size_t per = t->scale_bytes / (size_t)((t->rows + 15) / 16);
        v->scales = t->scales + (size_t)(r0 / 16) * per;
        v->scale_bytes = (size_t)((n + 15) / 16) * per;
    } else {
        size_t srow = t->rows ? t->scale_bytes / (size_t)t->rows : 0;
        v->scales = t->scales + (size_t)r0 * srow;
        v->scale_bytes = (size_t)n * srow;
    }
    size_t zrow = t->rows ? t->zero_bytes / (size_t)t->rows : 0;
    v->zeros = t->zeros + (size_t)r0 * zrow;
    v->zero_bytes = (size_t)n * zrow;
    return 0;
}

/* Scratch is 64-byte aligned: the GEMMs' vector loads of activations then
 * never split a cache line (unaligned rows cost the small-batch path ~25%).
 * The contents need not survive growing. */
static int grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    void *q = NULL;
    if (posix_memalign(&q, 64, n * sizeof(float)) != 0) return -1;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}

/* out[n x rows(W)] = a[n x k] * W^T, W packed [rows x k], dequantized by tiles */
static int tiled_gemm(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws, int exact,
                      mplb_err *err) {
    mplb_ffn_path p = ws->path;
    if (p == MPLB_FFN_AVX512_BF16 || (p == MPLB_FFN_AUTO && exact && n >= BF16_MIN_TOKENS)) {
        int rc = mplb_ffn_gemm_bf16(W, a, n, k, out, ws, err);
        if (rc <= 0) return rc;
    }
    if (p == MPLB_FFN_AVX512_F32 || ((p == MPLB_FFN_AUTO || p == MPLB_FFN_AVX512_BF16) && n >= F32_MIN_TOKENS)) {
        int rc = mplb_ffn_gemm_f32(W, a, n, k, out, ws, err);
        if (rc <= 0) return rc;
    }
    if (p != MPLB_FFN_SCALAR && mplb_ffn_gemm_small(W, a, n, k, out) == 0) return 0;
    int64_t rows = W->rows;
    for (int64_t r0 = 0; r0 < rows; r0 += TILE) {
        int64_t tr = rows - r0 < TILE ? rows - r0 : TILE;
        mplb_qtensor v;
        if (mplb_qtensor_rows(W, r0, tr, &v) < 0) return mplb_err_set(err, MPLB_EINVAL, "ffn: bad tile view");
        double t0 = now_s();
        int rc = p == MPLB_FFN_SCALAR ? mplb_quant_dequantize_ref(&v, ws->tile, err) : mplb_quant_dequantize(&v, ws->tile, err);
        ws->t_dequant_s += now_s() - t0;
        if (rc < 0) return rc;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)tr, k, 1.0f, a, k, ws->tile, k, 0.0f,
                    out + r0, (int)rows);
    }
    return 0;
}

/* Round activations to act_prec (per-token scale for the fp8 casts). */
static int quantize_acts(const float *x, int n, int d, mplb_prec p, float *xq, mplb_err *err) {
    if (p == MPLB_PREC_FP8_E4M3 || p == MPLB_PREC_FP8_E5M2) {
        mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
        for (int t = 0; t < n; t++) {
            int rc = mplb_quant_fake(x + (size_t)t * d, xq + (size_t)t * d, 1, d, p, &o, err);
            if (rc < 0) return rc;
        }
        return 0;
    }
    mplb_qopts o = {.saturate = 1};
    return mplb_quant_fake(x, xq, n, d, p, &o, err);
}

int mplb_ffn_forward(const mplb_expert_w *w, const float *x, int n, mplb_prec act_prec, float *y,
                     mplb_ffn_ws *ws, mplb_err *err) {
    if (n < 0) return mplb_err_set(err, MPLB_EINVAL, "ffn: n = %d tokens", n);
    if (n == 0) return 0;
    if ((ws->path == MPLB_FFN_AVX512_BF16 && !mplb_ffn_have_bf16()) ||
        (ws->path == MPLB_FFN_AVX2 && !mplb_cpu_avx2()) || (ws->path == MPLB_FFN_AVX512_F32 && !mplb_ffn_have_avx512f()))
        return mplb_err_set(err, MPLB_EINVAL, "ffn: path %s forced, but this CPU does not have it", mplb_ffn_path_name(ws->path));
    if ((int)ws->path < 0 || ws->path >= MPLB_FFN_PATH_COUNT)
        return mplb_err_set(err, MPLB_EINVAL, "ffn: path %d is none of auto, avx512_bf16, avx512_f32, avx2, scalar",
                            (int)ws->path);
    double t0 = now_s();
    int d = w->d, f = w->f;
    size_t tile = (size_t)TILE * (size_t)(d > f ? d : f);
    if (grow(&ws->xq, &ws->cap_xq, (size_t)n * d) < 0 || grow(&ws->tile, &ws->cap_tile, tile) < 0 ||
        grow(&ws->g, &ws->cap_g, (size_t)n * f) < 0 || !(ws->u = realloc(ws->u, (size_t)n * f * sizeof(float))))
        return mplb_err_set(err, MPLB_ENOMEM, "ffn: out of memory for %d tokens", n);
    int rc = quantize_acts(x, n, d, act_prec, ws->xq, err);
    int exact = acts_exact_in_bf16(act_prec);
    if (rc == 0) rc = tiled_gemm(&w->gate, ws->xq, n, d, ws->g, ws, exact, err);
    if (rc == 0) rc = tiled_gemm(&w->up, ws->xq, n, d, ws->u, ws, exact, err);
    if (rc < 0) return rc;
    for (size_t i = 0; i < (size_t)n * f; i++) ws->g[i] = mplb_swiglu(ws->g[i], ws->u[i]);
    rc = quantize_acts(ws->g, n, f, act_prec, ws->g, err);
    if (rc == 0) rc = tiled_gemm(&w->down, ws->g, n, f, y, ws, exact, err);
    ws->t_total_s += now_s() - t0;
    return rc;
}

void mplb_ffn_ref_f64(const float *gate, const float *up, const float *down, int d, int f,
                      const float *x, int n, double *y) {
    double *h = malloc((size_t)f * sizeof *h);
    for (int t = 0; t < n && h; t++) {
        const float *xt = x + (size_t)t * d;
        for (int j = 0; j < f; j++) {
            double g = 0, u = 0;
            for (int i = 0; i < d; i++) {
                g += (double)gate[(size_t)j * d + i] * xt[i];
                u += (double)up[(size_t)j * d + i] * xt[i];
            }
            h[j] = g / (1.0 + exp(-g)) * u;
        }
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int j = 0; j < f; j++) s += (double)down[(size_t)i * f + j] * h[j];
            y[(size_t)t * d + i] = s;
        }
    }
    free(h);
}

void mplb_ffn_compare(const float *y, const double *ref, int64_t n, double *rel_err, double *cosine) {
    double se = 0, sr = 0, sy = 0, dot = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)y[i] - ref[i];
        se += e * e;
        sr += ref[i] * ref[i];
        sy += (double)y[i] * y[i];
        dot += (double)y[i] * ref[i];
    }
    *rel_err = sr > 0 ? sqrt(se / sr) : (se > 0 ? INFINITY : 0);
    *cosine = sr > 0 && sy > 0 ? dot / sqrt(sr * sy) : 1;
}
