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
    if (!pl->expert_prec) return mplb_err_set(err, MPLB_ENOMEM, "plan: out of memory");
    int rc = mplb_placement_copy(&pl->placement, base, err);
    if (rc < 0) { free(pl->expert_prec); pl->expert_prec = NULL; return rc; }
    mplb_plan_reset(pl, base);
    return 0;
}

void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base) {
    for (int e = 0; e < pl->E; e++) pl->expert_prec[e] = MPLB_PREC_BF16;
    pl->dispatch_prec = MPLB_PREC_BF16;
    mplb_placement_assign(&pl->placement, base);
}

void mplb_plan_free(mplb_plan *pl) {
    free(pl->expert_prec);
    mplb_placement_free(&pl->placement);
    memset(pl, 0, sizeof *pl);
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
    for (int i = 1; i < k; i++) {
        if (n <= c[i].n) {
            double a = log(c[i - 1].n), b = log(c[i].n), x = log(n);
            return c[i - 1].eff + (c[i].eff - c[i - 1].eff) * (x - a) / (b - a);
        }
    }
    return c[k - 1].eff;
}

double mplb_cost_expert_us(const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n) {
    if (n <= 0) return 0;
    mplb_prec cp = hw->compute_as[p];
    double d = m->hidden, f = m->ffn;
    double flops = 6.0 * n * d * f;
    double t_flop = flops / (hw->peak_tflops[cp] * 1e12 * mplb_cost_eff(hw, cp, n));
    /* Weights at p; activations in (d) and out (d) at the compute dtype's width,
     * the gate/up intermediate (2f) written and read once. */
    double w_bytes = 3.0 * d * f * mplb_prec_bits(p) / 8.0;
    double a_bytes = n * (2.0 * d + 4.0 * f) * mplb_prec_bits(cp) / 8.0;
    double t_mem = (w_bytes + a_bytes) / (hw->hbm_gbps * 1e9);
    return 1e6 * (t_flop > t_mem ? t_flop : t_mem);
}

/* Bytes a rank sends (or receives) per token in precision p: the hidden
 * vector plus its scales. */
static double token_bytes(const mplb_model *m, mplb_prec p) {
    return m->hidden * mplb_prec_bits(p) / 8.0;
}

int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpn,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err) {
    int R = rt->R, E = rt->E;
    if (plan->R != R || plan->E != E)
        return mplb_err_set(err, MPLB_EINVAL, "cost: plan is %dx%d but routing is %dx%d", plan->R, plan->E, R, E);
    const mplb_placement *pl = &plan->placement;
    double *conv = calloc((size_t)R, sizeof(double));
    if (!conv) return mplb_err_set(err, MPLB_ENOMEM, "cost: out of memory");
    memset(res->rank_load, 0, (size_t)R * sizeof(double));
    memset(res->rank_compute, 0, (size_t)R * sizeof(double));
    double w_bf16 = 3.0 * m->hidden * m->ffn * 2.0;
    for (int e = 0; e < E; e++) {
        double n = (double)rt->expert_counts[e] / pl->copies[e];
        mplb_prec p = plan->expert_prec[e];
        double t = mplb_cost_expert_us(hw, m, p, n);
        for (int r = 0; r < R; r++) {
            if (!pl->has[(size_t)e * R + r]) continue;
            res->rank_load[r] += n;
            res->rank_compute[r] += t;
            /* read bf16, write p */
            if (p != MPLB_PREC_BF16 && n > 0)
                conv[r] += w_bf16 + w_bf16 * mplb_prec_bits(p) / 16.0;
        }
    }
    /* Dispatch: bytes from each source to each destination rank. */
    double tb = token_bytes(m, plan->dispatch_prec), cb = token_bytes(m, MPLB_PREC_BF16);
    double intra_send = 0, inter_send = 0;
    double t_disp = 0, t_comb = 0;
    int inter = 0;
    for (int s = 0; s < R; s++) {
        double s_intra = 0, s_inter = 0;
        for (int d = 0; d < R; d++) {
            if (d == s) continue;
            double toks;
            if (rt->has_dedup && d / gpn == s / gpn) toks = rt->tok_to_rank[(size_t)s * R + d];
            else if (rt->has_dedup) continue;
            else {
                toks = 0;
                for (int e = 0; e < E; e++)
                    if (pl->has[(size_t)e * R + d])
                        toks += (double)rt->src_counts[(size_t)s * E + e] / pl->copies[e];
            }
            if (d / gpn == s / gpn) s_intra += toks;
            else s_inter += toks;
        }
        if (rt->has_dedup)
            for (int nd = 0; nd < rt->nodes; nd++)
                if (nd != s / gpn) s_inter += rt->tok_to_node[(size_t)s * rt->nodes + nd];
        if (s_inter > 0) inter = 1;
        intra_send += s_intra;
        inter_send += s_inter;
        double ts = s_intra * tb / (hw->nvlink_gbps * 1e3) + s_inter * tb / (hw->net_gbps * 1e3);
        double tc = s_intra * cb / (hw->nvlink_gbps * 1e3) + s_inter * cb / (hw->net_gbps * 1e3);
        if (ts > t_disp) t_disp = ts;
        if (tc > t_comb) t_comb = tc;
    }
    double lat = R > 1 ? (inter ? hw->net_lat_us : hw->nvlink_lat_us) : 0;
    res->t_dispatch = R > 1 ? t_disp + lat : 0;
    res->t_combine = R > 1 ? t_comb + lat : 0;
    res->bytes_intra = intra_send * tb;
    res->bytes_inter = inter_send * tb;
    double worst = 0, exposed_max = 0, comp_max = 0;
    for (int r = 0; r < R; r++) {
        if (res->rank_load[r] > 0) res->rank_compute[r] += hw->launch_us;
        double t_conv = conv[r] / (hw->hbm_gbps * 1e3 * hw->conv_eff);
        double exposed = t_conv > res->t_dispatch ? t_conv - res->t_dispatch : 0;
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
