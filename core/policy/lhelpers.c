/* C helpers for Lua policies: see core/internal/lhelpers.h.
 *
 * Inputs are copied once into scratch userdata (collected with the call's
 * garbage, so a Lua error inside a helper leaks nothing); outputs are fresh
 * Lua lists. Orders are stable: equal values keep the lower index first. */
#include "lhelpers.h"

#include <math.h>
#include <string.h>
#include <lauxlib.h>

static const mplb_lh_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static void *scratch(lua_State *L, size_t bytes) { return lua_newuserdatauv(L, bytes ? bytes : 1, 0); }

/* A dense rows x cols matrix of doubles in C storage (mplb.matrix), for the
 * per-(node, expert) counts a policy keeps across steps: the helpers update
 * and read it without moving every entry across the Lua boundary. */
#define MATRIX_MT "mplb.matrix"
typedef struct lh_matrix { int rows, cols; double v[]; } lh_matrix;

static lh_matrix *test_matrix(lua_State *L, int idx) { return luaL_testudata(L, idx, MATRIX_MT); }

/* mplb.matrix(rows, cols): all zeros. m:get(r, c), m:set(r, c, x), #m = rows. */
static int lh_matrix_new(lua_State *L) {
    lua_Integer r = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
    if (r < 0 || c < 0 || r * c > (1 << 26)) luaL_error(L, "mplb.matrix: bad shape %d x %d", (int)r, (int)c);
    lh_matrix *m = lua_newuserdatauv(L, sizeof *m + (size_t)(r * c) * sizeof(double), 0);
    m->rows = (int)r, m->cols = (int)c;
    memset(m->v, 0, (size_t)(r * c) * sizeof(double));
    luaL_setmetatable(L, MATRIX_MT);
    return 1;
}

static double *matrix_at(lua_State *L, lh_matrix **m) {
    *m = luaL_checkudata(L, 1, MATRIX_MT);
    lua_Integer r = luaL_checkinteger(L, 2), c = luaL_checkinteger(L, 3);
    if (r < 1 || r > (*m)->rows || c < 1 || c > (*m)->cols)
        luaL_error(L, "matrix index (%d, %d) outside %d x %d", (int)r, (int)c, (*m)->rows, (*m)->cols);
    return &(*m)->v[(size_t)(r - 1) * (*m)->cols + (size_t)(c - 1)];
}

static int lh_matrix_get(lua_State *L) {
    lh_matrix *m;
    lua_pushnumber(L, *matrix_at(L, &m));
    return 1;
}

static int lh_matrix_set(lua_State *L) {
    lh_matrix *m;
    double *p = matrix_at(L, &m);
    *p = luaL_checknumber(L, 4);
    return 0;
}

static int lh_matrix_len(lua_State *L) {
    lua_pushinteger(L, ((lh_matrix *)luaL_checkudata(L, 1, MATRIX_MT))->rows);
    return 1;
}

/* Argument idx as n doubles: an obs array view or a list of numbers. */
static double *vec_arg(lua_State *L, int idx, const char *fn, int *n) {
    const mplb_lh_ctx *c = ctx_of(L);
    if (c && c->view) {
        int m = c->view(c->ud, L, idx, NULL);
        if (m >= 0) {
            double *v = scratch(L, (size_t)m * sizeof(double));
            c->view(c->ud, L, idx, v);
            *n = m;
            return v;
        }
    }
    if (!lua_istable(L, idx)) luaL_error(L, "mplb.%s: argument %d must be a list of numbers or an obs array, got %s", fn, idx, luaL_typename(L, idx));
    int m = (int)lua_rawlen(L, idx);
    double *v = scratch(L, (size_t)m * sizeof(double));
    for (int i = 0; i < m; i++) {
        int ok;
        lua_rawgeti(L, idx, i + 1);
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok) luaL_error(L, "mplb.%s: argument %d, entry %d is %s, not a number", fn, idx, i + 1, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    *n = m;
    return v;
}

/* Argument idx as n 0-based indices from 1-based values in 1..hi. */
static int *index_arg(lua_State *L, int idx, const char *fn, int hi, int *n) {
    double *v = vec_arg(L, idx, fn, n);
    int *o = scratch(L, (size_t)*n * sizeof(int));
    for (int i = 0; i < *n; i++) {
        if (!(v[i] >= 1 && v[i] <= hi) || v[i] != floor(v[i]))
            luaL_error(L, "mplb.%s: argument %d, entry %d = %g is not an index in 1..%d", fn, idx, i + 1, v[i], hi);
        o[i] = (int)v[i] - 1;
    }
    return o;
}

static void push_ints(lua_State *L, const int *a, int n, int plus) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)a[i] + plus);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_nums(lua_State *L, const double *a, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, a[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* Stable merge sort of idx[0..n) by key (descending when desc); ties keep
 * their incoming order. tmp holds n ints. */
static void sort_idx(int *idx, int *tmp, int n, const double *key, int desc) {
    if (n <= 16) {   /* insertion sort: stable, and cheaper on short lists */
        for (int i = 1; i < n; i++) {
            int x = idx[i], j = i;
            double kx = key[x];
            while (j > 0 && (desc ? kx > key[idx[j - 1]] : kx < key[idx[j - 1]])) idx[j] = idx[j - 1], j--;
            idx[j] = x;
        }
        return;
    }
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                double a = key[idx[i]], b = key[idx[j]];
                int take_j = desc ? b > a : b < a;
                tmp[k++] = take_j ? idx[j++] : idx[i++];
            }
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof(int));
    }
}

static int order_arg(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_isboolean(L, idx)) return lua_toboolean(L, idx);
    static const char *const names[] = {"asc", "desc", NULL};
    return luaL_checkoption(L, idx, NULL, names);
}

/* mplb.argsort(v [, "desc"]): indices of v in ascending (or descending)
 * order of value, ties by the lower index. */
static int lh_argsort(lua_State *L) {
    int n, desc = order_arg(L, 2);
    double *v = vec_arg(L, 1, "argsort", &n);
    int *idx = scratch(L, (size_t)n * sizeof(int)), *tmp = scratch(L, (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, tmp, n, v, desc);
    push_ints(L, idx, n, 1);
    return 1;
}

/* mplb.topn(v, k): the indices of the k largest values, largest first. */
static int lh_topn(lua_State *L) {
    int n;
    double *v = vec_arg(L, 1, "topn", &n);
    lua_Integer k = luaL_checkinteger(L, 2);
    int *idx = scratch(L, (size_t)n * sizeof(int)), *tmp = scratch(L, (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, tmp, n, v, 1);
    push_ints(L, idx, k < 0 ? 0 : k > n ? n : (int)k, 1);
    return 1;
}

/* the first index of the max (sign 1) or min (sign -1) of v over entries
 * not in the set skip (a table whose skip[i] is true), or nil */
static int extreme(lua_State *L, const char *fn, int sign) {
    int n;
    double *v = vec_arg(L, 1, fn, &n);
    int has_skip = lua_istable(L, 2), best = -1;
    for (int i = 0; i < n; i++) {
        if (has_skip) {
            int skip = lua_rawgeti(L, 2, i + 1) != LUA_TNIL && lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (skip) continue;
        }
        if (best < 0 || (sign > 0 ? v[i] > v[best] : v[i] < v[best])) best = i;
    }
    if (best < 0) lua_pushnil(L);
    else lua_pushinteger(L, best + 1);
    return 1;
}

/* mplb.argmax(v [, skip]), mplb.argmin(v [, skip]) */
static int lh_argmax(lua_State *L) { return extreme(L, "argmax", 1); }
static int lh_argmin(lua_State *L) { return extreme(L, "argmin", -1); }

/* mplb.extremes(v): argmax and argmin in one pass. */
static int lh_extremes(lua_State *L) {
    int n;
    double *v = vec_arg(L, 1, "extremes", &n);
    if (n == 0) { lua_pushnil(L); lua_pushnil(L); return 2; }
    int hi = 0, lo = 0;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[hi]) hi = i;
        if (v[i] < v[lo]) lo = i;
    }
    lua_pushinteger(L, hi + 1);
    lua_pushinteger(L, lo + 1);
    return 2;
}

/* mplb.rank_sums(v, rank_of, R): s[r] = sum of v[i] over rank_of[i] == r. */
static int lh_rank_sums(lua_State *L) {
    int n, m;
    int R = (int)luaL_checkinteger(L, 3);
    if (R < 0) luaL_argerror(L, 3, "negative rank count");
    double *v = vec_arg(L, 1, "rank_sums", &n);
    int *rk = index_arg(L, 2, "rank_sums", R, &m);
    if (m != n) luaL_error(L, "mplb.rank_sums: %d values but %d ranks", n, m);
    double *s = scratch(L, (size_t)R * sizeof(double));
    memset(s, 0, (size_t)R * sizeof(double));
    for (int i = 0; i < n; i++) s[rk[i]] += v[i];
    push_nums(L, s, R);
    return 1;
}

/* mplb.group_by(rank_of, R): for each r in 1..R the list of i with
 * rank_of[i] == r, in increasing order. */
static int lh_group_by(lua_State *L) {
    int n;
    int R = (int)luaL_checkinteger(L, 2);
    if (R < 0) luaL_argerror(L, 2, "negative group count");
    int *rk = index_arg(L, 1, "group_by", R, &n);
    lua_createtable(L, R, 0);
    int top = lua_gettop(L);
    for (int r = 0; r < R; r++) {
        lua_newtable(L);
        lua_rawseti(L, top, r + 1);
    }
    int *fill = scratch(L, (size_t)R * sizeof(int));
    memset(fill, 0, (size_t)R * sizeof(int));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, top, rk[i] + 1);
        lua_pushinteger(L, i + 1);
        lua_rawseti(L, -2, ++fill[rk[i]]);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, top);
    return 1;
}

/* mplb.greedy_pack(w, bins, cap [, group_of, group_size]): longest-first
 * greedy packing. Items in descending weight (ties: lower index) each go to
 * the least-loaded bin with fewer than cap items (ties: lower bin); with
 * group_of, only the bins (g-1)*group_size+1 .. g*group_size of item i's
 * group g = group_of[i] are tried first, then any bin with room. Returns
 * the bin of each item and the bins' loads. */
static int lh_greedy_pack(lua_State *L) {
    int n, ng = 0;
    double *w = vec_arg(L, 1, "greedy_pack", &n);
    int B = (int)luaL_checkinteger(L, 2), cap = (int)luaL_checkinteger(L, 3);
    if (B < 1) luaL_argerror(L, 2, "need at least one bin");
    if (cap < 0 || (long long)cap * B < n) luaL_error(L, "mplb.greedy_pack: %d items do not fit %d bins of %d", n, B, cap);
    int *grp = NULL, gs = 0;
    if (!lua_isnoneornil(L, 4)) {
        gs = (int)luaL_checkinteger(L, 5);
        if (gs < 1) luaL_argerror(L, 5, "group size must be >= 1");
        grp = index_arg(L, 4, "greedy_pack", (B + gs - 1) / gs, &ng);
        if (ng != n) luaL_error(L, "mplb.greedy_pack: %d weights but %d groups", n, ng);
    }
    int *idx = scratch(L, (size_t)n * sizeof(int)), *tmp = scratch(L, (size_t)n * sizeof(int));
    int *bin = scratch(L, (size_t)n * sizeof(int)), *cnt = scratch(L, (size_t)B * sizeof(int));
    double *load = scratch(L, (size_t)B * sizeof(double));
    memset(cnt, 0, (size_t)B * sizeof(int));
    memset(load, 0, (size_t)B * sizeof(double));
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, tmp, n, w, 1);
    for (int k = 0; k < n; k++) {
        int i = idx[k], best = -1;
        if (grp) {
            int b1 = (grp[i] + 1) * gs < B ? (grp[i] + 1) * gs : B;
            for (int b = grp[i] * gs; b < b1; b++)
                if (cnt[b] < cap && (best < 0 || load[b] < load[best])) best = b;
        }
        if (best < 0)
            for (int b = 0; b < B; b++)
                if (cnt[b] < cap && (best < 0 || load[b] < load[best])) best = b;
        bin[i] = best;
        cnt[best]++;
        load[best] += w[i];
    }
    push_ints(L, bin, n, 1);
    push_nums(L, load, B);
    return 2;
}

/* Heap of columns by their current pair (score of the column's next row):
 * higher score first, then lower column, then lower row. */
static int pair_before(int a, int b, const double *s, const int *ord, const int *next, int rows) {
    int ra = ord[(size_t)a * rows + next[a]], rb = ord[(size_t)b * rows + next[b]];
    double sa = s[(size_t)a * rows + ra], sb = s[(size_t)b * rows + rb];
    if (sa != sb) return sa > sb;
    if (a != b) return a < b;
    return ra < rb;
}

static void heap_push(int *h, int *n, int c, const double *s, const int *ord, const int *next, int rows) {
    int i = (*n)++;
    h[i] = c;
    while (i > 0 && pair_before(h[i], h[(i - 1) / 2], s, ord, next, rows)) {
        int p = (i - 1) / 2, t = h[p];
        h[p] = h[i], h[i] = t, i = p;
    }
}

static int heap_pop(int *h, int *n, const double *s, const int *ord, const int *next, int rows) {
    int top = h[0], i = 0;
    h[0] = h[--(*n)];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && pair_before(h[l], h[m], s, ord, next, rows)) m = l;
        if (r < *n && pair_before(h[r], h[m], s, ord, next, rows)) m = r;
        if (m == i) break;
        int t = h[m];
        h[m] = h[i], h[i] = t, i = m;
    }
    return top;
}

/* mplb.assign_by_score(score, rows, cols, cap): score is a rows x cols
 * matrix as a list of rows (or one flat row-major list). Pairs (row, col) in
 * descending score (ties: lower col, then lower row) give col to row while
 * col is unassigned and row has fewer than cap columns. Returns the row of
 * each column (nil where none had room). */
static int lh_assign_by_score(lua_State *L) {
    int rows = (int)luaL_checkinteger(L, 2), cols = (int)luaL_checkinteger(L, 3), cap = (int)luaL_checkinteger(L, 4);
    if (rows < 1 || cols < 0) luaL_error(L, "mplb.assign_by_score: bad shape %d x %d", rows, cols);
    size_t N = (size_t)rows * (size_t)cols;
    double *s = scratch(L, N * sizeof(double));   /* column-major: s[c * rows + r] */
    lh_matrix *M = test_matrix(L, 1);
    if (M && (M->rows != rows || M->cols != cols))
        luaL_error(L, "mplb.assign_by_score: a %d x %d matrix for %d x %d", M->rows, M->cols, rows, cols);
    if (M)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) s[(size_t)c * rows + r] = M->v[(size_t)r * cols + c];
    else luaL_checktype(L, 1, LUA_TTABLE);
    int nested = !M && lua_rawgeti(L, 1, 1) == LUA_TTABLE;
    if (!M) lua_pop(L, 1);
    for (int r = 0; !M && r < rows; r++) {
        if (nested && lua_rawgeti(L, 1, r + 1) != LUA_TTABLE) luaL_error(L, "mplb.assign_by_score: row %d is not a list", r + 1);
        for (int c = 0; c < cols; c++) {
            int ok;
            if (nested) lua_rawgeti(L, -1, c + 1);
            else lua_rawgeti(L, 1, (lua_Integer)r * cols + c + 1);
            s[(size_t)c * rows + r] = lua_tonumberx(L, -1, &ok);
            if (!ok) luaL_error(L, "mplb.assign_by_score: score[%d][%d] is not a number", r + 1, c + 1);
            lua_pop(L, 1);
        }
        if (nested) lua_pop(L, 1);
    }
    /* Same result as walking all pairs in that order, without sorting them:
     * each column's rows in its own order, and a heap holding every open
     * column's best row not yet known full. Popping a pair whose row filled
     * up moves that column on to its next row. */
    int *ord = scratch(L, N * sizeof(int)), *tmp = scratch(L, (size_t)rows * sizeof(int));
    int *next = scratch(L, (size_t)cols * sizeof(int)), *heap = scratch(L, (size_t)cols * sizeof(int));
    int *room = scratch(L, (size_t)rows * sizeof(int)), *row_of = scratch(L, (size_t)cols * sizeof(int));
    for (int c = 0; c < cols; c++) {
        int *o = ord + (size_t)c * rows;
        for (int r = 0; r < rows; r++) o[r] = r;
        sort_idx(o, tmp, rows, s + (size_t)c * rows, 1);
        next[c] = 0;
        row_of[c] = -1;
    }
    for (int r = 0; r < rows; r++) room[r] = cap;
    int hn = 0;
    for (int c = 0; c < cols; c++) heap_push(heap, &hn, c, s, ord, next, rows);
    while (hn > 0 && cap > 0) {
        int c = heap_pop(heap, &hn, s, ord, next, rows);
        int r = ord[(size_t)c * rows + next[c]];
        if (room[r] > 0) { row_of[c] = r; room[r]--; continue; }
        while (++next[c] < rows && room[ord[(size_t)c * rows + next[c]]] == 0) {}
        if (next[c] < rows) heap_push(heap, &hn, c, s, ord, next, rows);
    }
    lua_createtable(L, cols, 0);
    for (int c = 0; c < cols; c++) {
        if (row_of[c] < 0) continue;
        lua_pushinteger(L, row_of[c] + 1);
        lua_rawseti(L, -2, c + 1);
    }
    return 1;
}

/* ---- DeepSeek EPLB (deepseek-ai/EPLB, eplb.py), one row at a time ------
 * Re-written from the published algorithm; arithmetic in float32 as there
 * (weight.float()). policies/eplb.lua keeps the same steps in Lua, the
 * readable version the tests hold these to. */

/* balanced_packing: n items into P packs of n/P items, heaviest first
 * (ties: lower index) into the lightest pack with room (ties: lower pack).
 * idx, tmp: n ints of scratch; key: n doubles of scratch. */
static void eplb_pack(const float *w, int n, int P, int *pack, int *rip, int *idx, int *tmp, double *key, int *cnt, float *pw) {
    int per = n / P;
    if (per == 1) {
        for (int i = 0; i < n; i++) pack[i] = i, rip[i] = 0;
        return;
    }
    for (int i = 0; i < n; i++) idx[i] = i, key[i] = w[i];
    for (int k = 0; k < P; k++) cnt[k] = 0, pw[k] = 0;
    sort_idx(idx, tmp, n, key, 1);
    for (int k = 0; k < n; k++) {
        int g = idx[k], best = -1;
        for (int p = 0; p < P; p++)
            if (cnt[p] < per && (best < 0 || pw[p] < pw[best])) best = p;
        pack[g] = best;
        rip[g] = cnt[best]++;
        pw[best] += w[g];
    }
}

/* replicate_experts: each of the np - n extra slots to the expert with the
 * most load per copy (ties: lower index). per: n floats of scratch. */
static void eplb_replicate(const float *w, int n, int np, int *p2l, int *rk, int *cnt, float *per) {
    for (int e = 0; e < n; e++) p2l[e] = e, rk[e] = 0, cnt[e] = 1, per[e] = w[e];
    for (int j = n; j < np; j++) {
        int best = 0;
        for (int e = 1; e < n; e++)
            if (per[e] > per[best]) best = e;
        p2l[j] = best;
        rk[j] = cnt[best]++;
        per[best] = w[best] / (float)cnt[best];
    }
}

static float *float_arg(lua_State *L, int idx, const char *fn, int *n) {
    double *v = vec_arg(L, idx, fn, n);
    float *f = scratch(L, (size_t)*n * sizeof(float));
    for (int i = 0; i < *n; i++) f[i] = (float)v[i];
    return f;
}

/* mplb.balanced_packing(w, packs) -> pack_index, rank_in_pack (0-based
 * values, as EPLB's). */
static int lh_balanced_packing(lua_State *L) {
    int n;
    float *w = float_arg(L, 1, "balanced_packing", &n);
    int P = (int)luaL_checkinteger(L, 2);
    if (P < 1 || n % P) luaL_error(L, "mplb.balanced_packing: %d items do not split into %d equal packs", n, P);
    size_t ni = (size_t)n * sizeof(int);
    int *pack = scratch(L, ni), *rip = scratch(L, ni), *idx = scratch(L, ni), *tmp = scratch(L, ni);
    eplb_pack(w, n, P, pack, rip, idx, tmp, scratch(L, (size_t)n * sizeof(double)), scratch(L, (size_t)P * sizeof(int)),
              scratch(L, (size_t)P * sizeof(float)));
    push_ints(L, pack, n, 0);
    push_ints(L, rip, n, 0);
    return 2;
}

/* mplb.replicate_experts(w, num_phy) -> phy2log, rank, logcnt (0-based
 * values, as EPLB's; logcnt counts copies). */
static int lh_replicate_experts(lua_State *L) {
    int n;
    float *w = float_arg(L, 1, "replicate_experts", &n);
    int np = (int)luaL_checkinteger(L, 2);
    if (np < n) luaL_error(L, "mplb.replicate_experts: %d slots for %d experts", np, n);
    int *p2l = scratch(L, (size_t)np * sizeof(int)), *rk = scratch(L, (size_t)np * sizeof(int));
    int *cnt = scratch(L, (size_t)n * sizeof(int));
    eplb_replicate(w, n, np, p2l, rk, cnt, scratch(L, (size_t)n * sizeof(float)));
    push_ints(L, p2l, np, 0);
    push_ints(L, rk, np, 0);
    push_ints(L, cnt, n, 0);
    return 3;
}

/* mplb.rebalance_experts(w, num_phy, groups, nodes, gpus) -> phy2log, rank,
 * logcnt for one layer: EPLB's rebalance_experts_hierarchical (groups to
 * nodes, replicas within nodes, physical experts to GPUs); global when
 * groups do not divide by nodes (one group, one node), as EPLB's entry. */
static int lh_rebalance_experts(lua_State *L) {
    int E;
    float *w = float_arg(L, 1, "rebalance_experts", &E);
    int NP = (int)luaL_checkinteger(L, 2), G = (int)luaL_checkinteger(L, 3);
    int N = (int)luaL_checkinteger(L, 4), GPU = (int)luaL_checkinteger(L, 5);
    if (G < 1 || N < 1 || GPU < 1) luaL_error(L, "mplb.rebalance_experts: groups, nodes and gpus must be >= 1");
    if (G % N) G = N = 1;
    if (E % G || GPU % N || NP % GPU || NP < E)
        luaL_error(L, "mplb.rebalance_experts: %d experts, %d slots, %d groups, %d nodes, %d gpus do not fit EPLB's "
                      "shape rules", E, NP, G, N, GPU);
    int gsize = E / G, gpn = G / N, m = E / N, pn = NP / N, ppg = NP / GPU, gpus_n = GPU / N;
    if (pn < m) luaL_error(L, "mplb.rebalance_experts: %d slots per node for %d experts", pn, m);
    int big = NP > E ? NP : E;
    size_t bi = (size_t)big * sizeof(int);
    int *idx = scratch(L, bi), *tmp = scratch(L, bi), *cnt = scratch(L, bi);
    double *key = scratch(L, (size_t)big * sizeof(double));
    float *fw = scratch(L, (size_t)big * sizeof(float)), *per = scratch(L, (size_t)big * sizeof(float));
    float *pw = scratch(L, (size_t)big * sizeof(float));
    int *gp = scratch(L, bi), *gr = scratch(L, bi), *l2m = scratch(L, bi), *m2l = scratch(L, bi);
    int *p2m = scratch(L, bi), *prk = scratch(L, bi), *mcnt = scratch(L, bi), *pk = scratch(L, bi), *rip = scratch(L, bi);
    int *inv = scratch(L, bi), *out = scratch(L, (size_t)NP * sizeof(int)), *ork = scratch(L, (size_t)NP * sizeof(int));
    int *lcnt = scratch(L, (size_t)E * sizeof(int));
    /* step 1: groups to nodes */
    for (int g = 0; g < G; g++) {
        float t = 0;
        for (int j = 0; j < gsize; j++) t += w[g * gsize + j];
        fw[g] = t;
    }
    eplb_pack(fw, G, N, gp, gr, idx, tmp, key, cnt, pw);
    for (int g = 0; g < G; g++)
        for (int j = 0; j < gsize; j++) l2m[g * gsize + j] = (gp[g] * gpn + gr[g]) * gsize + j;
    for (int e = 0; e < E; e++) m2l[l2m[e]] = e;
    for (int n = 0; n < N; n++) {
        /* step 2: replicas within the node */
        float *tpm = fw;
        for (int j = 0; j < m; j++) tpm[j] = w[m2l[n * m + j]];
        eplb_replicate(tpm, m, pn, p2m, prk, mcnt, per);
        /* step 3: the node's physical experts to its GPUs */
        float *tpp = per;
        for (int q = 0; q < pn; q++) tpp[q] = tpm[p2m[q]] / (float)mcnt[p2m[q]];
        eplb_pack(tpp, pn, gpus_n, pk, rip, idx, tmp, key, cnt, pw);
        for (int q = 0; q < pn; q++) inv[pk[q] * ppg + rip[q]] = q;
        for (int q = 0; q < pn; q++) {
            out[n * pn + q] = m2l[p2m[inv[q]] + n * m];
            ork[n * pn + q] = prk[inv[q]];
        }
        for (int j = 0; j < m; j++) lcnt[m2l[n * m + j]] = mcnt[j];
    }
    push_ints(L, out, NP, 0);
    push_ints(L, ork, NP, 0);
    push_ints(L, lcnt, E, 0);
    return 3;
}

/* mplb.src_sums(group [, acc, decay]): obs.src_load summed over consecutive
 * groups of `group` source ranks (a node's GPUs): a list of ceil(R/group)
 * lists of E. With acc (such a list of lists, entries missing count as 0),
 * acc[g][e] = acc[g][e] * decay + the sum instead, in place; returns acc. */
static int lh_src_sums(lua_State *L) {
    const mplb_lh_ctx *c = ctx_of(L);
    int g = (int)luaL_checkinteger(L, 1), R = 0, E = 0;
    if (g < 1) luaL_argerror(L, 1, "group must be >= 1");
    int acc = !lua_isnoneornil(L, 2);
    double d = acc ? luaL_checknumber(L, 3) : 0;
    const int32_t *src = c && c->src ? c->src(c->ud, &R, &E) : NULL;
    int G = (R + g - 1) / g;
    lh_matrix *M = acc ? test_matrix(L, 2) : NULL;
    if (M) {   /* in C storage: no Lua traffic */
        if (M->rows != G || M->cols != E) luaL_error(L, "mplb.src_sums: a %d x %d matrix for %d groups x %d experts", M->rows, M->cols, G, E);
        for (size_t i = 0; i < (size_t)G * E; i++) M->v[i] *= d;
        for (int r = 0; src && r < R; r++) {
            double *row = M->v + (size_t)(r / g) * E;
            for (int e = 0; e < E; e++) row[e] += src[(size_t)r * E + e];
        }
        lua_settop(L, 2);
        return 1;
    }
    if (acc) luaL_checktype(L, 2, LUA_TTABLE);
    double *s = scratch(L, (size_t)E * sizeof(double));
    if (acc) lua_pushvalue(L, 2);
    else lua_createtable(L, G, 0);
    int out = lua_gettop(L);
    for (int k = 0; k < G; k++) {
        memset(s, 0, (size_t)E * sizeof(double));
        for (int r = k * g; src && r < R && r < (k + 1) * g; r++)
            for (int e = 0; e < E; e++) s[e] += src[(size_t)r * E + e];
        if (!acc) {
            push_nums(L, s, E);
            lua_rawseti(L, out, k + 1);
            continue;
        }
        if (lua_rawgeti(L, out, k + 1) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_createtable(L, E, 0);
            lua_pushvalue(L, -1);
            lua_rawseti(L, out, k + 1);
        }
        for (int e = 0; e < E; e++) {
            lua_rawgeti(L, -1, e + 1);
            double a = lua_tonumber(L, -1);
            lua_pop(L, 1);
            lua_pushnumber(L, a * d + s[e]);
            lua_rawseti(L, -2, e + 1);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, out);
    return 1;
}

/* mplb.decay_add(acc, x, d): acc[i] = acc[i] * d + x[i] in place (missing
 * acc entries count as 0); returns acc. An exponentially decayed sum. */
static int lh_decay_add(lua_State *L) {
    int n;
    luaL_checktype(L, 1, LUA_TTABLE);
    double *x = vec_arg(L, 2, "decay_add", &n);
    double d = luaL_checknumber(L, 3);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        double a = lua_tonumber(L, -1);
        lua_pop(L, 1);
        lua_pushnumber(L, a * d + x[i]);
        lua_rawseti(L, 1, i + 1);
    }
    lua_pushvalue(L, 1);
    return 1;
}

/* mplb.values(v): a plain list copy of an obs array (or list). */
static int lh_values(lua_State *L) {
    int n;
    double *v = vec_arg(L, 1, "values", &n);
    push_nums(L, v, n);
    return 1;
}

/* mplb.sum(v): the sum of v's entries. */
static int lh_sum(lua_State *L) {
    int n;
    double *v = vec_arg(L, 1, "sum", &n), s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    lua_pushnumber(L, s);
    return 1;
}

/* One table of helpers (X-macro: name and function listed once). */
#define LH_FUNCS(X)                                                                            \
    X(argsort) X(topn) X(argmax) X(argmin) X(extremes) X(rank_sums) X(group_by) X(greedy_pack) \
    X(assign_by_score) X(balanced_packing) X(replicate_experts) X(rebalance_experts) X(src_sums) \
    X(decay_add) X(values) X(sum)

void mplb_lh_open(lua_State *L, const mplb_lh_ctx *ctx) {
    if (luaL_newmetatable(L, MATRIX_MT)) {
        static const luaL_Reg methods[] = {{"get", lh_matrix_get}, {"set", lh_matrix_set}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lh_matrix_len);
        lua_setfield(L, -2, "__len");
        lua_pushliteral(L, "matrix");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lh_matrix_new);
    lua_setfield(L, -2, "matrix");
#define X(name)                                \
    lua_pushlightuserdata(L, (void *)ctx);     \
    lua_pushcclosure(L, lh_##name, 1);         \
    lua_setfield(L, -2, #name);
    LH_FUNCS(X)
#undef X
}
