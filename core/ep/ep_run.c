/* One EP layer for real on this rank: see include/mplb/ep_run.h. */
#include "mplb/ep_run.h"
#include "mplb/workload.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mplb_ep_run {
    mplb_model m;
    uint64_t seed;
    const mplb_ep_transport *tp;
    int layer;
    float *w;                 /* [E][3][d*f] master weights of `layer` (only this rank's are filled) */
    mplb_expert_w *q;         /* [E * PREC] stored copies */
    uint8_t *have;
    mplb_expert_w *cur;       /* [E] the weights the layer runs with (views of q or converted) */
    mplb_expert_w *conv;      /* [E] converted online this layer */
    uint8_t *conv_used;
    uint8_t *runs;            /* [E] experts this rank computes in the current plan */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void heavy(mplb_rng *g, float *w, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) {
        double u1 = mplb_rng_uniform(g), u2 = mplb_rng_uniform(g);
        w[i] = (float)(scale * sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2));
    }
}

int mplb_ep_run_open(const mplb_model *m, uint64_t seed, const mplb_ep_transport *tp, mplb_ep_run **out, mplb_err *err) {
    *out = NULL;
    size_t per = (size_t)3 * m->hidden * m->ffn, E = (size_t)m->experts;
    if ((double)per * E * 4 > 4e9)
        return mplb_err_set(err, MPLB_ECONFIG, "transport: %d experts of %dx%d are too large to run for real here", m->experts,
                            m->hidden, m->ffn);
    mplb_ep_run *ep = calloc(1, sizeof *ep);
    if (!ep) return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    ep->m = *m;
    ep->seed = seed;
    ep->tp = tp;
    ep->layer = -1;
    ep->w = malloc(per * E * sizeof(float));
    ep->q = calloc(E * MPLB_PREC_COUNT, sizeof *ep->q);
    ep->have = calloc(E * MPLB_PREC_COUNT, 1);
    ep->cur = calloc(E, sizeof *ep->cur);
    ep->conv = calloc(E, sizeof *ep->conv);
    ep->conv_used = calloc(E, 1);
    ep->runs = calloc(E, 1);
    if (!ep->w || !ep->q || !ep->have || !ep->cur || !ep->conv || !ep->conv_used || !ep->runs) {
        mplb_ep_run_close(ep);
        return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    }
    *out = ep;
    return 0;
}

static void drop(mplb_ep_run *ep) {
    for (size_t i = 0; i < (size_t)ep->m.experts * MPLB_PREC_COUNT; i++)
        if (ep->have[i]) { mplb_expert_free(&ep->q[i]); ep->have[i] = 0; }
}

void mplb_ep_run_close(mplb_ep_run *ep) {
    if (!ep) return;
    if (ep->have) drop(ep);
    free(ep->w); free(ep->q); free(ep->have); free(ep->cur); free(ep->conv); free(ep->conv_used); free(ep->runs);
    free(ep);
}

static const float *master(mplb_ep_run *ep, int e) {
    return ep->w + (size_t)e * 3 * ep->m.hidden * ep->m.ffn;
}

static void load_layer(mplb_ep_run *ep, int layer) {
    if (ep->layer == layer) return;
    drop(ep);
    size_t per = (size_t)3 * ep->m.hidden * ep->m.ffn;
    for (int e = 0; e < ep->m.experts; e++) {
        mplb_rng g;
        mplb_rng_seed(&g, ep->seed ^ 0x77656967ULL ^ ((uint64_t)(layer + 1) << 32) ^ (uint64_t)(e + 1) * 0x9e3779b97f4a7c15ULL);
        heavy(&g, ep->w + (size_t)e * per, per, 0.5 / sqrt((double)ep->m.hidden));
    }
    ep->layer = layer;
}

typedef struct conv_job {
    mplb_ep_run *ep;
    const mplb_plan *plan;
    int rank;
    double t_conv;
    int rc;
    pthread_t th;
    int started;
} conv_job;

/* The online conversions of this rank's experts (runs beside the dispatch). */
static void *convert_all(void *arg) {
    conv_job *j = arg;
    mplb_ep_run *ep = j->ep;
    int d = ep->m.hidden, f = ep->m.ffn;
    size_t df = (size_t)d * f;
    double t0 = now_s();
    mplb_err err;
    for (int e = 0; e < ep->m.experts && j->rc == 0; e++) {
        mplb_prec p = j->plan->expert_prec[e];
        if (!ep->runs[e] || p == MPLB_PREC_BF16 ||
            j->plan->expert_mode[e] != MPLB_CONV_ONLINE) continue;
        const float *w = master(ep, e);
        if (mplb_expert_quantize(w, w + df, w + 2 * df, d, f, p, NULL, &ep->conv[e], &err) < 0) j->rc = -1;
        else ep->conv_used[e] = 1;
    }
    j->t_conv = now_s() - t0;
    return NULL;
}

/* ready(): join the conversion and point the online experts at their copies */
static int wait_conv(void *arg) {
    conv_job *j = arg;
    if (j->started) { pthread_join(j->th, NULL); j->started = 0; }
    for (int e = 0; e < j->ep->m.experts; e++)
        if (j->ep->conv_used[e]) j->ep->cur[e] = j->ep->conv[e];
    return j->rc;
}

/* Token moves as real routing: move (e, from, to, n) sends the first n (in
 * step order) of e's slots that `from` would compute to `to` instead; every
 * rank derives the same choice from the step's routing log. Returns this
 * rank's slots' ranks [tokens x k], or NULL when out of memory. */
static int32_t *route_moves(const mplb_routing *rt, const mplb_plan *plan, int me) {
    int k = rt->top_k, R = plan->R;
    const mplb_placement *pl = &plan->placement;
    size_t nk = (size_t)rt->tokens * k;
    int32_t *all = malloc((nk + 1) * sizeof *all);
    if (!all) return NULL;
    for (int64_t t = 0; t < rt->tokens; t++)
        for (int j = 0; j < k; j++) {
            int e = rt->tok_ids[t * k + j];
            all[t * k + j] = pl->ranks[(size_t)e * R + (int)((t + j) % pl->copies[e])];
        }
    for (int i = 0; i < plan->n_moves; i++) {
        const mplb_move *mv = &plan->moves[i];
        int64_t left = (int64_t)(mv->n + 0.5);
        for (size_t q = 0; q < nk && left > 0; q++)
            if (rt->tok_ids[q] == mv->e && all[q] == mv->from) { all[q] = mv->to; left--; }
    }
    size_t m = 0;   /* this rank's tokens, compacted in place */
    for (int64_t t = 0; t < rt->tokens; t++)
        if (rt->tok_src[t] == me) { memmove(all + m, all + (size_t)t * k, (size_t)k * sizeof *all); m += (size_t)k; }
    return all;
}

int mplb_ep_run_layer(mplb_ep_run *ep, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                      mplb_ep_times *all, mplb_err *err) {
    const mplb_ep_transport *tp = ep->tp;
    int R = tp->size, me = tp->rank, d = ep->m.hidden, f = ep->m.ffn, k = rt->top_k, E = ep->m.experts;
    if (!rt->has_dedup) return mplb_err_set(err, MPLB_EUNSUPP, "transport: the workload has no per-token choices to dispatch");
    if (plan->R != R) return mplb_err_set(err, MPLB_ECONFIG, "transport: %d processes, the cluster has %d ranks", R, plan->R);
    load_layer(ep, layer);
    /* this rank's tokens: those the routing log gives its source rank */
    int64_t n = 0;
    for (int64_t t = 0; t < rt->tokens; t++) n += rt->tok_src[t] == me;
    float *x = malloc((size_t)(n + 1) * d * sizeof *x), *y = malloc((size_t)(n + 1) * d * sizeof *y);
    float *gates = malloc((size_t)(n + 1) * k * sizeof *gates);
    int32_t *ids = malloc((size_t)(n + 1) * k * sizeof *ids);
    int64_t *keys = malloc((size_t)(n + 1) * sizeof *keys);
    int32_t *dests = NULL;
    if (plan->n_moves && (dests = route_moves(rt, plan, me)) == NULL) {
        free(x); free(y); free(gates); free(ids); free(keys);
        return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    }
    if (!x || !y || !gates || !ids || !keys) { free(x); free(y); free(gates); free(ids); free(keys); free(dests); return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory"); }
    mplb_rng g;
    mplb_rng_seed(&g, ep->seed ^ ((uint64_t)step << 40) ^ ((uint64_t)(layer + 1) << 20) ^ (uint64_t)(me + 1) * 0x2545f4914f6cdd1dULL);
    heavy(&g, x, (size_t)n * d, 1.0);
    int64_t i = 0;
    for (int64_t t = 0; t < rt->tokens; t++) {
        if (rt->tok_src[t] != me) continue;
        for (int j = 0; j < k; j++) { ids[i * k + j] = rt->tok_ids[t * k + j]; gates[i * k + j] = 1.0f / k; }
        keys[i++] = t;   /* replicas split as the cost model splits them */
    }
    /* stored formats come from the cache; online ones are converted beside the dispatch */
    size_t df = (size_t)d * f;
    int rc = 0;
    for (int e = 0; e < E; e++) ep->runs[e] = plan->placement.has[(size_t)e * R + me];
    for (int i = 0; i < plan->n_moves; i++)
        if (plan->moves[i].to == me && plan->moves[i].n >= 0.5) ep->runs[plan->moves[i].e] = 1;
    for (int e = 0; e < E && rc == 0; e++) {
        if (!ep->runs[e]) { memset(&ep->cur[e], 0, sizeof ep->cur[e]); continue; }
        mplb_prec p = plan->expert_prec[e];
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        mplb_prec stored = online ? MPLB_PREC_BF16 : p;
        size_t qi = (size_t)e * MPLB_PREC_COUNT + stored;
        if (!ep->have[qi]) {
            const float *w = master(ep, e);
            if ((rc = mplb_expert_quantize(w, w + df, w + 2 * df, d, f, stored, NULL, &ep->q[qi], err)) < 0) break;
            ep->have[qi] = 1;
        }
        ep->cur[e] = ep->q[qi];
    }
    /* the clock starts here: generating master weights and filling the
     * stored-format cache are set-up, not the layer */
    double t_start = now_s();
    conv_job job;
    memset(&job, 0, sizeof job);
    job.ep = ep;
    job.plan = plan;
    job.rank = me;
    if (rc == 0 && pthread_create(&job.th, NULL, convert_all, &job) == 0) job.started = 1;
    else if (rc == 0) convert_all(&job);
    mplb_ep_rank mine = {.tokens = n, .x = x, .ids = ids, .gates = gates, .y = y, .keys = keys, .dests = dests,
                         .ready = wait_conv, .ready_arg = &job};
    mplb_ep_stats st = {0};
    /* the experts read ep->cur; online ones switch to their converted copy in ready() */
    if (rc == 0) rc = mplb_ep_layer(tp, &plan->placement, d, k, ep->cur, plan->dispatch_prec, &mine, &st, err);
    if (job.started) wait_conv(&job);
    for (int e = 0; e < E; e++)
        if (ep->conv_used[e]) { mplb_expert_free(&ep->conv[e]); ep->conv_used[e] = 0; }
    free(x); free(y); free(gates); free(ids); free(keys); free(dests);
    if (rc < 0) return rc;
    mplb_ep_times t = {
        .ffn = st.t_ffn_s * 1e6, .exposed = st.t_ready_s * 1e6, .dispatch = (st.t_pack_s + st.t_dispatch_xchg_s) * 1e6,
        .combine = (st.t_alltoall_s - st.t_dispatch_xchg_s + st.t_combine_s) * 1e6, .total = (now_s() - t_start) * 1e6,
        .conv = job.t_conv * 1e6, .bytes_intra = (double)st.bytes_intra, .bytes_inter = (double)st.bytes_inter};
    /* gather to rank 0 through the same transport */
    uint8_t **send = calloc((size_t)R, sizeof *send), **recv = calloc((size_t)R, sizeof *recv);
    size_t *sn = calloc((size_t)R, sizeof *sn), *rn = calloc((size_t)R, sizeof *rn);
    if (!send || !recv || !sn || !rn) rc = mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    if (rc == 0) {
        send[0] = (uint8_t *)&t;
        sn[0] = sizeof t;
        rc = tp->alltoallv(tp->ctx, send, sn, recv, rn, err);
    }
    for (int r = 0; r < R && rc == 0 && me == 0; r++) {
        if (rn[r] == sizeof t) memcpy(&all[r], recv[r], sizeof t);
        else rc = mplb_err_set(err, MPLB_EIO, "transport: rank %d sent no timings", r);
    }
    if (recv) free(recv[0]);
    free(send); free(recv); free(sn); free(rn);
    return rc;
}
