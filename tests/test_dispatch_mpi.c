/* EP layer over MPI (run with mpirun -np R): every rank's output must equal,
 * bit for bit, what the local transport computes for that rank, for bf16 and
 * fp8 dispatch, a rank without tokens, E not divisible by R, and a replica,
 * on one node and with two ranks per node (node dedup through proxies; at
 * np 3 the last node has one rank). Rows sent across nodes must agree too. */
#include <stdio.h>
#include "mplb/ep_mpi.h"
#include "dispatch_common.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mplb_ep_mpi ctx;
    mplb_ep_transport tp;
    mplb_err err = {0};
    mplb_ep_mpi_transport(&ctx, MPI_COMM_WORLD, &tp, &err);
    struct { int E, empty, replica, gpn, direct; mplb_prec act; const char *name; } cases[] = {
        {10, -1, -1, 0, 0, MPLB_PREC_BF16, "bf16, E=10"},
        {7, size - 1, -1, 0, 0, MPLB_PREC_BF16, "last rank without tokens, E=7"},
        {10, -1, size - 1, 0, 0, MPLB_PREC_BF16, "replica of expert 0 on the last rank"},
        {10, -1, -1, 0, 0, MPLB_PREC_FP8_E4M3, "fp8 quantize-in-dispatch"},
        {10, -1, -1, 2, 0, MPLB_PREC_BF16, "2 ranks per node (node dedup)"},
        {7, size - 1, size - 1, 2, 0, MPLB_PREC_FP8_E4M3, "2 per node, fp8, replica, rank without tokens"},
        {10, -1, size - 1, 2, 1, MPLB_PREC_BF16, "2 per node, direct sends, replica"},
    };
    int pass = 0, fail = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mplb_ep_stats st = {0}, st2 = {0};
        mplb_ep_topo topo = {cases[i].gpn, cases[i].direct};
        int ok = ep_transport_matches_local(&tp, cases[i].E, cases[i].empty, cases[i].replica, 1000 + i, topo,
                                            cases[i].act, &st, &st2, &err);
        unsigned long long inter = st.rows_inter, inter_all = 0;
        MPI_Allreduce(&inter, &inter_all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
        ok &= inter_all == st2.rows_inter;
        int all_ok;
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rank == 0) {
            printf("%s np=%d %s: mpi %s local\n", all_ok ? "ok  " : "FAIL", size, cases[i].name,
                   all_ok ? "bit-identical to" : "differs from");
            if (all_ok) pass++; else fail++;
        }
    }
    if (rank == 0) printf("%d passed, %d failed\n", pass, fail);
    MPI_Bcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return fail ? 1 : 0;
}
