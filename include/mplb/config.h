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

#include "mplb/api.h"

#include <stdint.h>
#include <stdio.h>
#include "mplb/err.h"
#include "mplb/prec.h"

MPLB_BEGIN_DECLS

#define MPLB_NAME_MAX 64
/* text domains of an lm workload (workload.text): config, accuracy, run summary and file share it */
#define MPLB_MAX_DOMAINS 8
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
    char kind[MPLB_NAME_MAX];     /* "synthetic", "trace" or "lm" */
    int steps;
    int64_t tokens;               /* tokens per (prefill) step, over all ranks */
    double zipf;                  /* skew of text routing */
    double vision_frac;           /* share of vision tokens (prefill steps) */
    double vision_zipf;           /* skew of vision routing (vision tokens flood few experts) */
    double vision_sigma;          /* sd of a prefill step's log-popularity fluctuation of vision routing; 0: static */
    int families;                 /* task families (code, math, chat, ...) with their own popularity */
    double drift;                 /* 0..1: how much the family mix swings over drift_period steps */
    int drift_period;
    double layer_corr;            /* 0..1: popularity rank carried from one layer to the next */
    double src_affinity;          /* 0..1: tokens of node n prefer family n mod families */
    int prefill_every;            /* every n-th step is a prefill, the others decode */
    int64_t decode_tokens;        /* tokens per decode step */
    char skew_from[MPLB_PATH_MAX];/* a trace whose per-layer skew replaces Zipf's */
    char file[MPLB_PATH_MAX];     /* kind = "trace": the trace file */
    /* kind = "lm": text through a real MoE checkpoint, whose router gives the
     * routing and whose output measures accuracy (core/accuracy/) */
    char lm[MPLB_PATH_MAX];       /* checkpoint directory (config.json + model.safetensors) */
    int lm_seq, lm_batch;         /* tokens per sequence, sequences per step */
    char lm_acts[16];             /* "matched" (W8A8, W4A4) or "bf16" (weight-only) */
    int lm_ablation;              /* measure each expert's importance by ablation (obs.expert_ablation) */
    int n_text;                   /* text domains, each a file */
    char text_name[MPLB_MAX_DOMAINS][MPLB_NAME_MAX];
    char text_path[MPLB_MAX_DOMAINS][MPLB_PATH_MAX];
    /* Step-to-step time structure (docs/trace-file.md, "Fitted workloads"):
     * a step's log-popularity is the base's plus step_sigma * z, where z is
     * redrawn at regime changes (probability regime_rate a step) and
     * rotates smoothly to a fresh draw every wander_period steps (0: never).
     * Unset zipf (NAN) selects the data-fitted default: log-normal base
     * popularity of spread pop_sigma. */
    double pop_sigma, step_sigma, regime_rate;
    int wander_period;
    /* Per-layer fitted values (mplb trace fit), owned by the mplb_exp and
     * freed by mplb_exp_free; NULL when absent. */
    int pop_layers, pop_experts;
    double *popularity;           /* [pop_layers * pop_experts] base shares, rows sum to 1 */
    double *layer_sigma;          /* [pop_layers] step_sigma per layer */
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
    int repeats, warmup;          /* measuring backends: timed repeats per plan, warm-up runs (mplb/measure.h) */
    char accuracy[MPLB_PATH_MAX]; /* an accuracy table (mplb calibrate --accuracy), or "" */
    char placement_file[MPLB_PATH_MAX]; /* an engine physical->logical map as the initial placement, or "" */
    uint64_t seed;
    char *warnings;               /* "FILE: a.b has no effect with c.d ...\n" lines, or NULL */
} mplb_exp;

typedef struct mplb_eff_pt { double n, eff; } mplb_eff_pt;

/* Where a profile value comes from. Every value in a shipped profile says
 * which: a vendor datasheet, a published measurement (repository or paper and
 * its table), a measurement on this machine (mplb calibrate), or an
 * assumption with the range it is believed to lie in (the range is what
 * `mplb run --sensitivity` explores). */
#define MPLB_SRC_MAP(X)                 \
    X(UNSPECIFIED, "unspecified")       \
    X(DATASHEET,   "datasheet")         \
    X(PUBLISHED,   "published")         \
    X(MEASURED,    "measured")          \
    X(ASSUMPTION,  "assumption")

typedef enum mplb_src {
#define MPLB_SRC_ENUM(id, name) MPLB_SRC_##id,
    MPLB_SRC_MAP(MPLB_SRC_ENUM)
#undef MPLB_SRC_ENUM
    MPLB_SRC_COUNT
} mplb_src;

MPLB_API const char *mplb_src_name(int s);

#define MPLB_REF_MAX 200
typedef struct mplb_prov {
    int src;                  /* mplb_src */
    double lo, hi;            /* the assumption's range (lo = hi = value otherwise) */
    char ref[MPLB_REF_MAX];   /* the source: datasheet, repository + table, or why assumed */
} mplb_prov;

/* The scalar parameters of a profile, in the file's units.
 *   X(field, required, max_one, what) */
#define MPLB_PROFILE_SCALARS(X)                                                                  \
    X(hbm_gbps,      1, 0, "device memory bandwidth, GB/s")                                      \
    X(hbm_eff,       1, 1, "share of hbm_gbps a streaming kernel reaches")                       \
    X(nvlink_gbps,   1, 0, "scale-up link per GPU per direction, GB/s (PCIe P2P where no NVLink)") \
    X(nvlink_eff,    1, 1, "share of nvlink_gbps an all-to-all reaches")                         \
    X(nvlink_lat_us, 0, 0, "fixed cost of one intra-node dispatch or combine, us")               \
    X(net_gbps,      1, 0, "scale-out NIC per GPU per direction, GB/s")                          \
    X(net_eff,       1, 1, "share of net_gbps an all-to-all reaches")                            \
    X(net_lat_us,    0, 0, "fixed cost of one inter-node dispatch or combine, us")               \
    X(host_gbps,     1, 0, "host link (PCIe) per GPU per direction, GB/s")                       \
    X(host_eff,      1, 1, "share of host_gbps a pinned copy reaches")                           \
    X(launch_us,     0, 0, "fixed cost of one grouped-GEMM launch, us")                          \
    X(conv_eff,      1, 1, "bf16 -> low-precision weight conversion: share of hbm_gbps")         \
    X(memory_gb,     1, 0, "device memory, GB")                                                  \
    X(sms,           0, 0, "streaming multiprocessors (0: no wave quantisation)")                \
    X(tile_m,        0, 0, "grouped-GEMM tile rows (tokens); 0: no tile padding")                \
    X(tile_n,        0, 0, "grouped-GEMM tile columns; 0: no tile padding")

enum {
#define MPLB_PS_ENUM(f, req, m1, what) MPLB_PS_##f,
    MPLB_PROFILE_SCALARS(MPLB_PS_ENUM)
#undef MPLB_PS_ENUM
    MPLB_PS_COUNT
};

typedef struct mplb_profile {
    char name[MPLB_NAME_MAX];
    char path[MPLB_PATH_MAX];
    double peak_tflops[MPLB_PREC_COUNT];   /* dense tensor-core peak; 0 = no native units */
    double mma_eff[MPLB_PREC_COUNT];       /* share of peak a large grouped GEMM reaches */
    mplb_prec compute_as[MPLB_PREC_COUNT]; /* the rate a format really runs at on this chip */
    int n_eff[MPLB_PREC_COUNT];            /* measured eff(n) curves (mplb calibrate); 0 = tile model */
    mplb_eff_pt eff[MPLB_PREC_COUNT][MPLB_EFF_MAX]; /* eff(n), piecewise-linear in log n */
    mplb_prov eff_prov[MPLB_PREC_COUNT];   /* where each curve comes from (its src and ref keys) */
#define MPLB_PS_FIELD(f, req, m1, what) double f;
    MPLB_PROFILE_SCALARS(MPLB_PS_FIELD)
#undef MPLB_PS_FIELD
    mplb_prov prov[MPLB_PS_COUNT];
    mplb_prov peak_prov[MPLB_PREC_COUNT], mma_prov[MPLB_PREC_COUNT];
    /* derived at load: ln of each curve point's n (0 when built by hand) */
    int eff_ln_ready;
    double eff_ln[MPLB_PREC_COUNT][MPLB_EFF_MAX];
    double eff_slope[MPLB_PREC_COUNT][MPLB_EFF_MAX]; /* d eff / d ln n on segment i-1..i */
} mplb_profile;

/* An ideal machine for tests built by hand: every efficiency 1, no tile or
 * wave quantisation, no latencies; the caller sets peaks and bandwidths. */
MPLB_API void mplb_profile_ideal(mplb_profile *hw);

/* One numeric profile parameter, by name ("hbm_eff", "mma_eff.fp8_e4m3"). */
typedef struct mplb_param {
    char name[48];
    double *value;
    mplb_prov *prov;
} mplb_param;
#define MPLB_PARAMS_MAX (MPLB_PS_COUNT + 2 * MPLB_PREC_COUNT)
/* Every numeric parameter of hw, pointing into it; returns the count. */
MPLB_API int mplb_profile_params(mplb_profile *hw, mplb_param out[MPLB_PARAMS_MAX]);

/* Load an experiment. sets[] are "path.to.field=lua-expression" overrides
 * applied before checking. Relative policy names resolve through
 * mplb_find_data. */
MPLB_API int mplb_exp_load(const char *path, const char *const *sets, int n_sets,
                  mplb_exp *out, mplb_err *err);
/* The same, looking up policies, profiles and traces beside base_dir instead
 * of beside path (a sweep's point files live elsewhere than their experiment). */
MPLB_API int mplb_exp_load_ex(const char *path, const char *base_dir, const char *const *sets, int n_sets,
                     mplb_exp *out, mplb_err *err);
/* The same from text: path names it in messages, lines_src (or text) is
 * searched for a key's line (a sweep point checked against its experiment). */
MPLB_API int mplb_exp_load_text(const char *text, const char *path, const char *lines_src, const char *base_dir,
                       const char *const *sets, int n_sets, mplb_exp *out, mplb_err *err);
MPLB_API void mplb_exp_free(mplb_exp *exp);
/* Write docs/experiment-reference.md (markdown) from the table of keys. */
MPLB_API int mplb_exp_reference(FILE *f);
/* Load a workload file (a Lua file returning a workload table, as `mplb
 * trace fit` writes) on its own; free with mplb_workload_cfg_free. */
MPLB_API int mplb_workload_load(const char *path, mplb_workload_cfg *w, mplb_err *err);
MPLB_API void mplb_workload_cfg_free(mplb_workload_cfg *w);

/* Load profiles/NAME.lua (or a path). A profile may say inherit = "h100". */
MPLB_API int mplb_profile_load(const char *name_or_path, const char *base_dir,
                      mplb_profile *out, mplb_err *err);

/* Find a data file: NAME as a path if it names an existing file, else
 * KIND/NAME.lua looked up beside base_dir, in ., and in the install's data dir. */
MPLB_API int mplb_find_data(const char *kind, const char *name, const char *base_dir,
                   char out[MPLB_PATH_MAX], mplb_err *err);
/* The same for another extension (".h5" for traces/). */
MPLB_API int mplb_find_data_ext(const char *kind, const char *name, const char *ext, const char *base_dir,
                       char out[MPLB_PATH_MAX], mplb_err *err);

/* Read an accuracy table (Lua: return { error = { fmt = e, ... } }) into
 * relerr[MPLB_PREC_COUNT]; formats it omits are an error, naming the file. */
MPLB_API int mplb_accuracy_load(const char *path, double *relerr, mplb_err *err);

/* Built-in model shapes from public configs (deepseek-v3, qwen3-30b-a3b, ...). */
MPLB_API int mplb_model_preset(const char *name, mplb_model *out);

MPLB_END_DECLS

#endif
