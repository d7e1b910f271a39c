/* The Lua sandbox: see lsandbox.h. */
#include "lsandbox.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void sb_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    mplb_lsb *sb = ud;
    if (!sb->killed) {
        sb->instr_left -= HOOK_EVERY;
        if (sb->instr_left > 0) return;
        sb->killed = 1;
        lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "instruction limit exceeded (%I VM instructions)", (LUAI_UACINT)sb->instr_limit);
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
            lua_getfield(L, idx, keys[i]);
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
