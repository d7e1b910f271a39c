/* mplb_wl: synthetic routing, seeded and identical on every machine.
 *
 * Each layer has its own popularity over experts for text tokens (Zipf with
 * exponent zipf over a per-layer random permutation) and for vision tokens
 * (Zipf with vision_zipf over another permutation: vision tokens flood a few
 * experts). A token's top-k are k distinct draws from its modality's
 * popularity; its gate weights are those popularities renormalised. Tokens
 * are split evenly over source ranks (data-parallel attention). The random
 * stream of (step, layer) depends only on (seed, step, layer), so any cell
 * can be regenerated alone (resume needs this).
 */
#ifndef MPLB_WORKLOAD_H
#define MPLB_WORKLOAD_H

#include <stdint.h>
#include "mplb/config.h"
#include "mplb/routing.h"

typedef struct mplb_rng { uint64_t s[4]; } mplb_rng;
void mplb_rng_seed(mplb_rng *r, uint64_t seed);
uint64_t mplb_rng_next(mplb_rng *r);
double mplb_rng_uniform(mplb_rng *r); /* [0, 1) with 53 random bits */

typedef struct mplb_wl {
    mplb_workload_cfg cfg;
    int layers, E, k, R, gpus_per_node;
    uint64_t seed;
    double *cdf_text;    /* [layers*E] cumulative popularity */
    double *cdf_vision;  /* [layers*E] */
    double *pop_text;    /* [layers*E] */
    double *pop_vision;  /* [layers*E] */
} mplb_wl;

int mplb_wl_init(mplb_wl *wl, const mplb_workload_cfg *cfg, const mplb_model *m,
                 int R, int gpus_per_node, uint64_t seed, mplb_err *err);
void mplb_wl_free(mplb_wl *wl);
/* Fill rt (cleared first) with the routing of (step, layer) under placement pl. */
int mplb_wl_generate(const mplb_wl *wl, int step, int layer, const mplb_placement *pl,
                     mplb_routing *rt, mplb_err *err);

#endif
