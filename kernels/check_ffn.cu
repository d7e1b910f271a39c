// GPU check of the expert-FFN path against the CPU: the FP4 -> bf16
// dequantizers and the per-tensor fp8 quantizer bit for bit (NaN blocks,
// subnormal scales and short last blocks included), then the cuBLASLt FFN
// of each weight format against the CPU FFN on the same packed weights,
// within the error the GPU path adds (bf16 weights of the weight-only path,
// per-tensor instead of per-token fp8 activation scales, accumulation
// order); a transposed or misread operand is off by O(1). Exits 77 (a skip
// for ctest) on a machine without a CUDA device, as CI is.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "quant_elem.h"

static int fails = 0;

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
    cudaMalloc((void **)&m.data, q.data_bytes);
    cudaMalloc((void **)&m.scales, q.scale_bytes);
    cudaMalloc((void **)&dout, rows * cols * 2);
    cudaMemcpy(m.data, q.data, q.data_bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(m.scales, q.scales, q.scale_bytes, cudaMemcpyHostToDevice);
    int rc = mplb_cuda_dequant_bf16(&m, dout, 0);
    cudaMemcpy(out, dout, rows * cols * 2, cudaMemcpyDeviceToHost);
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
    cudaMalloc((void **)&dx, n * sizeof(float));
    cudaMalloc((void **)&dcodes, n);
    cudaMalloc((void **)&dscale, 4);
    cudaMalloc((void **)&scratch, 4);
    cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
    int rc = mplb_cuda_fp8_quantize_scaled(dx, n, dcodes, dscale, scratch, 0);
    cudaMemcpy(codes, dcodes, n, cudaMemcpyDeviceToHost);
    cudaMemcpy(&scale, dscale, 4, cudaMemcpyDeviceToHost);
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

static double rel(const float *a, const float *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) { double e = (double)a[i] - b[i]; se += e * e; sr += (double)b[i] * b[i]; }
    return sqrt(se / (sr > 0 ? sr : 1));
}

static void check_ffn(mplb_cuda *c, mplb_prec p, double tol, mplb_rng *g) {
    const int d = 256, f = 128, n = 37;
    size_t nw = (size_t)d * f;
    float *w = (float *)malloc(3 * nw * sizeof(float)), *x = (float *)malloc((size_t)n * d * sizeof(float));
    float *y = (float *)malloc((size_t)n * d * sizeof(float)), *ycpu = (float *)malloc((size_t)n * d * sizeof(float));
    fill(g, w, 3 * nw, 0);
    for (size_t i = 0; i < 3 * nw; i++) w[i] *= 0.1f;
    fill(g, x, (size_t)n * d, 0);
    mplb_err err = {0};
    mplb_expert_w hw;
    mplb_cuda_expert dw;
    mplb_ffn_ws ws;
    memset(&ws, 0, sizeof ws);
    mplb_expert_quantize(w, w + nw, w + 2 * nw, d, f, p, NULL, &hw, &err);
    mplb_prec act = p == MPLB_PREC_FP8_E4M3 ? MPLB_PREC_FP8_E4M3 : MPLB_PREC_BF16;
    mplb_ffn_forward(&hw, x, n, act, ycpu, &ws, &err);
    float *dx, *dy;
    cudaMalloc((void **)&dx, (size_t)n * d * sizeof(float));
    cudaMalloc((void **)&dy, (size_t)n * d * sizeof(float));
    cudaMemcpy(dx, x, (size_t)n * d * sizeof(float), cudaMemcpyHostToDevice);
    int rc = mplb_cuda_expert_upload(c, &hw, &dw, &err);
    if (rc == 0) rc = mplb_cuda_ffn_forward(c, &dw, dx, n, dy, &err);
    if (rc == 0) rc = mplb_cuda_sync(c, &err);
    cudaMemcpy(y, dy, (size_t)n * d * sizeof(float), cudaMemcpyDeviceToHost);
    double r = rc == 0 ? rel(y, ycpu, (size_t)n * d) : INFINITY;
    char what[256];
    snprintf(what, sizeof what, "ffn %s weights (d=%d f=%d n=%d): rel diff %.2e from the CPU FFN (allowed %.0e)%s%s",
             mplb_prec_name(p), d, f, n, r, tol, rc ? ": " : "", rc ? err.msg : "");
    report(r < tol, what);
    if (rc == 0) mplb_cuda_expert_free(&dw);
    mplb_expert_free(&hw);
    mplb_ffn_ws_free(&ws);
    cudaFree(dx); cudaFree(dy);
    free(w); free(x); free(y); free(ycpu);
}

int main() {
    mplb_cuda *c;
    mplb_err err;
    if (mplb_cuda_open(0, &c, &err) < 0) {
        printf("%s: GPU check skipped\n", err.msg);
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
    check_ffn(c, MPLB_PREC_BF16, 2e-3, &g);
    check_ffn(c, MPLB_PREC_NVFP4, 1e-2, &g);   // + bf16 rounding of the dequantized weights
    check_ffn(c, MPLB_PREC_MXFP4, 1e-2, &g);
    check_ffn(c, MPLB_PREC_FP8_E4M3, 0.15, &g);  // per-tensor vs per-token activation scales
    mplb_cuda_close(c);
    printf("%d failed\n", fails);
    return fails ? 1 : 0;
}
