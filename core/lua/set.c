/* --set overrides: "a.b.c=value" applied to an experiment table before it is
 * checked (see mplb_lua_apply_set in lsandbox.h). The value is a Lua
 * expression evaluated with no globals, so only literals and constructors
 * count ({1, 2}, "x", 1.5, true); anything else, a bare word included, is the
 * text itself as a string (--set cluster.profile=b200). Paths reach:
 *   - nested tables: workload.tokens, model.layers (a preset name becomes
 *     { preset = name } first);
 *   - list entries: policies[2].tau or policies.2.tau;
 *   - policies by name: policies.threshold.tau (every entry of that name;
 *     a bare "threshold" entry becomes { "threshold" } first).
 * A value that is a list makes that field a sweep axis, as in the file. */
#include "lsandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#define SET_MAX_PARTS 16

typedef struct set_path {
    int n;
    char part[SET_MAX_PARTS][128];
    int index[SET_MAX_PARTS];   /* > 0 for a list index */
} set_path;

static int parse_path(const char *key, set_path *sp) {
    sp->n = 0;
    for (const char *p = key; *p;) {
        if (sp->n == SET_MAX_PARTS) return -1;
        size_t n;
        if (*p == '[') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (*end != ']' || v < 1) return -1;
            sp->index[sp->n] = (int)v;
            snprintf(sp->part[sp->n], sizeof sp->part[0], "[%ld]", v);
            n = (size_t)(end - p) + 1;
        } else {
            n = strcspn(p, ".[");
            if (n == 0 || n >= sizeof sp->part[0]) return -1;
            snprintf(sp->part[sp->n], sizeof sp->part[0], "%.*s", (int)n, p);
            char *end;
            long v = strtol(sp->part[sp->n], &end, 10);
            sp->index[sp->n] = *end == 0 && v >= 1 ? (int)v : 0;
        }
        sp->n++;
        p += n;
        if (*p == '.') { p++; if (!*p) return -1; }
    }
    return sp->n ? 0 : -1;
}

/* A policy entry's name: "threshold" or { "threshold", ... }, without a
 * directory or .lua, so policies.threshold matches "./policies/threshold.lua". */
static int policy_name_is(lua_State *L, int idx, const char *want) {
    int t = lua_type(L, idx) == LUA_TTABLE ? lua_geti(L, idx, 1) : (lua_pushvalue(L, idx), lua_type(L, -1));
    int match = 0;
    if (t == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1), *slash = strrchr(s, '/');
        if (slash) s = slash + 1;
        size_t n = strlen(s), wl = strlen(want);
        if (n > 4 && !strcmp(s + n - 4, ".lua")) n -= 4;
        match = n == wl && !strncmp(s, want, n);
    }
    lua_pop(L, 1);
    return match;
}

/* Make t[k] (t at idx) a table to descend into: a preset string under
 * "model" becomes { preset = s }, a policy name { name }. */
static int child_table(lua_State *L, int idx, int in_policies, const char *key) {
    int t = lua_gettable(L, idx);   /* key already pushed */
    if (t == LUA_TTABLE) return 1;
    if (t == LUA_TSTRING && (in_policies || (key && !strcmp(key, "model")))) {
        lua_createtable(L, 1, 1);
        lua_insert(L, -2);
        if (in_policies) lua_rawseti(L, -2, 1);
        else lua_setfield(L, -2, "preset");
        return 2;   /* new table on top, to be stored back */
    }
    lua_pop(L, 1);
    return 0;
}

/* Set the value on the stack top at path[i..] below the table at idx. */
static int set_at(lua_State *L, int idx, const set_path *sp, int i, int in_policies, const char *set,
                  const char *file, mplb_err *err) {
    idx = lua_absindex(L, idx);
    int val = lua_gettop(L);
    const char *k = sp->part[i];
    if (in_policies && !sp->index[i]) {
        /* policies.NAME...: every entry of that name */
        int n = (int)lua_rawlen(L, idx), hits = 0;
        if (i == sp->n - 1)
            return mplb_err_set(err, MPLB_ECONFIG, "%s: --set %s: name a parameter: policies.%s.PARAM=value", file, set, k);
        for (int e = 1; e <= n; e++) {
            lua_rawgeti(L, idx, e);
            int hit = policy_name_is(L, -1, k);
            lua_pop(L, 1);
            if (!hit) continue;
            hits++;
            lua_pushinteger(L, e);
            int made = child_table(L, idx, 1, NULL);
            lua_pushvalue(L, val);
            int rc = set_at(L, -2, sp, i + 1, 0, set, file, err);
            if (rc < 0) { lua_settop(L, val); return rc; }
            if (made == 2) lua_rawseti(L, idx, e);
            else lua_pop(L, 1);
        }
        lua_settop(L, val - 1);
        if (!hits) {
            char have[512] = "";
            size_t h = 0;
            for (int e = 1; e <= n && h < sizeof have; e++) {
                lua_rawgeti(L, idx, e);
                if (lua_type(L, -1) == LUA_TTABLE) lua_geti(L, -1, 1);
                else lua_pushvalue(L, -1);
                h += (size_t)snprintf(have + h, sizeof have - h, "%s%s", e > 1 ? ", " : "", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
                lua_pop(L, 2);
            }
            return mplb_err_set(err, MPLB_ECONFIG, "%s: --set %s: no policy named '%s' in policies (have: %s)", file, set, k, have);
        }
        return 0;
    }
    if (sp->index[i]) lua_pushinteger(L, sp->index[i]);
    else lua_pushstring(L, k);
    if (i == sp->n - 1) {
        lua_pushvalue(L, val);
        lua_settable(L, idx);
        lua_settop(L, val - 1);
        return 0;
    }
    lua_pushvalue(L, -1);
    int made = child_table(L, idx, in_policies, k);
    if (!made) {
        lua_settop(L, val - 1);
        return mplb_err_set(err, MPLB_ECONFIG, "%s: --set %s: '%s' is not a table in the experiment", file, set, k);
    }
    lua_pushvalue(L, val);
    int rc = set_at(L, -2, sp, i + 1, i == 0 && !strcmp(k, "policies"), set, file, err);
    if (rc < 0) { lua_settop(L, val - 1); return rc; }
    if (made == 2) lua_settable(L, idx);   /* key, new table */
    lua_settop(L, val - 1);
    return 0;
}

int mplb_lua_apply_set(mplb_lsb *sb, int top, const char *set, const char *file, mplb_err *err) {
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return mplb_err_set(err, MPLB_EINVAL, "--set '%s': expected key=value", set);
    char key[256];
    size_t kl = (size_t)(eq - set);
    if (kl >= sizeof key) return mplb_err_set(err, MPLB_EINVAL, "--set '%s': key too long", set);
    memcpy(key, set, kl);
    key[kl] = 0;
    set_path sp;
    if (parse_path(key, &sp) < 0)
        return mplb_err_set(err, MPLB_EINVAL, "--set '%s': expected a key path such as workload.tokens or policies[2].tau", set);
    lua_State *L = sb->L;
    top = lua_absindex(L, top);
    /* the value: a Lua expression with no globals, else the text as a string;
     * evaluated under the sandbox's limits, at any length */
    size_t vl = strlen(eq + 1);
    char *code = malloc(vl + 8);
    if (!code) return mplb_err_set(err, MPLB_ENOMEM, "--set: out of memory");
    memcpy(code, "return ", 7);
    memcpy(code + 7, eq + 1, vl + 1);
    int ok = luaL_loadbufferx(L, code, vl + 7, "=--set", "t") == LUA_OK;
    free(code);
    if (ok) {
        lua_newtable(L);                 /* an empty _ENV */
        lua_setupvalue(L, -2, 1);
        mplb_err perr = {0};
        int prc = mplb_lsb_pcall(sb, 0, 1, NULL, &perr);
        if (prc == MPLB_ELIMIT)
            return mplb_err_set(err, MPLB_ELIMIT, "%s: --set %.*s: %s", file, (int)kl, set, perr.msg);
        ok = prc == 0;
        if (!ok) lua_pushnil(L);         /* mplb_lsb_pcall popped its message */
    }
    if (!ok || lua_isnil(L, -1) || lua_isfunction(L, -1)) { lua_pop(L, 1); lua_pushstring(L, eq + 1); }
    return set_at(L, top, &sp, 0, 0, set, file, err);
}
