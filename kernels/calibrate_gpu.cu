// `mplb calibrate --backend cuda`: see include/mplb/cuda.h. Times are CUDA
// event times of whole expert FFNs (activation rounding, GEMMs, SwiGLU, and
// for nvfp4 the weight dequantization), best of repeated runs.
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mplb.h"
#include "mplb/cuda.h"

namespace {

struct timer {
    cudaEvent_t a, b;
};

// best milliseconds of fn over at least min_s seconds (and 3 runs), after a warm-up
template <typename F>
int best_ms(cudaStream_t s, double min_s, F fn, double *best) {
    timer t;
    cudaEventCreate(&t.a);
    cudaEventCreate(&t.b);
    int rc = fn();
    cudaStreamSynchronize(s);
    double spent = 0;
    *best = 1e30;
    for (int i = 0; rc == 0 && (i < 3 || spent < min_s * 1e3) && i < 1000; i++) {
        cudaEventRecord(t.a, s);
        rc = fn();
        cudaEventRecord(t.b, s);
        cudaEventSynchronize(t.b);
        float ms = 0;
        cudaEventElapsedTime(&ms, t.a, t.b);
        spent += ms;
        if (ms < *best) *best = ms;
    }
    cudaEventDestroy(t.a);
    cudaEventDestroy(t.b);
    return rc;
}

}  // namespace

extern "C" int mplb_calibrate_gpu(const mplb_calib_opts *o, FILE *out, mplb_err *err) {
    int d = o && o->hidden ? o->hidden : 4096, f = o && o->ffn ? o->ffn : 1536;
    int nmax = o && o->max_tokens ? o->max_tokens : 8192;
    double min_s = o && o->min_seconds > 0 ? o->min_seconds : 0.05;
    const char *name = o && o->name ? o->name : "gpu";
    mplb_cuda *c;
    int rc = mplb_cuda_open(0, &c, err);
    if (rc < 0) return rc;
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(c);
    static const mplb_prec precs[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4};
    enum { NP = 3, NG = 16 };
    int grid[NG], ng = 0;
    for (int n = 1; n <= nmax && ng < NG; n *= 2) grid[ng++] = n;
    double tf[NP][NG], best[NP] = {0, 0, 0};
    size_t nw = (size_t)d * f;
    float *w = (float *)malloc(3 * nw * sizeof(float)), *hx = (float *)malloc((size_t)nmax * d * sizeof(float));
    float *x = NULL, *y = NULL;
    if (!w || !hx) rc = mplb_err_set(err, MPLB_ENOMEM, "calibrate: out of memory");
    mplb_rng g;
    mplb_rng_seed(&g, 1234);
    for (size_t i = 0; rc == 0 && i < 3 * nw; i++) w[i] = (float)(mplb_rng_uniform(&g) - 0.5) * 0.05f;
    for (size_t i = 0; rc == 0 && i < (size_t)nmax * d; i++) hx[i] = (float)(mplb_rng_uniform(&g) - 0.5);
    if (rc == 0 && (cudaMalloc((void **)&x, (size_t)nmax * d * sizeof(float)) != cudaSuccess ||
                    cudaMalloc((void **)&y, (size_t)nmax * d * sizeof(float)) != cudaSuccess))
        rc = mplb_err_set(err, MPLB_ENOMEM, "calibrate: device out of memory");
    if (rc == 0) cudaMemcpy(x, hx, (size_t)nmax * d * sizeof(float), cudaMemcpyHostToDevice);
    for (int p = 0; p < NP && rc == 0; p++) {
        mplb_expert_w hw;
        mplb_cuda_expert dw;
        if ((rc = mplb_expert_quantize(w, w + nw, w + 2 * nw, d, f, precs[p], NULL, &hw, err)) < 0) break;
        rc = mplb_cuda_expert_upload(c, &hw, &dw, err);
        mplb_expert_free(&hw);
        for (int i = 0; i < ng && rc == 0; i++) {
            double ms;
            int n = grid[i];
            rc = best_ms(s, min_s, [&] { return mplb_cuda_ffn_forward(c, &dw, x, n, y, err); }, &ms);
            tf[p][i] = 6.0 * n * d * f / (ms * 1e-3) / 1e12;
            if (tf[p][i] > best[p]) best[p] = tf[p][i];
        }
        mplb_cuda_expert_free(&dw);
    }
    // HBM: a device-to-device copy (read + write), and the fp8 conversion kernel
    double bw = 0, conv = 0;
    size_t bytes = (size_t)256 << 20;
    void *a = NULL, *b = NULL;
    unsigned int *scratch = NULL;
    float *scale = NULL;
    if (rc == 0 && (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess ||
                    cudaMalloc((void **)&scratch, 4) != cudaSuccess || cudaMalloc((void **)&scale, 4) != cudaSuccess))
        rc = mplb_err_set(err, MPLB_ENOMEM, "calibrate: device out of memory");
    if (rc == 0) {
        double ms;
        cudaMemsetAsync(a, 0, bytes, s);
        best_ms(s, min_s, [&] { return (int)cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s); }, &ms);
        bw = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
        int64_t n = (int64_t)(bytes / sizeof(float));
        best_ms(s, min_s, [&] { return mplb_cuda_fp8_quantize_scaled((const float *)a, n, (uint8_t *)b, scale, scratch, s); },
                &ms);
        conv = (double)n * 5 / (ms * 1e-3) / 1e9;
    }
    char dev[256];
    mplb_cuda_describe(c, dev, sizeof dev);
    size_t mem_free = 0, mem_total = 0;
    cudaMemGetInfo(&mem_free, &mem_total);
    cudaFree(a); cudaFree(b); cudaFree(scratch); cudaFree(scale); cudaFree(x); cudaFree(y);
    free(w); free(hx);
    mplb_cuda_close(c);
    if (rc < 0) return rc;
    time_t now = time(NULL);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(out, "-- Hardware profile measured by `mplb calibrate --backend cuda` (mplb %s, git %s)\n", MPLB_VERSION,
            mplb_git_revision());
    fprintf(out, "-- on %s at %s.\n", dev, stamp);
    fprintf(out, "-- Measured: expert SwiGLU FFNs through cuBLASLt (d=%d, f=%d; n = 1..%d tokens), CUDA events,\n", d, f, nmax);
    fprintf(out, "-- best of repeated runs: bf16 (BF16 GEMMs), fp8_e4m3 (W8A8 FP8 GEMMs, per-tensor scales), nvfp4\n");
    fprintf(out, "-- weight-only (dequantized to bf16 on the device, then BF16 GEMMs: not FP4 tensor cores,\n");
    fprintf(out, "-- even on a chip that has them). mxfp4/fp4_e2m1 are assumed to run like nvfp4, mxfp8 like\n");
    fprintf(out, "-- fp8_e4m3, fp16 and int4 like bf16. HBM: a device-to-device copy (read + write); conv_eff:\n");
    fprintf(out, "-- the fp8 conversion kernel over that bandwidth.\n");
    fprintf(out, "-- Not measured: nvlink_gbps, net_gbps and latencies are the h100 datasheet's; edit them.\n");
    fprintf(out, "return {\n  name = \"%s\",\n", name);
    fprintf(out, "  peak_tflops = { bf16 = %.3f, fp8_e4m3 = %.3f, nvfp4 = %.3f },\n", best[0], best[1], best[2]);
    fprintf(out, "  compute_as = { fp16 = \"bf16\", fp8_e5m2 = \"fp8_e4m3\", mxfp8 = \"fp8_e4m3\", int8 = \"fp8_e4m3\",\n");
    fprintf(out, "    fp4_e2m1 = \"nvfp4\", mxfp4 = \"nvfp4\", int4_g32 = \"bf16\", int4_g128 = \"bf16\" },\n");
    double ce = bw > 0 ? conv / bw : 0.01;
    if (!(ce > 0)) ce = 0.01;
    if (ce > 1) ce = 1;
    fprintf(out, "  hbm_gbps = %.1f,\n  nvlink_gbps = 450,\n  net_gbps = 50,\n", bw);
    fprintf(out, "  nvlink_lat_us = 8,\n  net_lat_us = 15,\n  launch_us = 5,\n  conv_eff = %.4f,\n", ce);
    fprintf(out, "  memory_gb = %.1f,\n  eff = {\n", (double)mem_total / 1e9);
    static const char *keys[NP] = {"bf16", "fp8_e4m3", "nvfp4"};
    for (int p = 0; p < NP; p++) {
        fprintf(out, "    %s = {", p == 0 ? "default" : keys[p]);
        for (int i = 0; i < ng; i++) {
            double e = best[p] > 0 ? tf[p][i] / best[p] : 1e-4;
            fprintf(out, " {%d, %.4f},", grid[i], e < 1e-4 ? 1e-4 : e);
        }
        fprintf(out, " },\n");
    }
    fprintf(out, "  },\n  -- raw TFLOP/s per n:");
    for (int p = 0; p < NP; p++) {
        fprintf(out, "\n  --   %s:", keys[p]);
        for (int i = 0; i < ng; i++) fprintf(out, " %d:%.2f", grid[i], tf[p][i]);
    }
    fprintf(out, "\n}\n");
    return ferror(out) ? mplb_err_set(err, MPLB_EIO, "calibrate: write error") : 0;
}
