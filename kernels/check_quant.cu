// GPU check: the device quantizers against the CPU reference, bit for bit,
// on random inputs with NaN/Inf/subnormals, in shapes whose last block is
// short (cols not a multiple of 16 or 32) and whose rows leave a partial
// 128-row scale tile: fp8 casts, NVFP4 and MXFP4 (both scale rules), and
// the same FP4 scales written in cuBLASLt's tiled layout. Every CUDA call
// is checked. Exits 77 (a skip for ctest) on a machine without a CUDA
// device, as CI is; 1 on a CUDA runtime error (a driver mismatch is not a
// skip).
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "lt_scales.h"
#include "quant_elem.h"
#include "mplb/cuda.h"

static int fails = 0, passes = 0;

static void report(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    ok ? passes++ : fails++;
}

// a CUDA failure ends the check: later results would be meaningless
#define CK(call)                                                                                \
    do {                                                                                        \
        cudaError_t e_ = (cudaError_t)(call);                                                   \
        if (e_ != cudaSuccess) {                                                                \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static void fill(mplb_rng *g, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = mplb_rng_next(g);
        // half raw bit patterns (NaN, Inf, subnormals, huge), half ordinary values
        x[i] = (r & 1) ? mplb_bits_f32((uint32_t)(r >> 32)) : (float)(mplb_rng_uniform(g) - 0.5);
    }
}

static void check_fp8(const float *dx, const float *x, int64_t rows, int64_t cols) {
    int64_t n = rows * cols;
    uint8_t *dout, *got = (uint8_t *)malloc(n);
    CK(cudaMalloc(&dout, n));
    for (int sat = 0; sat < 2; sat++)
        for (int fmt = 0; fmt < 2; fmt++) {
            mplb_qtensor t;
            mplb_qopts o = {0};
            o.saturate = sat;
            mplb_err err;
            mplb_prec p = fmt ? MPLB_PREC_FP8_E5M2 : MPLB_PREC_FP8_E4M3;
            if (mplb_qtensor_alloc(&t, p, &o, rows, cols, &err) < 0 || mplb_quant_quantize_ref(x, &t, &err) < 0) {
                printf("FAIL CPU reference: %s\n", err.msg);
                exit(1);
            }
            CK(mplb_cuda_fp8_cast(dx, dout, n, fmt, sat, 0));
            CK(cudaMemcpy(got, dout, n, cudaMemcpyDeviceToHost));
            char what[160];
            snprintf(what, sizeof what, "%s cast%s equals the CPU reference (%lld values)", mplb_prec_name(p),
                     sat ? " (saturating)" : "", (long long)n);
            report(memcmp(got, t.data, n) == 0, what);
            mplb_qtensor_free(&t);
        }
    CK(cudaFree(dout));
    free(got);
}

static void check_fp4(const float *dx, const float *x, int64_t rows, int64_t cols, mplb_prec p, int round_up) {
    mplb_qtensor t;
    mplb_qopts o = {0};
    o.mx_round_up = round_up;
    mplb_err err;
    if (mplb_qtensor_alloc(&t, p, &o, rows, cols, &err) < 0 || mplb_quant_quantize_ref(x, &t, &err) < 0) {
        printf("FAIL CPU reference: %s\n", err.msg);
        exit(1);
    }
    int bs = p == MPLB_PREC_NVFP4 ? 16 : 32;
    int64_t nb = (cols + bs - 1) / bs, ltn = mplb_lt_scale_bytes(rows, nb);
    uint8_t *dd, *ds, *got = (uint8_t *)malloc(t.data_bytes), *gsc = (uint8_t *)malloc(ltn);
    uint8_t *want_lt = (uint8_t *)malloc(ltn);
    float *dgs, gs = 0;
    unsigned int *scratch;
    CK(cudaMalloc(&dd, t.data_bytes));
    CK(cudaMalloc(&ds, ltn));
    CK(cudaMalloc(&dgs, sizeof(float)));
    CK(cudaMalloc(&scratch, sizeof(unsigned int)));
    for (int lt = 0; lt < 2; lt++) {
        CK(cudaMemset(ds, 0xAB, ltn));   // the tiled layout's padding must be written (zero)
        CK(mplb_cuda_fp4_quantize(dx, rows, cols, p, round_up, lt, dd, ds, dgs, scratch, 0));
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(got, dd, t.data_bytes, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(gsc, ds, lt ? ltn : t.scale_bytes, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(&gs, dgs, sizeof gs, cudaMemcpyDeviceToHost));
        int ok = memcmp(got, t.data, t.data_bytes) == 0 && (p != MPLB_PREC_NVFP4 || gs == t.global_scale);
        if (lt) {
            mplb_lt_scales_from_rows(t.scales, rows, nb, 1, want_lt);
            ok = ok && memcmp(gsc, want_lt, ltn) == 0;
        } else ok = ok && memcmp(gsc, t.scales, t.scale_bytes) == 0;
        char what[200];
        snprintf(what, sizeof what, "%s%s %lld x %lld (last block %lld of %d), %s scales: equals the CPU reference",
                 mplb_prec_name(p), p == MPLB_PREC_MXFP4 ? (round_up ? " (round-up scales)" : " (spec scales)") : "",
                 (long long)rows, (long long)cols, (long long)(cols - (nb - 1) * bs), bs,
                 lt ? "cuBLASLt-tiled" : "row-major");
        report(ok, what);
    }
    CK(cudaFree(dd)); CK(cudaFree(ds)); CK(cudaFree(dgs)); CK(cudaFree(scratch));
    free(got); free(gsc); free(want_lt);
    mplb_qtensor_free(&t);
}

int main() {
    int devices = 0;
    mplb_err err;
    if (mplb_cuda_devices(&devices, &err) < 0) {
        printf("%s: GPU check %s\n", err.msg, err.code == MPLB_EUNSUPP ? "skipped" : "failed");
        return err.code == MPLB_EUNSUPP ? 77 : 1;
    }
    mplb_rng g;
    mplb_rng_seed(&g, 42);
    // full blocks and tiles; short last blocks (200 = 12x16 + 8 = 6x32 + 8) and a partial row tile
    const int64_t shapes[][2] = {{64, 4096}, {131, 200}, {3, 7}};
    for (int s = 0; s < 3; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *x = (float *)malloc(n * sizeof(float)), *dx;
        fill(&g, x, n);
        CK(cudaMalloc(&dx, n * sizeof(float)));
        CK(cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice));
        check_fp8(dx, x, rows, cols);
        check_fp4(dx, x, rows, cols, MPLB_PREC_NVFP4, 0);
        check_fp4(dx, x, rows, cols, MPLB_PREC_MXFP4, 0);
        check_fp4(dx, x, rows, cols, MPLB_PREC_MXFP4, 1);
        CK(cudaFree(dx));
        free(x);
    }
    printf("%d passed, %d failed\n", passes, fails);
    return fails ? 1 : 0;
}
