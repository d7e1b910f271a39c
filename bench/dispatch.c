/* bench/dispatch (run under mpirun -np 2 and -np 4 by bench/dispatch.sh):
 * the EP layer's exchange against a bare MPI_Alltoallv of the same bytes,
 * and the local pack+unpack against memcpy of the same bytes, in one run;
 * at 4 ranks also 2 "nodes" of 2: the bytes that cross nodes with node
 * dedup (through proxies) against direct sends, and both layers' exchange
 * time. The FFN itself is excluded (experts have f = 1). Not a test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>
#include "mplb/ep_mpi.h"
#include "mplb.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now(void);
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Weight conversion beside the dispatch, as `mplb run --transport mpi` does
 * it: a thread converts this rank's experts to fp8 from float masters while
 * the dispatch is in flight; ready() joins it before the experts run. */
typedef struct conv_job {
    const float *w;
    int d, f, n_exp;
    mplb_expert_w *out;
    double t_conv;
    pthread_t th;
} conv_job;

static double now(void);

static void *convert(void *arg) {
    conv_job *j = arg;
    double t0 = now();
    mplb_err err;
    size_t df = (size_t)j->d * j->f;
    for (int e = 0; e < j->n_exp; e++)
        mplb_expert_quantize(j->w, j->w + df, j->w + 2 * df, j->d, j->f, MPLB_PREC_FP8_E4M3, NULL, &j->out[e], &err);
    j->t_conv = now() - t0;
    return NULL;
}

static int join_conv(void *arg) {
    conv_job *j = arg;
    pthread_join(j->th, NULL);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    /* as the mplb binary does: large buffers stay on the heap, so a layer does
     * not fault fresh pages in (without this the exchange costs ~3x) */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    const int d = 2048, k = 8, E = 64;
    const int64_t T = 2048;
    mplb_err err = {0};
    mplb_placement pl;
    mplb_placement_init_contiguous(&pl, R, E, &err);
    /* tiny experts: the bench times data movement, not GEMMs */
    mplb_expert_w *ex = calloc(E, sizeof *ex);
    float *w = calloc((size_t)3 * d, sizeof *w);
    for (int e = 0; e < E; e++) mplb_expert_quantize(w, w + d, w + 2 * d, d, 1, MPLB_PREC_BF16, NULL, &ex[e], &err);
    float *x = malloc((size_t)T * d * 4), *y = malloc((size_t)T * d * 4), *gates = malloc((size_t)T * k * 4);
    int32_t *ids = malloc((size_t)T * k * 4);
    mplb_rng g;
    mplb_rng_seed(&g, 7 + rank);
    for (int64_t i = 0; i < T * d; i++) x[i] = (float)(mplb_rng_uniform(&g) - 0.5);
    for (int64_t t = 0; t < T; t++)
        for (int j = 0; j < k; j++) { ids[t * k + j] = (int)((t * 7 + j * 9 + rank) % E); gates[t * k + j] = 1.0f / k; }
    mplb_ep_rank me = {.tokens = T, .x = x, .ids = ids, .gates = gates, .y = y};
    mplb_ep_mpi ctx;
    mplb_ep_transport tp;
    mplb_ep_mpi_transport(&ctx, MPI_COMM_WORLD, &tp, &err);
    int reps = 5, xreps = 15;
    size_t bytes = 0;
    /* one layer to learn what mplb_ep_layer sends */
    {
        mplb_ep_stats st = {0};
        ctx.bytes = 0;
        mplb_ep_layer(&tp, &pl, d, k, ex, MPLB_PREC_BF16, &me, &st, &err);
        bytes = st.bytes_sent;
    }
    /* the same bytes (dispatch rows, then combine records: all that mplb_ep_layer
     * sent) through two bare Alltoallv calls, split evenly over destinations;
     * the two alternate, so drift on a shared machine hits both alike */
    size_t per = (size_t)(ctx.bytes / 2 / R);
    int *cnt = malloc(R * sizeof(int)), *dsp = malloc(R * sizeof(int));
    for (int r = 0; r < R; r++) { cnt[r] = (int)per; dsp[r] = (int)(per * r); }
    char *sb = malloc(per * R + 1), *rb = malloc(per * R + 1);
    memset(sb, 1, per * R);
    double *t_ep = calloc(xreps, sizeof *t_ep), *t_bare = calloc(xreps, sizeof *t_bare);
    for (int r = 0; r < xreps; r++) {
        mplb_ep_stats st = {0};
        MPI_Barrier(MPI_COMM_WORLD);
        ctx.wait_s = ctx.xfer_s = 0;
        mplb_ep_layer(&tp, &pl, d, k, ex, MPLB_PREC_BF16, &me, &st, &err);
        double mine = ctx.xfer_s;
        MPI_Allreduce(&mine, &t_ep[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        MPI_Alltoallv(sb, cnt, dsp, MPI_BYTE, rb, cnt, dsp, MPI_BYTE, MPI_COMM_WORLD);
        MPI_Alltoallv(sb, cnt, dsp, MPI_BYTE, rb, cnt, dsp, MPI_BYTE, MPI_COMM_WORLD);
        mine = now() - t0;
        MPI_Allreduce(&mine, &t_bare[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    qsort(t_ep, xreps, sizeof *t_ep, cmp_double);
    qsort(t_bare, xreps, sizeof *t_bare, cmp_double);
    double best_ep = t_ep[0], best_bare = t_bare[0], med_ep = t_ep[xreps / 2], med_bare = t_bare[xreps / 2];
    /* overlap: convert this rank's experts (the real expert shape: d x 768)
     * beside the dispatch of the same layer */
    const int fr = 768, mine_exp = E / R;
    float *wm = malloc((size_t)3 * d * fr * sizeof *wm);
    for (size_t i = 0; i < (size_t)3 * d * fr; i++) wm[i] = (float)(mplb_rng_uniform(&g) - 0.5) * 0.05f;
    mplb_expert_w *cv = calloc(mine_exp, sizeof *cv);
    double best_overlap = -1, conv_ms = 0, exposed_ms = 0;
    for (int r = 0; r < reps; r++) {
        conv_job job = {wm, d, fr, mine_exp, cv, 0, 0};
        mplb_ep_rank me2 = me;
        me2.ready = join_conv;
        me2.ready_arg = &job;
        mplb_ep_stats st = {0};
        MPI_Barrier(MPI_COMM_WORLD);
        pthread_create(&job.th, NULL, convert, &job);
        mplb_ep_layer(&tp, &pl, d, k, ex, MPLB_PREC_BF16, &me2, &st, &err);
        double hidden = job.t_conv > 0 ? 1 - st.t_ready_s / job.t_conv : 0;
        if (hidden > best_overlap) { best_overlap = hidden; conv_ms = job.t_conv * 1e3; exposed_ms = st.t_ready_s * 1e3; }
        for (int e = 0; e < mine_exp; e++) mplb_expert_free(&cv[e]);
    }
    free(wm);
    free(cv);
    /* two nodes of R/2 ranks: node dedup against direct sends, on skewed
     * random top-k routing (distinct experts, a quarter of picks among the
     * first 8) */
    double node_ms[2] = {0, 0};
    unsigned long long inter[2] = {0, 0}, intra[2] = {0, 0};
    if (R >= 4 && R % 2 == 0) {
        int32_t *rid = malloc((size_t)T * k * 4);
        for (int64_t t = 0; t < T; t++)
            for (int j = 0; j < k; j++) {
                int e, dup;
                do {
                    e = mplb_rng_uniform(&g) < 0.25 ? (int)(mplb_rng_next(&g) % 8) : (int)(mplb_rng_next(&g) % E);
                    dup = 0;
                    for (int q = 0; q < j; q++) dup |= rid[t * k + q] == e;
                } while (dup);
                rid[t * k + j] = e;
            }
        mplb_ep_rank me3 = me;
        me3.ids = rid;
        for (int mode = 0; mode < 2; mode++) {
            tp.topo = (mplb_ep_topo){R / 2, mode};
            double best = 1e9;
            for (int r = 0; r < reps; r++) {
                mplb_ep_stats st = {0};
                MPI_Barrier(MPI_COMM_WORLD);
                ctx.xfer_s = 0;
                mplb_ep_layer(&tp, &pl, d, k, ex, MPLB_PREC_BF16, &me3, &st, &err);
                double mine = ctx.xfer_s, slowest;
                MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (slowest < best) best = slowest;
                unsigned long long a = st.bytes_inter, b = st.bytes_intra;
                MPI_Reduce(&a, &inter[mode], 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
                MPI_Reduce(&b, &intra[mode], 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
            }
            node_ms[mode] = best * 1e3;
        }
        tp.topo = (mplb_ep_topo){0, 0};
        free(rid);
    }
    /* local: pack + unpack of all ranks in this process against memcpy of the
     * activations in and out, side by side: each round times memcpy (best of
     * 3) and then one layer; the ratio is taken per round and the median
     * reported (wall clock inside the layer: the shared machine's noise hits
     * both halves of a round alike) */
    enum { LREPS = 7 };
    double l_tot[LREPS], l_pack[LREPS], l_xchg[LREPS], l_unpack[LREPS], l_copy[LREPS], l_ratio[LREPS];
    double best_local = 0, best_copy = 0, best_parts[3] = {0, 0, 0}, med_ratio = 0;
    if (rank == 0) {
        mplb_ep_rank *rs = calloc(R, sizeof *rs);
        for (int r = 0; r < R; r++) rs[r] = me;
        float **ys = calloc(R, sizeof *ys);
        for (int r = 0; r < R; r++) { ys[r] = malloc((size_t)T * d * 4); rs[r].y = ys[r]; }
        size_t total = (size_t)R * T * d * 4;
        char *a = malloc(total), *b = malloc(total);
        memset(a, 2, total);
        memset(b, 1, total);
        for (int r = 0; r < LREPS; r++) {
            l_copy[r] = 1e9;
            for (int q = 0; q < 3; q++) {
                double t0 = now();
                memcpy(b, a, total);
                memcpy(a, b, total);
                double t = now() - t0;
                if (t < l_copy[r]) l_copy[r] = t;
            }
            mplb_ep_stats st = {0};
            mplb_ep_layer_local(R, NULL, &pl, d, k, ex, MPLB_PREC_BF16, rs, &st, &err);
            l_pack[r] = st.t_pack_s;
            l_xchg[r] = st.t_alltoall_s;
            l_unpack[r] = st.t_combine_s;
            l_tot[r] = st.t_pack_s + st.t_combine_s + st.t_alltoall_s;
            l_ratio[r] = l_copy[r] / l_tot[r];
        }
        qsort(l_tot, LREPS, sizeof(double), cmp_double);
        qsort(l_pack, LREPS, sizeof(double), cmp_double);
        qsort(l_xchg, LREPS, sizeof(double), cmp_double);
        qsort(l_unpack, LREPS, sizeof(double), cmp_double);
        qsort(l_copy, LREPS, sizeof(double), cmp_double);
        qsort(l_ratio, LREPS, sizeof(double), cmp_double);
        best_local = l_tot[LREPS / 2];
        best_copy = l_copy[LREPS / 2];
        best_parts[0] = l_pack[LREPS / 2]; best_parts[1] = l_xchg[LREPS / 2]; best_parts[2] = l_unpack[LREPS / 2];
        med_ratio = l_ratio[LREPS / 2];
        printf("# mplb bench/dispatch: %d ranks (mpirun), %lld tokens x top-%d per rank, d=%d, bf16 rows, %d experts\n",
               R, (long long)T, k, d, E);
        printf("ep_exchange_ms        %.3f   (both all-to-alls of mplb_ep_layer incl. size exchange and copies, "
               "after a barrier, slowest rank)\n", best_ep * 1e3);
        printf("bare_alltoallv_ms     %.3f   (two MPI_Alltoallv of the same total bytes)\n", best_bare * 1e3);
        printf("exchange_overhead     %.1f%%   (best of %d each, alternating)\n", 100 * (best_ep - best_bare) / best_bare, xreps);
        printf("exchange_overhead_med %.1f%%   (medians: %.3f ms against %.3f ms)\n", 100 * (med_ep - med_bare) / med_bare,
               med_ep * 1e3, med_bare * 1e3);
        printf("# local: medians over %d rounds, each round memcpy (best of 3) then one layer\n", LREPS);
        printf("local_pack_unpack_ms  %.3f   (all ranks in one process: pack, exchange, unpack)\n", best_local * 1e3);
        printf("  local_pack_ms       %.3f   (rows rounded to bf16, one per token and destination rank)\n", best_parts[0] * 1e3);
        printf("  local_exchange_ms   %.3f   (receivers read the senders' blocks in place)\n", best_parts[1] * 1e3);
        printf("  local_unpack_ms     %.3f   (float32 partial sums from every destination added into y)\n", best_parts[2] * 1e3);
        printf("memcpy_same_size_ms   %.3f   (the activations in and out once)\n", best_copy * 1e3);
        printf("local_over_memcpy     %.2fx slower   (medians)\n", best_local / best_copy);
        /* the same as rates: activation bytes in and out (2 x R x T x d x 4) per second */
        printf("local_pack_unpack_GBs %.2f   memcpy_GBs %.2f   ratio %.2f   (median of the rounds' memcpy/local)\n",
               2.0 * (double)total / best_local / 1e9, 2.0 * (double)total / best_copy / 1e9, med_ratio);
        printf("dispatch_bytes_rank0  %zu\n", bytes);
        printf("conversion_ms         %.3f   (rank 0: %d experts of %dx%d to fp8 in a second thread)\n", conv_ms, mine_exp, d, fr);
        printf("conversion_exposed_ms %.3f   (what the experts still waited for after the dispatch)\n", exposed_ms);
        printf("conversion_hidden     %.0f%%   (share of the conversion hidden behind the dispatch, best of %d)\n",
               100 * best_overlap, reps);
        if (node_ms[0] > 0) {
            printf("# 2 nodes x %d ranks (simulated: every process on this machine), skewed random top-%d routing\n", R / 2, k);
            printf("inter_node_bytes_dedup   %llu   (node dedup: once per token and destination node, through the proxy)\n", inter[0]);
            printf("inter_node_bytes_direct  %llu   (once per token and destination rank)\n", inter[1]);
            printf("inter_node_saved         %.1f%%\n", 100.0 * (1 - (double)inter[0] / (double)inter[1]));
            printf("intra_node_bytes_dedup   %llu   (the proxies' forwarding)\n", intra[0]);
            printf("intra_node_bytes_direct  %llu\n", intra[1]);
            printf("exchange_ms_dedup        %.3f   (4 all-to-alls, shared memory: not a network time)\n", node_ms[0]);
            printf("exchange_ms_direct       %.3f   (2 all-to-alls)\n", node_ms[1]);
        }
    }
    MPI_Finalize();
    return 0;
}
