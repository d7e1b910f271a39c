/* Execute mode: see include/mplb/execute.h. */
#include "mplb/execute.h"
#include "mplb/workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void heavy(mplb_rng *g, float *w, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) {
        double u1 = mplb_rng_uniform(g), u2 = mplb_rng_uniform(g);
        double z = sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2);
        w[i] = (float)(scale * z * (mplb_rng_uniform(g) < 0.01 ? 8 : 1));
    }
}

void openblas_set_num_threads(int num_threads);

int mplb_exec_init(mplb_exec *ex, const mplb_model *m, uint64_t seed, mplb_err *err) {
    memset(ex, 0, sizeof *ex);
    openblas_set_num_threads(1); /* one rank at a time on one core: comparable timings */
    ex->m = *m;
    ex->seed = seed;
    ex->layer = ex->ref_layer = ex->ref_step = -1;
    size_t per = (size_t)3 * m->hidden * m->ffn, E = (size_t)m->experts;
    if ((double)per * E * 4 > 4e9)
        return mplb_err_set(err, MPLB_ECONFIG, "backend cpu: %d experts of %dx%d need %.1f GB of float weights per layer; "
                            "use a smaller model (execute mode runs every expert for real)", m->experts, m->hidden, m->ffn,
                            (double)per * E * 4 / 1e9);
    ex->w = malloc(per * E * sizeof(float));
    ex->q = calloc(E * MPLB_PREC_COUNT, sizeof *ex->q);
    ex->have = calloc(E * MPLB_PREC_COUNT, 1);
    ex->ref = calloc(E, sizeof *ex->ref);
    ex->ref_n = calloc(E, sizeof *ex->ref_n);
    if (!ex->w || !ex->q || !ex->have || !ex->ref || !ex->ref_n) {
        mplb_exec_free(ex);
        return mplb_err_set(err, MPLB_ENOMEM, "backend cpu: out of memory");
    }
    return 0;
}

int mplb_exec_init_device(mplb_exec *ex, const mplb_model *m, uint64_t seed, const mplb_exec_device *dev, mplb_err *err) {
    int rc = mplb_exec_init(ex, m, seed, err);
    if (rc == 0) ex->dev = dev;
    return rc;
}

/* One FFN on the CPU kernel or the device; *us is its measured time. */
static int run_ffn(mplb_exec *ex, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    if (ex->dev) return ex->dev->forward(ex->dev->ctx, e, w, x, n, y, us, err);
    double t0 = now_us();
    int rc = mplb_ffn_forward(w, x, n, MPLB_PREC_BF16, y, &ex->ws, err);
    *us = now_us() - t0;
    return rc;
}

static void drop_cache(mplb_exec *ex) {
    if (ex->dev && ex->dev->forget) ex->dev->forget(ex->dev->ctx);
    for (size_t i = 0; i < (size_t)ex->m.experts * MPLB_PREC_COUNT; i++)
        if (ex->have && ex->have[i]) { mplb_expert_free(&ex->q[i]); ex->have[i] = 0; }
    for (int e = 0; ex->ref && e < ex->m.experts; e++) { free(ex->ref[e]); ex->ref[e] = NULL; }
    ex->ref_layer = ex->ref_step = -1;
}

void mplb_exec_free(mplb_exec *ex) {
    drop_cache(ex);
    free(ex->w); free(ex->q); free(ex->have); free(ex->ref); free(ex->ref_n);
    free(ex->x); free(ex->y);
    mplb_ffn_ws_free(&ex->ws);
    memset(ex, 0, sizeof *ex);
}

static int load_layer(mplb_exec *ex, int layer) {
    if (ex->layer == layer) return 0;
    drop_cache(ex);
    size_t per = (size_t)3 * ex->m.hidden * ex->m.ffn;
    for (int e = 0; e < ex->m.experts; e++) {
        mplb_rng g;
        mplb_rng_seed(&g, ex->seed ^ 0x77656967ULL ^ ((uint64_t)(layer + 1) << 32) ^ (uint64_t)(e + 1) * 0x9e3779b97f4a7c15ULL);
        heavy(&g, ex->w + (size_t)e * per, per, 0.5 / sqrt((double)ex->m.hidden));
    }
    ex->layer = layer;
    return 0;
}

static const mplb_expert_w *weights(mplb_exec *ex, int e, mplb_prec p, double *conv_us, mplb_err *err) {
    size_t i = (size_t)e * MPLB_PREC_COUNT + p;
    if (!ex->have[i]) {
        size_t df = (size_t)ex->m.hidden * ex->m.ffn;
        const float *w = ex->w + (size_t)e * 3 * df;
        double t0 = now_us();
        if (mplb_expert_quantize(w, w + df, w + 2 * df, ex->m.hidden, ex->m.ffn, p, NULL, &ex->q[i], err) < 0) return NULL;
        if (conv_us) *conv_us = now_us() - t0;
        ex->have[i] = 1;
    }
    return &ex->q[i];
}

static int grow(mplb_exec *ex, size_t n) {
    if (n <= ex->cap) return 0;
    float *x = realloc(ex->x, n * sizeof *x);
    if (!x) return -1;
    ex->x = x;
    float *y = realloc(ex->y, n * sizeof *y);
    if (!y) return -1;
    ex->y = y;
    ex->cap = n;
    return 0;
}

/* The activations of (step, layer, expert): seeded, so every plan and the
 * bf16 reference see the same tokens. */
static void acts(const mplb_exec *ex, int step, int layer, int e, int64_t n, float *x) {
    mplb_rng g;
    mplb_rng_seed(&g, ex->seed ^ ((uint64_t)step << 40) ^ ((uint64_t)(layer + 1) << 20) ^ (uint64_t)(e + 7) * 0x2545f4914f6cdd1dULL);
    heavy(&g, x, (size_t)n * ex->m.hidden, 1.0);
}

int mplb_exec_layer(mplb_exec *ex, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                    mplb_exec_result *out, mplb_err *err) {
    int R = plan->R, E = plan->E, d = ex->m.hidden;
    load_layer(ex, layer);
    memset(out->rank_us, 0, (size_t)R * sizeof(double));
    memset(out->conv_us, 0, (size_t)R * sizeof(double));
    out->error = 0;
    int new_ref = ex->ref_step != step || ex->ref_layer != layer;
    if (new_ref) {
        for (int e = 0; e < E; e++) { free(ex->ref[e]); ex->ref[e] = NULL; }
        ex->ref_step = step;
        ex->ref_layer = layer;
    }
    double num = 0, den = 0;
    const mplb_placement *pl = &plan->placement;
    for (int e = 0; e < E; e++) {
        int64_t n = rt->expert_counts[e];
        if (n <= 0) continue;
        if (grow(ex, (size_t)n * d) < 0) return mplb_err_set(err, MPLB_ENOMEM, "backend cpu: out of memory");
        mplb_prec p = plan->expert_prec[e];
        /* the bf16 outputs of this expert for this (step, layer): the error reference */
        if (!ex->ref[e]) {
            const mplb_expert_w *wb = weights(ex, e, MPLB_PREC_BF16, NULL, err);
            if (!wb) return err->code;
            ex->ref[e] = malloc((size_t)n * d * sizeof(float));
            if (!ex->ref[e]) return mplb_err_set(err, MPLB_ENOMEM, "backend cpu: out of memory");
            acts(ex, step, layer, e, n, ex->x);
            double us;
            if (run_ffn(ex, e, wb, ex->x, (int)n, ex->ref[e], &us, err) < 0) return err->code;
            ex->ref_n[e] = n;
        }
        double conv = 0;
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        size_t df = (size_t)d * ex->m.ffn;
        const float *mw = ex->w + (size_t)e * 3 * df;
        if (online && ex->dev) {
            /* on the device: its conversion kernel, timed there */
            if (ex->dev->convert(ex->dev->ctx, mw, mw + df, mw + 2 * df, d, ex->m.ffn, p, &conv, err) < 0) return err->code;
        } else if (online && ex->have[(size_t)e * MPLB_PREC_COUNT + p]) {
            /* online conversion happens every layer: time a fresh one */
            mplb_expert_w tmp;
            double t0 = now_us();
            if (mplb_expert_quantize(mw, mw + df, mw + 2 * df, d, ex->m.ffn, p, NULL, &tmp, err) < 0) return err->code;
            conv = now_us() - t0;
            mplb_expert_free(&tmp);
        }
        const mplb_expert_w *wp = weights(ex, e, p, online && !ex->dev ? &conv : NULL, err);
        if (!wp) return err->code;
        acts(ex, step, layer, e, n, ex->x);
        /* each copy computes its share of the tokens, less the tokens moved
         * away, and a move's target computes what it received; the output
         * rows are the same whichever rank computes them */
        int64_t done = 0;
        for (int r = 0; r <= R && done < n; r++) {
            int c = 0;
            if (r == R) {   /* what rounding the moved shares left: the home copy */
                r = pl->ranks[(size_t)e * R];
                double us;
                if (run_ffn(ex, e, wp, ex->x + (size_t)done * d, (int)(n - done), ex->y + (size_t)done * d, &us, err) < 0)
                    return err->code;
                out->rank_us[r] += us;
                break;
            }
            while (c < pl->copies[e] && pl->ranks[(size_t)e * R + c] != r) c++;
            double sh = c < pl->copies[e] ? (double)(n / pl->copies[e] + (c < n % pl->copies[e])) : 0;
            for (int i = 0; i < plan->n_moves; i++) {
                const mplb_move *mv = &plan->moves[i];
                if (mv->e == e && mv->from == r) sh -= mv->n;
                if (mv->e == e && mv->to == r) sh += mv->n;
            }
            int64_t share = (int64_t)(sh + 0.5);
            if (share > n - done) share = n - done;
            if (share <= 0) continue;
            double us;
            if (run_ffn(ex, e, wp, ex->x + (size_t)done * d, (int)share, ex->y + (size_t)done * d, &us, err) < 0)
                return err->code;
            out->rank_us[r] += us;
            if (online) out->conv_us[r] += conv;
            done += share;
        }
        if (p != MPLB_PREC_BF16) {
            double se = 0, sr = 0;
            for (size_t i = 0; i < (size_t)n * d; i++) {
                double diff = (double)ex->y[i] - ex->ref[e][i];
                se += diff * diff;
                sr += (double)ex->ref[e][i] * ex->ref[e][i];
            }
            num += rt->importance[e] * (sr > 0 ? sqrt(se / sr) : 0);
        }
        den += rt->importance[e];
    }
    out->error = den > 0 ? num / den : 0;
    return 0;
}
