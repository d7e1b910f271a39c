/* The MPI transport: see include/mplb/ep_mpi.h. */
#include "mplb/ep_mpi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int a2av(void *vctx, uint8_t *const *send, const size_t *send_n, uint8_t **recv, size_t *recv_n, mplb_err *err) {
    mplb_ep_mpi *ctx = vctx;
    int R;
    MPI_Comm_size(ctx->comm, &R);
    long long *sn = malloc((size_t)R * sizeof *sn), *rn = malloc((size_t)R * sizeof *rn);
    int *sc = malloc((size_t)R * sizeof *sc), *rc_ = malloc((size_t)R * sizeof *rc_);
    int *sd = malloc((size_t)R * sizeof *sd), *rd = malloc((size_t)R * sizeof *rd);
    uint8_t *sbuf = NULL, *rbuf = NULL;
    int rc = 0;
    if (!sn || !rn || !sc || !rc_ || !sd || !rd) { rc = mplb_err_set(err, MPLB_ENOMEM, "mpi transport: out of memory"); goto out; }
    for (int r = 0; r < R; r++) sn[r] = (long long)send_n[r];
    double t0 = MPI_Wtime();
    MPI_Barrier(ctx->comm);   /* separates waiting for a slower rank from moving bytes */
    double t1 = MPI_Wtime();
    ctx->wait_s += t1 - t0;
    MPI_Alltoall(sn, 1, MPI_LONG_LONG, rn, 1, MPI_LONG_LONG, ctx->comm);
    long long stot = 0, rtot = 0;
    for (int r = 0; r < R; r++) {
        if (sn[r] > INT_MAX || rn[r] > INT_MAX || stot + sn[r] > INT_MAX || rtot + rn[r] > INT_MAX) {
            rc = mplb_err_set(err, MPLB_ERANGE, "mpi transport: more than 2 GiB in one all-to-all");
            goto out;
        }
        sc[r] = (int)sn[r]; rc_[r] = (int)rn[r];
        sd[r] = (int)stot; rd[r] = (int)rtot;
        stot += sn[r]; rtot += rn[r];
    }
    ctx->bytes += (double)stot;
    /* parts already back to back are sent in place; others are gathered first */
    int contiguous = 1;
    for (int r = 1; r < R; r++) contiguous &= send[r] == send[0] + sd[r];
    const uint8_t *src = send[0];
    if (!contiguous) {
        sbuf = malloc((size_t)stot + 1);
        if (!sbuf) { rc = mplb_err_set(err, MPLB_ENOMEM, "mpi transport: out of memory"); goto out; }
        for (int r = 0; r < R; r++)
            if (sc[r]) memcpy(sbuf + sd[r], send[r], (size_t)sc[r]);
        src = sbuf;
    }
    rbuf = malloc((size_t)rtot + 1);
    if (!rbuf) { rc = mplb_err_set(err, MPLB_ENOMEM, "mpi transport: out of memory"); goto out; }
    if (MPI_Alltoallv(src, sc, sd, MPI_BYTE, rbuf, rc_, rd, MPI_BYTE, ctx->comm) != MPI_SUCCESS) {
        rc = mplb_err_set(err, MPLB_EIO, "mpi transport: MPI_Alltoallv failed");
        goto out;
    }
    ctx->xfer_s += MPI_Wtime() - t1;
    for (int r = 0; r < R; r++) {
        recv[r] = rbuf + rd[r];   /* one block, owned by the caller through recv[0] */
        recv_n[r] = (size_t)rc_[r];
    }
    rbuf = NULL;
out:
    free(sn); free(rn); free(sc); free(rc_); free(sd); free(rd); free(sbuf); free(rbuf);
    return rc;
}

int mplb_ep_mpi_transport(mplb_ep_mpi *ctx, MPI_Comm comm, mplb_ep_transport *tp, mplb_err *err) {
    (void)err;
    ctx->comm = comm;
    ctx->wait_s = ctx->xfer_s = ctx->bytes = 0;
    MPI_Comm_rank(comm, &tp->rank);
    MPI_Comm_size(comm, &tp->size);
    tp->ctx = ctx;
    tp->alltoallv = a2av;
    tp->topo = (mplb_ep_topo){0};   /* one node unless the caller says otherwise */
    return 0;
}
