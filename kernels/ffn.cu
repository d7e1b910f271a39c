// The expert FFN on the device: see include/mplb/cuda.h. Every GEMM is
// out[n x rows] = act[n x k] . W[rows x k]^T with row-major W and act, which
// in cuBLAS's column-major terms is C[rows x n] = op(A) . B with A = W
// transposed and B as stored: the "TN" layout FP8 GEMMs require, used for
// every type so that the paths differ only in their data types.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"

namespace {

struct algo_entry {
    cudaDataType t;
    int rows, n, k, valid;
    cublasLtMatmulAlgo_t algo;
};

}  // namespace

struct mplb_cuda {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *ws;                 // cuBLASLt workspace
    size_t ws_bytes;
    // scratch of mplb_cuda_ffn_forward, grown on demand
    void *act;                // bf16 or e4m3 activations [n x max(d, f)]
    float *g, *u;             // [n x f]
    uint16_t *wtile;          // bf16 weights of the weight-only path [f x d]
    float *act_scale;         // the activations' fp8 scale
    unsigned int *amax;
    size_t cap_act, cap_g, cap_u, cap_w;
    algo_entry cache[16];     // heuristic results by (type, shape)
    int next;
};

static int cuda_err(mplb_err *err, cudaError_t e, const char *what) {
    return mplb_err_set(err, MPLB_EIO, "cuda: %s: %s", what, cudaGetErrorString(e));
}

static int lt_err(mplb_err *err, cublasStatus_t st, const char *what) {
    return mplb_err_set(err, st == CUBLAS_STATUS_NOT_SUPPORTED ? MPLB_EUNSUPP : MPLB_EIO, "cuBLASLt: %s: status %d", what,
                        (int)st);
}

extern "C" int mplb_cuda_open(int device, mplb_cuda **out, mplb_err *err) {
    *out = NULL;
    int n = 0, rc = mplb_cuda_devices(&n, err);
    if (rc < 0) return rc;
    if (device < 0 || device >= n) return mplb_err_set(err, MPLB_EINVAL, "cuda: device %d of %d", device, n);
    mplb_cuda *c = (mplb_cuda *)calloc(1, sizeof *c);
    if (!c) return mplb_err_set(err, MPLB_ENOMEM, "cuda: out of memory");
    c->device = device;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&c->prop, device);
    if (e == cudaSuccess) e = cudaStreamCreate(&c->stream);
    c->ws_bytes = 32u << 20;
    if (e == cudaSuccess) e = cudaMalloc(&c->ws, c->ws_bytes);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->act_scale, sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->amax, sizeof(unsigned int));
    if (e != cudaSuccess) {
        mplb_cuda_close(c);
        return cuda_err(err, e, "opening the device");
    }
    cublasStatus_t st = cublasLtCreate(&c->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        mplb_cuda_close(c);
        return lt_err(err, st, "cublasLtCreate");
    }
    *out = c;
    return 0;
}

extern "C" void mplb_cuda_close(mplb_cuda *c) {
    if (!c) return;
    if (c->lt) cublasLtDestroy(c->lt);
    cudaFree(c->ws); cudaFree(c->act); cudaFree(c->g); cudaFree(c->u); cudaFree(c->wtile);
    cudaFree(c->act_scale); cudaFree(c->amax);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" int mplb_cuda_sync(mplb_cuda *c, mplb_err *err) {
    cudaError_t e = cudaStreamSynchronize(c->stream);
    return e == cudaSuccess ? 0 : cuda_err(err, e, "stream");
}

extern "C" void mplb_cuda_describe(const mplb_cuda *c, char *buf, size_t n) {
    snprintf(buf, n, "%s (sm_%d%d, %.0f GB)", c->prop.name, c->prop.major, c->prop.minor,
             (double)c->prop.totalGlobalMem / 1e9);
}

extern "C" void *mplb_cuda_stream(const mplb_cuda *c) { return (void *)c->stream; }

static int grow(void **p, size_t *cap, size_t bytes, mplb_err *err) {
    if (bytes <= *cap) return 0;
    cudaFree(*p);
    *p = NULL;
    *cap = 0;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) return cuda_err(err, e, "scratch");
    *cap = bytes;
    return 0;
}

// out[n x rows] (f32) = act[n x k] . W[rows x k]^T; a_scale/b_scale: device
// scales of W and act (fp8), or NULL.
static int gemm(mplb_cuda *c, cudaDataType t, const void *W, const void *act, int rows, int n, int k, float *out,
                const float *w_scale, const float *act_scale, mplb_err *err) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    float alpha = 1.0f, beta = 0.0f;
    int rc = 0;
    cublasStatus_t st = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (st == CUBLAS_STATUS_SUCCESS && w_scale)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof w_scale);
    if (st == CUBLAS_STATUS_SUCCESS && act_scale)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &act_scale, sizeof act_scale);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&la, t, k, rows, k);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&lb, t, k, n, k);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, rows, n, rows);
    if (st != CUBLAS_STATUS_SUCCESS) { rc = lt_err(err, st, "descriptors"); goto out; }
    {
        algo_entry *hit = NULL;
        for (int i = 0; i < 16; i++) {
            algo_entry *a = &c->cache[i];
            if (a->valid && a->t == t && a->rows == rows && a->n == n && a->k == k) hit = a;
        }
        if (!hit) {
            cublasLtMatmulHeuristicResult_t h;
            int found = 0;
            st = cublasLtMatmulPreferenceCreate(&pref);
            if (st == CUBLAS_STATUS_SUCCESS)
                st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &c->ws_bytes,
                                                          sizeof c->ws_bytes);
            if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, lc, lc, pref, 1, &h, &found);
            if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
                rc = mplb_err_set(err, MPLB_EUNSUPP, "cuBLASLt: no algorithm for a %s GEMM of %d x %d x %d on this device",
                                  t == CUDA_R_8F_E4M3 ? "fp8_e4m3" : "bf16", rows, n, k);
                goto out;
            }
            hit = &c->cache[c->next];
            c->next = (c->next + 1) % 16;
            *hit = algo_entry{t, rows, n, k, 1, h.algo};
        }
        st = cublasLtMatmul(c->lt, op, &alpha, W, la, act, lb, &beta, out, lc, out, lc, &hit->algo, c->ws, c->ws_bytes,
                            c->stream);
        if (st != CUBLAS_STATUS_SUCCESS) rc = lt_err(err, st, "cublasLtMatmul");
    }
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

static int upload(const mplb_qtensor *q, mplb_cuda_mat *m, mplb_err *err) {
    memset(m, 0, sizeof *m);
    m->fmt = q->fmt;
    m->nvfp4_2d = q->opts.nvfp4_2d;
    m->rows = q->rows;
    m->cols = q->cols;
    m->gs = q->global_scale;
    cudaError_t e = cudaMalloc((void **)&m->data, q->data_bytes + 1);
    if (e == cudaSuccess) e = cudaMemcpy(m->data, q->data, q->data_bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && q->scale_bytes) e = cudaMalloc((void **)&m->scales, q->scale_bytes);
    if (e == cudaSuccess && q->scale_bytes) e = cudaMemcpy(m->scales, q->scales, q->scale_bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMalloc((void **)&m->d_gs, sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpy(m->d_gs, &m->gs, sizeof(float), cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : cuda_err(err, e, "uploading weights");
}

extern "C" int mplb_cuda_expert_upload(mplb_cuda *c, const mplb_expert_w *host, mplb_cuda_expert *dev, mplb_err *err) {
    memset(dev, 0, sizeof *dev);
    mplb_prec p = host->prec;
    if (p != MPLB_PREC_BF16 && p != MPLB_PREC_FP8_E4M3 && p != MPLB_PREC_NVFP4 && p != MPLB_PREC_MXFP4)
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: no device FFN for %s weights (bf16, fp8_e4m3, nvfp4, mxfp4)",
                            mplb_prec_name(p));
    if (p == MPLB_PREC_FP8_E4M3 && (host->d % 16 || host->f % 16))
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: fp8 GEMMs need d and f divisible by 16 (%d, %d)", host->d, host->f);
    cudaSetDevice(c->device);
    dev->d = host->d;
    dev->f = host->f;
    dev->prec = p;
    const mplb_qtensor *q[3] = {&host->gate, &host->up, &host->down};
    for (int i = 0; i < 3; i++)
        if (upload(q[i], &dev->w[i], err) < 0) {
            mplb_cuda_expert_free(dev);
            return err->code;
        }
    return 0;
}

extern "C" void mplb_cuda_expert_free(mplb_cuda_expert *dev) {
    for (int i = 0; i < 3; i++) {
        cudaFree(dev->w[i].data);
        cudaFree(dev->w[i].scales);
        cudaFree(dev->w[i].d_gs);
    }
    memset(dev, 0, sizeof *dev);
}

// One projection: out[n x rows] = act . W^T, act already in the GEMM's type.
static int project(mplb_cuda *c, const mplb_cuda_mat *W, const void *act, int n, float *out, mplb_err *err) {
    int rows = (int)W->rows, k = (int)W->cols;
    if (W->fmt == MPLB_PREC_FP8_E4M3)
        return gemm(c, CUDA_R_8F_E4M3, W->data, act, rows, n, k, out, W->d_gs, c->act_scale, err);
    const void *wb = W->data;
    if (W->fmt != MPLB_PREC_BF16) {   // weight-only: dequantize to bf16 first
        int rc = mplb_cuda_dequant_bf16(W, c->wtile, c->stream);
        if (rc) return cuda_err(err, (cudaError_t)rc, "dequantizing weights");
        wb = c->wtile;
    }
    return gemm(c, CUDA_R_16BF, wb, act, rows, n, k, out, NULL, NULL, err);
}

// The activations in the GEMM's type: e4m3 with a per-tensor scale, or bf16.
static int round_acts(mplb_cuda *c, mplb_prec p, const float *x, int64_t n, mplb_err *err) {
    int rc = p == MPLB_PREC_FP8_E4M3 ? mplb_cuda_fp8_quantize_scaled(x, n, (uint8_t *)c->act, c->act_scale, c->amax, c->stream)
                                     : mplb_cuda_to_bf16(x, (uint16_t *)c->act, n, c->stream);
    return rc ? cuda_err(err, (cudaError_t)rc, "rounding activations") : 0;
}

extern "C" int mplb_cuda_ffn_forward(mplb_cuda *c, const mplb_cuda_expert *w, const float *x, int n, float *y,
                                     mplb_err *err) {
    if (n < 0) return mplb_err_set(err, MPLB_EINVAL, "cuda ffn: n = %d tokens", n);
    if (n == 0) return 0;
    size_t d = (size_t)w->d, f = (size_t)w->f, big = d > f ? d : f;
    int rc = grow(&c->act, &c->cap_act, (size_t)n * big * 2, err);
    if (rc == 0) rc = grow((void **)&c->g, &c->cap_g, (size_t)n * f * sizeof(float), err);
    if (rc == 0) rc = grow((void **)&c->u, &c->cap_u, (size_t)n * f * sizeof(float), err);
    if (rc == 0 && w->prec != MPLB_PREC_BF16 && w->prec != MPLB_PREC_FP8_E4M3)
        rc = grow((void **)&c->wtile, &c->cap_w, d * f * 2, err);
    if (rc < 0) return rc;
    if ((rc = round_acts(c, w->prec, x, (int64_t)n * d, err)) < 0) return rc;
    if ((rc = project(c, &w->w[0], c->act, n, c->g, err)) < 0) return rc;
    if ((rc = project(c, &w->w[1], c->act, n, c->u, err)) < 0) return rc;
    int e = mplb_cuda_swiglu(c->g, c->u, (int64_t)n * f, c->stream);
    if (e) return cuda_err(err, (cudaError_t)e, "swiglu");
    if ((rc = round_acts(c, w->prec, c->g, (int64_t)n * f, err)) < 0) return rc;
    return project(c, &w->w[2], c->act, n, y, err);
}
