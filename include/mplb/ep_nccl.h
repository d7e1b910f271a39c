/* mplb_ep_nccl: the "nccl" transport for mplb_ep_layer (library mplb_nccl,
 * built when the CUDA toolkit has NCCL): sizes, then bytes, by grouped
 * ncclSend/ncclRecv between device staging buffers, one EP rank per GPU.
 * The EP data path packs on the host, so bytes go host -> pinned staging ->
 * device -> peers -> device -> pinned -> host, through buffers kept across
 * calls (no allocation, so no implicit synchronisation, once they have
 * grown); the transport measures NCCL, not a device-resident dispatch. Usage (one process per GPU, the unique id shared by MPI):
 *
 *   ncclCommInitRank(&comm, size, id, rank);
 *   mplb_ep_nccl ctx; mplb_ep_transport tp;
 *   mplb_ep_nccl_transport(&ctx, comm, stream, &tp, &err);
 *   mplb_ep_layer(&tp, &placement, d, k, experts, MPLB_PREC_FP8_E4M3, &me, &st, &err);
 */
#ifndef MPLB_EP_NCCL_H
#define MPLB_EP_NCCL_H

#include <cuda_runtime.h>
#include <nccl.h>
#include "mplb/dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mplb_ep_nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int rank, size;
    int aborted;                  /* an error aborted comm (ncclCommAbort): every later call fails */
    /* persistent staging, grown on demand, freed by mplb_ep_nccl_free */
    unsigned long long *d_sizes;  /* device [2 x size]: sizes sent, received */
    unsigned long long *h_sizes;  /* pinned host [2 x size] */
    uint8_t *d_send, *d_recv;     /* device bytes */
    uint8_t *h_send, *h_recv;     /* pinned host bytes */
    size_t cap_send, cap_recv;
} mplb_ep_nccl;

/* Fill tp for comm (one node unless tp->topo is set after); ctx, comm and
 * stream must outlive tp. Any failing NCCL or CUDA call aborts comm
 * (ncclCommAbort, so peers do not wait forever on this rank) and sets
 * ctx->aborted; the caller ends the job. */
int mplb_ep_nccl_transport(mplb_ep_nccl *ctx, ncclComm_t comm, cudaStream_t stream, mplb_ep_transport *tp, mplb_err *err);
/* Free ctx's staging buffers (not comm or stream, which the caller owns;
 * an aborted comm is already freed: the caller must not destroy it). */
void mplb_ep_nccl_free(mplb_ep_nccl *ctx);

#ifdef __cplusplus
}
#endif

#endif
