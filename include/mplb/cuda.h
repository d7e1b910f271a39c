/* mplb_cuda: the CUDA side (library mplb_cuda, built when nvcc is found,
 * run only where a GPU is; ctest skips its checks without one).
 *
 * Per-element logic is quant_elem.h's __host__ __device__ functions, the
 * lines the CPU reference runs and the CPU tests hold to ml_dtypes; only the
 * parallel layout lives in kernels/. Expert GEMMs go through cuBLASLt:
 *   bf16 weights      activations rounded to bf16, BF16 GEMMs (FP32 accumulate)
 *   fp8_e4m3 weights  activations to e4m3 with a per-tensor scale, FP8 GEMMs
 *                     (W8A8; A and B scales passed to cuBLASLt)
 *   nvfp4, mxfp4      on Blackwell (sm_100, cuBLAS >= 12.8): block-scaled FP4
 *                     GEMMs, W4A4 (activations quantized on the device:
 *                     NVFP4 per-tensor + 1x16 E4M3 blocks, MXFP4 1x32 E8M0
 *                     blocks, round-up rule), scales in cuBLASLt's tiled
 *                     layout, tensor scales folded into alpha: path
 *                     MPLB_CUDA_PATH_FP4_TC. Where cuBLASLt has no FP4
 *                     algorithm (Hopper) or d, f are not multiples of 32:
 *                     weight-only, dequantized to bf16 then BF16 GEMMs
 *                     (MPLB_CUDA_PATH_WEIGHT_ONLY), never FP4 speed.
 * GEMM plans (descriptors, algorithm) are cached by (type, rows, k) and n;
 * mplb_cuda_ffn_prepare builds them, mplb_cuda_ffn_time times the device
 * alone (CUDA graph replays after a warm-up).
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
int mplb_cuda_bf16_to_f32(const uint16_t *x, float *out, int64_t n, void *stream);
int mplb_cuda_swiglu(float *g, const float *u, int64_t n, void *stream);   /* g = silu(g) * u */

/* A packed matrix on the device, in mplb_qtensor's layout. */
typedef struct mplb_cuda_mat {
    mplb_prec fmt;
    int nvfp4_2d;
    int64_t rows, cols;
    uint8_t *data, *scales;
    float gs;          /* tensor scale (fp8, nvfp4) */
    float *d_gs;       /* the same, on the device (cuBLASLt scale pointer) */
    uint8_t *lt_scales;   /* FP4 tensor-core path: the scales in cuBLASLt's tiled layout */
} mplb_cuda_mat;

/* How an expert's GEMMs run (named by mplb_cuda_path_name). */
enum { MPLB_CUDA_PATH_NATIVE, MPLB_CUDA_PATH_FP4_TC, MPLB_CUDA_PATH_WEIGHT_ONLY };
const char *mplb_cuda_path_name(int path, mplb_prec p);
/* 1 when this device and cuBLASLt run p (nvfp4, mxfp4) on FP4 tensor cores. */
int mplb_cuda_fp4_tensor_cores(mplb_cuda *c, mplb_prec p);

/* bf16 codes [rows x cols] of an nvfp4 or mxfp4 matrix (mplb_nvfp4_value,
 * mplb_mx_value, then round to bf16). */
int mplb_cuda_dequant_bf16(const mplb_cuda_mat *m, uint16_t *out, void *stream);

typedef struct mplb_cuda_expert {
    int d, f;
    mplb_prec prec;
    int path;             /* MPLB_CUDA_PATH_*; FP4_TC falls back to WEIGHT_ONLY at prepare */
    int out_bf16;         /* FP4_TC: cuBLASLt wrote bf16 GEMM outputs (no f32-output algorithm), widened after */
    mplb_cuda_mat w[3];   /* gate [f x d], up [f x d], down [d x f] */
} mplb_cuda_expert;

/* Copy a host expert (bf16, fp8_e4m3, nvfp4 or mxfp4) to the device. */
int mplb_cuda_expert_upload(mplb_cuda *c, const mplb_expert_w *host, mplb_cuda_expert *dev, mplb_err *err);
void mplb_cuda_expert_free(mplb_cuda_expert *dev);

/* Build what w's FFN at n tokens needs (scratch, GEMM plans, the FP4
 * path's fallback decision) so that forward only enqueues work. */
int mplb_cuda_ffn_prepare(mplb_cuda *c, mplb_cuda_expert *w, int n, mplb_err *err);
/* y [n x d] = the expert's SwiGLU FFN of x [n x d], float32, on c's stream
 * (prepares first; cheap when prepared). */
int mplb_cuda_ffn_forward(mplb_cuda *c, mplb_cuda_expert *w, const float *x, int n, float *y, mplb_err *err);
/* Device microseconds of one forward (kernels/gpu_timer.h): prepared, one
 * warm-up, then reps forwards captured in a CUDA graph, best of trials
 * replays / reps (*graphed 1), or launched back to back where capture is
 * refused (*graphed 0). y holds the forward's output after. */
int mplb_cuda_ffn_time(mplb_cuda *c, mplb_cuda_expert *w, const float *x, int n, float *y, int reps, int trials,
                       double *us, int *graphed, mplb_err *err);

/* Execute mode's device (backend "cuda", include/mplb/execute.h) on c,
 * which must outlive it; free with mplb_cuda_exec_device_free. */
int mplb_cuda_exec_device(mplb_cuda *c, mplb_exec_device *out, mplb_err *err);
void mplb_cuda_exec_device_free(mplb_exec_device *dev);

/* `mplb calibrate --backend cuda`: the expert FFN above, timed on the
 * device (mplb_cuda_ffn_time) over a grid of tokens per expert for bf16,
 * fp8_e4m3, nvfp4 and mxfp4 (each FP4 format on FP4 tensor cores where the
 * device has them, else weight-only, and labelled so), HBM bandwidth
 * (device-to-device copy) and the fp8 conversion kernel's throughput;
 * written as a profile (Lua) that says per format what was measured, how,
 * on which device. */
int mplb_calibrate_gpu(const mplb_calib_opts *o, FILE *out, mplb_err *err);

#ifdef __cplusplus
}
#endif

#endif
