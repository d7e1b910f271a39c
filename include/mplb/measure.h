/* mplb_measure: how a measuring backend (cpu, cuda, ep) times one plan so
 * that two plans of one layer compare fairly on a shared machine.
 *
 *   warm-up:   `warmup` untimed runs of the plan (caches, page faults, the
 *              first use of a format's weights);
 *   repeats:   `repeats` timed runs; when the baseline plan is given (a
 *              policy's plan), each repeat also runs the baseline, the two
 *              in alternating order (plan, baseline / baseline, plan / ...),
 *              so drift and noise from other processes fall on both alike;
 *   summary:   the layer time is the low median of the repeats (the middle
 *              value, the lower of the two middle ones for an even count;
 *              the repeat it comes from supplies every other time of the
 *              result, so the row stays consistent), the spread is their
 *              min and max; the baseline's interleaved repeats give the
 *              policy's own baseline median (mplb_measure_baseline).
 * Deterministic parts (loads, bytes, the output error) are equal in every
 * repeat; the median repeat's are kept.
 */
#ifndef MPLB_MEASURE_H
#define MPLB_MEASURE_H

#include "mplb/api.h"
#include "mplb/backend.h"
#include "mplb/cost.h"

MPLB_BEGIN_DECLS

/* One timed evaluation of plan into res (the backend's own). */
typedef int (*mplb_measure_once)(void *ctx, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res,
                                 double *error, mplb_err *err);

typedef struct mplb_measure mplb_measure;

/* R ranks; repeats in 1..MPLB_REPEATS_MAX, warmup >= 0. */
MPLB_API int mplb_measure_open(int R, int repeats, int warmup, mplb_measure **out, mplb_err *err);
MPLB_API void mplb_measure_close(mplb_measure *m);
/* plan measured as above (in->baseline: the baseline interleaved, or NULL);
 * res gets the median repeat's result and res->repeats, rep_layer,
 * n_base, rep_base. */
MPLB_API int mplb_measure_eval(mplb_measure *m, mplb_measure_once once, void *ctx, const mplb_layer_in *in,
                               const mplb_plan *plan, mplb_cost_result *res, double *error, mplb_err *err);

/* "; each time the median of 3 repeats (...) after 1 warm-up run(s)", for
 * a backend's times_source (repeats 0 = 1). */
MPLB_API void mplb_measure_describe(int repeats, int warmup, char *buf, size_t cap);

/* The low median of x[0..n) (n >= 1; x is not changed). */
MPLB_API double mplb_median_low(const double *x, int n);
/* min and max of x[0..n). */
MPLB_API void mplb_min_max(const double *x, int n, double *lo, double *hi);

/* A policy row's baseline: from the baseline repeats interleaved with the
 * plan when res has them, else from the layer's baseline evaluation base
 * (the model backend, or a plan equal to the baseline). Median, min, max. */
MPLB_API void mplb_measure_baseline(const mplb_cost_result *res, const mplb_cost_result *base, double *median,
                                    double *lo, double *hi);

MPLB_END_DECLS

#endif
