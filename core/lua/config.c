/* Experiments and profiles from Lua: see include/mplb/config.h. */
#include "mplb/config.h"
#include "mplb/policy.h"
#include "mplb/workload.h"
#include "lsandbox.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
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

/* The line of key PATH ("workload.zipf", "policies[2].tau") found by nesting:
 * a scan that tracks braces and the key that opened each, skipping strings and
 * comments; 0 when the file's shape hides it (tables built in locals). */
static int path_line(const char *src, const char *path) {
    char comp[8][64];
    int nc = 0;
    for (const char *p = path; *p && nc < 8;) {
        size_t n = strcspn(p, ".[");
        if (*p == '[') n = strcspn(p, "]") + 1;
        snprintf(comp[nc++], sizeof comp[0], "%.*s", (int)n, p);
        p += n;
        if (*p == '.') p++;
    }
    char stack[32][64];
    int depth = 0, line = 1, after_eq = 0;
    char pending[64] = "";
    for (const char *p = src; *p; p++) {
        if (*p == '\n') { line++; continue; }
        if (p[0] == '-' && p[1] == '-') { while (p[1] && p[1] != '\n') p++; continue; }
        if (*p == '"' || *p == '\'') {
            char q = *p;
            for (p++; *p && *p != q && *p != '\n'; p++) if (*p == '\\' && p[1]) p++;
            if (!*p) break;
            after_eq = 0;
            continue;
        }
        if (*p == '{') {
            if (depth < 32) snprintf(stack[depth], sizeof stack[0], "%s", after_eq ? pending : "");
            depth++;
            after_eq = 0;
            continue;
        }
        if (*p == '}') { if (depth > 0) depth--; after_eq = 0; continue; }
        if (isalpha((unsigned char)*p) || *p == '_') {
            const char *b = p;
            while (isalnum((unsigned char)p[1]) || p[1] == '_') p++;
            size_t n = (size_t)(p - b) + 1;
            const char *q = p + 1;
            while (*q == ' ' || *q == '\t') q++;
            after_eq = 0;
            if (*q == '=' && q[1] != '=' && n < sizeof pending) {
                snprintf(pending, sizeof pending, "%.*s", (int)n, b);
                /* depth 1 is the returned table; deeper braces must follow the path */
                int ok = depth == nc && !strcmp(pending, comp[nc - 1]);
                for (int d = 1; ok && d < depth && d <= 32; d++)
                    ok = comp[d - 1][0] == '[' ? stack[d][0] == 0 : !strcmp(stack[d], comp[d - 1]);
                if (ok) return line;
                p = q;
                after_eq = 1;
            }
            continue;
        }
        if (*p != ' ' && *p != '\t' && *p != '\r') after_eq = 0;
    }
    return 0;
}

static int cfg_fail(cfg *c, const char *path, const char *fmt, const char *detail) {
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    int line = c->src ? path_line(c->src, path) : 0;
    if (!line) line = key_line(c->src, leaf);
    char where[MPLB_PATH_MAX + 32];
    if (line) snprintf(where, sizeof where, "%s:%d", c->file, line);
    else snprintf(where, sizeof where, "%s", c->file);
    char what[512];
    snprintf(what, sizeof what, fmt, detail);
    return mplb_err_set(c->err, MPLB_ECONFIG, "%s: field %s: %s", where, path, what);
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

/* workload = "W.lua" (a file returning a workload table, as `mplb trace fit`
 * writes) or { from = "W.lua", steps = ... } (the file's table with these
 * fields on top): replace experiment.workload by the loaded table, so the
 * resolved experiment a run file keeps holds the numbers, not a path. */
static int load_workload_file(cfg *c, int top, const char *base_dir, char *path, char **keep_src) {
    lua_State *L = c->L;
    int t = lua_getfield(L, top, "workload"), over = 0;
    if (t == LUA_TTABLE) {
        over = lua_gettop(L);
        if (lua_getfield(L, over, "from") != LUA_TSTRING) { lua_pop(L, 2); return 0; }
    } else if (t != LUA_TSTRING) { lua_pop(L, 1); return 0; }
    char name[MPLB_PATH_MAX];
    snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    const char *field = over ? "workload.from" : "workload";
    if (mplb_find_data_ext("workloads", name, ".lua", base_dir, path, c->err) < 0) {
        if (over) lua_pop(L, 1);
        return cfg_fail(c, field, "%s", c->err->msg);
    }
    char *src = NULL;
    size_t n = 0;
    int rc = mplb_read_file(path, &src, &n, c->err);
    char chunk[MPLB_PATH_MAX + 1];
    snprintf(chunk, sizeof chunk, "@%s", path);
    if (rc == 0 && (luaL_loadbufferx(L, src, n, chunk, "t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)) {
        rc = mplb_err_set(c->err, MPLB_ECONFIG, "%s (the workload file of %s)", lua_tostring(L, -1), c->file);
        lua_pop(L, 1);
    } else if (rc == 0 && !lua_istable(L, -1)) {
        rc = mplb_err_set(c->err, MPLB_ECONFIG, "%s: a workload file must return a table, got %s", path,
                          luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    if (rc == 0 && !over) *keep_src = src;   /* messages about its fields quote it */
    else free(src);
    if (rc < 0) { if (over) lua_pop(L, 1); return rc; }
    if (over) {   /* the experiment's own fields win over the file's */
        int wt = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, over)) {
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "from") == 0) { lua_pop(L, 1); continue; }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, wt);
        }
        lua_remove(L, over);
    }
    lua_setfield(L, top, "workload");
    return 0;
}

/* A list of n numbers in [lo, hi] into out (malloc'd). */
static int cfg_num_list(cfg *c, int idx, const char *path, int n, double lo, double hi, double **out) {
    lua_State *L = c->L;
    char d[160];
    if (!lua_istable(L, idx) || (int)luaL_len(L, idx) != n) {
        snprintf(d, sizeof d, "expected a list of %d numbers", n);
        return cfg_fail(c, path, "%s", d);
    }
    *out = malloc((size_t)n * sizeof **out);
    if (!*out) return mplb_err_set(c->err, MPLB_ENOMEM, "out of memory");
    for (int j = 0; j < n; j++) {
        int isnum = lua_geti(L, idx, j + 1) == LUA_TNUMBER;
        double x = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!isnum || !(x >= lo && x <= hi)) {
            snprintf(d, sizeof d, "element %d is %s, expected a number in [%g, %g]", j + 1,
                     isnum ? "out of range" : "not a number", lo, hi);
            free(*out);
            *out = NULL;
            return cfg_fail(c, path, "%s", d);
        }
        (*out)[j] = x;
    }
    return 0;
}

/* workload.popularity = { {share, ...} per layer } (rows normalised to sum
 * 1) and workload.layer_sigma = { per layer }: what `mplb trace fit` writes
 * (type FIT in exp_keys.h). The value is on the stack top. */
static int read_fit_key(cfg *c, const char *key, int wt, mplb_workload_cfg *w) {
    lua_State *L = c->L;
    int p = lua_gettop(L), rc = 0;
    if (!strcmp(key, "layer_sigma")) {
        lua_getfield(L, wt, "popularity");
        int has_pop = lua_istable(L, -1);
        lua_pop(L, 1);
        if (!has_pop) return cfg_fail(c, "workload.layer_sigma", "%s", "needs workload.popularity (one value per row)");
        int rows = w->pop_layers;   /* popularity is read first (its key comes first) */
        free(w->layer_sigma);
        w->layer_sigma = NULL;
        return cfg_num_list(c, p, "workload.layer_sigma", rows, 0, 10, &w->layer_sigma);
    }
    int rows = lua_istable(L, p) ? (int)luaL_len(L, p) : 0, E = 0;
    if (rows >= 1) { lua_geti(L, p, 1); E = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0; lua_pop(L, 1); }
    if (rows < 1 || E < 1)
        return cfg_fail(c, "workload.popularity", "%s", "expected a list of per-layer lists of expert shares");
    free(w->popularity);
    w->popularity = malloc((size_t)rows * E * sizeof *w->popularity);
    if (!w->popularity) return mplb_err_set(c->err, MPLB_ENOMEM, "out of memory");
    w->pop_layers = rows;
    w->pop_experts = E;
    for (int l = 0; l < rows && rc == 0; l++) {
        char path[64];
        snprintf(path, sizeof path, "workload.popularity[%d]", l + 1);
        double *row = NULL, sum = 0;
        lua_geti(L, p, l + 1);
        rc = cfg_num_list(c, lua_gettop(L), path, E, 0, 1e300, &row);
        lua_pop(L, 1);
        if (rc < 0) break;
        for (int e = 0; e < E; e++) sum += row[e];
        if (!(sum > 0)) rc = cfg_fail(c, path, "%s", "all shares are zero");
        for (int e = 0; e < E && rc == 0; e++) w->popularity[(size_t)l * E + e] = row[e] / sum;
        free(row);
    }
    return rc;
}

/* Defaults that depend on zipf being unset (the data-fitted model): the
 * time structure of include/mplb/workload.h unless given. */
static void workload_defaults(mplb_workload_cfg *w, int has_sigma, int has_rate, int has_wander) {
    if (!isnan(w->zipf) || w->popularity) return;
    if (!has_sigma) w->step_sigma = MPLB_WL_STEP_SIGMA;
    if (!has_rate) w->regime_rate = MPLB_WL_REGIME_RATE;
    if (!has_wander) w->wander_period = MPLB_WL_WANDER_PERIOD;
}

/* ---- the key table -------------------------------------------------------- */

#include "exp_keys.h"

/* value types of the keys, with the name messages and the reference give them */
#define KEY_TYPES(X)                                                                                                 \
    X(T_PRESET, "string") X(T_INT, "integer") X(T_I64, "integer") X(T_U64, "integer") X(T_NUM, "number")              \
    X(T_STR, "string") X(T_ENUM, "string") X(T_TRACE, "trace name") X(T_DATA, "file name") X(T_TABLE, "table")        \
    X(T_MODEL, "preset or table") X(T_POLICIES, "list") X(T_ZIP, "list of lists") X(T_BOOL, "boolean")                \
    X(T_LMDIR, "checkpoint directory") X(T_TEXTS, "table of domain = file") X(T_FIT, "list (per layer)")              \
    X(T_PLACE, "placement file")
typedef enum {
#define X(t, name) t,
    KEY_TYPES(X)
#undef X
} key_type;
enum { REQ = 1, REQ_NOPRESET = 2, REQ_SYNTH = 4, REQ_TRACE = 8, REQ_LM = 16 };
enum {
#define X(s, key, doc) S_##s,
    MPLB_EXP_SECTIONS(X)
#undef X
    S_COUNT
};
static const char *const sect_key[S_COUNT] = {
#define X(s, key, doc) key,
    MPLB_EXP_SECTIONS(X)
#undef X
};
static const char *const sect_doc[S_COUNT] = {
#define X(s, key, doc) doc,
    MPLB_EXP_SECTIONS(X)
#undef X
};

typedef struct key_def {
    int sect;
    const char *name;
    key_type type;
    size_t off, size;
    int flags;
    const char *def;
    double lo, hi;
    const char *unit, *doc;
} key_def;

static const key_def keys[] = {
#define X(s, k, t, f, fl, d, lo, hi, u, doc) \
    {S_##s, #k, T_##t, offsetof(mplb_exp, f), sizeof(((mplb_exp *)0)->f), fl, d, lo, hi, u, doc},
    MPLB_EXP_KEYS(X)
#undef X
};
#define N_KEYS (int)(sizeof keys / sizeof keys[0])

static const char *type_name(key_type t) {
    static const char *const n[] = {
#define X(t, name) name,
        KEY_TYPES(X)
#undef X
    };
    return n[t];
}

/* "model.layers" for messages; the top section's keys have no prefix */
static void key_path(const key_def *k, char *out, size_t cap) {
    if (k->sect == S_TOP) snprintf(out, cap, "%s", k->name);
    else snprintf(out, cap, "%s.%s", sect_key[k->sect], k->name);
}

/* An unknown key of section s: the closest key of s, or the section the key
 * belongs to if it is a known key of another one. */
static int unknown_key(cfg *c, int s, const char *key) {
    const char *cands[N_KEYS];
    int n = 0;
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].sect == s) cands[n++] = keys[i].name;
    char path[256], hint[512] = "";
    if (s == S_TOP) snprintf(path, sizeof path, "%s", key);
    else snprintf(path, sizeof path, "%s.%s", sect_key[s], key);
    const char *best = mplb_closest(key, cands, n);
    for (int i = 0; i < N_KEYS && !best; i++)
        if (keys[i].sect != s && !strcmp(keys[i].name, key) && keys[i].type != T_STR) {
            char kp[128];
            key_path(&keys[i], kp, sizeof kp);
            snprintf(hint, sizeof hint, " ('%s' is a key of %s: %s)", key, keys[i].sect == S_TOP ? "the top table" : sect_key[keys[i].sect], kp);
        }
    if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
    if (!hint[0]) {
        size_t h = (size_t)snprintf(hint, sizeof hint, " (known:");
        for (int i = 0; i < n && h < sizeof hint; i++) h += (size_t)snprintf(hint + h, sizeof hint - h, " %s", cands[i]);
        if (h < sizeof hint) snprintf(hint + h, sizeof hint - h, ")");
    }
    return cfg_fail(c, path, "unknown key%s", hint);
}

/* Every key of the table at idx must be a known key of section s. */
static int check_keys(cfg *c, int idx, int s) {
    lua_State *L = c->L;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return cfg_fail(c, s == S_TOP ? "(top)" : sect_key[s], "%s",
                            "holds a list element: only key = value entries belong here");
        }
        const char *key = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; i < N_KEYS && !known; i++) known = keys[i].sect == s && !strcmp(keys[i].name, key);
        if (!known) {
            char k[128];
            snprintf(k, sizeof k, "%s", key);
            lua_pop(L, 1);
            return unknown_key(c, s, k);
        }
    }
    return 0;
}

static int is_list(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) > 0;
}

/* workload.lm: a checkpoint directory, found by its config.json (models/NAME
 * beside the experiment, or a path). */
static int find_model_file(cfg *c, const char *path, const char *name, const char *base_dir, char *out) {
    if (mplb_find_data_ext("models", name, "", base_dir, out, c->err) < 0) {
        char msg[MPLB_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", c->err->msg);
        return cfg_fail(c, path, "%s", msg);
    }
    return 0;
}

/* workload.text (table on the stack top): {domain = file, ...}, kept in name
 * order so that a run's domains do not depend on Lua's hash order. */
static int read_texts(cfg *c, const char *path, const char *base_dir, mplb_workload_cfg *w) {
    lua_State *L = c->L;
    int tt = lua_gettop(L), rc = 0;
    if (lua_type(L, tt) != LUA_TTABLE) return cfg_fail(c, path, "expected a table {domain = \"file\", ...}, got %s", luaL_typename(L, tt));
    w->n_text = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, tt)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            rc = cfg_fail(c, path, "%s", "entries must be domain = \"file\"");
        } else if (w->n_text == MPLB_MAX_DOMAINS) {
            char most[32];
            snprintf(most, sizeof most, "at most %d domains", MPLB_MAX_DOMAINS);
            rc = cfg_fail(c, path, "%s", most);
        } else {
            const char *dn = lua_tostring(L, -2);
            int k = w->n_text++;
            while (k > 0 && strcmp(w->text_name[k - 1], dn) > 0) {
                memcpy(w->text_name[k], w->text_name[k - 1], sizeof w->text_name[k]);
                memcpy(w->text_path[k], w->text_path[k - 1], sizeof w->text_path[k]);
                k--;
            }
            snprintf(w->text_name[k], sizeof w->text_name[k], "%s", dn);
            char field[MPLB_NAME_MAX + 160];
            snprintf(field, sizeof field, "%s.%s", path, dn);
            rc = find_model_file(c, field, lua_tostring(L, -1), base_dir, w->text_path[k]);
        }
        lua_pop(L, 1);
    }
    if (rc < 0) lua_pop(L, 1);   /* the key lua_next left */
    if (rc == 0 && w->n_text == 0) rc = cfg_fail(c, path, "%s", "no domains");
    return rc;
}

/* Read one scalar key (value on the stack top) into out. */
static int read_value(cfg *c, const key_def *k, const char *base_dir, mplb_exp *out) {
    lua_State *L = c->L;
    char path[128];
    key_path(k, path, sizeof path);
    char *dst = (char *)out + k->off;
    int t = lua_type(L, -1);
    if (t == LUA_TTABLE && is_list(L, -1))
        return cfg_fail(c, path, "got a list (a sweep axis: run it with mplb sweep, or give one %s)", type_name(k->type));
    switch (k->type) {
    case T_BOOL:
        if (t != LUA_TBOOLEAN) return cfg_fail(c, path, "expected a boolean, got %s", lua_typename(L, t));
        *(int *)dst = lua_toboolean(L, -1);
        return 0;
    case T_TEXTS:
        return read_texts(c, path, base_dir, &out->workload);
    case T_INT: case T_I64: case T_U64: {
        int isint = 0;   /* a float with an integral value (tokens = 4e3) is that integer */
        long long v = t == LUA_TNUMBER ? (long long)lua_tointegerx(L, -1, &isint) : 0;
        if (!isint) {
            char d[96];
            if (t == LUA_TNUMBER) snprintf(d, sizeof d, "a non-integer number (%.17g)", lua_tonumber(L, -1));
            else snprintf(d, sizeof d, "%s", lua_typename(L, t));
            return cfg_fail(c, path, "expected an integer, got %s", d);
        }
        if ((double)v < k->lo || (double)v > k->hi) {
            char d[128];
            snprintf(d, sizeof d, "%lld is outside [%.0f, %.0f]", v, k->lo, k->hi);
            return cfg_fail(c, path, "%s", d);
        }
        if (k->type == T_INT) *(int *)dst = (int)v;
        else if (k->type == T_I64) *(int64_t *)dst = v;
        else *(uint64_t *)dst = (uint64_t)v;
        return 0;
    }
    case T_NUM: {
        if (t != LUA_TNUMBER) return cfg_fail(c, path, "expected a number, got %s", lua_typename(L, t));
        double v = lua_tonumber(L, -1);
        if (!(v >= k->lo && v <= k->hi)) {
            char d[128];
            snprintf(d, sizeof d, "%g is outside [%g, %g]", v, k->lo, k->hi);
            return cfg_fail(c, path, "%s", d);
        }
        *(double *)dst = v;
        return 0;
    }
    default: break;
    }
    if (t != LUA_TSTRING) return cfg_fail(c, path, "expected a string, got %s", lua_typename(L, t));
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (k->type == T_PRESET) {
        if (mplb_model_preset(s, &out->model) < 0)
            return cfg_fail(c, path, "unknown model preset '%s' (give a table or one of deepseek-v3, qwen3-235b-a22b, "
                            "qwen3-30b-a3b, mixtral-8x7b, olmoe-1b-7b, llama-4-maverick)", s);
        return 0;
    }
    if (k->type == T_ENUM) {
        size_t kl = strlen(s);
        for (const char *u = k->unit; *u;) {
            const char *bar = strchr(u, '|');
            size_t ul = bar ? (size_t)(bar - u) : strlen(u);
            if (ul == kl && !strncmp(u, s, kl)) break;
            if (!bar) {
                char d[256], known[128];
                size_t kn = 0;
                for (const char *q = k->unit; *q && kn + 3 < sizeof known; q++) {
                    if (*q == '|') { known[kn++] = ','; known[kn++] = ' '; }
                    else known[kn++] = *q;
                }
                known[kn] = 0;
                snprintf(d, sizeof d, "unknown %s '%s' (known: %s)", k->name, s, known);
                return cfg_fail(c, path, "%s", d);
            }
            u = bar + 1;
        }
    }
    if (n >= k->size) return cfg_fail(c, path, "%s", "string too long");
    if (k->type == T_LMDIR) {
        char cj[MPLB_PATH_MAX + 16];
        snprintf(cj, sizeof cj, "%s/config.json", s);
        int rc = find_model_file(c, path, cj, base_dir, dst);
        if (rc == 0) dst[strlen(dst) - strlen("/config.json")] = 0;
        return rc;
    }
    if (k->type == T_TRACE || k->type == T_DATA || k->type == T_PLACE) {
        int rc = k->type == T_TRACE   ? mplb_find_data_ext("traces", s, ".h5", base_dir, dst, c->err)
                 : k->type == T_PLACE ? mplb_find_data_ext("traces", s, ".json", base_dir, dst, c->err)
                                      : mplb_find_data("profiles", s, base_dir, dst, c->err);
        if (rc < 0) {
            char msg[MPLB_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", c->err->msg);
            return cfg_fail(c, path, "%s", msg);
        }
        return 0;
    }
    memcpy(dst, s, n + 1);
    return 0;
}

/* Every default of the table (the text in its default column). */
static void apply_defaults(mplb_exp *out) {
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        char *dst = (char *)out + k->off;
        switch (k->type) {
        case T_INT: case T_BOOL: *(int *)dst = (int)strtol(k->def, NULL, 10); break;
        case T_I64: *(int64_t *)dst = strtoll(k->def, NULL, 10); break;
        case T_U64: *(uint64_t *)dst = strtoull(k->def, NULL, 10); break;
        case T_NUM: *(double *)dst = k->def[0] == '(' ? NAN : strtod(k->def, NULL); break;   /* "(...)": unset */
        case T_STR: case T_ENUM:
            if (k->def[0] != '(') snprintf(dst, k->size, "%s", k->def);
            break;
        default: break;
        }
    }
}

static int read_policies(cfg *c, int i, const char *base_dir, mplb_exp *e);
static void warn(mplb_exp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read section s from the table at idx (keys checked first, then each key of
 * the table in order: a later key's requirement may depend on an earlier one). */
static int read_section(cfg *c, int idx, int s, const char *base_dir, mplb_exp *out, int *present) {
    int rc = check_keys(c, idx, s);
    if (rc < 0) return rc;
    lua_State *L = c->L;
    int preset = 0;
    for (int i = 0; i < N_KEYS && rc == 0; i++) {
        const key_def *k = &keys[i];
        if (k->sect != s) continue;
        char path[128];
        key_path(k, path, sizeof path);
        int t = lua_getfield(L, idx, k->name);
        int trace = !strcmp(out->workload.kind, "trace"), lm = !strcmp(out->workload.kind, "lm");
        if (t == LUA_TNIL) {
            int req = (k->flags & REQ) || ((k->flags & REQ_NOPRESET) && !preset) ||
                      ((k->flags & REQ_SYNTH) && !trace && !lm) || ((k->flags & REQ_TRACE) && trace) ||
                      ((k->flags & REQ_LM) && lm);
            if (req) {
                const char *why = k->flags & REQ_NOPRESET ? "missing (required without a preset)"
                                : k->flags & REQ_SYNTH ? "missing (required for a synthetic workload)"
                                : k->flags & REQ_TRACE ? "missing (required with kind = \"trace\")"
                                : k->flags & REQ_LM ? "missing (required with kind = \"lm\")" : "missing (required)";
                rc = cfg_fail(c, path, "%s", why);
            }
        } else {
            present[i] = 1;
            int top = lua_gettop(L);
            if (k->type == T_TABLE) {
                int sub = S_COUNT;
                for (int j = 0; j < S_COUNT; j++) if (!strcmp(sect_key[j], k->name)) sub = j;
                rc = t != LUA_TTABLE ? cfg_fail(c, path, "expected a table, got %s", lua_typename(L, t))
                                     : read_section(c, top, sub, base_dir, out, present);
            } else if (k->type == T_MODEL) {
                if (t == LUA_TSTRING) {       /* model = "preset" is { preset = "preset" } */
                    lua_createtable(L, 0, 1);
                    lua_insert(L, -2);
                    lua_setfield(L, -2, "preset");
                }
                rc = lua_type(L, top) != LUA_TTABLE || is_list(L, top)
                         ? cfg_fail(c, path, "expected a table or preset name, got %s",
                                    is_list(L, top) ? "a list (a sweep axis: use mplb sweep)" : lua_typename(L, t))
                         : read_section(c, top, S_MODEL, base_dir, out, present);
            } else if (k->type == T_ZIP) {
                /* mplb sweep reads it (core/lua/sweep.c); a point file never has it */
                rc = t != LUA_TTABLE ? cfg_fail(c, path, "expected a list of lists of axis names, got %s", lua_typename(L, t)) : 0;
                if (rc == 0) warn(out, "%s: zip has no effect outside mplb sweep (it ties sweep axes)", out->path);
            } else if (k->type == T_FIT) {
                rc = read_fit_key(c, k->name, idx, &out->workload);
            } else if (k->type == T_POLICIES) {
                rc = t != LUA_TTABLE ? cfg_fail(c, path, "expected a list, got %s", lua_typename(L, t))
                                     : read_policies(c, top, base_dir, out);
            } else {
                rc = read_value(c, k, base_dir, out);
                if (k->type == T_PRESET && rc == 0) preset = 1;
            }
        }
        lua_pop(L, 1);
    }
    return rc;
}

static int key_index(int s, const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].sect == s && !strcmp(keys[i].name, name)) return i;
    return -1;
}

static void warn(mplb_exp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(mplb_exp *x, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t old = x->warnings ? strlen(x->warnings) : 0;
    char *w = realloc(x->warnings, old + strlen(line) + 2);
    if (!w) return;
    memcpy(w + old, line, strlen(line));
    w[old + strlen(line)] = '\n';
    w[old + strlen(line) + 1] = 0;
    x->warnings = w;
}

/* Checks across keys, after every key is read: errors where a combination
 * cannot run, warnings where one setting makes another a no-op. */
static int cross_checks(cfg *c, mplb_exp *x, const int *present) {
    mplb_workload_cfg *w = &x->workload;
    if (x->model.top_k > x->model.experts) {
        char d[128];
        snprintf(d, sizeof d, "%d is more than model.experts = %d", x->model.top_k, x->model.experts);
        return cfg_fail(c, "model.top_k", "%s", d);
    }
    if (w->prefill_every > 1 && w->decode_tokens == 0)
        return cfg_fail(c, "workload.decode_tokens", "%s", "needed when prefill_every > 1 (tokens per decode step)");
#define P(s, k) present[key_index(S_##s, #k)]
    int trace = !strcmp(w->kind, "trace");
    if (P(WORKLOAD, drift) && w->drift > 0 && w->families == 1)
        warn(x, "%s: workload.drift = %g has no effect with workload.families = 1 (drift swings the mix of families)",
             x->path, w->drift);
    if (P(WORKLOAD, drift_period) && w->drift == 0)
        warn(x, "%s: workload.drift_period has no effect with workload.drift = 0", x->path);
    if (P(WORKLOAD, src_affinity) && w->src_affinity > 0 && w->families == 1)
        warn(x, "%s: workload.src_affinity = %g has no effect with workload.families = 1", x->path, w->src_affinity);
    if (P(WORKLOAD, vision_zipf) && w->vision_frac == 0 && !trace)
        warn(x, "%s: workload.vision_zipf has no effect with workload.vision_frac = 0 (no vision tokens)", x->path);
    if (P(WORKLOAD, vision_sigma) && w->vision_frac == 0 && !trace)
        warn(x, "%s: workload.vision_sigma has no effect with workload.vision_frac = 0 (no vision tokens)", x->path);
    if (P(WORKLOAD, decode_tokens) && w->prefill_every == 1)
        warn(x, "%s: workload.decode_tokens has no effect with workload.prefill_every = 1 (every step is a prefill)",
             x->path);
    workload_defaults(&x->workload, P(WORKLOAD, step_sigma), P(WORKLOAD, regime_rate), P(WORKLOAD, wander_period));
    if (P(WORKLOAD, skew_from) && trace)
        warn(x, "%s: workload.skew_from has no effect with workload.kind = \"trace\" (the trace's routing is used)", x->path);
    int lm = !strcmp(w->kind, "lm");
    if (trace || lm) {
        static const char *const synth_only[] = {"zipf", "vision_frac", "families", "drift", "layer_corr"};
        for (size_t i = 0; i < sizeof synth_only / sizeof *synth_only; i++)
            if (present[key_index(S_WORKLOAD, synth_only[i])])
                warn(x, "%s: workload.%s has no effect with workload.kind = \"%s\" (the %s routing is used)",
                     x->path, synth_only[i], w->kind, trace ? "trace's" : "model's");
    }
    static const char *const lm_only[] = {"lm", "text", "seq", "batch", "acts", "ablation"};
    for (size_t i = 0; i < sizeof lm_only / sizeof *lm_only && !lm; i++)
        if (present[key_index(S_WORKLOAD, lm_only[i])])
            warn(x, "%s: workload.%s has no effect unless workload.kind = \"lm\"", x->path, lm_only[i]);
    if (lm) {   /* a step is batch sequences of seq tokens */
        if (P(WORKLOAD, tokens))
            return cfg_fail(c, "workload.tokens", "%s", "with kind = \"lm\" a step has seq x batch tokens: leave tokens out");
        x->workload.tokens = (int64_t)w->lm_seq * w->lm_batch;
    }
#undef P
    return 0;
}

/* ---- policies --------------------------------------------------------------- */

/* Append value at idx as label text: strings bare, the rest as Lua writes them. */
static void label_value(lua_State *L, int idx, char *out, size_t cap) {
    if (lua_type(L, idx) == LUA_TSTRING) { snprintf(out, cap, "%s", lua_tostring(L, idx)); return; }
    char *s = mplb_lua_serialize(L, idx);
    snprintf(out, cap, "%s", s ? s : "?");
    for (char *q = out; *q; q++) if (*q == '"' || *q == '[' || *q == ']') memmove(q, q + 1, strlen(q)), q--;
    free(s);
}

/* "threshold(low=nvfp4,tau=1.5; min_tokens=2048,...)": the params the
 * experiment sets, then after "; " the policy's defaults it kept. */
static void make_label(cfg *c, mplb_policy_ref *p, int given, const char *merged) {
    lua_State *L = c->L;
    size_t n = (size_t)snprintf(p->label, sizeof p->label, "%s", p->name);
    char code[8192];
    snprintf(code, sizeof code, "return %s", merged);
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    int all = lua_gettop(L);
    const char *ks[128];
    int nk = 0;
    lua_pushnil(L);
    while (lua_next(L, all) && nk < 128) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) ks[nk++] = lua_tostring(L, -1);
    }
    if (nk == 128) lua_pop(L, 1);
    for (int i = 1; i < nk; i++)   /* sort the names: one label per params set */
        for (int j = i; j > 0 && strcmp(ks[j - 1], ks[j]) > 0; j--) { const char *t = ks[j]; ks[j] = ks[j - 1]; ks[j - 1] = t; }
    int first = 1;
    for (int pass = 0; pass < 2; pass++) {
        int sep = pass == 1 && !first;
        for (int i = 0; i < nk; i++) {
            lua_getfield(L, given, ks[i]);
            int is_given = !lua_isnil(L, -1);
            lua_pop(L, 1);
            if (is_given != (pass == 0)) continue;
            char v[256];
            lua_getfield(L, all, ks[i]);
            label_value(L, -1, v, sizeof v);
            lua_pop(L, 1);
            if (n < sizeof p->label)
                n += (size_t)snprintf(p->label + n, sizeof p->label - n, "%s%s=%s", first ? "(" : sep ? "; " : ",", ks[i], v);
            first = 0;
            sep = 0;
        }
    }
    if (!first && n < sizeof p->label) snprintf(p->label + n, sizeof p->label - n, ")");
    lua_pop(L, 1);
}

static int read_policies(cfg *c, int i, const char *base_dir, mplb_exp *e) {
    lua_State *L = c->L;
    int rc = 0;
    int n = (int)luaL_len(L, i);
    if (n < 1) return cfg_fail(c, "policies", "%s", "empty list");
    {   /* only a list: a key here is a typo of something else */
        lua_pushnil(L);
        while (lua_next(L, i)) {
            lua_pop(L, 1);
            if (!lua_isinteger(L, -1)) {
                char d[160];
                snprintf(d, sizeof d, "has a key '%s': policies is a list of names or {\"name\", param = value}",
                         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
                lua_pop(L, 1);
                return cfg_fail(c, "policies", "%s", d);
            }
        }
    }
    e->policies = calloc((size_t)n, sizeof *e->policies);
    if (!e->policies) return mplb_err_set(c->err, MPLB_ENOMEM, "out of memory");
    e->n_policies = n;
    for (int k = 1; k <= n && rc == 0; k++) {
        char path[64];
        snprintf(path, sizeof path, "policies[%d]", k);
        char pname[MPLB_PATH_MAX];   /* a name or a path: p->name is only its short form */
        mplb_policy_ref *p = &e->policies[k - 1];
        int pt = lua_geti(L, i, k);
        int pi = lua_gettop(L);
        lua_newtable(L);      /* the params the experiment gives */
        int given = pi + 1;
        if (pt == LUA_TSTRING) {
            snprintf(pname, sizeof pname, "%s", lua_tostring(L, pi));
        } else if (pt == LUA_TTABLE) {
            /* { "threshold", tau = 1.5 }: element 1 names the policy, the rest are params */
            if (lua_geti(L, pi, 1) != LUA_TSTRING) {
                lua_settop(L, pi - 1);
                return cfg_fail(c, path, "%s", "a policy table needs its name as element 1, e.g. {\"threshold\", tau = 1.5}");
            }
            snprintf(pname, sizeof pname, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            if (lua_rawlen(L, pi) > 1) {
                lua_settop(L, pi - 1);
                return cfg_fail(c, path, "%s", "only element 1 (the name) may be unnamed: write params as name = value");
            }
            if (lua_getfield(L, pi, "label") == LUA_TSTRING)
                snprintf(p->label, sizeof p->label, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            lua_pushnil(L);
            while (lua_next(L, pi)) {
                if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "label") != 0) {
                    lua_pushvalue(L, -2);
                    lua_insert(L, -2);
                    lua_settable(L, given);
                } else lua_pop(L, 1);
            }
        } else {
            lua_settop(L, pi - 1);
            return cfg_fail(c, path, "expected a policy name or {name, params...}, got %s", lua_typename(L, pt));
        }
        p->params = mplb_lua_serialize(L, given);
        if (!p->params) rc = cfg_fail(c, path, "%s", "parameters must be numbers, strings, booleans or tables");
        if (rc == 0 && strlen(pname) >= sizeof pname - 1) rc = cfg_fail(c, path, "%s", "policy path too long");
        if (rc == 0 && mplb_find_data("policies", pname, base_dir, p->path, c->err) < 0) {
            char msg[MPLB_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", c->err->msg);
            rc = cfg_fail(c, path, "%s", msg);
        }
        if (rc == 0) {
            const char *slash = strrchr(pname, '/');
            const char *base = slash ? slash + 1 : pname;   /* the short name: cut to fit */
            size_t bl = strnlen(base, sizeof p->name - 1);
            memcpy(p->name, base, bl);
            p->name[bl] = 0;
            char *dot = strstr(p->name, ".lua");
            if (dot) *dot = 0;
            /* open the policy once: its P.params check the names given and
             * give the defaults the label shows */
            mplb_policy *pol;
            if (mplb_policy_open(p->path, p->params, NULL, NULL, &pol, c->err) < 0) {
                char msg[MPLB_ERR_MSG_MAX], where[128];
                snprintf(msg, sizeof msg, "%s", c->err->msg);
                /* point at the line of the offending param when the message names one */
                const char *q = strstr(msg, "parameter '");
                if (q) {
                    const char *b = q + 11, *end = strchr(b, '\'');
                    snprintf(where, sizeof where, "%s.%.*s", path, end ? (int)(end - b) : 0, b);
                } else snprintf(where, sizeof where, "%s", path);
                rc = cfg_fail(c, where, "%s", msg);
                if (q) c->err->code = MPLB_ECONFIG;
            } else {
                if (!p->label[0]) make_label(c, p, given, mplb_policy_params(pol));
                char msg[512];
                rc = mplb_policy_check(pol, e, msg, sizeof msg, c->err);
                if (rc == 0 && msg[0]) warn(e, "%s: %s (%s): %s", e->path, path, p->name, msg);
                mplb_policy_close(pol);
            }
        }
        lua_settop(L, pi - 1);
    }
    return rc;
}

/* ---- experiment ---------------------------------------------------------- */

int mplb_exp_load(const char *path, const char *const *sets, int n_sets,
                  mplb_exp *out, mplb_err *err) {
    return mplb_exp_load_ex(path, NULL, sets, n_sets, out, err);
}

int mplb_exp_load_ex(const char *path, const char *base, const char *const *sets, int n_sets,
                     mplb_exp *out, mplb_err *err) {
    char *src;
    int rc = mplb_read_file(path, &src, NULL, err);
    if (rc < 0) { memset(out, 0, sizeof *out); return rc; }
    rc = mplb_exp_load_text(src, path, NULL, base, sets, n_sets, out, err);
    free(src);
    return rc;
}

int mplb_exp_load_text(const char *text, const char *path, const char *lines_src, const char *base,
                       const char *const *sets, int n_sets, mplb_exp *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    out->source = strdup(text);
    if (!out->source) return mplb_err_set(err, MPLB_ENOMEM, "out of memory");
    mplb_lsb sb;
    int rc;
    if ((rc = mplb_lsb_open(&sb, CFG_MEM_LIMIT, CFG_INSTR_LIMIT, err)) < 0) { mplb_exp_free(out); return rc; }
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
    if ((rc = mplb_lsb_check_plain(&sb, top, 1, path, err)) < 0) goto fail;
    for (int s = 0; s < n_sets; s++)
        if ((rc = mplb_lua_apply_set(&sb, top, sets[s], path, err)) < 0) goto fail;
    if (n_sets && (rc = mplb_lsb_check_plain(&sb, top, 1, path, err)) < 0) goto fail;
    cfg c = {L, path, lines_src ? lines_src : out->source, err};
    char base_dir[MPLB_PATH_MAX];
    if (base) snprintf(base_dir, sizeof base_dir, "%s", base);
    else dir_of(path, base_dir, sizeof base_dir);
    snprintf(out->base_dir, sizeof out->base_dir, "%s", base_dir);
    const char *b = strrchr(path, '/');
    snprintf(out->name, sizeof out->name, "%s", b ? b + 1 : path);
    char *dot = strstr(out->name, ".lua");
    if (dot) *dot = 0;
    apply_defaults(out);
    int present[N_KEYS] = {0};
    char wpath[MPLB_PATH_MAX] = "";
    char *wsrc = NULL;
    if ((rc = load_workload_file(&c, top, base_dir, wpath, &wsrc)) < 0) goto fail;
    free(wsrc);
    if ((rc = mplb_lsb_check_plain(&sb, top, 1, path, err)) < 0) goto fail;
    if ((rc = read_section(&c, top, S_TOP, base_dir, out, present)) < 0) {
        if (wpath[0] && strstr(err->msg, "workload")) {   /* the field came from the workload file */
            size_t n = strlen(err->msg);
            if (n + 32 < sizeof err->msg)
                snprintf(err->msg + n, sizeof err->msg - n, " (workload from %.*s)", (int)(sizeof err->msg - n - 24), wpath);
        }
        goto fail;
    }
    if ((rc = cross_checks(&c, out, present)) < 0) goto fail;
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
    mplb_workload_cfg_free(&exp->workload);
    for (int i = 0; i < exp->n_policies; i++) free(exp->policies[i].params);
    free(exp->policies);
    free(exp->source);
    free(exp->resolved);
    free(exp->warnings);
    exp->policies = NULL;
    exp->source = exp->resolved = exp->warnings = NULL;
    exp->n_policies = 0;
}

int mplb_workload_load(const char *path, mplb_workload_cfg *w, mplb_err *err) {
    memset(w, 0, sizeof *w);
    mplb_exp *x = calloc(1, sizeof *x);
    if (!x) return mplb_err_set(err, MPLB_ENOMEM, "out of memory");
    mplb_lsb sb;
    int rc = mplb_lsb_open(&sb, CFG_MEM_LIMIT, CFG_INSTR_LIMIT, err);
    if (rc < 0) { free(x); return rc; }
    snprintf(x->path, sizeof x->path, "%s", path);
    lua_newtable(sb.L);
    lua_pushstring(sb.L, path);
    lua_setfield(sb.L, -2, "workload");
    cfg c = {sb.L, path, NULL, err};
    char dir[MPLB_PATH_MAX], wpath[MPLB_PATH_MAX] = "";
    char *wsrc = NULL;
    dir_of(path, dir, sizeof dir);
    apply_defaults(x);
    int present[N_KEYS] = {0};
    int top = lua_gettop(sb.L);
    if ((rc = load_workload_file(&c, top, dir, wpath, &wsrc)) == 0) {
        c.src = wsrc;
        lua_getfield(sb.L, top, "workload");
        rc = read_section(&c, lua_gettop(sb.L), S_WORKLOAD, dir, x, present);
        lua_pop(sb.L, 1);
    }
    if (rc == 0 && x->workload.prefill_every > 1 && x->workload.decode_tokens == 0)
        rc = cfg_fail(&c, "workload.decode_tokens", "%s", "needed when prefill_every > 1 (tokens per decode step)");
#define P(k) present[key_index(S_WORKLOAD, #k)]
    if (rc == 0) workload_defaults(&x->workload, P(step_sigma), P(regime_rate), P(wander_period));
#undef P
    free(wsrc);
    mplb_lsb_close(&sb);
    *w = x->workload;
    free(x->warnings);
    free(x);
    if (rc < 0) mplb_workload_cfg_free(w);
    return rc;
}

void mplb_workload_cfg_free(mplb_workload_cfg *w) {
    free(w->popularity);
    free(w->layer_sigma);
    w->popularity = w->layer_sigma = NULL;
}

/* ---- the reference ------------------------------------------------------- */

static void md_cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else fputc(*s, f);
    }
}

int mplb_exp_reference(FILE *f) {
    fputs("# Experiment reference\n\n"
          "<!-- generated by `mplb help experiment` from core/lua/exp_keys.h; do not edit by hand:\n"
          "     ./build/mplb help experiment > docs/experiment-reference.md -->\n\n"
          "An experiment is a Lua file returning a table with the keys below. An unknown key at any level\n"
          "is an error naming the file, line and the closest known key. Any list-valued key is a sweep\n"
          "axis (`mplb sweep`); `--set key=value` overrides a key (`--set workload.tokens=4096`,\n"
          "`--set policies.threshold.tau=1.1`). A key that another makes a no-op (for instance\n"
          "`workload.drift` with `workload.families = 1`) draws a warning naming both.\n", f);
    for (int s = 0; s < S_COUNT; s++) {
        if (s == S_TOP) fputs("\n## The top table\n\n", f);
        else fprintf(f, "\n## `%s`: %s\n\n", sect_key[s], sect_doc[s]);
        fputs("| key | type | default | range or values | unit | meaning |\n|---|---|---|---|---|---|\n", f);
        for (int i = 0; i < N_KEYS; i++) {
            const key_def *k = &keys[i];
            if (k->sect != s) continue;
            int req = k->flags & (REQ | REQ_NOPRESET | REQ_SYNTH | REQ_TRACE | REQ_LM);
            const char *reqs = k->flags & REQ ? "required" : k->flags & REQ_NOPRESET ? "required without a preset"
                             : k->flags & REQ_SYNTH ? "required (synthetic)" : k->flags & REQ_TRACE ? "required (trace)"
                             : "required (lm)";
            char range[96] = "";
            if (k->type == T_INT || k->type == T_I64 || k->type == T_U64) {
                if (k->hi >= 9e18) snprintf(range, sizeof range, "%.0f .. 2^63-1", k->lo);
                else snprintf(range, sizeof range, "%.0f .. %.0f", k->lo, k->hi);
            } else if (k->type == T_NUM) snprintf(range, sizeof range, "%g .. %g", k->lo, k->hi);
            else if (k->type == T_ENUM) snprintf(range, sizeof range, "%s", k->unit);
            fprintf(f, "| `%s` | %s | ", k->name, type_name(k->type));
            if (req) md_cell(f, reqs);
            else if (!k->def[0]) fputs("none", f);
            else if (k->def[0] == '(') md_cell(f, k->def);
            else if (k->type == T_STR || k->type == T_ENUM) fprintf(f, "`\"%s\"`", k->def);
            else fprintf(f, "`%s`", k->def);
            fputs(" | ", f);
            md_cell(f, range);
            fputs(" | ", f);
            md_cell(f, k->type == T_ENUM ? "" : k->unit);
            fputs(" | ", f);
            md_cell(f, k->doc);
            fputs(" |\n", f);
        }
    }
    fputs("\nPolicy parameters are each policy's `P.params` (see `docs/writing-policies.md`); a run's\n"
          "labels show every parameter, the ones the experiment sets first, then after `;` the defaults.\n", f);
    return 0;
}
