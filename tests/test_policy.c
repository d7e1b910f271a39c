/* Policy engine: the threshold rule, the sandbox, and checked actions. */
#include <math.h>
#include <time.h>
#include "testutil.h"

typedef struct pfx {
    mplb_placement pl;
    mplb_plan plan;
    double rank_load[8], rank_vision[8];
    int32_t eload[16], evis[16];
    double imp[16];
    mplb_obs obs;
} pfx;

/* 4 ranks, 8 experts (2 per rank), given rank loads. */
static void pfx_init(pfx *f, const double *loads, int64_t tokens, int k) {
    mplb_err err;
    memset(f, 0, sizeof *f);
    assert_int_equal(mplb_placement_init_contiguous(&f->pl, 4, 8, &err), 0);
    assert_int_equal(mplb_plan_init(&f->plan, &f->pl, &err), 0);
    for (int r = 0; r < 4; r++) {
        f->rank_load[r] = loads[r];
        f->rank_vision[r] = loads[r];
        f->eload[2 * r] = (int32_t)loads[r];
    }
    f->obs = (mplb_obs){.step = 0, .layer = 0, .layers = 1, .ranks = 4, .experts = 8, .top_k = k,
                        .nodes = 1, .gpus_per_node = 4, .tokens = tokens, .rank_load = f->rank_load,
                        .rank_vision = f->rank_vision, .expert_load = f->eload, .expert_vision = f->evis,
                        .expert_importance = f->imp, .expert_rank = f->pl.home};
}

static void pfx_free(pfx *f) {
    mplb_placement_free(&f->pl);
    mplb_plan_free(&f->plan);
}

static const char *threshold_path = MPLB_SRC "/policies/threshold.lua";

/* Rank loads 100, 300, 50, 350 with T*k = 800 over 4 ranks: mean 200; tau
 * 1.25 -> cut 250: exactly ranks 2 and 4 (1-based) go low. */
static void test_threshold_exact_ranks(void **st) {
    (void)st;
    double loads[4] = {100, 300, 50, 350};
    pfx f;
    pfx_init(&f, loads, 4000, 1);   /* min_tokens 2048 satisfied; mean = 4000*1/4 = 1000 */
    f.obs.tokens = 400;             /* T*k/R = 400*2/4 = 200 */
    f.obs.top_k = 2;
    mplb_policy *pol;
    mplb_err err = {0};
    int rc = mplb_policy_open(threshold_path, "{tau=1.25, low='nvfp4', min_tokens=0}", NULL, &f.obs, &pol, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(mplb_policy_decide(pol, &f.obs, &f.plan, &err), 0);
    for (int e = 0; e < 8; e++) {
        int r = f.pl.home[e];
        mplb_prec want = (r == 1 || r == 3) ? MPLB_PREC_NVFP4 : MPLB_PREC_BF16;
        assert_int_equal(f.plan.expert_prec[e], want);
    }
    /* A load exactly at the cut stays bf16 (strictly above tau * mean). */
    f.rank_load[0] = 250;
    mplb_plan_reset(&f.plan, &f.pl);
    assert_int_equal(mplb_policy_decide(pol, &f.obs, &f.plan, &err), 0);
    assert_int_equal(f.plan.expert_prec[0], MPLB_PREC_BF16);
    /* Below min_tokens nothing changes. */
    mplb_policy_close(pol);
    rc = mplb_policy_open(threshold_path, "{min_tokens=100000}", NULL, &f.obs, &pol, &err);
    assert_int_equal(rc, 0);
    mplb_plan_reset(&f.plan, &f.pl);
    assert_int_equal(mplb_policy_decide(pol, &f.obs, &f.plan, &err), 0);
    for (int e = 0; e < 8; e++) assert_int_equal(f.plan.expert_prec[e], MPLB_PREC_BF16);
    mplb_policy_close(pol);
    pfx_free(&f);
}

/* Random loads: the policy's choice equals the rule computed here. */
static void test_threshold_random(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed());
    pfx f;
    double loads[4] = {0};
    pfx_init(&f, loads, 1000, 2);
    mplb_policy *pol;
    mplb_err err = {0};
    assert_int_equal(mplb_policy_open(threshold_path, "{tau=1.1, low='fp8_e4m3', min_tokens=0, vision_share=0.5}",
                                      NULL, &f.obs, &pol, &err), 0);
    for (int it = 0; it < 500; it++) {
        double sum = 0;
        for (int r = 0; r < 4; r++) {
            f.rank_load[r] = (double)(mplb_rng_next(&rng) % 1000);
            f.rank_vision[r] = floor(f.rank_load[r] * mplb_rng_uniform(&rng));
            sum += f.rank_load[r];
        }
        f.obs.tokens = (int64_t)(sum / 2);
        double mean = (double)f.obs.tokens * 2 / 4;
        mplb_plan_reset(&f.plan, &f.pl);
        assert_int_equal(mplb_policy_decide(pol, &f.obs, &f.plan, &err), 0);
        for (int e = 0; e < 8; e++) {
            int r = f.pl.home[e];
            int low = f.rank_load[r] > 1.1 * mean && f.rank_vision[r] >= 0.5 * f.rank_load[r];
            assert_int_equal(f.plan.expert_prec[e], low ? MPLB_PREC_FP8_E4M3 : MPLB_PREC_BF16);
        }
    }
    mplb_policy_close(pol);
    pfx_free(&f);
}

typedef struct hostile { const char *src; int code; const char *needle; } hostile;

static void test_hostile_policies(void **st) {
    (void)st;
    const hostile cases[] = {
        {"local P = {}\nfunction P.decide(obs, act)\n  while true do end\nend\nreturn P\n", MPLB_ELIMIT, "instruction limit"},
        {"local P = {}\nfunction P.decide(obs, act)\n  while true do pcall(function() while true do end end) end\nend\nreturn P\n",
         MPLB_ELIMIT, "instruction limit"},
        {"local P = {}\nfunction P.decide(obs, act)\n  local s = string.rep('x', 1 << 30)\nend\nreturn P\n", MPLB_ELIMIT, "memory limit"},
        {"local P = {}\nfunction P.decide(obs, act)\n  local t = {} for i = 1, 1e9 do t[i] = i end\nend\nreturn P\n", MPLB_ELIMIT, "limit"},
        {"local P = {}\nfunction P.decide(obs, act)\n  os.execute('touch pwned')\nend\nreturn P\n", MPLB_EPOLICY, "hostile.lua:3"},
        {"local P = {}\nfunction P.decide(obs, act)\n  io.open('x', 'w')\nend\nreturn P\n", MPLB_EPOLICY, "io"},
        {"local P = {}\nfunction P.decide(obs, act)\n  require('os')\nend\nreturn P\n", MPLB_EPOLICY, "require"},
        {"local P = {}\nfunction P.decide(obs, act)\n  load('return 1')()\nend\nreturn P\n", MPLB_EPOLICY, "load"},
        {"local P = {}\nfunction P.decide(obs, act)\n  act:rank_precision(1, 'fp3')\nend\nreturn P\n", MPLB_EPOLICY,
         "hostile.lua:3: unknown precision 'fp3'"},
        {"local P = {}\nfunction P.decide(obs, act)\n  act:expert_precision(99, 'fp8_e4m3')\nend\nreturn P\n", MPLB_EPOLICY,
         "expert 99 out of range 1..8"},
        {"local P = {}\nfunction P.decide(obs, act)\n  act:rank_precision(0, 'bf16')\nend\nreturn P\n", MPLB_EPOLICY,
         "rank 0 out of range"},
        {"local P = {}\nfunction P.decide(obs, act)\n  act:rank_precision({1, 9}, 'bf16')\nend\nreturn P\n", MPLB_EPOLICY,
         "hostile.lua:3: rank list entry 2: rank 9 out of range 1..4"},
        {"local P = {}\nfunction P.decide(obs, act)\n  act:rank_precision({2, 'x'}, 'bf16')\nend\nreturn P\n", MPLB_EPOLICY,
         "rank list entry 2: rank (not an integer)"},
        {"local P = {}\nfunction P.decide(obs, act)\n  obs.tokens = 5\nend\nreturn P\n", MPLB_EPOLICY, "read-only"},
        {"local P = {}\nfunction P.decide(obs, act)\n  error('boom')\nend\nreturn P\n", MPLB_EPOLICY, "hostile.lua:3: boom"},
    };
    double loads[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text("hostile.lua", cases[i].src);
        pfx f;
        pfx_init(&f, loads, 10, 1);
        mplb_policy *pol;
        mplb_err err = {0};
        mplb_policy_limits lim = {.mem_limit = 8u << 20, .instr_limit = 1000000};
        int rc = mplb_policy_open("hostile.lua", NULL, &lim, &f.obs, &pol, &err);
        if (rc) fail_msg("case %zu: open failed: %s", i, err.msg);
        rc = mplb_policy_decide(pol, &f.obs, &f.plan, &err);
        if (rc != cases[i].code) fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].code, err.msg);
        if (!strstr(err.msg, cases[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needle);
        assert_contains(err.msg, "hostile.lua");
        mplb_policy_close(pol);
        pfx_free(&f);
    }
    FILE *pw = fopen("pwned", "r");
    assert_null(pw);
}

static void test_open_errors(void **st) {
    (void)st;
    double loads[4] = {1, 2, 3, 4};
    pfx f;
    pfx_init(&f, loads, 10, 1);
    mplb_policy *pol;
    mplb_err err = {0};
    write_text("nodecide.lua", "return { params = {} }\n");
    assert_int_equal(mplb_policy_open("nodecide.lua", NULL, NULL, &f.obs, &pol, &err), MPLB_EPOLICY);
    assert_contains(err.msg, "P.decide must be a function");
    write_text("syntax.lua", "local P = {\nreturn P\n");
    assert_true(mplb_policy_open("syntax.lua", NULL, NULL, &f.obs, &pol, &err) < 0);
    assert_contains(err.msg, "syntax.lua:2");
    assert_int_equal(mplb_policy_open(threshold_path, "{taux=1}", NULL, &f.obs, &pol, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "no parameter 'taux'");
    /* globals do not leak between two policy states */
    write_text("g1.lua", "LEAK = 1\nlocal P = {}\nfunction P.decide() end\nreturn P\n");
    write_text("g2.lua", "local P = {}\nfunction P.decide() assert(LEAK == nil, 'leaked') end\nreturn P\n");
    mplb_policy *a, *b;
    assert_int_equal(mplb_policy_open("g1.lua", NULL, NULL, &f.obs, &a, &err), 0);
    assert_int_equal(mplb_policy_open("g2.lua", NULL, NULL, &f.obs, &b, &err), 0);
    assert_int_equal(mplb_policy_decide(b, &f.obs, &f.plan, &err), 0);
    mplb_policy_close(a);
    mplb_policy_close(b);
    pfx_free(&f);
}

/* obs arrays are views: a change in the C array shows without reopening. */

/* A misspelled obs field or act method is an error at the policy's line with
 * the closest name, not a nil that skips a branch or fails lines later. */
static void test_strict_obs_act(void **st) {
    (void)st;
    double loads[4] = {1, 2, 3, 4};
    pfx f;
    pfx_init(&f, loads, 10, 1);
    const struct { const char *body, *needles[3]; } cases[] = {
        {"  if obs.vision_share then act:rank_precision(1, 'nvfp4') end\n", {"typo.lua:3:", "obs has no field 'vision_share'", NULL}},
        {"  local x = obs.rank_loads[1]\n", {"typo.lua:3:", "obs has no field 'rank_loads' (did you mean 'rank_load'?)", NULL}},
        {"  local x = obs.tokenz\n", {"typo.lua:3:", "did you mean 'tokens'?", NULL}},
        {"  act:rank_precison(1, 'nvfp4')\n", {"typo.lua:3:", "act has no method 'rank_precison' (did you mean 'rank_precision'?)", NULL}},
        {"  act:frobnicate(1)\n", {"typo.lua:3:", "act has no method 'frobnicate' (known: dispatch_precision, expert_precision", NULL}},
        {"  local x = obs.expert_load[0]\n", {"typo.lua:3:", "obs.expert_load[0]: index out of range 1..8", NULL}},
        {"  local x = obs[1]\n", {"typo.lua:3:", "obs has no entry 1", NULL}},
        {"  local x = mplb.abov(obs.rank_load, 1)\n", {"typo.lua:3:", "mplb has no function 'abov' (did you mean 'above'?)", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "local P = { params = {} }\nfunction P.decide(obs, act)\n%send\nreturn P\n", cases[i].body);
        write_text("typo.lua", text);
        mplb_policy *pol;
        mplb_err err = {0};
        assert_int_equal(mplb_policy_open("typo.lua", NULL, NULL, &f.obs, &pol, &err), 0);
        assert_true(mplb_policy_decide(pol, &f.obs, &f.plan, &err) < 0);
        for (int k = 0; k < 3 && cases[i].needles[k]; k++)
            if (!strstr(err.msg, cases[i].needles[k])) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needles[k]);
        mplb_policy_close(pol);
    }
    /* every documented field and method still reads */
    write_text("all.lua",
               "local P = { params = {} }\nfunction P.decide(obs, act)\n"
               "  local s = obs.step + obs.layer + obs.layers + obs.ranks + obs.experts + obs.top_k + obs.nodes\n"
               "    + obs.gpus_per_node + obs.tokens + obs.mem_budget + obs.expert_bytes\n"
               "  local a = obs.rank_load[1] + obs.rank_vision[1] + obs.rank_mem[1] + obs.expert_load[1]\n"
               "    + obs.expert_vision[1] + obs.expert_importance[1] + obs.expert_rank[1] + obs.src_load(1, 1)\n"
               "  assert(type(act.rank_precision) == 'function' and type(act.move_tokens) == 'function')\n"
               "end\nreturn P\n");
    mplb_policy *pol;
    mplb_err err = {0};
    assert_int_equal(mplb_policy_open("all.lua", NULL, NULL, &f.obs, &pol, &err), 0);
    if (mplb_policy_decide(pol, &f.obs, &f.plan, &err) < 0) fail_msg("%s", err.msg);
    mplb_policy_close(pol);
    /* unknown params list the known ones; a value of the wrong type is refused */
    assert_int_equal(mplb_policy_open(threshold_path, "{tua=1}", NULL, &f.obs, &pol, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "no parameter 'tua' (did you mean 'tau'? known: kl_budget, low, min_tokens, mode, overload, tau, top_ranks, vision_share)");
    assert_int_equal(mplb_policy_open(threshold_path, "{tau='x'}", NULL, &f.obs, &pol, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "parameter 'tau' expects a number (default 1.25), got string 'x'");
    pfx_free(&f);
}

static void test_obs_zero_copy(void **st) {
    (void)st;
    double loads[4] = {1, 2, 3, 4};
    pfx f;
    pfx_init(&f, loads, 10, 1);
    write_text("view.lua",
               "local P = { params = { want = 0 } }\n"
               "function P.decide(obs, act)\n"
               "  assert(#obs.rank_load == 4 and #obs.expert_rank == 8)\n"
               "  assert(obs.expert_rank[8] == 4, 'expert_rank is 1-based')\n"
               "  assert(obs.rank_load[3] == P.params.want, 'got ' .. tostring(obs.rank_load[3]))\n"
               "  local ok, msg = pcall(function() return obs.rank_load[5] end)\n"
               "  assert(not ok and msg:find('obs.rank_load%[5%]: index out of range 1..4'), msg)\n"
               "end\nreturn P\n");
    mplb_policy *pol;
    mplb_err err = {0};
    assert_int_equal(mplb_policy_open("view.lua", "{want=77}", NULL, &f.obs, &pol, &err), 0);
    f.rank_load[2] = 77;
    int rc = mplb_policy_decide(pol, &f.obs, &f.plan, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_policy_close(pol);
    pfx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_exact_ranks),
        cmocka_unit_test(test_threshold_random),
        cmocka_unit_test(test_hostile_policies),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_obs_zero_copy),
        cmocka_unit_test(test_strict_obs_act),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
