/* mplb_cost: the analytic layer-time model (backend "model").
 *
 * First version, to be refined by the [costmodel] issue. Per expert e on
 * rank r with n tokens at precision p (weights, activations in the format's
 * compute dtype on this chip):
 *   t_gemm = max(6 n d f / (peak[compute_as p] * eff(n)), bytes / hbm) ;
 *   t_r    = sum_e t_gemm + launch (one grouped-GEMM launch per busy rank);
 * a replicated expert's tokens split evenly over its copies. Dispatch sends
 * each token once per destination rank (dedup counts when known, else every
 * copy) over NVLink inside a node and the network across nodes, in the
 * dispatch precision; combine likewise in bf16. Weights are stored bf16; a
 * rank whose experts run in another format converts them on the fly:
 * t_conv_r = bytes / (hbm * conv_eff), hidden behind the dispatch, so only
 * exposed_r = max(0, t_conv_r - t_dispatch) counts.
 *   t_layer = t_dispatch + max_r(t_r + exposed_r) + t_combine.
 * All times are microseconds.
 */
#ifndef MPLB_COST_H
#define MPLB_COST_H

#include "mplb/config.h"
#include "mplb/routing.h"

/* What a policy decided for one (step, layer), after validation. */
typedef struct mplb_plan {
    int R, E;
    mplb_prec *expert_prec;   /* [E] */
    mplb_prec dispatch_prec;  /* bf16 or an fp8 */
    mplb_placement placement;
} mplb_plan;

int mplb_plan_init(mplb_plan *pl, const mplb_placement *base, mplb_err *err);
void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base); /* all bf16 */
void mplb_plan_free(mplb_plan *pl);

typedef struct mplb_cost_result {
    double t_layer, t_dispatch, t_combine, t_compute_max, exposed_conv;
    double imbalance;         /* max/mean rank token copies after replicas */
    double bytes_intra, bytes_inter;
    double *rank_load;        /* [R] token copies computed on r */
    double *rank_compute;     /* [R] t_r + exposed_r */
} mplb_cost_result;

int mplb_cost_result_alloc(mplb_cost_result *res, int R, mplb_err *err);
void mplb_cost_result_free(mplb_cost_result *res);

/* eff(n) of precision p: piecewise-linear in log n, clamped at both ends. */
double mplb_cost_eff(const mplb_profile *hw, mplb_prec p, double n);
/* One expert's GEMM time for n tokens at precision p (no launch). */
double mplb_cost_expert_us(const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n);

int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpus_per_node,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err);

#endif
