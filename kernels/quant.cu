// CUDA element-wise kernels: FP8 casts (plain and per-tensor scaled), NVFP4
// (1x16 blocks) and MXFP4 quantizers, bf16 rounding, SwiGLU, and the FP4 -> bf16 dequantizers of
// the weight-only GEMM path. The per-element logic is
// core/internal/quant_elem.h's __host__ __device__ functions, the same lines
// the CPU reference runs and the CPU tests hold to ml_dtypes and to exact
// arithmetic; only the parallel layout is here. Compiled on machines without
// a GPU; checked against the CPU by kernels/check_*.cu where there is one.
#include <cuda_runtime.h>
#include <stdint.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "lt_scales.h"
#include "quant_elem.h"

namespace {

__global__ void fp8_cast_kernel(const float *x, uint8_t *out, int64_t n, int e5m2, int sat) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = e5m2 ? mplb_f32_to_e5m2(x[i], sat) : mplb_f32_to_e4m3(x[i], sat);
}

// amax over finite values as ordered float bits (non-negative floats order
// as ints): each thread's maximum, then the warp's (shuffles), then the
// block's (shared memory), then one atomicMax per block.
__global__ void amax_kernel(const float *x, int64_t n, unsigned int *amax_bits) {
    unsigned int local = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        unsigned int b = mplb_f32_bits(x[i]) & 0x7FFFFFFFu;
        if (b < 0x7F800000u && b > local) local = b;
    }
    for (int o = 16; o > 0; o >>= 1) local = max(local, __shfl_xor_sync(0xFFFFFFFFu, local, o));
    __shared__ unsigned int warp_max[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = (blockDim.x + 31) / 32;
    if (lane == 0) warp_max[warp] = local;
    __syncthreads();
    if (warp == 0) {
        local = lane < nwarps ? warp_max[lane] : 0;
        for (int o = 16; o > 0; o >>= 1) local = max(local, __shfl_xor_sync(0xFFFFFFFFu, local, o));
        if (lane == 0 && local) atomicMax(amax_bits, local);
    }
}

// NVFP4 (1x16 blocks) or MXFP4 (1x32) of rows x cols, one thread per block
// (quant_elem.h's mplb_nvfp4_block / mplb_mxfp4_block, which the host tests
// hold to the CPU reference); scales row-major as mplb_qtensor's, or in
// cuBLASLt's tiled layout (lt_scales.h) for block-scaled GEMMs.
__global__ void fp4_kernel(const float *x, int64_t rows, int64_t cols, int nv, int round_up, int lt,
                           const unsigned int *amax_bits, uint8_t *data, uint8_t *scales, float *global_scale) {
    int bs = nv ? 16 : 32;
    int64_t nb = (cols + bs - 1) / bs, rowbytes = (nb * bs + 1) / 2;
    float gs = 1.0f;
    if (nv) {
        float amax = mplb_bits_f32(*amax_bits);
        gs = mplb_amax_scale(amax, 2688.0f);
    }
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < rows * nb; blk += (int64_t)gridDim.x * blockDim.x) {
        if (blk == 0 && nv) *global_scale = gs;
        int64_t r = blk / nb, b = blk % nb, c0 = b * bs;
        int n = (int)(cols - c0 < bs ? cols - c0 : bs);
        uint8_t *packed = data + r * rowbytes + b * bs / 2;
        uint8_t sc = nv ? mplb_nvfp4_block(x + r * cols + c0, n, gs, packed)
                        : mplb_mxfp4_block(x + r * cols + c0, n, round_up, packed);
        scales[lt ? mplb_lt_scale_offset(r, b, nb) : blk] = sc;
    }
}

// the per-tensor fp8 scale from the amax bits, as the CPU quantizer sets it
__global__ void fp8_scale_kernel(const unsigned int *amax_bits, float *scale) {
    float amax = mplb_bits_f32(*amax_bits);
    *scale = mplb_amax_scale(amax, 448.0f);
}

__global__ void fp8_scaled_kernel(const float *x, uint8_t *out, int64_t n, const float *scale) {
    float s = *scale;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mplb_f32_to_e4m3(s == 1.0f ? x[i] : x[i] / s, 1);
}

__global__ void bf16_kernel(const float *x, uint16_t *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mplb_f32_to_bf16(x[i]);
}

__global__ void widen_bf16_kernel(const uint16_t *x, float *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mplb_bf16_to_f32(x[i]);
}

__global__ void swiglu_kernel(float *g, const float *u, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        g[i] = mplb_swiglu(g[i], u[i]);
}

// one thread per element; rowbytes and block sizes as in mplb_qtensor
__global__ void dequant_fp4_kernel(const uint8_t *data, const uint8_t *scales, int64_t rows, int64_t cols, int nv,
                                   int tile, float gs, uint16_t *out) {
    int bs = nv ? 16 : 32;
    int64_t nb = (cols + bs - 1) / bs, rowbytes = (nb * bs + 1) / 2;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows * cols; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i % cols;
        uint8_t code = mplb_nibble(data + r * rowbytes, c);
        float v = nv ? mplb_nvfp4_value(code, scales[(r / tile) * nb + c / bs], gs)
                     : mplb_mx_value(code, scales[r * nb + c / bs], 1);
        out[i] = mplb_f32_to_bf16(v);
    }
}

int grid_for(int64_t n, int threads) {
    int64_t want = (n + threads - 1) / threads;
    return (int)(want < 4096 ? (want > 0 ? want : 1) : 4096);
}

}  // namespace

// Host entry points (device pointers in, 0 or a cudaError_t out).
extern "C" int mplb_cuda_fp8_cast(const float *x, uint8_t *out, int64_t n, int e5m2, int saturate, void *stream) {
    fp8_cast_kernel<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(x, out, n, e5m2, saturate);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_fp8_quantize_scaled(const float *x, int64_t n, uint8_t *out, float *scale, unsigned int *scratch,
                                             void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t e = cudaMemsetAsync(scratch, 0, sizeof(unsigned int), s);
    if (e != cudaSuccess) return (int)e;
    amax_kernel<<<grid_for(n, 256) < 1024 ? grid_for(n, 256) : 1024, 256, 0, s>>>(x, n, scratch);
    fp8_scale_kernel<<<1, 1, 0, s>>>(scratch, scale);
    fp8_scaled_kernel<<<grid_for(n, 256), 256, 0, s>>>(x, out, n, scale);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_to_bf16(const float *x, uint16_t *out, int64_t n, void *stream) {
    bf16_kernel<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(x, out, n);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_bf16_to_f32(const uint16_t *x, float *out, int64_t n, void *stream) {
    widen_bf16_kernel<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(x, out, n);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_swiglu(float *g, const float *u, int64_t n, void *stream) {
    swiglu_kernel<<<grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(g, u, n);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_dequant_bf16(const mplb_cuda_mat *m, uint16_t *out, void *stream) {
    if (m->fmt != MPLB_PREC_NVFP4 && m->fmt != MPLB_PREC_MXFP4) return (int)cudaErrorInvalidValue;
    int nv = m->fmt == MPLB_PREC_NVFP4;
    dequant_fp4_kernel<<<grid_for(m->rows * m->cols, 256), 256, 0, (cudaStream_t)stream>>>(
        m->data, m->scales, m->rows, m->cols, nv, nv && m->nvfp4_2d ? 16 : 1, m->gs, out);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_fp4_quantize(const float *x, int64_t rows, int64_t cols, mplb_prec fmt, int mx_round_up,
                                      int lt_layout, uint8_t *data, uint8_t *scales, float *global_scale,
                                      unsigned int *scratch, void *stream) {
    if (fmt != MPLB_PREC_NVFP4 && fmt != MPLB_PREC_MXFP4) return (int)cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)stream;
    int nv = fmt == MPLB_PREC_NVFP4, bs = nv ? 16 : 32;
    int64_t nb = (cols + bs - 1) / bs;
    cudaError_t e = cudaSuccess;
    if (lt_layout) e = cudaMemsetAsync(scales, 0, (size_t)mplb_lt_scale_bytes(rows, nb), s);   // the tiles' padding
    if (e == cudaSuccess && nv) e = cudaMemsetAsync(scratch, 0, sizeof(unsigned int), s);
    if (e != cudaSuccess) return (int)e;
    if (nv) amax_kernel<<<grid_for(rows * cols, 256) < 1024 ? grid_for(rows * cols, 256) : 1024, 256, 0, s>>>(x, rows * cols, scratch);
    fp4_kernel<<<grid_for(rows * nb, 128), 128, 0, s>>>(x, rows, cols, nv, mx_round_up, lt_layout, scratch, data, scales,
                                                        global_scale);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_nvfp4_quantize(const float *x, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales,
                                        float *global_scale, unsigned int *scratch, void *stream) {
    return mplb_cuda_fp4_quantize(x, rows, cols, MPLB_PREC_NVFP4, 0, 0, data, scales, global_scale, scratch, stream);
}
