/* The synthetic workload's time structure, workload files, and `trace fit`
 * recovering parameters it did not see from traces the generator wrote. */
#include <math.h>
#include <time.h>
#include "testutil.h"

static mplb_workload_cfg base_cfg(void) {
    mplb_workload_cfg w;
    memset(&w, 0, sizeof w);
    snprintf(w.kind, sizeof w.kind, "synthetic");
    w.steps = 8; w.tokens = 256; w.zipf = NAN; w.pop_sigma = 0.3; w.families = 1; w.prefill_every = 1;
    return w;
}

static double pearson_log(const double *a, const double *b, int n) {
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) { ma += log(a[i]); mb += log(b[i]); }
    ma /= n; mb /= n;
    for (int i = 0; i < n; i++) {
        double x = log(a[i]) - ma, y = log(b[i]) - mb;
        sab += x * y; saa += x * x; sbb += y * y;
    }
    return sab / sqrt(saa * sbb);
}

/* log(p_step / p_base) = sigma z: with wander period P and no regime change
 * consecutive steps correlate as cos(pi / 2P) inside a segment (E = 4096
 * experts: the sample correlation is within ~0.05 of it). */
static void test_wander_and_regimes(void **state) {
    (void)state;
    uint64_t seed = test_seed();
    int E = 4096;
    mplb_model m = {.layers = 2, .experts = E, .top_k = 2};
    mplb_workload_cfg w = base_cfg();
    w.step_sigma = 0.5; w.wander_period = 8; w.regime_rate = 0;
    mplb_wl wl;
    mplb_err err = {0};
    assert_int_equal(mplb_wl_init(&wl, &w, &m, 1, 1, seed, &err), 0);
    double *p0 = malloc(E * sizeof *p0), *p1 = malloc(E * sizeof *p1), *r0 = malloc(E * sizeof *r0),
           *r1 = malloc(E * sizeof *r1);
    const double *base = wl.pop + (size_t)1 * E;   /* layer 1 of family 0 */
    mplb_wl_cell_pop(&wl, 2, 1, 0, p0);
    mplb_wl_cell_pop(&wl, 3, 1, 0, p1);
    for (int e = 0; e < E; e++) { r0[e] = p0[e] / base[e]; r1[e] = p1[e] / base[e]; }
    assert_true(fabs(pearson_log(r0, r1, E) - cos(3.14159265358979323846 / 16)) < 0.05);
    /* 8 steps apart: the next knot, independent of the first */
    mplb_wl_cell_pop(&wl, 0, 1, 0, p0);
    mplb_wl_cell_pop(&wl, 8, 1, 0, p1);
    for (int e = 0; e < E; e++) { r0[e] = p0[e] / base[e]; r1[e] = p1[e] / base[e]; }
    assert_true(fabs(pearson_log(r0, r1, E)) < 0.06);
    /* the fluctuation's spread is sigma */
    double s = 0, s2 = 0;
    for (int e = 0; e < E; e++) { double x = log(r0[e]); s += x; s2 += x * x; }
    assert_close(sqrt(s2 / E - (s / E) * (s / E)), 0.5, 0.06);
    mplb_wl_free(&wl);
    /* regime_rate 1: every step independent; 0 and no wander: frozen */
    w.wander_period = 0; w.regime_rate = 1;
    assert_int_equal(mplb_wl_init(&wl, &w, &m, 1, 1, seed, &err), 0);
    mplb_wl_cell_pop(&wl, 5, 0, 0, p0);
    mplb_wl_cell_pop(&wl, 6, 0, 0, p1);
    for (int e = 0; e < E; e++) { r0[e] = p0[e] / wl.pop[e]; r1[e] = p1[e] / wl.pop[e]; }
    assert_true(fabs(pearson_log(r0, r1, E)) < 0.06);
    mplb_wl_free(&wl);
    w.regime_rate = 0;
    assert_int_equal(mplb_wl_init(&wl, &w, &m, 1, 1, seed, &err), 0);
    mplb_wl_cell_pop(&wl, 5, 0, 0, p0);
    mplb_wl_cell_pop(&wl, 900, 0, 0, p1);
    for (int e = 0; e < E; e++) assert_close(p0[e], p1[e], 1e-12);
    mplb_wl_free(&wl);
    free(p0); free(p1); free(r0); free(r1);
}

/* Regime changes are shared by all layers and happen at rate q: the share of
 * steps whose fluctuation differs from the step before is q. */
static void test_regime_rate(void **state) {
    (void)state;
    uint64_t seed = test_seed();
    int E = 16, n = 4000, changes = 0;
    mplb_model m = {.layers = 2, .experts = E, .top_k = 2};
    mplb_workload_cfg w = base_cfg();
    w.step_sigma = 0.5; w.regime_rate = 0.1;
    mplb_wl wl;
    mplb_err err = {0};
    assert_int_equal(mplb_wl_init(&wl, &w, &m, 1, 1, seed, &err), 0);
    double a[16], b[16], c[16], d[16];
    mplb_wl_cell_pop(&wl, 0, 0, 0, a);
    mplb_wl_cell_pop(&wl, 0, 1, 0, c);
    for (int s = 1; s < n; s++) {
        mplb_wl_cell_pop(&wl, s, 0, 0, b);
        mplb_wl_cell_pop(&wl, s, 1, 0, d);
        int ch0 = memcmp(a, b, sizeof a) != 0, ch1 = memcmp(c, d, sizeof c) != 0;
        assert_int_equal(ch0, ch1);   /* both layers change together */
        changes += ch0;
        memcpy(a, b, sizeof a);
        memcpy(c, d, sizeof c);
    }
    /* binomial(3999, 0.1): sd 19 */
    assert_true(abs(changes - 400) < 100);
    mplb_wl_free(&wl);
}

/* workload = "W.lua" and { from = "W.lua", steps = ... }; bad rows named. */
static void test_workload_file(void **state) {
    (void)state;
    write_text("wf_w.lua", "return { steps = 3, tokens = 64, regime_rate = 0.5, layer_sigma = {0.1, 0.2},\n"
                           "  popularity = { {1, 3}, {2, 2} } }\n");
    write_text("wf_exp.lua", "return { model = { layers = 2, experts = 2, top_k = 1, hidden = 8, ffn = 8 },\n"
                             "  cluster = { gpus_per_node = 2 }, workload = \"wf_w.lua\", policies = { \"baseline\" } }\n");
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load("wf_exp.lua", NULL, 0, &x, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(x.workload.steps, 3);
    assert_int_equal(x.workload.pop_layers, 2);
    assert_close(x.workload.popularity[1], 0.75, 1e-12);
    assert_close(x.workload.layer_sigma[1], 0.2, 0);
    assert_close(x.workload.regime_rate, 0.5, 0);
    assert_contains(x.resolved, "popularity");   /* the run file keeps the numbers */
    mplb_exp_free(&x);
    write_text("wf_exp2.lua", "return { model = { layers = 2, experts = 2, top_k = 1, hidden = 8, ffn = 8 },\n"
                              "  cluster = { gpus_per_node = 2 }, workload = { from = \"wf_w.lua\", steps = 7 },\n"
                              "  policies = { \"baseline\" } }\n");
    assert_int_equal(mplb_exp_load("wf_exp2.lua", NULL, 0, &x, &err), 0);
    assert_int_equal(x.workload.steps, 7);
    assert_int_equal(x.workload.tokens, 64);
    mplb_exp_free(&x);
    write_text("wf_bad.lua", "return { steps = 3, tokens = 64,\n  layer_sigma = {0.1},\n  popularity = { {1, 3}, {2, -1} } }\n");
    write_text("wf_exp3.lua", "return { model = { layers = 2, experts = 2, top_k = 1, hidden = 8, ffn = 8 },\n"
                              "  cluster = { gpus_per_node = 2 }, workload = \"wf_bad.lua\", policies = { \"baseline\" } }\n");
    assert_int_not_equal(mplb_exp_load("wf_exp3.lua", NULL, 0, &x, &err), 0);
    assert_contains(err.msg, "wf_bad.lua");
    assert_contains(err.msg, "workload.popularity[2]");
    assert_contains(err.msg, "element 2");
    write_text("wf_bad.lua", "return { steps = 3, tokens = 64,\n  layer_sigma = {0.1},\n  popularity = { {1, 3}, {2, 1} } }\n");
    assert_int_not_equal(mplb_exp_load("wf_exp3.lua", NULL, 0, &x, &err), 0);
    assert_contains(err.msg, "field workload.layer_sigma");
    assert_contains(err.msg, "(workload from wf_bad.lua)");
    /* a model with other experts than the rows */
    write_text("wf_exp4.lua", "return { model = { layers = 2, experts = 4, top_k = 1, hidden = 8, ffn = 8 },\n"
                              "  cluster = { gpus_per_node = 2 }, workload = \"wf_w.lua\", policies = { \"baseline\" } }\n");
    assert_int_equal(mplb_exp_load("wf_exp4.lua", NULL, 0, &x, &err), 0);
    mplb_wl wl;
    assert_int_not_equal(mplb_wl_init(&wl, &x.workload, &x.model, 2, 2, 1, &err), 0);
    assert_contains(err.msg, "workload.popularity");
    mplb_exp_free(&x);
}

/* Fit a trace the generator wrote from parameters the fit does not see:
 * the model's expected statistics match the trace's, and the regime rate
 * comes back near the truth (every step a new regime vs one in ten). */
static void test_fit_recovers(void **state) {
    (void)state;
    uint64_t seed = test_seed();
    mplb_model m = {.layers = 2, .experts = 32, .top_k = 4};
    snprintf(m.name, sizeof m.name, "t");
    for (int frozen = 0; frozen < 2; frozen++) {
        mplb_workload_cfg w = base_cfg();
        w.tokens = 2048; w.pop_sigma = 0.6; w.step_sigma = 0.5; w.regime_rate = frozen ? 0.1 : 1.0;
        mplb_trace t;
        mplb_err err = {0};
        /* 200 steps: ~20 regime changes at rate 0.1, so the rate is known to ~25% */
        assert_int_equal(mplb_wl_to_trace(&w, &m, 200, seed + frozen, &t, &err), 0);
        snprintf(t.path, sizeof t.path, "generated");
        mplb_wl_fit f;
        assert_int_equal(mplb_wl_fit_trace(&t, 8, &f, &err), 0);
        for (int l = 0; l < m.layers; l++)
            for (int s = 0; s < MPLB_FIT_NSTAT; s++)
                if (!(fabs(f.model[s][l] - f.real[s][l]) <= 0.1 * f.real[s][l] + 0.02))
                    fail_msg("layer %d stat %d: model %g real %g", l, s, f.model[s][l], f.real[s][l]);
        if (frozen ? (f.regime_rate > 0.25 || f.regime_rate < 0.03) : f.regime_rate < 0.6)
            fail_msg("true regime rate %g, fitted %g (lag-1 autocorrelation %g)", w.regime_rate, f.regime_rate, f.rho1);
        assert_int_equal(f.tokens, 2048);
        mplb_wl_fit_free(&f);
        mplb_trace_free(&t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wander_and_regimes),
        cmocka_unit_test(test_regime_rate),
        cmocka_unit_test(test_workload_file),
        cmocka_unit_test(test_fit_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
