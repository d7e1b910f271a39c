/* CPU calibration: see include/mplb/calibrate.h. */
#include "mplb/calibrate.h"
#include "mplb/quant.h"
#include "mplb/ffn.h"
#include "mplb/safetensors.h"
#include "mplb/weights.h"

#include <math.h>
#include "mplb/version.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


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


/* A device or host name inside a Lua string literal and a comment line: a
 * quote, backslash or line break would end either, so they become ' and a
 * space (the name stays readable). */
static void lua_plain(char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\') *s = '\'';
        else if (*s == '\n' || *s == '\r') *s = ' ';
}

int mplb_calibrate_cpu(const mplb_calib_opts *o, FILE *out, mplb_err *err) {
    int d = o && o->hidden ? o->hidden : 1024, f = o && o->ffn ? o->ffn : 512;
    int nmax = o && o->max_tokens ? o->max_tokens : 2048;
    double min_s = o && o->min_seconds > 0 ? o->min_seconds : 0.05;
    const char *name = o && o->name ? o->name : "cpu";
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
    char ref[400], qname[128];
    snprintf(ref, sizeof ref, "mplb calibrate --backend cpu on %s at %s", host, stamp);
    lua_plain(ref);
    snprintf(qname, sizeof qname, "%s", name);
    lua_plain(qname);
    fprintf(out, "return {\n  name = \"%s\",\n", qname);
    fprintf(out, "  peak_tflops = {\n");
    mplb_calib_value(out, "  bf16", best_gf / 1e3, "measured", ref, 0, 0);
    fprintf(out, "  },\n");
    mplb_calib_value(out, "hbm_gbps", bw, "measured", ref, 0, 0);
    mplb_calib_value(out, "nvlink_gbps", bw, "assumption", "ranks on one host share memory: the memcpy bandwidth", bw / 4, bw);
    mplb_calib_value(out, "net_gbps", bw, "assumption", "ranks on one host share memory: the memcpy bandwidth", bw / 4, bw);
    mplb_calib_value(out, "nvlink_lat_us", 1, "assumption", "a guess for shared-memory transfers", 0.1, 10);
    mplb_calib_value(out, "net_lat_us", 1, "assumption", "a guess for shared-memory transfers", 0.1, 10);
    mplb_calib_value(out, "launch_us", 0, "assumption", "a CPU kernel call has no launch", 0, 1);
    double ce = conv_gbs / bw;
    if (!(ce > 0)) ce = 0.01;
    if (ce > 1) ce = 1;
    mplb_calib_value(out, "conv_eff", ce, "measured", ref, 0, 0);
    mplb_calib_value(out, "memory_gb", (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 1e9,
                     "measured", ref, 0, 0);
    mplb_calib_unmeasured(out);
    fprintf(out, "  eff = {\n    default = {");
    for (int i = 0; i < ng; i++) {
        double e = gf[i] / best_gf;
        if (e < 1e-4) e = 1e-4;
        fprintf(out, " {%d, %.6g},", grid[i], e);
    }
    fprintf(out, " src = \"measured\", ref = \"%s: GFLOP/s at n over the best\" },\n  },\n", ref);
    fprintf(out, "  -- raw: GFLOP/s per n:");
    for (int i = 0; i < ng; i++) fprintf(out, " %d:%.2f", grid[i], gf[i]);
    fprintf(out, "\n}\n");
    free(x); free(w1); free(w2); free(h); free(y); free(a); free(b);
    return ferror(out) ? mplb_err_set(err, MPLB_EIO, "calibrate: write error") : 0;
}

int mplb_calib_write_gpu(const mplb_calib_gpu *g, FILE *out, mplb_err *err) {
    time_t now_t = time(NULL);
    char stamp[64], ref[400];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now_t));
    snprintf(ref, sizeof ref, "mplb calibrate --backend cuda on %s at %s", g->device, stamp);
    lua_plain(ref);   /* also what the comment lines below print of the device */
    fprintf(out, "-- Hardware profile measured by `mplb calibrate --backend cuda` (mplb %s, git %s)\n", MPLB_VERSION,
            mplb_git_revision());
    fprintf(out, "-- %s.\n", ref);
    fprintf(out, "-- Measured: expert SwiGLU FFNs through cuBLASLt (d=%d, f=%d; n = 1..%d tokens), device time\n", g->d,
            g->f, g->nmax);
    fprintf(out, "-- only (GEMM plans prepared first, a warm-up, then %s, best replay).\n",
            g->graphed ? "CUDA graph replays of back-to-back FFNs" : "back-to-back launches (graph capture refused)");
    fprintf(out, "-- Per format, what ran:\n");
    for (int p = 0; p < MPLB_CALIB_FORMATS; p++)
        fprintf(out, "--   %-8s %s: best %.2f TFLOP/s%s\n", mplb_prec_name(g->prec[p]), g->path_name[p], g->best[p],
                g->weight_only[p] ? " (weight-only: not FP4 speed; not written as an FP4 peak)" : "");
    int tc[MPLB_CALIB_FORMATS];
    for (int p = 0; p < MPLB_CALIB_FORMATS; p++) tc[p] = !g->weight_only[p] && g->best[p] > 0;
    fprintf(out, "-- A weight-only FP4 format computes as bf16 here (what the device ran); fp4_e2m1 computes as\n");
    fprintf(out, "-- nvfp4, mxfp8 and fp8_e5m2 as fp8_e4m3, fp16 and int4 as bf16 (assumed, not measured).\n");
    fprintf(out, "-- HBM: a device-to-device copy (read + write); conv_eff: the fp8 conversion kernel over that bandwidth.\n");
    fprintf(out, "-- Not measured (assumptions with ranges: edit them): NVLink, NIC, latencies, launch.\n");
    char qname[128];
    snprintf(qname, sizeof qname, "%s", g->name);
    lua_plain(qname);
    fprintf(out, "return {\n  name = \"%s\",\n  peak_tflops = {\n", qname);
    char key[64], pref[480];
    snprintf(pref, sizeof pref, "%s: best TFLOP/s of the cuBLASLt FFN over the n grid", ref);
    for (int p = 0; p < MPLB_CALIB_FORMATS; p++) {
        if (p >= 2 && !tc[p]) continue;   /* weight-only FP4: never an FP4 peak */
        snprintf(key, sizeof key, "  %s", mplb_prec_name(g->prec[p]));
        mplb_calib_value(out, key, g->best[p] > 0 ? g->best[p] : 1e-3, "measured", pref, 0, 0);
    }
    fprintf(out, "  },\n");
    fprintf(out, "  compute_as = { fp16 = \"bf16\", fp8_e5m2 = \"fp8_e4m3\", mxfp8 = \"fp8_e4m3\", int8 = \"fp8_e4m3\",\n");
    fprintf(out, "    fp4_e2m1 = \"%s\", int4_g32 = \"bf16\", int4_g128 = \"bf16\"", tc[2] ? "nvfp4" : "bf16");
    for (int p = 2; p < MPLB_CALIB_FORMATS; p++)
        if (!tc[p]) fprintf(out, ", %s = \"bf16\"", mplb_prec_name(g->prec[p]));
    fprintf(out, " },\n");
    double ce = g->hbm_gbps > 0 ? g->conv_gbps / g->hbm_gbps : 0.01;
    if (!(ce > 0)) ce = 0.01;
    if (ce > 1) ce = 1;
    mplb_calib_value(out, "hbm_gbps", g->hbm_gbps > 0 ? g->hbm_gbps : 1, "measured", ref, 0, 0);
    mplb_calib_value(out, "conv_eff", ce, "measured", ref, 0, 0);
    mplb_calib_value(out, "memory_gb", g->memory_gb, "measured", ref, 0, 0);
    mplb_calib_value(out, "nvlink_gbps", 450, "assumption", "not measured: H100/H200 NVLink 4 per direction; "
                     "PCIe-only boards ~32", 32, 900);
    mplb_calib_value(out, "net_gbps", 50, "assumption", "not measured: a 400 Gb/s NIC per GPU", 12.5, 100);
    mplb_calib_value(out, "nvlink_lat_us", 8, "assumption", "not measured", 2, 25);
    mplb_calib_value(out, "net_lat_us", 15, "assumption", "not measured", 5, 40);
    mplb_calib_value(out, "launch_us", 5, "assumption", "not measured: launch and tail of one grouped GEMM", 2, 10);
    mplb_calib_unmeasured(out);
    fprintf(out, "  eff = {\n");
    for (int p = 0; p < MPLB_CALIB_FORMATS; p++) {
        if (p >= 2 && !tc[p]) continue;   /* a weight-only FP4 format computes as bf16: no curve of its own */
        fprintf(out, "    %s = {", p == 0 ? "default" : mplb_prec_name(g->prec[p]));
        for (int i = 0; i < g->ng; i++) {
            double e = g->best[p] > 0 ? g->tf[p][i] / g->best[p] : 1e-4;
            fprintf(out, " {%d, %.6g},", g->grid[i], e < 1e-4 ? 1e-4 : e);
        }
        fprintf(out, " src = \"measured\", ref = \"%s: TFLOP/s at n over the best\" },\n", ref);
    }
    fprintf(out, "  },\n  -- raw TFLOP/s per n:");
    for (int p = 0; p < MPLB_CALIB_FORMATS; p++) {
        fprintf(out, "\n  --   %s (%s):", mplb_prec_name(g->prec[p]), g->weight_only[p] ? "weight-only" : "tensor cores");
        for (int i = 0; i < g->ng; i++) fprintf(out, " %d:%.2f", g->grid[i], g->tf[p][i]);
    }
    fprintf(out, "\n}\n");
    return ferror(out) ? mplb_err_set(err, MPLB_EIO, "calibrate: write error") : 0;
}

void mplb_calib_value(FILE *out, const char *key, double v, const char *src, const char *ref, double lo, double hi) {
    fprintf(out, "  %s = { %.6g, src = \"%s\", ", key, v, src);
    if (!strcmp(src, "assumption")) fprintf(out, "range = { %.6g, %.6g }, ", lo < v ? lo : v, hi > v ? hi : v);
    fprintf(out, "ref = \"");
    for (const char *p = ref; *p; p++) fputc(*p == '"' || *p == '\\' ? '\'' : *p, out);
    fprintf(out, "\" },\n");
}

void mplb_calib_unmeasured(FILE *out) {
    mplb_calib_value(out, "hbm_eff", 1, "measured", "hbm_gbps is itself a measured copy rate", 0, 0);
    mplb_calib_value(out, "nvlink_eff", 0.8, "assumption", "not measured by calibrate", 0.5, 1);
    mplb_calib_value(out, "net_eff", 0.8, "assumption", "not measured by calibrate", 0.5, 1);
    mplb_calib_value(out, "host_gbps", 25, "assumption", "not measured by calibrate (PCIe Gen4-Gen5 x16)", 12, 64);
    mplb_calib_value(out, "host_eff", 0.8, "assumption", "not measured by calibrate", 0.5, 1);
    /* no tile or wave model: the measured eff(n) curves already hold those effects */
    static const char *const tiles[] = {"sms", "tile_m", "tile_n"};
    for (int i = 0; i < 3; i++)
        mplb_calib_value(out, tiles[i], 0, "measured", "0 = off: the measured eff(n) curves include tile and wave effects",
                         0, 0);
    /* the peaks are measured best rates and eff(n) is measured relative to them */
    static const char *measured_peaks[] = {"bf16", "fp8_e4m3", "nvfp4", "mxfp4"};
    fprintf(out, "  mma_eff = {\n");
    for (int i = 0; i < 4; i++)
        fprintf(out, "    %s = { 1, src = \"measured\", ref = \"peak_tflops is the measured best rate; eff(n) below\" },\n",
                measured_peaks[i]);
    fprintf(out, "  },\n");
}

/* The expert's three matrices from a safetensors file. */
static int load_expert(const mplb_acc_opts *o, float **g, float **u, float **dn, int *d, int *f, char *src,
                       size_t srccap, mplb_err *err) {
    mplb_st st;
    int rc = mplb_st_open(o->weights, &st, err);
    if (rc < 0) return rc;
    static const char *pats[3][2] = {{"gate", "w1"}, {"up", "w3"}, {"down", "w2"}};
    int idx[3] = {-1, -1, -1};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < st.n && idx[k] < 0; i++) {
            const mplb_st_tensor *t = &st.tensors[i];
            if (t->ndim != 2 || (o->prefix && strncmp(t->name, o->prefix, strlen(o->prefix)) != 0)) continue;
            const char *leaf = strrchr(t->name, '.');
            leaf = leaf ? leaf + 1 : t->name;
            const char *base = t->name;
            if (strstr(base, pats[k][0]) || !strncmp(leaf, pats[k][1], 2)) idx[k] = i;
        }
    if (idx[0] < 0 || idx[1] < 0 || idx[2] < 0) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: no expert found (2-D tensors named *gate*/*up*/*down* or w1/w3/w2%s%s)",
                          o->weights, o->prefix ? " under prefix " : "", o->prefix ? o->prefix : "");
        mplb_st_close(&st);
        return rc;
    }
    const mplb_st_tensor *tg = &st.tensors[idx[0]], *tu = &st.tensors[idx[1]], *td = &st.tensors[idx[2]];
    *f = (int)tg->shape[0];
    *d = (int)tg->shape[1];
    if (tu->shape[0] != *f || tu->shape[1] != *d || td->shape[0] != *d || td->shape[1] != *f) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: shapes of '%s' [%lld,%lld], '%s', '%s' are not gate/up [f,d] and down [d,f]",
                          o->weights, tg->name, (long long)tg->shape[0], (long long)tg->shape[1], tu->name, td->name);
        mplb_st_close(&st);
        return rc;
    }
    int64_t c;
    if ((rc = mplb_st_read_f32(&st, idx[0], g, &c, err)) == 0 && (rc = mplb_st_read_f32(&st, idx[1], u, &c, err)) == 0)
        rc = mplb_st_read_f32(&st, idx[2], dn, &c, err);
    snprintf(src, srccap, "%s: %s, %s, %s", o->weights, tg->name, tu->name, td->name);
    mplb_st_close(&st);
    return rc;
}

int mplb_calibrate_accuracy(const mplb_acc_opts *o, FILE *out, mplb_err *err) {
    int d = 1024, f = 512, n = o && o->tokens > 0 ? o->tokens : 64, rc = 0;
    float *g = NULL, *u = NULL, *dn = NULL;
    char src[1400];
    uint64_t seed = o && o->seed ? o->seed : 1;
    if (o && o->weights) {
        if ((rc = load_expert(o, &g, &u, &dn, &d, &f, src, sizeof src, err)) < 0) { free(g); free(u); free(dn); return rc; }
    } else {
        /* the run's own weight source: expert 0 of layer 0 */
        size_t nw = (size_t)d * f;
        g = malloc(3 * nw * sizeof *g);
        if (!g) return mplb_err_set(err, MPLB_ENOMEM, "calibrate: out of memory");
        mplb_weights_fill(seed, 0, 0, d, f, g);
        u = g + nw;
        dn = g + 2 * nw;
        snprintf(src, sizeof src, "mplb_weights (Gaussian std 0.5/sqrt(d), 1%% outliers at 8x), seed %llu, d=%d, f=%d",
                 (unsigned long long)seed, d, f);
    }
    float *x = malloc((size_t)n * d * sizeof *x), *y = malloc((size_t)n * d * sizeof *y);
    double *ref = malloc((size_t)n * d * sizeof *ref);
    if (!x || !y || !ref) rc = mplb_err_set(err, MPLB_ENOMEM, "calibrate: out of memory");
    double e[MPLB_PREC_COUNT] = {0}, cs[MPLB_PREC_COUNT] = {0};
    if (rc == 0) {
        for (int t = 0; t < n; t++) mplb_weights_acts(seed, 0, 0, t, d, x + (size_t)t * d);
        mplb_ffn_ref_f64(g, u, dn, d, f, x, n, ref);
        for (int p = 0; p < MPLB_PREC_COUNT && rc == 0; p++) {
            mplb_expert_w w;
            mplb_ffn_ws ws = {0};
            if ((rc = mplb_expert_quantize(g, u, dn, d, f, (mplb_prec)p, NULL, &w, err)) < 0) break;
            rc = mplb_ffn_forward(&w, x, n, MPLB_PREC_BF16, y, &ws, err);
            if (rc == 0) mplb_ffn_compare(y, ref, (int64_t)n * d, &e[p], &cs[p]);
            mplb_ffn_ws_free(&ws);
            mplb_expert_free(&w);
        }
    }
    if (rc == 0) {
        fprintf(out, "-- Accuracy table measured by `mplb calibrate --accuracy` (mplb %s, git %s):\n", MPLB_VERSION, mplb_git_revision());
        fprintf(out, "-- relative L2 error and cosine of one expert's SwiGLU FFN (CPU kernel, weights\n");
        fprintf(out, "-- in each format, bf16 activations, %d tokens) against a float64 reference.\n", n);
        fprintf(out, "-- Weights: %s.\n", src);
        fprintf(out, "-- Use it in an experiment: accuracy = \"THIS_FILE\" (the run's error proxy then\n");
        fprintf(out, "-- weighs these errors; bf16 is the reference format and counts its own error).\n");
        fprintf(out, "return {\n  error = {");
        for (int p = 0; p < MPLB_PREC_COUNT; p++) fprintf(out, " %s = %.6g,", mplb_prec_name(p), e[p]);
        fprintf(out, " },\n  cosine = {");
        for (int p = 0; p < MPLB_PREC_COUNT; p++) fprintf(out, " %s = %.8g,", mplb_prec_name(p), cs[p]);
        fprintf(out, " },\n}\n");
    }
    free(g);
    if (o && o->weights) { free(u); free(dn); }
    free(x); free(y); free(ref);
    return rc;
}
