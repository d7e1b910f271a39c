/* mplb_ep_nccl: the "nccl" transport for mplb_ep_layer (library mplb_nccl,
 * built when the CUDA toolkit has NCCL): sizes, then bytes, by grouped
 * ncclSend/ncclRecv between device staging buffers, one EP rank per GPU.
 * The EP data path packs on the host, so bytes go host -> device -> peers ->
 * device -> host; the transport measures NCCL, not a device-resident
 * dispatch. Usage (one process per GPU, the unique id shared by MPI):
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
} mplb_ep_nccl;

/* Fill tp for comm (one node unless tp->topo is set after); ctx, comm and
 * stream must outlive tp. */
int mplb_ep_nccl_transport(mplb_ep_nccl *ctx, ncclComm_t comm, cudaStream_t stream, mplb_ep_transport *tp, mplb_err *err);

#ifdef __cplusplus
}
#endif

#endif
