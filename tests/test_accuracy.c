/* accuracy: the output comparison against closed forms (KL of two-token
 * distributions, top-1, perplexity, domains), and the shipped tiny model's
 * forward: the all-bf16 plan reproduces itself exactly (KL 0), quantized
 * plans order as their formats (FP8 below NVFP4), an ablated expert moves
 * the output. The forward against an independent numpy implementation is
 * tests/python/test_moe_forward.py. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "mplb/accuracy.h"

static void test_compare_closed_form(void **st_) {
    (void)st_;
    /* 2 sequences x 3 tokens, vocab 2; position 2 of each has no next token */
    float ref[12], q[12];
    double pr[4] = {0.5, 0.9, 0.2, 0.7}, pq[4] = {0.5, 0.6, 0.3, 0.7};
    int k = 0;
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < 3; t++, k++) {
            double a = t < 2 ? pr[s * 2 + t] : 0.5, b = t < 2 ? pq[s * 2 + t] : 0.9;
            ref[2 * k] = (float)log(a); ref[2 * k + 1] = (float)log(1 - a);
            q[2 * k] = (float)log(b); q[2 * k + 1] = (float)log(1 - b);
        }
    int32_t tok[6] = {0, 0, 1, 1, 1, 0};
    int dom[2] = {1, 0};
    mplb_lm_metrics m[3];
    mplb_err err = {0};
    assert_int_equal(mplb_lm_compare(ref, q, tok, dom, 2, 2, 3, 2, m, &err), 0);
    double kl[4], nr[4], nq[4];
    int next[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4; i++) {
        kl[i] = pr[i] * log(pr[i] / pq[i]) + (1 - pr[i]) * log((1 - pr[i]) / (1 - pq[i]));
        nr[i] = -log(next[i] == 0 ? pr[i] : 1 - pr[i]);
        nq[i] = -log(next[i] == 0 ? pq[i] : 1 - pq[i]);
    }
    /* sequence 0 is domain 1, sequence 1 domain 0 */
    assert_true(fabs(m[1].kl - (kl[0] + kl[1]) / 2) < 1e-6);
    assert_true(fabs(m[0].kl - (kl[2] + kl[3]) / 2) < 1e-6);
    assert_true(fabs(m[2].kl - (kl[0] + kl[1] + kl[2] + kl[3]) / 4) < 1e-6);
    assert_true(fabs(m[2].ppl_ref - exp((nr[0] + nr[1] + nr[2] + nr[3]) / 4)) < 1e-5);
    assert_true(fabs(m[2].ppl_q - exp((nq[0] + nq[1] + nq[2] + nq[3]) / 4)) < 1e-5);
    /* argmax: 0.9 vs 0.6 agree (both token 0); 0.2 vs 0.3 agree (token 1); 0.5 vs 0.5 tie -> 0 both; 0.7 both */
    assert_true(fabs(m[2].top1 - 1.0) < 1e-12);
    assert_int_equal(m[2].n, 4);
    assert_int_equal(m[0].n, 2);
    dom[0] = 2;
    assert_int_equal(mplb_lm_compare(ref, q, tok, dom, 2, 2, 3, 2, m, &err), MPLB_ERANGE);
    assert_non_null(strstr(err.msg, "domain 2"));
}

static void test_tiny_model(void **st_) {
    (void)st_;
    mplb_lm m;
    mplb_err err = {0};
    int rc = mplb_lm_load(MPLB_SRC "/models/tiny-moe", &m, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(m.c.family, MPLB_LM_MIXTRAL);
    int S = 2, T = 32, N = S * T, V = m.c.vocab, L = m.c.layers, E = m.c.experts;
    const char *text = "def f(x):\n    return x + 1\n\nThe for statement is used to iterate over the elements.";
    int32_t *tok = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) tok[i] = (unsigned char)text[i % (int)strlen(text)];
    float *a = malloc(sizeof(float) * N * V), *b = malloc(sizeof(float) * N * V);
    mplb_prec *p = malloc(sizeof(mplb_prec) * L * E);
    mplb_lm_run r;
    assert_int_equal(mplb_lm_run_init(&r, &m, S, T, &err), 0);
    assert_int_equal(mplb_lm_forward(&r, tok, NULL, MPLB_LM_ACTS_MATCHED, a, &err), 0);
    mplb_lm_metrics met[1], m8[1], m4[1], mab[1];
    for (int i = 0; i < L * E; i++) p[i] = MPLB_PREC_BF16;
    assert_int_equal(mplb_lm_forward(&r, tok, p, MPLB_LM_ACTS_MATCHED, b, &err), 0);
    assert_int_equal(mplb_lm_compare(a, b, tok, NULL, 0, S, T, V, met, &err), 0);
    assert_true(met[0].kl == 0 && met[0].top1 == 1 && met[0].ppl_q == met[0].ppl_ref);
    assert_true(met[0].ppl_ref > 1 && met[0].ppl_ref < 64);   /* trained: far below uniform (256) */
    for (int i = 0; i < L * E; i++) p[i] = MPLB_PREC_FP8_E4M3;
    assert_int_equal(mplb_lm_forward(&r, tok, p, MPLB_LM_ACTS_MATCHED, b, &err), 0);
    assert_int_equal(mplb_lm_compare(a, b, tok, NULL, 0, S, T, V, m8, &err), 0);
    for (int i = 0; i < L * E; i++) p[i] = MPLB_PREC_NVFP4;
    assert_int_equal(mplb_lm_forward(&r, tok, p, MPLB_LM_ACTS_MATCHED, b, &err), 0);
    assert_int_equal(mplb_lm_compare(a, b, tok, NULL, 0, S, T, V, m4, &err), 0);
    assert_true(m8[0].kl > 0 && m8[0].kl < m4[0].kl);
    /* ablation: dropping layer 0's busiest expert moves the output */
    assert_int_equal(mplb_lm_begin(&r, tok, &err), 0);
    for (int l = 0; l < L; l++) {
        assert_int_equal(mplb_lm_route(&r, l, &err), 0);
        int busy = 0;
        for (int e = 1; e < E; e++) if (r.counts[e] > r.counts[busy]) busy = e;
        assert_true(r.counts[busy] > 0);
        assert_int_equal(mplb_lm_experts(&r, l, NULL, MPLB_LM_ACTS_MATCHED, l == 0 ? busy : -1, &err), 0);
    }
    assert_int_equal(mplb_lm_logits(&r, b, &err), 0);
    assert_int_equal(mplb_lm_compare(a, b, tok, NULL, 0, S, T, V, mab, &err), 0);
    assert_true(mab[0].kl > 0);
    /* bad inputs */
    tok[5] = V;
    assert_int_equal(mplb_lm_begin(&r, tok, &err), MPLB_ERANGE);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    assert_true(mplb_lm_route(&r, L, &err) < 0);
    mplb_lm_run_free(&r);
    mplb_lm_free(&m);
    free(tok); free(a); free(b); free(p);
    assert_true(mplb_lm_load(MPLB_SRC "/models/no-such-model", &m, &err) < 0);
    assert_non_null(strstr(err.msg, "no-such-model/config.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_closed_form),
        cmocka_unit_test(test_tiny_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
