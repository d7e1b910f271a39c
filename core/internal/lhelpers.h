/* mplb_lh: C helpers for Lua policies, in the sandbox's `mplb` table.
 *
 * The heavy loops of the shipped policies (sorting, greedy packing, per-rank
 * sums) run here so a policy's decide costs about as much as a cost-model
 * evaluation while the Lua still reads like the paper's pseudocode. Every
 * helper takes Lua lists of numbers or the obs array views (obs.expert_load,
 * ...), returns fresh 1-based Lua lists, and breaks ties by the lower index,
 * so results do not depend on the sort algorithm. Reference: docs/policy-api
 * section of docs/architecture.md.
 *
 *   lua_getglobal(L, "mplb");
 *   mplb_lh_open(L, &ctx);      -- adds mplb.argsort, mplb.greedy_pack, ...
 *
 * ctx (owned by the caller, alive as long as L) lets the helpers read the
 * engine's obs views without a metamethod call per element; a NULL ctx or
 * NULL members work on plain Lua lists only.
 */
#ifndef MPLB_LHELPERS_H
#define MPLB_LHELPERS_H

#include <stdint.h>
#include <lua.h>

typedef struct mplb_lh_ctx {
    void *ud;
    /* the value at idx is an obs array view: its length, and with out != NULL
     * its values copied into out[0..n); -1 when idx is not a view */
    int (*view)(void *ud, lua_State *L, int idx, double *out);
    /* obs.src_load as a row-major [R][E] matrix (NULL when absent) */
    const int32_t *(*src)(void *ud, int *R, int *E);
} mplb_lh_ctx;

/* Add the helpers to the table at the top of the stack. */
void mplb_lh_open(lua_State *L, const mplb_lh_ctx *ctx);

#endif
