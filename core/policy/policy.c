/* The Lua policy engine: see include/mplb/policy.h. */
#include "mplb/policy.h"
#include "lsandbox.h"
#include "lhelpers.h"
#include "mplb/split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#define OBS_MT "mplb.obs"
#define ARR_MT "mplb.array"
#define ACT_MT "mplb.act"
#define SCALARS 9

struct mplb_policy {
    mplb_lsb sb;
    char path[MPLB_PATH_MAX];
    char *source;
    char *params;         /* resolved params, Lua text */
    int ref_P, ref_obs, ref_act, ref_fields;
    mplb_obs obs;         /* the current observation: arrays point at the caller's */
    mplb_plan *plan;      /* the plan act writes into during decide */
    double *mem;          /* [R] scratch for the memory check */
    int *by_rank, *rank_start; /* experts grouped by base home rank: by_rank[rank_start[r]..] */
    const char *names[MPLB_PREC_COUNT]; /* interned precision names (kept in the registry) */
    const char *modes[3];               /* interned conversion-mode names */
    const int *by_rank_src;    /* the obs.expert_rank array the index was built from */
    int pushed_ok;        /* the scalar cache below is valid */
    lua_Integer pushed[SCALARS];
    double pushed_budget, pushed_ebytes;
    mplb_lh_ctx lh;       /* what the mplb.* C helpers read obs through */
    double *moved;        /* [E] tokens of each expert moved in this decide (plan validation) */
};

/* An array view reads one field of pol->obs, so views are made once and
 * never copy: obs.rank_load[r] is a load from the caller's C array. */
typedef enum { ARR_RANK_LOAD, ARR_RANK_VISION, ARR_RANK_MEM, ARR_EXP_LOAD, ARR_EXP_VISION,
               ARR_EXP_IMPORTANCE, ARR_EXP_RANK, ARR_EXP_ABLATION, ARR_COUNT } arr_kind;
static const char *const arr_names[ARR_COUNT] = {
    "rank_load", "rank_vision", "rank_mem", "expert_load", "expert_vision", "expert_importance", "expert_rank",
    "expert_ablation"};

typedef struct arr_view { mplb_policy *pol; arr_kind kind; } arr_view;

static int arr_len(const mplb_obs *o, arr_kind k) {
    if (k == ARR_EXP_ABLATION && !o->expert_ablation) return 0;   /* not measured in this run */
    return k <= ARR_RANK_MEM ? o->ranks : o->experts;
}

/* obs.rank_load[0] or obs.expert_load["x"]: an error at the policy's line,
 * since a nil here would only fail lines later (or silently skip a branch). */
static int arr_bad_index(lua_State *L, const arr_view *v) {
    int n = arr_len(&v->pol->obs, v->kind);
    if (lua_isinteger(L, 2))
        return luaL_error(L, "obs.%s[%d]: index out of range 1..%d", arr_names[v->kind], (int)lua_tointeger(L, 2), n);
    return luaL_error(L, "obs.%s[...]: expected an integer index 1..%d, got %s", arr_names[v->kind], n, luaL_typename(L, 2));
}

/* The array metatables hide themselves (__metatable), so these metamethods
 * only ever see their own userdata: no luaL_checkudata on the hot path. */
static int arr_index(lua_State *L) {
    arr_view *v = lua_touserdata(L, 1);
    const mplb_obs *o = &v->pol->obs;
    int isnum;
    lua_Integer i = lua_tointegerx(L, 2, &isnum);
    if (!isnum || i < 1 || i > arr_len(o, v->kind)) return arr_bad_index(L, v);
    size_t j = (size_t)(i - 1);
    switch (v->kind) {
    case ARR_RANK_LOAD: lua_pushnumber(L, o->rank_load[j]); break;
    case ARR_RANK_VISION: lua_pushnumber(L, o->rank_vision[j]); break;
    case ARR_RANK_MEM: lua_pushnumber(L, o->rank_mem ? o->rank_mem[j] : 0); break;
    case ARR_EXP_LOAD: lua_pushinteger(L, o->expert_load[j]); break;
    case ARR_EXP_VISION: lua_pushinteger(L, o->expert_vision[j]); break;
    case ARR_EXP_IMPORTANCE: lua_pushnumber(L, o->expert_importance[j]); break;
    case ARR_EXP_RANK: lua_pushinteger(L, o->expert_rank[j] + 1); break;
    case ARR_EXP_ABLATION: lua_pushnumber(L, o->expert_ablation[j]); break;
    default: lua_pushnil(L);
    }
    return 1;
}

static int arr_lenf(lua_State *L) {
    arr_view *v = lua_touserdata(L, 1);
    lua_pushinteger(L, arr_len(&v->pol->obs, v->kind));
    return 1;
}

static int read_only(lua_State *L) {
    return luaL_error(L, "obs is read-only (tried to set '%s')", luaL_tolstring(L, 2, NULL));
}

/* ---- act: records and checks actions ------------------------------------ */

static mplb_policy *act_pol(lua_State *L) {
    mplb_policy **pp = luaL_checkudata(L, 1, ACT_MT);
    if (!(*pp)->plan) luaL_error(L, "act may only be used inside decide");
    return *pp;
}

/* Lua interns short strings, so a policy passing "nvfp4" passes the same
 * pointer every time: compare with the names interned at open (pol->names)
 * before falling back to strcmp. */
static mplb_prec check_prec_fast(lua_State *L, const mplb_policy *pol, int arg) {
    const char *name = luaL_checkstring(L, arg);
    if (pol)
        for (int p = 0; p < MPLB_PREC_COUNT; p++)
            if (pol->names[p] == name) return (mplb_prec)p;
    mplb_prec p;
    if (mplb_prec_parse(name, &p) < 0) {
        const char *names[MPLB_PREC_COUNT];
        for (int i = 0; i < MPLB_PREC_COUNT; i++) names[i] = mplb_prec_name(i);
        const char *best = mplb_closest(name, names, MPLB_PREC_COUNT);
        if (best) luaL_error(L, "unknown precision '%s' (did you mean '%s'? known: %s)", name, best, mplb_prec_all_names());
        luaL_error(L, "unknown precision '%s' (known: %s)", name, mplb_prec_all_names());
    }
    return p;
}

#define check_prec(L, arg) check_prec_fast(L, NULL, arg)

static int check_index(lua_State *L, int arg, int n, const char *what) {
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 1 || i > n) luaL_error(L, "%s %I out of range 1..%d", what, (LUAI_UACINT)i, n);
    return (int)(i - 1);
}

/* Optional conversion mode: "online" (convert each layer, ReaLB), "stored"
 * (weights kept at p, R&Q) or "cached" (a converted copy kept beside bf16). */
static const char *const mode_names[] = {"online", "stored", "cached", NULL};

static int check_mode(lua_State *L, int arg) {
    return luaL_checkoption(L, arg, "online", mode_names);
}

/* interned mode names first (as for precisions), then the checked path */
static int check_mode_fast(lua_State *L, const mplb_policy *pol, int arg) {
    if (lua_isnoneornil(L, arg)) return MPLB_CONV_ONLINE;
    const char *s = lua_tostring(L, arg);
    for (int m = 0; s && m < 3; m++)
        if (pol->modes[m] == s) return m;
    return check_mode(L, arg);
}

/* Experts grouped by their base home rank, built once per run (the base
 * placement does not change), so rank_precision touches only its experts. */
static int rank_index(mplb_policy *pol) {
    const mplb_obs *o = &pol->obs;
    if (pol->by_rank && pol->by_rank_src == o->expert_rank) return 0;
    free(pol->by_rank);
    free(pol->rank_start);
    pol->by_rank = malloc((size_t)o->experts * sizeof(int));
    pol->rank_start = calloc((size_t)o->ranks + 1, sizeof(int));
    if (!pol->by_rank || !pol->rank_start) return -1;
    for (int e = 0; e < o->experts; e++) pol->rank_start[o->expert_rank[e] + 1]++;
    for (int r = 0; r < o->ranks; r++) pol->rank_start[r + 1] += pol->rank_start[r];
    int *fill = calloc((size_t)o->ranks, sizeof(int));
    if (!fill) return -1;
    for (int e = 0; e < o->experts; e++) {
        int r = o->expert_rank[e];
        pol->by_rank[pol->rank_start[r] + fill[r]++] = e;
    }
    free(fill);
    pol->by_rank_src = o->expert_rank;
    return 0;
}

static void set_rank_precision(mplb_policy *pol, int r, mplb_prec p, int mode, int by_rank) {
    const mplb_placement *pl = &pol->plan->placement;
    if (by_rank) {
        for (int i = pol->rank_start[r]; i < pol->rank_start[r + 1]; i++) {
            int e = pol->by_rank[i];
            pol->plan->expert_prec[e] = p;
            pol->plan->expert_mode[e] = (uint8_t)mode;
        }
        return;
    }
    for (int e = 0; e < pl->E; e++)
        if (pl->home[e] == r) { pol->plan->expert_prec[e] = p; pol->plan->expert_mode[e] = (uint8_t)mode; }
}

/* rank_precision(r or {r, ...}, p [, mode]): a list takes one call, which
 * matters for a rule applied to many ranks every layer. */
static int act_rank_precision(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    mplb_prec p = check_prec_fast(L, pol, 3);
    int mode = check_mode_fast(L, pol, 4);
    int by_rank = !pol->plan->placement_changed && rank_index(pol) == 0, R = pol->plan->R;
    if (!lua_istable(L, 2)) {
        set_rank_precision(pol, check_index(L, 2, R, "rank"), p, mode, by_rank);
        return 0;
    }
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        int isnum;
        lua_Integer r = (lua_rawgeti(L, 2, i), lua_tointegerx(L, -1, &isnum));
        lua_pop(L, 1);
        if (!isnum || r < 1 || r > R) luaL_error(L, "rank list entry %d: rank %s out of range 1..%d", (int)i,
                                                  isnum ? lua_pushfstring(L, "%I", (LUAI_UACINT)r) : "(not an integer)", R);
        set_rank_precision(pol, (int)r - 1, p, mode, by_rank);
    }
    return 0;
}

static int act_expert_precision(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    int e = check_index(L, 2, pol->plan->E, "expert");
    pol->plan->expert_prec[e] = check_prec_fast(L, pol, 3);
    pol->plan->expert_mode[e] = (uint8_t)check_mode_fast(L, pol, 4);
    return 0;
}

/* Token moves are priced against the base placement's loads, so one decide
 * may not change placement after it moved tokens (the cost model would
 * count moved tokens on ranks that no longer hold them). */
static void refuse_mixed(lua_State *L, const mplb_policy *pol, const char *what) {
    if (pol->plan->n_moves > 0)
        luaL_error(L, "%s after move_tokens in the same decide: a plan either moves tokens or changes placement", what);
}

static void place_one(mplb_policy *pol, int e, int r) {
    mplb_placement *pl = &pol->plan->placement;
    for (int i = 0; i < pl->copies[e]; i++) pl->has[(size_t)e * pl->R + pl->ranks[(size_t)e * pl->R + i]] = 0;
    pl->copies[e] = 0;
    pl->home[e] = r;
    mplb_placement_add(pl, e, r);
    pol->plan->placement_changed = 1;
}

/* place(e, r): expert e's only copy moves to rank r (EPLB-style placement). */
static int act_place(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    int e = check_index(L, 2, pol->plan->E, "expert");
    int r = check_index(L, 3, pol->plan->R, "rank");
    refuse_mixed(L, pol, "place");
    place_one(pol, e, r);
    return 0;
}

/* place_all(experts, ranks): a whole placement in one call. Entry i puts
 * expert experts[i] on rank ranks[i]: its first entry is place, later ones
 * replicate (EPLB's physical-slot list, a locality map). */
static int act_place_all(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (luaL_len(L, 3) != n) return luaL_error(L, "place_all: %d experts but %d ranks", (int)n, (int)luaL_len(L, 3));
    int E = pol->plan->E, R = pol->plan->R;
    refuse_mixed(L, pol, "place_all");
    unsigned char *seen = lua_newuserdatauv(L, (size_t)E, 0);
    memset(seen, 0, (size_t)E);
    for (lua_Integer i = 1; i <= n; i++) {
        int ok1, ok2;
        lua_Integer e = (lua_rawgeti(L, 2, i), lua_tointegerx(L, -1, &ok1));
        lua_Integer r = (lua_rawgeti(L, 3, i), lua_tointegerx(L, -1, &ok2));
        lua_pop(L, 2);
        if (!ok1 || e < 1 || e > E) return luaL_error(L, "place_all: entry %d: expert out of range 1..%d", (int)i, E);
        if (!ok2 || r < 1 || r > R) return luaL_error(L, "place_all: entry %d: rank out of range 1..%d", (int)i, R);
        if (seen[e - 1]) mplb_placement_add(&pol->plan->placement, (int)e - 1, (int)r - 1);
        else place_one(pol, (int)e - 1, (int)r - 1);
        seen[e - 1] = 1;
    }
    pol->plan->placement_changed = 1;
    return 0;
}

/* move_tokens(e, from, to, n): n of expert e's tokens computed on rank
 * `from` are computed on rank `to` instead (HarMoEny); `to` fetches e's
 * weights if it holds no copy. */
/* Rows rank `from` computes of expert e under the plan so far: its copy's
 * share, then the earlier moves in order, exactly as mplb_split_rows applies
 * them (a move takes at most what its source has). -1: out of memory. */
static int64_t move_source_rows(const mplb_plan *plan, int e, int from, int64_t load, int first_move) {
    const mplb_placement *pl = &plan->placement;
    if (first_move) {   /* the common case (one move per expert): its copy's share, no scan */
        for (int i = 0; i < pl->copies[e]; i++)
            if (pl->ranks[(size_t)e * pl->R + i] == from) return mplb_split_share(load, pl->copies[e], i);
        return 0;
    }
    int64_t *rows = calloc((size_t)pl->R, sizeof *rows);
    if (!rows) return -1;
    for (int i = 0; i < pl->copies[e]; i++)
        rows[pl->ranks[(size_t)e * pl->R + i]] = mplb_split_share(load, pl->copies[e], i);
    for (int i = 0; i < plan->n_moves; i++) {
        const mplb_move *mv = &plan->moves[i];
        if (mv->e != e) continue;
        int64_t m = llround(mv->n);
        if (m > rows[mv->from]) m = rows[mv->from];
        rows[mv->from] -= m;
        rows[mv->to] += m;
    }
    int64_t avail = rows[from];
    free(rows);
    return avail;
}

static int act_move_tokens(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    int e = check_index(L, 2, pol->plan->E, "expert");
    int from = check_index(L, 3, pol->plan->R, "rank");
    int to = check_index(L, 4, pol->plan->R, "rank");
    double n = luaL_checknumber(L, 5);
    const mplb_placement *pl = &pol->plan->placement;
    if (!pl->has[(size_t)e * pl->R + from])
        return luaL_error(L, "move_tokens: rank %d holds no copy of expert %d", from + 1, e + 1);
    if (!(n >= 0) || n > pol->obs.expert_load[e])
        return luaL_error(L, "move_tokens: n = %f outside [0, %d] (expert %d's tokens)", n, (int)pol->obs.expert_load[e], e + 1);
    /* after place/replicate the move applies to the new placement (the
     * check above uses it), as LPLB splits a batch over the copies EPLB
     * placed; a placement change after a move stays refused (refuse_mixed) */
    mplb_plan *plan = pol->plan;
    /* every (expert, from, to) at most once, so the list stays E + R^2 long
     * (the cost model prices each move) */
    if (plan->n_moves >= plan->E + plan->R * plan->R)
        return luaL_error(L, "move_tokens: more than %d moves in one decide", plan->E + plan->R * plan->R);
    for (int i = 0; pol->moved[e] > 0 && i < plan->n_moves; i++) {
        const mplb_move *m = &plan->moves[i];
        if (m->e == e && m->from == from && m->to == to)
            return luaL_error(L, "move_tokens: expert %d from rank %d to rank %d moved twice in one decide",
                              e + 1, from + 1, to + 1);
    }
    if (pol->moved[e] + n > pol->obs.expert_load[e])
        return luaL_error(L, "move_tokens: moves of expert %d add up to %f tokens, it has %d", e + 1,
                          pol->moved[e] + n, (int)pol->obs.expert_load[e]);
    int64_t avail = move_source_rows(plan, e, from, (int64_t)pol->obs.expert_load[e], pol->moved[e] == 0);
    if (avail < 0) return luaL_error(L, "move_tokens: out of memory");
    if (llround(n) > avail + 1)   /* the split rule's bound (mplb/split.h), checked here to name the policy's line */
        return luaL_error(L, "move_tokens: rank %d computes %d of expert %d's tokens (its share of %d copies, after "
                          "earlier moves), not %d", from + 1, (int)avail, e + 1, pl->copies[e], (int)llround(n));
    pol->moved[e] += n;
    mplb_err err;
    if (mplb_plan_add_move(pol->plan, e, from, to, n, &err) < 0) return luaL_error(L, "%s", err.msg);
    return 0;
}

static int act_dispatch_precision(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    mplb_prec p = check_prec(L, 2);
    if (p != MPLB_PREC_BF16 && p != MPLB_PREC_FP8_E4M3 && p != MPLB_PREC_FP8_E5M2 && p != MPLB_PREC_MXFP8)
        luaL_error(L, "dispatch precision must be bf16, fp8_e4m3, fp8_e5m2 or mxfp8, got '%s'", mplb_prec_name(p));
    pol->plan->dispatch_prec = p;
    return 0;
}

static int act_replicate(lua_State *L) {
    mplb_policy *pol = act_pol(L);
    int e = check_index(L, 2, pol->plan->E, "expert");
    int r = check_index(L, 3, pol->plan->R, "rank");
    refuse_mixed(L, pol, "replicate");
    mplb_placement_add(&pol->plan->placement, e, r);
    pol->plan->placement_changed = 1;
    if (!lua_isnoneornil(L, 4)) pol->plan->expert_prec[e] = check_prec(L, 4);
    return 0;
}

/* __index of the obs fields and act methods tables, reached only for a name
 * they lack: an error at the policy's file:line naming the closest name.
 * Upvalue 1: the table, 2: "obs" or "act". */
static int strict_index(lua_State *L) {
    const char *what = lua_tostring(L, lua_upvalueindex(2));
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (!key) return luaL_error(L, "%s has no entry %s (fields are named: %s.name)", what, luaL_tolstring(L, 2, NULL), what);
    const char *names[64];
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, lua_upvalueindex(1))) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && n < 64) names[n++] = lua_tostring(L, -1);
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) { const char *t = names[j]; names[j] = names[j - 1]; names[j - 1] = t; }
    const char *best = mplb_closest(key, names, n);
    const char *kind = *what == 'o' ? "field" : *what == 'a' ? "method" : "function";
    if (best) return luaL_error(L, "%s has no %s '%s' (did you mean '%s'?)", what, kind, key, best);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < n; i++) { if (i) luaL_addstring(&b, ", "); luaL_addstring(&b, names[i]); }
    luaL_pushresult(&b);
    return luaL_error(L, "%s has no %s '%s' (known: %s)", what, kind, key, lua_tostring(L, -1));
}

/* Give the table on the stack top a metatable whose __index is strict_index. */
static void make_strict(lua_State *L, const char *what) {
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -2);
    lua_pushstring(L, what);
    lua_pushcclosure(L, strict_index, 2);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}

static const luaL_Reg act_methods[] = {
    {"rank_precision", act_rank_precision},
    {"expert_precision", act_expert_precision},
    {"dispatch_precision", act_dispatch_precision},
    {"replicate", act_replicate},
    {"place", act_place},
    {"place_all", act_place_all},
    {"move_tokens", act_move_tokens},
    {NULL, NULL},
};

/* ---- open / decide / feedback ------------------------------------------- */

/* Scalars live in the obs fields table; only the ones that changed since the
 * last call are written (step, layer and tokens, usually). */
static void set_scalars(mplb_policy *pol) {
    lua_State *L = pol->sb.L;
    const mplb_obs *o = &pol->obs;
    static const char *const names[] = {"step", "layer", "layers", "ranks", "experts", "top_k", "nodes",
                                        "gpus_per_node", "tokens"};
    const lua_Integer vals[SCALARS] = {o->step + 1, o->layer + 1, o->layers, o->ranks, o->experts, o->top_k,
                                       o->nodes, o->gpus_per_node, (lua_Integer)o->tokens};
    double budget = o->mem_budget, ebytes = o->model ? 3.0 * o->model->hidden * o->model->ffn * 2.0 : 0;
    int fields = 0;
    for (int i = 0; i < SCALARS; i++) {
        if (pol->pushed_ok && pol->pushed[i] == vals[i]) continue;
        if (!fields) { lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_fields); fields = 1; }
        lua_pushinteger(L, vals[i]);
        lua_setfield(L, -2, names[i]);
        pol->pushed[i] = vals[i];
    }
    if (!pol->pushed_ok || pol->pushed_budget != budget || pol->pushed_ebytes != ebytes) {
        if (!fields) { lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_fields); fields = 1; }
        lua_pushnumber(L, budget);
        lua_setfield(L, -2, "mem_budget");
        lua_pushnumber(L, ebytes);
        lua_setfield(L, -2, "expert_bytes");
        pol->pushed_budget = budget;
        pol->pushed_ebytes = ebytes;
    }
    pol->pushed_ok = 1;
    if (fields) lua_pop(L, 1);
}

/* mplb.bits(p): stored bits per weight of precision p (scales included). */
static int lib_bits(lua_State *L) {
    lua_pushnumber(L, mplb_prec_bits(check_prec(L, 1)));
    return 1;
}

/* mplb.error(p): the run's relative weight error of p (0 for bf16). */
static int lib_error(lua_State *L) {
    mplb_policy *pol = lua_touserdata(L, lua_upvalueindex(1));
    mplb_prec p = check_prec(L, 1);
    lua_pushnumber(L, pol->obs.prec_error ? pol->obs.prec_error[p] : (p == MPLB_PREC_BF16 ? 0 : 1));
    return 1;
}

/* mplb.speedup(p): compute-bound rate of p over bf16 on this chip (1 where
 * p only saves bytes, e.g. FP4 on Hopper). */
static int lib_speedup(lua_State *L) {
    mplb_policy *pol = lua_touserdata(L, lua_upvalueindex(1));
    mplb_prec p = check_prec(L, 1);
    lua_pushnumber(L, pol->obs.prec_speed ? pol->obs.prec_speed[p] : 1);
    return 1;
}

/* mplb.above(view, cut): the 1-based indices i with view[i] > cut, in order.
 * One C call instead of a metamethod call per element, for the commonest
 * scan a policy makes ("which ranks are overloaded"). */
static int lib_above(lua_State *L) {
    arr_view *v = luaL_checkudata(L, 1, ARR_MT);
    double cut = luaL_checknumber(L, 2);
    const mplb_obs *o = &v->pol->obs;
    int n = arr_len(o, v->kind), out = 0;
    lua_createtable(L, 8, 0);
    for (int i = 0; i < n; i++) {
        double x;
        switch (v->kind) {
        case ARR_RANK_LOAD: x = o->rank_load[i]; break;
        case ARR_RANK_VISION: x = o->rank_vision[i]; break;
        case ARR_RANK_MEM: x = o->rank_mem ? o->rank_mem[i] : 0; break;
        case ARR_EXP_LOAD: x = o->expert_load[i]; break;
        case ARR_EXP_VISION: x = o->expert_vision[i]; break;
        case ARR_EXP_IMPORTANCE: x = o->expert_importance[i]; break;
        case ARR_EXP_ABLATION: x = o->expert_ablation[i]; break;
        default: x = o->expert_rank[i] + 1; break;
        }
        if (x > cut) {
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, ++out);
        }
    }
    return 1;
}

/* obs.src_load(r, e): token copies from source rank r to expert e. */
static int obs_src_load(lua_State *L) {
    mplb_policy *pol = lua_touserdata(L, lua_upvalueindex(1));
    const mplb_obs *o = &pol->obs;
    int r = check_index(L, 1, o->ranks, "rank"), e = check_index(L, 2, o->experts, "expert");
    lua_pushinteger(L, o->src_counts ? o->src_counts[(size_t)r * o->experts + e] : 0);
    return 1;
}

/* For the C helpers (lhelpers.c): an obs array view read in one call, and
 * the source-rank matrix behind obs.src_load. */
static int lh_view(void *ud, lua_State *L, int idx, double *out) {
    arr_view *v = luaL_testudata(L, idx, ARR_MT);
    if (!v || v->pol != ud) return -1;
    int n = arr_len(&v->pol->obs, v->kind);
    for (int i = 0; out && i < n; i++) {
        const mplb_obs *o = &v->pol->obs;
        switch (v->kind) {
        case ARR_RANK_LOAD: out[i] = o->rank_load[i]; break;
        case ARR_RANK_VISION: out[i] = o->rank_vision[i]; break;
        case ARR_RANK_MEM: out[i] = o->rank_mem ? o->rank_mem[i] : 0; break;
        case ARR_EXP_LOAD: out[i] = o->expert_load[i]; break;
        case ARR_EXP_VISION: out[i] = o->expert_vision[i]; break;
        case ARR_EXP_IMPORTANCE: out[i] = o->expert_importance[i]; break;
        default: out[i] = o->expert_rank[i] + 1; break;
        }
    }
    return n;
}

static const int32_t *lh_src(void *ud, int *R, int *E) {
    const mplb_obs *o = &((mplb_policy *)ud)->obs;
    *R = o->ranks;
    *E = o->experts;
    return o->src_counts;
}

static void open_mplb_lib(lua_State *L, mplb_policy *pol) {
    lua_newtable(L);
    lua_pushcfunction(L, lib_bits);
    lua_setfield(L, -2, "bits");
    lua_pushcfunction(L, lib_above);
    lua_setfield(L, -2, "above");
    lua_pushlightuserdata(L, pol);
    lua_pushcclosure(L, lib_error, 1);
    lua_setfield(L, -2, "error");
    lua_pushlightuserdata(L, pol);
    lua_pushcclosure(L, lib_speedup, 1);
    lua_setfield(L, -2, "speedup");
    lua_newtable(L);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        lua_pushstring(L, mplb_prec_name(p));
        lua_rawseti(L, -2, p + 1);
    }
    lua_setfield(L, -2, "precisions");
    pol->lh = (mplb_lh_ctx){pol, lh_view, lh_src};
    mplb_lh_open(L, &pol->lh);   /* argsort, greedy_pack, rank_sums, ... */
    make_strict(L, "mplb");      /* mplb.abov(...) names mplb.above */
    lua_setglobal(L, "mplb");
}

static int build_views(mplb_policy *pol) {
    lua_State *L = pol->sb.L;
    luaL_newmetatable(L, ARR_MT);
    lua_pushcfunction(L, arr_index); lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, arr_lenf); lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, read_only); lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "array"); lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_newtable(L); /* fields */
    for (int k = 0; k < ARR_COUNT; k++) {
        arr_view *v = lua_newuserdatauv(L, sizeof *v, 0);
        v->pol = pol;
        v->kind = (arr_kind)k;
        luaL_setmetatable(L, ARR_MT);
        lua_setfield(L, -2, arr_names[k]);
    }
    lua_pushlightuserdata(L, pol);
    lua_pushcclosure(L, obs_src_load, 1);
    lua_setfield(L, -2, "src_load");
    /* the scalars exist before make_strict, so only a missing name reaches it */
    static const char *const scalar_names[] = {"step", "layer", "layers", "ranks", "experts", "top_k", "nodes",
                                               "gpus_per_node", "tokens", "mem_budget", "expert_bytes"};
    for (size_t i = 0; i < sizeof scalar_names / sizeof *scalar_names; i++) {
        lua_pushinteger(L, 0);
        lua_setfield(L, -2, scalar_names[i]);
    }
    make_strict(L, "obs");
    lua_pushvalue(L, -1);
    pol->ref_fields = luaL_ref(L, LUA_REGISTRYINDEX);
    luaL_newmetatable(L, OBS_MT);
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, read_only); lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "obs"); lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0);
    luaL_setmetatable(L, OBS_MT);
    pol->ref_obs = luaL_ref(L, LUA_REGISTRYINDEX);
    luaL_newmetatable(L, ACT_MT);
    luaL_newlib(L, act_methods);
    make_strict(L, "act");
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "act"); lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    mplb_policy **pp = lua_newuserdatauv(L, sizeof *pp, 0);
    *pp = pol;
    luaL_setmetatable(L, ACT_MT);
    pol->ref_act = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* "policy has no parameter 'taux' (did you mean 'tau'? known: low, tau)" */
static int unknown_param(lua_State *L, int pt, const char *path, const char *k, mplb_err *err) {
    const char *names[64];
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, pt)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && n < 64) names[n++] = lua_tostring(L, -1);
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) { const char *t = names[j]; names[j] = names[j - 1]; names[j - 1] = t; }
    char known[600] = "";
    size_t kn = 0;
    for (int i = 0; i < n && kn < sizeof known; i++) kn += (size_t)snprintf(known + kn, sizeof known - kn, "%s%s", i ? ", " : "", names[i]);
    const char *best = mplb_closest(k, names, n);
    return mplb_err_set(err, MPLB_ECONFIG, "%s: policy has no parameter '%s' (%s%s%sknown: %s)", path, k,
                        best ? "did you mean '" : "", best ? best : "", best ? "'? " : "", n ? known : "none");
}

/* Merge the experiment's params over P.params; an unknown name is an error,
 * since a typo would otherwise silently run the default. */
static int merge_params(mplb_policy *pol, const char *params, mplb_err *err) {
    lua_State *L = pol->sb.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    if (lua_getfield(L, -1, "params") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "params");
    }
    int pt = lua_gettop(L);
    int rc = mplb_lsb_check_plain(&pol->sb, pt, 1, pol->path, err);
    if (rc < 0) { lua_settop(L, pt - 2); return rc; }
    if (params && *params) {
        char code[64 + 4096];
        if (strlen(params) > 4096) { lua_settop(L, pt - 2); return mplb_err_set(err, MPLB_ECONFIG, "%s: params too long", pol->path); }
        snprintf(code, sizeof code, "return %s", params);
        if ((rc = mplb_lsb_dostring(&pol->sb, code, "=params", 1, err)) < 0) { lua_settop(L, pt - 2); return rc; }
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                rc = mplb_err_set(err, MPLB_ECONFIG, "%s: policy params are name = value pairs (got a list element)", pol->path);
                break;
            }
            const char *k = lua_tostring(L, -2);
            int dt = lua_getfield(L, pt, k), vt = lua_type(L, -2);
            lua_pop(L, 1);
            if (dt == LUA_TNIL) {
                rc = unknown_param(L, pt, pol->path, k, err);
                break;
            }
            /* a value of another type than the default's is a typo too
             * ("--param low=nvfp" is fine, "--param tau=1.1.2" is not) */
            if (dt != vt && !(dt == LUA_TTABLE || vt == LUA_TTABLE)) {
                lua_getfield(L, pt, k);
                char *d = mplb_lua_serialize(L, -1);
                lua_pop(L, 1);
                rc = mplb_err_set(err, MPLB_ECONFIG, "%s: parameter '%s' expects a %s (default %s), got %s%s%s%s", pol->path, k,
                                  lua_typename(L, dt), d ? d : "?", lua_typename(L, vt), vt == LUA_TSTRING ? " '" : "",
                                  vt == LUA_TSTRING ? lua_tostring(L, -1) : "", vt == LUA_TSTRING ? "'" : "");
                free(d);
                break;
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, pt);
        }
    }
    if (rc == 0) {
        pol->params = mplb_lua_serialize(L, pt);
        if (!pol->params) rc = mplb_err_set(err, MPLB_ECONFIG, "%s: P.params may hold only data values", pol->path);
    }
    lua_settop(L, pt - 2);
    return rc;
}

int mplb_policy_open(const char *path, const char *params, const mplb_policy_limits *lim,
                     const mplb_obs *ctx, mplb_policy **out, mplb_err *err) {
    *out = NULL;
    mplb_policy *pol = calloc(1, sizeof *pol);
    if (!pol) return mplb_err_set(err, MPLB_ENOMEM, "policy: out of memory");
    snprintf(pol->path, sizeof pol->path, "%s", path);
    size_t mem = lim && lim->mem_limit ? lim->mem_limit : (64u << 20);
    long long ins = lim && lim->instr_limit ? lim->instr_limit : 10000000LL;
    int rc;
    if ((rc = mplb_read_file(path, &pol->source, NULL, err)) < 0) goto fail;
    if ((rc = mplb_lsb_open(&pol->sb, mem, ins, err)) < 0) goto fail;
    lua_State *L = pol->sb.L;
    build_views(pol);
    open_mplb_lib(L, pol);
    lua_createtable(L, MPLB_PREC_COUNT + 3, 0);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        pol->names[p] = lua_pushstring(L, mplb_prec_name(p));
        lua_rawseti(L, -2, p + 1);
    }
    for (int m = 0; m < 3; m++) {
        pol->modes[m] = lua_pushstring(L, mode_names[m]);
        lua_rawseti(L, -2, MPLB_PREC_COUNT + m + 1);
    }
    luaL_ref(L, LUA_REGISTRYINDEX); /* keeps the interned names alive */
    char chunk[MPLB_PATH_MAX + 1];
    snprintf(chunk, sizeof chunk, "@%s", path);
    if ((rc = mplb_lsb_dostring(&pol->sb, pol->source, chunk, 1, err)) < 0) goto fail;
    if (!lua_istable(L, -1)) {
        rc = mplb_err_set(err, MPLB_EPOLICY, "%s: a policy file must return a table P, got %s", path, luaL_typename(L, -1));
        goto fail;
    }
    if ((rc = mplb_lsb_check_plain(&pol->sb, -1, 0, path, err)) < 0) goto fail;   /* P is read from C */
    if (lua_getfield(L, -1, "decide") != LUA_TFUNCTION) {
        rc = mplb_err_set(err, MPLB_EPOLICY, "%s: P.decide must be a function (decide(obs, act))", path);
        goto fail;
    }
    lua_pop(L, 1);
    pol->ref_P = luaL_ref(L, LUA_REGISTRYINDEX);
    if ((rc = merge_params(pol, params, err)) < 0) goto fail;
    if (ctx) {
        pol->obs = *ctx;
        lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
        if (lua_getfield(L, -1, "init") == LUA_TFUNCTION) {
            set_scalars(pol);
            lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_obs);
            if ((rc = mplb_lsb_pcall(&pol->sb, 1, 0, "init", err)) < 0) { lua_pop(L, 1); goto fail; }
        } else lua_pop(L, 1);
        lua_pop(L, 1);
    }
    *out = pol;
    return 0;
fail:
    if (rc != MPLB_EIO && strncmp(err->msg, path, strlen(path)) != 0) mplb_err_wrap(err, "policy %s", path);
    mplb_policy_close(pol);
    return rc;
}

int mplb_policy_decide(mplb_policy *pol, const mplb_obs *obs, mplb_plan *plan, mplb_err *err) {
    lua_State *L = pol->sb.L;
    pol->obs = *obs;
    pol->plan = plan;
    if (!pol->moved) pol->moved = calloc((size_t)plan->E, sizeof *pol->moved);
    if (!pol->moved) return mplb_err_set(err, MPLB_ENOMEM, "policy: out of memory");
    memset(pol->moved, 0, (size_t)plan->E * sizeof *pol->moved);
    set_scalars(pol);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    lua_getfield(L, -1, "decide");
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_obs);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_act);
    int rc = mplb_lsb_pcall(&pol->sb, 2, 0, "decide", err);
    pol->plan = NULL;
    if (rc == 0 && obs->model && obs->mem_budget > 0) {
        if (!pol->mem) pol->mem = calloc((size_t)plan->R, sizeof *pol->mem);
        if (!pol->mem) return mplb_err_set(err, MPLB_ENOMEM, "policy: out of memory");
        mplb_plan_memory(plan, obs->model, pol->mem);
        for (int r = 0; r < plan->R; r++)
            if (pol->mem[r] > obs->mem_budget * (1 + 1e-12)) {
                rc = mplb_err_set(err, MPLB_EPOLICY,
                                  "decide: rank %d would hold %.6g GB of expert weights, over the budget of %.6g GB "
                                  "(replicas and cached copies cost memory; stored low-precision weights free it)",
                                  r + 1, pol->mem[r] / 1e9, obs->mem_budget / 1e9);
                break;
            }
    }
    if (rc < 0) mplb_err_wrap(err, "policy %s, step %d, layer %d", pol->path, obs->step + 1, obs->layer + 1);
    return rc;
}

int mplb_policy_feedback(mplb_policy *pol, const mplb_feedback *fb, mplb_err *err) {
    lua_State *L = pol->sb.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    if (lua_getfield(L, -1, "feedback") != LUA_TFUNCTION) { lua_pop(L, 2); return 0; }
    lua_remove(L, -2);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, fb->step + 1); lua_setfield(L, -2, "step");
    lua_pushinteger(L, fb->layer + 1); lua_setfield(L, -2, "layer");
    lua_pushnumber(L, fb->t_layer); lua_setfield(L, -2, "t_layer_us");
    lua_pushnumber(L, fb->t_baseline); lua_setfield(L, -2, "t_baseline_us");
    lua_pushnumber(L, fb->t_layer > 0 ? fb->t_baseline / fb->t_layer : 1.0); lua_setfield(L, -2, "speedup");
    lua_pushnumber(L, fb->imbalance); lua_setfield(L, -2, "imbalance");
    lua_pushnumber(L, fb->error_proxy); lua_setfield(L, -2, "error_proxy");
    if (fb->has_kl) { lua_pushnumber(L, fb->kl); lua_setfield(L, -2, "kl"); }   /* measured, else nil */
    int rc = mplb_lsb_pcall(&pol->sb, 1, 0, "feedback", err);
    if (rc < 0) mplb_err_wrap(err, "policy %s, step %d, layer %d", pol->path, fb->step + 1, fb->layer + 1);
    return rc;
}

void mplb_policy_close(mplb_policy *pol) {
    if (!pol) return;
    mplb_lsb_close(&pol->sb);
    free(pol->source);
    free(pol->params);
    free(pol->mem);
    free(pol->moved);
    free(pol->by_rank);
    free(pol->rank_start);
    free(pol);
}

int mplb_policy_check(mplb_policy *pol, const mplb_exp *x, char *out, size_t cap, mplb_err *err) {
    lua_State *L = pol->sb.L;
    out[0] = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    if (lua_getfield(L, -1, "check") != LUA_TFUNCTION) { lua_pop(L, 2); return 0; }
    lua_remove(L, -2);
    const mplb_workload_cfg *w = &x->workload;
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, w->tokens); lua_setfield(L, -2, "tokens");
    lua_pushinteger(L, w->prefill_every > 1 ? w->decode_tokens : 0); lua_setfield(L, -2, "decode_tokens");
    lua_pushinteger(L, w->steps); lua_setfield(L, -2, "steps");
    lua_pushstring(L, w->kind); lua_setfield(L, -2, "kind");
    lua_pushnumber(L, w->vision_frac); lua_setfield(L, -2, "vision_frac");
    lua_pushinteger(L, x->model.layers); lua_setfield(L, -2, "layers");
    lua_pushinteger(L, x->model.experts); lua_setfield(L, -2, "experts");
    lua_pushinteger(L, x->model.top_k); lua_setfield(L, -2, "top_k");
    lua_pushinteger(L, x->cluster.nodes); lua_setfield(L, -2, "nodes");
    lua_pushinteger(L, x->cluster.nodes * x->cluster.gpus_per_node); lua_setfield(L, -2, "ranks");
    int rc = mplb_lsb_pcall(&pol->sb, 1, 1, "check", err);
    if (rc < 0) { mplb_err_wrap(err, "policy %s", pol->path); return rc; }
    if (lua_type(L, -1) == LUA_TSTRING) snprintf(out, cap, "%s", lua_tostring(L, -1));
    else if (!lua_isnil(L, -1)) rc = mplb_err_set(err, MPLB_EPOLICY, "policy %s: P.check must return nil or a message", pol->path);
    lua_pop(L, 1);
    return rc;
}

const char *mplb_policy_source(const mplb_policy *pol) { return pol->source; }
const char *mplb_policy_params(const mplb_policy *pol) { return pol->params; }

int mplb_policy_stateless(const mplb_policy *pol) {
    lua_State *L = pol->sb.L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    lua_getfield(L, -1, "stateless");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return v;
}

/* P.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)
 * -> phy2log[, phyrank] (0-based, as DeepSeek's EPLB and the engines'
 * rebalance_experts): the offline placement `mplb place` runs. */
int mplb_policy_rebalance(mplb_policy *pol, const double *w, int layers, int experts, int slots, int groups,
                          int nodes, int gpus, int *phy2log, int *phyrank, mplb_err *err) {
    lua_State *L = pol->sb.L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pol->ref_P);
    if (lua_getfield(L, -1, "rebalance_experts") != LUA_TFUNCTION) {
        lua_settop(L, top);
        return mplb_err_set(err, MPLB_EPOLICY, "%s: no P.rebalance_experts(weight, num_replicas, num_groups, num_nodes, "
                            "num_gpus) (the engines' placement interface): this policy cannot place offline", pol->path);
    }
    lua_createtable(L, layers, 0);
    for (int l = 0; l < layers; l++) {
        lua_createtable(L, experts, 0);
        for (int e = 0; e < experts; e++) {
            lua_pushnumber(L, w[(size_t)l * experts + e]);
            lua_rawseti(L, -2, e + 1);
        }
        lua_rawseti(L, -2, l + 1);
    }
    lua_pushinteger(L, slots);
    lua_pushinteger(L, groups);
    lua_pushinteger(L, nodes);
    lua_pushinteger(L, gpus);
    int rc = mplb_lsb_pcall(&pol->sb, 5, 2, "rebalance_experts", err);
    if (rc < 0) { lua_settop(L, top); return rc; }
    for (int which = 0; which < 2 && rc == 0; which++) {
        int idx = which ? -1 : -2;
        int *out = which ? phyrank : phy2log;
        if (which && (!phyrank || lua_isnil(L, idx))) { if (phyrank) phyrank[0] = -1; continue; }
        if (!lua_istable(L, idx) || (int)lua_rawlen(L, idx) != layers) {   /* raw: no __len runs unprotected */
            rc = mplb_err_set(err, MPLB_EPOLICY, "%s: rebalance_experts must return %s as %d lists (one per layer)",
                              pol->path, which ? "phyrank" : "phy2log", layers);
            break;
        }
        for (int l = 0; l < layers && rc == 0; l++) {
            lua_rawgeti(L, idx, l + 1);
            if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != slots)
                rc = mplb_err_set(err, MPLB_EPOLICY, "%s: rebalance_experts: %s row %d must list %d physical slots",
                                  pol->path, which ? "phyrank" : "phy2log", l + 1, slots);
            for (int x = 0; x < slots && rc == 0; x++) {
                lua_rawgeti(L, -1, x + 1);
                int isnum;
                lua_Integer v = lua_tointegerx(L, -1, &isnum);
                if (!isnum || v < 0 || v >= (which ? slots : experts))
                    rc = mplb_err_set(err, MPLB_EPOLICY, "%s: rebalance_experts: %s[%d][%d] is not an id in 0..%d",
                                      pol->path, which ? "phyrank" : "phy2log", l + 1, x + 1,
                                      (which ? slots : experts) - 1);
                else out[(size_t)l * slots + x] = (int)v;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    return rc;
}
