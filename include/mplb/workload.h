/* mplb_wl: the routing of every (step, layer), synthetic or from a trace.
 *
 * Synthetic: each task family f and layer l has a popularity over experts
 * for text tokens (Zipf with exponent zipf over a permutation, or the sorted
 * per-layer loads of a real trace when skew_from is set), and each layer one
 * for vision tokens (vision_zipf: vision tokens flood a few experts).
 * Permutations carry over from layer to layer with probability layer_corr.
 * The family mix of a step swings by `drift` over drift_period steps (tasks
 * come and go); tokens of node n belong to family n mod F with probability
 * src_affinity (request types routed to device groups). Every
 * prefill_every-th step is a prefill of `tokens` tokens (with vision), the
 * others decode steps of decode_tokens text tokens. A token's top-k are k
 * distinct draws (Vose alias tables: O(1) a draw) from its popularity, its
 * gate weights those popularities renormalised; tokens are split evenly over
 * source ranks. The stream of (step, layer) depends only on (seed, step,
 * layer), so any cell can be regenerated alone (resume relies on it).
 * Trace: counts (and per-token choices, sources, vision, importance when
 * present) are read from an mplb trace file.
 */
#ifndef MPLB_WORKLOAD_H
#define MPLB_WORKLOAD_H

#include <stdint.h>
#include "mplb/config.h"
#include "mplb/routing.h"
#include "mplb/trace.h"

typedef struct mplb_rng { uint64_t s[4]; } mplb_rng;
void mplb_rng_seed(mplb_rng *r, uint64_t seed);
uint64_t mplb_rng_next(mplb_rng *r);
double mplb_rng_uniform(mplb_rng *r); /* [0, 1) with 53 random bits */

typedef struct mplb_alias { double *prob; int32_t *alias; const double *pop; int n; } mplb_alias;

typedef struct mplb_wl {
    mplb_workload_cfg cfg;
    int layers, E, k, R, gpus_per_node, F;
    uint64_t seed;
    double *pop;          /* [(F+1)*L*E]: text popularity of (family, layer), then vision per layer */
    double *prob;         /* alias tables over the same layout */
    int32_t *alias;
    mplb_trace *trace;    /* kind = "trace" */
} mplb_wl;

int mplb_wl_init(mplb_wl *wl, const mplb_workload_cfg *cfg, const mplb_model *m,
                 int R, int gpus_per_node, uint64_t seed, mplb_err *err);
void mplb_wl_free(mplb_wl *wl);
/* Tokens of a step (prefill or decode). */
int64_t mplb_wl_tokens(const mplb_wl *wl, int step);
int mplb_wl_is_decode(const mplb_wl *wl, int step);
/* Fill rt (cleared first) with the routing of (step, layer) under placement pl. */
int mplb_wl_generate(const mplb_wl *wl, int step, int layer, const mplb_placement *pl,
                     mplb_routing *rt, mplb_err *err);

#endif
