/* The Lua sandbox: see lsandbox.h. */
#include "lsandbox.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include <lualib.h>

#define HOOK_EVERY 1000

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    mplb_lsb *sb = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        sb->mem_used -= old;
        free(ptr);
        return NULL;
    }
    /* Lua treats NULL as an out-of-memory error it can report cleanly. */
    if (nsize > old && sb->mem_used - old + nsize > sb->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) sb->mem_used = sb->mem_used - old + nsize;
    return p;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static mplb_lsb *sb_of(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Every HOOK_EVERY instructions: the instruction budget, then the wall clock
 * (a last line for time spent in C library calls between instructions). */
static void sb_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    mplb_lsb *sb = sb_of(L);
    if (!sb->killed) {
        sb->instr_left -= HOOK_EVERY;
        int over_time = sb->time_limit > 0 && mono_s() > sb->deadline;
        if (sb->instr_left > 0 && !over_time) return;
        sb->killed = over_time ? 2 : 1;
        lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    }
    if (sb->killed == 2) luaL_error(L, "time limit exceeded (%f s of wall-clock time)", sb->time_limit);
    luaL_error(L, "instruction limit exceeded (%I VM instructions)", (LUAI_UACINT)sb->instr_limit);
}

/* ---- what the stock library would let run unbounded ---------------------- */

/* Finalizers run with hooks off (lgc.c GCTM), so no limit could stop one:
 * setmetatable refuses a metatable with __gc (Lua only marks an object for
 * finalization when __gc is present at setmetatable time, lgc.c). */
static int sb_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc finalizers are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* xpcall's message handler runs inside the error -- with hooks off when the
 * error is the instruction limit's -- so a looping handler would never stop.
 * Here the handler runs after the protected call returns, as an ordinary
 * (counted) call. */
static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++) lua_pushvalue(L, i);
    int rc = lua_pcall(L, n - 2, LUA_MULTRET, 0);
    if (rc == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_replace(L, n);   /* results follow the arguments */
        return lua_gettop(L) - n + 1;
    }
    mplb_lsb *sb = sb_of(L);
    if (sb->killed || rc == LUA_ERRMEM) return lua_error(L);   /* a limit is not the script's to handle */
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* Lua's matcher (lstrlib.c) backtracks in C, where no hook runs: ".-.-.-x"
 * on 5000 bytes runs for hours. Each of the k quantifiers (* + - ?) can
 * multiply the work by the subject length n, so a call is refused when
 * n^(k+1) passes MATCH_BUDGET steps (about a second of C). Plain finds are
 * linear and never refused. */
#define MATCH_BUDGET 1e8

static int pattern_ok(lua_State *L, size_t n, const char *p, size_t pl) {
    int k = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] == '%') { i++; continue; }
        k += p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?';
    }
    double cost = pow((double)n + 1, k + 1) * ((double)pl + 1);
    if (cost <= MATCH_BUDGET) return 1;
    char msg[256];   /* lua_pushfstring knows no %zu or %e */
    snprintf(msg, sizeof msg, "pattern with %d repetition(s) on a %zu-byte string could backtrack for ~%.0e steps "
             "(limit %.0e): use a shorter subject, fewer repetitions, or plain find", k, n, cost, MATCH_BUDGET);
    luaL_error(L, "%s", msg);
    return 0;
}

static int sb_match_call(lua_State *L, const char *name, int plain_arg) {
    size_t n, pl;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &pl);
    if (!(plain_arg && lua_toboolean(L, plain_arg))) pattern_ok(L, n, p, pl);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    (void)name;
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sb_find(lua_State *L) { return sb_match_call(L, "find", 4); }
static int sb_other(lua_State *L) { return sb_match_call(L, "match", 0); }

/* Wrap string.find/match/gmatch/gsub (the string metatable's __index is
 * the same table, so s:find is covered too). */
static void wrap_patterns(lua_State *L) {
    static const char *const fns[] = {"find", "match", "gmatch", "gsub", NULL};
    lua_getglobal(L, LUA_STRLIBNAME);
    for (const char *const *f = fns; *f; f++) {
        lua_getfield(L, -1, *f);
        lua_pushcclosure(L, !strcmp(*f, "find") ? sb_find : sb_other, 1);
        lua_setfield(L, -2, *f);
    }
    lua_pop(L, 1);
}

/* Lua errors outside any protected call end in lua_atpanic's handler: say
 * what and where instead of a bare abort. The library cannot continue the
 * state after a panic; the message names the chunk and line it came from. */
static int sb_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    luaL_where(L, 1);
    fprintf(stderr, "mplb: Lua error outside a protected call (a bug in mplb, please report): %s%s\n",
            lua_tostring(L, -1), msg ? msg : "(error object is not a string)");
    fflush(stderr);
    return 0;   /* Lua aborts */
}

static const luaL_Reg sb_libs[] = {
    {LUA_GNAME, luaopen_base},
    {LUA_TABLIBNAME, luaopen_table},
    {LUA_STRLIBNAME, luaopen_string},
    {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8},
    {NULL, NULL},
};

int mplb_lsb_open(mplb_lsb *sb, size_t mem_limit, long long instr_limit, mplb_err *err) {
    memset(sb, 0, sizeof *sb);
    sb->mem_limit = mem_limit;
    sb->instr_limit = instr_limit;
    sb->L = lua_newstate(sb_alloc, sb);
    if (!sb->L) return mplb_err_set(err, MPLB_ENOMEM, "cannot create Lua state");
    for (const luaL_Reg *lib = sb_libs; lib->func; lib++) {
        luaL_requiref(sb->L, lib->name, lib->func, 1);
        lua_pop(sb->L, 1);
    }
    static const char *const denied[] = {"load", "loadfile", "dofile", "require", NULL};
    for (const char *const *d = denied; *d; d++) {
        lua_pushnil(sb->L);
        lua_setglobal(sb->L, *d);
    }
    lua_atpanic(sb->L, sb_panic);
    lua_pushcfunction(sb->L, sb_setmetatable);
    lua_setglobal(sb->L, "setmetatable");
    lua_pushcfunction(sb->L, sb_xpcall);
    lua_setglobal(sb->L, "xpcall");
    wrap_patterns(sb->L);
    sb->time_limit = MPLB_LSB_TIME_LIMIT;
    return 0;
}

void mplb_lsb_close(mplb_lsb *sb) {
    if (sb->L) lua_close(sb->L);
    sb->L = NULL;
}

static int sb_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int mplb_lsb_pcall(mplb_lsb *sb, int nargs, int nresults, const char *what, mplb_err *err) {
    lua_State *L = sb->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, sb_traceback);
    lua_insert(L, base);
    sb->instr_left = sb->instr_limit;
    sb->killed = 0;
    sb->deadline = mono_s() + sb->time_limit;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    if (rc == LUA_OK) return 0;
    const char *msg = lua_tostring(L, -1);
    int code = MPLB_EPOLICY;
    if (rc == LUA_ERRMEM) {
        code = MPLB_ELIMIT;
        mplb_err_set(err, code, "%s%smemory limit exceeded (%zu bytes)",
                     what ? what : "", what ? ": " : "", sb->mem_limit);
    } else {
        if (sb->killed) code = MPLB_ELIMIT;
        mplb_err_set(err, code, "%s%s%s", what ? what : "", what ? ": " : "",
                     msg ? msg : "(error object is not a string)");
    }
    lua_pop(L, 1);
    return code;
}

int mplb_read_file(const char *path, char **out, size_t *len, mplb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mplb_err_set(err, MPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) { fclose(f); return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); }
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return mplb_err_set(err, MPLB_EIO, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

int mplb_lsb_dostring(mplb_lsb *sb, const char *code, const char *chunkname,
                      int nresults, mplb_err *err) {
    if (luaL_loadbufferx(sb->L, code, strlen(code), chunkname, "t") != LUA_OK) {
        int rc = mplb_err_set(err, MPLB_ECONFIG, "%s", lua_tostring(sb->L, -1));
        lua_pop(sb->L, 1);
        return rc;
    }
    return mplb_lsb_pcall(sb, 0, nresults, NULL, err);
}

int mplb_lsb_dofile(mplb_lsb *sb, const char *path, int nresults, mplb_err *err) {
    char *src;
    int rc = mplb_read_file(path, &src, NULL, err);
    if (rc < 0) return rc;
    char name[MPLB_ERR_MSG_MAX / 2];
    snprintf(name, sizeof name, "@%s", path);
    rc = mplb_lsb_dostring(sb, src, name, nresults, err);
    free(src);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_quoted(sbuf *b, const char *s, size_t n) {
    sb_str(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; sb_add(b, esc, 2); }
        else if (c < 32 || c == 127) { snprintf(esc, sizeof esc, "\\%03u", c); sb_str(b, esc); }
        else sb_add(b, (const char *)&s[i], 1);
    }
    sb_str(b, "\"");
}

/* Serialise the value at idx as a Lua constructor (numbers, strings,
 * booleans, nested tables: array part in order, then string keys sorted, so
 * one table always prints as the same text whatever Lua's hash order). */
static int ser(lua_State *L, int idx, sbuf *b, int depth) {
    char num[64];
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        else {
            double v = lua_tonumber(L, idx);
            if (v != v) snprintf(num, sizeof num, "(0/0)");
            else if (v == HUGE_VAL) snprintf(num, sizeof num, "math.huge");
            else if (v == -HUGE_VAL) snprintf(num, sizeof num, "-math.huge");
            else {
                /* shortest of %.15g..%.17g that reads back exactly */
                for (int prec = 15; prec <= 17; prec++) {
                    snprintf(num, sizeof num, "%.*g", prec, v);
                    if (strtod(num, NULL) == v) break;
                }
                if (!strpbrk(num, ".en")) strcat(num, ".0"); /* stay a float when read back */
            }
        }
        sb_str(b, num);
        return 0;
    case LUA_TBOOLEAN: sb_str(b, lua_toboolean(L, idx) ? "true" : "false"); return 0;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        sb_quoted(b, s, n);
        return 0;
    }
    case LUA_TTABLE: {
        if (depth > 16) return -1;
        sb_str(b, "{");
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            int bad = ser(L, -1, b, depth + 1);
            lua_pop(L, 1);
            if (bad < 0) return -1;
            sb_str(b, ",");
        }
        size_t nk = 0, cap = 16;
        const char **keys = malloc(cap * sizeof *keys);
        if (!keys) return -1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                if (nk == cap) {
                    const char **nkeys = realloc(keys, (cap *= 2) * sizeof *keys);
                    if (!nkeys) { free(keys); lua_pop(L, 1); return -1; }
                    keys = nkeys;
                }
                keys[nk++] = lua_tostring(L, -1); /* stays alive: the table holds it */
            } else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
                free(keys);
                lua_pop(L, 1);
                return -1;
            }
        }
        qsort(keys, nk, sizeof *keys, cmp_str);
        int rc = 0;
        for (size_t i = 0; i < nk && rc == 0; i++) {
            sb_str(b, "[");
            sb_quoted(b, keys[i], strlen(keys[i]));
            sb_str(b, "]=");
            lua_pushstring(L, keys[i]);
            lua_rawget(L, idx);
            rc = ser(L, -1, b, depth + 1);
            lua_pop(L, 1);
            sb_str(b, ",");
        }
        free(keys);
        if (rc < 0) return -1;
        sb_str(b, "}");
        return 0;
    }
    default:
        return -1;
    }
}

char *mplb_lua_serialize(lua_State *L, int idx) {
    sbuf b = {0};
    if (ser(L, idx, &b, 0) < 0 || b.oom) { free(b.p); return NULL; }
    return b.p;
}

/* Walk the table at 1 (visited set at 2): a metatable anywhere is an error.
 * Raw access only (lua_next, lua_getmetatable), so nothing here runs Lua. */
static int plain_walk(lua_State *L, int t, int deep, int depth) {
    if (depth > 64) return luaL_error(L, "tables nested more than 64 deep");
    if (lua_getmetatable(L, t)) return luaL_error(L, "a table with a metatable (only plain data is read from here)");
    lua_pushvalue(L, t);
    if (lua_rawget(L, 2) != LUA_TNIL) { lua_pop(L, 1); return 0; }
    lua_pop(L, 1);
    lua_pushvalue(L, t);
    lua_pushboolean(L, 1);
    lua_rawset(L, 2);
    if (!deep) return 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        luaL_checkstack(L, 4, "tables nested too deep");
        for (int i = -2; i <= -1; i++)
            if (lua_type(L, i) == LUA_TTABLE) plain_walk(L, lua_absindex(L, i), deep, depth + 1);
        lua_pop(L, 1);
    }
    return 0;
}

static int l_plain(lua_State *L) {
    int deep = lua_toboolean(L, 2);
    lua_settop(L, 1);
    lua_newtable(L);
    if (lua_type(L, 1) == LUA_TTABLE) plain_walk(L, 1, deep, 0);
    return 0;
}

int mplb_lsb_check_plain(mplb_lsb *sb, int idx, int deep, const char *what, mplb_err *err) {
    lua_State *L = sb->L;
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, l_plain);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, deep);
    int rc = mplb_lsb_pcall(sb, 2, 0, NULL, err);
    if (rc < 0) mplb_err_wrap(err, "%s", what);
    return rc;
}

