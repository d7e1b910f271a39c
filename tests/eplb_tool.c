/* eplb_tool: run EPLB as policies/eplb.lua's decide does (mplb.rebalance_experts)
 * on loads from stdin, for tests/python/test_eplb.py (placement against a
 * numpy port of DeepSeek's eplb.py) and bench/eplb.py (speed).
 *
 * stdin:  layers experts num_replicas num_groups num_nodes num_gpus reps
 *         then layers rows of experts loads
 * stdout: layers rows of phy2log, then layers rows of logcnt (0-based, as
 *         EPLB's); with reps > 0 also "us_per_rebalance X": thread CPU time
 *         of one rebalance of all layers, best of reps. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "lhelpers.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    int Ly, E, NP, G, N, GPU, reps;
    if (scanf("%d %d %d %d %d %d %d", &Ly, &E, &NP, &G, &N, &GPU, &reps) != 7 || Ly < 1 || E < 1) {
        fprintf(stderr, "eplb_tool: stdin: expected 'layers experts num_replicas num_groups num_nodes num_gpus reps'\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    mplb_lh_open(L, NULL);
    lua_setglobal(L, "mplb");
    lua_createtable(L, Ly, 0);   /* the loads, one list per layer */
    for (int l = 0; l < Ly; l++) {
        lua_createtable(L, E, 0);
        for (int e = 0; e < E; e++) {
            double w;
            if (scanf("%lf", &w) != 1) { fprintf(stderr, "eplb_tool: stdin: layer %d, expert %d: expected a number\n", l + 1, e + 1); return 2; }
            lua_pushnumber(L, w);
            lua_rawseti(L, -2, e + 1);
        }
        lua_rawseti(L, -2, l + 1);
    }
    lua_setglobal(L, "W");
    char code[512];
    snprintf(code, sizeof code,
             "local P, C = {}, {}\n"
             "for l, w in ipairs(W) do\n"
             "  local _\n"
             "  P[l], _, C[l] = mplb.rebalance_experts(w, %d, %d, %d, %d)\n"
             "end\n"
             "return P, C\n", NP, G, N, GPU);
    if (luaL_loadstring(L, code) != 0) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 1; }
    double best = 1e30;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {   /* timed: the rebalance only, not the printing */
        lua_pushvalue(L, -1);
        double t0 = cpu_now();
        if (lua_pcall(L, 0, 2, 0) != 0) { fprintf(stderr, "eplb_tool: %s\n", lua_tostring(L, -1)); return 1; }
        double dt = cpu_now() - t0;
        if (dt < best) best = dt;
        if (r == 0) {
            lua_setglobal(L, "C");
            lua_setglobal(L, "P");
            if (luaL_dostring(L, "local o = {}\n"
                                 "for l = 1, #P do o[#o + 1] = table.concat(P[l], ' ') end\n"
                                 "for l = 1, #C do o[#o + 1] = table.concat(C[l], ' ') end\n"
                                 "return table.concat(o, '\\n')") != 0) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 1; }
            puts(lua_tostring(L, -1));
            lua_pop(L, 1);
        } else lua_pop(L, 2);
    }
    if (reps > 0) printf("us_per_rebalance %.3f\n", best * 1e6);
    lua_close(L);
    return 0;
}
