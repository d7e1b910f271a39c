/* mplb_calibrate: measure this machine and write a hardware profile.
 *
 * Backend "cpu": FP32 GEMM through OpenBLAS (one thread) over a grid of
 * tokens-per-expert n on an expert-shaped SwiGLU (gate+up d->2f, down f->d),
 * memory bandwidth (memcpy), and weight-conversion throughput (the fp8
 * quantizer). eff(n) = GFLOP/s at n over the best GFLOP/s of the grid.
 * Until the CPU backend has its own mixed-precision kernels, every format
 * computes as bf16 at the FP32 GEMM rate (a weight-only format there only
 * saves bytes). The profile says which numbers were measured.
 */
#ifndef MPLB_CALIBRATE_H
#define MPLB_CALIBRATE_H

#include "mplb/api.h"

#include <stdio.h>
#include "mplb/err.h"
#include "mplb/prec.h"

MPLB_BEGIN_DECLS

typedef struct mplb_calib_opts {
    int hidden, ffn;        /* expert shape; 0 = 1024 x 512 */
    int max_tokens;         /* top of the n grid; 0 = 2048 */
    double min_seconds;     /* per grid point; 0 = 0.05 */
    const char *name;       /* profile name */
} mplb_calib_opts;

/* Measure and write the profile as Lua source to out. */
MPLB_API int mplb_calibrate_cpu(const mplb_calib_opts *o, FILE *out, mplb_err *err);

/* What `mplb calibrate --backend cuda` measured (kernels/calibrate_gpu.cu
 * fills it on the GPU), written as a profile by mplb_calib_write_gpu on the
 * host: measured values tagged measured with the device and the date, the
 * rest assumptions with ranges, every eff(n) curve with its src and ref. */
#define MPLB_CALIB_FORMATS 4   /* bf16, fp8_e4m3, nvfp4, mxfp4 (in prec[] order) */
#define MPLB_CALIB_GRID 16
typedef struct mplb_calib_gpu {
    const char *name, *device;                  /* profile name; "NVIDIA H100 ... (sm_90, 80 GB)" */
    int d, f, nmax, graphed;                    /* expert shape, top of the n grid, CUDA graphs used */
    mplb_prec prec[MPLB_CALIB_FORMATS];
    const char *path_name[MPLB_CALIB_FORMATS];  /* what ran per format (mplb_cuda_path_name) */
    int weight_only[MPLB_CALIB_FORMATS];        /* an FP4 format that fell back to weight-only */
    double best[MPLB_CALIB_FORMATS];            /* TFLOP/s */
    double tf[MPLB_CALIB_FORMATS][MPLB_CALIB_GRID];
    int grid[MPLB_CALIB_GRID], ng;
    double hbm_gbps, conv_gbps, memory_gb;      /* copy bandwidth (read + write), fp8 conversion, device memory */
} mplb_calib_gpu;
MPLB_API int mplb_calib_write_gpu(const mplb_calib_gpu *g, FILE *out, mplb_err *err);

/* Write one profile value with its provenance: "  key = { v, src = "...",
 * ref = "..." }," (src "assumption" adds range = {lo, hi}). */
MPLB_API void mplb_calib_value(FILE *out, const char *key, double v, const char *src, const char *ref, double lo, double hi);
/* The fields a calibration does not measure (link efficiencies, host link,
 * mma_eff of the measured peaks = 1, tile model off), as assumptions, for
 * both the cpu and the cuda calibrators. */
MPLB_API void mplb_calib_unmeasured(FILE *out);

/* Accuracy table: for every format, the relative error (and cosine) of an
 * expert FFN run with the CPU kernel against the float64 reference, on the
 * expert weights of a safetensors file (the first tensors whose names hold
 * gate/up/down, or w1/w3/w2, under `prefix`), or on synthetic heavy-tailed
 * weights when weights is NULL. Written as Lua: return { error = {...},
 * cosine = {...}, source = "..." }; experiments use it with accuracy = FILE. */
typedef struct mplb_acc_opts {
    const char *weights;   /* safetensors path or NULL */
    const char *prefix;    /* tensor-name prefix to pick one expert, or NULL */
    int tokens;            /* activations; 0 = 64 */
    unsigned long long seed;
} mplb_acc_opts;
MPLB_API int mplb_calibrate_accuracy(const mplb_acc_opts *o, FILE *out, mplb_err *err);

MPLB_END_DECLS

#endif
