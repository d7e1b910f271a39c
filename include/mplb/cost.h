/* mplb_cost: the analytic layer-time model (backend "model").
 *
 * Per expert e on rank r with n tokens at precision p (weights at p,
 * activations in the dtype p computes in on this chip, profile.compute_as):
 *   t_gemm = max(6 n d f / (peak[compute_as p] * eff(n)), bytes / hbm_bw)
 *   t_r    = sum_e t_gemm + launch   (one grouped-GEMM launch per busy rank)
 * A replicated expert's tokens split evenly over its copies; tokens a policy
 * moves to another rank (HarMoEny) are computed there, after that rank
 * fetches the expert's weights over NVLink (prefetch overlapped with the
 * dispatch and the rank's other work: only the excess is exposed).
 * Dispatch: each token is sent once per destination rank inside its node
 * (NVLink) and once per destination node (network), in the dispatch
 * precision (fp8 adds one float scale per 128 channels, as DeepEP does);
 * combine likewise in bf16. t_dispatch = max over senders + latency.
 * Weights are stored bf16. An expert computing in p != bf16 either converts
 * on the fly each layer (MPLB_CONV_ONLINE, ReaLB: cost bytes_read+written /
 * (hbm_bw * conv_eff), hidden behind the dispatch so only
 * exposed = max(0, t_conv - t_dispatch) counts), or is stored at p
 * (MPLB_CONV_STORED, R&Q: no conversion, memory at p bits), or keeps a
 * converted copy beside its bf16 weights (MPLB_CONV_CACHED: no conversion,
 * memory for both).
 *   t_layer = t_dispatch + max_r(t_r + exposed_r) + t_combine.
 * All times are microseconds; memory is bytes of expert weights per rank.
 */
#ifndef MPLB_COST_H
#define MPLB_COST_H

#include "mplb/config.h"
#include "mplb/routing.h"

enum { MPLB_CONV_ONLINE = 0, MPLB_CONV_STORED = 1, MPLB_CONV_CACHED = 2 };

typedef struct mplb_move { int e, from, to; double n; } mplb_move;

/* What a policy decided for one (step, layer), after validation. */
typedef struct mplb_plan {
    int R, E;
    mplb_prec *expert_prec;   /* [E] */
    uint8_t *expert_mode;     /* [E] MPLB_CONV_* */
    mplb_prec dispatch_prec;  /* bf16, fp8_e4m3, fp8_e5m2 or mxfp8 */
    mplb_placement placement;
    int placement_changed;    /* set by place/replicate: dispatch is re-deduplicated */
    int n_moves, cap_moves;
    mplb_move *moves;
} mplb_plan;

int mplb_plan_init(mplb_plan *pl, const mplb_placement *base, mplb_err *err);
void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base); /* all bf16, online, no moves */
void mplb_plan_free(mplb_plan *pl);
int mplb_plan_add_move(mplb_plan *pl, int e, int from, int to, double n, mplb_err *err);
/* Bytes of expert e's weights when stored in the given mode at precision p. */
double mplb_expert_bytes(const mplb_model *m, mplb_prec p, int mode);
/* Per-rank weight memory of a plan (bytes), into mem[R]. */
void mplb_plan_memory(const mplb_plan *pl, const mplb_model *m, double *mem);

typedef struct mplb_cost_result {
    double t_layer, t_dispatch, t_combine, t_compute_max, exposed_conv;
    double imbalance;         /* max/mean rank token copies after replicas and moves */
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
/* Bytes of one token's activations sent in precision p (with its scales). */
double mplb_cost_token_bytes(const mplb_model *m, mplb_prec p);

int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpus_per_node,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err);

#endif
