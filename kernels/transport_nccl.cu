// The "nccl" transport: see include/mplb/ep_nccl.h. Compiled wherever nvcc
// and NCCL are; checked against the local transport by
// tests/test_dispatch_nccl.c on a machine with GPUs (bench/gpu.sh).
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/ep_nccl.h"

extern "C" {

static int nccl_a2av(void *vctx, uint8_t *const *send, const size_t *send_n, uint8_t **recv, size_t *recv_n,
                     mplb_err *err) {
    mplb_ep_nccl *c = (mplb_ep_nccl *)vctx;
    int R = c->size;
    unsigned long long *hs = (unsigned long long *)calloc(R, sizeof *hs), *hr = (unsigned long long *)calloc(R, sizeof *hr);
    unsigned long long *ds = NULL, *dr = NULL;
    uint8_t *dsend = NULL, *drecv = NULL;
    size_t stot = 0, rtot = 0;
    int rc = 0;
    if (!hs || !hr) { rc = mplb_err_set(err, MPLB_ENOMEM, "nccl transport: out of memory"); goto out; }
    for (int r = 0; r < R; r++) hs[r] = send_n[r];
    if (cudaMalloc(&ds, R * sizeof *ds) != cudaSuccess || cudaMalloc(&dr, R * sizeof *dr) != cudaSuccess) {
        rc = mplb_err_set(err, MPLB_EIO, "nccl transport: cudaMalloc failed");
        goto out;
    }
    cudaMemcpyAsync(ds, hs, R * sizeof *ds, cudaMemcpyHostToDevice, c->stream);
    ncclGroupStart();
    for (int r = 0; r < R; r++) {
        ncclSend(ds + r, 1, ncclUint64, r, c->comm, c->stream);
        ncclRecv(dr + r, 1, ncclUint64, r, c->comm, c->stream);
    }
    if (ncclGroupEnd() != ncclSuccess) { rc = mplb_err_set(err, MPLB_EIO, "nccl transport: size exchange failed"); goto out; }
    cudaMemcpyAsync(hr, dr, R * sizeof *hr, cudaMemcpyDeviceToHost, c->stream);
    cudaStreamSynchronize(c->stream);
    for (int r = 0; r < R; r++) { stot += hs[r]; rtot += hr[r]; }
    if (cudaMalloc(&dsend, stot + 1) != cudaSuccess || cudaMalloc(&drecv, rtot + 1) != cudaSuccess) {
        rc = mplb_err_set(err, MPLB_EIO, "nccl transport: cudaMalloc failed");
        goto out;
    }
    {
        size_t off = 0;
        for (int r = 0; r < R; r++) {
            if (hs[r]) cudaMemcpyAsync(dsend + off, send[r], hs[r], cudaMemcpyHostToDevice, c->stream);
            off += hs[r];
        }
        ncclGroupStart();
        size_t so = 0, ro = 0;
        for (int r = 0; r < R; r++) {
            if (hs[r]) ncclSend(dsend + so, hs[r], ncclUint8, r, c->comm, c->stream);
            if (hr[r]) ncclRecv(drecv + ro, hr[r], ncclUint8, r, c->comm, c->stream);
            so += hs[r];
            ro += hr[r];
        }
        if (ncclGroupEnd() != ncclSuccess) { rc = mplb_err_set(err, MPLB_EIO, "nccl transport: exchange failed"); goto out; }
        uint8_t *block = (uint8_t *)malloc(rtot + 1);   /* one block, freed by the caller via recv[0] */
        if (!block) { rc = mplb_err_set(err, MPLB_ENOMEM, "nccl transport: out of memory"); goto out; }
        if (rtot) cudaMemcpyAsync(block, drecv, rtot, cudaMemcpyDeviceToHost, c->stream);
        ro = 0;
        for (int r = 0; r < R; r++) {
            recv[r] = block + ro;
            recv_n[r] = hr[r];
            ro += hr[r];
        }
        cudaStreamSynchronize(c->stream);
    }
out:
    cudaFree(ds); cudaFree(dr); cudaFree(dsend); cudaFree(drecv);
    free(hs); free(hr);
    return rc;
}

int mplb_ep_nccl_transport(mplb_ep_nccl *ctx, ncclComm_t comm, cudaStream_t stream, mplb_ep_transport *tp, mplb_err *err) {
    ctx->comm = comm;
    ctx->stream = stream;
    if (ncclCommUserRank(comm, &ctx->rank) != ncclSuccess || ncclCommCount(comm, &ctx->size) != ncclSuccess)
        return mplb_err_set(err, MPLB_EIO, "nccl transport: bad communicator");
    tp->rank = ctx->rank;
    tp->size = ctx->size;
    tp->ctx = ctx;
    tp->alltoallv = nccl_a2av;
    tp->topo = mplb_ep_topo{0, 0};   // one node unless the caller says otherwise
    return 0;
}

}  // extern "C"
