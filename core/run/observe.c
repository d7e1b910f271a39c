/* The observation builder: see include/mplb/observe.h. */
#include "mplb/observe.h"
#include "mplb/backend.h"
#include "mplb/cost.h"

#include <stdlib.h>
#include <string.h>

int mplb_observer_init(mplb_observer *ob, const mplb_model *m, const mplb_cluster *cl, const mplb_profile *hw,
                       const mplb_placement *base, const double *relerr, mplb_err *err) {
    memset(ob, 0, sizeof *ob);
    int R = base->R;
    ob->model = *m;
    ob->nodes = cl->nodes;
    ob->gpus_per_node = cl->gpus_per_node;
    ob->base = base;
    ob->rank_load = calloc((size_t)R, sizeof(double));
    ob->rank_vision = calloc((size_t)R, sizeof(double));
    ob->rank_mem = calloc((size_t)R, sizeof(double));
    mplb_plan bf16;
    int rc = ob->rank_load && ob->rank_vision && ob->rank_mem ? mplb_plan_init(&bf16, base, err)
                                                               : mplb_err_set(err, MPLB_ENOMEM, "observe: out of memory");
    if (rc < 0) { mplb_observer_free(ob); return rc; }
    mplb_plan_memory(&bf16, m, ob->rank_mem);
    mplb_plan_free(&bf16);
    ob->mem_budget = cl->expert_memory_gb * 1e9;
    if (ob->mem_budget <= 0) {
        for (int r = 0; r < R; r++) if (ob->rank_mem[r] > ob->mem_budget) ob->mem_budget = ob->rank_mem[r];
        ob->mem_budget *= 1.25;
    }
    if (relerr) memcpy(ob->relerr, relerr, sizeof ob->relerr);
    else mplb_error_table(ob->relerr);
    for (int p = 0; p < MPLB_PREC_COUNT; p++)
        ob->speed[p] = hw->peak_tflops[hw->compute_as[p]] / hw->peak_tflops[hw->compute_as[MPLB_PREC_BF16]];
    return 0;
}

void mplb_observer_free(mplb_observer *ob) {
    free(ob->rank_load);
    free(ob->rank_vision);
    free(ob->rank_mem);
    memset(ob, 0, sizeof *ob);
}

void mplb_observe(mplb_observer *ob, const mplb_routing *rt, int step, int layer, mplb_obs *o) {
    const mplb_placement *pl = ob->base;
    int R = pl->R, E = pl->E;
    memset(ob->rank_load, 0, (size_t)R * sizeof(double));
    memset(ob->rank_vision, 0, (size_t)R * sizeof(double));
    for (int e = 0; rt && e < E; e++) {
        ob->rank_load[pl->home[e]] += rt->expert_counts[e];
        ob->rank_vision[pl->home[e]] += rt->vision_counts[e];
    }
    memset(o, 0, sizeof *o);
    o->step = step; o->layer = layer; o->layers = ob->model.layers;
    o->ranks = R; o->experts = E; o->top_k = ob->model.top_k;
    o->nodes = ob->nodes; o->gpus_per_node = ob->gpus_per_node;
    o->tokens = rt ? rt->tokens : 0;
    o->rank_load = ob->rank_load;
    o->rank_vision = ob->rank_vision;
    o->expert_load = rt ? rt->expert_counts : NULL;
    o->expert_vision = rt ? rt->vision_counts : NULL;
    o->expert_importance = rt ? rt->importance : NULL;
    o->expert_rank = pl->home;
    o->rank_mem = ob->rank_mem;
    o->src_counts = rt ? rt->src_counts : NULL;
    o->prec_error = ob->relerr;
    o->prec_speed = ob->speed;
    o->model = &ob->model;
    o->mem_budget = ob->mem_budget;
}
