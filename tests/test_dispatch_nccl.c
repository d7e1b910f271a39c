/* EP layer over NCCL (mpirun -np R, one GPU per process, picked by the
 * rank within its node; MPI only shares the NCCL id): every rank's output must equal, bit for bit, what the local
 * transport computes, for the cases of test_dispatch_mpi. Exits 77 (a skip
 * for ctest) on a machine without a CUDA device, as CI is. */
#include <stdio.h>
#include "mplb/ep_mpi.h"
#include "mplb/cuda.h"
#include "mplb/ep_nccl.h"
#include "dispatch_common.h"

static void die(int rank, const char *what, const char *why) {
    fprintf(stderr, "rank %d: %s: %s\n", rank, what, why);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, devices = 0, local = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* the GPU is picked by the rank within this node, not the global rank */
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    mplb_err err = {0};
    int rc = mplb_cuda_devices(&devices, &err);
    /* 1: has a device, 0: none (skip), -1: the runtime failed (a failure) */
    int have = rc == 0 ? 1 : err.code == MPLB_EUNSUPP ? 0 : -1, all_have;
    if (have < 0) fprintf(stderr, "rank %d: %s\n", rank, err.msg);
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all_have <= 0) {
        if (rank == 0) printf("%s: NCCL dispatch check %s\n", all_have < 0 ? "CUDA runtime error" : "no CUDA device",
                              all_have < 0 ? "failed" : "skipped");
        MPI_Finalize();
        return all_have < 0 ? 1 : 77;
    }
    if (local >= devices && rank == 0)
        printf("# more ranks per node than GPUs (%d): ranks share GPUs\n", devices);
    cudaError_t ce = cudaSetDevice(local % devices);
    if (ce != cudaSuccess) die(rank, "cudaSetDevice", cudaGetErrorString(ce));
    ncclUniqueId id;
    ncclResult_t nr = ncclSuccess;
    if (rank == 0 && (nr = ncclGetUniqueId(&id)) != ncclSuccess) die(rank, "ncclGetUniqueId", ncclGetErrorString(nr));
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t comm;
    cudaStream_t stream;
    if ((ce = cudaStreamCreate(&stream)) != cudaSuccess) die(rank, "cudaStreamCreate", cudaGetErrorString(ce));
    if ((nr = ncclCommInitRank(&comm, size, id, rank)) != ncclSuccess) die(rank, "ncclCommInitRank", ncclGetErrorString(nr));
    mplb_ep_nccl ctx;
    mplb_ep_transport tp;
    if (mplb_ep_nccl_transport(&ctx, comm, stream, &tp, &err) < 0) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    struct { int E, empty, replica, gpn; mplb_prec act; const char *name; } cases[] = {
        {10, -1, -1, 0, MPLB_PREC_BF16, "bf16, E=10"},
        {7, size - 1, size - 1, 0, MPLB_PREC_BF16, "last rank without tokens, replica, E=7"},
        {10, -1, -1, 0, MPLB_PREC_FP8_E4M3, "fp8 quantize-in-dispatch"},
        {10, -1, size - 1, 2, MPLB_PREC_FP8_E4M3, "2 per node (node dedup), fp8, replica"},
    };
    int fail = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mplb_ep_stats st = {0}, st2 = {0};
        mplb_ep_topo topo = {cases[i].gpn, 0};
        int ok = ep_transport_matches_local(&tp, cases[i].E, cases[i].empty, cases[i].replica, 2000 + i, topo,
                                            cases[i].act, &st, &st2, &err);
        /* a failed rank has aborted its communicator; peers may be blocked in
         * NCCL, so end the whole job instead of meeting them in an Allreduce */
        if (!ok && tp.alltoallv && ctx.aborted) die(rank, "nccl transport", err.msg);
        if (!ok) fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        int all_ok;
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rank == 0) printf("%s np=%d %s: nccl %s local\n", all_ok ? "ok  " : "FAIL", size, cases[i].name,
                              all_ok ? "bit-identical to" : "differs from");
        fail += !all_ok;
    }
    mplb_ep_nccl_free(&ctx);
    if (!ctx.aborted) ncclCommDestroy(comm);
    cudaStreamDestroy(stream);
    MPI_Finalize();
    return fail ? 1 : 0;
}
