/* Backend "ep" (mplb/backend.h): each (step, layer, plan) runs as a real EP
 * layer across the transport's processes (mplb/ep_run.h); rank 0 receives
 * every rank's measured dispatch, compute and combine times, bytes and
 * output error, and they replace the cost model's. Every process evaluates
 * the same plans in the same order (the run loop is deterministic). */
#include "mplb/backend.h"
#include "mplb/ep_run.h"
#include "mplb/measure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ep_ctx {
    const mplb_backend_env *env;
    mplb_ep_run *ep;
    mplb_ep_times *t;   /* [R] at rank 0 */
    mplb_measure *ms;
    long local, cores;  /* this job's processes on this host, its cores */
    int over;           /* some host runs more processes than it has cores */
    char host[256];
} ep_ctx;

static void ep_close(void *p) {
    ep_ctx *c = p;
    if (!c) return;
    mplb_ep_run_close(c->ep);
    mplb_measure_close(c->ms);
    free(c->t);
    free(c);
}

/* Processes of this job on this host (Open MPI's and MPICH's launch
 * variables), or 0 when unknown. */
static long local_processes(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!v) v = getenv("MPI_LOCALNRANKS");
    return v ? strtol(v, NULL, 10) : 0;
}

/* 1 on every process when any host runs more of the job's processes than it
 * has cores (each process tells every other through the transport, so all
 * refuse together and none waits in a collective). */
static int any_oversubscribed(const mplb_ep_transport *tp, int mine, int *any, mplb_err *err) {
    int n = tp->size;
    uint8_t flag = (uint8_t)(mine != 0), **send = calloc((size_t)n, sizeof *send), **recv = calloc((size_t)n, sizeof *recv);
    size_t *sn = calloc((size_t)n, sizeof *sn), *rn = calloc((size_t)n, sizeof *rn);
    int rc = send && recv && sn && rn ? 0 : mplb_err_set(err, MPLB_ENOMEM, "backend ep: out of memory");
    for (int d = 0; d < n && rc == 0; d++) { send[d] = &flag; sn[d] = 1; }
    if (rc == 0) rc = tp->alltoallv(tp->ctx, send, sn, recv, rn, err);
    *any = 0;
    for (int s = 0; s < n && rc == 0; s++) *any |= rn[s] == 1 && recv[s][0];
    if (rc == 0) free(recv[0]);
    free(send); free(recv); free(sn); free(rn);
    return rc;
}

static int ep_open(const mplb_backend_env *env, void **ctx, mplb_err *err) {
    const mplb_exp *x = env->exp;
    int R = x->cluster.nodes * x->cluster.gpus_per_node;
    if (!env->transport)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: backend = \"ep\" runs real EP layers across processes: "
                            "start it with mpirun -np %d mplb run ... --transport mpi", x->path, R);
    if (env->transport->size != R)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: %d processes, but the cluster has %d ranks (nodes x gpus_per_node)",
                            x->path, env->transport->size, R);
    ep_ctx *c = calloc(1, sizeof *c);
    if (!c) return mplb_err_set(err, MPLB_ENOMEM, "backend ep: out of memory");
    c->env = env;
    c->t = calloc((size_t)R, sizeof *c->t);
    snprintf(c->host, sizeof c->host, "unknown");
    gethostname(c->host, sizeof c->host - 1);
    c->local = local_processes();
    c->cores = sysconf(_SC_NPROCESSORS_ONLN);
    int rc = c->t ? any_oversubscribed(env->transport, c->local > 0 && c->cores > 0 && c->local > c->cores, &c->over, err)
                  : mplb_err_set(err, MPLB_ENOMEM, "backend ep: out of memory");
    if (rc == 0 && c->over && !env->allow_oversubscribed)
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: more processes than cores on a host (here %ld on %ld cores): measured "
                          "times would include waiting for a core and would not compare plans; use as many processes "
                          "as cores, or --allow-oversubscribed to run anyway (the times are then labelled "
                          "OVERSUBSCRIBED)", x->path, c->local, c->cores);
    if (rc == 0) rc = mplb_measure_open(R, env->repeats > 0 ? env->repeats : 1, env->warmup, &c->ms, err);
    if (rc == 0) rc = mplb_ep_run_open(&x->model, x->seed, env->transport, &c->ep, err);
    if (rc < 0) { ep_close(c); return rc; }
    *ctx = c;
    return 0;
}

static int ep_once(void *p, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                   mplb_err *err) {
    ep_ctx *c = p;
    const mplb_exp *x = c->env->exp;
    /* the model's per-rank loads (the split rule's rows, exact) stay; every time is measured */
    int rc = mplb_cost_eval(c->env->hw, &x->model, x->cluster.gpus_per_node, in->rt, plan, res, err);
    if (rc == 0) rc = mplb_ep_run_layer(c->ep, in->step, in->layer, in->rt, plan, c->t, err);
    if (rc < 0) return rc;
    double disp = 0, comb = 0, total = 0, cmax = 0, emax = 0, num = 0, den = 0;
    res->bytes_intra = res->bytes_inter = 0;
    for (int r = 0; r < plan->R; r++) {
        const mplb_ep_times *t = &c->t[r];
        res->bytes_intra += t->bytes_intra;
        res->bytes_inter += t->bytes_inter;
        res->rank_compute[r] = t->ffn + t->exposed;
        if (t->dispatch > disp) disp = t->dispatch;
        if (t->combine > comb) comb = t->combine;
        if (t->total > total) total = t->total;
        if (t->ffn > cmax) cmax = t->ffn;
        if (t->exposed > emax) emax = t->exposed;
        num += t->err_num;
        den += t->err_den;
    }
    res->t_dispatch = disp;
    res->t_combine = comb;
    res->t_layer = total;
    res->t_compute_max = cmax;
    res->exposed_conv = emax;
    *error = den > 0 ? sqrt(num / den) : 0;
    return 0;
}

static int ep_eval(void *p, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                   mplb_err *err) {
    ep_ctx *c = p;
    return mplb_measure_eval(c->ms, ep_once, c, in, plan, res, error, err);
}

/* More processes than cores on a host share cores: each rank's time then
 * includes waiting for a core, and speedups between plans mean nothing
 * (4 processes on 2 cores once showed 2.1x for fp8 at unchanged imbalance).
 * Run only with --allow-oversubscribed, and the times source says so, in
 * every run file and table. */
static void ep_describe(void *p, char *buf, size_t cap) {
    ep_ctx *c = p;
    char over[224] = "", rep[160];
    if (c->over)
        snprintf(over, sizeof over, " (OVERSUBSCRIBED, allowed by --allow-oversubscribed: %ld processes on %ld cores "
                 "here; the times include waiting for a core and do not compare plans)", c->local, c->cores);
    mplb_measure_describe(c->env->repeats, c->env->warmup, rep, sizeof rep);
    snprintf(buf, cap, "measured: real EP layers (dispatch, experts on CPU, combine) across %d processes on %s%s%s",
             c->env->transport->size, c->host, rep, over);
}

const mplb_backend_ops mplb_backend_ep_ops = {"ep", "output_rel_rms", ep_open, ep_eval, ep_describe, ep_close};
