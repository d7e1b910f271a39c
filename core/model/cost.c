/* The analytic layer-time model: see include/mplb/cost.h. */
#include "mplb/cost.h"

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

void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base) {
    for (int e = 0; e < pl->E; e++) pl->expert_prec[e] = MPLB_PREC_BF16;
    memset(pl->expert_mode, MPLB_CONV_ONLINE, (size_t)pl->E);
    pl->dispatch_prec = MPLB_PREC_BF16;
    pl->n_moves = 0;
    pl->placement_changed = 0;
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

void mplb_plan_memory(const mplb_plan *pl, const mplb_model *m, double *mem) {
    const mplb_placement *p = &pl->placement;
    memset(mem, 0, (size_t)pl->R * sizeof *mem);
    for (int e = 0; e < pl->E; e++) {
        double b = mplb_expert_bytes(m, pl->expert_prec[e], pl->expert_mode[e]);
        for (int i = 0; i < p->copies[e]; i++) mem[p->ranks[(size_t)e * p->R + i]] += b;
    }
}

int mplb_cost_result_alloc(mplb_cost_result *res, int R, mplb_err *err) {
    memset(res, 0, sizeof *res);
    res->rank_load = calloc((size_t)R, sizeof(double));
    res->rank_compute = calloc((size_t)R, sizeof(double));
    if (!res->rank_load || !res->rank_compute) {
        mplb_cost_result_free(res);
        return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
    }
    return 0;
}

void mplb_cost_result_free(mplb_cost_result *res) {
    free(res->rank_load);
    free(res->rank_compute);
    memset(res, 0, sizeof *res);
}

double mplb_cost_eff(const mplb_profile *hw, mplb_prec p, double n) {
    const mplb_eff_pt *c = hw->eff[p];
    int k = hw->n_eff[p];
    if (n <= c[0].n) return c[0].eff;
    if (n >= c[k - 1].n) return c[k - 1].eff;
    int i = 1;
    while (n > c[i].n) i++;
    if (hw->eff_ln_ready) return c[i - 1].eff + hw->eff_slope[p][i] * (log(n) - hw->eff_ln[p][i - 1]);
    double a = log(c[i - 1].n), b = log(c[i].n);
    return c[i - 1].eff + (c[i].eff - c[i - 1].eff) * (log(n) - a) / (b - a);
}

double mplb_cost_expert_us(const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n) {
    if (n <= 0) return 0;
    mplb_prec cp = hw->compute_as[p];
    double d = m->hidden, f = m->ffn;
    double t_flop = 6.0 * n * d * f / (hw->peak_tflops[cp] * 1e12 * mplb_cost_eff(hw, cp, n));
    /* weights at p; activations in (d) and out (d) at the compute dtype's
     * width, the gate/up intermediate (2f) written and read once */
    double w_bytes = 3.0 * d * f * mplb_prec_bits(p) / 8.0;
    double a_bytes = n * (2.0 * d + 4.0 * f) * mplb_prec_bits(cp) / 8.0;
    double t_mem = (w_bytes + a_bytes) / (hw->hbm_gbps * 1e9);
    return 1e6 * (t_flop > t_mem ? t_flop : t_mem);
}

double mplb_cost_token_bytes(const mplb_model *m, mplb_prec p) {
    double b = m->hidden * mplb_prec_bits(p) / 8.0;
    /* per-token fp8 activations carry one float scale per 128 channels */
    if (p == MPLB_PREC_FP8_E4M3 || p == MPLB_PREC_FP8_E5M2) b += 4.0 * ((m->hidden + 127) / 128);
    return b;
}

/* Per-precision constants of mplb_cost_expert_us, computed once per eval so
 * the per-expert work is one log and two divisions. */
typedef struct prec_k { double flop_per_tok, inv_peak, w_bytes, a_per_tok; mplb_prec cp; } prec_k;

static void prec_consts(const mplb_profile *hw, const mplb_model *m, prec_k *k) {
    double d = m->hidden, f = m->ffn;
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_prec cp = hw->compute_as[p];
        k[p].cp = cp;
        k[p].flop_per_tok = 6.0 * d * f;
        k[p].inv_peak = 1.0 / (hw->peak_tflops[cp] * 1e12);
        k[p].w_bytes = 3.0 * d * f * mplb_prec_bits((mplb_prec)p) / 8.0;
        k[p].a_per_tok = (2.0 * d + 4.0 * f) * mplb_prec_bits(cp) / 8.0;
    }
}

static double expert_us_k(const mplb_profile *hw, const prec_k *k, double n) {
    if (n <= 0) return 0;
    double t_flop = n * k->flop_per_tok * k->inv_peak / mplb_cost_eff(hw, k->cp, n);
    double t_mem = (k->w_bytes + n * k->a_per_tok) / (hw->hbm_gbps * 1e9);
    return 1e6 * (t_flop > t_mem ? t_flop : t_mem);
}

/* Tokens of expert e computed on rank r, after moves (moves are few, so a
 * linear scan over them is cheaper than a per-(e, r) table). */
static double moved_delta(const mplb_plan *pl, int e, int r) {
    double d = 0;
    for (int i = 0; i < pl->n_moves; i++) {
        const mplb_move *mv = &pl->moves[i];
        if (mv->e != e) continue;
        if (mv->from == r) d -= mv->n;
        if (mv->to == r) d += mv->n;
    }
    return d;
}

int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpn,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err) {
    int R = rt->R, E = rt->E;
    if (plan->R != R || plan->E != E)
        return mplb_err_set(err, MPLB_EINVAL, "cost: plan is %dx%d but routing is %dx%d", plan->R, plan->E, R, E);
    const mplb_placement *pl = &plan->placement;
    double *conv = calloc((size_t)R * 2, sizeof(double)), *fetch = conv + R;
    if (!conv) return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
    memset(res->rank_load, 0, (size_t)R * sizeof(double));
    memset(res->rank_compute, 0, (size_t)R * sizeof(double));
    double w_bf16 = 3.0 * m->hidden * m->ffn * 2.0;
    /* one flag per expert touched by a move, so untouched experts skip the scan */
    uint8_t *touched = NULL;
    if (plan->n_moves) {
        touched = calloc((size_t)E, 1);
        if (!touched) { free(conv); return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory"); }
        for (int i = 0; i < plan->n_moves; i++) touched[plan->moves[i].e] = 1;
    }
    prec_k K[MPLB_PREC_COUNT];
    prec_consts(hw, m, K);
    for (int e = 0; e < E; e++) {
        double n = (double)rt->expert_counts[e] / pl->copies[e];
        mplb_prec p = plan->expert_prec[e];
        int online = p != MPLB_PREC_BF16 && plan->expert_mode[e] == MPLB_CONV_ONLINE;
        double t = expert_us_k(hw, &K[p], n);
        double c = online ? w_bf16 + w_bf16 * mplb_prec_bits(p) / 16.0 : 0; /* read bf16, write p */
        const int *rk = pl->ranks + (size_t)e * R;
        for (int i = 0; i < pl->copies[e]; i++) {
            int r = rk[i];
            double nr = n, tr = t;
            if (touched && touched[e]) {
                nr = n + moved_delta(plan, e, r);
                if (nr < 0) nr = 0;
                tr = expert_us_k(hw, &K[p], nr);
            }
            res->rank_load[r] += nr;
            res->rank_compute[r] += tr;
            if (nr > 0) conv[r] += c;
        }
    }
    /* tokens moved to a rank without a copy: compute there after fetching the weights */
    for (int i = 0; i < plan->n_moves; i++) {
        const mplb_move *mv = &plan->moves[i];
        if (pl->has[(size_t)mv->e * R + mv->to]) continue;
        int first = 1;
        for (int j = 0; j < i; j++)
            if (plan->moves[j].e == mv->e && plan->moves[j].to == mv->to) first = 0;
        if (!first) continue;
        double nr = moved_delta(plan, mv->e, mv->to);
        if (nr <= 0) continue;
        mplb_prec p = plan->expert_prec[mv->e];
        res->rank_load[mv->to] += nr;
        res->rank_compute[mv->to] += expert_us_k(hw, &K[p], nr);
        fetch[mv->to] += mplb_expert_bytes(m, p, plan->expert_mode[mv->e] == MPLB_CONV_STORED ? MPLB_CONV_STORED : MPLB_CONV_ONLINE);
    }
    free(touched);
    /* Dispatch: per sender, bytes to other ranks of its node and to other nodes. */
    double tb = mplb_cost_token_bytes(m, plan->dispatch_prec), cb = mplb_cost_token_bytes(m, MPLB_PREC_BF16);
    double intra_tok = 0, inter_tok = 0, t_disp = 0, t_comb = 0;
    int inter = 0;
    const int32_t *to_rank = rt->tok_to_rank, *to_node = rt->tok_to_node;
    int32_t *scratch = NULL;
    if (rt->has_dedup && plan->placement_changed) {
        scratch = malloc(((size_t)R * R + (size_t)R * rt->nodes) * sizeof *scratch);
        if (!scratch) { free(conv); return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory"); }
        mplb_routing_dedup(rt, pl, gpn, scratch, scratch + (size_t)R * R);
        to_rank = scratch;
        to_node = scratch + (size_t)R * R;
    }
    for (int s = 0; s < R; s++) {
        double s_intra = 0, s_inter = 0;
        int sn = s / gpn;
        if (rt->has_dedup) {
            const int32_t *row = to_rank + (size_t)s * R;
            for (int d = sn * gpn; d < (sn + 1) * gpn && d < R; d++)
                if (d != s) s_intra += row[d];
            const int32_t *nrow = to_node + (size_t)s * rt->nodes;
            for (int nd = 0; nd < rt->nodes; nd++)
                if (nd != sn) s_inter += nrow[nd];
        } else {
            const int32_t *row = rt->src_counts + (size_t)s * E;
            for (int e = 0; e < E; e++) {
                if (!row[e]) continue;
                double per = (double)row[e] / pl->copies[e];
                const int *rk = pl->ranks + (size_t)e * R;
                for (int i = 0; i < pl->copies[e]; i++) {
                    int d = rk[i];
                    if (d == s) continue;
                    if (d / gpn == sn) s_intra += per; else s_inter += per;
                }
            }
        }
        if (s_inter > 0) inter = 1;
        intra_tok += s_intra;
        inter_tok += s_inter;
        double link = s_intra / (hw->nvlink_gbps * 1e3) + s_inter / (hw->net_gbps * 1e3);
        if (link * tb > t_disp) t_disp = link * tb;
        if (link * cb > t_comb) t_comb = link * cb;
    }
    free(scratch);
    double lat = R > 1 ? (inter ? hw->net_lat_us : hw->nvlink_lat_us) : 0;
    res->t_dispatch = R > 1 ? t_disp + lat : 0;
    res->t_combine = R > 1 ? t_comb + lat : 0;
    res->bytes_intra = intra_tok * tb;
    res->bytes_inter = inter_tok * tb;
    double worst = 0, exposed_max = 0, comp_max = 0;
    for (int r = 0; r < R; r++) {
        if (res->rank_load[r] > 0) res->rank_compute[r] += hw->launch_us;
        double t_conv = conv[r] / (hw->hbm_gbps * 1e3 * hw->conv_eff);
        double exposed = t_conv > res->t_dispatch ? t_conv - res->t_dispatch : 0;
        /* a prefetch overlaps the dispatch and the rank's own work */
        double t_fetch = fetch[r] / (hw->nvlink_gbps * 1e3);
        double hide = res->t_dispatch + res->rank_compute[r];
        if (t_fetch > hide) exposed += t_fetch - hide;
        if (res->rank_compute[r] > comp_max) comp_max = res->rank_compute[r];
        res->rank_compute[r] += exposed;
        if (exposed > exposed_max) exposed_max = exposed;
        if (res->rank_compute[r] > worst) worst = res->rank_compute[r];
    }
    res->t_compute_max = comp_max;
    res->exposed_conv = exposed_max;
    res->t_layer = res->t_dispatch + worst + res->t_combine;
    res->imbalance = mplb_imbalance(res->rank_load, R);
    free(conv);
    return 0;
}
