// The "nccl" transport: see include/mplb/ep_nccl.h. Compiled wherever nvcc
// and NCCL are; checked against the local transport by
// tests/test_dispatch_nccl.c on a machine with GPUs (bench/gpu.sh).
// Sizes, then bytes, by grouped ncclSend/ncclRecv (NCCL's documented
// all-to-all pattern) between persistent device buffers staged through
// pinned host memory. Every CUDA and NCCL return code is checked; the
// first failure aborts the communicator.
#include <stdlib.h>
#include <string.h>
#include "mplb.h"
#include "mplb/ep_nccl.h"

namespace {

int fail_cuda(mplb_ep_nccl *c, cudaError_t e, const char *what, mplb_err *err) {
    if (!c->aborted) ncclCommAbort(c->comm);
    c->aborted = 1;
    return mplb_err_set(err, MPLB_EIO, "nccl transport (rank %d): %s: %s", c->rank, what, cudaGetErrorString(e));
}

int fail_nccl(mplb_ep_nccl *c, ncclResult_t r, const char *what, mplb_err *err) {
    const char *last = c->aborted ? NULL : ncclGetLastError(c->comm);
    int rc = mplb_err_set(err, MPLB_EIO, "nccl transport (rank %d): %s: %s%s%s", c->rank, what, ncclGetErrorString(r),
                          last && *last ? ": " : "", last && *last ? last : "");
    if (!c->aborted) ncclCommAbort(c->comm);   // after the message: it may own the last-error text
    c->aborted = 1;
    return rc;
}

// grow a device buffer and its pinned twin to hold bytes (+1: never zero-sized)
int grow(mplb_ep_nccl *c, uint8_t **dev, uint8_t **host, size_t *cap, size_t bytes, mplb_err *err) {
    if (bytes + 1 <= *cap) return 0;
    size_t want = bytes + 1 > 2 * *cap ? bytes + 1 : 2 * *cap;
    cudaError_t e = cudaStreamSynchronize(c->stream);   // nothing in flight may use the old buffers
    if (e == cudaSuccess) e = cudaFree(*dev);
    if (e == cudaSuccess) e = cudaFreeHost(*host);
    *dev = NULL;
    *host = NULL;
    *cap = 0;
    if (e == cudaSuccess) e = cudaMalloc((void **)dev, want);
    if (e == cudaSuccess) e = cudaMallocHost((void **)host, want);
    if (e != cudaSuccess) return fail_cuda(c, e, "growing the staging buffers", err);
    *cap = want;
    return 0;
}

#define CU(call, what)                                                    \
    do {                                                                  \
        cudaError_t e_ = (call);                                          \
        if (e_ != cudaSuccess) return fail_cuda(c, e_, what, err);        \
    } while (0)
#define NC(call, what)                                                    \
    do {                                                                  \
        ncclResult_t r_ = (call);                                         \
        if (r_ != ncclSuccess) return fail_nccl(c, r_, what, err);        \
    } while (0)

// one grouped exchange: send[r] (sn[r] items at soff) to r, recv (rn[r] at roff) from r
int exchange(mplb_ep_nccl *c, const void *sbuf, const size_t *sn, void *rbuf, const size_t *rn, ncclDataType_t t,
             size_t esize, const char *what, mplb_err *err) {
    int R = c->size;
    NC(ncclGroupStart(), what);
    size_t so = 0, ro = 0;
    ncclResult_t r = ncclSuccess;
    for (int p = 0; p < R && r == ncclSuccess; p++) {
        if (sn[p]) r = ncclSend((const uint8_t *)sbuf + so * esize, sn[p], t, p, c->comm, c->stream);
        if (r == ncclSuccess && rn[p]) r = ncclRecv((uint8_t *)rbuf + ro * esize, rn[p], t, p, c->comm, c->stream);
        so += sn[p];
        ro += rn[p];
    }
    ncclResult_t r2 = ncclGroupEnd();   // always close the group, even after a failed call inside it
    if (r != ncclSuccess) return fail_nccl(c, r, what, err);
    if (r2 != ncclSuccess) return fail_nccl(c, r2, what, err);
    return 0;
}

int nccl_a2av(void *vctx, uint8_t *const *send, const size_t *send_n, uint8_t **recv, size_t *recv_n, mplb_err *err) {
    mplb_ep_nccl *c = (mplb_ep_nccl *)vctx;
    int R = c->size, rc;
    if (c->aborted) return mplb_err_set(err, MPLB_EIO, "nccl transport (rank %d): the communicator was aborted", c->rank);
    size_t *one = (size_t *)malloc(2 * (size_t)R * sizeof *one);
    if (!one) return mplb_err_set(err, MPLB_ENOMEM, "nccl transport: out of memory");
    size_t *rn = one + R;
    for (int p = 0; p < R; p++) one[p] = 1;
    // 1. sizes: one u64 to and from every rank (including this one)
    for (int p = 0; p < R; p++) c->h_sizes[p] = send_n[p];
    cudaError_t e = cudaMemcpyAsync(c->d_sizes, c->h_sizes, R * sizeof *c->d_sizes, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) { free(one); return fail_cuda(c, e, "copying sizes", err); }
    rc = exchange(c, c->d_sizes, one, c->d_sizes + R, one, ncclUint64, 8, "size exchange", err);
    if (rc == 0) {
        e = cudaMemcpyAsync(c->h_sizes + R, c->d_sizes + R, R * sizeof *c->d_sizes, cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) rc = fail_cuda(c, e, "receiving sizes", err);
    }
    size_t stot = 0, rtot = 0;
    for (int p = 0; rc == 0 && p < R; p++) {
        stot += send_n[p];
        rn[p] = (size_t)c->h_sizes[R + p];
        rtot += rn[p];
    }
    // 2. bytes: packed into pinned staging, up, exchanged, down
    if (rc == 0) rc = grow(c, &c->d_send, &c->h_send, &c->cap_send, stot, err);
    if (rc == 0) rc = grow(c, &c->d_recv, &c->h_recv, &c->cap_recv, rtot, err);
    if (rc == 0) {
        size_t off = 0;
        for (int p = 0; p < R; p++) {
            if (send_n[p]) memcpy(c->h_send + off, send[p], send_n[p]);
            off += send_n[p];
        }
        if (stot) e = cudaMemcpyAsync(c->d_send, c->h_send, stot, cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) rc = fail_cuda(c, e, "copying bytes up", err);
    }
    if (rc == 0) rc = exchange(c, c->d_send, send_n, c->d_recv, rn, ncclUint8, 1, "byte exchange", err);
    if (rc == 0) {
        if (rtot) e = cudaMemcpyAsync(c->h_recv, c->d_recv, rtot, cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) rc = fail_cuda(c, e, "copying bytes down", err);
    }
    uint8_t *block = rc == 0 ? (uint8_t *)malloc(rtot + 1) : NULL;   // the caller frees recv[0]
    if (rc == 0 && !block) rc = mplb_err_set(err, MPLB_ENOMEM, "nccl transport: out of memory");
    if (rc == 0) {
        memcpy(block, c->h_recv, rtot);
        size_t ro = 0;
        for (int p = 0; p < R; p++) {
            recv[p] = block + ro;
            recv_n[p] = rn[p];
            ro += rn[p];
        }
    }
    free(one);
    return rc;
}

}  // namespace

extern "C" int mplb_ep_nccl_transport(mplb_ep_nccl *c, ncclComm_t comm, cudaStream_t stream, mplb_ep_transport *tp,
                                      mplb_err *err) {
    memset(c, 0, sizeof *c);
    c->comm = comm;
    c->stream = stream;
    NC(ncclCommUserRank(comm, &c->rank), "ncclCommUserRank");
    NC(ncclCommCount(comm, &c->size), "ncclCommCount");
    CU(cudaMalloc((void **)&c->d_sizes, 2 * (size_t)c->size * sizeof *c->d_sizes), "allocating size buffers");
    CU(cudaMallocHost((void **)&c->h_sizes, 2 * (size_t)c->size * sizeof *c->h_sizes), "allocating size buffers");
    tp->rank = c->rank;
    tp->size = c->size;
    tp->ctx = c;
    tp->alltoallv = nccl_a2av;
    tp->topo = mplb_ep_topo{0, 0};   // one node unless the caller says otherwise
    return 0;
}

extern "C" void mplb_ep_nccl_free(mplb_ep_nccl *c) {
    if (c->stream) cudaStreamSynchronize(c->stream);
    cudaFree(c->d_sizes); cudaFree(c->d_send); cudaFree(c->d_recv);
    cudaFreeHost(c->h_sizes); cudaFreeHost(c->h_send); cudaFreeHost(c->h_recv);
    c->d_sizes = c->h_sizes = NULL;
    c->d_send = c->d_recv = c->h_send = c->h_recv = NULL;
    c->cap_send = c->cap_recv = 0;
}
