// GPU check of the expert-FFN path against the CPU: the FP4 -> bf16
// dequantizers and the per-tensor fp8 quantizer bit for bit (NaN blocks,
// subnormal scales and short last blocks included), then the cuBLASLt FFN
// of each weight format (bf16, fp8 W8A8, nvfp4/mxfp4 W4A4 on FP4 tensor
// cores or weight-only) against the same algorithm run on the host in
// float64 (weights as the CPU reference dequantizes them, activations
// rounded as the device rounds them), within 1e-3 to 4e-3: accumulation order
// and rare requantization flips; the check also shows that a wrong
// activation format lies more than 5x that away. Every CUDA call is checked. Exits 77
// (a skip for ctest) on a machine without a CUDA device, as CI is; 1 on a
// CUDA runtime error.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "quant_elem.h"

static int fails = 0;

#define CK(call)                                                                                \
    do {                                                                                        \
        cudaError_t e_ = (cudaError_t)(call);                                                   \
        if (e_ != cudaSuccess) {                                                                \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static void report(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    fails += !ok;
}

static void fill(mplb_rng *g, float *x, size_t n, int specials) {
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)((mplb_rng_uniform(g) - 0.5) * 4.0 * exp(-4.0 * mplb_rng_uniform(g)));
        if (specials && mplb_rng_uniform(g) < 0.001) x[i] = mplb_rng_uniform(g) < 0.5 ? NAN : 1e-40f;
    }
}

// device dequantization equals the CPU reference rounded to bf16, bit for bit
static void check_dequant(mplb_prec p, int two_d, mplb_rng *g) {
    const int64_t rows = 48, cols = 200;
    float *x = (float *)malloc(rows * cols * sizeof(float)), *ref = (float *)malloc(rows * cols * sizeof(float));
    fill(g, x, (size_t)(rows * cols), 1);
    mplb_qopts o = {0};
    o.nvfp4_2d = two_d;
    mplb_qtensor q;
    mplb_err err;
    mplb_qtensor_alloc(&q, p, &o, rows, cols, &err);
    mplb_quant_quantize_ref(x, &q, &err);
    mplb_quant_dequantize_ref(&q, ref, &err);
    mplb_cuda_mat m;
    memset(&m, 0, sizeof m);
    m.fmt = p; m.nvfp4_2d = two_d; m.rows = rows; m.cols = cols; m.gs = q.global_scale;
    uint16_t *dout, *out = (uint16_t *)malloc(rows * cols * 2);
    CK(cudaMalloc((void **)&m.data, q.data_bytes));
    CK(cudaMalloc((void **)&m.scales, q.scale_bytes));
    CK(cudaMalloc((void **)&dout, rows * cols * 2));
    CK(cudaMemcpy(m.data, q.data, q.data_bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(m.scales, q.scales, q.scale_bytes, cudaMemcpyHostToDevice));
    int rc = mplb_cuda_dequant_bf16(&m, dout, 0);
    CK(cudaMemcpy(out, dout, rows * cols * 2, cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (int64_t i = 0; i < rows * cols; i++) bad += out[i] != mplb_f32_to_bf16(ref[i]);
    char what[128];
    snprintf(what, sizeof what, "dequant %s%s -> bf16: %lld of %lld differ", mplb_prec_name(p), two_d ? " 16x16" : "",
             (long long)bad, (long long)(rows * cols));
    report(rc == 0 && bad == 0, what);
    cudaFree(m.data); cudaFree(m.scales); cudaFree(dout);
    mplb_qtensor_free(&q);
    free(x); free(ref); free(out);
}

static void check_fp8_scaled(mplb_rng *g) {
    const int64_t n = 100003;
    float *x = (float *)malloc(n * sizeof(float)), *dx, *dscale, scale;
    uint8_t *dcodes, *codes = (uint8_t *)malloc(n);
    unsigned int *scratch;
    fill(g, x, (size_t)n, 1);
    mplb_qopts o = {1, MPLB_SCALE_TENSOR, 0, 0, 0};
    mplb_qtensor q;
    mplb_err err;
    mplb_qtensor_alloc(&q, MPLB_PREC_FP8_E4M3, &o, 1, n, &err);
    mplb_quant_quantize_ref(x, &q, &err);
    CK(cudaMalloc((void **)&dx, n * sizeof(float)));
    CK(cudaMalloc((void **)&dcodes, n));
    CK(cudaMalloc((void **)&dscale, 4));
    CK(cudaMalloc((void **)&scratch, 4));
    CK(cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice));
    int rc = mplb_cuda_fp8_quantize_scaled(dx, n, dcodes, dscale, scratch, 0);
    CK(cudaMemcpy(codes, dcodes, n, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&scale, dscale, 4, cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += codes[i] != q.data[i];
    char what[128];
    snprintf(what, sizeof what, "fp8_e4m3 per-tensor scaled: scale %s, %lld of %lld codes differ",
             scale == q.global_scale ? "equal" : "DIFFERS", (long long)bad, (long long)n);
    report(rc == 0 && bad == 0 && scale == q.global_scale, what);
    cudaFree(dx); cudaFree(dcodes); cudaFree(dscale); cudaFree(scratch);
    mplb_qtensor_free(&q);
    free(x); free(codes);
}

static double rel(const float *a, const double *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) { double e = (double)a[i] - b[i]; se += e * e; sr += b[i] * b[i]; }
    return sqrt(se / (sr > 0 ? sr : 1));
}

static double rel64(const double *a, const double *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) { double e = a[i] - b[i]; se += e * e; sr += b[i] * b[i]; }
    return sqrt(se / (sr > 0 ? sr : 1));
}

enum { ACT_BF16, ACT_FP8, ACT_NVFP4, ACT_MXFP4 };

// x [rows x cols] rounded in place as the device rounds activations
static void round_host(float *x, int64_t rows, int64_t cols, int act) {
    if (act == ACT_BF16) {
        for (int64_t i = 0; i < rows * cols; i++) x[i] = mplb_bf16_to_f32(mplb_f32_to_bf16(x[i]));
        return;
    }
    mplb_qopts o = {0};
    mplb_prec p = act == ACT_FP8 ? MPLB_PREC_FP8_E4M3 : act == ACT_NVFP4 ? MPLB_PREC_NVFP4 : MPLB_PREC_MXFP4;
    if (act == ACT_FP8) { o.saturate = 1; o.scaling = MPLB_SCALE_TENSOR; }   // per-tensor, as the device's
    if (act == ACT_MXFP4) o.mx_round_up = 1;                                 // the cuBLAS/TE rule, as the device's
    mplb_qtensor q;
    mplb_err err;
    if (mplb_qtensor_alloc(&q, p, &o, act == ACT_FP8 ? 1 : rows, act == ACT_FP8 ? rows * cols : cols, &err) < 0 ||
        mplb_quant_quantize_ref(x, &q, &err) < 0 || mplb_quant_dequantize_ref(&q, x, &err) < 0) {
        printf("FAIL host reference: %s\n", err.msg);
        exit(1);
    }
    mplb_qtensor_free(&q);
}

// out[n x rows] = a[n x k] . W^T in float64
static void gemm64(const float *W, const float *a, int n, int rows, int k, double *out) {
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double acc = 0;
            for (int j = 0; j < k; j++) acc += (double)a[(size_t)t * k + j] * W[(size_t)r * k + j];
            out[(size_t)t * rows + r] = acc;
        }
}

// The device's algorithm on the host in float64: weights as the CPU
// reference dequantizes them (rounded to bf16 on the weight-only path),
// activations rounded as the device rounds them (act), SwiGLU in float.
static void round_bf16(double *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = mplb_bf16_to_f32(mplb_f32_to_bf16((float)v[i]));
}

// obf16: the GEMMs wrote bf16 (an FP4 path without f32-output algorithms)
static void host_ffn(const mplb_expert_w *hw, int wbf16, int obf16, int act, const float *x, int n, double *y) {
    int d = hw->d, f = hw->f;
    float *W[3], *a = (float *)malloc((size_t)n * (d > f ? d : f) * sizeof(float));
    double *g = (double *)malloc((size_t)n * f * sizeof(double)), *u = (double *)malloc((size_t)n * f * sizeof(double));
    const mplb_qtensor *q[3] = {&hw->gate, &hw->up, &hw->down};
    mplb_err err;
    for (int i = 0; i < 3; i++) {
        W[i] = (float *)malloc((size_t)d * f * sizeof(float));
        mplb_quant_dequantize_ref(q[i], W[i], &err);
        if (wbf16)
            for (size_t j = 0; j < (size_t)d * f; j++) W[i][j] = mplb_bf16_to_f32(mplb_f32_to_bf16(W[i][j]));
    }
    memcpy(a, x, (size_t)n * d * sizeof(float));
    round_host(a, n, d, act);
    gemm64(W[0], a, n, f, d, g);
    gemm64(W[1], a, n, f, d, u);
    if (obf16) { round_bf16(g, (size_t)n * f); round_bf16(u, (size_t)n * f); }
    for (size_t i = 0; i < (size_t)n * f; i++) a[i] = mplb_swiglu((float)g[i], (float)u[i]);
    round_host(a, n, f, act);
    gemm64(W[2], a, n, d, f, y);
    if (obf16) round_bf16(y, (size_t)n * d);
    for (int i = 0; i < 3; i++) free(W[i]);
    free(a); free(g); free(u);
}

// The device FFN of p weights against host_ffn of the path it took, within
// tol (FP32 accumulation order; a rare requantization flip); and the same
// reference under a wrong activation format must lie > 5 tol away, so the
// tolerance would catch a wrong format.
static void check_ffn(mplb_cuda *c, mplb_prec p, int d, int f, int n, double tol, mplb_rng *g) {
    size_t nw = (size_t)d * f;
    float *w = (float *)malloc(3 * nw * sizeof(float)), *x = (float *)malloc((size_t)n * d * sizeof(float));
    float *y = (float *)malloc((size_t)n * d * sizeof(float));
    double *ref = (double *)malloc((size_t)n * d * sizeof(double)), *alt = (double *)malloc((size_t)n * d * sizeof(double));
    fill(g, w, 3 * nw, 0);
    for (size_t i = 0; i < 3 * nw; i++) w[i] *= 0.1f;
    fill(g, x, (size_t)n * d, 0);
    mplb_err err = {0};
    mplb_expert_w hw;
    mplb_cuda_expert dw;
    memset(&dw, 0, sizeof dw);
    if (mplb_expert_quantize(w, w + nw, w + 2 * nw, d, f, p, NULL, &hw, &err) < 0) {
        printf("FAIL quantize: %s\n", err.msg);
        exit(1);
    }
    float *dx, *dy;
    CK(cudaMalloc((void **)&dx, (size_t)n * d * sizeof(float)));
    CK(cudaMalloc((void **)&dy, (size_t)n * d * sizeof(float)));
    CK(cudaMemcpy(dx, x, (size_t)n * d * sizeof(float), cudaMemcpyHostToDevice));
    int rc = mplb_cuda_expert_upload(c, &hw, &dw, &err);
    if (rc == 0) rc = mplb_cuda_ffn_forward(c, &dw, dx, n, dy, &err);
    if (rc == 0) rc = mplb_cuda_sync(c, &err);
    if (rc == 0) CK(cudaMemcpy(y, dy, (size_t)n * d * sizeof(float), cudaMemcpyDeviceToHost));
    int tc = dw.path == MPLB_CUDA_PATH_FP4_TC, wonly = dw.path == MPLB_CUDA_PATH_WEIGHT_ONLY;
    int act = p == MPLB_PREC_FP8_E4M3 ? ACT_FP8 : tc ? (p == MPLB_PREC_NVFP4 ? ACT_NVFP4 : ACT_MXFP4) : ACT_BF16;
    int wrong = act == ACT_BF16 ? ACT_FP8 : ACT_BF16;
    host_ffn(&hw, wonly, dw.out_bf16, act, x, n, ref);
    host_ffn(&hw, wonly, dw.out_bf16, wrong, x, n, alt);
    double r = rc == 0 ? rel(y, ref, (size_t)n * d) : INFINITY, ra = rel64(alt, ref, (size_t)n * d);
    char what[512];
    snprintf(what, sizeof what, "ffn %s weights, %s%s (d=%d f=%d n=%d): rel diff %.2e from the host reference (allowed %.0e; "
             "a wrong activation format is %.2e away)%s%s", mplb_prec_name(p), mplb_cuda_path_name(dw.path, p), dw.out_bf16 ? ", bf16 GEMM outputs" : "", d, f, n, r, tol,
             ra, rc ? ": " : "", rc ? err.msg : "");
    report(r < tol && ra > 5 * tol, what);
    mplb_cuda_expert_free(&dw);
    mplb_expert_free(&hw);
    CK(cudaFree(dx)); CK(cudaFree(dy));
    free(w); free(x); free(y); free(ref); free(alt);
}

int main() {
    mplb_cuda *c;
    mplb_err err;
    if (mplb_cuda_open(0, &c, &err) < 0) {
        printf("%s: GPU check %s\n", err.msg, err.code == MPLB_EUNSUPP ? "skipped" : "failed");
        return err.code == MPLB_EUNSUPP ? 77 : 1;
    }
    char dev[256];
    mplb_cuda_describe(c, dev, sizeof dev);
    printf("# %s\n", dev);
    mplb_rng g;
    mplb_rng_seed(&g, 77);
    check_dequant(MPLB_PREC_NVFP4, 0, &g);
    check_dequant(MPLB_PREC_NVFP4, 1, &g);
    check_dequant(MPLB_PREC_MXFP4, 0, &g);
    check_fp8_scaled(&g);
    // 256 x 128: FP4 on tensor cores where the device has them; 208 x 112
    // (not multiples of 32): FP4 weight-only everywhere
    const int shapes[2][3] = {{256, 128, 37}, {208, 112, 5}};
    for (int s = 0; s < 2; s++) {
        const mplb_prec ps[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4, MPLB_PREC_MXFP4};
        // fp8: Hopper's FP8 MMA accumulates with fewer bits than FP32, and a
        // last-bit difference in the SwiGLU output flips its e4m3 code now and then
        const double tol[] = {1e-3, 4e-3, 2e-3, 2e-3};
        for (int i = 0; i < 4; i++) check_ffn(c, ps[i], shapes[s][0], shapes[s][1], shapes[s][2], tol[i], &g);
    }
    mplb_cuda_close(c);
    printf("%d failed\n", fails);
    return fails ? 1 : 0;
}
