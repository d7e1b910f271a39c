/* mplb_observer: builds the observation a policy sees (mplb_obs) for each
 * (step, layer), the same way for the run loop, tests and benches.
 *
 * It owns the arrays obs points into: rank loads and vision loads under the
 * home placement, the all-bf16 weight memory per rank, the proxy's error
 * table and each format's compute-rate ratio over bf16 on the profile's
 * chip. The memory budget is cluster.expert_memory_gb, or 1.25 x the
 * busiest rank's all-bf16 expert weights when that is 0.
 */
#ifndef MPLB_OBSERVE_H
#define MPLB_OBSERVE_H

#include "mplb/api.h"
#include "mplb/config.h"
#include "mplb/policy.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

typedef struct mplb_observer {
    mplb_model model;
    int nodes, gpus_per_node;
    const mplb_placement *base;        /* the home placement (not owned) */
    double *rank_load, *rank_vision;   /* [R] */
    double *rank_mem;                  /* [R] */
    double mem_budget;
    double relerr[MPLB_PREC_COUNT], speed[MPLB_PREC_COUNT];
} mplb_observer;

/* relerr NULL: the proxy's own table (mplb_error_table). */
MPLB_API int mplb_observer_init(mplb_observer *ob, const mplb_model *m, const mplb_cluster *cl, const mplb_profile *hw,
                                const mplb_placement *base, const double *relerr, mplb_err *err);
MPLB_API void mplb_observer_free(mplb_observer *ob);
/* obs for (step, layer) of routing rt (NULL: an empty routing, for init). */
MPLB_API void mplb_observe(mplb_observer *ob, const mplb_routing *rt, int step, int layer, mplb_obs *obs);

MPLB_END_DECLS

#endif
