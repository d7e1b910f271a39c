/* Repeated, interleaved measurement (mplb/measure.h): the driver's call
 * order, its median and spread against independent references on fresh
 * random times, and a whole run through a mock device whose clock drifts:
 * the stored medians are the medians of the stored runs, and interleaving
 * keeps equal work at a speedup near 1 where a baseline measured apart
 * would not. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "mplb/measure.h"

/* reference low median: the element with at most (n-1)/2 smaller ones and
 * more than (n-1)/2 smaller-or-equal ones (no sorting) */
static double ref_median_low(const double *x, int n) {
    int want = (n - 1) / 2;
    for (int i = 0; i < n; i++) {
        int lt = 0, le = 0;
        for (int j = 0; j < n; j++) { lt += x[j] < x[i]; le += x[j] <= x[i]; }
        if (lt <= want && le > want) return x[i];
    }
    fail_msg("no median");
    return 0;
}

static void test_median(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    for (int trial = 0; trial < 500; trial++) {
        int n = 1 + (int)(mplb_rng_next(&g) % MPLB_REPEATS_MAX);
        double x[MPLB_REPEATS_MAX], lo, hi;
        for (int i = 0; i < n; i++) x[i] = (double)(mplb_rng_next(&g) % 7);   /* ties on purpose */
        assert_true(mplb_median_low(x, n) == ref_median_low(x, n));
        mplb_min_max(x, n, &lo, &hi);
        for (int i = 0; i < n; i++) assert_true(lo <= x[i] && x[i] <= hi);
        int seen_lo = 0, seen_hi = 0;
        for (int i = 0; i < n; i++) { seen_lo |= x[i] == lo; seen_hi |= x[i] == hi; }
        assert_true(seen_lo && seen_hi);
    }
    double two[2] = {5, 3};
    assert_true(mplb_median_low(two, 2) == 3);   /* the lower of the middle two */
}

/* A scripted backend: each call takes the next time from a random script;
 * it records whether it ran the plan or the baseline. */
typedef struct script {
    mplb_rng g;
    const mplb_plan *base;
    int calls;
    char order[256];     /* 'P' plan, 'B' baseline */
    double t[256];       /* the time each call reported */
} script;

static int script_once(void *ctx, const mplb_layer_in *in, const mplb_plan *plan, mplb_cost_result *res, double *error,
                       mplb_err *err) {
    (void)in; (void)err;
    script *s = ctx;
    double t = 100 + (double)(mplb_rng_next(&s->g) % 100000) / 100;
    s->order[s->calls] = plan == s->base ? 'B' : 'P';
    s->t[s->calls++] = t;
    res->t_layer = t;
    res->t_dispatch = t / 10;
    res->t_combine = t / 20;
    res->t_compute_max = t / 2;
    res->exposed_conv = t / 100;
    for (int r = 0; r < res->R; r++) res->rank_compute[r] = t / (r + 2);
    *error = t * 1e-6;   /* a marker of the run it came from */
    return 0;
}

static void test_driver(void **st) {
    (void)st;
    mplb_err err = {0};
    mplb_placement pl;
    mplb_plan plan, base;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 3, 6, &err), 0);
    assert_int_equal(mplb_plan_init(&plan, &pl, &err), 0);
    assert_int_equal(mplb_plan_init(&base, &pl, &err), 0);
    mplb_cost_result res;
    assert_int_equal(mplb_cost_result_alloc(&res, 3, &err), 0);
    uint64_t seed = test_seed();
    for (int N = 1; N <= 9; N++)
        for (int W = 0; W <= 2; W++)
            for (int with_base = 0; with_base <= 1; with_base++) {
                script s = {.base = &base};
                mplb_rng_seed(&s.g, seed + (uint64_t)(N * 100 + W * 10 + with_base));
                mplb_measure *m;
                assert_int_equal(mplb_measure_open(3, N, W, &m, &err), 0);
                mplb_layer_in in = {0, 0, NULL, with_base ? &base : NULL};
                double error;
                assert_int_equal(mplb_measure_eval(m, script_once, &s, &in, &plan, &res, &error, &err), 0);
                mplb_measure_close(m);
                /* the order: W warm-ups of the plan, then P B / B P alternating (alone when nothing to compare) */
                char want[256];
                int n = 0;
                for (int i = 0; i < W; i++) want[n++] = 'P';
                int inter = with_base && N > 1;
                for (int i = 0; i < N; i++) {
                    if (inter && i % 2) { want[n++] = 'B'; want[n++] = 'P'; }
                    else { want[n++] = 'P'; if (inter) want[n++] = 'B'; }
                }
                assert_int_equal(s.calls, n);
                assert_memory_equal(s.order, want, (size_t)n);
                /* the stored runs are the timed ones, in order */
                double tp[64], tb[64];
                int np = 0, nb = 0;
                for (int c = W; c < n; c++) {
                    if (s.order[c] == 'P') tp[np++] = s.t[c];
                    else tb[nb++] = s.t[c];
                }
                assert_int_equal(res.repeats, N);
                assert_int_equal(res.n_base, inter ? N : 0);
                assert_memory_equal(res.rep_layer, tp, (size_t)N * sizeof(double));
                if (inter) assert_memory_equal(res.rep_base, tb, (size_t)N * sizeof(double));
                /* the median run supplies every time of the result */
                double med = ref_median_low(tp, N);
                assert_true(res.t_layer == med);
                assert_true(res.t_dispatch == med / 10 && res.t_combine == med / 20 && res.t_compute_max == med / 2);
                assert_true(res.exposed_conv == med / 100 && error == med * 1e-6);
                for (int r = 0; r < 3; r++) assert_true(res.rank_compute[r] == med / (r + 2));
                double bm, blo, bhi;
                mplb_cost_result b0 = res;
                b0.t_layer = 42;
                b0.repeats = 1;
                b0.rep_layer[0] = 42;
                mplb_measure_baseline(&res, &b0, &bm, &blo, &bhi);
                if (inter) {
                    double lo = tb[0], hi = tb[0];
                    for (int i = 1; i < N; i++) { lo = fmin(lo, tb[i]); hi = fmax(hi, tb[i]); }
                    assert_true(bm == ref_median_low(tb, N) && blo == lo && bhi == hi);
                } else assert_true(bm == 42 && blo == 42 && bhi == 42);   /* the layer's own baseline stands */
            }
    mplb_measure *m;
    assert_int_equal(mplb_measure_open(3, MPLB_REPEATS_MAX + 1, 0, &m, &err), MPLB_EINVAL);
    mplb_cost_result_free(&res);
    mplb_plan_free(&plan);
    mplb_plan_free(&base);
    mplb_placement_free(&pl);
}

/* A device whose clock runs slower with every FFN it runs (scale grows by
 * 0.2% per call), and whose fp8 FFN costs what bf16 costs: equal work. */
typedef struct drift_dev { long calls; mplb_ffn_ws ws; } drift_dev;

static int drift_forward(void *ctx, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    (void)e;
    drift_dev *d = ctx;
    *us = n * (1 + 0.002 * (double)d->calls++);
    return mplb_ffn_forward(w, x, n, MPLB_PREC_BF16, y, &d->ws, err);
}

static int drift_convert(void *ctx, const float *g, const float *u, const float *dn, int d, int f, mplb_prec p, double *us,
                         mplb_err *err) {
    (void)ctx; (void)g; (void)u; (void)dn; (void)d; (void)f; (void)p; (void)err;
    *us = 0;
    return 0;
}

static void test_run_drift(void **st) {
    (void)st;
    write_text("drift.lua",
               "return { model = { layers = 2, experts = 8, top_k = 2, hidden = 32, ffn = 16 },\n"
               "  cluster = { gpus_per_node = 2 }, backend = 'cuda', repeats = 5, warmup = 1,\n"
               "  workload = { steps = 2, tokens = 128, zipf = 1.0 },\n"
               "  policies = { 'baseline', {'static', prec = 'fp8_e4m3', mode = 'stored'},\n"
               "               {'static', label = 'b', prec = 'fp8_e5m2', mode = 'stored'} }, seed = 4 }\n");
    mplb_exp x;
    mplb_err err = {0};
    assert_int_equal(mplb_exp_load("drift.lua", NULL, 0, &x, &err), 0);
    drift_dev dd = {0};
    mplb_exec_device dev = {.ctx = &dd, .name = "drifting mock", .forward = drift_forward, .convert = drift_convert};
    mplb_run_opts o = {.out_path = "drift.h5", .force = 1, .flush_rows = 3, .command = "test", .device = &dev};
    mplb_run_summary sum;
    int rc = mplb_run(&x, &o, &sum, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(sum.pol[1].repeats, 5);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    mplb_ffn_ws_free(&dd.ws);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read_arrays("drift.h5", &info, &err), 0);
    assert_int_equal(info.repeats, 5);
    assert_int_equal(info.n_rows, 2 * 2 * 3);
    double base_row_t = 0;
    for (int64_t i = 0; i < info.n_rows; i++) {
        const mplb_step_row *r = &info.rows[i];
        const double *L = info.rep_layer + i * 5, *B = info.rep_baseline + i * 5;
        double lo, hi;
        assert_int_equal(r->repeats, 5);
        assert_true(r->t_layer_us == ref_median_low(L, 5));
        assert_true(r->t_baseline_us == ref_median_low(B, 5));
        mplb_min_max(L, 5, &lo, &hi);
        assert_true(r->t_layer_min_us == lo && r->t_layer_max_us == hi);
        mplb_min_max(B, 5, &lo, &hi);
        assert_true(r->t_baseline_min_us == lo && r->t_baseline_max_us == hi);
        if (r->policy == 0) { base_row_t = r->t_layer_us; continue; }   /* the layer's baseline evaluation */
        /* equal work, a drifting clock: the interleaved baseline keeps the
         * speedup near 1; the baseline measured before the policies would not */
        double inter = r->t_baseline_us / r->t_layer_us, apart = base_row_t / r->t_layer_us;
        if (!(fabs(log(inter)) < 0.05 && fabs(log(inter)) < fabs(log(apart)) / 2))
            fail_msg("row %lld (policy %d): interleaved speedup %.4f, apart %.4f", (long long)i, r->policy, inter, apart);
    }
    mplb_runfile_info_free(&info);
}

/* backend cpu, timed for real: the stored times are the low medians of the
 * stored runs (3 by default), the spreads their extremes. */
static void test_run_cpu(void **st) {
    (void)st;
    write_text("cpu.lua",
               "return { model = { layers = 2, experts = 8, top_k = 2, hidden = 64, ffn = 32 },\n"
               "  cluster = { gpus_per_node = 2 }, backend = 'cpu',\n"
               "  workload = { steps = 2, tokens = 256, zipf = 1.0 },\n"
               "  policies = { 'baseline', {'static', prec = 'nvfp4', mode = 'online'} }, seed = 6 }\n");
    mplb_exp x;
    mplb_err err = {0};
    assert_int_equal(mplb_exp_load("cpu.lua", NULL, 0, &x, &err), 0);
    assert_int_equal(x.repeats, 3);
    mplb_run_opts o = {.out_path = "cpu.h5", .force = 1, .command = "test"};
    mplb_run_summary sum;
    if (mplb_run(&x, &o, &sum, &err)) fail_msg("%s", err.msg);
    assert_contains(sum.times_source, "median of 3 repeats");
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read_arrays("cpu.h5", &info, &err), 0);
    assert_int_equal(info.repeats, 3);
    for (int64_t i = 0; i < info.n_rows; i++) {
        const mplb_step_row *r = &info.rows[i];
        const double *L = info.rep_layer + i * 3, *B = info.rep_baseline + i * 3;
        double lo, hi;
        assert_true(r->t_layer_us == ref_median_low(L, 3) && r->t_baseline_us == ref_median_low(B, 3));
        mplb_min_max(L, 3, &lo, &hi);
        assert_true(r->t_layer_min_us == lo && r->t_layer_max_us == hi && lo > 0);
        if (r->policy == 0) assert_memory_equal(L, B, 3 * sizeof(double));   /* the baseline row is its own baseline */
    }
    mplb_runfile_info_free(&info);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median),
        cmocka_unit_test(test_driver),
        cmocka_unit_test(test_run_drift),
        cmocka_unit_test(test_run_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
