/* The one token-split rule (mplb/split.h) holds the cost model, the executed
 * layer and the dispatch to the same rows: on random routing with random
 * replicas and token moves, the per-slot ranks equal an independent
 * implementation of the documented rule, the per-(expert, rank) rows equal
 * a count of those ranks, the cost model's per-rank loads equal their sums,
 * and an executed layer (a mock device that reports n rows as n us) computes
 * exactly those rows on each rank. */
#include <time.h>
#include "testutil.h"

typedef struct mock { mplb_ffn_ws ws; } mock;

static int mock_forward(void *ctx, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err) {
    (void)e;
    *us = n;
    return mplb_ffn_forward(w, x, n, MPLB_PREC_BF16, y, &((mock *)ctx)->ws, err);
}
static int mock_convert(void *ctx, const float *g, const float *u, const float *dn, int d, int f, mplb_prec p, double *us,
                        mplb_err *err) {
    (void)ctx; (void)g; (void)u; (void)dn; (void)d; (void)f; (void)p; (void)err;
    *us = 0;
    return 0;
}

/* The documented rule, written again: the q-th slot choosing e goes to copy
 * q mod copies; a move takes the first m slots of e on its source, in order. */
static void reference_dests(const mplb_routing *rt, const mplb_plan *plan, int32_t *dest) {
    int R = plan->R, k = rt->top_k;
    int64_t *seen = calloc((size_t)plan->E, sizeof *seen);
    for (int64_t q = 0; q < rt->tokens * k; q++) {
        int e = rt->tok_ids[q];
        dest[q] = plan->placement.ranks[(size_t)e * R + (int)(seen[e]++ % plan->placement.copies[e])];
    }
    for (int i = 0; i < plan->n_moves; i++) {
        const mplb_move *mv = &plan->moves[i];
        int64_t m = (int64_t)(mv->n + 0.5);
        for (int64_t q = 0; q < rt->tokens * k && m > 0; q++)
            if (rt->tok_ids[q] == mv->e && dest[q] == mv->from) { dest[q] = mv->to; m--; }
    }
    free(seen);
}

static void one_case(uint64_t seed) {
    mplb_rng g;
    mplb_rng_seed(&g, seed);
    int R = 2 + (int)(mplb_rng_next(&g) % 5), E = R + (int)(mplb_rng_next(&g) % 9), k = 1 + (int)(mplb_rng_next(&g) % 3);
    if (k > E) k = E;
    int gpn = R % 2 == 0 && mplb_rng_uniform(&g) < 0.5 ? R / 2 : R;
    mplb_err err = {0};
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    assert_int_equal(mplb_placement_init_contiguous(&pl, R, E, &err), 0);
    assert_int_equal(mplb_routing_alloc(&rt, R, E, R / gpn, k, &err), 0);
    int64_t T = 50 + (int64_t)(mplb_rng_next(&g) % 400);
    for (int64_t t = 0; t < T; t++) {
        int ids[8];
        for (int j = 0; j < k; j++) {
            int e, dup;
            do {   /* skewed: expert 0 is hot */
                e = mplb_rng_uniform(&g) < 0.3 ? 0 : (int)(mplb_rng_next(&g) % (uint64_t)E);
                dup = 0;
                for (int q = 0; q < j; q++) dup |= ids[q] == e;
            } while (dup);
            ids[j] = e;
        }
        mplb_routing_add_token(&rt, &pl, gpn, (int)(mplb_rng_next(&g) % (uint64_t)R), 0, ids, NULL);
    }
    assert_int_equal(mplb_plan_init(&plan, &pl, &err), 0);
    /* random replicas */
    for (int i = 0; i < 3; i++) mplb_placement_add(&plan.placement, (int)(mplb_rng_next(&g) % (uint64_t)E),
                                                   (int)(mplb_rng_next(&g) % (uint64_t)R));
    plan.placement_changed = 1;
    /* random moves of part of what the source computes */
    int64_t *rows = calloc((size_t)E * R, sizeof *rows);
    assert_int_equal(mplb_split_rows(&plan, rt.expert_counts, rows, &err), 0);
    for (int i = 0; i < 3; i++) {
        int e = (int)(mplb_rng_next(&g) % (uint64_t)E), from = plan.placement.ranks[(size_t)e * R];
        int to = (int)(mplb_rng_next(&g) % (uint64_t)R);
        int64_t avail = rows[(size_t)e * R + from];
        if (to == from || avail == 0) continue;
        int64_t m = 1 + (int64_t)(mplb_rng_next(&g) % (uint64_t)avail);
        assert_int_equal(mplb_plan_add_move(&plan, e, from, to, (double)m, &err), 0);
        assert_int_equal(mplb_split_rows(&plan, rt.expert_counts, rows, &err), 0);
    }
    size_t nk = (size_t)T * k;
    int32_t *dest = malloc(nk * sizeof *dest), *ref = malloc(nk * sizeof *ref);
    assert_int_equal(mplb_split_dests(&rt, &plan, dest, &err), 0);
    reference_dests(&rt, &plan, ref);
    assert_memory_equal(dest, ref, nk * sizeof *dest);
    /* rows agree with the per-slot ranks */
    int64_t *count = calloc((size_t)E * R, sizeof *count);
    for (size_t q = 0; q < nk; q++) count[(size_t)rt.tok_ids[q] * R + dest[q]]++;
    assert_memory_equal(count, rows, (size_t)E * R * sizeof *rows);
    /* the cost model's per-rank loads */
    mplb_profile hw;
    mplb_model m = {.layers = 1, .experts = E, .top_k = k, .hidden = 32, .ffn = 16};
    assert_int_equal(mplb_profile_load("h100", MPLB_SRC, &hw, &err), 0);
    mplb_cost_result res;
    assert_int_equal(mplb_cost_result_alloc(&res, R, &err), 0);
    if (mplb_cost_eval(&hw, &m, gpn, &rt, &plan, &res, &err) < 0) fail_msg("%s", err.msg);
    /* the executed layer: rows computed on each rank */
    mock md = {0};
    mplb_exec_device dev = {.ctx = &md, .name = "mock", .forward = mock_forward, .convert = mock_convert};
    mplb_exec *ex;
    assert_int_equal(mplb_exec_open(&m, seed, &dev, &ex, &err), 0);
    double *rank_us = calloc((size_t)R, sizeof *rank_us), *conv_us = calloc((size_t)R, sizeof *conv_us);
    mplb_exec_result xr = {rank_us, conv_us, 0};
    if (mplb_exec_layer(ex, 0, 0, &rt, &plan, &xr, &err) < 0) fail_msg("%s", err.msg);
    for (int r = 0; r < R; r++) {
        int64_t want = 0;
        for (int e = 0; e < E; e++) want += rows[(size_t)e * R + r];
        assert_true(res.rank_load[r] == (double)want);
        assert_true(rank_us[r] == (double)want);
    }
    /* a move of more than its source computes is refused */
    int e0 = rt.tok_ids[0], from = dest[0];
    int64_t have = rows[(size_t)e0 * R + from];
    assert_int_equal(mplb_plan_add_move(&plan, e0, from, (from + 1) % R, (double)(have + 5), &err), 0);
    assert_int_equal(mplb_split_rows(&plan, rt.expert_counts, rows, &err), MPLB_EINVAL);
    assert_contains(err.msg, "which computes");
    mplb_exec_close(ex);
    mplb_ffn_ws_free(&md.ws);
    free(rank_us); free(conv_us); free(dest); free(ref); free(count); free(rows);
    mplb_cost_result_free(&res);
    mplb_plan_free(&plan);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
}

static void test_split_agrees(void **st) {
    (void)st;
    uint64_t s = test_seed();
    for (int i = 0; i < 40; i++) one_case(s + (uint64_t)i * 7919);
}

/* Closed form: copy i of n slots over c copies computes n/c + (i < n mod c). */
static void test_share(void **st) {
    (void)st;
    for (int64_t n = 0; n < 50; n++)
        for (int c = 1; c < 7; c++) {
            int64_t sum = 0;
            for (int i = 0; i < c; i++) {
                int64_t want = 0;
                for (int64_t q = 0; q < n; q++) want += q % c == i;
                assert_int_equal(mplb_split_share(n, c, i), want);
                sum += want;
            }
            assert_int_equal(sum, n);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_split_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
