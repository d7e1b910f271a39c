// CUDA element-wise kernels: FP8 casts (plain and per-tensor scaled), NVFP4
// (1x16 blocks), bf16 rounding, SwiGLU, and the FP4 -> bf16 dequantizers of
// the weight-only GEMM path. The per-element logic is
// include/mplb/quant_elem.h's __host__ __device__ functions, the same lines
// the CPU reference runs and the CPU tests hold to ml_dtypes and to exact
// arithmetic; only the parallel layout is here. Compiled on machines without
// a GPU; checked against the CPU by kernels/check_*.cu where there is one.
#include <cuda_runtime.h>
#include <stdint.h>
#include "mplb.h"
#include "mplb/cuda.h"
#include "quant_elem.h"

namespace {

__global__ void fp8_cast_kernel(const float *x, uint8_t *out, int64_t n, int e5m2, int sat) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = e5m2 ? mplb_f32_to_e5m2(x[i], sat) : mplb_f32_to_e4m3(x[i], sat);
}

// amax over finite values as ordered float bits (non-negative floats order as ints)
__global__ void amax_kernel(const float *x, int64_t n, unsigned int *amax_bits) {
    unsigned int local = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        unsigned int b = mplb_f32_bits(x[i]) & 0x7FFFFFFFu;
        if (b < 0x7F800000u && b > local) local = b;
    }
    atomicMax(amax_bits, local);
}

// one thread per 16-element block of a row
__global__ void nvfp4_kernel(const float *x, int64_t rows, int64_t cols, const unsigned int *amax_bits,
                             uint8_t *data, uint8_t *scales, float *global_scale) {
    int64_t nb = (cols + 15) / 16, rowbytes = (nb * 16 + 1) / 2;
    float amax = mplb_bits_f32(*amax_bits);
    float gs = amax > 0 ? amax / 2688.0f : 1.0f;
    if (gs == 0) gs = 1.4e-45f;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < rows * nb; blk += (int64_t)gridDim.x * blockDim.x) {
        if (blk == 0) *global_scale = gs;
        int64_t r = blk / nb, b = blk % nb, c0 = b * 16, n = cols - c0 < 16 ? cols - c0 : 16;
        const float *xb = x + r * cols + c0;
        float bmax = 0;
        int bad = 0;
        for (int j = 0; j < n; j++) {
            unsigned int bits = mplb_f32_bits(xb[j]) & 0x7FFFFFFFu;
            if (bits >= 0x7F800000u) bad = 1;
            else if (mplb_bits_f32(bits) > bmax) bmax = mplb_bits_f32(bits);
        }
        uint8_t sc = bad ? 0x7F : mplb_nvfp4_scale_code(bmax, gs);
        scales[blk] = sc;
        uint8_t *row = data + r * rowbytes + b * 8;
        for (int j = 0; j < 16; j += 2) {
            uint8_t lo = j < n && !bad ? mplb_nvfp4_code(xb[j], sc, gs) : 0;
            uint8_t hi = j + 1 < n && !bad ? mplb_nvfp4_code(xb[j + 1], sc, gs) : 0;
            row[j / 2] = (uint8_t)(lo | (hi << 4));
        }
    }
}

// the per-tensor fp8 scale from the amax bits, as the CPU quantizer sets it
__global__ void fp8_scale_kernel(const unsigned int *amax_bits, float *scale) {
    float amax = mplb_bits_f32(*amax_bits);
    float s = amax > 0 ? amax / 448.0f : 1.0f;
    *scale = s == 0 ? 1.4e-45f : s;
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

extern "C" int mplb_cuda_nvfp4_quantize(const float *x, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales,
                                        float *global_scale, unsigned int *scratch, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t e = cudaMemsetAsync(scratch, 0, sizeof(unsigned int), s);
    if (e != cudaSuccess) return (int)e;
    amax_kernel<<<1024, 256, 0, s>>>(x, rows * cols, scratch);
    int64_t blocks = rows * ((cols + 15) / 16);
    int grid = (int)((blocks + 255) / 256 < 65535 ? (blocks + 255) / 256 : 65535);
    nvfp4_kernel<<<grid > 0 ? grid : 1, 256, 0, s>>>(x, rows, cols, scratch, data, scales, global_scale);
    return (int)cudaGetLastError();
}
