/* mplb_sensitivity: each moved run equals an independent run with that one
 * profile value changed; the band holds the nominal and every moved speedup;
 * the flags follow from the numbers; /sensitivity lands in the run file. */
#include <math.h>
#include <time.h>
#include <hdf5.h>
#include "testutil.h"

static const char *exp_text =
    "return { model = { layers = 2, experts = 16, top_k = 2, hidden = 512, ffn = 256 },\n"
    "  cluster = { nodes = 1, gpus_per_node = 4, profile = 'h100' },\n"
    "  workload = { steps = 2, tokens = 4096, zipf = 1.0, vision_frac = 0.5 },\n"
    "  policies = { 'baseline', { 'static', prec = 'fp8_e4m3' }, { 'threshold', low = 'nvfp4', tau = 1.1, min_tokens = 0 } },\n"
    "  seed = 3 }\n";

static void test_sensitivity_band(void **st) {
    (void)st;
    write_text("sens.lua", exp_text);
    mplb_exp x;
    mplb_err err = {0};
    char base[MPLB_PATH_MAX];
    snprintf(base, sizeof base, "%s", MPLB_SRC "/profiles");
    if (mplb_exp_load_ex("sens.lua", MPLB_SRC "/experiments", NULL, 0, &x, &err) < 0) fail_msg("%s", err.msg);
    mplb_run_opts o = {.out_path = "sens.h5", .force = 1};
    mplb_run_summary sum;
    if (mplb_run(&x, &o, &sum, &err) < 0) fail_msg("%s", err.msg);
    mplb_sens s;
    if (mplb_sensitivity(&x, &o, &sum, &s, &err) < 0) fail_msg("%s", err.msg);
    assert_int_equal(s.n_policies, 3);
    assert_true(s.n_params >= 8);
    /* an independent run for two (parameter, end) pairs */
    mplb_profile hw;
    if (mplb_profile_load("h100", base, &hw, &err) < 0) fail_msg("%s", err.msg);
    mplb_param ps[MPLB_PARAMS_MAX];
    int np = mplb_profile_params(&hw, ps);
    int checked = 0;
    for (int k = 0; k < s.n_params && checked < 2; k++) {
        if (strcmp(s.param[k], "conv_eff") && strcmp(s.param[k], "hbm_eff")) continue;
        for (int j = 0; j < np; j++) {
            if (strcmp(ps[j].name, s.param[k])) continue;
            mplb_profile moved = hw;
            double *v = (double *)((char *)&moved + ((char *)ps[j].value - (char *)&hw));
            *v = ps[j].prov->hi;
            mplb_run_opts o2 = {.hw = &moved};
            mplb_run_summary r2;
            if (mplb_run(&x, &o2, &r2, &err) < 0) fail_msg("%s", err.msg);
            for (int p = 0; p < 3; p++)
                assert_close(s.speedup[((size_t)k * 2 + 1) * 3 + p], r2.pol[p].sum_t_baseline / r2.pol[p].sum_t_layer, 1e-12);
            mplb_run_summary_free(&r2);
            checked++;
        }
    }
    assert_int_equal(checked, 2);
    for (int p = 0; p < 3; p++) {
        assert_true(s.band_lo[p] <= s.nominal[p] && s.nominal[p] <= s.band_hi[p]);
        for (int i = 0; i < s.n_params * 2; i++) {
            double v = s.speedup[(size_t)i * 3 + p];
            assert_true(v >= s.band_lo[p] - 1e-15 && v <= s.band_hi[p] + 1e-15);
        }
        assert_int_equal(s.crosses_one[p], s.nominal[p] != 1.0 && s.band_lo[p] < 1.0 && s.band_hi[p] > 1.0);
    }
    assert_close(s.nominal[0], 1.0, 0);   /* the baseline against itself */
    /* the file gets /sensitivity with the band */
    if (mplb_sens_write("sens.h5", &s, &err) < 0) fail_msg("%s", err.msg);
    hid_t f = H5Fopen("sens.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "sensitivity/band", H5P_DEFAULT);
    assert_true(d >= 0);
    double band[9];
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, band) >= 0);
    for (int p = 0; p < 3; p++) {
        assert_close(band[p * 3], s.nominal[p], 0);
        assert_close(band[p * 3 + 1], s.band_lo[p], 0);
        assert_close(band[p * 3 + 2], s.band_hi[p], 0);
    }
    H5Dclose(d);
    H5Fclose(f);
    mplb_sens_free(&s);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sensitivity_band),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
