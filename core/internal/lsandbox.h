/* mplb_lsb: a Lua 5.4 state that untrusted Lua (policies, configs) runs in.
 *
 * Only base (without load, loadfile, dofile), table, string, math and utf8
 * are opened. The allocator refuses to grow past mem_limit bytes, and a count
 * hook ends a call that runs more than instr_limit VM instructions; once a
 * call is being killed the hook fires every instruction so pcall inside the
 * script cannot swallow the kill (Redis' script-kill trick). Chunks load as
 * text only. Finalizers (__gc) are refused, since they run with hooks off;
 * xpcall's handler runs as an ordinary counted call; pattern matching that
 * could backtrack past a step budget is refused; every call also has a
 * wall-clock limit; an error outside any protected call is reported with its
 * chunk and line before Lua aborts. The caller owns the mplb_lsb struct;
 * nothing is global.
 */
#ifndef MPLB_LSANDBOX_H
#define MPLB_LSANDBOX_H

#include <stddef.h>
#include <lua.h>
#include "mplb/err.h"

typedef struct mplb_lsb {
    lua_State *L;
    size_t mem_used, mem_limit;
    long long instr_left, instr_limit;
    int killed;                 /* 1 = instruction limit, 2 = time limit hit in this call */
    double time_limit, deadline; /* wall-clock seconds per call (0 = none), monotonic deadline */
} mplb_lsb;

/* Wall-clock limit per protected call, checked every 1000 instructions: a
 * last line behind the instruction and pattern limits. */
#define MPLB_LSB_TIME_LIMIT 30.0

int mplb_lsb_open(mplb_lsb *sb, size_t mem_limit, long long instr_limit, mplb_err *err);
void mplb_lsb_close(mplb_lsb *sb);
/* Load and run a file; leaves nresults values on the stack. */
int mplb_lsb_dofile(mplb_lsb *sb, const char *path, int nresults, mplb_err *err);
/* Load and run a string chunk named chunkname. */
int mplb_lsb_dostring(mplb_lsb *sb, const char *code, const char *chunkname,
                      int nresults, mplb_err *err);
/* lua_pcall with a fresh instruction budget, traceback, and limits reported
 * as MPLB_ELIMIT. what names the call in the message ("decide"). */
int mplb_lsb_pcall(mplb_lsb *sb, int nargs, int nresults, const char *what, mplb_err *err);
/* Refuse the table at idx (deep: and every table inside it) if it has a
 * metatable: C reads data tables with lua_getfield, which would run __index
 * outside the sandbox's limits. what prefixes the error ("FILE: P.params"). */
int mplb_lsb_check_plain(mplb_lsb *sb, int idx, int deep, const char *what, mplb_err *err);
/* Read a whole file into a malloc'd NUL-terminated buffer. */
int mplb_read_file(const char *path, char **out, size_t *len, mplb_err *err);

/* Serialise the data value at idx (numbers, strings, booleans, nested
 * tables) as Lua source; malloc'd, NULL when it holds anything else. */
char *mplb_lua_serialize(lua_State *L, int idx);

/* Apply a --set override "a.b.c=expr" to the table at stack index top: expr
 * is evaluated as Lua (a bare word becomes a string); model = "preset" turns
 * into { preset = ... } so model.layers=3 works on presets. */
int mplb_lua_apply_set(mplb_lsb *sb, int top, const char *set, const char *file, mplb_err *err);

#endif
