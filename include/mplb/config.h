/* mplb_exp / mplb_profile: experiments and hardware profiles read from Lua.
 *
 * An experiment is a Lua file returning a table {name, model, cluster,
 * workload, policies, backend, seed}; a profile is a Lua file under
 * profiles/ returning the chip's peaks. Both run in a Lua state with no io,
 * os or package library. Every field is checked; a bad one yields an error
 * "FILE:LINE: field PATH: what is wrong" (the line when the key can be found
 * in the source); an unknown key names the closest known one. The known keys
 * are one table (core/lua/exp_keys.h), also docs/experiment-reference.md. The caller owns the result and frees it with *_free.
 *
 *   mplb_exp exp; mplb_err err;
 *   if (mplb_exp_load("experiments/demo.lua", NULL, 0, &exp, &err) < 0) ...
 *   ... mplb_exp_free(&exp);
 */
#ifndef MPLB_CONFIG_H
#define MPLB_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include "mplb/err.h"
#include "mplb/prec.h"

#define MPLB_NAME_MAX 64
#define MPLB_PATH_MAX 1024
#define MPLB_EFF_MAX 16
#define MPLB_LABEL_MAX 256

typedef struct mplb_model {
    char name[MPLB_NAME_MAX];
    int layers, experts, top_k, hidden, ffn, shared_experts;
} mplb_model;

typedef struct mplb_cluster {
    int nodes, gpus_per_node;     /* ranks = nodes * gpus_per_node */
    char profile[MPLB_NAME_MAX];
    double expert_memory_gb;      /* expert weights per rank; 0 = 1.25 x the all-bf16 footprint */
} mplb_cluster;

typedef struct mplb_workload_cfg {
    char kind[MPLB_NAME_MAX];     /* "synthetic" or "trace" */
    int steps;
    int64_t tokens;               /* tokens per (prefill) step, over all ranks */
    double zipf;                  /* skew of text routing */
    double vision_frac;           /* share of vision tokens (prefill steps) */
    double vision_zipf;           /* skew of vision routing (vision tokens flood few experts) */
    int families;                 /* task families (code, math, chat, ...) with their own popularity */
    double drift;                 /* 0..1: how much the family mix swings over drift_period steps */
    int drift_period;
    double layer_corr;            /* 0..1: popularity rank carried from one layer to the next */
    double src_affinity;          /* 0..1: tokens of node n prefer family n mod families */
    int prefill_every;            /* every n-th step is a prefill, the others decode */
    int64_t decode_tokens;        /* tokens per decode step */
    char skew_from[MPLB_PATH_MAX];/* a trace whose per-layer skew replaces Zipf's */
    char file[MPLB_PATH_MAX];     /* kind = "trace": the trace file */
} mplb_workload_cfg;

typedef struct mplb_policy_ref {
    char name[MPLB_NAME_MAX];
    char label[MPLB_LABEL_MAX];   /* name(given params; defaults) unless the experiment gives label = "..." */
    char path[MPLB_PATH_MAX];
    char *params;                 /* Lua table constructor text, e.g. "{tau=1.5}" */
} mplb_policy_ref;

typedef struct mplb_exp {
    char path[MPLB_PATH_MAX];
    char base_dir[MPLB_PATH_MAX]; /* where policies, profiles and traces are looked up */
    char name[MPLB_NAME_MAX];
    char *source;                 /* the experiment file's text */
    char *resolved;               /* the resolved experiment as Lua text (for run files) */
    mplb_model model;
    mplb_cluster cluster;
    mplb_workload_cfg workload;
    int n_policies;
    mplb_policy_ref *policies;
    char backend[MPLB_NAME_MAX];  /* "model" */
    char accuracy[MPLB_PATH_MAX]; /* an accuracy table (mplb calibrate --accuracy), or "" */
    int transport_used;           /* set by the CLI: layers ran over a transport (for labels) */
    uint64_t seed;
    char *warnings;               /* "FILE: a.b has no effect with c.d ...\n" lines, or NULL */
} mplb_exp;

typedef struct mplb_eff_pt { double n, eff; } mplb_eff_pt;

typedef struct mplb_profile {
    char name[MPLB_NAME_MAX];
    char path[MPLB_PATH_MAX];
    double peak_tflops[MPLB_PREC_COUNT];   /* dense tensor-core peak; 0 = no native units */
    mplb_prec compute_as[MPLB_PREC_COUNT]; /* the rate a format really runs at on this chip */
    int n_eff[MPLB_PREC_COUNT];
    mplb_eff_pt eff[MPLB_PREC_COUNT][MPLB_EFF_MAX]; /* eff(n), piecewise-linear in log n */
    double hbm_gbps, nvlink_gbps, net_gbps;         /* GB/s per GPU per direction */
    double nvlink_lat_us, net_lat_us, launch_us;
    double conv_eff;                                /* weight conversion: share of HBM bw */
    double memory_gb;
    /* derived at load: ln of each curve point's n (0 when built by hand) */
    int eff_ln_ready;
    double eff_ln[MPLB_PREC_COUNT][MPLB_EFF_MAX];
    double eff_slope[MPLB_PREC_COUNT][MPLB_EFF_MAX]; /* d eff / d ln n on segment i-1..i */
} mplb_profile;

/* Load an experiment. sets[] are "path.to.field=lua-expression" overrides
 * applied before checking. Relative policy names resolve through
 * mplb_find_data. */
int mplb_exp_load(const char *path, const char *const *sets, int n_sets,
                  mplb_exp *out, mplb_err *err);
/* The same, looking up policies, profiles and traces beside base_dir instead
 * of beside path (a sweep's point files live elsewhere than their experiment). */
int mplb_exp_load_ex(const char *path, const char *base_dir, const char *const *sets, int n_sets,
                     mplb_exp *out, mplb_err *err);
/* The same from text: path names it in messages, lines_src (or text) is
 * searched for a key's line (a sweep point checked against its experiment). */
int mplb_exp_load_text(const char *text, const char *path, const char *lines_src, const char *base_dir,
                       const char *const *sets, int n_sets, mplb_exp *out, mplb_err *err);
void mplb_exp_free(mplb_exp *exp);
/* Write docs/experiment-reference.md (markdown) from the table of keys. */
int mplb_exp_reference(FILE *f);

/* Load profiles/NAME.lua (or a path). A profile may say inherit = "h100". */
int mplb_profile_load(const char *name_or_path, const char *base_dir,
                      mplb_profile *out, mplb_err *err);

/* Find a data file: NAME as a path if it names an existing file, else
 * KIND/NAME.lua looked up beside base_dir, in ., and in the install's data dir. */
int mplb_find_data(const char *kind, const char *name, const char *base_dir,
                   char out[MPLB_PATH_MAX], mplb_err *err);
/* The same for another extension (".h5" for traces/). */
int mplb_find_data_ext(const char *kind, const char *name, const char *ext, const char *base_dir,
                       char out[MPLB_PATH_MAX], mplb_err *err);

/* Read an accuracy table (Lua: return { error = { fmt = e, ... } }) into
 * relerr[MPLB_PREC_COUNT]; formats it omits are an error, naming the file. */
int mplb_accuracy_load(const char *path, double *relerr, mplb_err *err);

/* Built-in model shapes from public configs (deepseek-v3, qwen3-30b-a3b, ...). */
int mplb_model_preset(const char *name, mplb_model *out);

#endif
