/* Experiments and profiles from Lua: see include/mplb/config.h. */
#include "mplb/config.h"
#include "lsandbox.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lauxlib.h>

#ifndef MPLB_DATA_DIR
#define MPLB_DATA_DIR "."
#endif

#define CFG_MEM_LIMIT (64u << 20)
#define CFG_INSTR_LIMIT 50000000LL

/* A reader of one Lua table tree, for messages "file:line: field a.b: ...". */
typedef struct cfg {
    lua_State *L;
    const char *file;
    const char *src;   /* the file's text, to find the line a key is on */
    mplb_err *err;
} cfg;

/* The line of the first "key =" in the source, or 0: good enough to point a
 * user at the field, and never wrong about the file. */
static int key_line(const char *src, const char *key) {
    if (!src) return 0;
    size_t kl = strlen(key);
    int line = 1;
    for (const char *p = src; *p; p++) {
        if (*p == '\n') { line++; continue; }
        if (strncmp(p, key, kl) == 0 && (p == src || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            const char *q = p + kl;
            while (*q == ' ' || *q == '\t') q++;
            if (*q == '=' && q[1] != '=') return line;
        }
    }
    return 0;
}

static int cfg_fail(cfg *c, const char *path, const char *fmt, const char *detail) {
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    int line = key_line(c->src, leaf);
    char where[MPLB_PATH_MAX + 32];
    if (line) snprintf(where, sizeof where, "%s:%d", c->file, line);
    else snprintf(where, sizeof where, "%s", c->file);
    char what[512];
    snprintf(what, sizeof what, fmt, detail);
    return mplb_err_set(c->err, MPLB_ECONFIG, "%s: field %s: %s", where, path, what);
}

/* Push t[key] for the table at idx; returns its Lua type. */
static int cfg_get(cfg *c, int idx, const char *key) {
    return lua_getfield(c->L, idx, key);
}

static int cfg_int(cfg *c, int idx, const char *path, const char *key, int required,
                   long long def, long long lo, long long hi, long long *out) {
    int t = cfg_get(c, idx, key);
    int rc = 0;
    if (t == LUA_TNIL) {
        if (required) rc = cfg_fail(c, path, "%s", "missing (required)");
        else *out = def;
    } else if (t != LUA_TNUMBER || !lua_isinteger(c->L, -1)) {
        rc = cfg_fail(c, path, "expected an integer, got %s",
                      t == LUA_TNUMBER ? "a non-integer number" : lua_typename(c->L, t));
    } else {
        long long v = lua_tointeger(c->L, -1);
        if (v < lo || v > hi) {
            char d[128];
            snprintf(d, sizeof d, "%lld is outside [%lld, %lld]", v, lo, hi);
            rc = cfg_fail(c, path, "%s", d);
        } else *out = v;
    }
    lua_pop(c->L, 1);
    return rc;
}

static int cfg_num(cfg *c, int idx, const char *path, const char *key, int required,
                   double def, double lo, double hi, double *out) {
    int t = cfg_get(c, idx, key);
    int rc = 0;
    if (t == LUA_TNIL) {
        if (required) rc = cfg_fail(c, path, "%s", "missing (required)");
        else *out = def;
    } else if (t != LUA_TNUMBER) {
        rc = cfg_fail(c, path, "expected a number, got %s", lua_typename(c->L, t));
    } else {
        double v = lua_tonumber(c->L, -1);
        if (!(v >= lo && v <= hi)) {
            char d[128];
            snprintf(d, sizeof d, "%g is outside [%g, %g]", v, lo, hi);
            rc = cfg_fail(c, path, "%s", d);
        } else *out = v;
    }
    lua_pop(c->L, 1);
    return rc;
}

static int cfg_str(cfg *c, int idx, const char *path, const char *key, int required,
                   const char *def, char *out, size_t cap) {
    int t = cfg_get(c, idx, key);
    int rc = 0;
    if (t == LUA_TNIL) {
        if (required) rc = cfg_fail(c, path, "%s", "missing (required)");
        else snprintf(out, cap, "%s", def);
    } else if (t != LUA_TSTRING) {
        rc = cfg_fail(c, path, "expected a string, got %s", lua_typename(c->L, t));
    } else {
        size_t n;
        const char *s = lua_tolstring(c->L, -1, &n);
        if (n >= cap) rc = cfg_fail(c, path, "%s", "string too long");
        else memcpy(out, s, n + 1);
    }
    lua_pop(c->L, 1);
    return rc;
}

/* ---- data files ---------------------------------------------------------- */

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int mplb_find_data_ext(const char *kind, const char *name, const char *ext, const char *base_dir,
                       char out[MPLB_PATH_MAX], mplb_err *err) {
    /* a path that names a file (as given, or beside the experiment) wins */
    if (is_file(name)) { snprintf(out, MPLB_PATH_MAX, "%s", name); return 0; }
    if (base_dir && name[0] != '/') {
        snprintf(out, MPLB_PATH_MAX, "%s/%s", base_dir, name);
        if (is_file(out)) return 0;
    }
    if (name[0] == '/' || name[0] == '.')
        return mplb_err_set(err, MPLB_EIO, "%s file '%s' not found", kind, name);
    const char *env = getenv("MPLB_DATA_DIR");
    const char *dirs[4] = {base_dir ? base_dir : ".", ".", env, MPLB_DATA_DIR};
    const char *fmts[2] = {"%s/../%s/%s%s", "%s/%s/%s%s"};
    const char *suffix = strstr(name, ext) ? "" : ext;
    for (int d = 0; d < 4; d++) {
        if (!dirs[d]) continue;
        for (int f = 0; f < 2; f++) {
            snprintf(out, MPLB_PATH_MAX, fmts[f], dirs[d], kind, name, suffix);
            if (is_file(out)) return 0;
        }
    }
    return mplb_err_set(err, MPLB_EIO,
                        "%s '%s' not found (looked for %s/%s%s beside the experiment, in ., "
                        "in $MPLB_DATA_DIR and in %s)", kind, name, kind, name, suffix, MPLB_DATA_DIR);
}

int mplb_find_data(const char *kind, const char *name, const char *base_dir,
                   char out[MPLB_PATH_MAX], mplb_err *err) {
    return mplb_find_data_ext(kind, name, ".lua", base_dir, out, err);
}

static void dir_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash) *slash = 0;
    else snprintf(out, cap, ".");
}

/* ---- model presets (public configs; see docs/architecture.md) ----------- */

static const mplb_model presets[] = {
    /* name              layers experts top_k hidden ffn  shared */
    {"deepseek-v3",      58,   256,    8,   7168,  2048, 1},
    {"qwen3-235b-a22b",  94,   128,    8,   4096,  1536, 0},
    {"qwen3-30b-a3b",    48,   128,    8,   2048,  768,  0},
    {"mixtral-8x7b",     32,   8,      2,   4096,  14336, 0},
    {"olmoe-1b-7b",      16,   64,     8,   2048,  1024, 0},
    {"llama-4-maverick", 24,   128,    1,   5120,  8192, 1},
};

int mplb_model_preset(const char *name, mplb_model *out) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) { *out = presets[i]; return 0; }
    return MPLB_EINVAL;
}

/* ---- experiment ---------------------------------------------------------- */

static int read_model(cfg *c, int top, mplb_model *m) {
    int t = cfg_get(c, top, "model");
    int rc = 0;
    long long v;
    memset(m, 0, sizeof *m);
    if (t == LUA_TSTRING) {
        if (mplb_model_preset(lua_tostring(c->L, -1), m) < 0)
            rc = cfg_fail(c, "model", "unknown model preset '%s' (give a table or one of "
                          "deepseek-v3, qwen3-235b-a22b, qwen3-30b-a3b, mixtral-8x7b, "
                          "olmoe-1b-7b, llama-4-maverick)", lua_tostring(c->L, -1));
        lua_pop(c->L, 1);
        return rc;
    }
    if (t != LUA_TTABLE) {
        rc = t == LUA_TNIL ? cfg_fail(c, "model", "%s", "missing (required)")
                           : cfg_fail(c, "model", "expected a table or preset name, got %s",
                                      lua_typename(c->L, t));
        lua_pop(c->L, 1);
        return rc;
    }
    int i = lua_gettop(c->L);
    char preset[MPLB_NAME_MAX];
    if ((rc = cfg_str(c, i, "model.preset", "preset", 0, "", preset, sizeof preset)) < 0) goto out;
    if (preset[0] && mplb_model_preset(preset, m) < 0) {
        rc = cfg_fail(c, "model.preset", "unknown model preset '%s'", preset);
        goto out;
    }
    int req = !preset[0];
    if ((rc = cfg_str(c, i, "model.name", "name", 0, preset[0] ? preset : "custom", m->name, sizeof m->name)) < 0) goto out;
#define INT_FIELD(f, lo, hi)                                                           \
    if ((rc = cfg_int(c, i, "model." #f, #f, req, m->f, lo, hi, &v)) < 0) goto out;    \
    m->f = (int)v;
    INT_FIELD(layers, 1, 100000)
    INT_FIELD(experts, 1, 1 << 20)
    INT_FIELD(hidden, 1, 1 << 20)
    INT_FIELD(ffn, 1, 1 << 22)
    if ((rc = cfg_int(c, i, "model.top_k", "top_k", req, m->top_k, 1, m->experts < 64 ? m->experts : 64, &v)) < 0) goto out;
    m->top_k = (int)v;
    if ((rc = cfg_int(c, i, "model.shared_experts", "shared_experts", 0, m->shared_experts, 0, 64, &v)) < 0) goto out;
    m->shared_experts = (int)v;
#undef INT_FIELD
out:
    lua_pop(c->L, 1);
    return rc;
}

static int read_cluster(cfg *c, int top, mplb_cluster *cl) {
    int t = cfg_get(c, top, "cluster");
    int rc = 0;
    long long v;
    if (t != LUA_TTABLE) {
        rc = t == LUA_TNIL ? cfg_fail(c, "cluster", "%s", "missing (required)")
                           : cfg_fail(c, "cluster", "expected a table, got %s", lua_typename(c->L, t));
        goto out;
    }
    int i = lua_gettop(c->L);
    if ((rc = cfg_int(c, i, "cluster.nodes", "nodes", 0, 1, 1, 4096, &v)) < 0) goto out;
    cl->nodes = (int)v;
    if ((rc = cfg_int(c, i, "cluster.gpus_per_node", "gpus_per_node", 1, 0, 1, 1024, &v)) < 0) goto out;
    cl->gpus_per_node = (int)v;
    if ((rc = cfg_str(c, i, "cluster.profile", "profile", 0, "h100", cl->profile, sizeof cl->profile)) < 0) goto out;
    rc = cfg_num(c, i, "cluster.expert_memory_gb", "expert_memory_gb", 0, 0, 0, 1e6, &cl->expert_memory_gb);
out:
    lua_pop(c->L, 1);
    return rc;
}

static int read_workload(cfg *c, int top, const char *base_dir, mplb_workload_cfg *w) {
    int t = cfg_get(c, top, "workload");
    int rc = 0;
    long long v;
    if (t != LUA_TTABLE) {
        rc = t == LUA_TNIL ? cfg_fail(c, "workload", "%s", "missing (required)")
                           : cfg_fail(c, "workload", "expected a table, got %s", lua_typename(c->L, t));
        goto out;
    }
    int i = lua_gettop(c->L);
    if ((rc = cfg_str(c, i, "workload.kind", "kind", 0, "synthetic", w->kind, sizeof w->kind)) < 0) goto out;
    int trace = strcmp(w->kind, "trace") == 0;
    if (!trace && strcmp(w->kind, "synthetic") != 0) {
        rc = cfg_fail(c, "workload.kind", "unknown workload kind '%s' (known: synthetic, trace)", w->kind);
        goto out;
    }
    if ((rc = cfg_int(c, i, "workload.steps", "steps", 1, 0, 1, 100000000, &v)) < 0) goto out;
    w->steps = (int)v;
    if ((rc = cfg_int(c, i, "workload.tokens", "tokens", !trace, 0, 0, 1LL << 31, &v)) < 0) goto out;
    w->tokens = v;
    if ((rc = cfg_num(c, i, "workload.zipf", "zipf", 0, 1.0, 0, 10, &w->zipf)) < 0) goto out;
    if ((rc = cfg_num(c, i, "workload.vision_frac", "vision_frac", 0, 0.0, 0, 1, &w->vision_frac)) < 0) goto out;
    if ((rc = cfg_num(c, i, "workload.vision_zipf", "vision_zipf", 0, 1.5, 0, 10, &w->vision_zipf)) < 0) goto out;
    if ((rc = cfg_int(c, i, "workload.families", "families", 0, 1, 1, 64, &v)) < 0) goto out;
    w->families = (int)v;
    if ((rc = cfg_num(c, i, "workload.drift", "drift", 0, 0.0, 0, 1, &w->drift)) < 0) goto out;
    if ((rc = cfg_int(c, i, "workload.drift_period", "drift_period", 0, 50, 1, 100000000, &v)) < 0) goto out;
    w->drift_period = (int)v;
    if ((rc = cfg_num(c, i, "workload.layer_corr", "layer_corr", 0, 0.0, 0, 1, &w->layer_corr)) < 0) goto out;
    if ((rc = cfg_num(c, i, "workload.src_affinity", "src_affinity", 0, 0.0, 0, 1, &w->src_affinity)) < 0) goto out;
    if ((rc = cfg_int(c, i, "workload.prefill_every", "prefill_every", 0, 1, 1, 100000000, &v)) < 0) goto out;
    w->prefill_every = (int)v;
    if ((rc = cfg_int(c, i, "workload.decode_tokens", "decode_tokens", 0, 0, 0, 1LL << 31, &v)) < 0) goto out;
    w->decode_tokens = v;
    if (w->prefill_every > 1 && w->decode_tokens == 0) {
        rc = cfg_fail(c, "workload.decode_tokens", "%s", "needed when prefill_every > 1 (tokens per decode step)");
        goto out;
    }
    char name[MPLB_PATH_MAX];
    if ((rc = cfg_str(c, i, "workload.skew_from", "skew_from", 0, "", name, sizeof name)) < 0) goto out;
    if (name[0] && mplb_find_data_ext("traces", name, ".h5", base_dir, w->skew_from, c->err) < 0) {
        rc = cfg_fail(c, "workload.skew_from", "%s", c->err->msg);
        goto out;
    }
    if ((rc = cfg_str(c, i, "workload.file", "file", trace, "", name, sizeof name)) < 0) goto out;
    if (trace && mplb_find_data_ext("traces", name, ".h5", base_dir, w->file, c->err) < 0)
        rc = cfg_fail(c, "workload.file", "%s", c->err->msg);
out:
    lua_pop(c->L, 1);
    return rc;
}

/* "threshold" + {["low"]="nvfp4",["tau"]=1.5,} -> "threshold(low=nvfp4,tau=1.5)" */
static void make_label(mplb_policy_ref *p) {
    size_t n = (size_t)snprintf(p->label, sizeof p->label, "%s", p->name);
    if (!p->params || strcmp(p->params, "{}") == 0) return;
    char tmp[sizeof p->label];
    size_t k = 0;
    for (const char *c = p->params + 1; c[1] && k + 1 < sizeof tmp; c++) {
        if (*c == '"' || *c == '[' || *c == ']') continue;
        if (*c == ',' && c[1] == '}') continue;
        tmp[k++] = *c;
    }
    tmp[k] = 0;
    snprintf(p->label + n, sizeof p->label - n, "(%s)", tmp);
}

static int read_policies(cfg *c, int top, const char *base_dir, mplb_exp *e) {
    int t = cfg_get(c, top, "policies");
    int rc = 0;
    if (t != LUA_TTABLE) {
        rc = t == LUA_TNIL ? cfg_fail(c, "policies", "%s", "missing (required)")
                           : cfg_fail(c, "policies", "expected a list, got %s", lua_typename(c->L, t));
        goto out;
    }
    int i = lua_gettop(c->L);
    int n = (int)luaL_len(c->L, i);
    if (n < 1) { rc = cfg_fail(c, "policies", "%s", "empty list"); goto out; }
    e->policies = calloc((size_t)n, sizeof *e->policies);
    if (!e->policies) { rc = mplb_err_set(c->err, MPLB_ENOMEM, "out of memory"); goto out; }
    e->n_policies = n;
    for (int k = 1; k <= n; k++) {
        char path[64];
        snprintf(path, sizeof path, "policies[%d]", k);
        mplb_policy_ref *p = &e->policies[k - 1];
        int pt = lua_geti(c->L, i, k);
        if (pt == LUA_TSTRING) {
            snprintf(p->name, sizeof p->name, "%s", lua_tostring(c->L, -1));
            p->params = strdup("{}");
        } else if (pt == LUA_TTABLE) {
            /* { "threshold", tau = 1.5 }: element 1 names the policy, the rest are params */
            int pi = lua_gettop(c->L);
            if (lua_geti(c->L, pi, 1) != LUA_TSTRING) {
                lua_pop(c->L, 2);
                rc = cfg_fail(c, path, "%s", "a policy table needs its name as element 1, e.g. {\"threshold\", tau = 1.5}");
                goto out;
            }
            snprintf(p->name, sizeof p->name, "%s", lua_tostring(c->L, -1));
            lua_pop(c->L, 1);
            if (lua_getfield(c->L, pi, "label") == LUA_TSTRING)
                snprintf(p->label, sizeof p->label, "%s", lua_tostring(c->L, -1));
            lua_pop(c->L, 1);
            lua_newtable(c->L);
            lua_pushnil(c->L);
            while (lua_next(c->L, pi)) {
                if (lua_type(c->L, -2) == LUA_TSTRING && strcmp(lua_tostring(c->L, -2), "label") != 0) {
                    lua_pushvalue(c->L, -2);
                    lua_insert(c->L, -2);
                    lua_settable(c->L, -4);
                } else lua_pop(c->L, 1);
            }
            p->params = mplb_lua_serialize(c->L, -1);
            lua_pop(c->L, 1);
            if (!p->params) {
                lua_pop(c->L, 1);
                rc = cfg_fail(c, path, "%s", "parameters must be numbers, strings, booleans or tables");
                goto out;
            }
        } else {
            lua_pop(c->L, 1);
            rc = cfg_fail(c, path, "expected a policy name or {name, params...}, got %s", lua_typename(c->L, pt));
            goto out;
        }
        lua_pop(c->L, 1);
        if (mplb_find_data("policies", p->name, base_dir, p->path, c->err) < 0) {
            rc = cfg_fail(c, path, "%s", c->err->msg);
            goto out;
        }
        const char *slash = strrchr(p->name, '/');
        if (slash) memmove(p->name, slash + 1, strlen(slash + 1) + 1);
        char *dot = strstr(p->name, ".lua");
        if (dot) *dot = 0;
        if (!p->label[0]) make_label(p);
    }
out:
    lua_pop(c->L, 1);
    return rc;
}

int mplb_exp_load(const char *path, const char *const *sets, int n_sets,
                  mplb_exp *out, mplb_err *err) {
    return mplb_exp_load_ex(path, NULL, sets, n_sets, out, err);
}

int mplb_exp_load_ex(const char *path, const char *base, const char *const *sets, int n_sets,
                     mplb_exp *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    mplb_lsb sb;
    int rc = mplb_read_file(path, &out->source, NULL, err);
    if (rc < 0) return rc;
    if ((rc = mplb_lsb_open(&sb, CFG_MEM_LIMIT, CFG_INSTR_LIMIT, err)) < 0) return rc;
    char chunk[MPLB_PATH_MAX + 1];
    snprintf(chunk, sizeof chunk, "@%s", path);
    if ((rc = mplb_lsb_dostring(&sb, out->source, chunk, 1, err)) < 0) goto fail;
    lua_State *L = sb.L;
    if (!lua_istable(L, -1)) {
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: the experiment file must return a table, got %s",
                          path, luaL_typename(L, -1));
        goto fail;
    }
    int top = lua_gettop(L);
    for (int s = 0; s < n_sets; s++)
        if ((rc = mplb_lua_apply_set(&sb, top, sets[s], path, err)) < 0) goto fail;
    cfg c = {L, path, out->source, err};
    char base_dir[MPLB_PATH_MAX];
    if (base) snprintf(base_dir, sizeof base_dir, "%s", base);
    else dir_of(path, base_dir, sizeof base_dir);
    snprintf(out->base_dir, sizeof out->base_dir, "%s", base_dir);
    long long v;
    char def_name[MPLB_NAME_MAX];
    const char *b = strrchr(path, '/');
    snprintf(def_name, sizeof def_name, "%s", b ? b + 1 : path);
    char *dot = strstr(def_name, ".lua");
    if (dot) *dot = 0;
    if ((rc = cfg_str(&c, top, "name", "name", 0, def_name, out->name, sizeof out->name)) < 0) goto fail;
    if ((rc = read_model(&c, top, &out->model)) < 0) goto fail;
    if ((rc = read_cluster(&c, top, &out->cluster)) < 0) goto fail;
    if ((rc = read_workload(&c, top, base_dir, &out->workload)) < 0) goto fail;
    if ((rc = read_policies(&c, top, base_dir, out)) < 0) goto fail;
    if ((rc = cfg_str(&c, top, "backend", "backend", 0, "model", out->backend, sizeof out->backend)) < 0) goto fail;
    if (strcmp(out->backend, "model") != 0 && strcmp(out->backend, "cpu") != 0 && strcmp(out->backend, "cuda") != 0) {
        rc = cfg_fail(&c, "backend", "unknown backend '%s' (known: model, cpu, cuda)", out->backend);
        goto fail;
    }
    char acc[MPLB_PATH_MAX];
    if ((rc = cfg_str(&c, top, "accuracy", "accuracy", 0, "", acc, sizeof acc)) < 0) goto fail;
    if (acc[0] && mplb_find_data("profiles", acc, base_dir, out->accuracy, err) < 0) {
        rc = cfg_fail(&c, "accuracy", "%s", err->msg);
        goto fail;
    }
    if ((rc = cfg_int(&c, top, "seed", "seed", 0, 1, 0, INT64_MAX, &v)) < 0) goto fail;
    out->seed = (uint64_t)v;
    out->resolved = mplb_lua_serialize(L, top);
    if (!out->resolved) {
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: the experiment table may hold only data "
                          "(numbers, strings, booleans, tables)", path);
        goto fail;
    }
    mplb_lsb_close(&sb);
    return 0;
fail:
    mplb_lsb_close(&sb);
    mplb_exp_free(out);
    return rc;
}

void mplb_exp_free(mplb_exp *exp) {
    for (int i = 0; i < exp->n_policies; i++) free(exp->policies[i].params);
    free(exp->policies);
    free(exp->source);
    free(exp->resolved);
    exp->policies = NULL;
    exp->source = exp->resolved = NULL;
    exp->n_policies = 0;
}
