/* Cost model against hand-computed cases and properties on random input. */
#include <math.h>
#include <time.h>
#include "testutil.h"

static mplb_profile flat_profile(void) {
    mplb_profile hw;
    memset(&hw, 0, sizeof hw);
    snprintf(hw.name, sizeof hw.name, "test");
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        hw.compute_as[p] = MPLB_PREC_BF16;
        hw.n_eff[p] = 1;
        hw.eff[p][0].n = 1;
        hw.eff[p][0].eff = 1;
    }
    hw.peak_tflops[MPLB_PREC_BF16] = 100;
    hw.peak_tflops[MPLB_PREC_FP8_E4M3] = 200;
    hw.compute_as[MPLB_PREC_FP8_E4M3] = MPLB_PREC_FP8_E4M3;
    hw.compute_as[MPLB_PREC_NVFP4] = MPLB_PREC_FP8_E4M3; /* Hopper-like: weight-only FP4 */
    hw.hbm_gbps = 1000;
    hw.nvlink_gbps = 100;
    hw.net_gbps = 50;
    hw.nvlink_lat_us = 2;
    hw.net_lat_us = 10;
    hw.launch_us = 5;
    hw.conv_eff = 0.5;
    hw.memory_gb = 80;
    return hw;
}

static mplb_model small_model(int E, int k) {
    mplb_model m = {"t", 1, E, k, 1024, 512, 0};
    return m;
}

typedef struct fixture {
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
} fixture;

static void fx_init(fixture *f, int R, int E, int nodes, int k) {
    mplb_err err;
    assert_int_equal(mplb_placement_init_contiguous(&f->pl, R, E, &err), 0);
    assert_int_equal(mplb_routing_alloc(&f->rt, R, E, nodes, k, &err), 0);
    assert_int_equal(mplb_plan_init(&f->plan, &f->pl, &err), 0);
    assert_int_equal(mplb_cost_result_alloc(&f->res, R, &err), 0);
}

static void fx_free(fixture *f) {
    mplb_placement_free(&f->pl);
    mplb_routing_free(&f->rt);
    mplb_plan_free(&f->plan);
    mplb_cost_result_free(&f->res);
}

static void add_tokens(fixture *f, int gpn, int src, int n, int e0) {
    int ids[1] = {e0};
    for (int i = 0; i < n; i++) mplb_routing_add_token(&f->rt, &f->pl, gpn, src, 0, ids, NULL);
}

/* n=1000, d=1024, f=512 at 100 TFLOPS: 6*1000*1024*512 / 1e14 s = 31.45728 us;
 * bytes 3*1024*512*2 + 1000*(2*1024+4*512)*2 = 11337728 -> 11.337728 us: compute-bound. */
static void test_single_expert_compute_bound(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(1, 1);
    fixture f;
    fx_init(&f, 1, 1, 1, 1);
    add_tokens(&f, 1, 0, 1000, 0);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 1, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_compute_max, 31.45728 + 5, 1e-12);
    assert_close(f.res.t_layer, 36.45728, 1e-12);
    assert_close(f.res.t_dispatch, 0, 0);
    assert_close(f.res.imbalance, 1.0, 1e-15);
    fx_free(&f);
}

/* n=1: flops 3145728/1e14 s = 0.0315 us; bytes 3145728 + (2048+2048)*2 = 3153920 -> 3.15392 us. */
static void test_single_expert_memory_bound(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(1, 1);
    assert_close(mplb_cost_expert_us(&hw, &m, MPLB_PREC_BF16, 1), 3.15392, 1e-12);
    /* fp8 weights halve the weight bytes: 1572864 + 4096*1 (fp8 acts) = 1576960 -> 1.57696 us */
    assert_close(mplb_cost_expert_us(&hw, &m, MPLB_PREC_FP8_E4M3, 1), 1.57696, 1e-12);
    /* nvfp4 on a chip without FP4 units: 4.5 bits/weight, fp8 compute:
     * 3*1024*512*4.5/8 = 884736 + 4096 = 888832 -> 0.888832 us */
    assert_close(mplb_cost_expert_us(&hw, &m, MPLB_PREC_NVFP4, 1), 0.888832, 1e-12);
    /* ...and for a compute-bound n it runs at the FP8 rate, not an FP4 one. */
    assert_close(mplb_cost_expert_us(&hw, &m, MPLB_PREC_NVFP4, 100000),
                 6.0 * 100000 * 1024 * 512 / 200e12 * 1e6, 1e-12);
}

static void test_eff_interpolation(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    hw.n_eff[MPLB_PREC_BF16] = 2;
    hw.eff[MPLB_PREC_BF16][0] = (mplb_eff_pt){1, 0.1};
    hw.eff[MPLB_PREC_BF16][1] = (mplb_eff_pt){100, 0.5};
    assert_close(mplb_cost_eff(&hw, MPLB_PREC_BF16, 10), 0.3, 1e-12);   /* halfway in log n */
    assert_close(mplb_cost_eff(&hw, MPLB_PREC_BF16, 0.5), 0.1, 0);      /* clamped */
    assert_close(mplb_cost_eff(&hw, MPLB_PREC_BF16, 1e6), 0.5, 0);
}

/* Two nodes of two GPUs; one token from rank 0 to experts on rank 1 (same
 * node) and rank 2 (other node). bf16 token = 2048 B: 2048/100e3 us over
 * NVLink + 2048/50e3 us over the network + network latency 10 us. */
static void test_dispatch_two_nodes(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(4, 2);
    fixture f;
    fx_init(&f, 4, 4, 2, 2);
    int ids[2] = {1, 2};
    mplb_routing_add_token(&f.rt, &f.pl, 2, 0, 0, ids, NULL);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 0.02048 + 0.04096 + 10, 1e-12);
    assert_close(f.res.t_combine, 0.02048 + 0.04096 + 10, 1e-12);
    assert_close(f.res.bytes_intra, 2048, 0);
    assert_close(f.res.bytes_inter, 2048, 0);
    /* fp8 dispatch: 1024 B plus 8 float scales (one per 128 channels) = 1056 B;
     * the combine stays bf16 */
    f.plan.dispatch_prec = MPLB_PREC_FP8_E4M3;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 0.01056 + 0.02112 + 10, 1e-12);
    assert_close(f.res.t_combine, 0.02048 + 0.04096 + 10, 1e-12);
    fx_free(&f);
}

/* Conversion: bf16 weights 3*1024*512*2 = 3145728 B read + 1572864 B (fp8)
 * written = 4718592 B at 1000 GB/s * 0.5 = 9.437184 us. */
static void test_conversion_hidden_and_exposed(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    fixture f;
    fx_init(&f, 2, 2, 1, 1);
    add_tokens(&f, 2, 0, 10, 1);   /* 10 tokens from rank 0 to expert 1 on rank 1 */
    f.plan.expert_prec[1] = MPLB_PREC_FP8_E4M3;
    mplb_err err;
    /* NVLink latency 2 us: dispatch 10*2048/100e3 + 2 = 2.2048 us < 9.437184: exposed */
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.exposed_conv, 9.437184 - 2.2048, 1e-12);
    double t_r1 = mplb_cost_expert_us(&hw, &m, MPLB_PREC_FP8_E4M3, 10) + 5;
    assert_close(f.res.t_layer, 2.2048 + t_r1 + (9.437184 - 2.2048) + 2.2048, 1e-12);
    /* a slow link hides it fully */
    hw.nvlink_lat_us = 20;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.exposed_conv, 0, 0);
    fx_free(&f);
}

static void test_replicas_split_tokens(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    fixture f;
    fx_init(&f, 2, 2, 1, 1);
    add_tokens(&f, 2, 0, 1000, 0);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.imbalance, 2.0, 1e-15);
    mplb_placement_add(&f.plan.placement, 0, 1);
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.rank_load[0], 500, 0);
    assert_close(f.res.rank_load[1], 500, 0);
    assert_close(f.res.imbalance, 1.0, 1e-15);
    assert_close(f.res.rank_compute[1], mplb_cost_expert_us(&hw, &m, MPLB_PREC_BF16, 500) + 5, 1e-12);
    fx_free(&f);
}

static void test_placement_not_divisible(void **st) {
    (void)st;
    mplb_placement pl;
    mplb_err err;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 4, 10, &err), 0);
    int want[10] = {0, 0, 0, 1, 1, 2, 2, 2, 3, 3};
    for (int e = 0; e < 10; e++) assert_int_equal(pl.home[e], want[e]);
    assert_int_equal(mplb_placement_rank_experts(&pl, 0), 3);
    assert_int_equal(mplb_placement_rank_experts(&pl, 3), 2);
    mplb_placement_free(&pl);
    /* more ranks than experts: some ranks own none */
    assert_int_equal(mplb_placement_init_contiguous(&pl, 8, 3, &err), 0);
    assert_int_equal(pl.home[0], 0);
    assert_int_equal(pl.home[1], 2);
    assert_int_equal(pl.home[2], 5);
    mplb_placement_free(&pl);
    assert_int_equal(mplb_placement_init_contiguous(&pl, 0, 3, &err), MPLB_EINVAL);
}

static void test_zero_tokens_one_rank(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(3, 2);
    fixture f;
    fx_init(&f, 1, 3, 1, 2);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 1, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_layer, 0, 0);
    assert_close(f.res.imbalance, 1.0, 0);
    assert_close(mplb_lis(f.rt.expert_counts, 3, 0, 2), 0, 0);
    fx_free(&f);
}

static void test_lis_definition(void **st) {
    (void)st;
    int32_t c[4] = {6, 1, 1, 0}; /* T = 4 tokens, k = 2: equal split 2 per expert */
    assert_close(mplb_lis(c, 4, 4, 2), 3.0, 1e-15);
    int32_t b[4] = {2, 2, 2, 2};
    assert_close(mplb_lis(b, 4, 4, 2), 1.0, 1e-15);
}

/* Properties on random routings: more tokens never faster; a higher peak
 * never slower; fewer weight bits never slower when conversion is free. */
static void test_monotonic_random(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed());
    mplb_profile hw = flat_profile();
    hw.n_eff[MPLB_PREC_BF16] = 3;
    hw.eff[MPLB_PREC_BF16][0] = (mplb_eff_pt){1, 0.05};
    hw.eff[MPLB_PREC_BF16][1] = (mplb_eff_pt){64, 0.4};
    hw.eff[MPLB_PREC_BF16][2] = (mplb_eff_pt){4096, 0.8};
    for (int it = 0; it < 200; it++) {
        int R = 1 + (int)(mplb_rng_next(&rng) % 8), E = 1 + (int)(mplb_rng_next(&rng) % 40);
        int k = 1 + (int)(mplb_rng_next(&rng) % (E < 4 ? E : 4));
        mplb_model m = small_model(E, k);
        fixture f;
        fx_init(&f, R, E, 1, k);
        mplb_err err;
        int n = (int)(mplb_rng_next(&rng) % 300);
        int ids[8];
        double prev = 0;
        for (int t = 0; t <= n; t++) {
            for (int j = 0; j < k; j++) {
                int e, dup;
                do {
                    e = (int)(mplb_rng_next(&rng) % (uint64_t)E);
                    dup = 0;
                    for (int q = 0; q < j; q++) dup |= ids[q] == e;
                } while (dup);
                ids[j] = e;
            }
            mplb_routing_add_token(&f.rt, &f.pl, R, (int)(mplb_rng_next(&rng) % (uint64_t)R), 0, ids, NULL);
            assert_int_equal(mplb_cost_eval(&hw, &m, R, &f.rt, &f.plan, &f.res, &err), 0);
            if (f.res.t_layer < prev - 1e-9) fail_msg("adding a token made the layer faster: %g < %g", f.res.t_layer, prev);
            prev = f.res.t_layer;
        }
        mplb_profile fast = hw;
        fast.peak_tflops[MPLB_PREC_BF16] *= 2;
        mplb_cost_result r2;
        assert_int_equal(mplb_cost_result_alloc(&r2, R, &err), 0);
        assert_int_equal(mplb_cost_eval(&fast, &m, R, &f.rt, &f.plan, &r2, &err), 0);
        assert_true(r2.t_layer <= f.res.t_layer + 1e-9);
        mplb_cost_result_free(&r2);
        fx_free(&f);
    }
}

/* Conversion modes: stored weights need no conversion and take p's memory;
 * a cached copy needs none either but costs bf16 + p. */
static void test_conversion_modes_and_memory(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    fixture f;
    fx_init(&f, 2, 2, 1, 1);
    add_tokens(&f, 2, 0, 10, 1);
    mplb_err err;
    double bf16 = 3.0 * 1024 * 512 * 2, fp8 = 3.0 * 1024 * 512;
    f.plan.expert_prec[1] = MPLB_PREC_FP8_E4M3;
    f.plan.expert_mode[1] = MPLB_CONV_STORED;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.exposed_conv, 0, 0);
    double mem[2];
    mplb_plan_memory(&f.plan, &m, mem);
    assert_close(mem[0], bf16, 0);
    assert_close(mem[1], fp8, 0);
    f.plan.expert_mode[1] = MPLB_CONV_CACHED;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.exposed_conv, 0, 0);
    mplb_plan_memory(&f.plan, &m, mem);
    assert_close(mem[1], bf16 + fp8, 0);
    /* a replica costs its stored bytes on the new rank */
    mplb_placement_add(&f.plan.placement, 0, 1);
    mplb_plan_memory(&f.plan, &m, mem);
    assert_close(mem[1], bf16 + fp8 + bf16, 0);
    assert_close(mplb_expert_bytes(&m, MPLB_PREC_NVFP4, MPLB_CONV_STORED), 3.0 * 1024 * 512 * 4.5 / 8, 0);
    fx_free(&f);
}

/* 1000 tokens of expert 0 (rank 0); 400 move to rank 1, which holds no copy
 * and fetches 3145728 B of bf16 weights over NVLink (100 GB/s): 31.45728 us.
 * Rank 1 computes 400 tokens: 6*400*1024*512/1e14 s = 12.582912 us (compute-
 * bound) + 5 us launch; the fetch hides behind dispatch (2 us latency, no
 * bytes) + that compute: exposed 31.45728 - 19.582912 = 11.874368 us. */
static void test_move_tokens_prefetch(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    fixture f;
    fx_init(&f, 2, 2, 1, 1);
    add_tokens(&f, 2, 0, 1000, 0);
    mplb_err err;
    assert_int_equal(mplb_plan_add_move(&f.plan, 0, 0, 1, 400, &err), 0);
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.rank_load[0], 600, 0);
    assert_close(f.res.rank_load[1], 400, 0);
    assert_close(f.res.rank_compute[0], mplb_cost_expert_us(&hw, &m, MPLB_PREC_BF16, 600) + 5, 1e-12);
    assert_close(f.res.rank_compute[1], 12.582912 + 5 + 11.874368, 1e-12);
    assert_close(f.res.exposed_conv, 11.874368, 1e-12);
    /* moving to a rank that already holds a replica fetches nothing */
    mplb_placement_add(&f.plan.placement, 0, 1);
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.rank_load[0], 100, 0);   /* 500 each from the split, then 400 moved */
    assert_close(f.res.rank_load[1], 900, 0);
    assert_close(f.res.exposed_conv, 0, 0);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_expert_compute_bound),
        cmocka_unit_test(test_single_expert_memory_bound),
        cmocka_unit_test(test_eff_interpolation),
        cmocka_unit_test(test_dispatch_two_nodes),
        cmocka_unit_test(test_conversion_hidden_and_exposed),
        cmocka_unit_test(test_replicas_split_tokens),
        cmocka_unit_test(test_placement_not_divisible),
        cmocka_unit_test(test_zero_tokens_one_rank),
        cmocka_unit_test(test_lis_definition),
        cmocka_unit_test(test_monotonic_random),
        cmocka_unit_test(test_conversion_modes_and_memory),
        cmocka_unit_test(test_move_tokens_prefetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
