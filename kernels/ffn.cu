// The expert FFN on the device: see include/mplb/cuda.h. Every GEMM is
// out[n x rows] = act[n x k] . W[rows x k]^T with row-major W and act, which
// in cuBLAS's column-major terms is D[rows x n] = op(A) . B with A = W
// transposed and B as stored: the "TN" layout FP8 and FP4 GEMMs require,
// used for every type so that the paths differ only in their data types.
//
// GEMM plans (operation descriptor, A layout) are cached by (kind, rows, k);
// under each, the B/D layouts and the heuristic's algorithm by n. They are
// built by mplb_cuda_ffn_prepare, so timed runs enqueue work and nothing else.
//
// FP4 on Blackwell: block-scaled cuBLASLt GEMMs (CUDA_R_4F_E2M1 operands,
// CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3 scales for NVFP4, VEC32_UE8M0 for
// MXFP4, both in the tiled layout of lt_scales.h), weights and activations
// in FP4 (W4A4: the activations quantized on the device, NVFP4 per-tensor
// scale + 1x16 blocks, MXFP4 1x32 blocks with the round-up scale rule), the
// two tensor scales folded into alpha (device pointer). Where the heuristic
// has no algorithm (Hopper, older cuBLAS), the expert falls back to the
// weight-only path: dequantize to bf16, BF16 GEMMs.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "gpu_timer.h"
#include "lt_scales.h"

// cuBLASLt's block-scaled FP4 GEMMs arrived with CUDA 12.8 (cuBLAS 12.8)
#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120800
#define MPLB_LT_FP4 1
#else
#define MPLB_LT_FP4 0
#endif

namespace {

enum gemm_kind { GK_BF16, GK_FP8, GK_NVFP4, GK_MXFP4 };

const char *kind_name(int k) {
    static const char *names[] = {"bf16", "fp8_e4m3", "nvfp4 (W4A4)", "mxfp4 (W4A4)"};
    return names[k];
}

struct gemm_n {   // the B and D layouts and the algorithm of one token count
    int n, found;
    int out_bf16;    // D in bf16 (then widened to f32): where cuBLASLt has no f32-output FP4 algorithm
    cublasLtMatrixLayout_t lb, lc;
    cublasLtMatmulAlgo_t algo;
};

struct gemm_plan {   // one (kind, rows, k)
    int kind, rows, k;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la;
    gemm_n *ns;
    int nn, cap;
};

}  // namespace

struct mplb_cuda {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *ws;                 // cuBLASLt workspace
    size_t ws_bytes;
    // scratch of mplb_cuda_ffn_forward, grown by mplb_cuda_ffn_prepare
    void *act;                // activations in the GEMM's type [n x max(d, f)]
    uint8_t *act_sc;          // their FP4 block scales, tiled
    float *g, *u;             // [n x f]
    uint16_t *wtile;          // bf16 weights of the weight-only path [f x d]
    uint16_t *obuf;           // bf16 GEMM outputs where an FP4 GEMM writes bf16 [n x max(d, f)]
    size_t cap_act, cap_sc, cap_g, cap_u, cap_w, cap_o;
    float *act_scale;         // the activations' fp8 or nvfp4 tensor scale
    float *alpha;             // [3] device alphas of the FP4 GEMMs (tensor scales folded in), then 0 (beta)
    unsigned int *amax;
    gemm_plan *plans;
    int nplans, cap_plans;
};

static int cuda_err(mplb_err *err, cudaError_t e, const char *what) {
    return mplb_err_set(err, MPLB_EIO, "cuda: %s: %s", what, cudaGetErrorString(e));
}

static int lt_err(mplb_err *err, cublasStatus_t st, const char *what) {
    return mplb_err_set(err, st == CUBLAS_STATUS_NOT_SUPPORTED ? MPLB_EUNSUPP : MPLB_EIO, "cuBLASLt: %s: %s", what,
                        cublasLtGetStatusString(st));
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
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->alpha, 4 * sizeof(float));
    if (e == cudaSuccess) e = cudaMemset(c->alpha, 0, 4 * sizeof(float));
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

static void plan_free(gemm_plan *p) {
    for (int i = 0; i < p->nn; i++) {
        if (p->ns[i].lb) cublasLtMatrixLayoutDestroy(p->ns[i].lb);
        if (p->ns[i].lc) cublasLtMatrixLayoutDestroy(p->ns[i].lc);
    }
    free(p->ns);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
}

extern "C" void mplb_cuda_close(mplb_cuda *c) {
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    for (int i = 0; i < c->nplans; i++) plan_free(&c->plans[i]);
    free(c->plans);
    if (c->lt) cublasLtDestroy(c->lt);
    cudaFree(c->ws); cudaFree(c->act); cudaFree(c->act_sc); cudaFree(c->g); cudaFree(c->u); cudaFree(c->wtile); cudaFree(c->obuf);
    cudaFree(c->act_scale); cudaFree(c->alpha); cudaFree(c->amax);
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

static int grow(mplb_cuda *c, void **p, size_t *cap, size_t bytes, mplb_err *err) {
    if (bytes <= *cap) return 0;
    cudaError_t e = cudaStreamSynchronize(c->stream);   // nothing queued may still use the old buffer
    if (e == cudaSuccess) e = cudaFree(*p);
    *p = NULL;
    *cap = 0;
    if (e == cudaSuccess) e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) return cuda_err(err, e, "scratch");
    *cap = bytes;
    return 0;
}

// ---- GEMM plans ---------------------------------------------------------

static cudaDataType kind_type(int kind) {
#if MPLB_LT_FP4
    if (kind == GK_NVFP4 || kind == GK_MXFP4) return CUDA_R_4F_E2M1;
#endif
    return kind == GK_FP8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
}

static int plan_get(mplb_cuda *c, int kind, int rows, int k, gemm_plan **out, mplb_err *err) {
    for (int i = 0; i < c->nplans; i++)
        if (c->plans[i].kind == kind && c->plans[i].rows == rows && c->plans[i].k == k) return *out = &c->plans[i], 0;
    if (c->nplans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 16;
        gemm_plan *p = (gemm_plan *)realloc(c->plans, (size_t)cap * sizeof *p);
        if (!p) return mplb_err_set(err, MPLB_ENOMEM, "cuda: out of memory");
        c->plans = p;
        c->cap_plans = cap;
    }
    gemm_plan *p = &c->plans[c->nplans];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->rows = rows;
    p->k = k;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasStatus_t st = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
#if MPLB_LT_FP4
    if (st == CUBLAS_STATUS_SUCCESS && (kind == GK_NVFP4 || kind == GK_MXFP4)) {
        int32_t mode = kind == GK_NVFP4 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3 : CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
        int32_t pm = CUBLASLT_POINTER_MODE_DEVICE;   // alpha carries the tensor scales, computed on the device
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm);
    }
#endif
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&p->la, kind_type(kind), k, rows, k);
    if (st != CUBLAS_STATUS_SUCCESS) {
        plan_free(p);
        return lt_err(err, st, "GEMM descriptors");
    }
    c->nplans++;
    *out = p;
    return 0;
}

// the layouts and algorithm of p at n tokens; (*out)->found 0: no algorithm
static int plan_n(mplb_cuda *c, gemm_plan *p, int n, gemm_n **out, mplb_err *err) {
    for (int i = 0; i < p->nn; i++)
        if (p->ns[i].n == n) return *out = &p->ns[i], 0;
    if (p->nn == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        gemm_n *ns = (gemm_n *)realloc(p->ns, (size_t)cap * sizeof *ns);
        if (!ns) return mplb_err_set(err, MPLB_ENOMEM, "cuda: out of memory");
        p->ns = ns;
        p->cap = cap;
    }
    gemm_n *g = &p->ns[p->nn];
    memset(g, 0, sizeof *g);
    g->n = n;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    cublasStatus_t st = cublasLtMatrixLayoutCreate(&g->lb, kind_type(p->kind), p->k, n, p->k);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceCreate(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &c->ws_bytes, sizeof c->ws_bytes);
    // f32 output first; the FP4 kinds then try bf16 output (what known users of these GEMMs ask for), widened after
    int fp4 = p->kind == GK_NVFP4 || p->kind == GK_MXFP4;
    for (int bf = 0; bf < 1 + fp4 && st == CUBLAS_STATUS_SUCCESS && !found; bf++) {
        if (g->lc) cublasLtMatrixLayoutDestroy(g->lc);
        g->lc = NULL;
        st = cublasLtMatrixLayoutCreate(&g->lc, bf ? CUDA_R_16BF : CUDA_R_32F, p->rows, n, p->rows);
        // "no algorithm" comes back as NOT_SUPPORTED or as found == 0: both mean this device/library cannot
        cublasStatus_t hs = st == CUBLAS_STATUS_SUCCESS
                                ? cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->la, g->lb, g->lc, g->lc, pref, 1, &h, &found)
                                : st;
        if (hs != CUBLAS_STATUS_SUCCESS && hs != CUBLAS_STATUS_NOT_SUPPORTED) st = hs;
        if (hs != CUBLAS_STATUS_SUCCESS) found = 0;
        g->out_bf16 = bf;
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS) {
        if (g->lb) cublasLtMatrixLayoutDestroy(g->lb);
        if (g->lc) cublasLtMatrixLayoutDestroy(g->lc);
        return lt_err(err, st, "GEMM layouts and heuristic");
    }
    g->found = found > 0;
    if (g->found) g->algo = h.algo;
    p->nn++;
    *out = g;
    return 0;
}

// D[n x rows] (f32) = act[n x k] . W[rows x k]^T with a prepared plan; sa/sb:
// the A (weight) and B (activation) scale pointers (fp8 tensor scales, or
// FP4 block scales), alpha: device alpha of the FP4 kinds.
static int gemm_run(mplb_cuda *c, gemm_plan *p, gemm_n *g, const void *W, const void *act, float *out, const void *sa,
                    const void *sb, const float *alpha, mplb_err *err) {
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (sa) st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa);
    if (st == CUBLAS_STATUS_SUCCESS && sb)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb);
    if (st != CUBLAS_STATUS_SUCCESS) return lt_err(err, st, "scale pointers");
    static const float one = 1.0f, zero = 0.0f;
    int fp4 = p->kind == GK_NVFP4 || p->kind == GK_MXFP4;
    const void *a = fp4 ? (const void *)alpha : (const void *)&one, *b = fp4 ? (const void *)(c->alpha + 3) : (const void *)&zero;
    void *d = g->out_bf16 ? (void *)c->obuf : (void *)out;
    st = cublasLtMatmul(c->lt, p->op, a, W, p->la, act, g->lb, b, d, g->lc, d, g->lc, &g->algo, c->ws, c->ws_bytes, c->stream);
    if (st != CUBLAS_STATUS_SUCCESS) return lt_err(err, st, "cublasLtMatmul");
    int e = g->out_bf16 ? mplb_cuda_bf16_to_f32(c->obuf, out, (int64_t)g->n * p->rows, c->stream) : 0;
    return e ? cuda_err(err, (cudaError_t)e, "widening the GEMM output") : 0;
}

// ---- experts ----------------------------------------------------------------

static int upload(const mplb_qtensor *q, int lt, mplb_cuda_mat *m, mplb_err *err) {
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
    if (e == cudaSuccess && lt) {   // the FP4 tensor-core path's scales, tiled once here on the host
        int bs = q->fmt == MPLB_PREC_NVFP4 ? 16 : 32;
        int64_t nb = (q->cols + bs - 1) / bs, n = mplb_lt_scale_bytes(q->rows, nb);
        uint8_t *h = (uint8_t *)malloc((size_t)n);
        if (!h) return mplb_err_set(err, MPLB_ENOMEM, "cuda: out of memory");
        mplb_lt_scales_from_rows(q->scales, q->rows, nb, q->fmt == MPLB_PREC_NVFP4 && q->opts.nvfp4_2d ? 16 : 1, h);
        e = cudaMalloc((void **)&m->lt_scales, (size_t)n);
        if (e == cudaSuccess) e = cudaMemcpy(m->lt_scales, h, (size_t)n, cudaMemcpyHostToDevice);
        free(h);
    }
    if (e == cudaSuccess) e = cudaMalloc((void **)&m->d_gs, sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpy(m->d_gs, &m->gs, sizeof(float), cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : cuda_err(err, e, "uploading weights");
}

static int fp4_device(const mplb_cuda *c) { return MPLB_LT_FP4 && c->prop.major >= 10; }

extern "C" int mplb_cuda_expert_upload(mplb_cuda *c, const mplb_expert_w *host, mplb_cuda_expert *dev, mplb_err *err) {
    memset(dev, 0, sizeof *dev);
    mplb_prec p = host->prec;
    if (p != MPLB_PREC_BF16 && p != MPLB_PREC_FP8_E4M3 && p != MPLB_PREC_NVFP4 && p != MPLB_PREC_MXFP4)
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: no device FFN for %s weights (bf16, fp8_e4m3, nvfp4, mxfp4)",
                            mplb_prec_name(p));
    if (p == MPLB_PREC_FP8_E4M3 && (host->d % 16 || host->f % 16))
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: fp8 GEMMs need d and f divisible by 16 (%d, %d)", host->d, host->f);
    cudaError_t e = cudaSetDevice(c->device);
    if (e != cudaSuccess) return cuda_err(err, e, "cudaSetDevice");
    dev->d = host->d;
    dev->f = host->f;
    dev->prec = p;
    // FP4 tensor cores want 32-aligned K (16-byte rows of FP4) and a device with them
    int fp4 = p == MPLB_PREC_NVFP4 || p == MPLB_PREC_MXFP4;
    dev->path = !fp4 ? MPLB_CUDA_PATH_NATIVE
              : fp4_device(c) && host->d % 32 == 0 && host->f % 32 == 0 ? MPLB_CUDA_PATH_FP4_TC : MPLB_CUDA_PATH_WEIGHT_ONLY;
    const mplb_qtensor *q[3] = {&host->gate, &host->up, &host->down};
    for (int i = 0; i < 3; i++)
        if (upload(q[i], dev->path == MPLB_CUDA_PATH_FP4_TC, &dev->w[i], err) < 0) {
            mplb_cuda_expert_free(dev);
            return err->code;
        }
    return 0;
}

extern "C" void mplb_cuda_expert_free(mplb_cuda_expert *dev) {
    for (int i = 0; i < 3; i++) {
        cudaFree(dev->w[i].data);
        cudaFree(dev->w[i].scales);
        cudaFree(dev->w[i].lt_scales);
        cudaFree(dev->w[i].d_gs);
    }
    memset(dev, 0, sizeof *dev);
}

extern "C" const char *mplb_cuda_path_name(int path, mplb_prec p) {
    if (path == MPLB_CUDA_PATH_FP4_TC)
        return p == MPLB_PREC_NVFP4 ? "FP4 tensor cores, W4A4 (block-scaled cuBLASLt, VEC16_UE4M3 scales)"
                                    : "FP4 tensor cores, W4A4 (block-scaled cuBLASLt, VEC32_UE8M0 scales)";
    if (path == MPLB_CUDA_PATH_WEIGHT_ONLY) return "weight-only: dequantized to bf16, BF16 GEMMs (not FP4 tensor cores)";
    return p == MPLB_PREC_FP8_E4M3 ? "FP8 tensor cores, W8A8 (per-tensor scales)" : "BF16 tensor cores";
}

static int proj_kind(const mplb_cuda_expert *w) {
    if (w->prec == MPLB_PREC_FP8_E4M3) return GK_FP8;
    if (w->path == MPLB_CUDA_PATH_FP4_TC) return w->prec == MPLB_PREC_NVFP4 ? GK_NVFP4 : GK_MXFP4;
    return GK_BF16;
}

extern "C" int mplb_cuda_ffn_prepare(mplb_cuda *c, mplb_cuda_expert *w, int n, mplb_err *err) {
    if (n <= 0) return 0;
    size_t d = (size_t)w->d, f = (size_t)w->f, big = d > f ? d : f;
    int rc = grow(c, &c->act, &c->cap_act, (size_t)n * big * 2, err);
    if (rc == 0) rc = grow(c, (void **)&c->act_sc, &c->cap_sc, (size_t)mplb_lt_scale_bytes(n, (int64_t)(big + 15) / 16), err);
    if (rc == 0) rc = grow(c, (void **)&c->g, &c->cap_g, (size_t)n * f * sizeof(float), err);
    if (rc == 0) rc = grow(c, (void **)&c->u, &c->cap_u, (size_t)n * f * sizeof(float), err);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        int kind = proj_kind(w), ok = 1;
        w->out_bf16 = 0;
        for (int i = 0; i < 3 && rc == 0; i++) {
            gemm_plan *p;
            gemm_n *g;
            rc = plan_get(c, kind, (int)w->w[i].rows, (int)w->w[i].cols, &p, err);
            if (rc == 0) rc = plan_n(c, p, n, &g, err);
            if (rc == 0 && !g->found) ok = 0;
            if (rc == 0 && g->found && g->out_bf16) w->out_bf16 = 1;
        }
        if (rc < 0 || ok) break;
        if (w->path != MPLB_CUDA_PATH_FP4_TC)
            return mplb_err_set(err, MPLB_EUNSUPP, "cuBLASLt: no algorithm for %s GEMMs of %d x %d x %d on this device",
                                kind_name(kind), (int)w->w[0].rows, n, (int)w->w[0].cols);
        w->path = MPLB_CUDA_PATH_WEIGHT_ONLY;   // no FP4 algorithm here: the labelled fallback
    }
    if (rc == 0 && w->path == MPLB_CUDA_PATH_WEIGHT_ONLY) rc = grow(c, (void **)&c->wtile, &c->cap_w, d * f * 2, err);
    if (rc == 0 && w->out_bf16) rc = grow(c, (void **)&c->obuf, &c->cap_o, (size_t)n * big * 2, err);
    return rc;
}

// alpha[i] = a * b (device scalars, NULL = 1): the FP4 GEMM's tensor scales
__global__ void alpha_kernel(const float *a, const float *b, float *out) { *out = (a ? *a : 1.0f) * (b ? *b : 1.0f); }

// The activations in the GEMM's type: e4m3 with a per-tensor scale, FP4 with
// tiled block scales, or bf16.
static int round_acts(mplb_cuda *c, int kind, const float *x, int64_t n, int64_t k, mplb_err *err) {
    int rc;
    if (kind == GK_FP8) rc = mplb_cuda_fp8_quantize_scaled(x, n * k, (uint8_t *)c->act, c->act_scale, c->amax, c->stream);
    else if (kind == GK_NVFP4 || kind == GK_MXFP4)
        rc = mplb_cuda_fp4_quantize(x, n, k, kind == GK_NVFP4 ? MPLB_PREC_NVFP4 : MPLB_PREC_MXFP4, 1, 1, (uint8_t *)c->act,
                                    c->act_sc, c->act_scale, c->amax, c->stream);
    else rc = mplb_cuda_to_bf16(x, (uint16_t *)c->act, n * k, c->stream);
    return rc ? cuda_err(err, (cudaError_t)rc, "rounding activations") : 0;
}

// One projection i of w: out[n x rows] = act . W^T, act already in the GEMM's type.
static int project(mplb_cuda *c, const mplb_cuda_expert *w, int i, int n, float *out, mplb_err *err) {
    const mplb_cuda_mat *W = &w->w[i];
    int kind = proj_kind(w);
    gemm_plan *p;
    gemm_n *g;
    int rc = plan_get(c, kind, (int)W->rows, (int)W->cols, &p, err);
    if (rc == 0) rc = plan_n(c, p, n, &g, err);
    if (rc < 0) return rc;
    if (!g->found) return mplb_err_set(err, MPLB_EUNSUPP, "cuBLASLt: no algorithm (mplb_cuda_ffn_prepare first)");
    if (kind == GK_FP8) return gemm_run(c, p, g, W->data, c->act, out, W->d_gs, c->act_scale, NULL, err);
    if (kind == GK_NVFP4 || kind == GK_MXFP4) {
        alpha_kernel<<<1, 1, 0, c->stream>>>(kind == GK_NVFP4 ? W->d_gs : NULL, kind == GK_NVFP4 ? c->act_scale : NULL,
                                              c->alpha + i);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return cuda_err(err, e, "alpha");
        return gemm_run(c, p, g, W->data, c->act, out, W->lt_scales, c->act_sc, c->alpha + i, err);
    }
    const void *wb = W->data;
    if (W->fmt != MPLB_PREC_BF16) {   // weight-only: dequantize to bf16 first
        rc = mplb_cuda_dequant_bf16(W, c->wtile, c->stream);
        if (rc) return cuda_err(err, (cudaError_t)rc, "dequantizing weights");
        wb = c->wtile;
    }
    return gemm_run(c, p, g, wb, c->act, out, NULL, NULL, NULL, err);
}

extern "C" int mplb_cuda_ffn_forward(mplb_cuda *c, mplb_cuda_expert *w, const float *x, int n, float *y, mplb_err *err) {
    if (n < 0) return mplb_err_set(err, MPLB_EINVAL, "cuda ffn: n = %d tokens", n);
    if (n == 0) return 0;
    int rc = mplb_cuda_ffn_prepare(c, w, n, err), kind = proj_kind(w);   // cached: no host work after the first call
    if (rc < 0) return rc;
    if ((rc = round_acts(c, kind, x, n, w->d, err)) < 0) return rc;
    if ((rc = project(c, w, 0, n, c->g, err)) < 0) return rc;
    if ((rc = project(c, w, 1, n, c->u, err)) < 0) return rc;
    int e = mplb_cuda_swiglu(c->g, c->u, (int64_t)n * w->f, c->stream);
    if (e) return cuda_err(err, (cudaError_t)e, "swiglu");
    if ((rc = round_acts(c, kind, c->g, n, w->f, err)) < 0) return rc;
    return project(c, w, 2, n, y, err);
}

extern "C" int mplb_cuda_ffn_time(mplb_cuda *c, mplb_cuda_expert *w, const float *x, int n, float *y, int reps, int trials,
                                  double *us, int *graphed, mplb_err *err) {
    *us = 0;
    *graphed = 0;
    if (n <= 0) return 0;
    int rc = mplb_cuda_ffn_prepare(c, w, n, err);
    if (rc < 0) return rc;
    int t = mplb_gpu_time(c->stream, reps > 0 ? reps : 1, trials > 0 ? trials : 1,
                          [&] { return mplb_cuda_ffn_forward(c, w, x, n, y, err); }, us, graphed);
    if (t < 0) return err->code;
    return t ? cuda_err(err, (cudaError_t)t, "timing the expert FFN") : 0;
}

extern "C" int mplb_cuda_fp4_tensor_cores(mplb_cuda *c, mplb_prec p) {
    if (!fp4_device(c) || (p != MPLB_PREC_NVFP4 && p != MPLB_PREC_MXFP4)) return 0;
    mplb_err err;
    gemm_plan *pl;
    gemm_n *g;
    // a probe shape the FFN uses too (k a multiple of both block sizes)
    int kind = p == MPLB_PREC_NVFP4 ? GK_NVFP4 : GK_MXFP4;
    return plan_get(c, kind, 256, 256, &pl, &err) == 0 && plan_n(c, pl, 128, &g, &err) == 0 && g->found;
}
