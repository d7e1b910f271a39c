/* bench/quant: single-thread quantize throughput (GB/s of float32 input
 * consumed) for each format, next to memcpy of the same buffer in the same
 * run, for the fast path and the scalar reference. Not a test.
 *
 * The machine is shared, so the ratio is taken side by side: each round
 * times memcpy and then the fast path (best of 3 each) and divides; the
 * table gives the median ratio over the rounds (argv[1], default 5) and
 * the median of each throughput. The reference is timed once per format.
 * Times are this thread's CPU time (see now()). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mplb.h"

/* CPU time of this thread: on a machine shared by many jobs, wall time
 * mostly measures how long the scheduler kept us waiting */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

enum { MAX_ROUNDS = 64 };

int main(int argc, char **argv) {
    int64_t rows = 4096, cols = 4096;     /* 64 MiB of float32: well beyond cache */
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    size_t n = (size_t)(rows * cols), bytes = n * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes);
    mplb_rng rng;
    mplb_rng_seed(&rng, 1);
    for (size_t i = 0; i < n; i++) {
        /* heavy-tailed, like weights with outliers */
        double u = mplb_rng_uniform(&rng) - 0.5;
        x[i] = (float)(0.02 * u / (0.05 + fabs(u)));
    }
    memcpy(y, x, bytes);
    printf("# mplb bench/quant: %lld x %lld float32 (%.0f MiB), one thread; per round memcpy, the fast path, and the\n"
           "# fast path kept to AVX2 (best of 3 each, thread CPU time), ratio = fast/memcpy of that round; median over\n"
           "# %d rounds; fast = AVX-512 where a format has it (nvfp4), else AVX2\n",
           (long long)rows, (long long)cols, bytes / 1048576.0, rounds);
    printf("%-10s %10s %10s %10s %12s %12s %12s\n", "format", "memcpy_GB/s", "fast_GB/s", "ref_GB/s", "fast/memcpy",
           "avx2/memcpy", "ref/memcpy");
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_qtensor t;
        mplb_err err;
        mplb_qopts o = {0};
        if (mplb_qtensor_alloc(&t, (mplb_prec)p, &o, rows, cols, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double mc[MAX_ROUNDS], fa[MAX_ROUNDS], ra[MAX_ROUNDS], r2[MAX_ROUNDS];
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        for (int r = 0; r < rounds; r++) {
            double bm = 1e9, bf = 1e9, b2 = 1e9;
            for (int k = 0; k < 3; k++) {
                double t0 = now();
                memcpy(y, x, bytes);
                double t1 = now();
                if (t1 - t0 < bm) bm = t1 - t0;
            }
            for (int k = 0; k < 3; k++) {
                double t0 = now();
                if (mplb_quant_quantize(x, &t, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
                double t1 = now();
                if (t1 - t0 < bf) bf = t1 - t0;
            }
            for (int k = 0; k < 3 && avx2; k++) {
                double t0 = now();
                if (mplb_quant_quantize_isa(x, &t, MPLB_ISA_AVX2, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
                double t1 = now();
                if (t1 - t0 < b2) b2 = t1 - t0;
            }
            mc[r] = bytes / bm / 1e9;
            fa[r] = bytes / bf / 1e9;
            ra[r] = fa[r] / mc[r];
            r2[r] = bm / b2;
        }
        double t0 = now();
        mplb_quant_quantize_ref(x, &t, &err);
        double gr = bytes / (now() - t0) / 1e9;
        double gm = median(mc, rounds), gf = median(fa, rounds), ratio = median(ra, rounds);
        printf("%-10s %10.2f %10.2f %10.2f %12.2f %12.2f %12.2f\n", mplb_prec_name(p), gm, gf, gr, ratio,
               avx2 ? median(r2, rounds) : NAN, gr / gm);
        mplb_qtensor_free(&t);
    }
    free(x);
    free(y);
    return 0;
}
