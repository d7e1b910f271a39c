/* EP dispatch/combine on the local transport against a reference MoE layer
 * computed without dispatch: 1..4 ranks, a rank with no tokens, an expert no
 * token picks, E not divisible by R, a replicated expert, bf16 and fp8
 * activations (quantized during the pack). */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "dispatch_common.h"

static double rel_diff(const float *a, const float *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; se += d * d; sr += (double)b[i] * b[i]; }
    return sr > 0 ? sqrt(se / sr) : sqrt(se);
}

static void check_case(int R, int E, int empty, int replica, mplb_prec act, uint64_t seed) {
    ep_case c;
    assert_int_equal(ep_case_init(&c, R, E, 2, seed, empty, replica), 0);
    mplb_ep_rank ranks[8];
    ep_case_ranks(&c, ranks);
    mplb_ep_stats st = {0};
    mplb_err err = {0};
    int rc = mplb_ep_layer_local(R, &c.pl, c.d, c.k, c.experts, act, ranks, &st, &err);
    if (rc) fail_msg("%s", err.msg);
    for (int r = 0; r < R; r++) {
        size_t n = (size_t)c.tokens[r] * c.d;
        float *ref = malloc((n + 1) * sizeof *ref);
        assert_int_equal(mplb_moe_reference(c.tokens[r], c.d, c.k, c.x[r], c.ids[r], c.gates[r], c.experts, act, ref, &err), 0);
        /* the same values through the same kernels; only summation order and
         * expert batch sizes (BLAS blocking) differ, in float32: differences of
         * a few ulps of the partial sums, far below any routing mistake (O(1)) */
        double rd = rel_diff(c.y[r], ref, n);
        if (!(rd < 1e-4)) fail_msg("R=%d E=%d rank %d (%lld tokens): rel diff %.3g vs reference", R, E, r,
                                   (long long)c.tokens[r], rd);
        free(ref);
    }
    /* a token goes once to each rank holding its experts, not once per expert */
    size_t copies = 0;
    for (int r = 0; r < R; r++) copies += (size_t)c.tokens[r] * c.k;
    assert_true(st.rows_sent <= copies);
    ep_case_free(&c);
}

static void test_local_against_reference(void **st) {
    (void)st;
    uint64_t seed = test_seed();
    for (int R = 1; R <= 4; R++) {
        check_case(R, 10, -1, -1, MPLB_PREC_BF16, seed + R);
        check_case(R, 10, R - 1, -1, MPLB_PREC_BF16, seed + 10 + R);           /* a rank with no tokens */
        check_case(R, 7, -1, R - 1, MPLB_PREC_BF16, seed + 20 + R);            /* a replica, E=7 */
        check_case(R, 10, -1, -1, MPLB_PREC_FP8_E4M3, seed + 30 + R);          /* quantize in dispatch */
    }
}

static void test_bad_args(void **st) {
    (void)st;
    ep_case c;
    assert_int_equal(ep_case_init(&c, 2, 4, 2, 1, -1, -1), 0);
    mplb_ep_rank ranks[2];
    ep_case_ranks(&c, ranks);
    mplb_ep_stats s = {0};
    mplb_err err = {0};
    assert_int_equal(mplb_ep_layer_local(2, &c.pl, c.d, c.k, c.experts, MPLB_PREC_NVFP4, ranks, &s, &err), MPLB_EINVAL);
    assert_contains(err.msg, "bf16 or fp8_e4m3");
    ep_case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_against_reference),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
