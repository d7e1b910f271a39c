/* mplb_cuda: the CUDA side (library mplb_cuda, built when nvcc is found,
 * run only where a GPU is; ctest skips its checks without one).
 *
 * Per-element logic is quant_elem.h's __host__ __device__ functions, the
 * lines the CPU reference runs and the CPU tests hold to ml_dtypes; only the
 * parallel layout lives in kernels/. Expert GEMMs go through cuBLASLt:
 *   bf16 weights      activations rounded to bf16, BF16 GEMMs (FP32 accumulate)
 *   fp8_e4m3 weights  activations to e4m3 with a per-tensor scale, FP8 GEMMs
 *                     (W8A8; A and B scales passed to cuBLASLt)
 *   nvfp4, mxfp4      weight-only: dequantized to bf16 on the device, then
 *                     BF16 GEMMs. This is the path of a chip without FP4
 *                     tensor cores (Hopper); on Blackwell it is a lower bound
 *                     on FP4 speed, never a measurement of FP4 units.
 * Functions return 0 or a negative MPLB_E* and put the CUDA/cuBLASLt error
 * in err. Pointers are device pointers unless a comment says otherwise.
 *
 *   mplb_cuda *c; mplb_cuda_expert w;
 *   mplb_cuda_open(0, &c, &err);                       // MPLB_EUNSUPP: no device
 *   mplb_cuda_expert_upload(c, &host_expert, &w, &err);
 *   mplb_cuda_ffn_forward(c, &w, d_x, n, d_y, &err);    // then mplb_cuda_sync
 */
#ifndef MPLB_CUDA_H
#define MPLB_CUDA_H

#include <stdint.h>
#include <stdio.h>
#include "mplb/calibrate.h"
#include "mplb/err.h"
#include "mplb/execute.h"
#include "mplb/ffn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mplb_cuda mplb_cuda;   /* a device, a stream, a cuBLASLt handle, scratch */

/* The number of CUDA devices (> 0), or MPLB_EUNSUPP when the machine has
 * none (a test skips: exit 77), or MPLB_EIO when the runtime cannot reach
 * the driver (a failure, with the driver's and runtime's CUDA versions). */
int mplb_cuda_devices(int *n, mplb_err *err);
int mplb_cuda_open(int device, mplb_cuda **out, mplb_err *err);
void mplb_cuda_close(mplb_cuda *c);
int mplb_cuda_sync(mplb_cuda *c, mplb_err *err);
/* the device's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)" */
void mplb_cuda_describe(const mplb_cuda *c, char *buf, size_t n);
void *mplb_cuda_stream(const mplb_cuda *c);   /* its cudaStream_t */

/* Element-wise kernels (stream: a cudaStream_t; 0 or a cudaError_t out). */
int mplb_cuda_fp8_cast(const float *x, uint8_t *out, int64_t n, int e5m2, int saturate, void *stream);
/* NVFP4 (1x16 blocks, tensor scale from the amax: *global_scale, device) or
 * MXFP4 (1x32, E8M0 scales by the spec's floor rule or, mx_round_up, the
 * cuBLAS/TE ceil rule) of x [rows x cols], bit-identical to the CPU
 * reference; data in mplb_qtensor's row layout; scales row-major as
 * mplb_qtensor's, or (lt_layout) in cuBLASLt's tiled layout (lt_scales.h,
 * mplb_lt_scale_bytes(rows, blocks per row) bytes). scratch: one device
 * unsigned int. */
int mplb_cuda_fp4_quantize(const float *x, int64_t rows, int64_t cols, mplb_prec fmt, int mx_round_up, int lt_layout,
                           uint8_t *data, uint8_t *scales, float *global_scale, unsigned int *scratch, void *stream);
int mplb_cuda_nvfp4_quantize(const float *x, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales,
                             float *global_scale, unsigned int *scratch, void *stream);
/* e4m3 codes of x / s with s = amax(x) / 448 (1 when amax is 0), as the
 * CPU's per-tensor fp8 quantizer; s is written to *scale (device). */
int mplb_cuda_fp8_quantize_scaled(const float *x, int64_t n, uint8_t *out, float *scale, unsigned int *scratch,
                                  void *stream);
int mplb_cuda_to_bf16(const float *x, uint16_t *out, int64_t n, void *stream);
int mplb_cuda_swiglu(float *g, const float *u, int64_t n, void *stream);   /* g = silu(g) * u */

/* A packed matrix on the device, in mplb_qtensor's layout. */
typedef struct mplb_cuda_mat {
    mplb_prec fmt;
    int nvfp4_2d;
    int64_t rows, cols;
    uint8_t *data, *scales;
    float gs;          /* tensor scale (fp8, nvfp4) */
    float *d_gs;       /* the same, on the device (cuBLASLt scale pointer) */
} mplb_cuda_mat;

/* bf16 codes [rows x cols] of an nvfp4 or mxfp4 matrix (mplb_nvfp4_value,
 * mplb_mx_value, then round to bf16). */
int mplb_cuda_dequant_bf16(const mplb_cuda_mat *m, uint16_t *out, void *stream);

typedef struct mplb_cuda_expert {
    int d, f;
    mplb_prec prec;
    mplb_cuda_mat w[3];   /* gate [f x d], up [f x d], down [d x f] */
} mplb_cuda_expert;

/* Copy a host expert (bf16, fp8_e4m3, nvfp4 or mxfp4) to the device. */
int mplb_cuda_expert_upload(mplb_cuda *c, const mplb_expert_w *host, mplb_cuda_expert *dev, mplb_err *err);
void mplb_cuda_expert_free(mplb_cuda_expert *dev);

/* y [n x d] = the expert's SwiGLU FFN of x [n x d], float32, on c's stream. */
int mplb_cuda_ffn_forward(mplb_cuda *c, const mplb_cuda_expert *w, const float *x, int n, float *y, mplb_err *err);

/* Execute mode's device (backend "cuda", include/mplb/execute.h) on c,
 * which must outlive it; free with mplb_cuda_exec_device_free. */
int mplb_cuda_exec_device(mplb_cuda *c, mplb_exec_device *out, mplb_err *err);
void mplb_cuda_exec_device_free(mplb_exec_device *dev);

/* `mplb calibrate --backend cuda`: the expert FFN above, timed with CUDA
 * events over a grid of tokens per expert for bf16, fp8_e4m3 and nvfp4
 * (weight-only), HBM bandwidth (device-to-device copy) and the fp8
 * conversion kernel's throughput; written as a profile (Lua) that says
 * what was measured on which device. */
int mplb_calibrate_gpu(const mplb_calib_opts *o, FILE *out, mplb_err *err);

#ifdef __cplusplus
}
#endif

#endif
