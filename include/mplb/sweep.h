/* mplb_sweep: expand an experiment's sweep axes into points.
 *
 * Any list-valued field of the experiment is a sweep axis (cluster.nodes =
 * {1, 2, 4}, model = {"qwen3-30b-a3b", "deepseek-v3"}, seed = {1, 2, 3}),
 * and so is any list-valued parameter of a policy ({"threshold", tau = {1.1,
 * 1.5}}). The `policies` list itself is the compared set, not an axis. Points
 * are the cross product, the first axis varying slowest, except for axes tied
 * by the experiment's `zip` key (zip = {{"workload.tokens",
 * "policies.threshold.min_tokens"}}: a list of groups of axis names, a policy
 * axis also as policies.NAME.param), which take their values side by side
 * (equal lengths) as one dimension. Each point is a complete experiment (Lua
 * text, without zip) with a label naming its axis values.
 */
#ifndef MPLB_SWEEP_H
#define MPLB_SWEEP_H

#include "mplb/api.h"

#include "mplb/err.h"

MPLB_BEGIN_DECLS

typedef struct mplb_sweep_point {
    char *label;   /* "cluster.nodes=2 policies[2].tau=1.5" */
    char *text;    /* "return {...}" */
} mplb_sweep_point;

typedef struct mplb_sweep {
    int n_axes;
    char **axis_names;        /* "cluster.nodes", "policies[2].tau" */
    int n_points;
    mplb_sweep_point *points;
    char **values;            /* [n_points * n_axes] each axis value as text */
} mplb_sweep;

MPLB_API int mplb_sweep_expand(const char *path, const char *const *sets, int n_sets, mplb_sweep *out, mplb_err *err);
MPLB_API void mplb_sweep_free(mplb_sweep *s);

MPLB_END_DECLS

#endif
