/* bench/gemm: GFLOP/s of the expert SwiGLU FFN with packed FP8 / FP4 / INT4
 * weights (tiles dequantized on the fly into sgemm) against plain OpenBLAS
 * sgemm on float32 weights, same shapes (Qwen3-30B-A3B expert: d=2048,
 * f=768), same run, one thread; and the share of time spent dequantizing.
 * Not a test. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mplb.h"

void openblas_set_num_threads(int);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    openblas_set_num_threads(1);
    const int d = 2048, f = 768;
    size_t nw = (size_t)d * f;
    float *gate = malloc(nw * 4), *up = malloc(nw * 4), *down = malloc(nw * 4);
    mplb_rng g;
    mplb_rng_seed(&g, 1);
    for (size_t i = 0; i < nw; i++) {
        gate[i] = (float)((mplb_rng_uniform(&g) - 0.5) * 0.05);
        up[i] = (float)((mplb_rng_uniform(&g) - 0.5) * 0.05);
        down[i] = (float)((mplb_rng_uniform(&g) - 0.5) * 0.05);
    }
    const int ns[] = {1, 16, 32, 64, 128, 512};
    float *x = malloc((size_t)512 * d * 4), *y = malloc((size_t)512 * d * 4), *h = malloc((size_t)512 * f * 4),
          *u = malloc((size_t)512 * f * 4);
    for (size_t i = 0; i < (size_t)512 * d; i++) x[i] = (float)(mplb_rng_uniform(&g) - 0.5);
    printf("# mplb bench/gemm: expert FFN d=%d f=%d, one thread; GFLOP/s = 6 n d f / time\n", d, f);
    printf("%-10s %6s %12s %14s %10s %12s\n", "weights", "n", "ffn_GFLOP/s", "sgemm_GFLOP/s", "ratio", "dequant_share");
    mplb_prec fmts[] = {MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4, MPLB_PREC_MXFP4, MPLB_PREC_INT4_G128, MPLB_PREC_BF16};
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        mplb_expert_w w;
        mplb_err err = {0};
        if (mplb_expert_quantize(gate, up, down, d, f, fmts[fi], NULL, &w, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            mplb_ffn_ws ws = {0};
            mplb_ffn_forward(&w, x, n, MPLB_PREC_BF16, y, &ws, &err); /* warm */
            ws.t_dequant_s = ws.t_total_s = 0;
            int reps = 0;
            double t0 = now();
            while (now() - t0 < 0.5 || reps < 3) { mplb_ffn_forward(&w, x, n, MPLB_PREC_BF16, y, &ws, &err); reps++; }
            double t_ffn = (now() - t0) / reps;
            double share = ws.t_dequant_s / ws.t_total_s;
            int sr = 0;
            t0 = now();
            while (now() - t0 < 0.5 || sr < 3) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, f, d, 1, x, d, gate, d, 0, h, f);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, f, d, 1, x, d, up, d, 0, u, f);
                for (size_t i = 0; i < (size_t)n * f; i++) h[i] = h[i] / (1 + expf(-h[i])) * u[i];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, d, f, 1, h, f, down, f, 0, y, d);
                sr++;
            }
            double t_sg = (now() - t0) / sr;
            double fl = 6.0 * n * d * f;
            printf("%-10s %6d %12.2f %14.2f %9.2fx %11.1f%%\n", mplb_prec_name(fmts[fi]), n, fl / t_ffn / 1e9,
                   fl / t_sg / 1e9, t_sg / t_ffn, 100 * share);
            mplb_ffn_ws_free(&ws);
        }
        mplb_expert_free(&w);
    }
    return 0;
}
