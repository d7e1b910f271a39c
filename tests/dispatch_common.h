/* A deterministic EP layer for the dispatch tests: every process builds the
 * same experts, tokens and routing from the seed. */
#ifndef MPLB_DISPATCH_COMMON_H
#define MPLB_DISPATCH_COMMON_H
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mplb.h"

typedef struct ep_case {
    int R, E, k, d, f;
    int64_t *tokens;          /* [R] */
    float **x, **gates, **y;  /* [R] */
    int32_t **ids;
    int32_t **dests;          /* [R] per-slot ranks by the split rule (mplb_split_dests) */
    mplb_expert_w *experts;   /* [E] */
    mplb_placement pl;
} ep_case;


/* Per-slot ranks as the run loop gives them: every rank's tokens in rank
 * order form the step's routing log, split by mplb_split_dests. */
static int ep_case_dests(ep_case *c) {
    mplb_err err;
    mplb_routing rt;
    mplb_plan plan;
    if (mplb_routing_alloc(&rt, c->R, c->E, 1, c->k, &err) < 0) return -1;
    if (mplb_plan_init(&plan, &c->pl, &err) < 0) { mplb_routing_free(&rt); return -1; }
    for (int r = 0; r < c->R; r++)
        for (int64_t t = 0; t < c->tokens[r]; t++) {
            int ids[64];
            for (int j = 0; j < c->k; j++) ids[j] = c->ids[r][t * c->k + j];
            mplb_routing_add_token(&rt, &c->pl, c->R, r, 0, ids, NULL);
        }
    int32_t *all = malloc(((size_t)rt.tokens * c->k + 1) * sizeof *all);
    int rc = all ? mplb_split_dests(&rt, &plan, all, &err) : -1;
    c->dests = calloc((size_t)c->R, sizeof *c->dests);
    size_t off = 0;
    for (int r = 0; r < c->R && rc == 0 && c->dests; r++) {
        size_t n = (size_t)c->tokens[r] * c->k;
        c->dests[r] = malloc((n + 1) * sizeof **c->dests);
        if (c->dests[r]) memcpy(c->dests[r], all + off, n * sizeof *all);
        off += n;
    }
    free(all);
    mplb_plan_free(&plan);
    mplb_routing_free(&rt);
    return rc;
}

/* empty_rank >= 0 gets no tokens; replica >= 0 adds a copy of expert 0 there */
static int ep_case_init(ep_case *c, int R, int E, int k, uint64_t seed, int empty_rank, int replica) {
    memset(c, 0, sizeof *c);
    c->R = R; c->E = E; c->k = k; c->d = 200; c->f = 24;   /* d: one 128-channel fp8 group and a short one */
    mplb_err err;
    if (mplb_placement_init_contiguous(&c->pl, R, E, &err) < 0) return -1;
    if (replica >= 0) mplb_placement_add(&c->pl, 0, replica);
    mplb_rng g;
    mplb_rng_seed(&g, seed);
    c->experts = calloc((size_t)E, sizeof *c->experts);
    size_t nw = (size_t)c->d * c->f;
    float *w = malloc(3 * nw * sizeof *w);
    for (int e = 0; e < E; e++) {
        mplb_weights_fill(seed, 0, e, c->d, c->f, w);   /* the run's weight source */
        if (mplb_expert_quantize(w, w + nw, w + 2 * nw, c->d, c->f, e % 2 ? MPLB_PREC_FP8_E4M3 : MPLB_PREC_BF16,
                                 NULL, &c->experts[e], &err) < 0) return -1;
    }
    free(w);
    c->tokens = calloc((size_t)R, sizeof *c->tokens);
    c->x = calloc((size_t)R, sizeof *c->x);
    c->gates = calloc((size_t)R, sizeof *c->gates);
    c->y = calloc((size_t)R, sizeof *c->y);
    c->ids = calloc((size_t)R, sizeof *c->ids);
    for (int r = 0; r < R; r++) {
        int64_t T = r == empty_rank ? 0 : 5 + (int64_t)(mplb_rng_next(&g) % 40);
        c->tokens[r] = T;
        c->x[r] = malloc((size_t)(T + 1) * c->d * sizeof(float));
        c->y[r] = malloc((size_t)(T + 1) * c->d * sizeof(float));
        c->gates[r] = malloc((size_t)(T + 1) * k * sizeof(float));
        c->ids[r] = malloc((size_t)(T + 1) * k * sizeof(int32_t));
        for (int64_t t = 0; t < T; t++) mplb_weights_acts(seed, 0, r, t, c->d, c->x[r] + (size_t)t * c->d);
        for (int64_t t = 0; t < T; t++) {
            float sum = 0;
            for (int j = 0; j < k; j++) {
                int e, dup;
                do {
                    /* skewed: expert 0 is hot; the last expert is never chosen */
                    e = mplb_rng_uniform(&g) < 0.3 ? 0 : (int)(mplb_rng_next(&g) % (uint64_t)(E - 1));
                    dup = 0;
                    for (int q = 0; q < j; q++) dup |= c->ids[r][t * k + q] == e;
                } while (dup);
                c->ids[r][t * k + j] = e;
                c->gates[r][t * k + j] = (float)(0.2 + mplb_rng_uniform(&g));
                sum += c->gates[r][t * k + j];
            }
            for (int j = 0; j < k; j++) c->gates[r][t * k + j] /= sum;
        }
    }
    return ep_case_dests(c);
}

static void ep_case_ranks(const ep_case *c, mplb_ep_rank *ranks) {
    for (int r = 0; r < c->R; r++)
        ranks[r] = (mplb_ep_rank){.tokens = c->tokens[r], .x = c->x[r], .ids = c->ids[r], .gates = c->gates[r], .y = c->y[r],
                                  .dests = c->dests ? c->dests[r] : NULL};
}

static void ep_case_free(ep_case *c) {
    for (int e = 0; e < c->E; e++) mplb_expert_free(&c->experts[e]);
    for (int r = 0; r < c->R; r++) {
        free(c->x[r]); free(c->y[r]); free(c->gates[r]); free(c->ids[r]);
        if (c->dests) free(c->dests[r]);
    }
    free(c->dests);
    free(c->experts); free(c->x); free(c->y); free(c->gates); free(c->ids); free(c->tokens);
    mplb_placement_free(&c->pl);
}
/* One case through a transport (this process is tp->rank) and through the
 * local transport: 1 when this rank's outputs are bit-identical. st/st2
 * receive the two runs' statistics; err the first failure's message. */
static inline int ep_transport_matches_local(mplb_ep_transport *tp, int E, int empty, int replica, uint64_t seed,
                                             mplb_ep_topo topo, mplb_prec act, mplb_ep_stats *st, mplb_ep_stats *st2,
                                      mplb_err *err) {
    int R = tp->size, rank = tp->rank;
    ep_case a, b;
    ep_case_init(&a, R, E, 2, seed, empty, replica);
    ep_case_init(&b, R, E, 2, seed, empty, replica);
    mplb_ep_rank *ra = calloc((size_t)R, sizeof *ra), *rb = calloc((size_t)R, sizeof *rb);   /* any rank count */
    if (!ra || !rb) {
        free(ra); free(rb);
        ep_case_free(&a); ep_case_free(&b);
        return mplb_err_set(err, MPLB_ENOMEM, "dispatch test: out of memory"), 0;
    }
    ep_case_ranks(&a, ra);
    ep_case_ranks(&b, rb);
    tp->topo = topo;
    int rc = mplb_ep_layer(tp, &a.pl, a.d, a.k, a.experts, act, &ra[rank], st, err);
    int rc2 = rc == 0 ? mplb_ep_layer_local(R, &topo, &b.pl, b.d, b.k, b.experts, act, rb, st2, err) : rc;
    int ok = rc == 0 && rc2 == 0 && memcmp(a.y[rank], b.y[rank], (size_t)a.tokens[rank] * a.d * sizeof(float)) == 0;
    ep_case_free(&a);
    ep_case_free(&b);
    free(ra); free(rb);
    return ok;
}

#endif
