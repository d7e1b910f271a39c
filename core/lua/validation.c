/* Reading validation/measurements.lua: see include/mplb/validate.h. */
#include "mplb/validate.h"
#include "lsandbox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

const char *mplb_valid_component_name(int c) {
    static const char *names[] = {
#define MPLB_VC_NAME(id, name) name,
        MPLB_VCOMP_MAP(MPLB_VC_NAME)
#undef MPLB_VC_NAME
    };
    return c >= 0 && c < MPLB_VC_COUNT ? names[c] : NULL;
}

static int lookup(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static const char *const comp_names[] = {
#define X(id, name) name,
    MPLB_VCOMP_MAP(X)
#undef X
};
static const char *const kind_names[] = {
#define X(id, name) name,
    MPLB_VKIND_MAP(X)
#undef X
};
static const char *const metric_names[] = {
#define X(id, name) name,
    MPLB_VMETRIC_MAP(X)
#undef X
};

/* The line of row `id` in the source text, to point a person at it. */
static int id_line(const char *src, const char *id) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\"", id);
    const char *p = strstr(src, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "'%s'", id);
        p = strstr(src, pat);
    }
    int line = 1;
    for (const char *q = src; p && q < p; q++) line += *q == '\n';
    return p ? line : 0;
}

typedef struct vctx { const char *path, *src; int index; char id[64]; mplb_err *err; } vctx;

static int vfail(const vctx *c, const char *field, const char *what) {
    int line = c->id[0] ? id_line(c->src, c->id) : 0;
    return mplb_err_set(c->err, MPLB_ECONFIG, "%s:%d: row %d (%s): field %s: %s", c->path, line, c->index,
                        c->id[0] ? c->id : "?", field, what);
}

static int get_str(lua_State *L, const vctx *c, const char *key, char *out, size_t cap) {
    int ok = lua_getfield(L, -1, key) == LUA_TSTRING;
    if (ok) snprintf(out, cap, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return ok ? 0 : vfail(c, key, "missing (a string)");
}



static int read_params(lua_State *L, const vctx *c, mplb_vrow *r) {
    if (lua_getfield(L, -1, "params") != LUA_TTABLE) { lua_pop(L, 1); return vfail(c, "params", "missing (a table)"); }
    int t = lua_gettop(L), rc = 0;
    r->prec = r->base = MPLB_PREC_BF16;
    r->groups = 1;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        char field[64];
        snprintf(field, sizeof field, "params.%s", k);
        double v = lua_tonumber(L, -1);
        int num = lua_type(L, -1) == LUA_TNUMBER && isfinite(v) && v >= 0;
        const char *sv = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!strcmp(k, "prec") || !strcmp(k, "base")) {
            if (!sv || mplb_prec_parse(sv, !strcmp(k, "prec") ? &r->prec : &r->base) < 0)
                rc = vfail(c, field, "expected a precision name");
        } else if (!strcmp(k, "mode")) {
            static const char *const modes[] = {"normal", "ll", "ll_nvlink"};
            if (!sv || (r->ll = lookup(sv, modes, 3)) < 0) rc = vfail(c, field, "expected \"normal\", \"ll\" or \"ll_nvlink\"");
        } else if (!strcmp(k, "metric")) {
            if (!sv || (r->metric = lookup(sv, metric_names, MPLB_VM_COUNT)) <= 0)
                rc = vfail(c, field, "expected bw_nvl, bw_rdma, latency or bw_io");
        } else if (!num) rc = vfail(c, field, "expected a non-negative number");
        else if (!strcmp(k, "groups")) r->groups = v;
        else if (!strcmp(k, "m")) r->m = v;
        else if (!strcmp(k, "n")) r->n = v;
        else if (!strcmp(k, "k")) r->k = v;
        else if (!strcmp(k, "ranks")) r->ranks = (int)v;
        else if (!strcmp(k, "gpn")) r->gpn = (int)v;
        else if (!strcmp(k, "tokens")) r->tokens = (int)v;
        else if (!strcmp(k, "hidden")) r->hidden = (int)v;
        else if (!strcmp(k, "topk")) r->topk = (int)v;
        else if (!strcmp(k, "experts")) r->experts = (int)v;
        else if (!strcmp(k, "node_groups")) r->node_groups = (int)v;
        else if (!strcmp(k, "group")) r->group = v;
        else if (!strcmp(k, "scale_bytes")) r->scale_bytes = v;
        else if (!strcmp(k, "out_bits")) r->out_bits = v;
        else rc = vfail(c, field, "unknown parameter (valid: groups m n k prec base mode metric ranks gpn tokens hidden "
                        "topk experts node_groups group scale_bytes out_bits)");
        lua_pop(L, 1);
    }
    if (rc < 0) lua_pop(L, 1);
    lua_pop(L, 1);
    return rc;
}

/* The fields each kind needs, so a row cannot silently evaluate to nothing. */
static int check_row(const vctx *c, const mplb_vrow *r) {
    if (r->kind == MPLB_VK_A2A) {
        if (r->ranks < 2 || r->gpn < 1 || r->tokens < 1 || r->hidden < 1 || r->topk < 1 || r->experts < r->topk ||
            r->experts % r->ranks || r->metric <= 0)
            return vfail(c, "params", "a2a needs ranks >= 2, gpn, tokens, hidden, topk, experts (a multiple of ranks), metric");
        if (r->component != MPLB_VC_DISPATCH && r->component != MPLB_VC_COMBINE)
            return vfail(c, "component", "an a2a row is a dispatch or a combine");
    } else if (r->kind == MPLB_VK_CAST) {
        if (!(r->m >= 1 && r->k >= 1 && r->group >= 1 && r->out_bits >= 1) || r->prec == MPLB_PREC_BF16 ||
            r->metric != MPLB_VM_BW_IO)
            return vfail(c, "params", "a cast needs m, k, group >= 1, out_bits >= 1, scale_bytes, a prec other than "
                         "bf16 and metric = \"bw_io\"");
        if (r->component != MPLB_VC_CONVERSION) return vfail(c, "component", "a cast row is the conversion component");
    } else {
        if (!(r->m >= 1 && r->n >= 1 && r->k >= 1 && r->groups >= 1))
            return vfail(c, "params", "a gemm needs groups, m, n, k >= 1");
        if ((r->kind == MPLB_VK_GEMM_RATIO) != (r->component == MPLB_VC_RATIO))
            return vfail(c, "component", "gemm_ratio rows are the ratio component, gemm rows compute");
    }
    return 0;
}

int mplb_valid_load(const char *path, mplb_vrow **rows, int *n, mplb_err *err) {
    *rows = NULL;
    *n = 0;
    char *text = NULL;
    size_t len;
    int rc = mplb_read_file(path, &text, &len, err);
    if (rc < 0) return rc;
    mplb_lsb sb;
    if ((rc = mplb_lsb_open(&sb, 64u << 20, 100000000LL, err)) < 0) { free(text); return rc; }
    lua_State *L = sb.L;
    mplb_vrow *out = NULL;
    if ((rc = mplb_lsb_dofile(&sb, path, 1, err)) < 0) goto done;
    if (!lua_istable(L, -1)) { rc = mplb_err_set(err, MPLB_ECONFIG, "%s: must return a list of rows", path); goto done; }
    int count = (int)luaL_len(L, -1);
    out = calloc(count > 0 ? (size_t)count : 1, sizeof *out);
    if (!out) { rc = mplb_err_set(err, MPLB_ENOMEM, "validation: out of memory"); goto done; }
    for (int i = 1; i <= count && rc == 0; i++) {
        vctx c = {path, text, i, "", err};
        mplb_vrow *r = &out[i - 1];
        if (lua_geti(L, -1, i) != LUA_TTABLE) { lua_pop(L, 1); rc = vfail(&c, "row", "expected a table"); break; }
        char comp[32], kind[32];
        if ((rc = get_str(L, &c, "id", r->id, sizeof r->id)) == 0) snprintf(c.id, sizeof c.id, "%s", r->id);
        if (rc == 0) rc = get_str(L, &c, "component", comp, sizeof comp);
        if (rc == 0 && (r->component = lookup(comp, comp_names, MPLB_VC_COUNT)) < 0)
            rc = vfail(&c, "component", "expected compute, ratio, dispatch, combine or conversion");
        if (rc == 0) rc = get_str(L, &c, "kind", kind, sizeof kind);
        if (rc == 0 && (r->kind = lookup(kind, kind_names, MPLB_VK_COUNT)) < 0)
            rc = vfail(&c, "kind", "expected gemm, gemm_ratio, a2a or cast");
        if (rc == 0) rc = get_str(L, &c, "profile", r->profile, sizeof r->profile);
        if (rc == 0) rc = get_str(L, &c, "unit", r->unit, sizeof r->unit);
        if (rc == 0) rc = get_str(L, &c, "source", r->source, sizeof r->source);
        if (rc == 0) rc = get_str(L, &c, "setting", r->setting, sizeof r->setting);
        if (rc == 0) {
            lua_getfield(L, -1, "measured");
            r->measured = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(r->measured > 0) || !isfinite(r->measured))
                rc = vfail(&c, "measured", "missing or not a positive number");
            lua_pop(L, 1);
        }
        if (rc == 0) rc = read_params(L, &c, r);
        if (rc == 0) rc = check_row(&c, r);
        for (int j = 0; rc == 0 && j < i - 1; j++)
            if (!strcmp(out[j].id, r->id)) rc = vfail(&c, "id", "duplicate id");
        r->line = id_line(text, r->id);
        lua_pop(L, 1);
    }
    if (rc == 0) { *rows = out; *n = count; out = NULL; }
done:
    free(out);
    mplb_lsb_close(&sb);
    free(text);
    return rc;
}
