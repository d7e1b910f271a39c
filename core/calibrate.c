/* CPU calibration: see include/mplb/calibrate.h. */
#include "mplb/calibrate.h"
#include "mplb/quant.h"
#include "mplb/version.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS' own thread control; declared here since cblas.h need not. */
void openblas_set_num_threads(int num_threads);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best-of time of fn over at least min_s seconds. */
#define BEST_OF(min_s, best, stmt)                                        \
    do {                                                                  \
        double _t_end = now() + (min_s);                                  \
        (best) = 1e30;                                                    \
        do {                                                              \
            double _t0 = now();                                           \
            stmt;                                                         \
            double _dt = now() - _t0;                                     \
            if (_dt < (best)) (best) = _dt;                               \
        } while (now() < _t_end);                                         \
    } while (0)

int mplb_calibrate_cpu(const mplb_calib_opts *o, FILE *out, mplb_err *err) {
    int d = o && o->hidden ? o->hidden : 1024, f = o && o->ffn ? o->ffn : 512;
    int nmax = o && o->max_tokens ? o->max_tokens : 2048;
    double min_s = o && o->min_seconds > 0 ? o->min_seconds : 0.05;
    const char *name = o && o->name ? o->name : "cpu";
    openblas_set_num_threads(1);
    size_t xs = (size_t)nmax * d, ws = (size_t)d * 2 * f;
    float *x = malloc(xs * sizeof(float)), *w1 = malloc(ws * sizeof(float)), *w2 = malloc((size_t)f * d * sizeof(float));
    float *h = malloc((size_t)nmax * 2 * f * sizeof(float)), *y = malloc(xs * sizeof(float));
    size_t mb = 64u << 20;
    char *a = malloc(mb), *b = malloc(mb);
    if (!x || !w1 || !w2 || !h || !y || !a || !b) {
        free(x); free(w1); free(w2); free(h); free(y); free(a); free(b);
        return mplb_err_set(err, MPLB_ENOMEM, "calibrate: out of memory");
    }
    for (size_t i = 0; i < xs; i++) x[i] = (float)((i % 7) - 3) * 0.01f;
    for (size_t i = 0; i < ws; i++) w1[i] = (float)((i % 5) - 2) * 0.01f;
    for (size_t i = 0; i < (size_t)f * d; i++) w2[i] = (float)((i % 3) - 1) * 0.01f;
    memset(a, 1, mb);
    int grid[32], ng = 0;
    for (int n = 1; n <= nmax && ng < 16; n *= 2) grid[ng++] = n;
    double gf[32], best_gf = 0;
    for (int i = 0; i < ng; i++) {
        int n = grid[i];
        double t;
        BEST_OF(min_s, t, {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, 2 * f, d, 1.0f, x, d, w1, 2 * f, 0.0f, h, 2 * f);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, f, 1.0f, h, 2 * f, w2, d, 0.0f, y, d);
        });
        gf[i] = 6.0 * n * d * f / t / 1e9;
        if (gf[i] > best_gf) best_gf = gf[i];
    }
    double t_copy;
    BEST_OF(min_s * 2, t_copy, memcpy(b, a, mb));
    double bw = 2.0 * (double)mb / t_copy / 1e9; /* read + write */
    /* conversion: fp32 master -> fp8 through the quantizer; bytes read + written */
    size_t nq = mb / sizeof(float);
    mplb_qtensor q;
    mplb_qopts qo = {0};
    double conv_gbs = 0;
    if (mplb_qtensor_alloc(&q, MPLB_PREC_FP8_E4M3, &qo, 1, (int64_t)nq, err) == 0) {
        double t;
        BEST_OF(min_s * 2, t, mplb_quant_quantize((const float *)a, &q, NULL));
        conv_gbs = (double)(nq * 4 + nq) / t / 1e9;
        mplb_qtensor_free(&q);
    }
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    time_t now_t = time(NULL);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now_t));
    fprintf(out, "-- Hardware profile measured by `mplb calibrate --backend cpu` (mplb %s, git %s)\n",
            MPLB_VERSION, mplb_git_revision());
    fprintf(out, "-- on host %s at %s: one core.\n", host, stamp);
    fprintf(out, "-- Measured: FP32 SwiGLU GEMMs through OpenBLAS (d=%d, f=%d; n = 1..%d tokens),\n", d, f, nmax);
    fprintf(out, "-- memcpy bandwidth (read+write), fp32->fp8 conversion throughput.\n");
    fprintf(out, "-- Not measured: nvlink_gbps/net_gbps are set to the memory bandwidth\n");
    fprintf(out, "-- (ranks on one host share memory); latencies are a 1 us guess.\n");
    fprintf(out, "-- Every format computes at the FP32 GEMM rate (listed as bf16) until the CPU\n");
    fprintf(out, "-- backend's mixed-precision kernels are calibrated.\n");
    fprintf(out, "return {\n  name = \"%s\",\n", name);
    fprintf(out, "  peak_tflops = { bf16 = %.6f },\n", best_gf / 1e3);
    fprintf(out, "  hbm_gbps = %.3f,\n  nvlink_gbps = %.3f,\n  net_gbps = %.3f,\n", bw, bw, bw);
    fprintf(out, "  nvlink_lat_us = 1,\n  net_lat_us = 1,\n  launch_us = 0,\n");
    double ce = conv_gbs / bw;
    if (!(ce > 0)) ce = 0.01;
    if (ce > 1) ce = 1;
    fprintf(out, "  conv_eff = %.4f,\n  memory_gb = %.1f,\n", ce,
             (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 1e9);
    fprintf(out, "  eff = {\n    default = {");
    for (int i = 0; i < ng; i++) {
        double e = gf[i] / best_gf;
        if (e < 1e-4) e = 1e-4;
        fprintf(out, " {%d, %.4f},", grid[i], e);
    }
    fprintf(out, " },\n  },\n");
    fprintf(out, "  -- raw: GFLOP/s per n:");
    for (int i = 0; i < ng; i++) fprintf(out, " %d:%.2f", grid[i], gf[i]);
    fprintf(out, "\n}\n");
    free(x); free(w1); free(w2); free(h); free(y); free(a); free(b);
    return ferror(out) ? mplb_err_set(err, MPLB_EIO, "calibrate: write error") : 0;
}
