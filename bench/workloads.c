/* bench/workloads: synthetic routing generated per second for a
 * DeepSeek-V3-sized layer (256 experts, top-8, 64 ranks on 8 nodes), for a
 * 16k-token prefill, a 256-token decode step, and with 4 drifting task
 * families, next to one cost-model evaluation of the same layer in the
 * same run. Not a test. */
#include <stdio.h>
#include <time.h>
#include "mplb.h"

/* thread CPU time: the machine is shared, wall time counts other jobs' turns */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    mplb_err err = {0};
    mplb_profile hw;
    if (mplb_profile_load("h100", MPLB_SRC "/profiles", &hw, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_model m;
    mplb_model_preset("deepseek-v3", &m);
    const int R = 64, gpn = 8, nodes = 8;
    struct { const char *name; mplb_workload_cfg c; } cases[] = {
        {"prefill_16k", {.kind = "synthetic", .steps = 1, .tokens = 16384, .zipf = 1.0, .vision_frac = 0.3, .vision_zipf = 1.5}},
        {"decode_256", {.kind = "synthetic", .steps = 2, .tokens = 16384, .decode_tokens = 256, .prefill_every = 2, .zipf = 1.0}},
        {"prefill_16k_4families_drift", {.kind = "synthetic", .steps = 1, .tokens = 16384, .zipf = 1.0, .families = 4,
                                          .drift = 0.8, .drift_period = 50, .layer_corr = 0.5, .src_affinity = 0.3}},
    };
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
    if (mplb_placement_init_contiguous(&pl, R, m.experts, &err) < 0 || mplb_routing_alloc(&rt, R, m.experts, nodes, m.top_k, &err) < 0 ||
        mplb_plan_init(&plan, &pl, &err) < 0 || mplb_cost_result_alloc(&res, R, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("# mplb bench/workloads: %s layer (E=%d, top-%d), R=%d on %d nodes, one core\n", m.name, m.experts, m.top_k, R, nodes);
    printf("%-28s %10s %14s %12s %16s\n", "workload", "tokens", "layers_per_s", "ms_per_layer", "over_costmodel");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mplb_wl wl;
        if (mplb_wl_init(&wl, &cases[i].c, &m, R, gpn, 1, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        int step = cases[i].c.prefill_every > 1 ? 1 : 0, n = 0;
        double t0 = now();
        while (now() - t0 < 1.0 || n < 3) { mplb_wl_generate(&wl, step, n % m.layers, &pl, &rt, &err); n++; }
        double per = (now() - t0) / n;
        int ce = 0;
        double c0 = now();
        while (now() - c0 < 0.3) { mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err); ce++; }
        double cost = (now() - c0) / ce;
        printf("%-28s %10lld %14.0f %12.3f %15.0fx\n", cases[i].name, (long long)rt.tokens, 1.0 / per, per * 1e3, per / cost);
        mplb_wl_free(&wl);
    }
    return 0;
}
