// GPU check: the device quantizers against the CPU reference, bit for bit,
// on random inputs with NaN/Inf/denormals. Exits 77 (a skip for ctest) when
// the machine has no CUDA device, as CI does.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "quant_elem.h"
#include "mplb/cuda.h"


int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("no CUDA device: GPU check skipped\n");
        return 77;
    }
    const int64_t rows = 64, cols = 4096, n = rows * cols;
    float *x = (float *)malloc(n * sizeof(float));
    mplb_rng g;
    mplb_rng_seed(&g, 42);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = mplb_rng_next(&g);
        x[i] = (r & 1) ? mplb_bits_f32((uint32_t)(r >> 32)) : (float)(mplb_rng_uniform(&g) - 0.5);
    }
    float *dx;
    uint8_t *dout, *dscales;
    float *dgs;
    unsigned int *dscratch;
    cudaMalloc(&dx, n * sizeof(float));
    cudaMalloc(&dout, n);
    cudaMalloc(&dscales, n / 16);
    cudaMalloc(&dgs, sizeof(float));
    cudaMalloc(&dscratch, sizeof(unsigned int));
    cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
    int fails = 0;
    mplb_err err;
    for (int fmt = 0; fmt < 2; fmt++) {
        mplb_qtensor t;
        mplb_qopts o = {0};
        mplb_prec p = fmt ? MPLB_PREC_FP8_E5M2 : MPLB_PREC_FP8_E4M3;
        mplb_qtensor_alloc(&t, p, &o, rows, cols, &err);
        mplb_quant_quantize_ref(x, &t, &err);
        uint8_t *got = (uint8_t *)malloc(n);
        mplb_cuda_fp8_cast(dx, dout, n, fmt, 0, 0);
        cudaMemcpy(got, dout, n, cudaMemcpyDeviceToHost);
        if (memcmp(got, t.data, n)) { printf("FAIL %s cast differs from the CPU reference\n", mplb_prec_name(p)); fails++; }
        else printf("ok   %s cast equals the CPU reference (%lld values)\n", mplb_prec_name(p), (long long)n);
        free(got);
        mplb_qtensor_free(&t);
    }
    mplb_qtensor t;
    mplb_qopts o = {0};
    mplb_qtensor_alloc(&t, MPLB_PREC_NVFP4, &o, rows, cols, &err);
    mplb_quant_quantize_ref(x, &t, &err);
    mplb_cuda_nvfp4_quantize(dx, rows, cols, dout, dscales, dgs, dscratch, 0);
    uint8_t *got = (uint8_t *)malloc(t.data_bytes), *gsc = (uint8_t *)malloc(t.scale_bytes);
    float gs;
    cudaMemcpy(got, dout, t.data_bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(gsc, dscales, t.scale_bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(&gs, dgs, sizeof gs, cudaMemcpyDeviceToHost);
    if (memcmp(got, t.data, t.data_bytes) || memcmp(gsc, t.scales, t.scale_bytes) || gs != t.global_scale) {
        printf("FAIL nvfp4 differs from the CPU reference\n");
        fails++;
    } else printf("ok   nvfp4 equals the CPU reference\n");
    printf("%d passed, %d failed\n", 3 - fails, fails);
    return fails ? 1 : 0;
}
