/* bench/costmodel: cost-model layer evaluations per second for a
 * DeepSeek-V3-sized layer (256 experts, top-8) on 64 ranks (8 nodes x 8),
 * one core (bench/workloads compares generation with it). Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mplb.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    mplb_err err;
    mplb_profile hw;
    if (mplb_profile_load("h100", MPLB_SRC "/profiles", &hw, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_model m;
    mplb_model_preset("deepseek-v3", &m);
    const int R = 64, gpn = 8, nodes = 8;
    mplb_workload_cfg wc = {.kind = "synthetic", .steps = 1, .tokens = 16384, .zipf = 1.0, .vision_frac = 0.3, .vision_zipf = 1.5};
    mplb_wl wl;
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
    if (mplb_placement_init_contiguous(&pl, R, m.experts, &err) < 0 || mplb_wl_init(&wl, &wc, &m, R, gpn, 1, &err) < 0 ||
        mplb_routing_alloc(&rt, R, m.experts, nodes, m.top_k, &err) < 0 || mplb_plan_init(&plan, &pl, &err) < 0 ||
        mplb_cost_result_alloc(&res, R, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_wl_generate(&wl, 0, 0, &pl, &rt, &err);
    double t0;
    /* a plan with some low-precision experts and replicas, like a policy's */
    for (int e = 0; e < m.experts; e += 3) plan.expert_prec[e] = MPLB_PREC_FP8_E4M3;
    int evals = 0;
    double sink = 0;
    t0 = now();
    double t1;
    do {
        for (int i = 0; i < 1000; i++, evals++) {
            mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err);
            sink += res.t_layer;
        }
        t1 = now();
    } while (t1 - t0 < 2.0);
    double per = (t1 - t0) / evals;
    printf("# mplb bench/costmodel: %s layer (E=%d, top-%d, d=%d, f=%d), R=%d on %d nodes, one core\n",
           m.name, m.experts, m.top_k, m.hidden, m.ffn, R, nodes);
    printf("cost_model_evals_per_s  %.0f\n", 1.0 / per);
    printf("cost_model_us_per_eval  %.2f\n", per * 1e6);
    printf("# checksum %.3f\n", sink / evals);
    return 0;
}
