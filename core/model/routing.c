/* Placement and routing counts: see include/mplb/routing.h. */
#include "mplb/routing.h"

#include <stdlib.h>
#include <string.h>

int mplb_placement_init_contiguous(mplb_placement *p, int R, int E, mplb_err *err) {
    memset(p, 0, sizeof *p);
    if (R < 1 || E < 1) return mplb_err_set(err, MPLB_EINVAL, "placement needs R >= 1 and E >= 1 (got R=%d, E=%d)", R, E);
    p->R = R;
    p->E = E;
    p->home = calloc((size_t)E, sizeof *p->home);
    p->has = calloc((size_t)E * (size_t)R, 1);
    p->copies = calloc((size_t)E, sizeof *p->copies);
    p->ranks = calloc((size_t)E * (size_t)R, sizeof *p->ranks);
    if (!p->home || !p->has || !p->copies || !p->ranks) {
        mplb_placement_free(p);
        return mplb_err_set(err, MPLB_ENOMEM, "placement: out of memory");
    }
    for (int e = 0; e < E; e++) {
        int r = (int)((int64_t)e * R / E);
        p->home[e] = r;
        p->has[(size_t)e * R + r] = 1;
        p->copies[e] = 1;
        p->ranks[(size_t)e * R] = r;
    }
    return 0;
}

void mplb_placement_add(mplb_placement *p, int e, int r) {
    size_t i = (size_t)e * p->R;
    if (p->has[i + r]) return;
    p->has[i + r] = 1;
    p->ranks[i + p->copies[e]++] = r;
}

int mplb_placement_copy(mplb_placement *dst, const mplb_placement *src, mplb_err *err) {
    int rc = mplb_placement_init_contiguous(dst, src->R, src->E, err);
    if (rc < 0) return rc;
    mplb_placement_assign(dst, src);
    return 0;
}

void mplb_placement_assign(mplb_placement *dst, const mplb_placement *src) {
    memcpy(dst->home, src->home, (size_t)src->E * sizeof *src->home);
    memcpy(dst->has, src->has, (size_t)src->E * (size_t)src->R);
    memcpy(dst->copies, src->copies, (size_t)src->E * sizeof *src->copies);
    /* only the used prefix of each rank list matters */
    for (int e = 0; e < src->E; e++)
        memcpy(dst->ranks + (size_t)e * src->R, src->ranks + (size_t)e * src->R, (size_t)src->copies[e] * sizeof(int));
}

void mplb_placement_free(mplb_placement *p) {
    free(p->home);
    free(p->has);
    free(p->copies);
    free(p->ranks);
    memset(p, 0, sizeof *p);
}

int mplb_placement_rank_experts(const mplb_placement *p, int r) {
    int n = 0;
    for (int e = 0; e < p->E; e++) n += p->home[e] == r;
    return n;
}

int mplb_routing_alloc(mplb_routing *rt, int R, int E, int nodes, int top_k, mplb_err *err) {
    memset(rt, 0, sizeof *rt);
    rt->R = R; rt->E = E; rt->nodes = nodes; rt->top_k = top_k;
    rt->src_counts = calloc((size_t)R * E, sizeof(int32_t));
    rt->expert_counts = calloc((size_t)E, sizeof(int32_t));
    rt->vision_counts = calloc((size_t)E, sizeof(int32_t));
    rt->src_vision = calloc((size_t)R, sizeof(int32_t));
    rt->importance = calloc((size_t)E, sizeof(double));
    rt->tok_to_rank = calloc((size_t)R * R, sizeof(int32_t));
    rt->tok_to_node = calloc((size_t)R * nodes, sizeof(int32_t));
    if (!rt->src_counts || !rt->expert_counts || !rt->vision_counts || !rt->src_vision ||
        !rt->importance || !rt->tok_to_rank || !rt->tok_to_node) {
        mplb_routing_free(rt);
        return mplb_err_set(err, MPLB_ENOMEM, "routing: out of memory");
    }
    return 0;
}

void mplb_routing_clear(mplb_routing *rt) {
    int R = rt->R, E = rt->E;
    memset(rt->src_counts, 0, (size_t)R * E * sizeof(int32_t));
    memset(rt->expert_counts, 0, (size_t)E * sizeof(int32_t));
    memset(rt->vision_counts, 0, (size_t)E * sizeof(int32_t));
    memset(rt->src_vision, 0, (size_t)R * sizeof(int32_t));
    memset(rt->importance, 0, (size_t)E * sizeof(double));
    memset(rt->tok_to_rank, 0, (size_t)R * R * sizeof(int32_t));
    memset(rt->tok_to_node, 0, (size_t)R * rt->nodes * sizeof(int32_t));
    rt->tokens = 0;
    rt->has_dedup = 0;
}

void mplb_routing_free(mplb_routing *rt) {
    free(rt->src_counts); free(rt->expert_counts); free(rt->vision_counts);
    free(rt->src_vision); free(rt->importance); free(rt->tok_to_rank); free(rt->tok_to_node);
    free(rt->tok_src); free(rt->tok_ids);
    memset(rt, 0, sizeof *rt);
}

void mplb_routing_add_token(mplb_routing *rt, const mplb_placement *pl, int gpus_per_node,
                            int src, int vision, const int *ids, const float *w) {
    int R = rt->R, E = rt->E;
    /* top_k is small (<= 8 in every public MoE), so a linear "seen" scan beats a bitmap. */
    int seen_rank[64], seen_node[64], nr = 0, nn = 0;
    if (rt->tokens == rt->tok_cap) {
        int64_t cap = rt->tok_cap ? 2 * rt->tok_cap : 1024;
        int32_t *s = realloc(rt->tok_src, (size_t)cap * sizeof *s);
        if (s) rt->tok_src = s;
        int32_t *ids2 = s ? realloc(rt->tok_ids, (size_t)cap * rt->top_k * sizeof *ids2) : NULL;
        if (ids2) { rt->tok_ids = ids2; rt->tok_cap = cap; }
    }
    /* when the token log cannot grow, counts stay exact; re-deduplication under
     * another placement is then unavailable (has_dedup stays as it was) */
    if (rt->tokens < rt->tok_cap) {
        rt->tok_src[rt->tokens] = src;
        for (int j = 0; j < rt->top_k; j++) rt->tok_ids[rt->tokens * rt->top_k + j] = ids[j];
        if (rt->tokens == 0) rt->has_dedup = 1;
    } else rt->has_dedup = 0;
    rt->tokens++;
    if (vision) rt->src_vision[src]++;
    /* up to 64 ranks and nodes (every shipped cluster): the "seen" sets as
     * bitmasks, one test per expert instead of a scan with a mispredicted exit */
    if (R <= 64 && rt->nodes <= 64) {
        uint64_t rmask = 0, nmask = 0;
        int32_t *sc = rt->src_counts + (size_t)src * E, *tr = rt->tok_to_rank + (size_t)src * R;
        int32_t *tn = rt->tok_to_node + (size_t)src * rt->nodes;
        for (int j = 0; j < rt->top_k; j++) {
            int e = ids[j];
            sc[e]++;
            rt->expert_counts[e]++;
            if (vision) rt->vision_counts[e]++;
            rt->importance[e] += w ? w[j] : 1.0 / rt->top_k;
            int d = pl->home[e], node = gpus_per_node == 1 ? d : d / gpus_per_node;
            rmask |= 1ULL << d;
            nmask |= 1ULL << node;
        }
        for (; rmask; rmask &= rmask - 1) tr[__builtin_ctzll(rmask)]++;
        for (; nmask; nmask &= nmask - 1) tn[__builtin_ctzll(nmask)]++;
        return;
    }
    for (int j = 0; j < rt->top_k; j++) {
        int e = ids[j];
        rt->src_counts[(size_t)src * E + e]++;
        rt->expert_counts[e]++;
        if (vision) rt->vision_counts[e]++;
        rt->importance[e] += w ? w[j] : 1.0 / rt->top_k;
        int d = pl->home[e], node = gpus_per_node == 1 ? d : d / gpus_per_node, k;
        for (k = 0; k < nr && seen_rank[k] != d; k++) {}
        if (k == nr && nr < 64) { seen_rank[nr++] = d; rt->tok_to_rank[(size_t)src * R + d]++; }
        for (k = 0; k < nn && seen_node[k] != node; k++) {}
        if (k == nn && nn < 64) { seen_node[nn++] = node; rt->tok_to_node[(size_t)src * rt->nodes + node]++; }
    }
}

double mplb_lis(const int32_t *expert_counts, int E, int64_t tokens, int top_k) {
    if (tokens <= 0 || top_k <= 0) return 0;
    int32_t mx = 0;
    for (int e = 0; e < E; e++) if (expert_counts[e] > mx) mx = expert_counts[e];
    return (double)E * mx / ((double)tokens * top_k);
}

double mplb_lis_rows(const int64_t *rows, int E, int R, int64_t tokens, int top_k) {
    if (tokens <= 0 || top_k <= 0) return 0;
    int64_t mx = 0;
    for (size_t i = 0; i < (size_t)E * R; i++) if (rows[i] > mx) mx = rows[i];
    return (double)E * mx / ((double)tokens * top_k);
}

double mplb_imbalance(const double *rank_load, int R) {
    double mx = 0, sum = 0;
    for (int r = 0; r < R; r++) { sum += rank_load[r]; if (rank_load[r] > mx) mx = rank_load[r]; }
    return sum > 0 ? mx * R / sum : 1.0;
}
