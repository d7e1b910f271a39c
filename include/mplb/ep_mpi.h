/* mplb_ep_mpi: the "mpi" transport for mplb_ep_layer (library mplb_mpi,
 * built when MPI is found): sizes by MPI_Alltoall, bytes by MPI_Alltoallv,
 * one EP rank per MPI process. */
#ifndef MPLB_EP_MPI_H
#define MPLB_EP_MPI_H

#include <mpi.h>
#include "mplb/dispatch.h"

typedef struct mplb_ep_mpi {
    MPI_Comm comm;
    /* accumulated by each all-to-all: time waiting at a barrier for the
     * slowest rank, then time moving the bytes */
    double wait_s, xfer_s;
    double bytes;   /* accumulated bytes this rank sent */
} mplb_ep_mpi;

/* Fill tp for comm; ctx must outlive tp. */
int mplb_ep_mpi_transport(mplb_ep_mpi *ctx, MPI_Comm comm, mplb_ep_transport *tp, mplb_err *err);

#endif
