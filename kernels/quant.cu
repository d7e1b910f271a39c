// CUDA quantizers: FP8 casts and NVFP4 (1x16 blocks) on the device. The
// per-element logic is include/mplb/quant_elem.h's __host__ __device__
// functions, the same lines the CPU reference runs and the CPU tests hold
// to ml_dtypes and to exact arithmetic; only the parallel layout is here.
// Compiled on machines without a GPU; run by bench/gpu.sh where there is one.
#include <cuda_runtime.h>
#include <stdint.h>
#include "mplb/quant_elem.h"

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

}  // namespace

// Host entry points (device pointers in, 0 or a cudaError_t out).
extern "C" int mplb_cuda_fp8_cast(const float *x, uint8_t *out, int64_t n, int e5m2, int saturate, cudaStream_t s) {
    int threads = 256;
    int64_t want = (n + threads - 1) / threads;
    int blocks = (int)(want < 4096 ? (want > 0 ? want : 1) : 4096);
    fp8_cast_kernel<<<blocks, threads, 0, s>>>(x, out, n, e5m2, saturate);
    return (int)cudaGetLastError();
}

extern "C" int mplb_cuda_nvfp4_quantize(const float *x, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales,
                                        float *global_scale, unsigned int *scratch, cudaStream_t s) {
    cudaError_t e = cudaMemsetAsync(scratch, 0, sizeof(unsigned int), s);
    if (e != cudaSuccess) return (int)e;
    amax_kernel<<<1024, 256, 0, s>>>(x, rows * cols, scratch);
    int64_t blocks = rows * ((cols + 15) / 16);
    int grid = (int)((blocks + 255) / 256 < 65535 ? (blocks + 255) / 256 : 65535);
    nvfp4_kernel<<<grid > 0 ? grid : 1, 256, 0, s>>>(x, rows, cols, scratch, data, scales, global_scale);
    return (int)cudaGetLastError();
}
