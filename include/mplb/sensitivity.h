/* mplb_sens: how far each conclusion moves with the profile's assumptions.
 *
 * Every profile parameter tagged "assumption" has a range. mplb_sensitivity
 * re-runs the experiment (without writing a run file) with each such
 * parameter at each end of its range, the others at their values, and keeps
 * every policy's speedup (sum of baseline layer time over sum of its own).
 * The band of a policy is the lowest and highest of those speedups; a band
 * that holds 1.0 when the nominal speedup does not (or the reverse), and a
 * ranking of the policies that changes at some end, are flagged.
 *
 *   mplb_sens s;
 *   mplb_sensitivity(&exp, &opts, &sum, &s, &err);  // sum: the nominal run's summary
 *   ... mplb_sens_print(&s, stdout); mplb_sens_write(path, &s, &err); mplb_sens_free(&s);
 */
#ifndef MPLB_SENSITIVITY_H
#define MPLB_SENSITIVITY_H

#include "mplb/api.h"

#include <stdio.h>
#include "mplb/run.h"

MPLB_BEGIN_DECLS

typedef struct mplb_sens {
    int n_policies, n_params;
    char (*policy)[MPLB_LABEL_MAX];   /* [P] */
    char (*param)[48];                /* [K] assumption parameters moved */
    double *param_lo, *param_hi;      /* [K] the ends of each range */
    double *nominal;                  /* [P] speedups at the profile's values */
    double *speedup;                  /* [K * 2 * P]: parameter k at lo (0) or hi (1), policy p */
    double *band_lo, *band_hi;        /* [P] */
    int *lo_arg, *hi_arg;             /* [P] index k * 2 + end of the band's ends */
    int *crosses_one;                 /* [P] 1 when the band holds 1.0 and the nominal is not 1.0 */
    int rank_flip_k;                  /* first k * 2 + end where the policies' order changes; -1 none */
} mplb_sens;

/* x and opts as for mplb_run (out_path, resume and hooks are ignored); the
 * nominal speedups come from sum. */
MPLB_API int mplb_sensitivity(const mplb_exp *x, const mplb_run_opts *opts, const mplb_run_summary *sum, mplb_sens *out,
                     mplb_err *err);
/* The CLI table: policy, speedup, band, the parameters at its ends, flags. */
MPLB_API void mplb_sens_print(const mplb_sens *s, FILE *f);
/* Add /sensitivity to a closed run file: datasets param (names), lo, hi,
 * speedup [K, 2, P], band [P, 3] (nominal, low, high), crosses_one [P]; an
 * attribute rank_flip naming the parameter end that reorders the policies
 * ("" for none). */
MPLB_API int mplb_sens_write(const char *path, const mplb_sens *s, mplb_err *err);
MPLB_API void mplb_sens_free(mplb_sens *s);

MPLB_END_DECLS

#endif
