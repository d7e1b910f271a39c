/* Backends "cpu" and "cuda" (mplb/backend.h): every expert runs for real on
 * this machine (mplb/execute.h) -- the CPU kernel, or a device the caller
 * opened -- and its measured time replaces the cost model's compute term;
 * dispatch and combine stay modelled, and an online conversion, measured,
 * hides behind the modelled dispatch (only its excess counts). Each plan is
 * timed as mplb/measure.h says: warm-up, then repeats interleaved with the
 * layer's baseline, the median kept with its spread. */
#include "mplb/backend.h"
#include "mplb/execute.h"
#include "mplb/measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct exec_ctx {
    const mplb_backend_env *env;
    mplb_exec *ex;
    mplb_exec_result xr;
    mplb_measure *ms;
    char host[256];
} exec_ctx;

static void exec_close(void *p) {
    exec_ctx *c = p;
    if (!c) return;
    mplb_exec_close(c->ex);
    mplb_measure_close(c->ms);
    free(c->xr.rank_us);
    free(c->xr.conv_us);
    free(c);
}

static int open_with(const mplb_backend_env *env, const mplb_exec_device *dev, void **ctx, mplb_err *err) {
    int R = env->exp->cluster.nodes * env->exp->cluster.gpus_per_node;
    exec_ctx *c = calloc(1, sizeof *c);
    if (!c) return mplb_err_set(err, MPLB_ENOMEM, "backend: out of memory");
    c->env = env;
    c->xr.rank_us = calloc((size_t)R, sizeof(double));
    c->xr.conv_us = calloc((size_t)R, sizeof(double));
    snprintf(c->host, sizeof c->host, "unknown");
    gethostname(c->host, sizeof c->host - 1);
    int rc = c->xr.rank_us && c->xr.conv_us ? mplb_exec_open(&env->exp->model, env->exp->seed, dev, &c->ex, err)
                                             : mplb_err_set(err, MPLB_ENOMEM, "backend: out of memory");
    if (rc == 0) rc = mplb_measure_open(R, env->repeats > 0 ? env->repeats : 1, env->warmup, &c->ms, err);
    if (rc < 0) { exec_close(c); return rc; }
    *ctx = c;
    return 0;
}

static int cpu_open(const mplb_backend_env *env, void **ctx, mplb_err *err) { return open_with(env, NULL, ctx, err); }

static int cuda_open(const mplb_backend_env *env, void **ctx, mplb_err *err) {
    if (!env->device)
        return mplb_err_set(err, MPLB_EUNSUPP, "%s: backend = \"cuda\" needs a CUDA device and an mplb built with CUDA",
                            env->exp->path);
    return open_with(env, env->device, ctx, err);
}

/* One timed run of plan: the model's communication, the measured compute. */
static int exec_once(void *p, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                     mplb_err *err) {
    exec_ctx *c = p;
    const mplb_exp *x = c->env->exp;
    int rc = mplb_cost_eval(c->env->hw, &x->model, x->cluster.gpus_per_node, in->rt, plan, res, err);
    if (rc == 0) rc = mplb_exec_layer(c->ex, in->step, in->layer, in->rt, plan, &c->xr, err);
    if (rc < 0) return rc;
    double worst = 0, cmax = 0, emax = 0;
    for (int r = 0; r < plan->R; r++) {
        double exposed = c->xr.conv_us[r] > res->t_dispatch ? c->xr.conv_us[r] - res->t_dispatch : 0;
        res->rank_compute[r] = c->xr.rank_us[r] + exposed;
        if (c->xr.rank_us[r] > cmax) cmax = c->xr.rank_us[r];
        if (exposed > emax) emax = exposed;
        if (res->rank_compute[r] > worst) worst = res->rank_compute[r];
    }
    res->t_compute_max = cmax;
    res->exposed_conv = emax;
    res->t_layer = res->t_dispatch + worst + res->t_combine;
    *error = c->xr.error;
    return 0;
}

static int exec_eval(void *p, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                     mplb_err *err) {
    exec_ctx *c = p;
    return mplb_measure_eval(c->ms, exec_once, c, in, plan, res, error, err);
}

static void exec_describe(void *p, char *buf, size_t cap) {
    exec_ctx *c = p;
    char rep[160];
    mplb_measure_describe(c->env->repeats, c->env->warmup, rep, sizeof rep);
    if (c->env->device)
        snprintf(buf, cap, "expert compute measured on %s (host %s)%s; dispatch/combine: cost model, profile %s",
                 c->env->device->name, c->host, rep, c->env->hw->name);
    else
        snprintf(buf, cap, "expert compute measured on the CPU of %s%s; dispatch/combine: cost model, profile %s", c->host,
                 rep, c->env->hw->name);
}

const mplb_backend_ops mplb_backend_cpu_ops = {"cpu", "output_rel_rms", cpu_open, exec_eval, exec_describe, exec_close};
const mplb_backend_ops mplb_backend_cuda_ops = {"cuda", "output_rel_rms", cuda_open, exec_eval, exec_describe, exec_close};
