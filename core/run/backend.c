/* The backend table and the model backend: see include/mplb/backend.h. */
#include "mplb/backend.h"
#include "mplb/quant.h"
#include "mplb/weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPLB_BACKEND_DECL(id, name, metric, ops) extern const mplb_backend_ops ops;
MPLB_BACKEND_MAP(MPLB_BACKEND_DECL)
#undef MPLB_BACKEND_DECL

static const struct { const char *name, *metric; const mplb_backend_ops *ops; } backends[] = {
#define MPLB_BACKEND_ROW(id, name, metric, ops) {name, metric, &ops},
    MPLB_BACKEND_MAP(MPLB_BACKEND_ROW)
#undef MPLB_BACKEND_ROW
};

int mplb_backend_find(const char *name, mplb_backend_id *id, mplb_err *err) {
    char known[128] = "";
    for (int i = 0; i < MPLB_BACKEND_COUNT; i++) {
        if (!strcmp(name, backends[i].name)) { *id = (mplb_backend_id)i; return 0; }
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", backends[i].name);
    }
    return mplb_err_set(err, MPLB_ECONFIG, "unknown backend '%s' (known: %s)", name, known);
}

const char *mplb_backend_name(mplb_backend_id id) { return id < MPLB_BACKEND_COUNT ? backends[id].name : "?"; }
const char *mplb_backend_metric(mplb_backend_id id) { return id < MPLB_BACKEND_COUNT ? backends[id].metric : "?"; }

const mplb_backend_ops *mplb_backend_ops_of(mplb_backend_id id) {
    return id < MPLB_BACKEND_COUNT ? backends[id].ops : NULL;
}

/* Relative RMS error of each format on one expert of the run's own weight
 * source (mplb/weights.h), fp8/fp4 with a per-tensor scale as a weight
 * format would. A proxy: backends that run experts measure the real thing. */
void mplb_error_table(double relerr[MPLB_PREC_COUNT]) {
    enum { D = 256, F = 256 };
    float *w = malloc(sizeof(float) * 3 * D * F), *y = malloc(sizeof(float) * 3 * D * F);
    if (w) mplb_weights_fill(0x5eed, 0, 0, D, F, w);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
        mplb_qstats st;
        mplb_err err;
        relerr[p] = 1.0;
        if (w && y && mplb_quant_fake(w, y, 3 * D, F, (mplb_prec)p, &o, &err) == 0) {
            mplb_quant_stats(w, y, 3 * D * F, &st);
            relerr[p] = st.rms_rel;
        }
    }
    relerr[MPLB_PREC_BF16] = 0;  /* the reference: weights are stored in bf16 */
    free(w);
    free(y);
}

double mplb_error_proxy(const mplb_routing *rt, const mplb_plan *plan, const double *relerr) {
    double num = 0, den = 0;
    for (int e = 0; e < rt->E; e++) {
        den += rt->importance[e];
        num += rt->importance[e] * relerr[plan->expert_prec[e]];
    }
    return den > 0 ? num / den : 0;
}

/* ---- backend "model": the cost model and the proxy ---- */

static int model_open(const mplb_backend_env *env, void **ctx, mplb_err *err) {
    (void)err;
    *ctx = (void *)env;
    return 0;
}

static int model_eval(void *ctx, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                      mplb_err *err) {
    const mplb_backend_env *env = ctx;
    int rc = mplb_cost_eval(env->hw, &env->exp->model, env->exp->cluster.gpus_per_node, in->rt, plan, res, err);
    if (rc == 0) *error = mplb_error_proxy(in->rt, plan, env->relerr);
    return rc;
}

static void model_describe(void *ctx, char *buf, size_t cap) {
    const mplb_backend_env *env = ctx;
    snprintf(buf, cap, "cost model, profile %s", env->hw->name);
}

static void model_close(void *ctx) { (void)ctx; }

const mplb_backend_ops mplb_backend_model_ops = {"model", "weight_error_proxy", model_open, model_eval, model_describe,
                                                 model_close};
