// Device time of a sequence of stream work, without the host's share
// (C++, kernels/ only). fn enqueues the work on s (no allocation, no host
// synchronisation: callers prepare buffers and GEMM plans first) and
// returns 0, or non-zero after filling its own error. One untimed run warms
// up caches and lazy module loading; then reps runs back to back are
// captured into one CUDA graph, replayed once untimed and `trials` times
// between events: the time per run is the best replay / reps. Where capture
// is refused, the same reps runs are launched back to back between events.
#ifndef MPLB_GPU_TIMER_H
#define MPLB_GPU_TIMER_H

#include <cuda_runtime.h>

// 0 and *us (and *graphed: 1 graph replays, 0 launches), -1 when fn failed,
// or a positive cudaError_t.
template <typename F>
int mplb_gpu_time(cudaStream_t s, int reps, int trials, F fn, double *us, int *graphed) {
    *us = 0;
    *graphed = 0;
    cudaEvent_t a = NULL, b = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    int rc = 0;
    float best = 0;
    cudaError_t e = cudaEventCreate(&a);
    if (e == cudaSuccess) e = cudaEventCreate(&b);
    if (e != cudaSuccess) { rc = (int)e; goto out; }
    if (fn()) { rc = -1; goto out; }   // warm-up
    if ((e = cudaStreamSynchronize(s)) != cudaSuccess) { rc = (int)e; goto out; }
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
        int frc = 0;
        for (int i = 0; i < reps && frc == 0; i++) frc = fn();
        cudaError_t ce = cudaStreamEndCapture(s, &g);
        if (frc) { rc = -1; goto out; }
        if (ce == cudaSuccess && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess && cudaGraphLaunch(ge, s) == cudaSuccess)
            *graphed = 1;
    }
    (void)cudaGetLastError();   // a refused capture leaves its error behind; the launches below report their own
    if ((e = cudaStreamSynchronize(s)) != cudaSuccess) { rc = (int)e; goto out; }
    for (int t = 0; t < trials; t++) {
        if ((e = cudaEventRecord(a, s)) != cudaSuccess) { rc = (int)e; goto out; }
        if (*graphed) {
            if ((e = cudaGraphLaunch(ge, s)) != cudaSuccess) { rc = (int)e; goto out; }
        } else
            for (int i = 0; i < reps; i++)
                if (fn()) { rc = -1; goto out; }
        if ((e = cudaEventRecord(b, s)) != cudaSuccess || (e = cudaEventSynchronize(b)) != cudaSuccess) { rc = (int)e; goto out; }
        float ms = 0;
        if ((e = cudaEventElapsedTime(&ms, a, b)) != cudaSuccess) { rc = (int)e; goto out; }
        if (t == 0 || ms < best) best = ms;
    }
    *us = (double)best * 1e3 / reps;
out:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    return rc;
}

#endif
