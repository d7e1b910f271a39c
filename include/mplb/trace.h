/* mplb_trace: routing traces in HDF5 (layout in docs/trace-file.md).
 *
 * A trace holds, per (step, layer), expert counts `counts` [S x L x E]
 * (int32) and optionally `src_counts` [S x L x R x E], `vision_counts`
 * [S x L x E], `importance` [S x L x E] (float64, e.g. R&Q's measured
 * accuracy drop or gate mass), `load` [S x L x E] (float64 loads that are
 * not whole token counts, e.g. decayed EPLB weights; counts round them) and per-token choices `topk_ids`
 * [S x L x T x k] (int32). Attributes: top_k, model, source, license,
 * layer_ids (the model layers the trace's layers came from) and phase
 * (per step: "prefill"/"decode", optional). Every read is validated: wrong
 * shapes, negative counts, ids >= E, NaN importance give an error naming the
 * file, dataset and index.
 */
#ifndef MPLB_TRACE_H
#define MPLB_TRACE_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

typedef struct mplb_trace {
    char path[1024];
    int steps, layers, experts, top_k, src;    /* src = 0 when no src_counts */
    int64_t tokens_per_step;                    /* > 0 only with topk_ids */
    int32_t *counts;                            /* [S*L*E] */
    int32_t *src_counts;                        /* [S*L*src*E] or NULL */
    int32_t *vision_counts;                     /* or NULL */
    double *importance;                         /* or NULL */
    int32_t *topk_ids;                          /* [S*L*T*k] or NULL */
    uint8_t *is_decode;                         /* [S] or NULL */
    int32_t *layer_ids;                         /* [L] the model's layer index of each layer, or NULL */
    double *load;                               /* [S*L*E] float loads (decayed EPLB weights) or NULL;
                                                   counts then hold them rounded */
    char model[64], source[512], license[128];
} mplb_trace;

MPLB_API int mplb_trace_read(const char *path, mplb_trace *t, mplb_err *err);
/* Write t (whichever optional arrays are non-NULL); refuses to overwrite
 * unless force. */
MPLB_API int mplb_trace_write(const char *path, const mplb_trace *t, int force, mplb_err *err);
MPLB_API void mplb_trace_free(mplb_trace *t);
/* Check shapes and values; err names the dataset and the first bad index. */
MPLB_API int mplb_trace_validate(const mplb_trace *t, mplb_err *err);

/* Routing of (step, layer) under placement pl. Without per-token ids or
 * source counts, each expert's tokens are spread evenly over source ranks
 * (no dedup information); with topk_ids, tokens are split evenly over ranks
 * in order and deduplicated exactly. */
MPLB_API int mplb_trace_routing(const mplb_trace *t, int step, int layer, const mplb_placement *pl,
                       int gpus_per_node, mplb_routing *rt, mplb_err *err);

/* Importers. CSV: a header row, then either "step,layer,expert,count" rows
 * (counts) or "step,layer,token,expert[,weight]" rows (one per top-k slot).
 * NPY: int or float counts [S, L, E], or a load matrix [L, E] (one step).
 * top_k is needed for counts-only input (tokens = sum / k); experts = 0
 * infers it from the largest id. */
MPLB_API int mplb_trace_import_csv(const char *path, int top_k, int experts, mplb_trace *t, mplb_err *err);
MPLB_API int mplb_trace_import_npy(const char *path, int top_k, mplb_trace *t, mplb_err *err);

/* Statistics of one (step, layer) of counts, and over time. */
typedef struct mplb_trace_stats {
    double max_over_mean;   /* busiest expert over the mean expert load */
    double lis;             /* E * max / (T * k) */
    double gini;            /* 0 = equal loads, -> 1 = one expert takes all */
    double entropy_norm;    /* Shannon entropy of the load / log(E): 1 = uniform */
    double rank_imbalance;  /* max/mean rank load under contiguous placement on R ranks */
} mplb_trace_stats;

MPLB_API void mplb_stats_counts(const int32_t *counts, int E, int top_k, int R, mplb_trace_stats *s);
/* Share of the top-n experts of step s still in the top-n at step s+1,
 * averaged over steps and layers (1 = persistent). */
MPLB_API double mplb_trace_persistence(const mplb_trace *t, int n);
/* Per-layer means over steps: out[0] LIS, out[1] rank max/mean on R
 * contiguous ranks, out[2] top-n persistence of this layer (NAN with one step). */
MPLB_API void mplb_trace_layer_stats(const mplb_trace *t, int layer, int R, int n, double out[3]);
/* Pearson correlation of per-expert loads between prefill and decode steps
 * (summed per phase, over layers); NAN when the trace has no phases. */
MPLB_API double mplb_trace_phase_correlation(const mplb_trace *t);

MPLB_END_DECLS

#endif
