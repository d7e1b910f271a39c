/* mplb_policy: a Lua policy file, sandboxed, called once per (step, layer).
 *
 * A policy file returns a table P with P.params (defaults, overridden by the
 * experiment), P.decide(obs, act), and optionally P.init(ctx) and
 * P.feedback(result). obs is a read-only view over the C arrays of the
 * current observation (1-based: obs.rank_load[r], obs.expert_load[e]); act
 * records actions that are checked as they are made, so a bad one raises an
 * error at the policy's own file:line; after decide, a plan whose expert
 * weights exceed obs.mem_budget on some rank is refused. Limits: mem_limit bytes of Lua heap
 * and instr_limit VM instructions per call.
 *
 *   mplb_policy *pol;
 *   if (mplb_policy_open("policies/threshold.lua", "{tau=1.5}", &lim, &ctx, &pol, &err) < 0) ...
 *   mplb_policy_decide(pol, &obs, &plan, &err);
 *   mplb_policy_close(pol);
 */
#ifndef MPLB_POLICY_H
#define MPLB_POLICY_H

#include "mplb/api.h"

#include <stddef.h>
#include <stdint.h>
#include "mplb/cost.h"

MPLB_BEGIN_DECLS

typedef struct mplb_policy mplb_policy;

typedef struct mplb_policy_limits {
    size_t mem_limit;        /* bytes of Lua heap; 0 = 64 MiB */
    long long instr_limit;   /* VM instructions per call; 0 = 10 million */
} mplb_policy_limits;

typedef struct mplb_obs {
    int step, layer, layers, ranks, experts, top_k, nodes, gpus_per_node;
    int64_t tokens;
    const double *rank_load;        /* [R] token copies homed on r */
    const double *rank_vision;      /* [R] of those, from vision tokens */
    const int32_t *expert_load;     /* [E] */
    const int32_t *expert_vision;   /* [E] */
    const double *expert_importance;/* [E] gate mass */
    const double *expert_ablation;  /* [E] measured importance: output KL with the expert removed
                                     * (workload kind "lm" with ablation = true), else NULL (Lua: length 0) */
    const int *expert_rank;         /* [E] home rank (0-based in C, 1-based in Lua) */
    const double *rank_mem;         /* [R] expert-weight bytes on r with all experts bf16 at home */
    const int32_t *src_counts;      /* [R*E] token copies from source rank r to expert e */
    const double *prec_error;       /* [MPLB_PREC_COUNT] relative weight error of each format */
    const double *prec_speed;       /* [MPLB_PREC_COUNT] compute-rate ratio over bf16 on this chip */
    const mplb_model *model;        /* shapes, for memory accounting */
    double mem_budget;              /* expert-weight bytes allowed per rank */
} mplb_obs;

typedef struct mplb_feedback {
    int step, layer;
    double t_layer, t_baseline, imbalance, error_proxy;
    int has_kl;        /* the step's output KL was measured (workload kind "lm", last layer): Lua res.kl */
    double kl;
} mplb_feedback;

MPLB_API int mplb_policy_open(const char *path, const char *params, const mplb_policy_limits *lim,
                     const mplb_obs *ctx, mplb_policy **out, mplb_err *err);
/* Reset plan to all-bf16 on the base placement, then let the policy act. */
MPLB_API int mplb_policy_decide(mplb_policy *pol, const mplb_obs *obs, mplb_plan *plan, mplb_err *err);
MPLB_API int mplb_policy_feedback(mplb_policy *pol, const mplb_feedback *fb, mplb_err *err);
MPLB_API void mplb_policy_close(mplb_policy *pol);
/* P.check(exp), if the policy has one, on the experiment's shape (tokens,
 * decode_tokens, steps, kind, vision_frac, layers, experts, top_k, nodes,
 * ranks): a message in out when a param makes the policy a no-op there
 * ("min_tokens = 2048 is above every batch"), else out = "". */
MPLB_API int mplb_policy_check(mplb_policy *pol, const mplb_exp *x, char *out, size_t cap, mplb_err *err);
/* The policy's source text and its resolved params as Lua text (owned by pol). */
MPLB_API const char *mplb_policy_source(const mplb_policy *pol);
MPLB_API const char *mplb_policy_params(const mplb_policy *pol);
/* 1 when the policy declares P.stateless = true: decide depends only on obs
 * and params, so resume need not replay earlier steps through it. */
MPLB_API int mplb_policy_stateless(const mplb_policy *pol);
/* Offline placement (mplb place): P.rebalance_experts(weight[layers][experts],
 * slots, groups, nodes, gpus), the interface of DeepSeek's EPLB and of vLLM's
 * and SGLang's rebalance_experts. Fills phy2log [layers*slots] (0-based
 * logical expert of each physical slot; GPU g holds slots g*slots/gpus..) and,
 * if non-NULL, phyrank [layers*slots] (replica index; phyrank[0] = -1 when the
 * policy returns none). Errors when the policy has no rebalance_experts. */
MPLB_API int mplb_policy_rebalance(mplb_policy *pol, const double *w, int layers, int experts, int slots, int groups,
                                   int nodes, int gpus, int *phy2log, int *phyrank, mplb_err *err);

MPLB_END_DECLS

#endif
