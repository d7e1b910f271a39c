/* Execute mode: see include/mplb/execute.h. */
#include "mplb/execute.h"
#include "mplb/dispatch.h"
#include "mplb/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mplb_exec {
    mplb_model m;
    uint64_t seed;
    const mplb_exec_device *dev;
    mplb_weights *w;
    int dev_layer;             /* the layer whose weights the device holds */
    int x_step, x_layer;       /* whose activations are in x */
    int ref_step, ref_layer;   /* whose all-bf16 outputs are in ref */
    int64_t cap;               /* tokens the buffers hold */
    float *x, *ref, *y;        /* [tokens x d] */
    float *xb, *yb;            /* one batch [tokens*k x d] */
    int32_t *dest;             /* [tokens*k] */
    uint8_t *pos;              /* [tokens*k] rank of the slot among its token's distinct ranks */
    float *part;               /* [tokens*k x d] per (token, rank) partial sums */
    int64_t *slots;            /* [tokens*k] slots by expert */
    int64_t *start;            /* [E+1] */
    int64_t *tmp;              /* [tokens*k] */
    mplb_ffn_ws ws;
};

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int mplb_exec_open(const mplb_model *m, uint64_t seed, const mplb_exec_device *dev, mplb_exec **out, mplb_err *err) {
    *out = NULL;
    mplb_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return mplb_err_set(err, MPLB_ENOMEM, "execute: out of memory");
    ex->m = *m;
    ex->seed = seed;
    ex->dev = dev;
    ex->dev_layer = ex->x_layer = ex->ref_layer = -1;
    ex->start = malloc(((size_t)m->experts + 1) * sizeof *ex->start);
    int rc = ex->start ? mplb_weights_open(m, seed, &ex->w, err) : mplb_err_set(err, MPLB_ENOMEM, "execute: out of memory");
    if (rc < 0) { mplb_exec_close(ex); return rc; }
    *out = ex;
    return 0;
}

void mplb_exec_close(mplb_exec *ex) {
    if (!ex) return;
    if (ex->dev && ex->dev->forget) ex->dev->forget(ex->dev->ctx);
    mplb_weights_close(ex->w);
    free(ex->x); free(ex->ref); free(ex->y); free(ex->xb); free(ex->yb);
    free(ex->dest); free(ex->slots); free(ex->start); free(ex->pos); free(ex->part); free(ex->tmp);
    mplb_ffn_ws_free(&ex->ws);
    free(ex);
}

static int grow(mplb_exec *ex, int64_t tokens, int k, mplb_err *err) {
    if (tokens <= ex->cap) return 0;
    size_t d = (size_t)ex->m.hidden, n = (size_t)tokens, nk = n * (size_t)k;
    free(ex->x); free(ex->ref); free(ex->y); free(ex->xb); free(ex->yb); free(ex->dest); free(ex->slots);
    free(ex->pos); free(ex->part); free(ex->tmp);
    ex->tmp = malloc(nk * sizeof *ex->tmp);
    ex->pos = malloc(nk);
    ex->part = malloc(nk * d * sizeof(float));
    ex->x = malloc(n * d * sizeof(float));
    ex->ref = malloc(n * d * sizeof(float));
    ex->y = malloc(n * d * sizeof(float));
    ex->xb = malloc(nk * d * sizeof(float));
    ex->yb = malloc(nk * d * sizeof(float));
    ex->dest = malloc(nk * sizeof *ex->dest);
    ex->slots = malloc(nk * sizeof *ex->slots);
    ex->x_layer = ex->ref_layer = -1;
    if (!ex->x || !ex->ref || !ex->y || !ex->xb || !ex->yb || !ex->dest || !ex->slots || !ex->pos || !ex->part || !ex->tmp) {
        ex->cap = 0;
        return mplb_err_set(err, MPLB_ENOMEM, "execute: out of memory for %lld tokens", (long long)tokens);
    }
    ex->cap = tokens;
    return 0;
}

/* One FFN on the CPU kernel or the device; *us is its measured time. */
static int run_ffn(mplb_exec *ex, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    if (ex->dev) return ex->dev->forward(ex->dev->ctx, e, w, x, n, y, us, err);
    double t0 = now_us();
    int rc = mplb_ffn_forward(w, x, n, MPLB_PREC_BF16, y, &ex->ws, err);
    *us = now_us() - t0;
    return rc;
}

/* An online conversion of e to p, timed on the device or this CPU. */
static int convert(mplb_exec *ex, int layer, int e, mplb_prec p, double *us, mplb_err *err) {
    if (ex->dev) {
        const float *mw = mplb_weights_master(ex->w, layer, e);
        size_t df = (size_t)ex->m.hidden * ex->m.ffn;
        return ex->dev->convert(ex->dev->ctx, mw, mw + df, mw + 2 * df, ex->m.hidden, ex->m.ffn, p, us, err);
    }
    mplb_expert_w tmp;
    int rc = mplb_weights_convert(ex->w, layer, e, p, &tmp, us, err);
    if (rc == 0) mplb_expert_free(&tmp);
    return rc;
}

/* 1 when v occurs among a[0..i) */
static int seen_before(const int32_t *a, int i, int32_t v) {
    for (int j = 0; j < i; j++)
        if (a[j] == v) return 1;
    return 0;
}

/* The layer's output y under plan (into out [tokens x d]); rank times and
 * conversions into res when it is not NULL. */
static int forward(mplb_exec *ex, int layer, const mplb_routing *rt, const mplb_plan *plan, float *out,
                   mplb_exec_result *res, mplb_err *err) {
    int R = plan->R, E = plan->E, k = rt->top_k, d = ex->m.hidden;
    size_t nk = (size_t)rt->tokens * k;
    int rc = mplb_split_dests(rt, plan, ex->dest, err);
    if (rc < 0) return rc;
    /* Slots by expert, then source rank, then step order: the order in
     * which an EP rank receives an expert's rows (two stable counting
     * sorts; the GEMM's rounding may depend on a row's place in the batch). */
    int64_t *by_src = calloc((size_t)R + 1, sizeof *by_src);
    if (!by_src) return mplb_err_set(err, MPLB_ENOMEM, "execute: out of memory");
    for (size_t q = 0; q < nk; q++) by_src[rt->tok_src[q / k] + 1]++;
    for (int r = 0; r < R; r++) by_src[r + 1] += by_src[r];
    for (size_t q = 0; q < nk; q++) ex->tmp[by_src[rt->tok_src[q / k]]++] = (int64_t)q;
    free(by_src);
    memset(ex->start, 0, ((size_t)E + 1) * sizeof *ex->start);
    for (size_t q = 0; q < nk; q++) ex->start[rt->tok_ids[q] + 1]++;
    for (int e = 0; e < E; e++) ex->start[e + 1] += ex->start[e];
    for (size_t i = 0; i < nk; i++) ex->slots[ex->start[rt->tok_ids[ex->tmp[i]]]++] = ex->tmp[i];
    for (int e = E; e > 0; e--) ex->start[e] = ex->start[e - 1];
    ex->start[0] = 0;
    /* Outputs summed as the EP layer sums them (mplb/dispatch.h): per
     * (token, rank) a partial over its slots in expert order, then the
     * partials in rank order, so both backends give the same floats. */
    for (int64_t t = 0; t < rt->tokens; t++) {
        const int32_t *dt = ex->dest + (size_t)t * k;
        for (int j = 0; j < k; j++) {
            int below = 0;   /* distinct ranks of the token below this slot's */
            for (int i = 0; i < k; i++) below += dt[i] < dt[j] && !seen_before(dt, i, dt[i]);
            ex->pos[(size_t)t * k + j] = (uint8_t)below;
        }
    }
    memset(ex->part, 0, nk * d * sizeof *ex->part);
    const float g = 1.0f / (float)k;
    for (int e = 0; e < E; e++) {
        int64_t s0 = ex->start[e], s1 = ex->start[e + 1];
        if (s0 == s1) continue;
        mplb_prec p = plan->expert_prec[e];
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        const mplb_expert_w *w;
        if ((rc = mplb_weights_get(ex->w, layer, e, p, &w, err)) < 0) return rc;
        double conv = 0;
        if (online && res && (rc = convert(ex, layer, e, p, &conv, err)) < 0) return rc;
        for (int r = 0; r < R; r++) {
            int64_t n = 0;
            for (int64_t i = s0; i < s1; i++) {
                int64_t q = ex->slots[i];
                if (ex->dest[q] != r) continue;
                if ((rc = mplb_dispatch_round(ex->x + (size_t)(q / k) * d, d, plan->dispatch_prec, ex->xb + (size_t)n * d, err)) < 0)
                    return rc;
                n++;
            }
            if (!n) continue;
            double us;
            if ((rc = run_ffn(ex, e, w, ex->xb, (int)n, ex->yb, &us, err)) < 0) return rc;
            if (res) {
                res->rank_us[r] += us;
                if (online && plan->placement.has[(size_t)e * R + r]) res->conv_us[r] += conv;
            }
            int64_t m = 0;
            for (int64_t i = s0; i < s1; i++) {
                int64_t q = ex->slots[i];
                if (ex->dest[q] != r) continue;
                float *pt = ex->part + ((size_t)(q / k) * k + ex->pos[q]) * d;
                const float *yr = ex->yb + (size_t)m++ * d;
                for (int c = 0; c < d; c++) pt[c] += g * yr[c];
            }
        }
    }
    for (int64_t t = 0; t < rt->tokens; t++) {
        float *yt = out + (size_t)t * d;
        int distinct = 0;
        for (int j = 0; j < k; j++) distinct += !seen_before(ex->dest + (size_t)t * k, j, ex->dest[(size_t)t * k + j]);
        memset(yt, 0, (size_t)d * sizeof *yt);
        for (int i = 0; i < distinct; i++) {
            const float *pt = ex->part + ((size_t)t * k + i) * d;
            for (int c = 0; c < d; c++) yt[c] += pt[c];
        }
    }
    return 0;
}

int mplb_exec_layer(mplb_exec *ex, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                    mplb_exec_result *out, mplb_err *err) {
    int R = plan->R, d = ex->m.hidden;
    if (!rt->has_dedup || !rt->tok_ids)
        return mplb_err_set(err, MPLB_EUNSUPP, "execute: experts run on real tokens, which needs the per-token routing log "
                            "(a synthetic workload or a per-token trace); counts-only traces run on backend \"model\"");
    int rc = grow(ex, rt->tokens, rt->top_k, err);
    if (rc < 0) return rc;
    memset(out->rank_us, 0, (size_t)R * sizeof(double));
    memset(out->conv_us, 0, (size_t)R * sizeof(double));
    out->error = 0;
    if (ex->dev && ex->dev_layer != layer) {   /* a new layer: the device drops its weights */
        if (ex->dev->forget) ex->dev->forget(ex->dev->ctx);
        ex->dev_layer = layer;
    }
    if (ex->x_step != step || ex->x_layer != layer) {
        for (int64_t t = 0; t < rt->tokens; t++) mplb_weights_acts(ex->seed, step, layer, t, d, ex->x + (size_t)t * d);
        ex->x_step = step;
        ex->x_layer = layer;
    }
    int ref = mplb_plan_is_bf16(plan);
    if ((rc = forward(ex, layer, rt, plan, ref ? ex->ref : ex->y, out, err)) < 0) return rc;
    if (ref) { ex->ref_step = step; ex->ref_layer = layer; return 0; }
    if (ex->ref_step != step || ex->ref_layer != layer) {
        /* no all-bf16 plan ran on this layer yet: compute the reference (untimed) */
        mplb_plan bp;
        if ((rc = mplb_plan_init(&bp, &plan->placement, err)) < 0) return rc;
        rc = forward(ex, layer, rt, &bp, ex->ref, NULL, err);
        mplb_plan_free(&bp);
        if (rc < 0) return rc;
        ex->ref_step = step;
        ex->ref_layer = layer;
    }
    /* per source rank, then over ranks in order: the EP backend's sums */
    double se = 0, sr = 0;
    for (int r = 0; r < R; r++) {
        double se_r = 0, sr_r = 0;
        for (int64_t t = 0; t < rt->tokens; t++) {
            if (rt->tok_src[t] != r) continue;
            const float *y = ex->y + (size_t)t * d, *y0 = ex->ref + (size_t)t * d;
            for (int c = 0; c < d; c++) {
                double df = (double)y[c] - y0[c];
                se_r += df * df;
                sr_r += (double)y0[c] * y0[c];
            }
        }
        se += se_r;
        sr += sr_r;
    }
    out->error = sr > 0 ? sqrt(se / sr) : 0;
    return 0;
}
