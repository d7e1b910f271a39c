/* EP layer over NCCL (mpirun -np R, one GPU per process; MPI only shares
 * the NCCL id): every rank's output must equal, bit for bit, what the local
 * transport computes, for the cases of test_dispatch_mpi. Exits 77 (a skip
 * for ctest) on a machine without a CUDA device, as CI is. */
#include <stdio.h>
#include "mplb/ep_mpi.h"
#include "mplb/ep_nccl.h"
#include "dispatch_common.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, devices = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int have = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0, all_have;
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_have) {
        if (rank == 0) printf("no CUDA device: NCCL dispatch check skipped\n");
        MPI_Finalize();
        return 77;
    }
    cudaSetDevice(rank % devices);
    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t comm;
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    if (ncclCommInitRank(&comm, size, id, rank) != ncclSuccess) {
        fprintf(stderr, "rank %d: ncclCommInitRank failed\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    mplb_ep_nccl ctx;
    mplb_ep_transport tp;
    mplb_err err = {0};
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
        if (!ok) fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        int all_ok;
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rank == 0) printf("%s np=%d %s: nccl %s local\n", all_ok ? "ok  " : "FAIL", size, cases[i].name,
                              all_ok ? "bit-identical to" : "differs from");
        fail += !all_ok;
    }
    ncclCommDestroy(comm);
    cudaStreamDestroy(stream);
    MPI_Finalize();
    return fail ? 1 : 0;
}
