/* bench/accuracy: what an accuracy-measured step costs next to a cost-model
 * step, on the shipped tiny MoE (models/tiny-moe: 2 layers, 16 experts,
 * top-2, d 64) with experiments/accuracy_small.lua's batch (8 x 64 tokens,
 * 4 ranks), side by side in one run, thread CPU time, OpenBLAS on one
 * thread. A cost-model step: per layer, synthetic routing + one cost-model
 * evaluation; an accuracy-measured step: the bf16 forward (the routing every
 * policy sees) + per layer a cost-model evaluation + one policy's plan run
 * on the model (a second forward) and compared (KL etc.). Ablation: every
 * expert of one layer dropped in turn (obs.expert_ablation). Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mplb.h"
#include "mplb/accuracy.h"

void openblas_set_num_threads(int num_threads);

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define CHECK(x) do { if ((x) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; } } while (0)

int main(void) {
    openblas_set_num_threads(1);
    mplb_err err = {0};
    mplb_profile hw;
    CHECK(mplb_profile_load("h100", MPLB_SRC "/profiles", &hw, &err));
    mplb_model m = {.name = "tiny-moe", .layers = 2, .experts = 16, .top_k = 2, .hidden = 64, .ffn = 64};
    const int R = 4, gpn = 4, S = 8, T = 64;
    mplb_workload_cfg wc = {.kind = "lm", .steps = 1000, .tokens = S * T, .zipf = 1.0, .lm_seq = T, .lm_batch = S,
                            .lm_acts = "matched", .n_text = 2,
                            .text_name = {"code", "prose"},
                            .text_path = {MPLB_SRC "/models/tiny-moe/eval/code.txt", MPLB_SRC "/models/tiny-moe/eval/prose.txt"}};
    snprintf(wc.lm, sizeof wc.lm, "%s", MPLB_SRC "/models/tiny-moe");
    mplb_workload_cfg sc = wc;
    snprintf(sc.kind, sizeof sc.kind, "synthetic");
    mplb_wl wl;
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
    mplb_accrun *acc;
    CHECK(mplb_placement_init_contiguous(&pl, R, m.experts, &err));
    CHECK(mplb_wl_init(&wl, &sc, &m, R, gpn, 1, &err));
    CHECK(mplb_routing_alloc(&rt, R, m.experts, 1, m.top_k, &err));
    CHECK(mplb_plan_init(&plan, &pl, &err));
    CHECK(mplb_cost_result_alloc(&res, R, &err));
    CHECK(mplb_accrun_open(&wc, &m, 1, &acc, &err));
    for (int e = 0; e < m.experts; e++) plan.expert_prec[e] = MPLB_PREC_NVFP4;
    mplb_lm_metrics met[3];
    double imp[16];
    double t_cost = 0, t_acc = 0, t_ref = 0, t_meas = 0, t_abl = 0;
    int rounds = 0;
    for (double start = cpu_now(); cpu_now() - start < 6.0; rounds++) {
        int step = rounds % 50;
        double t0 = cpu_now();
        for (int l = 0; l < m.layers; l++) {   /* cost-model step */
            CHECK(mplb_wl_generate(&wl, step, l, &pl, &rt, &err));
            CHECK(mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err));
        }
        double t1 = cpu_now();
        CHECK(mplb_accrun_step(acc, step, &err));   /* accuracy-measured step */
        double t2 = cpu_now();
        for (int l = 0; l < m.layers; l++) {
            CHECK(mplb_accrun_routing(acc, l, &pl, gpn, &rt, &err));
            CHECK(mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err));
            mplb_accrun_plan(acc, 0, l, plan.expert_prec);
        }
        double t3 = cpu_now();
        CHECK(mplb_accrun_measure(acc, 0, met, &err));
        double t4 = cpu_now();
        CHECK(mplb_accrun_importance(acc, 0, imp, &err));
        double t5 = cpu_now();
        t_cost += t1 - t0;
        t_ref += t2 - t1;
        t_meas += t4 - t3;
        t_acc += t4 - t1;
        t_abl += t5 - t4;
    }
    printf("# mplb bench/accuracy: %s (%d layers, E=%d, top-%d, d=%d, f=%d), %d x %d tokens a step, R=%d, "
           "thread CPU time, OpenBLAS 1 thread, %d rounds\n", m.name, m.layers, m.experts, m.top_k, m.hidden, m.ffn, S, T, R,
           rounds);
    printf("cost_model_step_us        %10.1f\n", t_cost / rounds * 1e6);
    printf("accuracy_step_us          %10.1f   (bf16 forward + cost model + one plan's forward and comparison)\n",
           t_acc / rounds * 1e6);
    printf("  bf16_forward_us         %10.1f\n", t_ref / rounds * 1e6);
    printf("  plan_forward_compare_us %10.1f   (nvfp4 W4A4 everywhere; per policy)\n", t_meas / rounds * 1e6);
    printf("accuracy_over_cost_model  %10.1fx\n", t_acc / t_cost);
    printf("ablation_layer0_us        %10.1f   (%d experts dropped in turn)\n", t_abl / rounds * 1e6, m.experts);
    printf("# checksum kl %.4e\n", met[2].kl);
    mplb_accrun_close(acc);
    mplb_wl_free(&wl);
    mplb_placement_free(&pl);
    mplb_routing_free(&rt);
    mplb_plan_free(&plan);
    mplb_cost_result_free(&res);
    return 0;
}
