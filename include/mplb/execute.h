/* mplb_exec: the CPU backend's execute mode (backend = "cpu"): every
 * expert of a (small) model runs its SwiGLU FFN for real with the CPU kernel
 * (mplb_ffn), in the precision the plan gives it, on seeded synthetic
 * activations; each rank's compute time is measured (ranks run one after
 * another on this CPU), online weight conversion is timed, and the layer's
 * error is measured against the same experts in bf16. Tokens a plan moves
 * (move_tokens) are computed on their target rank. With a device (backend
 * "cuda") the FFNs and online conversions run and are timed there. Dispatch and combine
 * stay the cost model's (mplb_ep_run runs them for real). Weights are
 * seeded heavy-tailed per (layer, expert); quantized copies are cached.
 */
#ifndef MPLB_EXECUTE_H
#define MPLB_EXECUTE_H

#include "mplb/config.h"
#include "mplb/cost.h"
#include "mplb/ffn.h"
#include "mplb/routing.h"

/* Where execute mode runs an expert's FFN when not on the CPU kernel
 * (backend "cuda": kernels/exec_cuda.cu). forward computes y [n x d] of
 * x [n x d] with expert e's weights w (w stays valid, and the same pointer,
 * until forget) and reports the measured microseconds; convert measures an
 * online conversion of e's float masters to p on the device (MPLB_EUNSUPP
 * where it has no kernel for p); forget drops what it cached (a new layer). */
typedef struct mplb_exec_device {
    void *ctx;
    char name[128];   /* "NVIDIA H100 ... (sm_90, 80 GB)" */
    int (*forward)(void *ctx, int e, const mplb_expert_w *w, const float *x, int n, float *y, double *us, mplb_err *err);
    int (*convert)(void *ctx, const float *gate, const float *up, const float *down, int d, int f, mplb_prec p,
                   double *us, mplb_err *err);
    void (*forget)(void *ctx);
} mplb_exec_device;

typedef struct mplb_exec {
    mplb_model m;
    const mplb_exec_device *dev;   /* NULL: the CPU kernel */
    uint64_t seed;
    int layer;                 /* whose weights are loaded, -1 none */
    float *w;                  /* [E][3][d*f] float master weights of `layer` */
    mplb_expert_w *q;          /* [E * MPLB_PREC_COUNT] stored quantized copies */
    uint8_t *have;             /* which of q are built */
    float **ref;               /* [E] bf16 outputs of the current (step, layer), or NULL */
    int ref_step, ref_layer;
    int64_t *ref_n;            /* [E] tokens behind ref */
    float *x, *y;
    size_t cap;
    mplb_ffn_ws ws;
} mplb_exec;

typedef struct mplb_exec_result {
    double *rank_us;           /* [R] measured FFN time per rank */
    double *conv_us;           /* [R] measured online conversion per rank */
    double error;              /* gate-mass-weighted relative error vs bf16 (0 for an all-bf16 plan) */
} mplb_exec_result;

int mplb_exec_init(mplb_exec *ex, const mplb_model *m, uint64_t seed, mplb_err *err);
/* The same, running experts on dev (not owned; outlives ex). */
int mplb_exec_init_device(mplb_exec *ex, const mplb_model *m, uint64_t seed, const mplb_exec_device *dev, mplb_err *err);
void mplb_exec_free(mplb_exec *ex);
int mplb_exec_layer(mplb_exec *ex, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                    mplb_exec_result *out, mplb_err *err);

#endif
