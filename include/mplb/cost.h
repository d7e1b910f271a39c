/* mplb_cost: the analytic layer-time model (backend "model"), version 2.
 * docs/cost-model.md gives every term and where its parameters come from.
 *
 * Compute, per rank: one grouped GEMM launch per weight precision for the
 * gate/up projection (N = 2f, K = d) and one for down (N = d, K = f). Each
 * is a roofline: max(MMA time, operand loads) + output stores, where MMA
 * time pads each expert's tokens to whole tiles (tile_m x tile_n) and the
 * tiles to whole waves over the SMs, at peak[compute dtype] * mma_eff; loads
 * are the weights at p (block scales included) and the activations in the
 * compute dtype; bytes move at hbm_gbps * hbm_eff. Between the GEMMs the
 * SwiGLU pass reads 2f and writes f per token (quantising it for W8A8/W4A4);
 * before GEMM1, a pass converts dispatched activations when their format is
 * not the compute dtype's. Shared experts run on each rank's own tokens.
 * Rows per (expert, rank) follow the one split rule (mplb/split.h: replicas
 * round robin, moves of whole rows); tokens a policy moves (HarMoEny) are
 * computed on the target, which prefetches the weights from host memory over
 * PCIe (host_gbps), overlapped with the dispatch and its own work (only the
 * excess is exposed); the dispatch routes the moved tokens to the target
 * (the split rule's per-slot ranks with the per-token log; from counts alone
 * the target receives them instead of the source).
 * Communication, per rank: max(bytes sent, bytes received) over
 * (link efficiency x bandwidth), NVLink inside a node and the NIC across
 * (each token once per destination rank or node, DeepEP's dedup; a token
 * reaching another node lands on the GPU of the sender's local index and is
 * forwarded over NVLink); dispatch in the plan's precision with its scales,
 * combine in bf16; plus a fixed latency. t_dispatch = max over ranks.
 * Conversion of bf16 weights to p on the fly (MPLB_CONV_ONLINE, ReaLB) runs
 * at hbm_gbps * conv_eff, hidden behind the dispatch; a placement that differs
 * from plan->prev_placement (a rebalance) moves the new copies' weights over
 * NVLink or the NIC before the layer, fully exposed.
 *   t_layer = t_dispatch + max_r(t_r + exposed_r + migrate_r) + t_combine.
 * All times are microseconds; memory is bytes of expert weights per rank.
 */
#ifndef MPLB_COST_H
#define MPLB_COST_H

#include "mplb/api.h"

#include "mplb/config.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

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
    /* The placement in force before this step (the caller's; NULL: none). A
     * copy the plan adds that it lacks is a migration, paid in this step. */
    const mplb_placement *prev_placement;
} mplb_plan;

MPLB_API int mplb_plan_init(mplb_plan *pl, const mplb_placement *base, mplb_err *err);
MPLB_API void mplb_plan_reset(mplb_plan *pl, const mplb_placement *base); /* all bf16, online, no moves */
/* 1 when every expert and the dispatch are bf16: the reference an executed
 * layer's output error is measured against (whatever its placement). */
MPLB_API int mplb_plan_is_bf16(const mplb_plan *pl);
MPLB_API void mplb_plan_free(mplb_plan *pl);
MPLB_API int mplb_plan_add_move(mplb_plan *pl, int e, int from, int to, double n, mplb_err *err);
/* Bytes of expert e's weights when stored in the given mode at precision p. */
MPLB_API double mplb_expert_bytes(const mplb_model *m, mplb_prec p, int mode);
/* Per-rank weight memory of a plan (bytes), into mem[R]. */
MPLB_API void mplb_plan_memory(const mplb_plan *pl, const mplb_model *m, double *mem);

#define MPLB_REPEATS_MAX 32   /* timed repeats of one evaluation, at most */

typedef struct mplb_cost_result {
    int R;
    double t_layer, t_dispatch, t_combine, t_compute_max, exposed_conv;
    double imbalance;         /* max/mean rank token copies after replicas and moves */
    double bytes_intra, bytes_inter;
    double t_migrate;         /* max over ranks of the migration time of a rebalance */
    double bytes_migrate;     /* expert weight bytes a rebalance moved */
    double t_shared;          /* max over ranks of the shared experts' time (in rank_compute) */
    double *rank_load;        /* [R] token copies computed on r */
    double *rank_compute;     /* [R] t_r + exposed_r */
    double *scratch;          /* owned: per-rank accumulators of one evaluation */
    /* Repeated measurement (mplb/measure.h): t_layer is the low median of
     * rep_layer[0..repeats); rep_base[0..n_base) the baseline's layer times
     * measured interleaved with this plan (n_base 0: none). The cost model
     * sets repeats 1, rep_layer[0] = t_layer, n_base 0. */
    int repeats, n_base;
    double rep_layer[MPLB_REPEATS_MAX], rep_base[MPLB_REPEATS_MAX];
} mplb_cost_result;

MPLB_API int mplb_cost_result_alloc(mplb_cost_result *res, int R, mplb_err *err);
MPLB_API void mplb_cost_result_free(mplb_cost_result *res);
/* dst = src (same R). */
MPLB_API void mplb_cost_result_copy(mplb_cost_result *dst, const mplb_cost_result *src);

/* The roofline of a grouped GEMM launch, accumulated expert by expert. The
 * kernel picks its tile (block_m in tile_m/4, tile_m/2, tile_m; block_n in
 * 16..tile_n by 8, as DeepGEMM's heuristic does) to minimise its time:
 * each expert's rows padded to whole block_m, the tiles to whole waves over
 * the SMs, each tile at rate / sms. */
typedef struct mplb_gemm_acc {
    double N, K, rate;   /* of the launch: every expert has the same shape */
    double mtiles[3];    /* sum over experts of ceil(n / block_m), per block_m */
    double mma_us;       /* without a tile model (tile_m = 0): sum of n N K 2 / (rate eff(n)) */
    double load, store;  /* bytes */
    int busy;            /* experts with tokens */
} mplb_gemm_acc;

/* Add one expert's GEMM: n rows (tokens) times N x K weights stored at
 * w_bits per element (scales included), activations of a_bytes per element,
 * computed in the chip's dtype cp; outputs bf16. */
MPLB_API void mplb_gemm_add(mplb_gemm_acc *a, const mplb_profile *hw, mplb_prec cp, double n, double N, double K,
                   double w_bits, double a_bytes);
/* Time of the accumulated launch (no launch overhead). */
MPLB_API double mplb_gemm_us(const mplb_gemm_acc *a, const mplb_profile *hw);
/* Bytes per element of an activation in precision p, scales included
 * (fp8: one float per 128 channels, DeepEP/DeepGEMM; MX/NV: block scales). */
MPLB_API double mplb_cost_act_bytes(mplb_prec p);
/* Bytes an online conversion of `elements` bf16 weights to p moves: read
 * bf16, write p with its scales (mplb_prec_bits). */
MPLB_API double mplb_cost_conv_bytes(double elements, mplb_prec p);
/* Time of a link carrying `sent` bytes out and `recv` bytes in (full duplex). */
MPLB_API double mplb_cost_link_us(double sent, double recv, double gbps, double eff);
/* eff(n) of a measured curve for precision p (1 when the profile has none). */
MPLB_API double mplb_cost_eff(const mplb_profile *hw, mplb_prec p, double n);
/* One expert's FFN time for n tokens at precision p, alone on its rank
 * (both GEMMs, the SwiGLU pass, two launches), dispatched in bf16. */
MPLB_API double mplb_cost_expert_us(const mplb_profile *hw, const mplb_model *m, mplb_prec p, double n);
/* Bytes of one token's activations sent in precision p (with its scales). */
MPLB_API double mplb_cost_token_bytes(const mplb_model *m, mplb_prec p);

MPLB_API int mplb_cost_eval(const mplb_profile *hw, const mplb_model *m, int gpus_per_node,
                   const mplb_routing *rt, const mplb_plan *plan,
                   mplb_cost_result *res, mplb_err *err);

MPLB_END_DECLS

#endif
