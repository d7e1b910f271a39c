/* Issue #18's sandbox findings (2, 3, 10, 11), one regression each: nothing a
 * policy, experiment or --set value does gets past the limits, crashes the
 * process, or is priced instead of refused. Every case also bounds its own
 * time: a regression shows as a failure, not a hung suite. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "lsandbox.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 4 ranks, 8 experts (2 per rank), 100 tokens per expert. */
typedef struct pfx {
    mplb_placement pl;
    mplb_plan plan;
    double rank_load[4], rank_vision[4];
    int32_t eload[8], evis[8];
    double imp[8];
    mplb_obs obs;
} pfx;

static void pfx_init(pfx *f) {
    mplb_err err;
    memset(f, 0, sizeof *f);
    assert_int_equal(mplb_placement_init_contiguous(&f->pl, 4, 8, &err), 0);
    assert_int_equal(mplb_plan_init(&f->plan, &f->pl, &err), 0);
    for (int e = 0; e < 8; e++) f->eload[e] = 100;
    for (int r = 0; r < 4; r++) f->rank_load[r] = 200;
    f->obs = (mplb_obs){.layers = 1, .ranks = 4, .experts = 8, .top_k = 1, .nodes = 1, .gpus_per_node = 4,
                        .tokens = 800, .rank_load = f->rank_load, .rank_vision = f->rank_vision,
                        .expert_load = f->eload, .expert_vision = f->evis, .expert_importance = f->imp,
                        .expert_rank = f->pl.home};
}

static void pfx_free(pfx *f) {
    mplb_placement_free(&f->pl);
    mplb_plan_free(&f->plan);
}

/* Open a policy whose decide body is `body`; return decide's result code. */
static int run_decide(const char *name, const char *body, mplb_err *err, double *secs) {
    char path[64], src[4096];
    snprintf(path, sizeof path, "sb_%s.lua", name);
    snprintf(src, sizeof src, "local P = {}\nfunction P.decide(obs, act)\n%s\nend\nreturn P\n", body);
    write_text(path, src);
    pfx f;
    pfx_init(&f);
    mplb_policy *pol;
    mplb_policy_limits lim = {.instr_limit = 2000000};
    double t0 = now_s();
    int rc = mplb_policy_open(path, NULL, &lim, &f.obs, &pol, err);
    if (rc == 0) {
        rc = mplb_policy_decide(pol, &f.obs, &f.plan, err);
        mplb_policy_close(pol);   /* lua_close runs no finalizer loop either */
    }
    if (secs) *secs = now_s() - t0;
    pfx_free(&f);
    return rc;
}

static void expect_refused(const char *name, const char *body, const char *needle) {
    mplb_err err = {0};
    double secs;
    int rc = run_decide(name, body, &err, &secs);
    printf("# %s: rc %d in %.2f s: %s\n", name, rc, secs, err.msg);
    assert_true(rc < 0);
    assert_contains(err.msg, needle);
    assert_true(secs < 10);
}

static void test_backtracking_pattern(void **st) {
    (void)st;
    expect_refused("pattern", "  string.find(string.rep('a', 5000), '.-.-.-.-.-.-x')", "sb_pattern.lua:3:");
    expect_refused("pattern_method", "  local s = string.rep('a', 5000)\n  s:match('(.-)(.-)(.-)(.-)x')", "pattern");
    expect_refused("gmatch", "  for w in string.rep('ab', 4000):gmatch('.-.-.-b') do end", "pattern");
    /* ordinary use stays allowed, and plain find is never refused */
    mplb_err err = {0};
    assert_int_equal(run_decide("pattern_ok", "  assert(('rank_12'):match('^(%a+)_(%d+)$') == 'rank')\n"
                                "  assert(string.rep('a', 100000):find('.-.-x', 1, true) == nil)", &err, NULL), 0);
}

static void test_xpcall_handler_counted(void **st) {
    (void)st;
    expect_refused("xpcall", "  xpcall(function() while true do end end, function(e) while true do end end)",
                   "instruction limit");
    expect_refused("xpcall_err", "  xpcall(function() error('x') end, function(e) while true do end end)",
                   "instruction limit");
    mplb_err err = {0};
    assert_int_equal(run_decide("xpcall_ok", "  local ok, a, b = xpcall(function(x) return x, 2 end, print, 1)\n"
                                "  assert(ok == true and a == 1 and b == 2)\n"
                                "  local ok2, m = xpcall(function() error('boom', 0) end, function(e) return 'h:' .. e end)\n"
                                "  assert(ok2 == false and m == 'h:boom')", &err, NULL), 0);
}

static void test_gc_refused(void **st) {
    (void)st;
    expect_refused("gc", "  setmetatable({}, {__gc = function() while true do end end})\n  collectgarbage()",
                   "__gc finalizers are not allowed");
    mplb_err err = {0};
    assert_int_equal(run_decide("mt_ok", "  local t = setmetatable({}, {__index = function() return 1 end})\n"
                                "  assert(t.x == 1)", &err, NULL), 0);
}

/* Metamethods on tables C reads: errors and loops become policy errors. */
static void test_metatables_on_tables_c_reads(void **st) {
    (void)st;
    static const char *const srcs[] = {
        "return setmetatable({decide = function() end}, {__index = function() error('boom') end})",
        "return setmetatable({decide = function() end}, {__index = function() while true do end end})",
        "return {decide = function() end, params = setmetatable({}, {__index = function() while true do end end})}",
    };
    for (int i = 0; i < 3; i++) {
        write_text("sb_mt.lua", srcs[i]);
        pfx f;
        pfx_init(&f);
        mplb_policy *pol = NULL;
        mplb_err err = {0};
        double t0 = now_s();
        int rc = mplb_policy_open("sb_mt.lua", i == 2 ? "{x=1}" : NULL, NULL, &f.obs, &pol, &err);
        printf("# metatable %d: rc %d: %s\n", i, rc, err.msg);
        assert_true(rc < 0);
        assert_contains(err.msg, "sb_mt.lua");
        assert_contains(err.msg, "metatable");
        assert_true(now_s() - t0 < 10);
        pfx_free(&f);
    }
    /* the same for an experiment table */
    write_text("sb_exp.lua", "return setmetatable({}, {__index = function() error('boom') end})");
    mplb_exp x;
    mplb_err err = {0};
    assert_true(mplb_exp_load("sb_exp.lua", NULL, 0, &x, &err) < 0);
    assert_contains(err.msg, "sb_exp.lua");
    assert_contains(err.msg, "metatable");
}

static void test_set_under_limits(void **st) {
    (void)st;
    mplb_lsb sb;
    mplb_err err = {0};
    assert_int_equal(mplb_lsb_open(&sb, 16u << 20, 100000, &err), 0);
    lua_newtable(sb.L);
    double t0 = now_s();
    int rc = mplb_lua_apply_set(&sb, lua_gettop(sb.L), "x=(function() while true do end end)()", "exp.lua", &err);
    assert_int_equal(rc, MPLB_ELIMIT);
    assert_contains(err.msg, "instruction limit");
    assert_true(now_s() - t0 < 10);
    /* a value of any length arrives whole (it was cut at ~1016 characters) */
    char set[3000];
    strcpy(set, "x=\"");
    memset(set + 3, 'v', 2500);
    strcpy(set + 2503, "\"");
    assert_int_equal(mplb_lua_apply_set(&sb, 1, set, "exp.lua", &err), 0);
    lua_getfield(sb.L, 1, "x");
    size_t n = 0;
    lua_tolstring(sb.L, -1, &n);
    assert_int_equal(n, 2500);
    mplb_lsb_close(&sb);
}

static void test_wall_clock_limit(void **st) {
    (void)st;
    mplb_lsb sb;
    mplb_err err = {0};
    assert_int_equal(mplb_lsb_open(&sb, 16u << 20, 1LL << 60, &err), 0);
    sb.time_limit = 0.3;
    double t0 = now_s();
    int rc = mplb_lsb_dostring(&sb, "while true do end", "=loop", 0, &err);
    double dt = now_s() - t0;
    assert_int_equal(rc, MPLB_ELIMIT);
    assert_contains(err.msg, "time limit exceeded");
    assert_true(dt >= 0.3 && dt < 5);
    mplb_lsb_close(&sb);
}

/* Finding 10: inconsistent plans are refused with the policy's file:line. */
static void test_plan_validation(void **st) {
    (void)st;
    expect_refused("dup", "  act:move_tokens(1, 1, 2, 10)\n  act:move_tokens(1, 1, 2, 10)", "sb_dup.lua:4:");
    expect_refused("dup2", "  act:move_tokens(1, 1, 2, 10)\n  act:move_tokens(1, 1, 2, 10)", "moved twice");
    expect_refused("over", "  act:move_tokens(1, 1, 2, 60)\n  act:move_tokens(1, 1, 3, 60)", "add up to 120");
    expect_refused("mix1", "  act:move_tokens(1, 1, 2, 10)\n  act:place(3, 4)", "sb_mix1.lua:4: place after move_tokens");
    /* a move after a placement change applies to the new placement */
    expect_refused("mix2", "  act:place(1, 3)\n  act:move_tokens(1, 1, 2, 10)", "sb_mix2.lua:4: move_tokens: rank 1 holds no copy");
    expect_refused("many", "  for i = 1, 1000000 do act:move_tokens(1 + i % 8, 1 + (i % 8) // 2, 1 + i % 4, 0) end",
                   "moves in one decide");
    /* finding 11: the real value, not its 32-bit truncation */
    expect_refused("bigrank", "  act:replicate(1, 4294967297)", "rank 4294967297 out of range 1..4");
    mplb_err err = {0};
    assert_int_equal(run_decide("moves_ok", "  act:move_tokens(1, 1, 2, 50)\n  act:move_tokens(1, 1, 3, 50)", &err, NULL), 0);
    assert_int_equal(run_decide("place_move_ok", "  act:replicate(1, 3)\n  act:move_tokens(1, 3, 2, 10)", &err, NULL), 0);
    /* after a replicate the source computes its share (100 tokens, 2 copies: 50), refused at the call */
    expect_refused("rep_move", "  act:replicate(1, 3)\n  act:move_tokens(1, 1, 2, 60)",
                   "sb_rep_move.lua:4: move_tokens: rank 1 computes 50 of expert 1's tokens");
    expect_refused("rep_move2", "  act:replicate(1, 3)\n  act:move_tokens(1, 1, 2, 30)\n  act:move_tokens(1, 1, 4, 30)",
                   "sb_rep_move2.lua:5: move_tokens: rank 1 computes 20 of expert 1's tokens");
    assert_int_equal(run_decide("rep_move_ok", "  act:replicate(1, 3)\n  act:move_tokens(1, 1, 2, 30)\n"
                                "  act:move_tokens(1, 3, 4, 50)\n  act:move_tokens(1, 1, 4, 20)", &err, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backtracking_pattern),
        cmocka_unit_test(test_xpcall_handler_counted),
        cmocka_unit_test(test_gc_refused),
        cmocka_unit_test(test_metatables_on_tables_c_reads),
        cmocka_unit_test(test_set_under_limits),
        cmocka_unit_test(test_wall_clock_limit),
        cmocka_unit_test(test_plan_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
