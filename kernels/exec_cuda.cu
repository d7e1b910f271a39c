// Execute mode on a CUDA device (backend "cuda"): see mplb_exec_device in
// include/mplb/execute.h. Expert weights are uploaded once per layer and
// kept by their host address; activations go up, outputs come back (for the
// error against bf16), and only the FFN itself is timed, with CUDA events.
// Online conversion is timed as the device quantizer kernels of its format.
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"

namespace {

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
    size_t cap_x, cap_y, cap_w;
    cudaEvent_t a, b;
};

int grow(void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
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

const mplb_cuda_expert *upload(runner *r, const mplb_expert_w *w, mplb_err *err) {
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
    const mplb_cuda_expert *dw = upload(r, w, err);
    if (!dw) return err->code;
    size_t bytes = (size_t)n * w->d * sizeof(float);
    if (grow((void **)&r->x, &r->cap_x, bytes) < 0 || grow((void **)&r->y, &r->cap_y, bytes) < 0)
        return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: device out of memory");
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(r->c);
    cudaError_t ce = cudaMemcpyAsync(r->x, x, bytes, cudaMemcpyHostToDevice, s);
    if (ce != cudaSuccess) return fail(err, ce, "copying activations");
    cudaEventRecord(r->a, s);
    int rc = mplb_cuda_ffn_forward(r->c, dw, r->x, n, r->y, err);
    cudaEventRecord(r->b, s);
    if (rc < 0) return rc;
    if ((ce = cudaMemcpyAsync(y, r->y, bytes, cudaMemcpyDeviceToHost, s)) != cudaSuccess) return fail(err, ce, "copying outputs");
    if ((ce = cudaStreamSynchronize(s)) != cudaSuccess) return fail(err, ce, "expert FFN");
    float ms = 0;
    cudaEventElapsedTime(&ms, r->a, r->b);
    *us = ms * 1e3;
    return 0;
}

int convert(void *ctx, const float *gate, const float *up, const float *down, int d, int f, mplb_prec p, double *us,
            mplb_err *err) {
    runner *r = (runner *)ctx;
    *us = 0;
    if (p != MPLB_PREC_FP8_E4M3 && p != MPLB_PREC_NVFP4)
        return mplb_err_set(err, MPLB_EUNSUPP, "backend cuda: no device conversion kernel for %s: store it (mode = "
                            "\"stored\") or run online conversion with fp8_e4m3 or nvfp4", mplb_prec_name(p));
    size_t nw = (size_t)d * f;
    if (grow((void **)&r->w, &r->cap_w, 3 * nw * sizeof(float)) < 0)
        return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: device out of memory");
    if (!r->q && (cudaMalloc((void **)&r->q, 3 * nw) != cudaSuccess || cudaMalloc((void **)&r->scales, 3 * nw / 16 + 16) != cudaSuccess))
        return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: device out of memory");
    cudaStream_t s = (cudaStream_t)mplb_cuda_stream(r->c);
    const float *m[3] = {gate, up, down};
    for (int i = 0; i < 3; i++) cudaMemcpyAsync(r->w + i * nw, m[i], nw * sizeof(float), cudaMemcpyHostToDevice, s);
    cudaEventRecord(r->a, s);
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        int64_t rows = i < 2 ? f : d, cols = i < 2 ? d : f;
        rc = p == MPLB_PREC_FP8_E4M3
                 ? mplb_cuda_fp8_quantize_scaled(r->w + i * nw, (int64_t)nw, r->q + i * nw, r->scale, r->amax, s)
                 : mplb_cuda_nvfp4_quantize(r->w + i * nw, rows, cols, r->q + i * nw / 2, r->scales + i * nw / 16, r->scale,
                                            r->amax, s);
    }
    cudaEventRecord(r->b, s);
    cudaError_t ce = cudaStreamSynchronize(s);
    if (rc) return fail(err, (cudaError_t)rc, "conversion kernel");
    if (ce != cudaSuccess) return fail(err, ce, "conversion");
    float ms = 0;
    cudaEventElapsedTime(&ms, r->a, r->b);
    *us = ms * 1e3;
    return 0;
}

void forget(void *ctx) {
    runner *r = (runner *)ctx;
    for (int i = 0; i < r->n; i++) mplb_cuda_expert_free(&r->cache[i].dev);
    r->n = 0;
}

}  // namespace

extern "C" int mplb_cuda_exec_device(mplb_cuda *c, mplb_exec_device *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    runner *r = (runner *)calloc(1, sizeof *r);
    if (!r) return mplb_err_set(err, MPLB_ENOMEM, "backend cuda: out of memory");
    r->c = c;
    if (cudaEventCreate(&r->a) != cudaSuccess || cudaEventCreate(&r->b) != cudaSuccess ||
        cudaMalloc((void **)&r->scale, sizeof(float)) != cudaSuccess || cudaMalloc((void **)&r->amax, sizeof(unsigned)) != cudaSuccess) {
        free(r);
        return mplb_err_set(err, MPLB_EIO, "backend cuda: cannot set up the device");
    }
    out->ctx = r;
    out->forward = forward;
    out->convert = convert;
    out->forget = forget;
    mplb_cuda_describe(c, out->name, sizeof out->name);
    return 0;
}

extern "C" void mplb_cuda_exec_device_free(mplb_exec_device *dev) {
    runner *r = (runner *)dev->ctx;
    if (!r) return;
    forget(r);
    free(r->cache);
    cudaFree(r->x); cudaFree(r->y); cudaFree(r->w); cudaFree(r->scale); cudaFree(r->q); cudaFree(r->scales);
    cudaFree(r->amax);
    cudaEventDestroy(r->a);
    cudaEventDestroy(r->b);
    free(r);
    dev->ctx = NULL;
}
