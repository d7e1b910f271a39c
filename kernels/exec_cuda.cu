// Execute mode on a CUDA device (backend "cuda"): see mplb_exec_device in
// include/mplb/execute.h. Expert weights are uploaded once per layer and
// kept by their host address; activations go up, outputs come back (for the
// error against bf16). Only device work is timed: buffers, uploads and GEMM
// plans are prepared first, then the FFN is timed as CUDA graph replays
// (mplb_cuda_ffn_time). Online conversion is timed the same way, as the
// device quantizer kernels of its format. Every buffer grows with the shape.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "gpu_timer.h"
#include "lt_scales.h"

namespace {

// forwards per graph and timed replays: enough to hide launch gaps between
// runs, few enough that a layer of experts stays quick
enum { REPS = 8, TRIALS = 2 };

struct entry {
    const mplb_expert_w *host;
    mplb_cuda_expert dev;
};

struct runner {
    mplb_cuda *c;
    entry *cache;
    int n, cap;
    float *x, *y, *w, *scale;   // device scratch: activations, outputs, masters, a scale
    uint8_t *q, *scales;
    unsigned int *amax;
    size_t cap_x, cap_y, cap_w, cap_q, cap_s;
};

int grow(cudaStream_t s, void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    if (cudaStreamSynchronize(s) != cudaSuccess) return -1;
    cudaFree(*p);
    *p = NULL;
    *cap = 0;
    if (cudaMalloc(p, bytes) != cudaSuccess) return -1;
    *cap = bytes;
    return 0;
}

int fail(mplb_err *err, cudaError_t e, const char *what) {
    return mplb_err_set(err, MPLB_EIO, "backend cuda: %s: %s", what, cudaGetErrorString(e));
}

mplb_cuda_expert *upload(runner *r, const mplb_expert_w *w, mplb_err *err) {
    for (int i = 0; i < r->n; i++)
        if (r->cache[i].host == w) return &r->cache[i].dev;
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        entry *c = (entry *)realloc(r->cache, (size_t)cap * sizeof *c);
        if (!c) { mplb_err_set(err, MPLB_ENOMEM, "backend cuda: out of memory"); return NULL; }
        r->cache = c;
        r->cap = cap;
    }
    entry *e = &r->cache[r->n];
    if (mplb_cuda_expert_upload(r->c, w, &e->dev, err) < 0) return NULL;
    e->host = w;
    r->n++;
    return &e->dev;
}

int forward(void *ctx, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    (void)e;
    runner *r = (runner *)ctx;
    *us = 0;
    if (n <= 0) return 0;
    mplb_cuda_expert *dw = upload(r, w, err);
    if (!dw) return err->code;
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(r->c);
    size_t bytes = (size_t)n * w->d * sizeof(float);
    if (grow(s, (void **)&r->x, &r->cap_x, bytes) < 0 || grow(s, (void **)&r->y, &r->cap_y, bytes) < 0)
        return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: device out of memory");
    cudaError_t ce = cudaMemcpyAsync(r->x, x, bytes, cudaMemcpyHostToDevice, s);
    if (ce != cudaSuccess) return fail(err, ce, "copying activations");
    int graphed, rc = mplb_cuda_ffn_time(r->c, dw, r->x, n, r->y, REPS, TRIALS, us, &graphed, err);
    if (rc < 0) return rc;
    if ((ce = cudaMemcpyAsync(y, r->y, bytes, cudaMemcpyDeviceToHost, s)) != cudaSuccess) return fail(err, ce, "copying outputs");
    if ((ce = cudaStreamSynchronize(s)) != cudaSuccess) return fail(err, ce, "expert FFN");
    return 0;
}

int convert(void *ctx, const float *gate, const float *up, const float *down, int d, int f, mplb_prec p, double *us,
            mplb_err *err) {
    runner *r = (runner *)ctx;
    *us = 0;
    if (p != MPLB_PREC_FP8_E4M3 && p != MPLB_PREC_NVFP4 && p != MPLB_PREC_MXFP4)
        return mplb_err_set(err, MPLB_EUNSUPP, "backend cuda: no device conversion kernel for %s: store it (mode = "
                            "\"stored\") or run online conversion with fp8_e4m3, nvfp4 or mxfp4", mplb_prec_name(p));
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(r->c);
    size_t nw = (size_t)d * f;
    // per matrix (gate, up: f x d; down: d x f) its own data and scale extents, short blocks included
    int64_t rows[3] = {f, f, d}, cols[3] = {d, d, f};
    size_t qoff[4] = {0}, soff[4] = {0};
    int bs = p == MPLB_PREC_NVFP4 ? 16 : 32;
    for (int i = 0; i < 3; i++) {
        int64_t nb = (cols[i] + bs - 1) / bs;
        qoff[i + 1] = qoff[i] + (p == MPLB_PREC_FP8_E4M3 ? (size_t)(rows[i] * cols[i]) : (size_t)(rows[i] * ((nb * bs + 1) / 2)));
        soff[i + 1] = soff[i] + (p == MPLB_PREC_FP8_E4M3 ? 0 : (size_t)(rows[i] * nb));
    }
    if (grow(s, (void **)&r->w, &r->cap_w, 3 * nw * sizeof(float)) < 0 || grow(s, (void **)&r->q, &r->cap_q, qoff[3] + 1) < 0 ||
        grow(s, (void **)&r->scales, &r->cap_s, soff[3] + 1) < 0)
        return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: device out of memory");
    const float *m[3] = {gate, up, down};
    for (int i = 0; i < 3; i++) {
        cudaError_t ce = cudaMemcpyAsync(r->w + i * nw, m[i], nw * sizeof(float), cudaMemcpyHostToDevice, s);
        if (ce != cudaSuccess) return fail(err, ce, "copying master weights");
    }
    int kerr = 0, graphed;
    auto run = [&]() {
        for (int i = 0; i < 3 && kerr == 0; i++)
            kerr = p == MPLB_PREC_FP8_E4M3
                       ? mplb_cuda_fp8_quantize_scaled(r->w + i * nw, (int64_t)nw, r->q + qoff[i], r->scale, r->amax, s)
                       : mplb_cuda_fp4_quantize(r->w + i * nw, rows[i], cols[i], p, 0, 0, r->q + qoff[i], r->scales + soff[i],
                                                r->scale, r->amax, s);
        return kerr;
    };
    int t = mplb_gpu_time(s, REPS, TRIALS, run, us, &graphed);
    if (t < 0) return fail(err, (cudaError_t)kerr, "conversion kernel");
    return t ? fail(err, (cudaError_t)t, "timing the conversion") : 0;
}

void forget(void *ctx) {
    runner *r = (runner *)ctx;
    cudaStreamSynchronize((cudaStream_t)mplb_cuda_stream(r->c));   // nothing queued may still read them
    for (int i = 0; i < r->n; i++) mplb_cuda_expert_free(&r->cache[i].dev);
    r->n = 0;
}

}  // namespace

extern "C" int mplb_cuda_exec_device(mplb_cuda *c, mplb_exec_device *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    runner *r = (runner *)calloc(1, sizeof *r);
    if (!r) return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: out of memory");
    r->c = c;
    cudaError_t e = cudaMalloc((void **)&r->scale, sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc((void **)&r->amax, sizeof(unsigned));
    if (e != cudaSuccess) {
        cudaFree(r->scale);
        free(r);
        return fail(err, e, "setting up the device");
    }
    out->ctx = r;
    out->forward = forward;
    out->convert = convert;
    out->forget = forget;
    // the name travels into the run file's times_source: it says how FP4 ran
    int tc = mplb_cuda_fp4_tensor_cores(c, MPLB_PREC_NVFP4) && mplb_cuda_fp4_tensor_cores(c, MPLB_PREC_MXFP4);
    const char *fp4 = tc ? "; FP4 on tensor cores (W4A4)" : "; FP4 weight-only (dequantize + BF16 GEMM)";
    size_t room = sizeof out->name - strlen(fp4);   // the label is never the part cut off
    mplb_cuda_describe(c, out->name, room);
    memcpy(out->name + strlen(out->name), fp4, strlen(fp4) + 1);
    return 0;
}

extern "C" void mplb_cuda_exec_device_free(mplb_exec_device *dev) {
    runner *r = (runner *)dev->ctx;
    if (!r) return;
    forget(r);
    free(r->cache);
    cudaFree(r->x); cudaFree(r->y); cudaFree(r->w); cudaFree(r->scale); cudaFree(r->q); cudaFree(r->scales);
    cudaFree(r->amax);
    free(r);
    dev->ctx = NULL;
}
