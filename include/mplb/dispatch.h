/* mplb_ep: expert-parallel dispatch and combine of real tokens.
 *
 * Every rank holds the tokens of its data-parallel share (x [T_s x d], their
 * top-k expert ids and gate weights) and the experts the placement gives it.
 * A replicated expert's copy for a token is copy (key + slot) mod copies;
 * a caller may name the computing rank per slot instead (token moves).
 *
 * On one node (or one rank per node) the dispatch packs, for each
 * destination rank, each token once (however many of its experts live
 * there) with its slots, optionally rounding the row to fp8 during the pack
 * (a float scale per 128 channels, DeepEP's layout); one all-to-all moves
 * the bytes. Each rank runs its experts (mplb_ffn) on the rows it received
 * and sums each row's local experts' outputs weighted by their gates; a
 * second all-to-all brings these partial sums home, where they are added in
 * rank order into y [T_s x d].
 *
 * Across nodes (1 < gpus_per_node < ranks) it deduplicates per node, as
 * DeepEP's internode kernels do: a token crosses the network once per
 * destination node, to the rank there with the sender's local index (its
 * proxy), which forwards it inside the node to each rank holding its
 * experts. The combine runs back the same way: partial sums are reduced at
 * the proxy (in rank order) and cross the network once per token and node.
 * The rows are the same bytes (fp8 stays fp8), so results differ from the
 * one-hop path only by float summation order. With topo.direct every row
 * goes straight to its rank across nodes too (DeepEP's low-latency mode).
 *
 * Transports move bytes: "local" runs all ranks in one process (receivers
 * read the senders' buffers in place, as shared memory would), "mpi" is
 * MPI_Alltoallv with one rank per process (in the mplb binary, built with
 * MPI), "nccl" grouped send/recv (mplb/ep_nccl.h). The data path is the
 * same, so their results are bit-identical.
 */
#ifndef MPLB_DISPATCH_H
#define MPLB_DISPATCH_H

#include "mplb/api.h"

#include <stddef.h>
#include <stdint.h>
#include "mplb/err.h"
#include "mplb/ffn.h"
#include "mplb/routing.h"

MPLB_BEGIN_DECLS

/* All-to-all of bytes: send[d] (send_n[d] bytes) to every rank d; receive
 * recv[s] (recv_n[s] bytes) from every rank s, whose sizes the transport
 * learns first. The received parts lie in one malloc'd block that starts at
 * recv[0]: the caller frees recv[0]. When the send parts lie back to back in
 * memory (as mplb_ep_layer packs them), a transport may send them in place. */
/* Where ranks sit and how tokens cross nodes. {0} is one node. */
typedef struct mplb_ep_topo {
    int gpus_per_node;   /* ranks r and q share a node when r/gpn == q/gpn; <= 0: one node */
    int direct;          /* 1: no node dedup, one send per destination rank everywhere */
} mplb_ep_topo;

typedef struct mplb_ep_transport {
    int rank, size;
    mplb_ep_topo topo;
    void *ctx;
    int (*alltoallv)(void *ctx, uint8_t *const *send, const size_t *send_n, uint8_t **recv, size_t *recv_n,
                     mplb_err *err);
} mplb_ep_transport;

/* One rank's part of a layer. */
typedef struct mplb_ep_rank {
    int64_t tokens;
    const float *x;          /* [tokens x d] */
    const int32_t *ids;      /* [tokens x k] */
    const float *gates;      /* [tokens x k] */
    float *y;                /* [tokens x d] out */
    /* [tokens x k]: the rank that computes each slot, from the one split
     * rule (mplb_split_dests: replicas and moved tokens); that rank must
     * have the expert's weights. May be NULL only when every expert has one
     * copy: each slot then goes to its expert's home. */
    const int32_t *dests;
    /* optional: called after the dispatch exchange, before the experts run
     * (e.g. to wait for weights converted while the dispatch was in flight) */
    int (*ready)(void *arg);
    void *ready_arg;
} mplb_ep_rank;

typedef struct mplb_ep_stats {
    /* dispatch rows and bytes this rank sent to other ranks (both hops): in
     * total, to ranks of its own node and to other nodes */
    size_t bytes_sent, rows_sent;
    size_t bytes_intra, rows_intra, bytes_inter, rows_inter;
    double t_pack_s, t_alltoall_s, t_ffn_s, t_combine_s;
    double t_dispatch_xchg_s, t_ready_s;  /* the first exchange alone; time waiting in ready() */
} mplb_ep_stats;

/* One EP MoE layer on this transport's rank. experts[e] are the weights of
 * expert e (only those this rank computes are read: a slot for an expert
 * whose weights are missing, d = 0, is an error); act_prec = bf16 or
 * fp8_e4m3 (quantize-in-dispatch). */
MPLB_API int mplb_ep_layer(const mplb_ep_transport *tp, const mplb_placement *pl, int d, int k,
                  const mplb_expert_w *experts, mplb_prec act_prec, const mplb_ep_rank *me,
                  mplb_ep_stats *st, mplb_err *err);

/* "local": run R ranks (topo: NULL for one node) in this process, rank
 * after rank through one shared exchange, for tests and for the cost of
 * packing without a network. st accumulates over all ranks. */
MPLB_API int mplb_ep_layer_local(int R, const mplb_ep_topo *topo, const mplb_placement *pl, int d, int k, const mplb_expert_w *experts,
                        mplb_prec act_prec, const mplb_ep_rank *ranks, mplb_ep_stats *st, mplb_err *err);

/* The proxy of sender s on node n (the rank that forwards s's tokens inside
 * n): the rank of n with s's local index, modulo n's size when the last
 * node is smaller. */
MPLB_API int mplb_ep_proxy(int R, int gpus_per_node, int s, int n);

/* A row x [d] as the dispatch delivers it in precision p (bf16 codes, or
 * fp8 with a scale per 128 channels): what every backend's experts read. */
MPLB_API int mplb_dispatch_round(const float *x, int d, mplb_prec p, float *xq, mplb_err *err);

/* The reference: every token through its experts directly, no dispatch. */
MPLB_API int mplb_moe_reference(int64_t tokens, int d, int k, const float *x, const int32_t *ids, const float *gates,
                       const mplb_expert_w *experts, mplb_prec act_prec, float *y, mplb_err *err);

MPLB_END_DECLS

#endif
