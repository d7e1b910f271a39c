/* mplb_run: the step loop of one experiment, whatever its backend.
 *
 *   open the backend (mplb/backend.h), open or resume the run file;
 *   for each step, layer: generate routing; evaluate the all-bf16 baseline;
 *   then for each policy: observe -> decide (Lua, timed; act validates) ->
 *   evaluate (the backend) -> one /steps row -> feedback;
 *   close.
 * All policies see the same routing, so their rows compare like for like.
 * A policy error ends the run with status "failed"; every row already
 * appended is flushed first.
 */
#ifndef MPLB_RUN_H
#define MPLB_RUN_H

#include <signal.h>
#include "mplb/api.h"
#include "mplb/config.h"
#include "mplb/policy.h"

MPLB_BEGIN_DECLS

typedef struct mplb_run_opts {
    const char *out_path;   /* the run file; NULL evaluates without writing one */
    int force;              /* overwrite an existing file */
    int flush_rows;         /* 0 = 512 */
    double flush_seconds;   /* 0 = 1 s */
    int resume;             /* continue out_path from its last complete step */
    const struct mplb_ep_transport *transport; /* backend cpu: run each layer as a real EP layer on this rank */
    const struct mplb_exec_device *device;     /* backend cuda: where the experts run (the mplb binary opens it) */
    const char *command;    /* recorded in the file */
    mplb_policy_limits limits;
    /* Optional hooks for front ends (NULL = none): progress before each layer
     * (0-based step and layer); on_plan with each policy's checked plan (not
     * for replayed steps); *stop, set by a signal handler, ends the run before
     * the next layer with status "interrupted", every row kept, resumable
     * with resume = 1. */
    void (*progress)(void *ctx, int step, int layer, int steps, int layers);
    void (*on_plan)(void *ctx, int policy, int step, int layer, const mplb_plan *plan, double decide_us);
    void *hook_ctx;
    volatile sig_atomic_t *stop;
    /* The hardware profile to use instead of loading the experiment's
     * cluster.profile (NULL: load it); mplb_sensitivity moves its values. */
    const mplb_profile *hw;
    /* backend ep: run even when a host has more processes than cores (the
     * times are then labelled OVERSUBSCRIBED); refused otherwise */
    int allow_oversubscribed;
    /* appended to the times source (e.g. a sweep's OVERSUBSCRIBED label); NULL = none */
    const char *times_note;
} mplb_run_opts;

typedef struct mplb_policy_summary {
    char name[MPLB_LABEL_MAX];
    long rows;
    double sum_t_layer, sum_t_baseline, sum_imbalance, sum_error_proxy, sum_decide_us;
    double sum_t_layer_min, sum_t_layer_max;   /* the repeats' spread (mplb/measure.h) */
    int repeats;                /* timed runs per row (the last row's) */
    long acc_rows;              /* steps whose accuracy was measured (workload.kind = "lm") */
    double sum_kl, sum_top1, sum_ppl_delta;
    double dom_kl[MPLB_MAX_DOMAINS], dom_top1[MPLB_MAX_DOMAINS], dom_ppl_delta[MPLB_MAX_DOMAINS];  /* per text domain (kept steps of a resume from /accuracy) */
    long dom_rows;
} mplb_policy_summary;

typedef struct mplb_run_summary {
    int n_policies;
    int resumed_steps;          /* steps taken from an earlier file by resume */
    int n_domains;              /* workload.kind = "lm": its text domains (per-domain sums in pol[]) */
    char domains[MPLB_MAX_DOMAINS][64];
    mplb_policy_summary *pol;   /* malloc'd */
    char times_source[1024];    /* where the times come from (the backend's words) */
    const char *backend, *error_metric;   /* static strings */
} mplb_run_summary;

MPLB_API int mplb_run(const mplb_exp *exp, const mplb_run_opts *opts, mplb_run_summary *sum, mplb_err *err);
MPLB_API void mplb_run_summary_free(mplb_run_summary *sum);

MPLB_END_DECLS

#endif
