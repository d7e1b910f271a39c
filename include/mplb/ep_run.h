/* mplb_ep_run: one (step, layer, plan) as a real EP layer on this rank of a
 * transport (mplb run --backend cpu --transport mpi|local). The rank's
 * tokens are those the routing gives its data-parallel share; its experts
 * are those the plan places on it, in the plan's precision. Weights that the
 * plan converts online are converted in a second thread while the dispatch
 * is in flight; the time the experts then still wait is the exposed part
 * (overlap measured, not assumed). Tokens the plan moves are computed on
 * their target rank, which builds the expert's weights for the layer.
 * Rank 0 receives every rank's timings. Weights and activations come from
 * mplb/weights.h and slots go where mplb/split.h sends them, so a layer here
 * computes what backend "cpu" computes; each rank measures its tokens'
 * output error against the same layer all in bf16 (run on this layer's
 * first all-bf16 plan, or for the purpose).
 */
#ifndef MPLB_EP_RUN_H
#define MPLB_EP_RUN_H

#include "mplb/config.h"
#include "mplb/cost.h"
#include "mplb/dispatch.h"
#include "mplb/routing.h"
#include "mplb/api.h"

MPLB_BEGIN_DECLS

typedef struct mplb_ep_run mplb_ep_run;

/* per-rank measured times of one layer, microseconds */
typedef struct mplb_ep_times {
    double ffn, exposed, dispatch, combine, total, conv;
    double bytes_intra, bytes_inter;   /* dispatch bytes this rank sent (rows with their headers) */
    double err_num, err_den;           /* sum |y - y*|^2 and |y*|^2 over this rank's tokens (y* all bf16) */
} mplb_ep_times;

MPLB_API int mplb_ep_run_open(const mplb_model *m, uint64_t seed, const mplb_ep_transport *tp, mplb_ep_run **out, mplb_err *err);
MPLB_API void mplb_ep_run_close(mplb_ep_run *ep);
/* Run the layer; at rank 0, all[r] holds rank r's times (R entries). */
MPLB_API int mplb_ep_run_layer(mplb_ep_run *ep, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                      mplb_ep_times *all, mplb_err *err);

MPLB_END_DECLS

#endif
