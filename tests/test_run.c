/* End to end: experiment -> run loop -> run file, including failures. */
#include <hdf5.h>
#include <math.h>
#include <time.h>
#include "testutil.h"

static void write_exp(const char *path, int R, int E, int k, int steps, int tokens, const char *policies) {
    char buf[2048];
    snprintf(buf, sizeof buf,
             "return {\n"
             "  model = { layers = 3, experts = %d, top_k = %d, hidden = 256, ffn = 128 },\n"
             "  cluster = { nodes = 1, gpus_per_node = %d, profile = 'h100' },\n"
             "  workload = { steps = %d, tokens = %d, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5 },\n"
             "  policies = %s,\n"
             "  seed = 11,\n"
             "}\n", E, k, R, steps, tokens, policies);
    write_text(path, buf);
}

static int run_exp(const char *exp_path, const char *out, mplb_run_summary *sum, mplb_err *err) {
    mplb_exp x;
    int rc = mplb_exp_load(exp_path, NULL, 0, &x, err);
    if (rc) return rc;
    mplb_run_opts o = {.out_path = out, .force = 1, .flush_rows = 4, .command = "test"};
    rc = mplb_run(&x, &o, sum, err);
    mplb_exp_free(&x);
    return rc;
}

static void test_run_not_divisible(void **st) {
    (void)st;
    write_exp("e1.lua", 4, 10, 2, 3, 500,
              "{ 'baseline', { 'threshold', tau = 1.1, low = 'nvfp4', min_tokens = 0 } }");
    mplb_run_summary sum;
    mplb_err err = {0};
    int rc = run_exp("e1.lua", "e1.h5", &sum, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_run_summary_free(&sum);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read("e1.h5", &info, &err), 0);
    assert_string_equal(info.status, "complete");
    assert_int_equal(info.n_rows, 2 * 3 * 3);
    assert_int_equal(info.R, 4);
    assert_int_equal(info.E, 10);
    /* LIS recomputed from the stored per-expert loads (an independent path). */
    int32_t *el = calloc((size_t)info.n_rows * 10, sizeof(int32_t));
    hid_t f = H5Fopen("e1.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "experts/load", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, el) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    int low_rows = 0;
    for (int64_t i = 0; i < info.n_rows; i++) {
        const mplb_step_row *r = &info.rows[i];
        long sum_e = 0, mx = 0;
        for (int e = 0; e < 10; e++) { sum_e += el[i * 10 + e]; if (el[i * 10 + e] > mx) mx = el[i * 10 + e]; }
        assert_int_equal(sum_e, 500 * 2);          /* every token has k = 2 distinct experts */
        assert_int_equal(r->tokens, 500);
        assert_close(r->lis, 10.0 * mx / (500.0 * 2), 1e-12);
        if (r->policy == 0) {
            assert_close(r->t_layer_us, r->t_baseline_us, 0);
            assert_close(r->error_proxy, 0, 0);
        } else if (r->error_proxy > 0) low_rows++;
        assert_true(r->t_layer_us > 0);
        assert_true(r->decide_us >= 0);
    }
    assert_true(low_rows > 0);
    free(el);
    mplb_runfile_info_free(&info);
}

static void test_one_rank_zero_tokens(void **st) {
    (void)st;
    write_exp("e2.lua", 1, 3, 1, 2, 0, "{ 'baseline', 'threshold' }");
    mplb_run_summary sum;
    mplb_err err = {0};
    int rc = run_exp("e2.lua", "e2.h5", &sum, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_run_summary_free(&sum);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read("e2.h5", &info, &err), 0);
    assert_int_equal(info.n_rows, 2 * 2 * 3);
    for (int64_t i = 0; i < info.n_rows; i++) {
        assert_close(info.rows[i].t_layer_us, 0, 0);
        assert_close(info.rows[i].imbalance, 1, 0);
        assert_close(info.rows[i].lis, 0, 0);
    }
    mplb_runfile_info_free(&info);
    /* one rank with tokens: no dispatch at all */
    write_exp("e3.lua", 1, 3, 2, 1, 64, "{ 'baseline' }");
    rc = run_exp("e3.lua", "e3.h5", &sum, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_run_summary_free(&sum);
    assert_int_equal(mplb_runfile_read("e3.h5", &info, &err), 0);
    for (int64_t i = 0; i < info.n_rows; i++) {
        assert_close(info.rows[i].t_dispatch_us, 0, 0);
        assert_true(info.rows[i].t_layer_us > 0);
    }
    mplb_runfile_info_free(&info);
}

/* A policy that fails at step 3 (1-based): the run ends "failed" with the
 * message, and every row before the failure is in the file. */
static void test_policy_failure_keeps_rows(void **st) {
    (void)st;
    write_text("failing.lua",
               "local P = {}\n"
               "function P.decide(obs, act)\n"
               "  if obs.step == 3 then error('bad step') end\n"
               "end\nreturn P\n");
    write_exp("e4.lua", 2, 4, 1, 5, 50, "{ 'baseline', 'failing.lua' }");
    mplb_run_summary sum;
    mplb_err err = {0};
    int rc = run_exp("e4.lua", "e4.h5", &sum, &err);
    assert_int_equal(rc, MPLB_EPOLICY);
    assert_contains(err.msg, "failing.lua:3: bad step");
    mplb_run_summary_free(&sum);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read("e4.h5", &info, &err), 0);
    assert_string_equal(info.status, "failed");
    assert_contains(info.error, "failing.lua:3: bad step");
    /* steps 1, 2 complete (2 steps x 3 layers x 2 policies) plus the baseline row of step 3, layer 1 */
    assert_int_equal(info.n_rows, 2 * 3 * 2 + 1);
    mplb_runfile_info_free(&info);
}

static void test_workload_reproducible(void **st) {
    (void)st;
    mplb_model m = {"t", 2, 16, 4, 8, 8, 0};
    mplb_workload_cfg c = {.kind = "synthetic", .steps = 1, .tokens = 1000, .zipf = 1.2, .vision_frac = 0.3, .vision_zipf = 2.0};
    mplb_wl a, b;
    mplb_placement pl;
    mplb_routing ra, rb;
    mplb_err err;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 4, 16, &err), 0);
    assert_int_equal(mplb_wl_init(&a, &c, &m, 4, 4, 5, &err), 0);
    assert_int_equal(mplb_wl_init(&b, &c, &m, 4, 4, 5, &err), 0);
    assert_int_equal(mplb_routing_alloc(&ra, 4, 16, 1, 4, &err), 0);
    assert_int_equal(mplb_routing_alloc(&rb, 4, 16, 1, 4, &err), 0);
    /* (step, layer) cells are independent of generation order */
    assert_int_equal(mplb_wl_generate(&a, 7, 1, &pl, &ra, &err), 0);
    assert_int_equal(mplb_wl_generate(&b, 0, 0, &pl, &rb, &err), 0);
    assert_int_equal(mplb_wl_generate(&b, 7, 1, &pl, &rb, &err), 0);
    assert_memory_equal(ra.src_counts, rb.src_counts, 4 * 16 * sizeof(int32_t));
    assert_memory_equal(ra.tok_to_rank, rb.tok_to_rank, 4 * 4 * sizeof(int32_t));
    long vis = 0;
    for (int r = 0; r < 4; r++) vis += ra.src_vision[r];
    assert_true(vis > 200 && vis < 400);      /* ~30% of 1000, binomial sd ~15 */
    double imp = 0;
    for (int e = 0; e < 16; e++) imp += ra.importance[e];
    assert_close(imp, 1000, 1e-5);            /* gate weights sum to 1 per token */
    assert_int_equal(mplb_wl_generate(&b, 0, 2, &pl, &rb, &err), MPLB_ERANGE);
    mplb_wl_free(&a); mplb_wl_free(&b);
    mplb_routing_free(&ra); mplb_routing_free(&rb);
    mplb_placement_free(&pl);
}

/* The synthetic sampler draws each token's k experts by successive
 * sampling without replacement from the layer's popularity p (redraw a
 * chosen one). Against that distribution, computed exactly here by
 * enumerating every ordered k-tuple: the first choice's frequencies
 * (chi-square, 15 degrees of freedom) and each expert's inclusion count
 * (z-scores) over 200k tokens. Thresholds are far in the tails (p < 1e-6). */
static void test_workload_distribution(void **st) {
    (void)st;
    enum { E = 16, K = 4, T = 200000 };
    mplb_model m = {"t", 1, E, K, 8, 8, 0};
    mplb_workload_cfg c = {.kind = "synthetic", .steps = 1, .tokens = T, .zipf = 1.2};
    mplb_wl wl;
    mplb_placement pl;
    mplb_routing rt;
    mplb_err err;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 4, E, &err), 0);
    assert_int_equal(mplb_wl_init(&wl, &c, &m, 4, 4, test_seed(), &err), 0);
    assert_int_equal(mplb_routing_alloc(&rt, 4, E, 1, K, &err), 0);
    assert_int_equal(mplb_wl_generate(&wl, 0, 0, &pl, &rt, &err), 0);
    assert_true(rt.has_dedup && rt.tokens == T);
    const double *p = wl.pop;   /* family 0, layer 0 */
    double incl[E] = {0};
    for (int a = 0; a < E; a++)
        for (int b = 0; b < E; b++)
            for (int d = 0; d < E; d++)
                for (int f = 0; f < E; f++) {
                    if (a == b || a == d || a == f || b == d || b == f || d == f) continue;
                    double pr = p[a] * p[b] / (1 - p[a]) * p[d] / (1 - p[a] - p[b]) * p[f] / (1 - p[a] - p[b] - p[d]);
                    incl[a] += pr; incl[b] += pr; incl[d] += pr; incl[f] += pr;
                }
    long first[E] = {0};
    for (int64_t t = 0; t < T; t++) first[rt.tok_ids[t * K]]++;
    double chi2 = 0;
    for (int e = 0; e < E; e++) chi2 += pow(first[e] - T * p[e], 2) / (T * p[e]);
    if (chi2 > 60) fail_msg("first choices: chi-square %.1f over 15 degrees of freedom", chi2);
    for (int e = 0; e < E; e++) {
        double mu = T * incl[e], z = (rt.expert_counts[e] - mu) / sqrt(mu * (1 - incl[e]));
        if (fabs(z) > 5.5) fail_msg("expert %d: %d inclusions, expected %.0f (z = %.1f)", e, rt.expert_counts[e], mu, z);
    }
    mplb_wl_free(&wl);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
}

/* backend "cpu": expert FFNs run for real; the all-bf16 policy equals the
 * baseline, lower precision shows a measured error that grows from fp8 to
 * fp4, and every measured time is positive. */
static void test_execute_mode(void **st) {
    (void)st;
    write_text("ex.lua",
               "return { model = { layers = 2, experts = 6, top_k = 2, hidden = 64, ffn = 32 },\n"
               "  cluster = { gpus_per_node = 4 }, backend = 'cpu',\n"
               "  workload = { steps = 2, tokens = 256, zipf = 1.0 },\n"
               "  policies = { 'baseline', {'static', prec = 'fp8_e4m3'}, {'static', prec = 'nvfp4'},\n"
               "               {'static', label = 'online', prec = 'nvfp4', mode = 'online'} }, seed = 3 }\n");
    mplb_run_summary sum;
    mplb_err err = {0};
    int rc = run_exp("ex.lua", "ex.h5", &sum, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_run_summary_free(&sum);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read("ex.h5", &info, &err), 0);
    assert_int_equal(info.n_rows, 2 * 2 * 4);
    double e8 = 0, e4 = 0;
    for (int64_t i = 0; i < info.n_rows; i++) {
        const mplb_step_row *r = &info.rows[i];
        assert_true(r->t_layer_us > 0 && r->t_baseline_us > 0 && r->t_compute_max_us > 0);
        if (r->policy == 0) {
            assert_close(r->t_layer_us, r->t_baseline_us, 0);
            assert_close(r->error_proxy, 0, 0);
        }
        if (r->policy == 1) e8 += r->error_proxy;
        if (r->policy == 2) { e4 += r->error_proxy; assert_close(r->exposed_conv_us, 0, 0); }
    }
    assert_true(e8 > 0 && e4 > e8);
    mplb_runfile_info_free(&info);
    /* a model too large to execute is refused up front */
    write_text("big.lua", "return { model = 'deepseek-v3', cluster = { gpus_per_node = 8 }, backend = 'cpu',\n"
                          "  workload = { steps = 1, tokens = 8 }, policies = { 'baseline' } }\n");
    assert_int_equal(run_exp("big.lua", "big.h5", &sum, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "use a smaller model");
    mplb_run_summary_free(&sum);   /* a failed run still hands back its (partial) summary */
}

/* Execute mode runs a plan's token moves: the moved tokens' FFN time lands
 * on the target rank, the source computes only what is left, and the
 * outputs (hence the error) do not depend on where they are computed. */
static void test_execute_moves(void **st) {
    (void)st;
    mplb_err err = {0};
    mplb_model m = {.layers = 1, .experts = 2, .top_k = 1, .hidden = 32, .ffn = 16};
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 2, 2, &err), 0);   /* expert e on rank e */
    assert_int_equal(mplb_routing_alloc(&rt, 2, 2, 1, 1, &err), 0);
    int e0 = 0;
    for (int t = 0; t < 40; t++) mplb_routing_add_token(&rt, &pl, 2, t % 2, 0, &e0, NULL);   /* every token to expert 0 */
    assert_int_equal(mplb_plan_init(&plan, &pl, &err), 0);
    mplb_exec *ex;
    assert_int_equal(mplb_exec_open(&m, 11, NULL, &ex, &err), 0);
    double rank_us[2], conv_us[2];
    mplb_exec_result res = {rank_us, conv_us, 0};
    for (int moved = 0; moved <= 40; moved += 20) {
        mplb_plan_reset(&plan, &pl);
        plan.expert_prec[0] = MPLB_PREC_FP8_E4M3;
        plan.expert_mode[0] = MPLB_CONV_STORED;
        if (moved) assert_int_equal(mplb_plan_add_move(&plan, 0, 0, 1, moved, &err), 0);
        assert_int_equal(mplb_exec_layer(ex, 0, 0, &rt, &plan, &res, &err), 0);
        if (moved < 40) assert_true(rank_us[0] > 0); else assert_true(rank_us[0] == 0);
        if (moved > 0) assert_true(rank_us[1] > 0); else assert_true(rank_us[1] == 0);
        static double first;
        if (!moved) first = res.error;
        assert_true(res.error > 0);
        assert_close(res.error, first, 1e-6);
    }
    mplb_exec_close(ex);
    mplb_plan_free(&plan);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
}

/* Execute mode through a device (backend "cuda"'s plumbing, here a CPU
 * mock): the FFNs it reports as n microseconds for n tokens make every
 * rank's measured time its token count; conversions reported as 1000 us
 * land on each rank computing an online expert; a new layer makes the
 * device forget its weights. */
typedef struct mock_dev { int forwards, converts, forgets; mplb_ffn_ws ws; } mock_dev;

static int mock_forward(void *ctx, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    (void)e;
    mock_dev *m = ctx;
    m->forwards++;
    *us = n;
    return mplb_ffn_forward(w, x, n, MPLB_PREC_BF16, y, &m->ws, err);
}

static int mock_convert(void *ctx, const float *g, const float *u, const float *dn, int d, int f, mplb_prec p, double *us,
                        mplb_err *err) {
    (void)g; (void)u; (void)dn; (void)d; (void)f; (void)p; (void)err;
    ((mock_dev *)ctx)->converts++;
    *us = 1000;
    return 0;
}

static void mock_forget(void *ctx) { ((mock_dev *)ctx)->forgets++; }

static void test_execute_device(void **st) {
    (void)st;
    mplb_err err = {0};
    mplb_model m = {.layers = 2, .experts = 4, .top_k = 2, .hidden = 32, .ffn = 16};
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 2, 4, &err), 0);   /* experts 0,1 on rank 0; 2,3 on rank 1 */
    mplb_placement_add(&pl, 0, 1);                                            /* and a copy of expert 0 on rank 1 */
    assert_int_equal(mplb_routing_alloc(&rt, 2, 4, 1, 2, &err), 0);
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    for (int t = 0; t < 101; t++) {
        int ids[2] = {(int)(mplb_rng_next(&g) % 4), 0};
        ids[1] = (ids[0] + 1 + (int)(mplb_rng_next(&g) % 3)) % 4;
        mplb_routing_add_token(&rt, &pl, 2, t % 2, 0, ids, NULL);
    }
    assert_int_equal(mplb_plan_init(&plan, &pl, &err), 0);
    mock_dev md = {0};
    mplb_exec_device dev = {.ctx = &md, .name = "mock", .forward = mock_forward, .convert = mock_convert, .forget = mock_forget};
    mplb_exec *ex;
    assert_int_equal(mplb_exec_open(&m, 5, &dev, &ex, &err), 0);
    double rank_us[2], conv_us[2];
    mplb_exec_result res = {rank_us, conv_us, 0};
    mplb_plan_reset(&plan, &pl);
    plan.expert_prec[2] = MPLB_PREC_NVFP4;   /* online on rank 1 */
    assert_int_equal(mplb_exec_layer(ex, 0, 0, &rt, &plan, &res, &err), 0);
    /* token copies per rank, expert 0's split over its two copies as the executor splits them */
    double want[2] = {0, 0};
    for (int e = 0; e < 4; e++) {
        int64_t n = rt.expert_counts[e];
        if (e == 0) { want[0] += (double)(n / 2 + n % 2); want[1] += (double)(n / 2); }
        else want[pl.home[e]] += (double)n;
    }
    assert_close(rank_us[0], want[0], 0);
    assert_close(rank_us[1], want[1], 0);
    assert_close(conv_us[0], 0, 0);
    assert_close(conv_us[1], rt.expert_counts[2] > 0 ? 1000 : 0, 0);
    assert_true(res.error > 0);
    assert_int_equal(md.converts, rt.expert_counts[2] > 0);
    int f0 = md.forgets;
    assert_int_equal(mplb_exec_layer(ex, 0, 1, &rt, &plan, &res, &err), 0);   /* another layer */
    assert_true(md.forgets > f0);
    mplb_exec_close(ex);
    mplb_ffn_ws_free(&md.ws);
    mplb_plan_free(&plan);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
    /* backend cuda without a device is refused by name */
    write_text("cu.lua", "return { model = { layers = 1, experts = 4, top_k = 2, hidden = 32, ffn = 16 },\n"
                         "  cluster = { gpus_per_node = 2 }, backend = 'cuda', workload = { steps = 1, tokens = 64 },\n"
                         "  policies = { 'baseline' } }\n");
    mplb_run_summary sum;
    assert_int_equal(run_exp("cu.lua", "cu.h5", &sum, &err), MPLB_EUNSUPP);
    assert_contains(err.msg, "backend = \"cuda\" needs a CUDA device");
    mplb_run_summary_free(&sum);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_execute_moves),
        cmocka_unit_test(test_execute_device),
        cmocka_unit_test(test_run_not_divisible),
        cmocka_unit_test(test_one_rank_zero_tokens),
        cmocka_unit_test(test_policy_failure_keeps_rows),
        cmocka_unit_test(test_workload_reproducible),
        cmocka_unit_test(test_workload_distribution),
        cmocka_unit_test(test_execute_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
