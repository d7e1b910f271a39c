/* Hardware profiles: profiles/NAME.lua returning the chip's parameters.
 *
 * Units in the file are the datasheet's: TFLOPS, GB/s, microseconds, GB.
 * Each value is a number or a table saying where it comes from:
 *   hbm_gbps = { 3350, src = "datasheet", ref = "NVIDIA H100 datasheet" },
 *   hbm_eff  = { 0.8, src = "assumption", range = {0.65, 0.9}, ref = "why" },
 * src is datasheet, published, measured or assumption; an assumption needs a
 * range holding its value, the others a ref. A bare number loads with
 * provenance "unspecified" (shipped profiles have none: a test checks).
 * `inherit = "h100"` loads that profile first and overrides what is given.
 * `compute_as = { nvfp4 = "fp8_e4m3" }` says a format has no native units and
 * runs at another format's rate after dequantisation (FP4 on Hopper).
 * `eff = { default = { {n, e}, ..., src = "measured", ref = "..." } }`: a
 * measured eff(n) curve, its provenance in the same table. */
#include "mplb/config.h"
#include "lsandbox.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#define PROF_DEPTH_MAX 8

const char *mplb_src_name(int s) {
    static const char *names[] = {
#define MPLB_SRC_NAME(id, name) name,
        MPLB_SRC_MAP(MPLB_SRC_NAME)
#undef MPLB_SRC_NAME
    };
    return s >= 0 && s < MPLB_SRC_COUNT ? names[s] : NULL;
}

static const struct { const char *key; size_t off; int required, max_one; } scalars[] = {
#define MPLB_PS_ROW(f, req, m1, what) {#f, offsetof(mplb_profile, f), req, m1},
    MPLB_PROFILE_SCALARS(MPLB_PS_ROW)
#undef MPLB_PS_ROW
};

/* One profile file being read: its path and text, for "file:line: field". */
typedef struct pfile { const char *path; const char *src; } pfile;

/* Line of the first "key =" in the source, or 0 (points a person at it). */
static int key_line(const char *src, const char *key) {
    size_t kl = strlen(key);
    int line = 1;
    for (const char *p = src; src && *p; p++) {
        if (*p == '\n') { line++; continue; }
        if (strncmp(p, key, kl) == 0 && (p == src || !(p[-1] == '_' || isalnum((unsigned char)p[-1])))) {
            const char *q = p + kl;
            while (*q == ' ' || *q == '\t') q++;
            if (*q == '=' && q[1] != '=') return line;
        }
    }
    return 0;
}

static int pfail(const pfile *f, const char *field, const char *what, mplb_err *err) {
    const char *leaf = strrchr(field, '.');
    int line = key_line(f->src, leaf ? leaf + 1 : field);
    if (line) return mplb_err_set(err, MPLB_ECONFIG, "%s:%d: field %s: %s", f->path, line, field, what);
    return mplb_err_set(err, MPLB_ECONFIG, "%s: field %s: %s", f->path, field, what);
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), d[64];
    if (la > 62 || lb > 62) return 99;
    for (int j = 0; j <= lb; j++) d[j] = j;
    for (int i = 1; i <= la; i++) {
        int prev = d[0];
        d[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cur = d[j], sub = prev + (a[i - 1] != b[j - 1]);
            int best = d[j] + 1 < d[j - 1] + 1 ? d[j] + 1 : d[j - 1] + 1;
            d[j] = best < sub ? best : sub;
            prev = cur;
        }
    }
    return d[lb];
}

/* Top-level keys a profile may have, for the closest-name hint. */
static const char *top_keys[] = {"name", "inherit", "peak_tflops", "mma_eff", "compute_as", "eff",
#define MPLB_PS_KEY(f, req, m1, what) #f,
    MPLB_PROFILE_SCALARS(MPLB_PS_KEY)
#undef MPLB_PS_KEY
};

static int unknown_key(const pfile *f, const char *k, mplb_err *err) {
    const char *best = top_keys[0];
    int bd = 1 << 20;
    for (size_t i = 0; i < sizeof top_keys / sizeof top_keys[0]; i++) {
        int d = edit_distance(k, top_keys[i]);
        if (d < bd) { bd = d; best = top_keys[i]; }
    }
    char m[160];
    snprintf(m, sizeof m, "unknown field (closest valid name: %s)", best);
    return pfail(f, k, m, err);
}

/* Read the value at the top of the stack: a number, or a table
 * {value, src = "...", ref = "...", range = {lo, hi}}. */
static int read_value(lua_State *L, const pfile *f, const char *field, int max_one,
                      double *out, mplb_prov *pv, mplb_err *err) {
    mplb_prov p = {MPLB_SRC_UNSPECIFIED, 0, 0, ""};
    double v;
    int idx = lua_gettop(L);
    if (lua_type(L, idx) == LUA_TNUMBER) v = lua_tonumber(L, idx);
    else if (lua_istable(L, idx)) {
        lua_geti(L, idx, 1);
        int ok = lua_type(L, -1) == LUA_TNUMBER;
        v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!ok) return pfail(f, field, "expected {value, src = ..., ref = ...} with a number first", err);
        if (lua_getfield(L, idx, "src") != LUA_TSTRING) {
            lua_pop(L, 1);
            return pfail(f, field, "src missing: datasheet, published, measured or assumption", err);
        }
        const char *sn = lua_tostring(L, -1);
        p.src = -1;
        for (int i = 1; i < MPLB_SRC_COUNT; i++)
            if (strcmp(sn, mplb_src_name(i)) == 0) p.src = i;
        lua_pop(L, 1);
        if (p.src < 0) return pfail(f, field, "src must be datasheet, published, measured or assumption", err);
        if (lua_getfield(L, idx, "ref") == LUA_TSTRING) snprintf(p.ref, sizeof p.ref, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        p.lo = p.hi = v;
        if (lua_getfield(L, idx, "range") == LUA_TTABLE) {
            lua_geti(L, -1, 1); lua_geti(L, -2, 2);
            ok = lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER;
            p.lo = lua_tonumber(L, -2); p.hi = lua_tonumber(L, -1);
            lua_pop(L, 2);
            if (!ok || !(p.lo <= v && v <= p.hi) || p.lo < 0)
                { lua_pop(L, 1); return pfail(f, field, "range must be {lo, hi} with 0 <= lo <= value <= hi", err); }
        } else if (p.src == MPLB_SRC_ASSUMPTION) {
            lua_pop(L, 1);
            return pfail(f, field, "an assumption needs range = {lo, hi}", err);
        }
        lua_pop(L, 1);
        if (p.src != MPLB_SRC_ASSUMPTION && !p.ref[0]) return pfail(f, field, "ref missing: say which datasheet or table", err);
    } else return pfail(f, field, "expected a number or {value, src = ..., ref = ...}", err);
    if (!isfinite(v) || v < 0) return pfail(f, field, "must be a non-negative number", err);
    if (max_one && (p.hi > 1 || !(v > 0))) return pfail(f, field, "must be in (0, 1]", err);
    *out = v;
    *pv = p;
    return 0;
}

/* A curve's provenance: its table's src and ref keys (unspecified when it
 * has no src; a measured or published curve must say where: ref). */
static int read_curve_prov(lua_State *L, int t, const pfile *f, const char *field, mplb_prov *pv, mplb_err *err) {
    memset(pv, 0, sizeof *pv);
    pv->src = MPLB_SRC_UNSPECIFIED;
    int ty = lua_getfield(L, t, "src");
    const char *sn = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    for (int i = 1; sn && i < MPLB_SRC_COUNT; i++)
        if (strcmp(sn, mplb_src_name(i)) == 0) pv->src = i;
    lua_pop(L, 1);
    if (ty != LUA_TNIL && (!sn || pv->src == MPLB_SRC_UNSPECIFIED))
        return pfail(f, field, "src must be datasheet, published, measured or assumption", err);
    if (lua_getfield(L, t, "ref") == LUA_TSTRING) snprintf(pv->ref, sizeof pv->ref, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (pv->src != MPLB_SRC_UNSPECIFIED && pv->src != MPLB_SRC_ASSUMPTION && !pv->ref[0])
        return pfail(f, field, "ref missing: say which measurement or table", err);
    return 0;
}

static int read_curve(lua_State *L, int t, const pfile *f, const char *field,
                      mplb_eff_pt *pts, int *n, mplb_prov *pv, mplb_err *err) {
    int rc = read_curve_prov(L, t, f, field, pv, err);
    if (rc < 0) return rc;
    int len = (int)luaL_len(L, t);
    if (len < 1 || len > MPLB_EFF_MAX) {
        char m[96];
        snprintf(m, sizeof m, "needs 1..%d points {tokens, efficiency}", MPLB_EFF_MAX);
        return pfail(f, field, m, err);
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
            return pfail(f, field, m, err);
        }
        pts[i - 1].n = nn;
        pts[i - 1].eff = e;
    }
    *n = len;
    return 0;
}

/* peak_tflops / mma_eff: { precision = value, ... } */
static int read_prec_table(lua_State *L, int t, const pfile *f, const char *key, int max_one,
                           double *vals, mplb_prov *provs, mplb_prec *compute_as, mplb_err *err) {
    int ty = lua_getfield(L, t, key);
    if (ty == LUA_TNIL) { lua_pop(L, 1); return 0; }
    if (ty != LUA_TTABLE) { lua_pop(L, 1); return pfail(f, key, "expected a table { precision = value }", err); }
    int pt = lua_gettop(L), rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, pt)) {
        mplb_prec pr;
        char field[128];
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        snprintf(field, sizeof field, "%s.%s", key, k);
        if (mplb_prec_parse(k, &pr) < 0) {
            char m[600];
            snprintf(m, sizeof m, "unknown precision (valid: %s)", mplb_prec_all_names());
            rc = pfail(f, field, m, err);
        } else if ((rc = read_value(L, f, field, max_one, &vals[pr], &provs[pr], err)) == 0) {
            if (!max_one && !(vals[pr] > 0)) rc = pfail(f, field, "must be positive", err);
            if (compute_as) compute_as[pr] = pr;
        }
        lua_pop(L, rc == 0 ? 1 : 2);
    }
    lua_pop(L, 1);
    return rc;
}

static int read_compute_as(lua_State *L, int t, const pfile *f, mplb_profile *p, mplb_err *err) {
    int ty = lua_getfield(L, t, "compute_as");
    if (ty == LUA_TNIL) { lua_pop(L, 1); return 0; }
    if (ty != LUA_TTABLE) { lua_pop(L, 1); return pfail(f, "compute_as", "expected a table", err); }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        mplb_prec a, b;
        char field[128];
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        snprintf(field, sizeof field, "compute_as.%s", k);
        if (mplb_prec_parse(k, &a) < 0 || lua_type(L, -1) != LUA_TSTRING ||
            mplb_prec_parse(lua_tostring(L, -1), &b) < 0) {
            lua_pop(L, 3);
            return pfail(f, field, "expected precision = precision", err);
        }
        p->compute_as[a] = b;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* eff = { default = {{n, e}, ...}, fp8_e4m3 = {...} }: measured curves */
static int read_eff(lua_State *L, int t, const pfile *f, mplb_profile *p, mplb_err *err) {
    int ty = lua_getfield(L, t, "eff");
    if (ty == LUA_TNIL) { lua_pop(L, 1); return 0; }
    if (ty != LUA_TTABLE) { lua_pop(L, 1); return pfail(f, "eff", "expected a table", err); }
    int et = lua_gettop(L), rc = 0;
    if (lua_getfield(L, et, "default") == LUA_TTABLE) {
        mplb_eff_pt pts[MPLB_EFF_MAX];
        mplb_prov pv;
        int n;
        if ((rc = read_curve(L, lua_gettop(L), f, "eff.default", pts, &n, &pv, err)) == 0)
            for (int pr = 0; pr < MPLB_PREC_COUNT; pr++) {
                memcpy(p->eff[pr], pts, sizeof pts);
                p->n_eff[pr] = n;
                p->eff_prov[pr] = pv;
            }
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, et)) {
        mplb_prec pr;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        char field[128];
        snprintf(field, sizeof field, "eff.%s", k);
        if (strcmp(k, "default") != 0) {
            if (mplb_prec_parse(k, &pr) < 0 || !lua_istable(L, -1))
                rc = pfail(f, field, "unknown precision or not a curve", err);
            else rc = read_curve(L, lua_gettop(L), f, field, p->eff[pr], &p->n_eff[pr], &p->eff_prov[pr], err);
        }
        lua_pop(L, rc == 0 ? 1 : 2);
    }
    lua_pop(L, 1);
    return rc;
}

static int load_rec(const char *name, const char *base_dir, mplb_profile *p, int depth, mplb_err *err) {
    char path[MPLB_PATH_MAX];
    int rc;
    if (depth > PROF_DEPTH_MAX) return mplb_err_set(err, MPLB_ECONFIG, "profile '%s': inherit chain too deep", name);
    if ((rc = mplb_find_data("profiles", name, base_dir, path, err)) < 0) return rc;
    char *text = NULL;
    size_t len;
    if ((rc = mplb_read_file(path, &text, &len, err)) < 0) return rc;
    pfile f = {path, text};
    mplb_lsb sb;
    if ((rc = mplb_lsb_open(&sb, 16u << 20, 10000000LL, err)) < 0) { free(text); return rc; }
    lua_State *L = sb.L;
    if ((rc = mplb_lsb_dofile(&sb, path, 1, err)) < 0) goto out;
    if (!lua_istable(L, -1)) { rc = mplb_err_set(err, MPLB_ECONFIG, "%s: a profile must return a table", path); goto out; }
    if ((rc = mplb_lsb_check_plain(&sb, -1, 1, path, err)) < 0) goto out;
    int t = lua_gettop(L);
    /* every key must be known: a misspelt parameter is an error, not a default */
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int known = 0;
        for (size_t i = 0; i < sizeof top_keys / sizeof top_keys[0]; i++) known |= strcmp(k, top_keys[i]) == 0;
        lua_pop(L, 1);
        if (!known) { char kk[64]; snprintf(kk, sizeof kk, "%s", k); lua_pop(L, 1); rc = unknown_key(&f, kk, err); goto out; }
    }
    if (lua_getfield(L, t, "inherit") == LUA_TSTRING) {
        char parent[MPLB_NAME_MAX];
        snprintf(parent, sizeof parent, "%s", lua_tostring(L, -1));
        if ((rc = load_rec(parent, base_dir, p, depth + 1, err)) < 0) goto out;
    } else if (!lua_isnil(L, -1)) { rc = pfail(&f, "inherit", "expected a profile name", err); goto out; }
    lua_pop(L, 1);
    snprintf(p->path, sizeof p->path, "%s", path);
    if (lua_getfield(L, t, "name") == LUA_TSTRING) snprintf(p->name, sizeof p->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    for (size_t i = 0; i < MPLB_PS_COUNT; i++) {
        if (lua_getfield(L, t, scalars[i].key) != LUA_TNIL)
            rc = read_value(L, &f, scalars[i].key, scalars[i].max_one, (double *)((char *)p + scalars[i].off),
                            &p->prov[i], err);
        lua_pop(L, 1);
        if (rc < 0) goto out;
    }
    if ((rc = read_prec_table(L, t, &f, "peak_tflops", 0, p->peak_tflops, p->peak_prov, p->compute_as, err)) < 0 ||
        (rc = read_prec_table(L, t, &f, "mma_eff", 1, p->mma_eff, p->mma_prov, NULL, err)) < 0 ||
        (rc = read_compute_as(L, t, &f, p, err)) < 0 || (rc = read_eff(L, t, &f, p, err)) < 0)
        goto out;
    rc = 0;
out:
    mplb_lsb_close(&sb);
    free(text);
    return rc;
}

void mplb_profile_ideal(mplb_profile *hw) {
    memset(hw, 0, sizeof *hw);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        hw->compute_as[p] = (mplb_prec)p;
        hw->mma_eff[p] = 1;
    }
    hw->hbm_eff = hw->nvlink_eff = hw->net_eff = hw->host_eff = hw->conv_eff = 1;
}

int mplb_profile_params(mplb_profile *hw, mplb_param out[MPLB_PARAMS_MAX]) {
    int n = 0;
    for (int i = 0; i < MPLB_PS_COUNT; i++, n++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", scalars[i].key);
        out[n].value = (double *)((char *)hw + scalars[i].off);
        out[n].prov = &hw->prov[i];
    }
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        if ((int)hw->compute_as[p] != p || !(hw->peak_tflops[p] > 0)) continue; /* not a native rate */
        snprintf(out[n].name, sizeof out[n].name, "peak_tflops.%s", mplb_prec_name(p));
        out[n].value = &hw->peak_tflops[p];
        out[n].prov = &hw->peak_prov[p];
        n++;
        snprintf(out[n].name, sizeof out[n].name, "mma_eff.%s", mplb_prec_name(p));
        out[n].value = &hw->mma_eff[p];
        out[n].prov = &hw->mma_prov[p];
        n++;
    }
    return n;
}

int mplb_profile_load(const char *name_or_path, const char *base_dir,
                      mplb_profile *out, mplb_err *err) {
    mplb_profile_ideal(out);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) out->mma_eff[p] = 0;
    out->hbm_eff = out->nvlink_eff = out->net_eff = out->host_eff = out->conv_eff = 0;
    int rc = load_rec(name_or_path, base_dir, out, 0, err);
    if (rc < 0) return rc;
    pfile f = {out->path, NULL};
    /* The complete profile must name every rate the cost model divides by. */
    for (int i = 0; i < MPLB_PS_COUNT; i++) {
        double v = *(double *)((char *)out + scalars[i].off);
        if (scalars[i].required && !(v > 0)) return pfail(&f, scalars[i].key, "missing (required, positive)", err);
    }
    if (!(out->peak_tflops[MPLB_PREC_BF16] > 0)) return pfail(&f, "peak_tflops.bf16", "missing (required)", err);
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        if (!(out->peak_tflops[out->compute_as[p]] > 0)) out->compute_as[p] = MPLB_PREC_BF16;
        mplb_prec cp = out->compute_as[p];
        if ((int)cp == p && !(out->mma_eff[p] > 0)) {
            char field[64];
            snprintf(field, sizeof field, "mma_eff.%s", mplb_prec_name(p));
            return pfail(&f, field, "missing (required for every precision with a peak)", err);
        }
        if (out->n_eff[p] == 0) {
            out->eff[p][0].n = 1;
            out->eff[p][0].eff = 1;
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
        if (!ok) { rc = mplb_err_set(err, MPLB_ECONFIG, "%s: field %s: missing or not a non-negative number", path, field); goto out; }
        relerr[p] = v;
    }
    relerr[MPLB_PREC_BF16] = 0;   /* the reference format, as in the built-in table */
out:
    mplb_lsb_close(&sb);
    return rc;
}
