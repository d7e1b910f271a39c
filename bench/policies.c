/* bench/policies: decide() microseconds per (step, layer) for each shipped
 * policy with 64 ranks (8 nodes x 8) and 256 experts (DeepSeek-V3 shapes,
 * 16k tokens), next to one cost-model evaluation of the same layer, in the
 * same run. Not a test. usage: bench_policies [policy...] (default: all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mplb.h"

/* thread CPU time: the machine is shared, wall time counts other jobs' turns */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    mplb_err err = {0};
    mplb_profile hw;
    if (mplb_profile_load("h100", MPLB_SRC "/profiles", &hw, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_model m;
    mplb_model_preset("deepseek-v3", &m);
    const int R = 64, gpn = 8, nodes = 8, E = m.experts;
    mplb_workload_cfg wc = {.kind = "synthetic", .steps = 1, .tokens = 16384, .zipf = 1.0, .vision_frac = 0.5, .vision_zipf = 1.5};
    mplb_wl wl;
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
    if (mplb_placement_init_contiguous(&pl, R, E, &err) < 0 || mplb_wl_init(&wl, &wc, &m, R, gpn, 1, &err) < 0 ||
        mplb_routing_alloc(&rt, R, E, nodes, m.top_k, &err) < 0 || mplb_plan_init(&plan, &pl, &err) < 0 ||
        mplb_cost_result_alloc(&res, R, &err) < 0 || mplb_wl_generate(&wl, 0, 0, &pl, &rt, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* the observation the run loop builds (mplb/observe.h) */
    mplb_cluster cl = {.nodes = nodes, .gpus_per_node = gpn};
    mplb_observer ob;
    mplb_obs obs;
    if (mplb_observer_init(&ob, &m, &cl, &hw, &pl, NULL, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_observe(&ob, &rt, 0, 0, &obs);
    /* cost model reference */
    int n = 0;
    double t0 = now();
    while (now() - t0 < 0.5) { mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err); n++; }
    double cost_us = (now() - t0) / n * 1e6;
    printf("# mplb bench/policies: decide() per (step, layer), R=%d (%d nodes), E=%d, top-%d, %lld tokens, one core\n",
           R, nodes, E, m.top_k, (long long)rt.tokens);
    printf("%-14s %12s %14s\n", "policy", "decide_us", "over_costmodel");
    static const char *names[] = {"baseline", "static", "threshold", "redistribute", "lis", "expert_level",
                                  "learned", "eplb", "locality"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int want = argc < 2;   /* argv: only these policies */
        for (int a = 1; a < argc; a++) want |= !strcmp(argv[a], names[i]);
        if (!want) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/policies/%s.lua", MPLB_SRC, names[i]);
        mplb_policy *pol;
        const char *params = !strcmp(names[i], "threshold") || !strcmp(names[i], "learned") ? "{min_tokens=0}" : NULL;
        if (mplb_policy_open(path, params, NULL, &obs, &pol, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        /* warm up: history-based policies act from their second step on */
        for (int s = 0; s < 3; s++) {
            obs.step = s;
            mplb_plan_reset(&plan, &pl);
            if (mplb_policy_decide(pol, &obs, &plan, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        }
        int calls = 0;
        double spent = 0;
        while (spent < 0.5 || calls < 5) {
            obs.step = 3 + calls;
            mplb_plan_reset(&plan, &pl);   /* not timed: the run loop does it outside decide too */
            double a = now();
            mplb_policy_decide(pol, &obs, &plan, &err);
            spent += now() - a;
            calls++;
        }
        double us = spent / calls * 1e6;
        printf("%-14s %12.2f %13.1fx\n", names[i], us, us / cost_us);
        mplb_policy_close(pol);
    }
    printf("%-14s %12.2f %13.1fx\n", "(cost model)", cost_us, 1.0);
    return 0;
}
