/* mplb_routing / mplb_placement: who sends how many tokens to which expert.
 *
 * A placement maps each logical expert to the ranks holding a copy (its
 * home rank first). The default is contiguous blocks: expert e lives on rank
 * floor(e * R / E), which spreads E % R extra experts when E is not divisible
 * by R. Routing for one (step, layer) is counted per source rank and expert;
 * everything the cost model needs derives from these counts. When per-token
 * choices are known, tokens sent to several experts on one rank or node are
 * also counted once (dedup), as DeepEP sends them.
 */
#ifndef MPLB_ROUTING_H
#define MPLB_ROUTING_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"

MPLB_BEGIN_DECLS

typedef struct mplb_placement {
    int R, E;
    int *home;          /* [E] rank of the original copy */
    uint8_t *has;       /* [E*R] 1 when rank r holds a copy of expert e */
    int *copies;        /* [E] number of ranks holding e (>= 1) */
    int *ranks;         /* [E*R] ranks holding e: ranks[e*R + i], i < copies[e]; home first */
} mplb_placement;

MPLB_API int mplb_placement_init_contiguous(mplb_placement *p, int R, int E, mplb_err *err);
MPLB_API int mplb_placement_copy(mplb_placement *dst, const mplb_placement *src, mplb_err *err);
MPLB_API void mplb_placement_assign(mplb_placement *dst, const mplb_placement *src); /* same R, E */
MPLB_API void mplb_placement_free(mplb_placement *p);
/* Give rank r a copy of expert e (no-op if it has one). */
MPLB_API void mplb_placement_add(mplb_placement *p, int e, int r);
/* Per-layer placements from an engine's physical->logical map in a JSON
 * file: "phy2log" (mplb place) or "physical_to_logical_map" (SGLang's
 * --init-expert-location), [layers][slots] logical ids, slots a multiple of
 * R, rank r holding slots r*slots/R..(r+1)*slots/R-1; an expert's first slot
 * is its home. out[layers] are initialised here; errors name the file, row
 * and slot (no slot for an expert, ids out of range, wrong row count). */
MPLB_API int mplb_placement_load_map(const char *path, int layers, int R, int E, mplb_placement *out, mplb_err *err);
/* Experts whose home is r. */
MPLB_API int mplb_placement_rank_experts(const mplb_placement *p, int r);

typedef struct mplb_routing {
    int R, E, nodes, top_k;
    int64_t tokens;          /* T: tokens in the step (all ranks) */
    int32_t *src_counts;     /* [R*E] token copies from source rank r to expert e */
    int32_t *expert_counts;  /* [E] sum over sources */
    int32_t *vision_counts;  /* [E] copies that came from vision tokens */
    int32_t *src_vision;     /* [R] vision tokens originating on r */
    double *importance;      /* [E] gate-weight mass */
    int has_dedup;           /* per-token choices known (synthetic, per-token traces) */
    int32_t *tok_to_rank;    /* [R*R] tokens from r with >= 1 expert homed on d */
    int32_t *tok_to_node;    /* [R*nodes] tokens from r with >= 1 expert on node n */
    int32_t *tok_src;        /* [tokens] source rank of each token */
    int32_t *tok_ids;        /* [tokens*top_k] its experts */
    int64_t tok_cap;
} mplb_routing;

MPLB_API int mplb_routing_alloc(mplb_routing *rt, int R, int E, int nodes, int top_k, mplb_err *err);
MPLB_API void mplb_routing_clear(mplb_routing *rt);
MPLB_API void mplb_routing_free(mplb_routing *rt);
/* Add one token from src with top-k experts ids[] and gate weights w[]. */
MPLB_API void mplb_routing_add_token(mplb_routing *rt, const mplb_placement *pl, int gpus_per_node,
                            int src, int vision, const int *ids, const float *w);

/* Under another placement or with moved tokens, mplb_split_dests and
 * mplb_split_dedup (mplb/split.h) give the dispatch's destinations. */

/* LIS (R&Q): E * max_e n_e / (T * k): the busiest expert's tokens over the
 * equal split; 1 = balanced. 0 when T = 0. */
MPLB_API double mplb_lis(const int32_t *expert_counts, int E, int64_t tokens, int top_k);
/* LIS after a plan: E * max over expert instances (e, r) of rows[e*R + r] /
 * (T * k), rows from mplb_split_rows (replicas share an expert's slots, moved
 * tokens count where computed). Equals mplb_lis when each expert has one
 * instance; the equal split stays T * k / E (logical experts). */
MPLB_API double mplb_lis_rows(const int64_t *rows, int E, int R, int64_t tokens, int top_k);
/* Rank analogue: max rank load / mean rank load (1 when all idle). */
MPLB_API double mplb_imbalance(const double *rank_load, int R);

MPLB_END_DECLS

#endif
