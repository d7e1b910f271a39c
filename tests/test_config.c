/* Experiments and profiles: good files load, bad ones name file, line, field. */
#include <math.h>
#include <time.h>
#include "testutil.h"

static const char *good =
    "return {\n"
    "  model = { layers = 2, experts = 10, top_k = 2, hidden = 64, ffn = 32 },\n"
    "  cluster = { nodes = 1, gpus_per_node = 4, profile = 'h100' },\n"
    "  workload = { steps = 3, tokens = 100, zipf = 1.2 },\n"
    "  policies = { 'baseline', { 'threshold', tau = 1.5 } },\n"
    "  seed = 7,\n"
    "}\n";

static void test_good_experiment(void **st) {
    (void)st;
    write_text("good.lua", good);
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load("good.lua", NULL, 0, &x, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(x.model.experts, 10);
    assert_int_equal(x.cluster.gpus_per_node, 4);
    assert_int_equal(x.workload.steps, 3);
    assert_close(x.workload.zipf, 1.2, 0);
    assert_int_equal(x.n_policies, 2);
    assert_string_equal(x.policies[1].name, "threshold");
    /* the given params, then every default the policy kept */
    assert_string_equal(x.policies[1].label,
                        "threshold(tau=1.5; kl_budget=-1,low=nvfp4,min_tokens=2048,mode=online,overload=factor,top_ranks=1,vision_share=0.0)");
    assert_string_equal(x.policies[0].label, "baseline");
    assert_contains(x.policies[1].path, "policies/threshold.lua");
    assert_int_equal((int)x.seed, 7);
    assert_non_null(x.resolved);
    mplb_exp_free(&x);
}

static void test_presets_and_set(void **st) {
    (void)st;
    write_text("preset.lua",
               "return { model = 'deepseek-v3', cluster = { gpus_per_node = 8 },\n"
               "  workload = { steps = 1, tokens = 16 }, policies = { 'baseline' } }\n");
    const char *sets[] = {"workload.tokens=4096", "cluster.profile=b200"};
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load("preset.lua", sets, 2, &x, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(x.model.experts, 256);
    assert_int_equal(x.model.hidden, 7168);
    assert_int_equal(x.model.layers, 58);
    assert_int_equal((int)x.workload.tokens, 4096);
    assert_string_equal(x.cluster.profile, "b200");
    mplb_exp_free(&x);
}

typedef struct bad_case { const char *text; const char *needles[3]; } bad_case;

static void test_bad_experiments(void **st) {
    (void)st;
    const bad_case cases[] = {
        {"return {\n cluster = { gpus_per_node = 2 },\n workload = { steps = 1, tokens = 1 },\n policies = {'baseline'} }\n",
         {"bad.lua", "field model", "missing"}},
        {"return {\n model = { layers = 2, experts = 'x', top_k = 1, hidden = 4, ffn = 4 },\n"
         " cluster = { gpus_per_node = 2 },\n workload = { steps = 1, tokens = 1 },\n policies = {'baseline'} }\n",
         {"bad.lua:2", "field model.experts", "expected an integer, got string"}},
        {"return {\n model = 'mixtral-8x7b',\n cluster = { gpus_per_node = 2 },\n"
         " workload = { steps = 1, tokens = 1 },\n policies = {'no_such_policy'} }\n",
         {"bad.lua", "policies[1]", "no_such_policy"}},
        {"return {\n model = 'mixtral-8x7b',\n cluster = { gpus_per_node = 0 },\n"
         " workload = { steps = 1, tokens = 1 },\n policies = {'baseline'} }\n",
         {"bad.lua:3", "cluster.gpus_per_node", "outside"}},
        {"return {\n model = 'mixtral-8x7b',\n cluster = { gpus_per_node = 2 },\n"
         " workload = { steps = 1, tokens = 1, zipf = 'high' },\n policies = {'baseline'} }\n",
         {"bad.lua:4", "workload.zipf", "expected a number"}},
        {"return {\n model = 'mixtral-8x7b',\n cluster = { gpus_per_node = 2 },\n"
         " workload = { steps = 1, tokens = 1 },\n policies = {'baseline'},\n backend = 'gpu' }\n",
         {"bad.lua:6", "backend", "unknown backend"}},
        {"return {\n model = 'mixtral-8x7b'\n cluster = {}\n}\n", {"bad.lua:3", "'}' expected", NULL}},
        {"while true do end\n", {"instruction limit", NULL, NULL}},
        {"return 42\n", {"bad.lua", "must return a table", NULL}},
        {"return { model = 'gpt-5' }\n", {"bad.lua", "unknown model preset 'gpt-5'", NULL}},
        {"os.execute('true')\n", {"bad.lua:1", "os", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("bad.lua", cases[i].text);
        mplb_exp x;
        mplb_err err = {0};
        int rc = mplb_exp_load("bad.lua", NULL, 0, &x, &err);
        if (rc == 0) fail_msg("case %zu loaded but should not", i);
        for (int k = 0; k < 3 && cases[i].needles[k]; k++)
            if (!strstr(err.msg, cases[i].needles[k]))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needles[k]);
    }
    mplb_exp x;
    mplb_err err = {0};
    assert_int_equal(mplb_exp_load("does-not-exist.lua", NULL, 0, &x, &err), MPLB_EIO);
    assert_contains(err.msg, "does-not-exist.lua");
}


/* A misspelled key at any level is an error naming file:line, the key and
 * the closest known one; a key of another block says where it belongs. */
static void test_unknown_keys(void **st) {
    (void)st;
    static const char *base =
        "return {\n"                                                              /* 1 */
        "  model = { layers = 2, experts = 10, top_k = 2, hidden = 64, ffn = 32 },\n" /* 2 */
        "  cluster = { nodes = 1, gpus_per_node = 4 },\n"                         /* 3 */
        "  workload = { steps = 3, tokens = 100 },\n"                             /* 4 */
        "  policies = { 'baseline', { 'threshold', tau = 1.5 } },\n"              /* 5 */
        "  seed = 7,\n"                                                           /* 6 */
        "}\n";
    const struct { const char *from, *to, *needles[4]; } cases[] = {
        {"tokens = 100", "tokens = 100, zipff = 0.8", {"bad.lua:4", "workload.zipff", "unknown key", "did you mean 'zipf'"}},
        {"seed = 7", "sed = 7", {"bad.lua:6", "field sed", "did you mean 'seed'", NULL}},
        {"ffn = 32", "ffn = 32, topk = 2", {"bad.lua:2", "model.topk", "did you mean 'top_k'", NULL}},
        {"nodes = 1,", "node = 1,", {"bad.lua:3", "cluster.node", "did you mean 'nodes'", NULL}},
        {"seed = 7", "steps = 7", {"bad.lua:6", "field steps", "workload.steps", NULL}},
        {"gpus_per_node = 4", "gpus_per_node = 4, frobnicate = 1", {"bad.lua:3", "cluster.frobnicate", "known: nodes gpus_per_node", NULL}},
        {"tau = 1.5", "tua = 1.5", {"bad.lua:5", "policies[2].tua", "no parameter 'tua'", "did you mean 'tau'"}},
        {"tau = 1.5", "frob = 1", {"bad.lua:5", "no parameter 'frob'", "known: kl_budget, low, min_tokens, mode, overload, tau, top_ranks, vision_share", NULL}},
        {"tau = 1.5", "tau = 'high'", {"bad.lua", "parameter 'tau' expects a number (default 1.25), got string 'high'", NULL, NULL}},
        {"tokens = 100", "tokens = {100, 200}", {"bad.lua:4", "workload.tokens", "a sweep axis", NULL}},
        {"'baseline', {", "'baseline', x = 1, {", {"bad.lua:5", "policies", "has a key 'x'", NULL}},
        {"top_k = 2", "top_k = 11", {"bad.lua:2", "model.top_k", "more than model.experts = 10", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048];
        const char *at = strstr(base, cases[i].from);
        assert_non_null(at);
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - base), base, cases[i].to, at + strlen(cases[i].from));
        write_text("bad.lua", text);
        mplb_exp x;
        mplb_err err = {0};
        if (mplb_exp_load("bad.lua", NULL, 0, &x, &err) == 0) fail_msg("case %zu loaded but should not", i);
        for (int k = 0; k < 4 && cases[i].needles[k]; k++)
            if (!strstr(err.msg, cases[i].needles[k])) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needles[k]);
    }
    /* the same through --set: the key is named, with the closest */
    write_text("good.lua", good);
    const char *sets[] = {"workload.zipff=0.8"};
    mplb_exp x;
    mplb_err err = {0};
    assert_int_not_equal(mplb_exp_load("good.lua", sets, 1, &x, &err), 0);
    assert_contains(err.msg, "did you mean 'zipf'");
}

/* A setting another one makes a no-op loads, with a warning naming both. */
static void test_noop_warnings(void **st) {
    (void)st;
    write_text("warn.lua",
               "return { model = 'mixtral-8x7b', cluster = { gpus_per_node = 2 },\n"
               "  workload = { steps = 1, tokens = 64, drift = 0.5, vision_zipf = 2, prefill_every = 1, decode_tokens = 8 },\n"
               "  policies = { 'baseline' } }\n");
    mplb_exp x;
    mplb_err err = {0};
    if (mplb_exp_load("warn.lua", NULL, 0, &x, &err)) fail_msg("%s", err.msg);
    assert_non_null(x.warnings);
    assert_contains(x.warnings, "workload.drift = 0.5 has no effect with workload.families = 1");
    assert_contains(x.warnings, "workload.vision_zipf has no effect with workload.vision_frac = 0");
    assert_contains(x.warnings, "workload.decode_tokens has no effect with workload.prefill_every = 1");
    mplb_exp_free(&x);
    /* a policy's own no-op: threshold's default min_tokens above every batch */
    write_text("good.lua", good);
    if (mplb_exp_load("good.lua", NULL, 0, &x, &err)) fail_msg("%s", err.msg);
    assert_non_null(x.warnings);
    assert_contains(x.warnings, "good.lua: policies[2] (threshold): params.min_tokens = 2048 is above every batch "
                                "(workload.tokens = 100): the policy never acts");
    mplb_exp_free(&x);
    const char *sets[] = {"policies.threshold.min_tokens=0"};
    if (mplb_exp_load("good.lua", sets, 1, &x, &err)) fail_msg("%s", err.msg);
    assert_null(x.warnings);
    mplb_exp_free(&x);
}

/* Every key of the reference loads with its documented default. */
static void test_reference_defaults(void **st) {
    (void)st;
    write_text("good.lua", good);
    mplb_exp x;
    mplb_err err = {0};
    if (mplb_exp_load("good.lua", NULL, 0, &x, &err)) fail_msg("%s", err.msg);
    char *doc = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&doc, &n);
    assert_int_equal(mplb_exp_reference(f), 0);
    fclose(f);
    assert_contains(doc, "| `zipf` | number | (unset: the data-fitted log-normal model) | 0 .. 10 |");
    assert_close(x.workload.zipf, 1.2, 0);
    assert_contains(doc, "| `vision_zipf` | number | `1.5` |");
    assert_close(x.workload.vision_zipf, 1.5, 0);
    assert_contains(doc, "| `drift_period` | integer | `50` |");
    assert_int_equal(x.workload.drift_period, 50);
    assert_contains(doc, "| `profile` | string | `\"h100\"` |");
    assert_string_equal(x.cluster.profile, "h100");
    assert_contains(doc, "| `backend` | string | `\"model\"` | model\\|cpu\\|cuda\\|ep |");
    assert_string_equal(x.backend, "model");
    assert_int_equal(x.cluster.nodes, 1);
    assert_string_equal(x.name, "good");
    free(doc);
    mplb_exp_free(&x);
}

static void test_profiles(void **st) {
    (void)st;
    mplb_profile hw;
    mplb_err err = {0};
    int rc = mplb_profile_load("h100", MPLB_SRC "/experiments", &hw, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_close(hw.peak_tflops[MPLB_PREC_BF16], 989, 0);
    assert_int_equal(hw.compute_as[MPLB_PREC_NVFP4], MPLB_PREC_FP8_E4M3);  /* no FP4 units on Hopper */
    assert_int_equal(hw.compute_as[MPLB_PREC_INT4_G32], MPLB_PREC_BF16);
    rc = mplb_profile_load("b200", MPLB_SRC "/experiments", &hw, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(hw.compute_as[MPLB_PREC_NVFP4], MPLB_PREC_NVFP4);
    assert_close(hw.peak_tflops[MPLB_PREC_NVFP4], 9000, 0);
    assert_close(hw.net_gbps, 50, 0); /* inherited from h100 */

    write_text("neg.lua", "return { inherit = 'h100', hbm_gbps = -1 }\n");
    assert_int_equal(mplb_profile_load("./neg.lua", ".", &hw, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "neg.lua");
    assert_contains(err.msg, "hbm_gbps");
    write_text("miss.lua", "return { peak_tflops = { bf16 = 1 }, nvlink_gbps = 1, net_gbps = 1, conv_eff = 1, memory_gb = 1 }\n");
    assert_int_equal(mplb_profile_load("./miss.lua", ".", &hw, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "miss.lua");
    assert_contains(err.msg, "hbm_gbps");
    write_text("badp.lua", "return { inherit = 'h100', peak_tflops = { fp3 = 1 } }\n");
    assert_int_equal(mplb_profile_load("./badp.lua", ".", &hw, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "peak_tflops.fp3");
}

static void test_prec_names(void **st) {
    (void)st;
    const char *names[] = {"bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "mxfp8", "mxfp4",
                           "nvfp4", "int8", "int4_g32", "int4_g128"};
    for (int i = 0; i < 11; i++) {
        mplb_prec p;
        assert_int_equal(mplb_prec_parse(names[i], &p), 0);
        assert_int_equal((int)p, i);
        assert_string_equal(mplb_prec_name(i), names[i]);
    }
    mplb_prec p;
    assert_int_equal(mplb_prec_parse("fp3", &p), MPLB_EINVAL);
    assert_null(mplb_prec_name(MPLB_PREC_COUNT));
    assert_close(mplb_prec_bits(MPLB_PREC_NVFP4), 4.5, 0);
    assert_close(mplb_prec_bits(MPLB_PREC_MXFP4), 4.25, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_experiment),
        cmocka_unit_test(test_presets_and_set),
        cmocka_unit_test(test_bad_experiments),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_noop_warnings),
        cmocka_unit_test(test_reference_defaults),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_prec_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
