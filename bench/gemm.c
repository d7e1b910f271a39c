/* bench/gemm: the expert SwiGLU FFN on packed weights (mplb_ffn_forward,
 * bf16 activations, and W8A8/W4A4 with activations rounded to the weights'
 * format) against the same FFN through OpenBLAS sgemm on float32
 * weights, one thread, at MoE expert shapes: Qwen3-30B-A3B (d=2048, f=768)
 * and DeepSeek-V3 (d=7168, f=2048). Each format runs on the path chosen at
 * run time (auto: AVX-512 BF16 where the CPU has it) and forced to the AVX2
 * path (what the CPU backend ran before the BF16 kernel), side by side.
 * Not a test.
 *
 * The machine is shared, so ratios are taken per round: a round times sgemm,
 * auto and avx2 (each repeated for >= 50 ms of this thread's CPU time) and
 * divides; the table gives the median ratio over the rounds and the median
 * GFLOP/s (= 6 n d f / time). usage: bench_gemm [rounds] (default 5; the
 * DeepSeek-V3 shape runs max(rounds / 2, 1)). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mplb.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

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

typedef struct shape {
    const char *name;
    int d, f, rounds;
    const int *ns;
    int nn;
    const mplb_prec *fmts;
    int nf;
    int matched;   /* activations rounded to the weights' format (W8A8, W4A4), else bf16 */
} shape;

typedef struct bufs { float *gate, *up, *down, *x, *y, *h, *u; } bufs;

/* seconds per call of the sgemm FFN */
static double time_sgemm(const bufs *b, int n, int d, int f) {
    int reps = 0;
    double t0 = now();
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, f, d, 1, b->x, d, b->gate, d, 0, b->h, f);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, f, d, 1, b->x, d, b->up, d, 0, b->u, f);
        for (size_t i = 0; i < (size_t)n * f; i++) b->h[i] = b->h[i] / (1 + expf(-b->h[i])) * b->u[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, d, f, 1, b->h, f, b->down, f, 0, b->y, d);
        reps++;
    } while (now() - t0 < 0.05);
    return (now() - t0) / reps;
}

/* seconds per call of mplb_ffn_forward on path p (share: time decoding) */
static double time_ffn(const bufs *b, const mplb_expert_w *w, int n, mplb_prec act, mplb_ffn_path p, double *share) {
    mplb_ffn_ws ws = {.path = p};
    mplb_err err = {0};
    if (mplb_ffn_forward(w, b->x, n, act, b->y, &ws, &err) < 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    ws.t_dequant_s = ws.t_total_s = 0;
    int reps = 0;
    double t0 = now();
    do {
        mplb_ffn_forward(w, b->x, n, act, b->y, &ws, &err);
        reps++;
    } while (now() - t0 < 0.05);
    double t = (now() - t0) / reps;
    if (share) *share = ws.t_dequant_s / ws.t_total_s;
    mplb_ffn_ws_free(&ws);
    return t;
}

static int run_shape(const shape *s, mplb_rng *g) {
    int d = s->d, f = s->f, nmax = s->ns[s->nn - 1];
    size_t nw = (size_t)d * f;
    bufs b = {malloc(nw * 4), malloc(nw * 4), malloc(nw * 4), malloc((size_t)nmax * d * 4), malloc((size_t)nmax * d * 4),
              malloc((size_t)nmax * f * 4), malloc((size_t)nmax * f * 4)};
    if (!b.gate || !b.up || !b.down || !b.x || !b.y || !b.h || !b.u) return 1;
    for (size_t i = 0; i < nw; i++) {
        b.gate[i] = (float)((mplb_rng_uniform(g) - 0.5) * 0.05);
        b.up[i] = (float)((mplb_rng_uniform(g) - 0.5) * 0.05);
        b.down[i] = (float)((mplb_rng_uniform(g) - 0.5) * 0.05);
    }
    for (size_t i = 0; i < (size_t)nmax * d; i++) b.x[i] = (float)(mplb_rng_uniform(g) - 0.5);
    for (int fi = 0; fi < s->nf; fi++) {
        mplb_expert_w w;
        mplb_err err = {0};
        if (mplb_expert_quantize(b.gate, b.up, b.down, d, f, s->fmts[fi], NULL, &w, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int ni = 0; ni < s->nn; ni++) {
            int n = s->ns[ni];
            mplb_prec act = s->matched ? s->fmts[fi] : MPLB_PREC_BF16;
            double r_auto[16], r_avx2[16], g_sg[16], g_auto[16], g_avx2[16], sh[16], fl = 6.0 * n * d * f;
            for (int r = 0; r < s->rounds; r++) {
                double tsg = time_sgemm(&b, n, d, f), ta = time_ffn(&b, &w, n, act, MPLB_FFN_AUTO, &sh[r]),
                       t2 = time_ffn(&b, &w, n, act, MPLB_FFN_AVX2, NULL);
                r_auto[r] = tsg / ta;
                r_avx2[r] = tsg / t2;
                g_sg[r] = fl / tsg / 1e9;
                g_auto[r] = fl / ta / 1e9;
                g_avx2[r] = fl / t2 / 1e9;
            }
            int R = s->rounds;
            char wname[32];
            snprintf(wname, sizeof wname, "%s%s", mplb_prec_name(s->fmts[fi]), s->matched ? "/A" : "");
            printf("%-13s %-12s %5d %9.1f %9.1f %9.1f %10.2fx %10.2fx %8.0f%%\n", s->name, wname, n,
                   median(g_sg, R), median(g_auto, R), median(g_avx2, R), median(r_auto, R), median(r_avx2, R),
                   100 * median(sh, R));
            fflush(stdout);
        }
        mplb_expert_free(&w);
    }
    free(b.gate); free(b.up); free(b.down); free(b.x); free(b.y); free(b.h); free(b.u);
    return 0;
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    if (rounds > 16) rounds = 16;
    static const int ns_q[] = {1, 8, 16, 32, 64, 128, 256, 512, 1024}, ns_ds[] = {32, 128, 512, 1024};
    static const mplb_prec f_q[] = {MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4, MPLB_PREC_MXFP4, MPLB_PREC_BF16,
                                    MPLB_PREC_INT4_G128},
                           f_ds[] = {MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4},
                           f_m[] = {MPLB_PREC_FP8_E4M3, MPLB_PREC_NVFP4, MPLB_PREC_INT8};
    static const int ns_m[] = {32, 128, 512, 1024};
    const shape shapes[] = {
        {"qwen3-30b-a3b", 2048, 768, rounds, ns_q, 9, f_q, 5, 0},
        {"qwen3-30b-a3b", 2048, 768, rounds, ns_m, 4, f_m, 3, 1},
        {"deepseek-v3", 7168, 2048, rounds / 2 > 1 ? rounds / 2 : 1, ns_ds, 4, f_ds, 2, 0},
    };
    printf("# mplb bench/gemm: expert SwiGLU FFN, bf16 activations (FMT/A: activations rounded to the weights' format,\n"
           "# W8A8/W4A4: auto runs them on the float32 AVX-512 path), one thread, thread CPU time; OpenBLAS core %s;\n"
           "# AVX-512 BF16 on this CPU: %s; GFLOP/s = 6 n d f / time; x = sgemm time / mplb time in the same round,\n"
           "# median over %d rounds (deepseek-v3: %d); auto = the path chosen at run time, avx2 = forced AVX2 path\n"
           "# (the kernel before AVX-512 BF16); dequant = share of auto's time decoding weights (wall clock)\n",
           openblas_get_corename(), mplb_ffn_have_bf16() ? "yes" : "no", rounds, shapes[2].rounds);
    printf("%-13s %-12s %5s %9s %9s %9s %11s %11s %9s\n", "shape", "weights", "n", "sgemm_GF", "auto_GF", "avx2_GF",
           "auto/sgemm", "avx2/sgemm", "dequant");
    mplb_rng g;
    mplb_rng_seed(&g, 1);
    for (int i = 0; i < 3; i++)
        if (run_shape(&shapes[i], &g)) return 1;
    return 0;
}
