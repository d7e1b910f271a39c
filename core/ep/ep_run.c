/* One EP layer for real on this rank: see include/mplb/ep_run.h. */
#include "mplb/ep_run.h"
#include "mplb/split.h"
#include "mplb/weights.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mplb_ep_run {
    mplb_model m;
    uint64_t seed;
    const mplb_ep_transport *tp;
    mplb_weights *w;
    mplb_expert_w *cur;       /* [E] the weights the layer runs with (views of the cache or converted) */
    mplb_expert_w *conv;      /* [E] converted online this layer */
    uint8_t *conv_used;
    uint8_t *runs;            /* [E] experts this rank computes in the current plan */
    int ref_step, ref_layer;  /* whose all-bf16 outputs of this rank's tokens are in ref */
    float *ref;
    int64_t ref_cap;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mplb_ep_run_open(const mplb_model *m, uint64_t seed, const mplb_ep_transport *tp, mplb_ep_run **out, mplb_err *err) {
    *out = NULL;
    mplb_ep_run *ep = calloc(1, sizeof *ep);
    if (!ep) return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    ep->m = *m;
    ep->seed = seed;
    ep->tp = tp;
    ep->ref_layer = -1;
    size_t E = (size_t)m->experts;
    ep->cur = calloc(E, sizeof *ep->cur);
    ep->conv = calloc(E, sizeof *ep->conv);
    ep->conv_used = calloc(E, 1);
    ep->runs = calloc(E, 1);
    int rc = ep->cur && ep->conv && ep->conv_used && ep->runs ? mplb_weights_open(m, seed, &ep->w, err)
                                                                : mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    if (rc < 0) { mplb_ep_run_close(ep); return rc; }
    *out = ep;
    return 0;
}

void mplb_ep_run_close(mplb_ep_run *ep) {
    if (!ep) return;
    mplb_weights_close(ep->w);
    free(ep->cur); free(ep->conv); free(ep->conv_used); free(ep->runs); free(ep->ref);
    free(ep);
}

typedef struct conv_job {
    mplb_ep_run *ep;
    const mplb_plan *plan;
    int rank, layer;
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
        const float *w = mplb_weights_master(ep->w, j->layer, e);   /* loaded before the thread started */
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

/* One layer under plan, collectively: this rank's tokens (those the routing
 * log starts on it) through the dispatch, the experts and the combine; y
 * [n x d] its outputs, *t its times. Slots go where the split rule sends
 * them (mplb_split_dests: replicas and moves alike on every process). */
static int run_once(mplb_ep_run *ep, int step, int layer, const mplb_routing *rt, const mplb_plan *plan, float *y,
                    mplb_ep_times *t, mplb_err *err) {
    const mplb_ep_transport *tp = ep->tp;
    int R = tp->size, me = tp->rank, d = ep->m.hidden, k = rt->top_k, E = ep->m.experts;
    size_t nk = (size_t)rt->tokens * k;
    int64_t n = 0;
    for (int64_t i = 0; i < rt->tokens; i++) n += rt->tok_src[i] == me;
    float *x = malloc((size_t)(n + 1) * d * sizeof *x), *gates = malloc((size_t)(n + 1) * k * sizeof *gates);
    int32_t *ids = malloc((size_t)(n + 1) * k * sizeof *ids), *dests = malloc((nk + 1) * sizeof *dests);
    if (!x || !gates || !ids || !dests) {
        free(x); free(gates); free(ids); free(dests);
        return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    }
    int rc = mplb_split_dests(rt, plan, dests, err);
    int64_t i = 0;
    for (int64_t tk = 0; tk < rt->tokens && rc == 0; tk++) {
        if (rt->tok_src[tk] != me) continue;
        mplb_weights_acts(ep->seed, step, layer, tk, d, x + (size_t)i * d);
        for (int j = 0; j < k; j++) {
            ids[i * k + j] = rt->tok_ids[tk * k + j];
            gates[i * k + j] = 1.0f / k;
            dests[i * k + j] = dests[tk * k + j];   /* compacted in place: i <= tk */
        }
        i++;
    }
    /* the experts this rank computes: its copies and what moves bring it */
    memset(ep->runs, 0, (size_t)E);
    for (int e = 0; e < E; e++) ep->runs[e] = plan->placement.has[(size_t)e * R + me];
    for (int m = 0; m < plan->n_moves; m++)
        if (plan->moves[m].to == me) ep->runs[plan->moves[m].e] = 1;
    /* stored formats come from the cache; online ones are converted beside the dispatch */
    for (int e = 0; e < E && rc == 0; e++) {
        if (!ep->runs[e]) { memset(&ep->cur[e], 0, sizeof ep->cur[e]); continue; }
        mplb_prec p = plan->expert_prec[e];
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        const mplb_expert_w *w;
        if ((rc = mplb_weights_get(ep->w, layer, e, online ? MPLB_PREC_BF16 : p, &w, err)) == 0) ep->cur[e] = *w;
    }
    /* the clock starts here: generating weights and the stored-format cache are set-up, not the layer */
    double t_start = now_s();
    conv_job job;
    memset(&job, 0, sizeof job);
    job.ep = ep;
    job.plan = plan;
    job.rank = me;
    job.layer = layer;
    if (rc == 0 && pthread_create(&job.th, NULL, convert_all, &job) == 0) job.started = 1;
    else if (rc == 0) convert_all(&job);
    mplb_ep_rank mine = {.tokens = n, .x = x, .ids = ids, .gates = gates, .y = y, .dests = dests,
                         .ready = wait_conv, .ready_arg = &job};
    mplb_ep_stats st = {0};
    /* the experts read ep->cur; online ones switch to their converted copy in ready() */
    if (rc == 0) rc = mplb_ep_layer(tp, &plan->placement, d, k, ep->cur, plan->dispatch_prec, &mine, &st, err);
    if (job.started) wait_conv(&job);
    for (int e = 0; e < E; e++)
        if (ep->conv_used[e]) { mplb_expert_free(&ep->conv[e]); ep->conv_used[e] = 0; }
    free(x); free(gates); free(ids); free(dests);
    if (rc < 0) return rc;
    *t = (mplb_ep_times){
        .ffn = st.t_ffn_s * 1e6, .exposed = st.t_ready_s * 1e6, .dispatch = (st.t_pack_s + st.t_dispatch_xchg_s) * 1e6,
        .combine = (st.t_alltoall_s - st.t_dispatch_xchg_s + st.t_combine_s) * 1e6, .total = (now_s() - t_start) * 1e6,
        .conv = job.t_conv * 1e6, .bytes_intra = (double)st.bytes_intra, .bytes_inter = (double)st.bytes_inter};
    return 0;
}

int mplb_ep_run_layer(mplb_ep_run *ep, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                      mplb_ep_times *all, mplb_err *err) {
    const mplb_ep_transport *tp = ep->tp;
    int R = tp->size, me = tp->rank, d = ep->m.hidden;
    if (!rt->has_dedup) return mplb_err_set(err, MPLB_EUNSUPP, "transport: the workload has no per-token choices to dispatch");
    if (plan->R != R) return mplb_err_set(err, MPLB_ECONFIG, "transport: %d processes, the cluster has %d ranks", R, plan->R);
    int64_t n = 0;
    for (int64_t i = 0; i < rt->tokens; i++) n += rt->tok_src[i] == me;
    if (n + 1 > ep->ref_cap) {
        float *r2 = realloc(ep->ref, (size_t)(n + 1) * d * sizeof *r2);
        if (!r2) return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
        ep->ref = r2;
        ep->ref_cap = n + 1;
        ep->ref_layer = -1;
    }
    mplb_ep_times t;
    int ref = mplb_plan_is_bf16(plan), rc = 0;
    if (!ref && (ep->ref_step != step || ep->ref_layer != layer)) {
        /* no all-bf16 plan ran on this layer yet: run one for the reference
         * (every process takes this branch together: same calls, same state) */
        mplb_plan bp;
        if ((rc = mplb_plan_init(&bp, &plan->placement, err)) < 0) return rc;
        rc = run_once(ep, step, layer, rt, &bp, ep->ref, &t, err);
        mplb_plan_free(&bp);
        if (rc < 0) return rc;
        ep->ref_step = step;
        ep->ref_layer = layer;
    }
    float *y = ref ? ep->ref : malloc((size_t)(n + 1) * d * sizeof *y);
    if (!y) return mplb_err_set(err, MPLB_ENOMEM, "transport: out of memory");
    rc = run_once(ep, step, layer, rt, plan, y, &t, err);
    if (rc == 0 && ref) { ep->ref_step = step; ep->ref_layer = layer; }
    for (size_t i = 0; rc == 0 && !ref && i < (size_t)n * d; i++) {
        double df = (double)y[i] - ep->ref[i];
        t.err_num += df * df;
        t.err_den += (double)ep->ref[i] * ep->ref[i];
    }
    if (!ref) free(y);
    if (rc < 0) return rc;
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
