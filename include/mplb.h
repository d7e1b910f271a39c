/* libmplb: mixed-precision load balancing for MoE inference under expert
 * parallelism. One header per module under mplb/; this one includes them all.
 *
 *   mplb_exp exp; mplb_err err;
 *   mplb_exp_load("experiments/demo.lua", NULL, 0, &exp, &err);
 *   mplb_run_opts o = {.out_path = "run.h5"};
 *   mplb_run_summary sum;
 *   mplb_run(&exp, &o, &sum, &err);
 */
#ifndef MPLB_H
#define MPLB_H
#ifdef __cplusplus
extern "C" {
#endif
#include "mplb/version.h"
#include "mplb/init.h"
#include "mplb/err.h"
#include "mplb/prec.h"
#include "mplb/config.h"
#include "mplb/routing.h"
#include "mplb/workload.h"
#include "mplb/cost.h"
#include "mplb/validate.h"
#include "mplb/policy.h"
#include "mplb/runfile.h"
#include "mplb/run.h"
#include "mplb/sensitivity.h"
#include "mplb/quant.h"
#include "mplb/calibrate.h"
#include "mplb/trace.h"
#include "mplb/wlfit.h"
#include "mplb/sweep.h"
#include "mplb/ffn.h"
#include "mplb/safetensors.h"
#include "mplb/execute.h"
#include "mplb/measure.h"
#include "mplb/dispatch.h"
#include "mplb/ep_run.h"
#include "mplb/split.h"
#include "mplb/weights.h"
#include "mplb/backend.h"
#include "mplb/observe.h"
#ifdef __cplusplus
}
#endif
#endif
