/* mplb_weights: the one source of expert weights and activations for every
 * backend that runs experts for real (cpu, ep, cuda), calibrate, benches and
 * tests. Same model and seed => the same numbers on every backend and
 * process count.
 *
 * Master weights of (layer, expert) are float, drawn from a heavy-tailed
 * distribution (Gaussian, 1% of entries x8: real expert weights have
 * outliers), std 0.5/sqrt(hidden), seeded by (seed, layer, expert) only.
 * Activations of token t of (step, layer) are Gaussian, seeded by
 * (seed, step, layer, t): a token's row is the same on whichever rank it
 * starts. Quantized copies of the current layer's experts are cached per
 * precision; a new layer drops them (a layer's weights are built once).
 */
#ifndef MPLB_WEIGHTS_H
#define MPLB_WEIGHTS_H

#include <stdint.h>
#include "mplb/api.h"
#include "mplb/config.h"
#include "mplb/ffn.h"

MPLB_BEGIN_DECLS

typedef struct mplb_weights mplb_weights;

/* Refuses models whose float masters of one layer exceed 4 GB. */
MPLB_API int mplb_weights_open(const mplb_model *m, uint64_t seed, mplb_weights **out, mplb_err *err);
MPLB_API void mplb_weights_close(mplb_weights *w);

/* Fill dst [3][d*f] (gate, up, down) with the masters of (layer, e): the
 * generator itself, for users that keep their own storage. */
MPLB_API void mplb_weights_fill(uint64_t seed, int layer, int e, int d, int f, float *dst);

/* The masters of (layer, e), generated for all experts on a layer's first use. */
MPLB_API const float *mplb_weights_master(mplb_weights *w, int layer, int e);

/* Expert e of `layer` stored at p (built once per layer and cached). */
MPLB_API int mplb_weights_get(mplb_weights *w, int layer, int e, mplb_prec p, const mplb_expert_w **out, mplb_err *err);

/* An online conversion of (layer, e)'s masters to p, timed: *out is the
 * caller's to free (mplb_expert_free). */
MPLB_API int mplb_weights_convert(mplb_weights *w, int layer, int e, mplb_prec p, mplb_expert_w *out, double *us,
                                  mplb_err *err);

/* Row x [d] of token t (the step-wide index) in (step, layer). */
MPLB_API void mplb_weights_acts(uint64_t seed, int step, int layer, int64_t t, int d, float *x);

MPLB_END_DECLS

#endif
