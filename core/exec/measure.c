/* Repeated, interleaved measurement: see include/mplb/measure.h. */
#include "mplb/measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one repeat leaves in the result besides the model's exact parts. */
typedef struct rep {
    double t_layer, t_dispatch, t_combine, t_compute_max, exposed_conv, bytes_intra, bytes_inter, error;
} rep;

struct mplb_measure {
    int R, repeats, warmup;
    rep reps[MPLB_REPEATS_MAX];
    double *rank_compute;      /* [repeats x R] */
    mplb_cost_result base;     /* the interleaved baseline's runs */
};

int mplb_measure_open(int R, int repeats, int warmup, mplb_measure **out, mplb_err *err) {
    *out = NULL;
    if (repeats < 1 || repeats > MPLB_REPEATS_MAX || warmup < 0)
        return mplb_err_set(err, MPLB_EINVAL, "measure: repeats %d (1..%d), warmup %d (>= 0)", repeats, MPLB_REPEATS_MAX,
                            warmup);
    mplb_measure *m = calloc(1, sizeof *m);
    if (!m) return mplb_err_set(err, MPLB_ENOMEM, "measure: out of memory");
    m->R = R;
    m->repeats = repeats;
    m->warmup = warmup;
    m->rank_compute = calloc((size_t)repeats * R, sizeof(double));
    int rc = m->rank_compute ? mplb_cost_result_alloc(&m->base, R, err) : mplb_err_set(err, MPLB_ENOMEM, "measure: out of memory");
    if (rc < 0) { mplb_measure_close(m); return rc; }
    *out = m;
    return 0;
}

void mplb_measure_close(mplb_measure *m) {
    if (!m) return;
    free(m->rank_compute);
    mplb_cost_result_free(&m->base);
    free(m);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mplb_median_low(const double *x, int n) {
    double s[MPLB_REPEATS_MAX];
    if (n < 1) return 0;
    if (n > MPLB_REPEATS_MAX) n = MPLB_REPEATS_MAX;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s[(n - 1) / 2];
}

void mplb_min_max(const double *x, int n, double *lo, double *hi) {
    *lo = *hi = n > 0 ? x[0] : 0;
    for (int i = 1; i < n; i++) {
        if (x[i] < *lo) *lo = x[i];
        if (x[i] > *hi) *hi = x[i];
    }
}

void mplb_measure_baseline(const mplb_cost_result *res, const mplb_cost_result *base, double *median, double *lo,
                           double *hi) {
    if (res->n_base > 0) {
        *median = mplb_median_low(res->rep_base, res->n_base);
        mplb_min_max(res->rep_base, res->n_base, lo, hi);
    } else {
        *median = base->t_layer;
        mplb_min_max(base->rep_layer, base->repeats > 0 ? base->repeats : 1, lo, hi);
        if (base->repeats <= 0) *lo = *hi = base->t_layer;
    }
}

static void keep(mplb_measure *m, int i, const mplb_cost_result *res, double error) {
    m->reps[i] = (rep){res->t_layer, res->t_dispatch, res->t_combine, res->t_compute_max, res->exposed_conv,
                       res->bytes_intra, res->bytes_inter, error};
    memcpy(m->rank_compute + (size_t)i * m->R, res->rank_compute, (size_t)m->R * sizeof(double));
}

int mplb_measure_eval(mplb_measure *m, mplb_measure_once once, void *ctx, const mplb_layer_in *in,
                      const mplb_plan *plan, mplb_cost_result *res, double *error, mplb_err *err) {
    int rc = 0, N = m->repeats;
    for (int i = 0; i < m->warmup && rc == 0; i++) rc = once(ctx, in, plan, res, error, err);
    double base_t[MPLB_REPEATS_MAX];
    /* the baseline is interleaved only when there is something to compare
     * (one repeat: the layer's own baseline evaluation stands) */
    int interleave = in->baseline && N > 1;
    double berr;
    for (int i = 0; i < N && rc == 0; i++) {
        int base_first = interleave && (i % 2 == 1);
        if (base_first && (rc = once(ctx, in, in->baseline, &m->base, &berr, err)) < 0) break;
        if ((rc = once(ctx, in, plan, res, error, err)) < 0) break;
        keep(m, i, res, *error);
        if (interleave && !base_first && (rc = once(ctx, in, in->baseline, &m->base, &berr, err)) < 0) break;
        if (interleave) base_t[i] = m->base.t_layer;
    }
    if (rc < 0) return rc;
    double t[MPLB_REPEATS_MAX];
    for (int i = 0; i < N; i++) t[i] = m->reps[i].t_layer;
    double med = mplb_median_low(t, N);
    int at = 0;
    while (at < N - 1 && t[at] != med) at++;
    const rep *r = &m->reps[at];
    res->t_layer = r->t_layer;
    res->t_dispatch = r->t_dispatch;
    res->t_combine = r->t_combine;
    res->t_compute_max = r->t_compute_max;
    res->exposed_conv = r->exposed_conv;
    res->bytes_intra = r->bytes_intra;
    res->bytes_inter = r->bytes_inter;
    *error = r->error;
    memcpy(res->rank_compute, m->rank_compute + (size_t)at * m->R, (size_t)m->R * sizeof(double));
    res->repeats = N;
    memcpy(res->rep_layer, t, (size_t)N * sizeof *t);
    res->n_base = interleave ? N : 0;
    if (interleave) memcpy(res->rep_base, base_t, (size_t)N * sizeof *base_t);
    return 0;
}

void mplb_measure_describe(int repeats, int warmup, char *buf, size_t cap) {
    int n = repeats > 0 ? repeats : 1;
    if (n > 1)
        snprintf(buf, cap, "; each time the median of %d repeats (a policy's plan interleaved with the baseline) after %d "
                 "warm-up run(s)", n, warmup);
    else snprintf(buf, cap, "; each time one run after %d warm-up run(s)", warmup);
}
