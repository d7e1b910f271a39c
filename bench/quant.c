/* bench/quant: single-thread quantize throughput (GB/s of float32 input
 * consumed) for each format, next to memcpy of the same buffer in the same
 * run, for the fast path and the scalar reference. Not a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mplb.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int64_t rows = 4096, cols = 4096;     /* 64 MiB of float32: well beyond cache */
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    size_t n = (size_t)(rows * cols), bytes = n * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes);
    mplb_rng rng;
    mplb_rng_seed(&rng, 1);
    for (size_t i = 0; i < n; i++) {
        /* heavy-tailed, like weights with outliers */
        double u = mplb_rng_uniform(&rng) - 0.5;
        x[i] = (float)(0.02 * u / (0.05 + fabs(u)));
    }
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        memcpy(y, x, bytes);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    double memcpy_gbs = bytes / best / 1e9;
    printf("# mplb bench/quant: %lld x %lld float32 (%.0f MiB), best of %d, one thread\n",
           (long long)rows, (long long)cols, bytes / 1048576.0, reps);
    printf("# memcpy: %.2f GB/s\n", memcpy_gbs);
    printf("%-10s %10s %10s %12s %12s\n", "format", "fast_GB/s", "ref_GB/s", "fast/memcpy", "ref/memcpy");
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_qtensor t;
        mplb_err err;
        mplb_qopts o = {0};
        if (mplb_qtensor_alloc(&t, (mplb_prec)p, &o, rows, cols, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double bf = 1e9, br = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            mplb_quant_quantize(x, &t, &err);
            double t1 = now();
            if (t1 - t0 < bf) bf = t1 - t0;
        }
        for (int r = 0; r < (reps < 2 ? reps : 2); r++) {
            double t0 = now();
            mplb_quant_quantize_ref(x, &t, &err);
            double t1 = now();
            if (t1 - t0 < br) br = t1 - t0;
        }
        double gf = bytes / bf / 1e9, gr = bytes / br / 1e9;
        printf("%-10s %10.2f %10.2f %12.2f %12.2f\n", mplb_prec_name(p), gf, gr, gf / memcpy_gbs, gr / memcpy_gbs);
        mplb_qtensor_free(&t);
    }
    free(x);
    free(y);
    return 0;
}
