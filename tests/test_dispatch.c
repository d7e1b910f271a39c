/* EP dispatch/combine on the local transport against a reference MoE layer
 * computed without dispatch: 1..6 ranks on one node, one rank per node and
 * two ranks per node (node dedup through proxies, an uneven last node), a
 * rank with no tokens, an expert no token picks, E not divisible by R, a
 * replicated expert, bf16 and fp8 activations (quantized during the pack).
 * The rows sent across and inside nodes are counted against the cost
 * model's dedup (mplb_split_dedup) and an independent count. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "dispatch_common.h"

static double rel_diff(const float *a, const float *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; se += d * d; sr += (double)b[i] * b[i]; }
    return sr > 0 ? sqrt(se / sr) : sqrt(se);
}

/* moved: every slot is computed on a random rank instead of the placement's
 * (dests), as token moves do; every rank has every expert's weights here. */
static void check_case(int R, int gpn, int direct, int E, int k, int empty, int replica, mplb_prec act, uint64_t seed,
                       int moved) {
    ep_case c;
    assert_int_equal(ep_case_init(&c, R, E, k, seed, empty, replica), 0);
    mplb_ep_rank ranks[8];
    ep_case_ranks(&c, ranks);
    int32_t *dests[8] = {0};
    mplb_rng g;
    mplb_rng_seed(&g, seed ^ 0xd1ce);
    for (int r = 0; r < R && moved; r++) {
        dests[r] = malloc((size_t)(c.tokens[r] * k + 1) * sizeof **dests);
        for (int64_t i = 0; i < c.tokens[r] * k; i++) dests[r][i] = (int32_t)(mplb_rng_next(&g) % (uint64_t)R);
        ranks[r].dests = dests[r];
    }
    mplb_ep_stats st = {0};
    mplb_err err = {0};
    mplb_ep_topo topo = {gpn, direct};
    int rc = mplb_ep_layer_local(R, &topo, &c.pl, c.d, c.k, c.experts, act, ranks, &st, &err);
    if (rc) fail_msg("%s", err.msg);
    for (int r = 0; r < R; r++) {
        size_t n = (size_t)c.tokens[r] * c.d;
        float *ref = malloc((n + 1) * sizeof *ref);
        assert_int_equal(mplb_moe_reference(c.tokens[r], c.d, c.k, c.x[r], c.ids[r], c.gates[r], c.experts, act, ref, &err), 0);
        /* The same values through the same kernels; summation order and
         * expert batch sizes (BLAS blocking) differ, in float32: a few ulps.
         * The FFN rounds its intermediate to bf16, so now and then such an
         * ulp flips one intermediate's rounding, moving that token by up
         * to ~1e-3. A routing mistake (a lost or doubled expert, a wrong
         * gate: every gate is >= 4% here) moves a token by several %. */
        int64_t off = 0;
        for (int64_t t = 0; t < c.tokens[r]; t++) {
            double rd = rel_diff(c.y[r] + t * c.d, ref + t * c.d, (size_t)c.d);
            if (!(rd < 1e-2)) fail_msg("R=%d gpn=%d E=%d rank %d token %lld: rel diff %.3g vs reference", R, gpn, E, r,
                                       (long long)t, rd);
            off += rd > 1e-4;
        }
        if (off > 1 + c.tokens[r] / 10)
            fail_msg("R=%d gpn=%d E=%d rank %d: %lld of %lld tokens off by > 1e-4", R, gpn, E, r, (long long)off,
                     (long long)c.tokens[r]);
        free(ref);
    }
    /* a token goes once to each rank holding its experts, not once per
     * expert; on two hops, at most once more to each node's proxy */
    size_t copies = 0;
    for (int r = 0; r < R; r++) copies += (size_t)c.tokens[r] * c.k;
    assert_true(st.rows_sent <= (gpn > 1 && gpn < R && !direct ? 2 : 1) * copies);
    if (moved && (gpn <= 1 || gpn >= R || direct)) {   /* one hop: a row per token and other rank it names */
        size_t want = 0;
        for (int r = 0; r < R; r++)
            for (int64_t t = 0; t < c.tokens[r]; t++) {
                uint64_t seen = 0;
                for (int j = 0; j < k; j++) seen |= 1ull << dests[r][t * k + j];
                seen &= ~(1ull << r);
                want += (size_t)__builtin_popcountll(seen);
            }
        assert_int_equal(st.rows_sent, want);
    }
    for (int r = 0; r < R; r++) free(dests[r]);
    ep_case_free(&c);
}

static void test_local_against_reference(void **st) {
    (void)st;
    uint64_t seed = test_seed();
    for (int R = 1; R <= 6; R++)
        for (int gpn = 0; gpn <= 2; gpn++) {   /* one node, a rank per node, two per node */
            uint64_t sd = seed + 100 * R + 1000 * gpn;
            check_case(R, gpn, 0, 10, 2, -1, -1, MPLB_PREC_BF16, sd, 0);
            check_case(R, gpn, 0, 10, 2, R - 1, -1, MPLB_PREC_BF16, sd + 1, 0);       /* a rank with no tokens */
            check_case(R, gpn, 0, 7, 3, -1, R - 1, MPLB_PREC_BF16, sd + 2, 0);        /* a replica, E=7 */
            check_case(R, gpn, 0, 10, 4, -1, -1, MPLB_PREC_FP8_E4M3, sd + 3, 0);      /* quantize in dispatch */
            check_case(R, gpn, 1, 10, 4, -1, R - 1, MPLB_PREC_FP8_E4M3, sd + 4, 0);   /* no node dedup */
            check_case(R, gpn, 0, 10, 4, R - 1, -1, MPLB_PREC_FP8_E4M3, sd + 5, 1);   /* tokens moved anywhere */
        }
}

/* Rows across nodes equal the cost model's per-node dedup (replicas split
 * by the same rule); rows inside nodes equal an independent count of what
 * the proxies must forward, with replicas assigned here independently: the
 * q-th slot of the step choosing an expert goes to its copy q mod copies. */
static void check_counts(int R, int gpn, int direct, int E, int k, uint64_t seed) {
    ep_case c;
    assert_int_equal(ep_case_init(&c, R, E, k, seed, -1, R - 1), 0);   /* expert 0 also on the last rank */
    mplb_ep_rank ranks[8];
    ep_case_ranks(&c, ranks);
    int occ[64] = {0};   /* slots of each expert so far, step order */
    mplb_ep_stats st = {0};
    mplb_err err = {0};
    mplb_ep_topo topo = {gpn, direct};
    if (mplb_ep_layer_local(R, &topo, &c.pl, c.d, c.k, c.experts, MPLB_PREC_BF16, ranks, &st, &err)) fail_msg("%s", err.msg);
    int g = gpn <= 0 || gpn > R ? R : gpn, nodes = (R + g - 1) / g;
    mplb_routing rt;
    assert_int_equal(mplb_routing_alloc(&rt, R, E, nodes, k, &err), 0);
    size_t intra = 0;
    for (int s = 0; s < R; s++)
        for (int64_t t = 0; t < c.tokens[s]; t++) {
            const int32_t *ids = c.ids[s] + t * k;
            int idv[64];
            for (int j = 0; j < k; j++) idv[j] = ids[j];
            mplb_routing_add_token(&rt, &c.pl, g, s, 0, idv, NULL);
            /* ranks reached, as a bit set; on two hops a node's rows start at the proxy */
            uint64_t reach = 0;
            for (int j = 0; j < k; j++) reach |= 1ull << c.pl.ranks[ids[j] * R + occ[ids[j]]++ % c.pl.copies[ids[j]]];
            for (int d = 0; d < R; d++) {
                if (!(reach >> d & 1)) continue;
                int from = g > 1 && g < R && !direct ? mplb_ep_proxy(R, g, s, d / g) : s;   /* who hands d its row */
                intra += d != from && d / g == from / g;
            }
        }
    int32_t *to_rank = calloc((size_t)R * R, sizeof *to_rank), *to_node = calloc((size_t)R * nodes, sizeof *to_node);
    mplb_plan plan;
    assert_int_equal(mplb_plan_init(&plan, &c.pl, &err), 0);
    int32_t *dest = malloc(((size_t)rt.tokens * k + 1) * sizeof *dest);
    assert_int_equal(mplb_split_dests(&rt, &plan, dest, &err), 0);
    mplb_split_dedup(&rt, dest, g, to_rank, to_node);
    free(dest);
    mplb_plan_free(&plan);
    /* across nodes: once per node (the model's to_node), or with direct
     * sends once per rank of another node (to_rank) */
    size_t inter = 0, inter_direct = 0;
    for (int s = 0; s < R; s++) {
        for (int n = 0; n < nodes; n++)
            if (n != s / g) inter += (size_t)to_node[(size_t)s * nodes + n];
        for (int d = 0; d < R; d++)
            if (d / g != s / g) inter_direct += (size_t)to_rank[(size_t)s * R + d];
    }
    if (g == 1) assert_int_equal(inter, inter_direct);   /* a rank per node: node dedup is rank dedup */
    if (direct) inter = inter_direct;
    if (st.rows_inter != inter || st.rows_intra != intra)
        fail_msg("R=%d gpn=%d: rows across nodes %zu (model %zu), inside %zu (expected %zu)", R, gpn, st.rows_inter, inter,
                 st.rows_intra, intra);
    assert_int_equal(st.rows_sent, st.rows_inter + st.rows_intra);
    free(to_rank);
    free(to_node);
    mplb_routing_free(&rt);
    ep_case_free(&c);
}

static void test_node_dedup_counts(void **st) {
    (void)st;
    uint64_t seed = test_seed();
    for (int R = 1; R <= 8; R++)
        for (int gpn = 1; gpn <= 4; gpn++)
            for (int direct = 0; direct <= 1; direct++) check_counts(R, gpn, direct, 16, 4, seed + 10 * R + gpn);
}

static void test_bad_args(void **st) {
    (void)st;
    ep_case c;
    assert_int_equal(ep_case_init(&c, 2, 4, 2, 1, -1, -1), 0);
    mplb_ep_rank ranks[2];
    ep_case_ranks(&c, ranks);
    mplb_ep_stats s = {0};
    mplb_err err = {0};
    assert_int_equal(mplb_ep_layer_local(2, NULL, &c.pl, c.d, c.k, c.experts, MPLB_PREC_NVFP4, ranks, &s, &err), MPLB_EINVAL);
    assert_contains(err.msg, "bf16 or fp8_e4m3");
    /* a slot sent to a rank that does not exist */
    int32_t *bad = calloc((size_t)c.tokens[1] * c.k + 1, sizeof *bad);
    bad[c.tokens[1] * c.k - 1] = 2;
    ranks[1].dests = bad;
    assert_int_equal(mplb_ep_layer_local(2, NULL, &c.pl, c.d, c.k, c.experts, MPLB_PREC_BF16, ranks, &s, &err), MPLB_EINVAL);
    assert_contains(err.msg, "rank 2 of 2");
    /* a token moved to a rank that was not given the expert's weights */
    bad[c.tokens[1] * c.k - 1] = 0;
    int e = c.ids[1][c.tokens[1] * c.k - 1];
    mplb_expert_w keep = c.experts[e];
    memset(&c.experts[e], 0, sizeof keep);
    assert_int_equal(mplb_ep_layer_local(2, NULL, &c.pl, c.d, c.k, c.experts, MPLB_PREC_BF16, ranks, &s, &err), MPLB_EINVAL);
    assert_contains(err.msg, "but not its weights");
    c.experts[e] = keep;
    free(bad);
    ep_case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_against_reference),
        cmocka_unit_test(test_node_dedup_counts),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
