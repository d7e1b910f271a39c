/* mplb_py_run (the flat entry point of the Python binding) against the same
 * experiment through mplb_exp_load + mplb_run: same rows; its argument
 * checks and errors. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "mplb/pyapi.h"

static const char *EXP =
    "return {\n"
    "  model = { layers = 2, experts = 12, top_k = 2, hidden = 256, ffn = 128 },\n"
    "  cluster = { nodes = 1, gpus_per_node = 4, profile = 'h100' },\n"
    "  workload = { steps = 2, tokens = 600, zipf = 1.0 },\n"
    "  policies = { 'baseline', { 'threshold', tau = 1.1, low = 'nvfp4', min_tokens = 0 } },\n"
    "  seed = 5,\n"
    "}\n";

static void test_py_run_equals_run(void **st) {
    (void)st;
    write_text("py.lua", EXP);
    char seed[64];
    snprintf(seed, sizeof seed, "seed=%llu", (unsigned long long)(test_seed() % 1000000));
    const char *sets[] = {"workload.steps=3", seed};
    mplb_err err = {0};
    int rc = mplb_py_run("py.lua", sets, 2, "py.h5", 1, 0, "test", NULL, &err);
    if (rc) fail_msg("%s", err.msg);

    mplb_exp x;
    assert_int_equal(mplb_exp_load("py.lua", sets, 2, &x, &err), 0);
    mplb_run_opts o = {.out_path = "ref.h5", .force = 1, .command = "test"};
    mplb_run_summary sum = {0};
    assert_int_equal(mplb_run(&x, &o, &sum, &err), 0);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);

    mplb_runfile_info a, b;
    assert_int_equal(mplb_runfile_read_arrays("py.h5", &a, &err), 0);
    assert_int_equal(mplb_runfile_read_arrays("ref.h5", &b, &err), 0);
    assert_string_equal(a.status, "complete");
    assert_string_equal(a.command, "test");
    assert_int_equal(a.n_rows, 3 * 2 * 2);
    assert_int_equal(a.n_rows, b.n_rows);
    assert_int_equal(a.seed, b.seed);
    for (int64_t i = 0; i < a.n_rows; i++) {
        assert_int_equal(a.rows[i].step, b.rows[i].step);
        assert_int_equal(a.rows[i].layer, b.rows[i].layer);
        assert_true(a.rows[i].t_layer_us == b.rows[i].t_layer_us);   /* same model, same routing: bit for bit */
        assert_true(a.rows[i].error_proxy == b.rows[i].error_proxy);
    }
    assert_memory_equal(a.expert_load, b.expert_load, (size_t)a.n_rows * (size_t)a.E * sizeof(int32_t));
    assert_memory_equal(a.expert_prec, b.expert_prec, (size_t)a.n_rows * (size_t)a.E);
    mplb_runfile_info_free(&a);
    mplb_runfile_info_free(&b);
}

static void test_py_run_errors(void **st) {
    (void)st;
    write_text("py.lua", EXP);
    mplb_err err = {0};
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, NULL, 0, 0, NULL, NULL, &err), MPLB_EINVAL);
    assert_contains(err.msg, "out_path");
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, "x.h5", 1, 1, NULL, NULL, &err), MPLB_EINVAL);
    assert_contains(err.msg, "exclude");
    assert_int_equal(mplb_py_run("py.lua", NULL, -1, "x.h5", 0, 0, NULL, NULL, &err), MPLB_EINVAL);
    /* the library's own message for a bad setting, naming the field */
    const char *bad[] = {"cluster.profile='no_such_chip'"};
    assert_true(mplb_py_run("py.lua", bad, 1, "x.h5", 1, 0, NULL, NULL, &err) < 0);
    assert_contains(err.msg, "no_such_chip");
    /* an existing file is kept without force */
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, "keep.h5", 1, 0, NULL, NULL, &err), 0);
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, "keep.h5", 0, 0, NULL, NULL, &err), MPLB_EEXISTS);
    assert_string_equal(mplb_py_version(), MPLB_VERSION);
    assert_true(strlen(mplb_py_git_revision()) > 0);
}

static void test_py_run_stop_and_resume(void **st) {
    (void)st;
    write_text("py.lua", EXP);
    mplb_err err = {0};
    volatile sig_atomic_t stop = 1;   /* set before the first layer: nothing runs */
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, "stop.h5", 1, 0, NULL, &stop, &err), 0);
    mplb_runfile_info a;
    assert_int_equal(mplb_runfile_read("stop.h5", &a, &err), 0);
    assert_string_equal(a.status, "interrupted");
    assert_int_equal(a.n_rows, 0);
    mplb_runfile_info_free(&a);
    stop = 0;
    assert_int_equal(mplb_py_run("py.lua", NULL, 0, "stop.h5", 0, 1, NULL, &stop, &err), 0);
    assert_int_equal(mplb_runfile_read("stop.h5", &a, &err), 0);
    assert_string_equal(a.status, "complete");
    assert_int_equal(a.n_rows, 2 * 2 * 2);
    mplb_runfile_info_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_py_run_equals_run),
        cmocka_unit_test(test_py_run_errors),
        cmocka_unit_test(test_py_run_stop_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
