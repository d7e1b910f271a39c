/* Cost model against hand-computed cases and properties on random input. */
#include <math.h>
#include <time.h>
#include "testutil.h"

static mplb_profile flat_profile(void) {
    mplb_profile hw;
    mplb_profile_ideal(&hw);   /* every efficiency 1, no tile or wave model */
    snprintf(hw.name, sizeof hw.name, "test");
    for (int p = 0; p < MPLB_PREC_COUNT; p++) hw.compute_as[p] = MPLB_PREC_BF16;
    hw.peak_tflops[MPLB_PREC_BF16] = 100;
    hw.peak_tflops[MPLB_PREC_FP8_E4M3] = 200;
    hw.compute_as[MPLB_PREC_FP8_E4M3] = MPLB_PREC_FP8_E4M3;
    hw.compute_as[MPLB_PREC_NVFP4] = MPLB_PREC_FP8_E4M3; /* Hopper-like: weight-only FP4 */
    hw.hbm_gbps = 1000;
    hw.nvlink_gbps = 100;
    hw.net_gbps = 50;
    hw.host_gbps = 10;
    hw.nvlink_lat_us = 2;
    hw.net_lat_us = 10;
    hw.launch_us = 5;
    hw.conv_eff = 0.5;
    hw.memory_gb = 80;
    return hw;
}

/* An independent statement of docs/cost-model.md's expert formula (no tile
 * model): two GEMM rooflines max(mma, loads) + stores, the SwiGLU pass, the
 * dispatched-activation conversion when formats differ, two launches. */
static double act_b(mplb_prec p) {
    switch (p) {
    case MPLB_PREC_BF16: case MPLB_PREC_FP16: return 2;
    case MPLB_PREC_FP8_E4M3: case MPLB_PREC_FP8_E5M2: return 1 + 4.0 / 128;
    case MPLB_PREC_NVFP4: return 0.5 + 1.0 / 16;
    case MPLB_PREC_MXFP4: return 0.5 + 1.0 / 32;
    case MPLB_PREC_MXFP8: return 1 + 1.0 / 32;
    default: return mplb_prec_bits(p) / 8;
    }
}

static double ref_ffn_us(const mplb_profile *hw, double d, double f, double n, mplb_prec p, mplb_prec disp) {
    if (n <= 0) return 0;
    mplb_prec cp = hw->compute_as[p];
    double rate = hw->peak_tflops[cp] * 1e12 * hw->mma_eff[cp], bw = hw->hbm_gbps * 1e9 * hw->hbm_eff;
    double wb = mplb_prec_bits(p) / 8, ab = act_b(cp), t = 0;
    double shapes[2][2] = {{2 * f, d}, {d, f}};
    for (int g = 0; g < 2; g++) {
        double N = shapes[g][0], K = shapes[g][1];
        double mma = 2 * n * N * K / rate, load = (N * K * wb + n * K * ab) / bw, store = n * N * 2 / bw;
        t += (mma > load ? mma : load) + store;
    }
    t += n * (2 * f * 2 + f * ab) / bw;
    if (act_b(disp) != ab) t += n * d * (act_b(disp) + ab) / bw;
    return t * 1e6 + 2 * hw->launch_us;
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

/* n=1000, d=1024, f=512 at 100 TFLOPS, 1000 GB/s, by hand:
 * GEMM1 (N=1024, K=1024): mma 2*1000*1024*1024/1e14 s = 20.97152 us > loads
 *   (2*1024*1024 + 1000*1024*2 B) = 4.145152 us; + store 1000*1024*2 B = 2.048 us
 * GEMM2 (N=1024, K=512): mma 10.48576 us > loads 2.072576 us; + store 2.048 us
 * SwiGLU: 1000*(2*512*2 + 512*2) B = 3.072 us; two launches 10 us. */
static void test_single_expert_compute_bound(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(1, 1);
    fixture f;
    fx_init(&f, 1, 1, 1, 1);
    add_tokens(&f, 1, 0, 1000, 0);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 1, &f.rt, &f.plan, &f.res, &err), 0);
    double want = 20.97152 + 2.048 + 10.48576 + 2.048 + 3.072 + 10;
    assert_close(f.res.t_compute_max, want, 1e-12);
    assert_close(f.res.t_layer, want, 1e-12);
    assert_close(f.res.t_dispatch, 0, 0);
    assert_close(f.res.imbalance, 1.0, 1e-15);
    fx_free(&f);
}

/* The expert formula against the independent one, over random token counts,
 * every precision, with and without native FP4 (W4A4) units. */
static void test_expert_formula_random(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed());
    mplb_model m = small_model(1, 1);
    for (int chip = 0; chip < 2; chip++) {
        mplb_profile hw = flat_profile();
        hw.hbm_eff = 0.7;
        hw.mma_eff[MPLB_PREC_BF16] = 0.8;
        if (chip) {   /* Blackwell-like: FP4 tensor cores, activations quantised to FP4 */
            hw.peak_tflops[MPLB_PREC_NVFP4] = 400;
            hw.compute_as[MPLB_PREC_NVFP4] = MPLB_PREC_NVFP4;
            hw.mma_eff[MPLB_PREC_NVFP4] = 0.6;
        }
        for (int it = 0; it < 300; it++) {
            double n = 1 + (double)(mplb_rng_next(&rng) % 20000);
            mplb_prec p = (mplb_prec)(mplb_rng_next(&rng) % MPLB_PREC_COUNT);
            double got = mplb_cost_expert_us(&hw, &m, p, n), want = ref_ffn_us(&hw, 1024, 512, n, p, MPLB_PREC_BF16);
            if (fabs(got - want) > 1e-9 * want) fail_msg("%s n=%g: %.12g != %.12g", mplb_prec_name(p), n, got, want);
        }
    }
    /* memory-bound n=1, bf16: GEMM1 loads (2097152 + 2048) B + store 2048 B,
     * GEMM2 (1048576 + 1024) + 2048, SwiGLU 3072 B, at 1000 GB/s; + 10 us */
    mplb_profile hw = flat_profile();
    assert_close(mplb_cost_expert_us(&hw, &m, MPLB_PREC_BF16, 1), (2099200 + 2048 + 1049600 + 2048 + 3072) / 1e6 + 10,
                 1e-12);
    /* nvfp4 on a chip without FP4 units: 4.5 bits/weight, fp8 compute; at a
     * compute-bound n it runs at the FP8 rate, not an FP4 one */
    double big = 1e5, mma = 6.0 * big * 1024 * 512 / 200e12 * 1e6;
    assert_true(mplb_cost_expert_us(&hw, &m, MPLB_PREC_NVFP4, big) > mma);
    assert_true(mplb_cost_expert_us(&hw, &m, MPLB_PREC_NVFP4, big) < 1.2 * mma + 10 + 3 * big * 3000 / 1e6);
}

/* The tile model: the kernel's best (block_m, block_n) over whole waves,
 * against a brute force that pads every expert on its own. */
static void test_tile_wave_model(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed() + 1);
    mplb_profile hw = flat_profile();
    hw.tile_m = 128;
    hw.tile_n = 64;
    hw.sms = 6;
    hw.hbm_gbps = 1e9;   /* make loads free: only the MMA time shows */
    for (int it = 0; it < 200; it++) {
        int G = 1 + (int)(mplb_rng_next(&rng) % 6);
        double N = 8 + (double)(mplb_rng_next(&rng) % 500), K = 64, ns[6];
        mplb_gemm_acc a;
        memset(&a, 0, sizeof a);
        for (int g = 0; g < G; g++) {
            ns[g] = 1 + (double)(mplb_rng_next(&rng) % 300);
            mplb_gemm_add(&a, &hw, MPLB_PREC_BF16, ns[g], N, K, 16, 2);
        }
        double best = INFINITY;
        for (int bm = 32; bm <= 128; bm *= 2)
            for (int bn = 16; bn <= 64; bn += 8) {
                double tiles = 0;
                for (int g = 0; g < G; g++) tiles += ceil(ns[g] / bm) * ceil(N / bn);
                double waves = ceil(tiles / 6);
                double t = waves * 2.0 * bm * bn * K / (100e12 / 6) * 1e6;
                if (t < best) best = t;
            }
        double stores = 0;
        for (int g = 0; g < G; g++) stores += ns[g] * N * 2 / 1e18 * 1e6;
        assert_close(mplb_gemm_us(&a, &hw), best + stores, 1e-9 * best);
    }
    /* one token still computes a whole 32-row tile */
    mplb_gemm_acc one;
    memset(&one, 0, sizeof one);
    mplb_gemm_add(&one, &hw, MPLB_PREC_BF16, 1, 64, 64, 16, 2);
    assert_close(mplb_gemm_us(&one, &hw), 2.0 * 32 * 16 * 64 / (100e12 / 6) * 1e6 + 64 * 2 / 1e12, 1e-12);
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
 * NVLink and 2048/50e3 us over the network run concurrently; + network
 * latency 10 us. */
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
    assert_close(f.res.t_dispatch, 0.04096 + 10, 1e-12);
    assert_close(f.res.t_combine, 0.04096 + 10, 1e-12);
    assert_close(f.res.bytes_intra, 2048, 0);
    assert_close(f.res.bytes_inter, 2048, 0);
    /* fp8 dispatch: 1024 B plus 8 float scales (one per 128 channels) = 1056 B;
     * the combine stays bf16 */
    f.plan.dispatch_prec = MPLB_PREC_FP8_E4M3;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 0.02112 + 10, 1e-12);
    assert_close(f.res.t_combine, 0.04096 + 10, 1e-12);
    /* with a slow NVLink the forwarded hop shows: a token from rank 1 to
     * expert 2 (rank 2) lands on rank 3 (rank 1's local index on node 1)
     * and is forwarded to rank 2 over NVLink */
    hw.nvlink_gbps = 1;
    f.plan.dispatch_prec = MPLB_PREC_BF16;
    mplb_routing_clear(&f.rt);
    int one[2] = {2, 3};   /* rank 3 is the gateway itself, rank 2 is forwarded to */
    mplb_routing_add_token(&f.rt, &f.pl, 2, 1, 0, one, NULL);
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 2048 / 1e3 + 10, 1e-12);
    assert_close(f.res.bytes_intra, 0, 0);
    fx_free(&f);
}

/* The busiest receiver sets the time: three ranks send 10 tokens each to
 * rank 0, which receives 30 (v1 counted only the 10 each sender sends). */
static void test_dispatch_receiver_bound(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    hw.nvlink_eff = 0.8;
    mplb_model m = small_model(4, 1);
    fixture f;
    fx_init(&f, 4, 4, 1, 1);
    for (int s = 1; s < 4; s++) add_tokens(&f, 4, s, 10, 0);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 4, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 30 * 2048 / (100e3 * 0.8) + 2, 1e-12);
    assert_close(f.res.t_combine, 30 * 2048 / (100e3 * 0.8) + 2, 1e-12);
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
    double t_r1 = ref_ffn_us(&hw, 1024, 512, 10, MPLB_PREC_FP8_E4M3, MPLB_PREC_BF16);
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
    assert_close(f.res.rank_compute[1], ref_ffn_us(&hw, 1024, 512, 500, MPLB_PREC_BF16, MPLB_PREC_BF16), 1e-12);
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
 * and prefetches 3145728 B of bf16 weights from host memory (10 GB/s):
 * 314.5728 us, hidden behind the dispatch (the 400 moved tokens cross
 * NVLink: 400 * 2048 B / 100 GB/s = 8.192 us, + 2 us latency) and rank 1's
 * compute; the rest is exposed. */
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
    assert_close(f.res.t_dispatch, 8.192 + 2, 1e-12);
    double c1 = ref_ffn_us(&hw, 1024, 512, 400, MPLB_PREC_BF16, MPLB_PREC_BF16);
    assert_close(f.res.rank_compute[0], ref_ffn_us(&hw, 1024, 512, 600, MPLB_PREC_BF16, MPLB_PREC_BF16), 1e-12);
    double exposed = 314.5728 - (10.192 + c1);
    assert_close(f.res.rank_compute[1], c1 + exposed, 1e-9);
    assert_close(f.res.exposed_conv, exposed, 1e-9);
    /* moving to a rank that already holds a replica fetches nothing */
    mplb_placement_add(&f.plan.placement, 0, 1);
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.rank_load[0], 100, 0);   /* 500 each from the split, then 400 moved */
    assert_close(f.res.rank_load[1], 900, 0);
    assert_close(f.res.exposed_conv, 0, 0);
    fx_free(&f);
}

/* Moved tokens are routed to the target by the dispatch: ranks 2 and 3 send
 * 50 tokens each to expert 0 (rank 0), which receives 100; moving 60 of them
 * to rank 1 leaves rank 0 receiving 40 and rank 1 60 (senders unchanged). */
static void test_moved_tokens_traffic(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(4, 1);
    fixture f;
    fx_init(&f, 4, 4, 1, 1);
    add_tokens(&f, 4, 2, 50, 0);
    add_tokens(&f, 4, 3, 50, 0);
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 4, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 100 * 2048 / 100e3 + 2, 1e-12);
    assert_int_equal(mplb_plan_add_move(&f.plan, 0, 0, 1, 60, &err), 0);
    assert_int_equal(mplb_cost_eval(&hw, &m, 4, &f.rt, &f.plan, &f.res, &err), 0);
    assert_close(f.res.t_dispatch, 60 * 2048 / 100e3 + 2, 1e-12);
    assert_close(f.res.t_combine, 60 * 2048 / 100e3 + 2, 1e-12);
    assert_close(f.res.rank_load[0], 40, 0);
    assert_close(f.res.rank_load[1], 60, 0);
    fx_free(&f);
}

/* Shared experts run on each rank's own tokens, in bf16. */
static void test_shared_experts(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    m.shared_experts = 2;
    fixture f;
    fx_init(&f, 2, 2, 1, 1);
    add_tokens(&f, 2, 0, 100, 1);   /* 100 tokens start on rank 0, computed on rank 1 */
    mplb_err err;
    assert_int_equal(mplb_cost_eval(&hw, &m, 2, &f.rt, &f.plan, &f.res, &err), 0);
    /* two shared experts of 100 tokens in one launch pair: twice the work, one set of launches */
    double one = ref_ffn_us(&hw, 1024, 512, 100, MPLB_PREC_BF16, MPLB_PREC_BF16) - 10;
    assert_close(f.res.t_shared, 2 * one + 10, 1e-9);
    assert_close(f.res.rank_compute[0], 2 * one + 10, 1e-9);
    assert_close(f.res.rank_compute[1], one + 10, 1e-9);
    fx_free(&f);
}

/* A rebalance pays for the copies it adds: bf16 weights 3145728 B over
 * NVLink (100 GB/s) inside a node, over the NIC (50 GB/s) across nodes. */
static void test_migration(void **st) {
    (void)st;
    mplb_profile hw = flat_profile();
    mplb_model m = small_model(2, 1);
    for (int gpn = 1; gpn <= 2; gpn++) {
        fixture f;
        fx_init(&f, 2, 2, 3 - gpn, 1);
        add_tokens(&f, gpn, 0, 10, 0);
        f.plan.prev_placement = &f.pl;
        mplb_err err;
        assert_int_equal(mplb_cost_eval(&hw, &m, gpn, &f.rt, &f.plan, &f.res, &err), 0);
        assert_close(f.res.t_migrate, 0, 0);
        mplb_placement_add(&f.plan.placement, 0, 1);
        f.plan.placement_changed = 1;
        assert_int_equal(mplb_cost_eval(&hw, &m, gpn, &f.rt, &f.plan, &f.res, &err), 0);
        double want = 3145728 / (gpn == 2 ? 100e3 : 50e3);
        assert_close(f.res.t_migrate, want, 1e-12);
        assert_close(f.res.bytes_migrate, 3145728, 0);
        /* a step whose placement matches the previous one pays nothing */
        f.plan.prev_placement = &f.plan.placement;
        assert_int_equal(mplb_cost_eval(&hw, &m, gpn, &f.rt, &f.plan, &f.res, &err), 0);
        assert_close(f.res.t_migrate, 0, 0);
        fx_free(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_expert_compute_bound),
        cmocka_unit_test(test_expert_formula_random),
        cmocka_unit_test(test_tile_wave_model),
        cmocka_unit_test(test_eff_interpolation),
        cmocka_unit_test(test_dispatch_two_nodes),
        cmocka_unit_test(test_dispatch_receiver_bound),
        cmocka_unit_test(test_conversion_hidden_and_exposed),
        cmocka_unit_test(test_replicas_split_tokens),
        cmocka_unit_test(test_placement_not_divisible),
        cmocka_unit_test(test_zero_tokens_one_rank),
        cmocka_unit_test(test_lis_definition),
        cmocka_unit_test(test_monotonic_random),
        cmocka_unit_test(test_conversion_modes_and_memory),
        cmocka_unit_test(test_move_tokens_prefetch),
        cmocka_unit_test(test_moved_tokens_traffic),
        cmocka_unit_test(test_shared_experts),
        cmocka_unit_test(test_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
