/* The one weight source: see include/mplb/weights.h. */
#include "mplb/weights.h"
#include "mplb/workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mplb_weights {
    mplb_model m;
    uint64_t seed;
    int layer;             /* whose masters are in w; -1 none */
    float *w;              /* [E][3][d*f] */
    mplb_expert_w *q;      /* [E * MPLB_PREC_COUNT] stored copies of `layer` */
    uint8_t *have;
};

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Box-Muller; `outliers`: 1% of entries x8 (heavy tails, as real weights) */
static void gaussian(mplb_rng *g, float *x, size_t n, double scale, int outliers) {
    for (size_t i = 0; i < n; i++) {
        double u1 = mplb_rng_uniform(g), u2 = mplb_rng_uniform(g);
        double z = sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2);
        if (outliers && mplb_rng_uniform(g) < 0.01) z *= 8;
        x[i] = (float)(scale * z);
    }
}

void mplb_weights_fill(uint64_t seed, int layer, int e, int d, int f, float *dst) {
    mplb_rng g;
    mplb_rng_seed(&g, seed ^ 0x77656967ULL ^ ((uint64_t)(layer + 1) << 32) ^ (uint64_t)(e + 1) * 0x9e3779b97f4a7c15ULL);
    gaussian(&g, dst, (size_t)3 * d * f, 0.5 / sqrt((double)d), 1);
}

void mplb_weights_acts(uint64_t seed, int step, int layer, int64_t t, int d, float *x) {
    mplb_rng g;
    mplb_rng_seed(&g, seed ^ 0x61637473ULL ^ ((uint64_t)step << 44) ^ ((uint64_t)(layer + 1) << 32) ^
                          (uint64_t)(t + 1) * 0x2545f4914f6cdd1dULL);
    gaussian(&g, x, (size_t)d, 1.0, 0);
}

int mplb_weights_open(const mplb_model *m, uint64_t seed, mplb_weights **out, mplb_err *err) {
    *out = NULL;
    size_t per = (size_t)3 * m->hidden * m->ffn, E = (size_t)m->experts;
    if ((double)per * E * 4 > 4e9)
        return mplb_err_set(err, MPLB_ECONFIG, "weights: %d experts of %dx%d need %.1f GB of float weights per layer; "
                            "running experts for real needs a smaller model (use a smaller model, or backend \"model\")", m->experts, m->hidden, m->ffn,
                            (double)per * E * 4 / 1e9);
    mplb_weights *w = calloc(1, sizeof *w);
    if (!w) return mplb_err_set(err, MPLB_ENOMEM, "weights: out of memory");
    w->m = *m;
    w->seed = seed;
    w->layer = -1;
    w->w = malloc(per * E * sizeof(float));
    w->q = calloc(E * MPLB_PREC_COUNT, sizeof *w->q);
    w->have = calloc(E * MPLB_PREC_COUNT, 1);
    if (!w->w || !w->q || !w->have) {
        mplb_weights_close(w);
        return mplb_err_set(err, MPLB_ENOMEM, "weights: out of memory");
    }
    *out = w;
    return 0;
}

static void drop(mplb_weights *w) {
    for (size_t i = 0; i < (size_t)w->m.experts * MPLB_PREC_COUNT; i++)
        if (w->have[i]) { mplb_expert_free(&w->q[i]); w->have[i] = 0; }
}

void mplb_weights_close(mplb_weights *w) {
    if (!w) return;
    if (w->have) drop(w);
    free(w->w); free(w->q); free(w->have);
    free(w);
}

static void load(mplb_weights *w, int layer) {
    if (w->layer == layer) return;
    drop(w);
    size_t per = (size_t)3 * w->m.hidden * w->m.ffn;
    for (int e = 0; e < w->m.experts; e++) mplb_weights_fill(w->seed, layer, e, w->m.hidden, w->m.ffn, w->w + (size_t)e * per);
    w->layer = layer;
}

const float *mplb_weights_master(mplb_weights *w, int layer, int e) {
    load(w, layer);
    return w->w + (size_t)e * 3 * w->m.hidden * w->m.ffn;
}

int mplb_weights_get(mplb_weights *w, int layer, int e, mplb_prec p, const mplb_expert_w **out, mplb_err *err) {
    const float *mw = mplb_weights_master(w, layer, e);
    size_t i = (size_t)e * MPLB_PREC_COUNT + p, df = (size_t)w->m.hidden * w->m.ffn;
    if (!w->have[i]) {
        int rc = mplb_expert_quantize(mw, mw + df, mw + 2 * df, w->m.hidden, w->m.ffn, p, NULL, &w->q[i], err);
        if (rc < 0) return rc;
        w->have[i] = 1;
    }
    *out = &w->q[i];
    return 0;
}

int mplb_weights_convert(mplb_weights *w, int layer, int e, mplb_prec p, mplb_expert_w *out, double *us, mplb_err *err) {
    const float *mw = mplb_weights_master(w, layer, e);
    size_t df = (size_t)w->m.hidden * w->m.ffn;
    double t0 = now_us();
    int rc = mplb_expert_quantize(mw, mw + df, mw + 2 * df, w->m.hidden, w->m.ffn, p, NULL, out, err);
    if (us) *us = now_us() - t0;
    return rc;
}
