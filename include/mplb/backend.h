/* mplb_backend: where a plan's layer time and error come from. The run loop
 * (mplb/run.h) picks one backend from the experiment and calls it the same
 * way whatever it is:
 *
 *   open(env) -> for each (step, layer): eval(baseline plan), eval(each
 *   policy's plan) -> close
 *
 * eval fills the whole mplb_cost_result (times, bytes, per-rank load and
 * compute) and the error of the plan, in the backend's error metric (one
 * per backend, named in the run file's `error_metric` attribute):
 *
 *   model  cost model (profile)                 weight_error_proxy
 *   cpu    experts on this CPU, comm modelled   output_rel_rms
 *   cuda   experts on a GPU, comm modelled      output_rel_rms
 *   ep     real EP layers over a transport      output_rel_rms
 *
 * weight_error_proxy: sum_e gate_mass_e * err(p_e) / sum_e gate_mass_e with
 * err the format's relative RMS weight error (mplb_error_table): a proxy.
 * output_rel_rms: sqrt(sum_t |y_t - y*_t|^2 / sum_t |y*_t|^2) over the
 * layer's tokens, y_t = sum_j (1/k) FFN_{e_tj}(x_t) with x in the dispatch
 * precision and the plan's expert precisions, y* the same layer all bf16
 * (mplb/weights.h: same weights and activations on every backend).
 * Backends that measure need the per-token routing log (synthetic or
 * per-token traces). ep evaluates collectively: every process calls eval
 * with the same routing and plan; rank 0's result holds every rank's.
 */
#ifndef MPLB_BACKEND_H
#define MPLB_BACKEND_H

#include "mplb/api.h"
#include "mplb/config.h"
#include "mplb/cost.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

struct mplb_ep_transport;
struct mplb_exec_device;

/* id, name, error metric, its operations (defined in the backend's file) */
#define MPLB_BACKEND_MAP(X)                                                   \
    X(MODEL, "model", "weight_error_proxy", mplb_backend_model_ops)           \
    X(CPU,   "cpu",   "output_rel_rms",     mplb_backend_cpu_ops)             \
    X(CUDA,  "cuda",  "output_rel_rms",     mplb_backend_cuda_ops)            \
    X(EP,    "ep",    "output_rel_rms",     mplb_backend_ep_ops)

typedef enum {
#define MPLB_BACKEND_ENUM(id, name, metric, ops) MPLB_BACKEND_##id,
    MPLB_BACKEND_MAP(MPLB_BACKEND_ENUM)
#undef MPLB_BACKEND_ENUM
    MPLB_BACKEND_COUNT
} mplb_backend_id;

/* What a backend may use; set up by the run loop and the caller. */
typedef struct mplb_backend_env {
    const mplb_exp *exp;
    const mplb_profile *hw;
    const double *relerr;                           /* [MPLB_PREC_COUNT] the proxy's table */
    const struct mplb_ep_transport *transport;      /* ep */
    const struct mplb_exec_device *device;          /* cuda */
    /* measuring backends (cpu, cuda, ep; mplb/measure.h): timed repeats per
     * evaluation (0 = 1) and untimed warm-up runs before them; ep refuses
     * more processes than cores on a host unless allow_oversubscribed */
    int repeats, warmup, allow_oversubscribed;
} mplb_backend_env;

/* One (step, layer) and its routing. */
typedef struct mplb_layer_in {
    int step, layer;
    const mplb_routing *rt;
    /* the layer's baseline plan when a policy's plan is evaluated (NULL when
     * the baseline itself is): measuring backends time the two interleaved */
    const struct mplb_plan *baseline;
} mplb_layer_in;

typedef struct mplb_backend_ops {
    const char *name;
    const char *error_metric;
    int (*open)(const mplb_backend_env *env, void **ctx, mplb_err *err);
    int (*eval)(void *ctx, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                mplb_err *err);
    /* where the times come from, for the run file's times_source */
    void (*describe)(void *ctx, char *buf, size_t cap);
    void (*close)(void *ctx);
} mplb_backend_ops;

/* The backend named `name`; MPLB_ECONFIG lists the known ones. */
MPLB_API int mplb_backend_find(const char *name, mplb_backend_id *id, mplb_err *err);
MPLB_API const char *mplb_backend_name(mplb_backend_id id);
MPLB_API const char *mplb_backend_metric(mplb_backend_id id);
/* The operations of id (each backend's file defines its table). */
MPLB_API const mplb_backend_ops *mplb_backend_ops_of(mplb_backend_id id);

/* The proxy (mplb/backend.h's weight_error_proxy) and its per-format table. */
MPLB_API void mplb_error_table(double relerr[MPLB_PREC_COUNT]);
MPLB_API double mplb_error_proxy(const mplb_routing *rt, const mplb_plan *plan, const double *relerr);

MPLB_END_DECLS

#endif
