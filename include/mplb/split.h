/* mplb_split: the one token-split rule. Which rank computes each token row
 * of a plan, used alike by the cost model, the CPU execution and the EP
 * dispatch, so a modelled layer and an executed one agree row for row.
 *
 * Replicas: an expert e chosen by n slots (token, top-k position) with c
 * copies gives its slots to its copies round robin in step order -- the q-th
 * slot of the step that chooses e goes to copy q mod c -- so copy i computes
 * floor(n/c) + (i < n mod c) rows, the same count whether a backend sees
 * every token or only counts.
 * Moves (act:move_tokens): applied in plan order; a move of m tokens of e
 * from rank a to rank b takes the first m of a's slots of e (step order),
 * m = round(n). A move may not take more than a computes (one row of
 * rounding is forgiven: the policy sees fractional shares), and the target
 * computes what it receives even without a copy (it fetches the weights).
 */
#ifndef MPLB_SPLIT_H
#define MPLB_SPLIT_H

#include <stdint.h>
#include "mplb/api.h"
#include "mplb/cost.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

/* Rows copy i (0 = home) of an expert with n slots and c copies computes. */
static inline int64_t mplb_split_share(int64_t n, int c, int i) { return n / c + (i < n % c); }

/* rows[e*R + r]: rows of expert e that rank r computes under plan, from the
 * experts' slot counts (rt->expert_counts). MPLB_EINVAL names a move that
 * takes more than its source computes. */
MPLB_API int mplb_split_rows(const mplb_plan *plan, const int32_t *expert_counts, int64_t *rows, mplb_err *err);

/* dest[t*k + j]: the rank that computes slot j of token t (needs the
 * per-token log, rt->tok_ids). Agrees with mplb_split_rows. */
MPLB_API int mplb_split_dests(const mplb_routing *rt, const mplb_plan *plan, int32_t *dest, mplb_err *err);

/* Tokens per (source, destination rank) and (source, destination node), each
 * token counted once per destination, from per-slot ranks (DeepEP's dedup):
 * to_rank [R*R], to_node [R*nodes]. */
MPLB_API void mplb_split_dedup(const mplb_routing *rt, const int32_t *dest, int gpus_per_node,
                               int32_t *to_rank, int32_t *to_node);

MPLB_END_DECLS

#endif
