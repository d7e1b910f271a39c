/* mplb_wl_fit: the synthetic workload fitted to a real trace (`mplb trace fit`).
 *
 * Per layer: base expert shares = the trace's mean shares raised to a skew
 * exponent gamma (renormalised), and a step fluctuation sigma (log-normal,
 * see wl_time.c); over all layers: the regime-change rate and the wander
 * period, from the lag-1 and lag-2 autocorrelation of the per-step log-share
 * residuals (corrected for the demeaning bias and for the counting noise).
 * gamma and sigma are chosen per layer so that the model's expected mean
 * LIS, rank max/mean on R contiguous ranks and top-k persistence match the
 * trace's (simulated with common random numbers; a token's k distinct
 * experts by Rosen's successive-sampling inclusion 1 - exp(-lambda p)).
 * mplb_wl_fit_write writes a Lua file returning the workload table.
 */
#ifndef MPLB_WLFIT_H
#define MPLB_WLFIT_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"
#include "mplb/trace.h"

MPLB_BEGIN_DECLS

enum { MPLB_FIT_LIS, MPLB_FIT_RANK, MPLB_FIT_PERSIST, MPLB_FIT_NSTAT };

typedef struct mplb_wl_fit {
    int layers, experts, top_k, steps, R;
    int64_t tokens, decode_tokens;   /* mean tokens of prefill / decode steps */
    int prefill_every;
    double regime_rate, rho1, rho2, vision_frac;
    int wander_period;
    double *popularity;              /* [L*E] fitted base shares */
    double *sigma, *gamma;           /* [L] */
    double *real[MPLB_FIT_NSTAT];    /* [L] the trace's per-layer statistics */
    double *model[MPLB_FIT_NSTAT];   /* [L] the fitted model's expected values */
} mplb_wl_fit;

MPLB_API int mplb_wl_fit_trace(const mplb_trace *t, int R, mplb_wl_fit *out, mplb_err *err);
/* Write `return { kind = "synthetic", ... }`; refuses to overwrite unless force. */
MPLB_API int mplb_wl_fit_write(const mplb_wl_fit *f, const mplb_trace *t, const char *path, int force, mplb_err *err);
MPLB_API void mplb_wl_fit_free(mplb_wl_fit *f);

MPLB_END_DECLS

#endif
