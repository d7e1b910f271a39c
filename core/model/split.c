/* The token-split rule: see include/mplb/split.h. */
#include "mplb/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* m = round(n) rows moved; more than the source computes (beyond one row
 * of rounding) is refused. Returns the rows actually moved or -1. */
static int64_t move_rows(const mplb_move *mv, int64_t avail, mplb_err *err) {
    int64_t m = (int64_t)llround(mv->n);
    if (m > avail + 1) {
        mplb_err_set(err, MPLB_EINVAL, "move of %lld tokens of expert %d from rank %d, which computes %lld of them",
                     (long long)m, mv->e, mv->from, (long long)avail);
        return -1;
    }
    return m < avail ? m : avail;
}

int mplb_split_rows(const mplb_plan *plan, const int32_t *counts, int64_t *rows, mplb_err *err) {
    int R = plan->R, E = plan->E;
    const mplb_placement *pl = &plan->placement;
    memset(rows, 0, (size_t)E * R * sizeof *rows);
    for (int e = 0; e < E; e++)
        for (int i = 0; i < pl->copies[e]; i++)
            rows[(size_t)e * R + pl->ranks[(size_t)e * R + i]] = mplb_split_share(counts[e], pl->copies[e], i);
    for (int i = 0; i < plan->n_moves; i++) {
        const mplb_move *mv = &plan->moves[i];
        int64_t *from = &rows[(size_t)mv->e * R + mv->from], m = move_rows(mv, *from, err);
        if (m < 0) return err->code;
        *from -= m;
        rows[(size_t)mv->e * R + mv->to] += m;
    }
    return 0;
}

/* Slots of each expert in step order (a counting sort by expert), so a
 * move scans only its expert's slots. */
static int slots_by_expert(const mplb_routing *rt, int64_t **start, int64_t **list) {
    size_t nk = (size_t)rt->tokens * rt->top_k;
    *start = calloc((size_t)rt->E + 1, sizeof **start);
    *list = malloc((nk + 1) * sizeof **list);
    if (!*start || !*list) return -1;
    for (size_t q = 0; q < nk; q++) (*start)[rt->tok_ids[q] + 1]++;
    for (int e = 0; e < rt->E; e++) (*start)[e + 1] += (*start)[e];
    int64_t *fill = malloc(((size_t)rt->E + 1) * sizeof *fill);
    if (!fill) return -1;
    memcpy(fill, *start, (size_t)rt->E * sizeof *fill);
    for (size_t q = 0; q < nk; q++) (*list)[fill[rt->tok_ids[q]]++] = (int64_t)q;
    free(fill);
    return 0;
}

int mplb_split_dests(const mplb_routing *rt, const mplb_plan *plan, int32_t *dest, mplb_err *err) {
    int R = plan->R;
    const mplb_placement *pl = &plan->placement;
    int64_t *start = NULL, *list = NULL;
    if (slots_by_expert(rt, &start, &list) < 0) {
        free(start); free(list);
        return mplb_err_set(err, MPLB_ENOMEM, "split: out of memory");
    }
    for (int e = 0; e < rt->E; e++)
        for (int64_t q = start[e]; q < start[e + 1]; q++)
            dest[list[q]] = pl->ranks[(size_t)e * R + (int)((q - start[e]) % pl->copies[e])];
    int rc = 0;
    for (int i = 0; i < plan->n_moves && rc == 0; i++) {
        const mplb_move *mv = &plan->moves[i];
        int64_t avail = 0;
        for (int64_t q = start[mv->e]; q < start[mv->e + 1]; q++) avail += dest[list[q]] == mv->from;
        int64_t m = move_rows(mv, avail, err);
        if (m < 0) { rc = err->code; break; }
        for (int64_t q = start[mv->e]; q < start[mv->e + 1] && m > 0; q++)
            if (dest[list[q]] == mv->from) { dest[list[q]] = mv->to; m--; }
    }
    free(start);
    free(list);
    return rc;
}

void mplb_split_dedup(const mplb_routing *rt, const int32_t *dest, int gpn, int32_t *to_rank, int32_t *to_node) {
    int R = rt->R, k = rt->top_k, nodes = rt->nodes;
    memset(to_rank, 0, (size_t)R * R * sizeof *to_rank);
    memset(to_node, 0, (size_t)R * nodes * sizeof *to_node);
    for (int64_t t = 0; t < rt->tokens; t++) {
        int s = rt->tok_src[t];
        const int32_t *d = dest + (size_t)t * k;
        for (int j = 0; j < k; j++) {
            int seen_r = 0, seen_n = 0;
            for (int i = 0; i < j; i++) {
                seen_r |= d[i] == d[j];
                seen_n |= d[i] / gpn == d[j] / gpn;
            }
            if (!seen_r) to_rank[(size_t)s * R + d[j]]++;
            if (!seen_n) to_node[(size_t)s * nodes + d[j] / gpn]++;
        }
    }
}
