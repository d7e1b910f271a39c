/* bench/hdf5: the run file writer's overhead. The same simulated run (the
 * demo experiment, cost model) with and without the HDF5 writer, alternated
 * in one process; best of N each. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mplb.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    mplb_exp x;
    mplb_err err = {0};
    const char *sets[] = {"workload.steps=4"};
    if (mplb_exp_load(MPLB_SRC "/experiments/demo.lua", sets, 1, &x, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double best[2] = {1e9, 1e9};
    long rows = 0;
    for (int r = 0; r < reps; r++) {
        for (int w = 0; w < 2; w++) {
            mplb_run_opts o = {.out_path = w ? "bench-hdf5.h5" : NULL, .force = 1, .command = "bench"};
            mplb_run_summary sum;
            double t0 = now();
            if (mplb_run(&x, &o, &sum, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
            double dt = now() - t0;
            if (dt < best[w]) best[w] = dt;
            rows = 0;
            for (int i = 0; i < sum.n_policies; i++) rows += sum.pol[i].rows;
            mplb_run_summary_free(&sum);
        }
    }
    remove("bench-hdf5.h5");
    printf("# mplb bench/hdf5: demo experiment (%s, %d ranks), 4 steps x %d layers x %d policies = %ld rows, best of %d\n",
           x.model.name, x.cluster.nodes * x.cluster.gpus_per_node, x.model.layers, x.n_policies, rows, reps);
    printf("run_without_writer_s  %.4f\n", best[0]);
    printf("run_with_writer_s     %.4f\n", best[1]);
    printf("writer_overhead       %.1f%%\n", 100.0 * (best[1] - best[0]) / best[0]);
    mplb_exp_free(&x);
    return 0;
}
