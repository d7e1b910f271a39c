// `mplb calibrate --backend cuda`: see include/mplb/cuda.h. Times are the
// device's alone (mplb_cuda_ffn_time: plans prepared, a warm-up, then CUDA
// graph replays of back-to-back FFNs, best replay) of whole expert FFNs
// (activation rounding/quantization, GEMMs, SwiGLU, and on the weight-only
// path the weight dequantization). Each FP4 format says which path it ran.
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "gpu_timer.h"

extern "C" int mplb_calibrate_gpu(const mplb_calib_opts *o, FILE *out, mplb_err *err) {
    int d = o && o->hidden ? o->hidden : 4096, f = o && o->ffn ? o->ffn : 1536;
    int nmax = o && o->max_tokens ? o->max_tokens : 8192;
    double min_s = o && o->min_seconds > 0 ? o->min_seconds : 0.05;
    const char *name = o && o->name ? o->name : "gpu";
    mplb_cuda *c;
    int rc = mplb_cuda_open(0, &c, err);
    if (rc < 0) return rc;
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(c);
    static const mplb_prec precs[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4, MPLB_PREC_MXFP4};
    enum { NP = 4, NG = 16 };
    int grid[NG], ng = 0, path[NP] = {0}, graphed_all = 1;
    for (int n = 1; n <= nmax && ng < NG; n *= 2) grid[ng++] = n;
    double tf[NP][NG], best[NP] = {0, 0, 0, 0};
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
            double us;
            int n = grid[i], graphed;
            // enough forwards per graph to fill ~min_s / 4 at the rate seen so far
            int reps = i == 0 ? 4 : (int)fmin(200.0, fmax(4.0, min_s * 0.25e6 / (6.0 * n * d * f / (tf[p][i - 1] * 1e6))));
            rc = mplb_cuda_ffn_time(c, &dw, x, n, y, reps, 3, &us, &graphed, err);
            graphed_all &= graphed;
            tf[p][i] = rc == 0 && us > 0 ? 6.0 * n * d * f / (us * 1e-6) / 1e12 : 0;
            if (tf[p][i] > best[p]) best[p] = tf[p][i];
        }
        path[p] = dw.path;   // after prepare: an FP4 format without tensor-core algorithms fell back
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
        double us;
        int graphed, t = (int)cudaMemsetAsync(a, 0, bytes, s);
        if (t == 0) t = mplb_gpu_time(s, 4, 3, [&] { return (int)cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s); },
                                      &us, &graphed);
        bw = t == 0 ? 2.0 * (double)bytes / (us * 1e-6) / 1e9 : 0;
        int64_t n = (int64_t)(bytes / sizeof(float));
        if (t == 0)
            t = mplb_gpu_time(s, 4, 3, [&] { return mplb_cuda_fp8_quantize_scaled((const float *)a, n, (uint8_t *)b, scale, scratch, s); },
                              &us, &graphed);
        conv = t == 0 ? (double)n * 5 / (us * 1e-6) / 1e9 : 0;
        if (t) rc = mplb_err_set(err, MPLB_EIO, "calibrate: timing the copy and the fp8 conversion: %s",
                                 cudaGetErrorString((cudaError_t)(t < 0 ? cudaErrorUnknown : t)));
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
    fprintf(out, "-- Measured: expert SwiGLU FFNs through cuBLASLt (d=%d, f=%d; n = 1..%d tokens), device time\n", d, f, nmax);
    fprintf(out, "-- only (GEMM plans prepared first, a warm-up, then %s, best replay).\n",
            graphed_all ? "CUDA graph replays of back-to-back FFNs" : "back-to-back launches (graph capture refused)");
    fprintf(out, "-- Per format, what ran:\n");
    for (int p = 0; p < NP; p++)
        fprintf(out, "--   %-8s %s: best %.2f TFLOP/s%s\n", mplb_prec_name(precs[p]), mplb_cuda_path_name(path[p], precs[p]),
                best[p], path[p] == MPLB_CUDA_PATH_WEIGHT_ONLY ? " (weight-only: not FP4 speed; not written as an FP4 peak)" : "");
    int tc[NP];
    for (int p = 0; p < NP; p++) tc[p] = path[p] != MPLB_CUDA_PATH_WEIGHT_ONLY && best[p] > 0;
    fprintf(out, "-- A weight-only FP4 format computes as bf16 here (what the device ran); fp4_e2m1 computes as\n");
    fprintf(out, "-- nvfp4, mxfp8 and fp8_e5m2 as fp8_e4m3, fp16 and int4 as bf16 (assumed, not measured).\n");
    fprintf(out, "-- HBM: a device-to-device copy (read + write); conv_eff: the fp8 conversion kernel over that bandwidth.\n");
    fprintf(out, "-- Not measured: nvlink_gbps, net_gbps and latencies are the h100 datasheet's; edit them.\n");
    fprintf(out, "return {\n  name = \"%s\",\n", name);
    fprintf(out, "  peak_tflops = { bf16 = %.3f, fp8_e4m3 = %.3f", best[0], best[1]);
    for (int p = 2; p < NP; p++)
        if (tc[p]) fprintf(out, ", %s = %.3f", mplb_prec_name(precs[p]), best[p]);
    fprintf(out, " },\n");
    fprintf(out, "  compute_as = { fp16 = \"bf16\", fp8_e5m2 = \"fp8_e4m3\", mxfp8 = \"fp8_e4m3\", int8 = \"fp8_e4m3\",\n");
    fprintf(out, "    fp4_e2m1 = \"%s\", int4_g32 = \"bf16\", int4_g128 = \"bf16\"", tc[2] ? "nvfp4" : "bf16");
    for (int p = 2; p < NP; p++)
        if (!tc[p]) fprintf(out, ", %s = \"bf16\"", mplb_prec_name(precs[p]));
    fprintf(out, " },\n");
    double ce = bw > 0 ? conv / bw : 0.01;
    if (!(ce > 0)) ce = 0.01;
    if (ce > 1) ce = 1;
    fprintf(out, "  hbm_gbps = %.1f,\n  nvlink_gbps = 450,\n  net_gbps = 50,\n", bw);
    fprintf(out, "  nvlink_lat_us = 8,\n  net_lat_us = 15,\n  launch_us = 5,\n  conv_eff = %.4f,\n", ce);
    fprintf(out, "  memory_gb = %.1f,\n", (double)mem_total / 1e9);
    mplb_calib_unmeasured(out);   /* link efficiencies, host link, mma_eff: with their provenance */
    fprintf(out, "  eff = {\n");
    for (int p = 0; p < NP; p++) {
        if (p >= 2 && !tc[p]) continue;   // a weight-only FP4 format computes as bf16: no curve of its own
        fprintf(out, "    %s = {", p == 0 ? "default" : mplb_prec_name(precs[p]));
        for (int i = 0; i < ng; i++) {
            double e = best[p] > 0 ? tf[p][i] / best[p] : 1e-4;
            fprintf(out, " {%d, %.4f},", grid[i], e < 1e-4 ? 1e-4 : e);
        }
        fprintf(out, " },\n");
    }
    fprintf(out, "  },\n  -- raw TFLOP/s per n:");
    for (int p = 0; p < NP; p++) {
        fprintf(out, "\n  --   %s (%s):", mplb_prec_name(precs[p]), path[p] == MPLB_CUDA_PATH_WEIGHT_ONLY ? "weight-only" : "tensor cores");
        for (int i = 0; i < ng; i++) fprintf(out, " %d:%.2f", grid[i], tf[p][i]);
    }
    fprintf(out, "\n}\n");
    return ferror(out) ? mplb_err_set(err, MPLB_EIO, "calibrate: write error") : 0;
}
