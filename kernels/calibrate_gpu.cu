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
    static_assert(NP == MPLB_CALIB_FORMATS && NG <= MPLB_CALIB_GRID, "mplb_calib_gpu holds the grid");
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
    // the profile is written on the host (core/exec/calibrate.c): every value with its provenance
    mplb_calib_gpu cg;
    memset(&cg, 0, sizeof cg);
    cg.name = name;
    cg.device = dev;
    cg.d = d;
    cg.f = f;
    cg.nmax = nmax;
    cg.graphed = graphed_all;
    for (int p = 0; p < NP; p++) {
        cg.prec[p] = precs[p];
        cg.path_name[p] = mplb_cuda_path_name(path[p], precs[p]);
        cg.weight_only[p] = path[p] == MPLB_CUDA_PATH_WEIGHT_ONLY;
        cg.best[p] = best[p];
        for (int i = 0; i < ng; i++) cg.tf[p][i] = tf[p][i];
    }
    for (int i = 0; i < ng; i++) cg.grid[i] = grid[i];
    cg.ng = ng;
    cg.hbm_gbps = bw;
    cg.conv_gbps = conv;
    cg.memory_gb = (double)mem_total / 1e9;
    return mplb_calib_write_gpu(&cg, out, err);
}
