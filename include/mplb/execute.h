/* mplb_exec: one (step, layer, plan) with every expert run for real on one
 * machine -- the CPU kernel (backend "cpu") or a device (backend "cuda") --
 * ranks one after another. Tokens go where the split rule sends them
 * (mplb/split.h: replicas, moves); each rank's experts run on its rows as one
 * batch per expert, timed; an expert converted online is converted (timed)
 * once per call and the time lands on every rank holding a copy of it.
 * Weights and activations come from mplb/weights.h, rounded to the plan's
 * dispatch precision as the dispatch delivers them, and the layer's output
 * error is measured against the same layer all in bf16 (mplb/backend.h's
 * output_rel_rms). Needs the per-token routing log.
 */
#ifndef MPLB_EXECUTE_H
#define MPLB_EXECUTE_H

#include "mplb/api.h"
#include "mplb/config.h"
#include "mplb/cost.h"
#include "mplb/ffn.h"
#include "mplb/routing.h"
#include "mplb/weights.h"

MPLB_BEGIN_DECLS

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

typedef struct mplb_exec mplb_exec;

typedef struct mplb_exec_result {
    double *rank_us;           /* [R] measured FFN time per rank */
    double *conv_us;           /* [R] measured online conversion per rank */
    double error;              /* output_rel_rms against the all-bf16 layer */
} mplb_exec_result;

/* dev NULL: the CPU kernel (not owned; outlives ex). */
MPLB_API int mplb_exec_open(const mplb_model *m, uint64_t seed, const mplb_exec_device *dev, mplb_exec **out, mplb_err *err);
MPLB_API void mplb_exec_close(mplb_exec *ex);
MPLB_API int mplb_exec_layer(mplb_exec *ex, int step, int layer, const mplb_routing *rt, const mplb_plan *plan,
                             mplb_exec_result *out, mplb_err *err);

MPLB_END_DECLS

#endif
