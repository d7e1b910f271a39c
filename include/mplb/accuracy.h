/* mplb_lm: a real MoE language model run on the CPU, to measure what a
 * precision plan does to the model's output (accuracy measured, not proxied).
 *
 * Loads a Hugging Face checkpoint directory (config.json + model.safetensors)
 * of a Mixtral, OLMoE, Qwen2-MoE, Qwen3-MoE or DeepSeek-MoE (v1, multi-head
 * attention) model and runs the decoder: embeddings, RMSNorm, causal
 * attention with RoPE (HF rotate-half convention; GQA, QKV bias, QK norm and
 * clip_qkv where the family has them), a softmax top-k router, routed experts
 * through the CPU expert kernel (mplb_ffn_forward, weights packed by
 * mplb_expert_quantize), shared experts and dense layers where present, the
 * final norm and the LM head. Weights are read as stored (bf16); non-expert
 * compute is float32. Each routed expert runs in the precision the plan
 * gives it; activations follow the format (acts = MATCHED: W8A8 for fp8,
 * W4A4 for nvfp4/mxfp4, per-token int8; weight-only formats keep bf16) or
 * stay bf16 (acts = BF16). The all-bf16 plan is the reference; shared
 * experts, dense layers and attention always run in bf16.
 *
 * The forward runs layer by layer so that a policy can see each layer's
 * routing (from the model's own router) before choosing that layer's
 * precisions:
 *
 *   mplb_lm m; mplb_lm_run r; mplb_err err;
 *   mplb_lm_load("models/tiny-moe", &m, &err);
 *   mplb_lm_run_init(&r, &m, S, T, &err);
 *   mplb_lm_begin(&r, tokens, &err);                  // tokens [S x T]
 *   for (l = 0; l < m.c.layers; l++) {
 *       mplb_lm_route(&r, l, &err);                   // r.topk / r.topw / r.counts
 *       mplb_lm_experts(&r, l, prec_of_expert, MPLB_LM_ACTS_MATCHED, &err);
 *   }
 *   mplb_lm_logits(&r, logits, &err);                 // [S*T x vocab]
 */
#ifndef MPLB_ACCURACY_H
#define MPLB_ACCURACY_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"
#include "mplb/ffn.h"
#include "mplb/prec.h"

MPLB_BEGIN_DECLS

struct mplb_workload_cfg;
struct mplb_model;
struct mplb_placement;
struct mplb_routing;

/* Tensor names per family (model_type in config.json):
 * X(id, model_type, moe block, gate, up, down, shared expert, shared gate) */
#define MPLB_LM_FAMILY_MAP(X)                                                                        \
    X(MIXTRAL,  "mixtral",   "block_sparse_moe", "w1", "w3", "w2", NULL, NULL)                        \
    X(OLMOE,    "olmoe",     "mlp", "gate_proj", "up_proj", "down_proj", NULL, NULL)                  \
    X(QWEN2MOE, "qwen2_moe", "mlp", "gate_proj", "up_proj", "down_proj", "shared_expert", "shared_expert_gate") \
    X(QWEN3MOE, "qwen3_moe", "mlp", "gate_proj", "up_proj", "down_proj", NULL, NULL)                  \
    X(DEEPSEEK, "deepseek",  "mlp", "gate_proj", "up_proj", "down_proj", "shared_experts", NULL)

typedef enum mplb_lm_family {
#define MPLB_LM_FAM_ENUM(id, mt, moe, g, u, d, sh, sg) MPLB_LM_##id,
    MPLB_LM_FAMILY_MAP(MPLB_LM_FAM_ENUM)
#undef MPLB_LM_FAM_ENUM
    MPLB_LM_FAMILY_COUNT
} mplb_lm_family;

typedef enum mplb_lm_acts { MPLB_LM_ACTS_MATCHED = 0, MPLB_LM_ACTS_BF16 = 1 } mplb_lm_acts;

typedef struct mplb_lm_config {
    mplb_lm_family family;
    int vocab, d, layers, heads, kv_heads, head_dim;
    int experts, top_k, ffn;           /* routed experts and their intermediate size */
    int shared_ffn;                    /* shared expert intermediate size, 0 = none */
    int dense_ffn;                     /* dense layers' intermediate size */
    int norm_topk;                     /* renormalise the top-k gates to sum 1 */
    double eps, rope_theta, clip_qkv, routed_scale;
    int byte_tokens;                   /* config "tokenizer": "bytes": a token is a byte */
} mplb_lm_config;

typedef struct mplb_lm_layer {
    int dense;                         /* a dense FFN instead of the MoE block */
    float *ln1, *ln2, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *qn, *kn, *router;
    float **eg, **eu, **ed;            /* [experts] routed experts' masters */
    float *sg, *su, *sd, *sgate;       /* shared expert (or the dense FFN), its sigmoid gate */
    mplb_expert_w shared;              /* bf16 packing of sg/su/sd */
} mplb_lm_layer;

typedef struct mplb_lm {
    char dir[1024];
    mplb_lm_config c;
    float *embed, *norm, *lm_head;
    mplb_lm_layer *L;
    mplb_expert_w *q;                  /* [layers * experts * MPLB_PREC_COUNT] packed on first use */
    uint8_t *have;
    float **owned;                     /* every buffer read from the file */
    int n_owned;
} mplb_lm;

/* Load DIR/config.json and DIR/model.safetensors (DIR may also name the
 * .safetensors file, with config.json beside it). */
MPLB_API int mplb_lm_load(const char *dir, mplb_lm *m, mplb_err *err);
MPLB_API void mplb_lm_free(mplb_lm *m);
/* Name of a family / the activation format an expert in weight format p runs with. */
MPLB_API const char *mplb_lm_family_name(mplb_lm_family f);
MPLB_API mplb_prec mplb_lm_act_prec(mplb_prec p, mplb_lm_acts acts);

/* One forward pass in progress over S sequences of T tokens (N = S*T). */
typedef struct mplb_lm_run {
    mplb_lm *m;
    int S, T, N;
    float *x, *h, *q, *k, *v, *o, *p, *y, *xe, *ye, *cos, *sin;
    int *topk;                         /* [N x top_k] routed experts of the last routed layer */
    float *topw;                       /* [N x top_k] their gate weights */
    double *counts, *mass;             /* [experts] token copies and gate mass of that layer */
    int *order;
    mplb_ffn_ws ws;
} mplb_lm_run;

MPLB_API int mplb_lm_run_init(mplb_lm_run *r, mplb_lm *m, int S, int T, mplb_err *err);
MPLB_API void mplb_lm_run_free(mplb_lm_run *r);
MPLB_API int mplb_lm_begin(mplb_lm_run *r, const int32_t *tokens, mplb_err *err);
/* Attention of layer l, its post-attention norm and router. */
MPLB_API int mplb_lm_route(mplb_lm_run *r, int l, mplb_err *err);
/* The MoE block of layer l (after mplb_lm_route(l)): expert e in prec[e]
 * (NULL: all bf16); skip >= 0 drops that expert (its gate weight with it,
 * the others renormalised as the router would; the ablation). */
MPLB_API int mplb_lm_experts(mplb_lm_run *r, int l, const mplb_prec *prec, mplb_lm_acts acts, int skip, mplb_err *err);
MPLB_API int mplb_lm_logits(mplb_lm_run *r, float *logits, mplb_err *err);
/* The whole pass with per-(layer, expert) precisions prec[l * experts + e]
 * (NULL: bf16). */
MPLB_API int mplb_lm_forward(mplb_lm_run *r, const int32_t *tokens, const mplb_prec *prec, mplb_lm_acts acts, float *logits,
                    mplb_err *err);

/* Load, run once, free: for bindings (analysis/mplb/moe_ref.py's test).
 * prec: int32 [layers * experts] precision ids or NULL; acts 0 matched, 1 bf16. */
MPLB_API int mplb_lm_eval(const char *dir, const int32_t *tokens, int S, int T, const int32_t *prec, int acts, float *logits,
                 mplb_err *err);

/* Output distributions of a quantized run against the reference, over the
 * positions with a next token (t < T-1 in each sequence), per domain
 * (dom[s] in [0, ndom)) and over all (index ndom). */
typedef struct mplb_lm_metrics {
    double kl;          /* mean KL(p_ref || p_q), nats per token */
    double top1;        /* share of positions whose argmax agrees */
    double ppl_ref, ppl_q;
    int64_t n;
} mplb_lm_metrics;

MPLB_API int mplb_lm_compare(const float *ref, const float *q, const int32_t *tokens, const int *dom, int ndom, int S, int T,
                    int V, mplb_lm_metrics *out, mplb_err *err);

/* ---- mplb_accrun: the "lm" workload of a run (workload.kind = "lm").
 * Each step draws lm_batch sequences of lm_seq tokens from the text files,
 * the domains in turn (sequence j from domain j mod n_text, on source rank
 * j mod R: data-parallel attention keeps a sequence on one rank), and runs
 * the all-bf16 model on them: its router's choices, layer by layer, are the
 * routing every policy observes. Each policy's per-layer precisions are
 * recorded as it decides; after the last layer the step is run again with
 * them (the model's own router routing on the quantized hidden states) and
 * compared with the bf16 output: KL, top-1 agreement, perplexity, per
 * domain. A domain named "vision" counts as vision tokens. The run's layer
 * i is the checkpoint's i-th MoE layer: dense layers (first_k_dense_replace,
 * mlp_only_layers) run in bf16 and are not run layers. */
typedef struct mplb_accrun mplb_accrun;

MPLB_API int mplb_accrun_open(const struct mplb_workload_cfg *w, const struct mplb_model *model, int n_policies,
                     mplb_accrun **out, mplb_err *err);
MPLB_API void mplb_accrun_close(mplb_accrun *a);
/* The bf16 pass of a step. */
MPLB_API int mplb_accrun_step(mplb_accrun *a, int step, mplb_err *err);
/* rt (cleared first) <- the routing of `layer` in the step's bf16 pass. */
MPLB_API int mplb_accrun_routing(const mplb_accrun *a, int layer, const struct mplb_placement *pl, int gpus_per_node,
                        struct mplb_routing *rt, mplb_err *err);
/* Policy i chose prec[e] for the experts of `layer`. */
MPLB_API void mplb_accrun_plan(mplb_accrun *a, int policy, int layer, const mplb_prec *prec);
/* Run policy i's plan of the step; out[ndom + 1] (the last: all domains). */
MPLB_API int mplb_accrun_measure(mplb_accrun *a, int policy, mplb_lm_metrics *out, mplb_err *err);
MPLB_API int mplb_accrun_domains(const mplb_accrun *a);
MPLB_API const char *mplb_accrun_domain(const mplb_accrun *a, int i);
/* Importance of each expert of `layer` by ablation (the step's batch,
 * bf16 elsewhere): mean KL of the output when that expert is dropped and
 * its tokens renormalised over their other experts. imp[experts]. */
MPLB_API int mplb_accrun_importance(mplb_accrun *a, int layer, double *imp, mplb_err *err);

MPLB_END_DECLS

#endif
