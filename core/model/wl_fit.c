/* Fitting the synthetic workload to a real trace: see include/mplb/wlfit.h. */
#include "mplb/wlfit.h"
#include "mplb/workload.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void mplb_wl_fit_free(mplb_wl_fit *f) {
    free(f->popularity); free(f->sigma); free(f->gamma);
    for (int m = 0; m < MPLB_FIT_NSTAT; m++) { free(f->real[m]); free(f->model[m]); }
    memset(f, 0, sizeof *f);
}

static double normal(mplb_rng *r) {
    double u = 1.0 - mplb_rng_uniform(r), v = mplb_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- time structure: regime rate and wander period -------------------- */

/* Correlation of the wander process at lag k, averaged over the phase in a
 * segment of P steps (z = cos th K_j + sin th K_{j+1}, th = pi/2 phase/P). */
static double wander_corr(int P, int k) {
    if (P <= 0) return 1;
    double sum = 0;
    for (int ph = 0; ph < P; ph++) {
        if (ph + k < P) sum += cos(1.5707963267948966 * k / P);
        else if (ph + k < 2 * P)
            sum += sin(1.5707963267948966 * ph / P) * cos(1.5707963267948966 * (ph + k - P) / P);
    }
    return sum / P;
}

/* Lag-1/2 autocorrelation of the per-step log-share residuals pooled over
 * layers, corrected for the demeaning bias (-1/(S-1) for independent steps)
 * and for Poisson counting noise (variance 1/n of a log count). */
static void residual_autocorr(const mplb_trace *t, double *rho1, double *rho2) {
    int S = t->steps, L = t->layers, E = t->experts;
    double cov[3] = {0}, var = 0, noise = 0;
    long n[3] = {0};
    double *r = malloc((size_t)S * E * sizeof *r);
    for (int l = 0; l < L && r; l++) {
        for (int s = 0; s < S; s++) {
            const int32_t *c = t->counts + ((size_t)s * L + l) * E;
            double sum = 0;
            for (int e = 0; e < E; e++) sum += c[e];
            for (int e = 0; e < E; e++) {
                r[(size_t)s * E + e] = log((c[e] + 0.5) / (sum + 0.5 * E));
                noise += 1.0 / (c[e] + 0.5);
            }
        }
        for (int e = 0; e < E; e++) {
            double m = 0;
            for (int s = 0; s < S; s++) m += r[(size_t)s * E + e];
            m /= S;
            for (int s = 0; s < S; s++) r[(size_t)s * E + e] -= m;
        }
        for (int k = 0; k < 3; k++)
            for (int s = 0; s + k < S; s++)
                for (int e = 0; e < E; e++) { cov[k] += r[(size_t)s * E + e] * r[(size_t)(s + k) * E + e]; n[k]++; }
    }
    free(r);
    var = n[0] ? cov[0] / n[0] : 0;
    noise = noise / ((double)S * L * E) * (1 - 1.0 / S);
    double sig = var - noise;          /* the fluctuation's own variance, demeaned */
    *rho1 = *rho2 = NAN;
    if (S < 3 || !(sig > 1e-12)) return;
    double v = sig * S / (S - 1);      /* undo the demeaning's shrinkage */
    *rho1 = (cov[1] / n[1] + v / S) / v;
    if (S >= 4) *rho2 = (cov[2] / n[2] + v / S) / v;
}

static void fit_time(mplb_wl_fit *f, const mplb_trace *t) {
    residual_autocorr(t, &f->rho1, &f->rho2);
    f->regime_rate = 1;
    f->wander_period = 0;
    if (isnan(f->rho1)) return;        /* under 3 steps: steps taken as independent */
    double r1 = fmin(fmax(f->rho1, 0), 1), r2 = isnan(f->rho2) ? NAN : fmin(fmax(f->rho2, 0), 1);
    static const int periods[] = {0, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 4096};
    double best = INFINITY;
    for (size_t pi = 0; pi < sizeof periods / sizeof periods[0]; pi++) {
        int P = periods[pi];
        double c1 = wander_corr(P, 1), c2 = wander_corr(P, 2);
        for (int qi = 0; qi <= 200; qi++) {
            double q = qi / 200.0, a1 = (1 - q) * c1, a2 = (1 - q) * (1 - q) * c2;
            double d = (a1 - r1) * (a1 - r1) + (isnan(r2) ? 0 : (a2 - r2) * (a2 - r2));
            if (d < best - 1e-6) { best = d; f->regime_rate = q; f->wander_period = P; }
        }
    }
}

/* ---- per-layer skew and fluctuation ----------------------------------- */

typedef struct sim {
    int N, E, k, R, n;
    const double *logbase;   /* [E] log of the mean shares */
    const double *z, *eps;   /* [N*E] fluctuation process, counting noise */
    const double *tokens;    /* [N] */
    double *p, *cnt;         /* scratch [E] */
    uint8_t *a, *b;
} sim;

/* Rosen's successive-sampling approximation: a token's k distinct draws
 * include e with probability 1 - exp(-lambda p_e), sum = k. */
static void inclusion(double *p, int E, int k) {
    if (k == 1) return;
    double lam = k;
    for (int it = 0; it < 50; it++) {
        double fv = -k, d = 0;
        for (int e = 0; e < E; e++) { double x = exp(-lam * p[e]); fv += 1 - x; d += p[e] * x; }
        if (fabs(fv) < 1e-9 * k || d <= 0) break;
        lam -= fv / d;
    }
    for (int e = 0; e < E; e++) p[e] = 1 - exp(-lam * p[e]);
}

static void top_mask(const double *c, int E, int n, uint8_t *m) {
    memset(m, 0, (size_t)E);
    for (int j = 0; j < n && j < E; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) if (!m[e] && (best < 0 || c[e] > c[best])) best = e;
        m[best] = 1;
    }
}

/* Expected (LIS, rank max/mean, persistence) of the model (gamma, sigma). */
static void simulate(sim *S, double gamma, double sigma, double out[3]) {
    int E = S->E, R = S->R;
    double lis = 0, ri = 0, pers = 0, rl[1024];
    for (int s = 0; s < S->N; s++) {
        double sum = 0, mx = 0, tot = 0;
        for (int e = 0; e < E; e++) { S->p[e] = exp(gamma * S->logbase[e] + sigma * S->z[(size_t)s * E + e]); sum += S->p[e]; }
        for (int e = 0; e < E; e++) S->p[e] /= sum;
        inclusion(S->p, E, S->k);
        for (int e = 0; e < E; e++) {
            double T = S->tokens[s], m = T * S->p[e];
            double c = m + sqrt(fmax(m * (1 - S->p[e]), 0)) * S->eps[(size_t)s * E + e];
            S->cnt[e] = c > 0 ? c : 0;
            tot += S->cnt[e];
            if (S->cnt[e] > mx) mx = S->cnt[e];
        }
        lis += tot > 0 ? E * mx / tot : 1;
        int RR = R < 1024 ? R : 1024;
        memset(rl, 0, (size_t)RR * sizeof *rl);
        for (int e = 0; e < E; e++) rl[(int)((int64_t)e * RR / E)] += S->cnt[e];
        double rmax = 0;
        for (int r = 0; r < RR; r++) if (rl[r] > rmax) rmax = rl[r];
        ri += tot > 0 ? rmax * RR / tot : 1;
        uint8_t *cur = (s & 1) ? S->b : S->a, *prev = (s & 1) ? S->a : S->b;
        top_mask(S->cnt, E, S->n, cur);
        if (s > 0) {
            int keep = 0;
            for (int e = 0; e < E; e++) keep += cur[e] && prev[e];
            pers += (double)keep / (S->n < E ? S->n : E);
        }
    }
    out[0] = lis / S->N;
    out[1] = ri / S->N;
    out[2] = S->N > 1 ? pers / (S->N - 1) : NAN;
}

static double miss(const double *m, const double *real) {
    double d = 0;
    for (int i = 0; i < 3; i++) {
        if (isnan(real[i])) continue;
        double x = (m[i] - real[i]) / fmax(fabs(real[i]), 0.05);
        d += log1p(4 * x * x);   /* grows slowly: an unreachable target (noise) must not drag the others */
    }
    return d;
}

/* Coarse grid (rounds = 1), then refinements around the best (gamma,
 * sigma); returns the miss. */
static double search(sim *S, const double real[3], int fix_sigma, int rounds, double *gamma, double *sigma,
                     double model[3]) {
    double g0 = 0, s0 = 0, best = INFINITY, step = 0.25, m[3];
    double glo = 0, ghi = 3, slo = 0, shi = fix_sigma ? 0 : 3;
    for (int round = 0; round < rounds; round++) {
        for (double g = glo; g <= ghi + 1e-9; g += step)
            for (double s = slo; s <= shi + 1e-9; s += step) {
                simulate(S, g, s, m);
                double d = miss(m, real);
                if (d < best) { best = d; g0 = g; s0 = s; memcpy(model, m, sizeof m); }
            }
        glo = fmax(0, g0 - step); ghi = g0 + step;
        slo = fmax(0, s0 - step); shi = fix_sigma ? 0 : s0 + step;
        step /= 4;
    }
    *gamma = g0;
    *sigma = s0;
    return best;
}

/* log of the layer's mean shares over steps (+0.5: no expert is never chosen) */
static void layer_logbase(const mplb_trace *t, int l, double *logbase) {
    int S = t->steps, L = t->layers, E = t->experts;
    for (int e = 0; e < E; e++) logbase[e] = 0;
    for (int s = 0; s < S; s++) {
        const int32_t *c = t->counts + ((size_t)s * L + l) * E;
        double sum = 0;
        for (int e = 0; e < E; e++) sum += c[e];
        for (int e = 0; e < E; e++) logbase[e] += (c[e] + 0.5) / (sum + 0.5 * E);
    }
    for (int e = 0; e < E; e++) logbase[e] = log(logbase[e] / S);
}

/* The fluctuation process of wl_time.c (regimes, wander) drawn for N steps. */
static void draw_z(mplb_rng *rng, int N, int E, double q, int P, double *z) {
    double *k0 = malloc(2 * (size_t)E * sizeof *k0), *k1 = k0 ? k0 + E : NULL;
    if (!k0) { memset(z, 0, (size_t)N * E * sizeof *z); return; }
    int start = 0, knot = -1;
    for (int s = 0; s < N; s++) {
        if (s == 0 || mplb_rng_uniform(rng) < q) { start = s; knot = -1; }
        int d = s - start, j = P > 0 ? d / P : 0;
        if (j != knot) {   /* next segment: the old end knot is the new start */
            if (knot >= 0 && j == knot + 1) memcpy(k0, k1, (size_t)E * sizeof *k0);
            else for (int e = 0; e < E; e++) k0[e] = normal(rng);
            for (int e = 0; e < E; e++) k1[e] = normal(rng);
            knot = j;
        }
        double th = P > 0 ? 1.5707963267948966 * (d % P) / P : 0, c = cos(th), sn = sin(th);
        for (int e = 0; e < E; e++) z[(size_t)s * E + e] = c * k0[e] + sn * k1[e];
    }
    free(k0);
}

int mplb_wl_fit_trace(const mplb_trace *t, int R, mplb_wl_fit *f, mplb_err *err) {
    memset(f, 0, sizeof *f);
    int S = t->steps, L = t->layers, E = t->experts, k = t->top_k;
    f->layers = L; f->experts = E; f->top_k = k; f->steps = S; f->R = R;
    /* simulated steps: persistence averages (N - 1) k top-k slots, so N
     * k >= 4096 keeps its standard error near 1% (the fit would otherwise
     * chase its own simulation noise); choosing the regime rate uses N / 4 */
    int N = 4096 / k;
    N = N < 128 ? 128 : N > 2048 ? 2048 : N;
    int Nq = N / 4;
    f->popularity = calloc((size_t)L * E, sizeof(double));
    f->sigma = calloc((size_t)L, sizeof(double));
    f->gamma = calloc((size_t)L, sizeof(double));
    int ok = f->popularity && f->sigma && f->gamma;
    for (int m = 0; m < MPLB_FIT_NSTAT; m++) {
        f->real[m] = calloc((size_t)L, sizeof(double));
        f->model[m] = calloc((size_t)L, sizeof(double));
        ok = ok && f->real[m] && f->model[m];
    }
    double *logbase = malloc((size_t)E * sizeof *logbase), *z = malloc((size_t)N * E * sizeof *z);
    double *eps = malloc((size_t)N * E * sizeof *eps), *tok = malloc((size_t)N * sizeof *tok);
    double *p = malloc((size_t)E * sizeof *p), *cnt = malloc((size_t)E * sizeof *cnt);
    uint8_t *ma = malloc((size_t)E), *mb = malloc((size_t)E);
    if (!ok || !logbase || !z || !eps || !tok || !p || !cnt || !ma || !mb) {
        free(logbase); free(z); free(eps); free(tok); free(p); free(cnt); free(ma); free(mb);
        mplb_wl_fit_free(f);
        return mplb_err_set(err, MPLB_ENOMEM, "trace fit: out of memory");
    }
    /* phases and tokens */
    double tp = 0, td = 0, vis = 0, all = 0;
    int np = 0, nd = 0;
    for (int s = 0; s < S; s++) {
        double sum = 0;
        for (int e = 0; e < E; e++) sum += t->counts[(size_t)s * L * E + e];
        int dec = t->is_decode && t->is_decode[s];
        if (dec) { td += sum / k; nd++; } else { tp += sum / k; np++; }
    }
    if (t->vision_counts)
        for (size_t i = 0; i < (size_t)S * L * E; i++) { vis += t->vision_counts[i]; all += t->counts[i]; }
    f->vision_frac = all > 0 ? vis / all : 0;
    f->tokens = np ? (int64_t)llround(tp / np) : (int64_t)llround(td / nd);
    f->decode_tokens = nd ? (int64_t)llround(td / nd) : 0;
    f->prefill_every = np && nd ? (int)lround((double)S / np) : 1;
    fit_time(f, t);
    mplb_rng rng;
    mplb_rng_seed(&rng, 0x666974ULL);
    for (int s = 0; s < N; s++) {  /* the trace's own tokens per step, cycled */
        double sum = 0;
        for (int e = 0; e < E; e++) sum += t->counts[((size_t)(s % S) * L) * E + e];
        tok[s] = sum / k;
    }
    /* the regime rate is chosen with the per-layer skew (persistence is one
     * of the targets); the wander period comes from the autocorrelation */
    static const double rates[] = {1, 0.8, 0.6, 0.4, 0.2, 0.1, 0.03, 0.01, 0};
    int nr = (int)(sizeof rates / sizeof rates[0]);
    double best_q = f->regime_rate, best_miss = INFINITY;
    for (int qi = -1; qi < nr && S > 1; qi++) {
        double q = qi < 0 ? f->regime_rate : rates[qi], miss_q = 0;
        mplb_rng_seed(&rng, 0x666974ULL);
        for (int l = 0; l < L; l++) {
            double real[3], g, sg, model[3];
            mplb_trace_layer_stats(t, l, R, k, real);
            layer_logbase(t, l, logbase);
            draw_z(&rng, Nq, E, q, f->wander_period, z);
            for (size_t i = 0; i < (size_t)Nq * E; i++) eps[i] = normal(&rng);
            sim sm = {Nq, E, k, R, k, logbase, z, eps, tok, p, cnt, ma, mb};
            miss_q += search(&sm, real, 0, 2, &g, &sg, model);
        }
        if (!isnan(f->rho1)) {   /* and the residuals' autocorrelation, which pins q down */
            /* rough standard error: regime changes are global events, so a
             * trace holds about S - 1 observations of them, not S E L */
            double se = fmax(0.05, 1 / sqrt((double)(S - 1)));
            double a1 = (1 - q) * wander_corr(f->wander_period, 1), x = (a1 - fmin(fmax(f->rho1, 0), 1)) / se;
            miss_q += 0.5 * x * x;
        }
        if (miss_q < best_miss - 1e-9) { best_miss = miss_q; best_q = q; }
    }
    f->regime_rate = best_q;
    if (best_q >= 1) f->wander_period = 0;   /* every step a new regime: nothing to wander */
    mplb_rng_seed(&rng, 0x666974ULL);
    for (int l = 0; l < L; l++) {
        double real[3];
        mplb_trace_layer_stats(t, l, R, k, real);
        layer_logbase(t, l, logbase);
        draw_z(&rng, N, E, f->regime_rate, f->wander_period, z);
        for (size_t i = 0; i < (size_t)N * E; i++) eps[i] = normal(&rng);
        sim sm = {N, E, k, R, k, logbase, z, eps, tok, p, cnt, ma, mb};
        double model[3];
        search(&sm, real, S < 2, 3, &f->gamma[l], &f->sigma[l], model);
        double sum = 0;
        for (int e = 0; e < E; e++) sum += f->popularity[(size_t)l * E + e] = exp(f->gamma[l] * logbase[e]);
        for (int e = 0; e < E; e++) f->popularity[(size_t)l * E + e] /= sum;
        for (int m = 0; m < MPLB_FIT_NSTAT; m++) { f->real[m][l] = real[m]; f->model[m][l] = model[m]; }
    }
    free(logbase); free(z); free(eps); free(tok); free(p); free(cnt); free(ma); free(mb);
    return 0;
}

static double median(const double *x, int n) {
    double v[4096];
    int m = 0;
    for (int i = 0; i < n && m < 4096; i++) if (!isnan(x[i])) v[m++] = x[i];
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { double y = v[j]; v[j] = v[j - 1]; v[j - 1] = y; }
    return m == 0 ? NAN : m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

int mplb_wl_fit_write(const mplb_wl_fit *f, const mplb_trace *t, const char *path, int force, mplb_err *err) {
    struct stat st;
    if (!force && stat(path, &st) == 0)
        return mplb_err_set(err, MPLB_EIO, "%s exists (use --force to overwrite)", path);
    FILE *fp = fopen(path, "w");
    if (!fp) return mplb_err_set(err, MPLB_EIO, "%s: cannot write: %s", path, strerror(errno));
    static const char *names[] = {"LIS", "rank max/mean", "persistence"};
    fprintf(fp, "-- Synthetic workload fitted by `mplb trace fit` to %s\n", t->path);
    fprintf(fp, "-- model: %s; source: %s; license of the data: %s\n", t->model, t->source, t->license);
    fprintf(fp, "-- trace: %d steps x %d layers x %d experts, top-%d; statistics on %d contiguous ranks.\n",
            f->steps, f->layers, f->experts, f->top_k, f->R);
    fprintf(fp, "-- residual autocorrelation lag 1 %.3f, lag 2 %.3f -> regime_rate %.3f, wander_period %d\n",
            f->rho1, f->rho2, f->regime_rate, f->wander_period);
    for (int m = 0; m < MPLB_FIT_NSTAT; m++)
        fprintf(fp, "-- median over layers of %s: real %.4f, model %.4f\n", names[m], median(f->real[m], f->layers),
                median(f->model[m], f->layers));
    fprintf(fp, "-- per layer: gamma (skew exponent on the mean shares) =");
    for (int l = 0; l < f->layers; l++) fprintf(fp, " %.3f", f->gamma[l]);
    fprintf(fp, "\nreturn {\n  kind = \"synthetic\",\n  steps = %d,\n  tokens = %lld,\n", f->steps, (long long)f->tokens);
    if (f->prefill_every > 1)
        fprintf(fp, "  prefill_every = %d,\n  decode_tokens = %lld,\n", f->prefill_every, (long long)f->decode_tokens);
    if (f->vision_frac > 0) fprintf(fp, "  vision_frac = %.6f,\n", f->vision_frac);
    fprintf(fp, "  regime_rate = %.4f,\n  wander_period = %d,\n", f->regime_rate, f->wander_period);
    fprintf(fp, "  layer_sigma = {");
    for (int l = 0; l < f->layers; l++) fprintf(fp, "%s%.4f", l ? ", " : "", f->sigma[l]);
    fprintf(fp, "},\n  popularity = {\n");
    for (int l = 0; l < f->layers; l++) {
        fprintf(fp, "    {");
        for (int e = 0; e < f->experts; e++) fprintf(fp, "%s%.6g", e ? "," : "", f->popularity[(size_t)l * f->experts + e]);
        fprintf(fp, "},\n");
    }
    fprintf(fp, "  },\n}\n");
    if (fclose(fp) != 0) return mplb_err_set(err, MPLB_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}
