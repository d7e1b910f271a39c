/* The analytic layer-time model: see include/mplb/cost.h. */
#include "mplb/cost.h"
#include "mplb/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mplb_plan_init(mplb_plan *pl, const mplb_placement *base, mplb_err *err) {
    memset(pl, 0, sizeof *pl);
    pl->R = base->R;
    pl->E = base->E;
    pl->expert_prec = calloc((size_t)base->E, sizeof *pl->expert_prec);
    pl->expert_mode = calloc((size_t)base->E, 1);
    if (!pl->expert_prec || !pl->expert_mode) {
        mplb_plan_free(pl);
        return mplb_err_set(err, MPLB_ENOMEM, "plan: out of memory");
    }
    int rc = mplb_placement_copy(&pl->placement, base, err);
    if (rc < 0) { mplb_plan_free(pl); return rc; }
    mplb_plan_reset(pl, base);
    return 0;
}

int mplb_plan_is_bf16(const mplb_plan *pl) {
    if (pl->dispatch_prec != MPLB_PREC_BF16) return 0;
    for (int e = 0; e < pl->E; e++)
        if (pl->expert_prec[e] != MPLB_PREC_BF16) return 0;
    return 1;
}

void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base) {
    for (int e = 0; e < pl->E; e++) pl->expert_prec[e] = MPLB_PREC_BF16;
    memset(pl->expert_mode, MPLB_CONV_ONLINE, (size_t)pl->E);
    pl->dispatch_prec = MPLB_PREC_BF16;
    pl->n_moves = 0;
    pl->placement_changed = 0;
    pl->prev_placement = NULL;
    mplb_placement_assign(&pl->placement, base);
}

void mplb_plan_free(mplb_plan *pl) {
    free(pl->expert_prec);
    free(pl->expert_mode);
    free(pl->moves);
    mplb_placement_free(&pl->placement);
    memset(pl, 0, sizeof *pl);
}

int mplb_plan_add_move(mplb_plan *pl, int e, int from, int to, double n, mplb_err *err) {
    if (pl->n_moves == pl->cap_moves) {
        int cap = pl->cap_moves ? 2 * pl->cap_moves : 16;
        mplb_move *nm = realloc(pl->moves, (size_t)cap * sizeof *nm);
        if (!nm) return mplb_err_set(err, MPLB_ENOMEM, "plan: out of memory");
        pl->moves = nm;
        pl->cap_moves = cap;
    }
    pl->moves[pl->n_moves++] = (mplb_move){e, from, to, n};
    return 0;
}

double mplb_expert_bytes(const mplb_model *m, mplb_prec p, int mode) {
    double w = 3.0 * m->hidden * m->ffn;
    double bf16 = w * 2.0, low = w * mplb_prec_bits(p) / 8.0;
    if (p == MPLB_PREC_BF16 || mode == MPLB_CONV_ONLINE) return bf16;
    return mode == MPLB_CONV_STORED ? low : bf16 + low;
}

double mplb_cost_conv_bytes(double elements, mplb_prec p) { return elements * (2.0 + mplb_prec_bits(p) / 8.0); }

void mplb_plan_memory(const mplb_plan *pl, const mplb_model *m, double *mem) {
    const mplb_placement *p = &pl->placement;
    memset(mem, 0, (size_t)pl->R * sizeof *mem);
    for (int e = 0; e < pl->E; e++) {
        double b = mplb_expert_bytes(m, pl->expert_prec[e], pl->expert_mode[e]);
        for (int i = 0; i < p->copies[e]; i++) mem[p->ranks[(size_t)e * p->R + i]] += b;
    }
}

/* Per rank: one FFN accumulator per weight precision, one for the shared
 * experts, and the link counters. */
typedef struct ffn_acc { mplb_gemm_acc g1, g2; double ew_bytes; } ffn_acc;
enum { L_SEND_NV, L_RECV_NV, L_SEND_NET, L_RECV_NET, L_CONV, L_FETCH,
       L_MIG_SEND_NV, L_MIG_RECV_NV, L_MIG_SEND_NET, L_MIG_RECV_NET, L_COUNT };
typedef struct rank_acc { ffn_acc ffn[MPLB_PREC_COUNT], shared; double l[L_COUNT]; } rank_acc;

int mplb_cost_result_alloc(mplb_cost_result *res, int R, mplb_err *err) {
    memset(res, 0, sizeof *res);
    res->R = R;
    res->rank_load = calloc((size_t)R, sizeof(double));
    res->rank_compute = calloc((size_t)R, sizeof(double));
    res->scratch = calloc((size_t)R, sizeof(rank_acc));
    if (!res->rank_load || !res->rank_compute || !res->scratch) {
        mplb_cost_result_free(res);
        return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
    }
    return 0;
}

void mplb_cost_result_copy(mplb_cost_result *dst, const mplb_cost_result *src) {
    double *load = dst->rank_load, *comp = dst->rank_compute;
    void *scratch = dst->scratch;
    int R = dst->R < src->R ? dst->R : src->R;
    *dst = *src;
    dst->rank_load = load;
    dst->rank_compute = comp;
    dst->scratch = scratch;
    memcpy(load, src->rank_load, (size_t)R * sizeof *load);
    memcpy(comp, src->rank_compute, (size_t)R * sizeof *comp);
}

void mplb_cost_result_free(mplb_cost_result *res) {
    free(res->rank_load);
    free(res->rank_compute);
    free(res->scratch);
    memset(res, 0, sizeof *res);
}

/* One expert's FFN on n tokens at weight precision p: GEMM1 (gate/up,
 * N = 2f, K = d), the SwiGLU pass (reads 2f bf16, writes f in the compute
 * dtype: W8A8/W4A4 quantise here), GEMM2 (down, N = d, K = f), and a pass
 * converting the dispatched activations (disp_b bytes per element) when the
 * compute dtype wants another format. */
static void ffn_add(ffn_acc *a, const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n, double disp_b) {
    if (n <= 0) return;
    mplb_prec cp = hw->compute_as[p];
    double d = m->hidden, f = m->ffn, ab = mplb_cost_act_bytes(cp), wb = mplb_prec_bits(p);
    mplb_gemm_add(&a->g1, hw, cp, n, 2.0 * f, d, wb, ab);
    mplb_gemm_add(&a->g2, hw, cp, n, d, f, wb, ab);
    a->ew_bytes += n * (2.0 * f * 2.0 + f * ab);
    if (disp_b != ab) a->ew_bytes += n * d * (disp_b + ab);
}

static double ffn_us(const ffn_acc *a, const mplb_profile *hw) {
    if (a->g1.busy == 0) return 0;
    return mplb_gemm_us(&a->g1, hw) + mplb_gemm_us(&a->g2, hw) + a->ew_bytes / (hw->hbm_gbps * 1e3 * hw->hbm_eff) +
           2.0 * hw->launch_us;
}

double mplb_cost_expert_us(const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n) {
    ffn_acc a;
    memset(&a, 0, sizeof a);
    ffn_add(&a, hw, m, p, n, mplb_cost_act_bytes(MPLB_PREC_BF16));
    return ffn_us(&a, hw);
}

/* n tokens from s to d: over NVLink inside a node; across nodes over the NIC
 * into the GPU of s's local index on d's node, then forwarded over NVLink
 * (DeepEP's internode path). intra_direct counts the direct NVLink tokens. */
static void route(rank_acc *ra, int R, int gpn, int s, int d, double n, double *intra_direct) {
    if (d == s || n <= 0) return;
    if (s / gpn == d / gpn) {
        ra[s].l[L_SEND_NV] += n;
        ra[d].l[L_RECV_NV] += n;
        if (intra_direct) *intra_direct += n;
        return;
    }
    int g = (d / gpn) * gpn + s % gpn;
    if (g >= R) g = (d / gpn) * gpn;
    ra[s].l[L_SEND_NET] += n;
    ra[g].l[L_RECV_NET] += n;
    if (g != d) {
        ra[g].l[L_SEND_NV] += n;
        ra[d].l[L_RECV_NV] += n;
    }
}

/* Tokens a policy moves are routed to the target in the dispatch itself
 * (HarMoEny decides on counts every rank shares, before the all-to-all):
 * the target receives them instead of the source, over NVLink inside the
 * node, over the NIC from another node. Their senders are spread over the
 * ranks, so only the receivers' counts change. */
static void moved_traffic(rank_acc *ra, int gpn, const mplb_move *mv) {
    double n = mv->n, *nv = &ra[mv->from].l[L_RECV_NV], *net = &ra[mv->from].l[L_RECV_NET];
    double a = n < *nv ? n : *nv;
    *nv -= a;
    *net -= n - a < *net ? n - a : *net;
    ra[mv->to].l[mv->from / gpn == mv->to / gpn ? L_RECV_NV : L_RECV_NET] += n;
}

/* Token traffic of the dispatch: deduplicated per destination rank and node
 * when per-token choices are known, else one copy per (token, expert). */
static int dispatch_traffic(const mplb_routing *rt, const mplb_plan *plan, int gpn, rank_acc *ra,
                            double *intra_tok, double *inter_tok, mplb_err *err) {
    int R = rt->R, E = rt->E;
    const mplb_placement *pl = &plan->placement;
    if (rt->has_dedup) {
        const int32_t *to_rank = rt->tok_to_rank, *to_node = rt->tok_to_node;
        int32_t *scratch = NULL;
        if (plan->placement_changed || plan->n_moves) {
            /* the real dispatch's destinations under this plan: the split
             * rule's per-slot ranks (replicas and moved tokens), deduplicated */
            size_t nk = (size_t)rt->tokens * rt->top_k;
            scratch = malloc(((size_t)R * R + (size_t)R * rt->nodes + nk + 1) * sizeof *scratch);
            if (!scratch) return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
            int32_t *dest = scratch + (size_t)R * R + (size_t)R * rt->nodes;
            int rc = mplb_split_dests(rt, plan, dest, err);
            if (rc < 0) { free(scratch); return rc; }
            mplb_split_dedup(rt, dest, gpn, scratch, scratch + (size_t)R * R);
            to_rank = scratch;
            to_node = scratch + (size_t)R * R;
        }
        for (int s = 0; s < R; s++) {
            int sn = s / gpn;
            const int32_t *row = to_rank + (size_t)s * R, *nrow = to_node + (size_t)s * rt->nodes;
            for (int d = sn * gpn; d < (sn + 1) * gpn && d < R; d++) route(ra, R, gpn, s, d, row[d], intra_tok);
            for (int nd = 0; nd < rt->nodes; nd++) {
                if (nd == sn || nrow[nd] == 0) continue;
                int g = nd * gpn + s % gpn;
                if (g >= R) g = nd * gpn;
                ra[s].l[L_SEND_NET] += nrow[nd];
                ra[g].l[L_RECV_NET] += nrow[nd];
                *inter_tok += nrow[nd];
                for (int d = nd * gpn; d < (nd + 1) * gpn && d < R; d++)
                    if (d != g && row[d]) { ra[g].l[L_SEND_NV] += row[d]; ra[d].l[L_RECV_NV] += row[d]; }
            }
        }
        free(scratch);
        return 0;
    }
    for (int s = 0; s < R; s++) {
        const int32_t *row = rt->src_counts + (size_t)s * E;
        for (int e = 0; e < E; e++) {
            if (!row[e]) continue;
            double per = (double)row[e] / pl->copies[e];
            const int *rk = pl->ranks + (size_t)e * R;
            for (int i = 0; i < pl->copies[e]; i++) {
                int d = rk[i];
                if (d != s && d / gpn != s / gpn) *inter_tok += per;
                route(ra, R, gpn, s, d, per, intra_tok);
            }
        }
    }
    return 0;
}

/* A rebalance: each copy the plan has that prev_placement lacks is sent
 * from a previous holder (one in the same node when there is one). */
static void migration(const mplb_plan *plan, const mplb_model *m, int gpn, rank_acc *ra, double *bytes) {
    const mplb_placement *pl = &plan->placement, *pv = plan->prev_placement;
    int R = pl->R;
    for (int e = 0; e < pl->E; e++)
        for (int i = 0; i < pl->copies[e]; i++) {
            int r = pl->ranks[(size_t)e * R + i];
            if (pv->has[(size_t)e * R + r]) continue;
            int src = pv->home[e];
            for (int j = 0; j < pv->copies[e]; j++)
                if (pv->ranks[(size_t)e * R + j] / gpn == r / gpn) { src = pv->ranks[(size_t)e * R + j]; break; }
            double b = mplb_expert_bytes(m, plan->expert_prec[e], plan->expert_mode[e] == MPLB_CONV_STORED
                                                                      ? MPLB_CONV_STORED : MPLB_CONV_ONLINE);
            int nv = src / gpn == r / gpn;
            ra[src].l[nv ? L_MIG_SEND_NV : L_MIG_SEND_NET] += b;
            ra[r].l[nv ? L_MIG_RECV_NV : L_MIG_RECV_NET] += b;
            *bytes += b;
        }
}

int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpn,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err) {
    int R = rt->R, E = rt->E;
    if (plan->R != R || plan->E != E)
        return mplb_err_set(err, MPLB_EINVAL, "cost: plan is %dx%d but routing is %dx%d", plan->R, plan->E, R, E);
    const mplb_placement *pl = &plan->placement;
    rank_acc *ra = (rank_acc *)res->scratch;
    memset(ra, 0, (size_t)R * sizeof *ra);
    memset(res->rank_load, 0, (size_t)R * sizeof(double));
    memset(res->rank_compute, 0, (size_t)R * sizeof(double));
    double w_bf16 = 3.0 * m->hidden * m->ffn * 2.0;
    double disp_b = mplb_cost_act_bytes(plan->dispatch_prec);
    /* Rows per (expert, rank) by the one split rule (mplb/split.h): the
     * closed form per copy when nothing moves, the full table with moves. */
    int64_t *rows = NULL;
    if (plan->n_moves) {
        rows = malloc((size_t)E * R * sizeof *rows);
        if (!rows) return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
        int rc = mplb_split_rows(plan, rt->expert_counts, rows, err);
        if (rc < 0) { free(rows); return rc; }
    }
    for (int e = 0; e < E; e++) {
        mplb_prec p = plan->expert_prec[e];
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        double c = online ? mplb_cost_conv_bytes(w_bf16 / 2.0, p) : 0;
        if (rows) {
            /* every rank computing rows of e; one without a copy computes them
             * after it prefetches the weights from host memory (HarMoEny) */
            for (int r = 0; r < R; r++) {
                double nr = (double)rows[(size_t)e * R + r];
                if (nr <= 0) continue;
                res->rank_load[r] += nr;
                ffn_add(&ra[r].ffn[p], hw, m, p, nr, disp_b);
                if (pl->has[(size_t)e * R + r]) ra[r].l[L_CONV] += c;
                else ra[r].l[L_FETCH] += mplb_expert_bytes(m, p, plan->expert_mode[e] == MPLB_CONV_STORED
                                                                     ? MPLB_CONV_STORED : MPLB_CONV_ONLINE);
            }
            continue;
        }
        const int *rk = pl->ranks + (size_t)e * R;
        for (int i = 0; i < pl->copies[e]; i++) {
            double nr = (double)mplb_split_share(rt->expert_counts[e], pl->copies[e], i);
            if (nr <= 0) continue;
            res->rank_load[rk[i]] += nr;
            ffn_add(&ra[rk[i]].ffn[p], hw, m, p, nr, disp_b);
            ra[rk[i]].l[L_CONV] += c;
        }
    }
    free(rows);
    /* shared experts: every rank runs them on the tokens that start there */
    if (m->shared_experts > 0)
        for (int s = 0; s < R; s++) {
            double tok = 0;
            for (int e = 0; e < E; e++) tok += rt->src_counts[(size_t)s * E + e];
            tok /= rt->top_k > 0 ? rt->top_k : 1;
            for (int k = 0; k < m->shared_experts; k++)
                ffn_add(&ra[s].shared, hw, m, MPLB_PREC_BF16, tok, mplb_cost_act_bytes(MPLB_PREC_BF16));
        }
    double intra_tok = 0, inter_tok = 0;
    int rc = dispatch_traffic(rt, plan, gpn, ra, &intra_tok, &inter_tok, err);
    if (rc < 0) return rc;
    /* with the per-token log the dispatch above already sent moved tokens to
     * their target (the split rule's per-slot ranks); from counts alone the
     * target receives them instead of the source */
    for (int i = 0; i < plan->n_moves && !rt->has_dedup; i++) moved_traffic(ra, gpn, &plan->moves[i]);
    res->bytes_migrate = 0;
    if (plan->prev_placement) migration(plan, m, gpn, ra, &res->bytes_migrate);
    double tb = mplb_cost_token_bytes(m, plan->dispatch_prec), cb = mplb_cost_token_bytes(m, MPLB_PREC_BF16);
    double t_disp = 0, t_comb = 0;
    for (int r = 0; r < R; r++) {
        const double *l = ra[r].l;
        double nv = mplb_cost_link_us(l[L_SEND_NV], l[L_RECV_NV], hw->nvlink_gbps, hw->nvlink_eff);
        double net = mplb_cost_link_us(l[L_SEND_NET], l[L_RECV_NET], hw->net_gbps, hw->net_eff);
        /* NVLink and RDMA traffic proceed concurrently (DeepEP pipelines them);
         * the combine sends back what the dispatch received, so max(send,
         * recv) is the same link time in bf16 */
        double t = nv > net ? nv : net;
        if (t * tb > t_disp) t_disp = t * tb;
        if (t * cb > t_comb) t_comb = t * cb;
    }
    double lat = R > 1 ? (inter_tok > 0 ? hw->net_lat_us : hw->nvlink_lat_us) : 0;
    res->t_dispatch = R > 1 ? t_disp + lat : 0;
    res->t_combine = R > 1 ? t_comb + lat : 0;
    res->bytes_intra = intra_tok * tb;
    res->bytes_inter = inter_tok * tb;
    double worst = 0, exposed_max = 0, comp_max = 0, mig_max = 0, shared_max = 0;
    for (int r = 0; r < R; r++) {
        const double *l = ra[r].l;
        double t_r = 0;
        for (int p = 0; p < MPLB_PREC_COUNT; p++) t_r += ffn_us(&ra[r].ffn[p], hw);
        double t_sh = ffn_us(&ra[r].shared, hw);
        if (t_sh > shared_max) shared_max = t_sh;
        res->rank_compute[r] = t_r + t_sh;
        double t_conv = l[L_CONV] / (hw->hbm_gbps * 1e3 * hw->conv_eff);
        double exposed = t_conv > res->t_dispatch ? t_conv - res->t_dispatch : 0;
        /* a prefetch from host memory overlaps the dispatch and the rank's own work */
        double t_fetch = l[L_FETCH] / (hw->host_gbps * 1e3 * hw->host_eff);
        double hide = res->t_dispatch + res->rank_compute[r];
        if (t_fetch > hide) exposed += t_fetch - hide;
        double mnv = mplb_cost_link_us(l[L_MIG_SEND_NV], l[L_MIG_RECV_NV], hw->nvlink_gbps, hw->nvlink_eff);
        double mnet = mplb_cost_link_us(l[L_MIG_SEND_NET], l[L_MIG_RECV_NET], hw->net_gbps, hw->net_eff);
        double mig = mnv > mnet ? mnv : mnet;
        if (mig > mig_max) mig_max = mig;
        if (res->rank_compute[r] > comp_max) comp_max = res->rank_compute[r];
        res->rank_compute[r] += exposed + mig;
        if (exposed > exposed_max) exposed_max = exposed;
        if (res->rank_compute[r] > worst) worst = res->rank_compute[r];
    }
    res->t_compute_max = comp_max;
    res->exposed_conv = exposed_max;
    res->t_migrate = mig_max;
    res->t_shared = shared_max;
    res->t_layer = res->t_dispatch + worst + res->t_combine;
    res->imbalance = mplb_imbalance(res->rank_load, R);
    res->repeats = 1;   /* one exact evaluation */
    res->rep_layer[0] = res->t_layer;
    res->n_base = 0;
    return 0;
}
