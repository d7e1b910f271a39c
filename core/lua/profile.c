/* Hardware profiles: profiles/NAME.lua returning the chip's peaks.
 *
 * Units in the file are the datasheet's: TFLOPS, GB/s, microseconds, GB.
 * `inherit = "h100"` loads that profile first and overrides what is given.
 * `compute_as = { nvfp4 = "fp8_e4m3" }` says a format has no native units and
 * runs at another format's rate after dequantisation (FP4 on Hopper). */
#include "mplb/config.h"
#include "lsandbox.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

#define PROF_DEPTH_MAX 8

static int pfail(const char *file, const char *field, const char *what, mplb_err *err) {
    return mplb_err_set(err, MPLB_ECONFIG, "%s: field %s: %s", file, field, what);
}

/* Read a non-negative number field if present. */
static int pnum(lua_State *L, int t, const char *file, const char *key, double *out,
                int positive, mplb_err *err) {
    int ty = lua_getfield(L, t, key);
    int rc = 0;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) rc = pfail(file, key, "expected a number", err);
        else {
            double v = lua_tonumber(L, -1);
            if (!isfinite(v) || v < 0 || (positive && v == 0)) {
                char m[96];
                snprintf(m, sizeof m, "%g must be %s", v, positive ? "positive" : "non-negative");
                rc = pfail(file, key, m, err);
            } else *out = v;
        }
    }
    lua_pop(L, 1);
    return rc;
}

static int read_curve(lua_State *L, int t, const char *file, const char *field,
                      mplb_eff_pt *pts, int *n, mplb_err *err) {
    int len = (int)luaL_len(L, t);
    if (len < 1 || len > MPLB_EFF_MAX) {
        char m[96];
        snprintf(m, sizeof m, "needs 1..%d points {tokens, efficiency}", MPLB_EFF_MAX);
        return pfail(file, field, m, err);
    }
    for (int i = 1; i <= len; i++) {
        lua_geti(L, t, i);
        int ok = lua_istable(L, -1);
        double nn = 0, e = 0;
        if (ok) {
            lua_geti(L, -1, 1); lua_geti(L, -2, 2);
            ok = lua_isnumber(L, -2) && lua_isnumber(L, -1);
            nn = lua_tonumber(L, -2); e = lua_tonumber(L, -1);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (!ok || !(nn >= 1) || !(e > 0 && e <= 1) || (i > 1 && !(nn > pts[i - 2].n))) {
            char m[160];
            snprintf(m, sizeof m, "point %d must be {tokens >= 1 increasing, 0 < efficiency <= 1}", i);
            return pfail(file, field, m, err);
        }
        pts[i - 1].n = nn;
        pts[i - 1].eff = e;
    }
    *n = len;
    return 0;
}

static int load_rec(const char *name, const char *base_dir, mplb_profile *p, int depth, mplb_err *err) {
    char path[MPLB_PATH_MAX];
    int rc;
    if (depth > PROF_DEPTH_MAX) return mplb_err_set(err, MPLB_ECONFIG, "profile '%s': inherit chain too deep", name);
    if ((rc = mplb_find_data("profiles", name, base_dir, path, err)) < 0) return rc;
    mplb_lsb sb;
    if ((rc = mplb_lsb_open(&sb, 16u << 20, 10000000LL, err)) < 0) return rc;
    lua_State *L = sb.L;
    if ((rc = mplb_lsb_dofile(&sb, path, 1, err)) < 0) goto out;
    if (!lua_istable(L, -1)) { rc = mplb_err_set(err, MPLB_ECONFIG, "%s: a profile must return a table", path); goto out; }
    if ((rc = mplb_lsb_check_plain(&sb, -1, 1, path, err)) < 0) goto out;
    int t = lua_gettop(L);
    if (lua_getfield(L, t, "inherit") == LUA_TSTRING) {
        char parent[MPLB_NAME_MAX];
        snprintf(parent, sizeof parent, "%s", lua_tostring(L, -1));
        if ((rc = load_rec(parent, base_dir, p, depth + 1, err)) < 0) goto out;
    } else if (!lua_isnil(L, -1)) { rc = pfail(path, "inherit", "expected a profile name", err); goto out; }
    lua_pop(L, 1);
    snprintf(p->path, sizeof p->path, "%s", path);
    if (lua_getfield(L, t, "name") == LUA_TSTRING) snprintf(p->name, sizeof p->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    static const struct { const char *key; size_t off; int positive; } scalars[] = {
        {"hbm_gbps", offsetof(mplb_profile, hbm_gbps), 1},
        {"nvlink_gbps", offsetof(mplb_profile, nvlink_gbps), 1},
        {"net_gbps", offsetof(mplb_profile, net_gbps), 1},
        {"nvlink_lat_us", offsetof(mplb_profile, nvlink_lat_us), 0},
        {"net_lat_us", offsetof(mplb_profile, net_lat_us), 0},
        {"launch_us", offsetof(mplb_profile, launch_us), 0},
        {"conv_eff", offsetof(mplb_profile, conv_eff), 1},
        {"memory_gb", offsetof(mplb_profile, memory_gb), 1},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if ((rc = pnum(L, t, path, scalars[i].key, (double *)((char *)p + scalars[i].off),
                       scalars[i].positive, err)) < 0) goto out;
    if (p->conv_eff > 1) { rc = pfail(path, "conv_eff", "must be in (0, 1]", err); goto out; }
    /* peak_tflops = { bf16 = 989, ... } */
    int ty = lua_getfield(L, t, "peak_tflops");
    if (ty == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            mplb_prec pr;
            char field[128];
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            snprintf(field, sizeof field, "peak_tflops.%s", k);
            if (mplb_prec_parse(k, &pr) < 0) { lua_pop(L, 3); rc = pfail(path, field, "unknown precision", err); goto out; }
            double v = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(v > 0) || !isfinite(v)) { lua_pop(L, 3); rc = pfail(path, field, "must be a positive number", err); goto out; }
            p->peak_tflops[pr] = v;
            p->compute_as[pr] = pr;
            lua_pop(L, 1);
        }
    } else if (ty != LUA_TNIL) { lua_pop(L, 1); rc = pfail(path, "peak_tflops", "expected a table", err); goto out; }
    lua_pop(L, 1);
    ty = lua_getfield(L, t, "compute_as");
    if (ty == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            mplb_prec a, b;
            char field[128];
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            snprintf(field, sizeof field, "compute_as.%s", k);
            if (mplb_prec_parse(k, &a) < 0 || lua_type(L, -1) != LUA_TSTRING ||
                mplb_prec_parse(lua_tostring(L, -1), &b) < 0) {
                lua_pop(L, 3); rc = pfail(path, field, "expected precision = precision", err); goto out;
            }
            p->compute_as[a] = b;
            lua_pop(L, 1);
        }
    } else if (ty != LUA_TNIL) { lua_pop(L, 1); rc = pfail(path, "compute_as", "expected a table", err); goto out; }
    lua_pop(L, 1);
    /* eff = { default = {{n, e}, ...}, fp8_e4m3 = {...} } */
    ty = lua_getfield(L, t, "eff");
    if (ty == LUA_TTABLE) {
        int et = lua_gettop(L);
        if (lua_getfield(L, et, "default") == LUA_TTABLE) {
            mplb_eff_pt pts[MPLB_EFF_MAX];
            int n;
            if ((rc = read_curve(L, lua_gettop(L), path, "eff.default", pts, &n, err)) < 0) { lua_pop(L, 2); goto out; }
            for (int pr = 0; pr < MPLB_PREC_COUNT; pr++) {
                memcpy(p->eff[pr], pts, sizeof pts);
                p->n_eff[pr] = n;
            }
        }
        lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, et)) {
            mplb_prec pr;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            char field[128];
            snprintf(field, sizeof field, "eff.%s", k);
            if (strcmp(k, "default") != 0) {
                if (mplb_prec_parse(k, &pr) < 0 || !lua_istable(L, -1)) {
                    lua_pop(L, 3); rc = pfail(path, field, "unknown precision or not a curve", err); goto out;
                }
                if ((rc = read_curve(L, lua_gettop(L), path, field, p->eff[pr], &p->n_eff[pr], err)) < 0) { lua_pop(L, 3); goto out; }
            }
            lua_pop(L, 1);
        }
    } else if (ty != LUA_TNIL) { lua_pop(L, 1); rc = pfail(path, "eff", "expected a table", err); goto out; }
    lua_pop(L, 1);
    rc = 0;
out:
    mplb_lsb_close(&sb);
    return rc;
}

int mplb_profile_load(const char *name_or_path, const char *base_dir,
                      mplb_profile *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) out->compute_as[p] = (mplb_prec)p;
    int rc = load_rec(name_or_path, base_dir, out, 0, err);
    if (rc < 0) return rc;
    /* The complete profile must name every rate the cost model divides by. */
    static const char *need[] = {"hbm_gbps", "nvlink_gbps", "net_gbps", "conv_eff", "memory_gb"};
    double vals[] = {out->hbm_gbps, out->nvlink_gbps, out->net_gbps, out->conv_eff, out->memory_gb};
    for (int i = 0; i < 5; i++)
        if (!(vals[i] > 0)) return pfail(out->path, need[i], "missing (required, positive)", err);
    if (!(out->peak_tflops[MPLB_PREC_BF16] > 0)) return pfail(out->path, "peak_tflops.bf16", "missing (required)", err);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        if (!(out->peak_tflops[out->compute_as[p]] > 0)) out->compute_as[p] = MPLB_PREC_BF16;
        if (out->n_eff[p] == 0) {
            out->eff[p][0].n = 1;
            out->eff[p][0].eff = 1;
            out->n_eff[p] = 1;
        }
    }
    if (!out->name[0]) snprintf(out->name, sizeof out->name, "%s", name_or_path);
    for (int p = 0; p < MPLB_PREC_COUNT; p++)
        for (int i = 0; i < out->n_eff[p]; i++) {
            out->eff_ln[p][i] = log(out->eff[p][i].n);
            if (i > 0)
                out->eff_slope[p][i] = (out->eff[p][i].eff - out->eff[p][i - 1].eff) /
                                       (out->eff_ln[p][i] - out->eff_ln[p][i - 1]);
        }
    out->eff_ln_ready = 1;
    return 0;
}

int mplb_accuracy_load(const char *path, double *relerr, mplb_err *err) {
    mplb_lsb sb;
    int rc = mplb_lsb_open(&sb, 8u << 20, 10000000LL, err);
    if (rc < 0) return rc;
    lua_State *L = sb.L;
    if ((rc = mplb_lsb_dofile(&sb, path, 1, err)) < 0) goto out;
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "error") != LUA_TTABLE) {
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: field error: expected a table { format = relative error, ... }", path);
        goto out;
    }
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        char field[64];
        snprintf(field, sizeof field, "error.%s", mplb_prec_name(p));
        lua_getfield(L, -1, mplb_prec_name(p));
        double v = lua_tonumber(L, -1);
        int ok = lua_isnumber(L, -1) && isfinite(v) && v >= 0;
        lua_pop(L, 1);
        if (!ok) { rc = pfail(path, field, "missing or not a non-negative number", err); goto out; }
        relerr[p] = v;
    }
    relerr[MPLB_PREC_BF16] = 0;   /* the reference format, as in the built-in table */
out:
    mplb_lsb_close(&sb);
    return rc;
}
