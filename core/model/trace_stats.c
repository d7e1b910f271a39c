/* Routing statistics: see include/mplb/trace.h. */
#include "mplb/trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void mplb_stats_counts(const int32_t *c, int E, int k, int R, mplb_trace_stats *s) {
    memset(s, 0, sizeof *s);
    double sum = 0, mx = 0;
    for (int e = 0; e < E; e++) { sum += c[e]; if (c[e] > mx) mx = c[e]; }
    if (sum <= 0) { s->rank_imbalance = 1; return; }
    s->max_over_mean = mx * E / sum;
    s->lis = mplb_lis(c, E, (int64_t)(sum / k), k);
    /* Gini from the sorted loads: sum_i (2i - E + 1) x_i / (E sum) */
    int32_t *sorted = malloc((size_t)E * sizeof *sorted);
    if (sorted) {
        memcpy(sorted, c, (size_t)E * sizeof *sorted);
        qsort(sorted, (size_t)E, sizeof *sorted, cmp_i32);
        double g = 0;
        for (int i = 0; i < E; i++) g += (2.0 * i - E + 1) * sorted[i];
        s->gini = g / (E * sum);
        free(sorted);
    }
    double h = 0;
    for (int e = 0; e < E; e++)
        if (c[e] > 0) { double p = c[e] / sum; h -= p * log(p); }
    s->entropy_norm = E > 1 ? h / log(E) : 1;
    double *rl = calloc((size_t)R, sizeof *rl);
    if (rl) {
        for (int e = 0; e < E; e++) rl[(int)((int64_t)e * R / E)] += c[e];
        s->rank_imbalance = mplb_imbalance(rl, R);
        free(rl);
    }
}

/* the n largest of c (ties to the lower id) into mask */
static void top_n(const int32_t *c, int E, int n, uint8_t *mask) {
    memset(mask, 0, (size_t)E);
    for (int j = 0; j < n && j < E; j++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!mask[e] && (best < 0 || c[e] > c[best])) best = e;
        mask[best] = 1;
    }
}

double mplb_trace_persistence(const mplb_trace *t, int n) {
    if (t->steps < 2 || n < 1) return NAN;
    int E = t->experts;
    uint8_t *a = malloc((size_t)E), *b = malloc((size_t)E);
    double sum = 0;
    int cnt = 0;
    for (int s = 0; s + 1 < t->steps && a && b; s++)
        for (int l = 0; l < t->layers; l++) {
            top_n(t->counts + ((size_t)s * t->layers + l) * E, E, n, a);
            top_n(t->counts + ((size_t)(s + 1) * t->layers + l) * E, E, n, b);
            int keep = 0;
            for (int e = 0; e < E; e++) keep += a[e] && b[e];
            sum += (double)keep / (n < E ? n : E);
            cnt++;
        }
    free(a);
    free(b);
    return cnt ? sum / cnt : NAN;
}

double mplb_trace_phase_correlation(const mplb_trace *t) {
    if (!t->is_decode) return NAN;
    size_t m = (size_t)t->layers * t->experts;
    double *pre = calloc(m, sizeof *pre), *dec = calloc(m, sizeof *dec);
    int np = 0, nd = 0;
    for (int s = 0; s < t->steps && pre && dec; s++) {
        double *dst = t->is_decode[s] ? dec : pre;
        if (t->is_decode[s]) nd++; else np++;
        for (size_t i = 0; i < m; i++) dst[i] += t->counts[(size_t)s * m + i];
    }
    double r = NAN;
    if (pre && dec && np && nd) {
        double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < m; i++) { ma += pre[i]; mb += dec[i]; }
        ma /= m; mb /= m;
        for (size_t i = 0; i < m; i++) {
            sab += (pre[i] - ma) * (dec[i] - mb);
            saa += (pre[i] - ma) * (pre[i] - ma);
            sbb += (dec[i] - mb) * (dec[i] - mb);
        }
        if (saa > 0 && sbb > 0) r = sab / sqrt(saa * sbb);
    }
    free(pre);
    free(dec);
    return r;
}

void mplb_trace_layer_stats(const mplb_trace *t, int layer, int R, int n, double out[3]) {
    int E = t->experts;
    double lis = 0, ri = 0, pers = 0;
    uint8_t *a = malloc((size_t)E), *b = malloc((size_t)E);
    for (int s = 0; s < t->steps; s++) {
        const int32_t *c = t->counts + ((size_t)s * t->layers + layer) * E;
        mplb_trace_stats st;
        mplb_stats_counts(c, E, t->top_k, R, &st);
        lis += st.lis;
        ri += st.rank_imbalance;
        if (s + 1 < t->steps && a && b) {
            top_n(c, E, n, a);
            top_n(c + (size_t)t->layers * E, E, n, b);
            int keep = 0;
            for (int e = 0; e < E; e++) keep += a[e] && b[e];
            pers += (double)keep / (n < E ? n : E);
        }
    }
    free(a);
    free(b);
    out[0] = lis / t->steps;
    out[1] = ri / t->steps;
    out[2] = t->steps > 1 && n >= 1 ? pers / (t->steps - 1) : NAN;
}
