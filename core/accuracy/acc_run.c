/* The "lm" workload of a run: see mplb_accrun in include/mplb/accuracy.h. */
#include "mplb/accuracy.h"
#include "mplb/config.h"
#include "mplb/routing.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DOM MPLB_MAX_DOMAINS

struct mplb_accrun {
    mplb_lm m;
    mplb_lm_run ref, q;
    int S, T, N, L, E, K, P, ndom, step;
    int n_moe, *moe;               /* the run's layer i is the model's layer moe[i] (dense layers skipped) */
    mplb_lm_acts acts;
    char dom[MAX_DOM][MPLB_NAME_MAX];
    int32_t *text[MAX_DOM];        /* token ids of each domain's file */
    int64_t text_n[MAX_DOM];
    int32_t *tokens;               /* [N] this step's */
    int *seq_dom;                  /* [S] */
    float *ref_logits, *q_logits;  /* [N x V] */
    int *ref_topk;                 /* [L][N*K] the bf16 pass's routing */
    float *ref_topw;
    float *snap_x, *snap_h;        /* [L][N*d]: residual and normed input of each MoE block */
    mplb_prec *plan;               /* [P][L*E] */
};

/* Byte tokens: the file's bytes. Otherwise whitespace-separated token ids. */
static int read_tokens(const char *path, int bytes, int vocab, int32_t **out, int64_t *n, mplb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mplb_err_set(err, MPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    int32_t *t = buf ? malloc(((size_t)len + 1) * sizeof *t) : NULL;
    if (!buf || !t || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f); free(buf); free(t);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot read", path);
    }
    fclose(f);
    buf[len] = 0;
    int64_t k = 0;
    if (bytes) {
        for (long i = 0; i < len; i++) t[k++] = buf[i];
    } else {
        char *p = (char *)buf, *end;
        int line = 1;
        while (*p) {
            if (isspace((unsigned char)*p)) { line += *p == '\n'; p++; continue; }
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= vocab) {
                free(buf); free(t);
                return mplb_err_set(err, MPLB_EFORMAT, "%s:%d: expected a token id in [0, %d) (the checkpoint has no byte "
                                    "tokenizer: give whitespace-separated token ids)", path, line, vocab);
            }
            t[k++] = (int32_t)v;
            p = end;
        }
    }
    free(buf);
    *out = t;
    *n = k;
    return 0;
}

void mplb_accrun_close(mplb_accrun *a) {
    if (!a) return;
    mplb_lm_run_free(&a->ref);
    mplb_lm_run_free(&a->q);
    mplb_lm_free(&a->m);
    for (int i = 0; i < MAX_DOM; i++) free(a->text[i]);
    free(a->tokens); free(a->seq_dom); free(a->ref_logits); free(a->q_logits);
    free(a->ref_topk); free(a->ref_topw); free(a->snap_x); free(a->snap_h); free(a->plan); free(a->moe);
    free(a);
}

int mplb_accrun_open(const struct mplb_workload_cfg *w, const struct mplb_model *model, int n_policies,
                     mplb_accrun **out, mplb_err *err) {
    *out = NULL;
    mplb_accrun *a = calloc(1, sizeof *a);
    if (!a) return mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory");
    int rc = mplb_lm_load(w->lm, &a->m, err);
    if (rc < 0) { free(a); return rc; }
    const mplb_lm_config *c = &a->m.c;
    /* a run's layers are the MoE layers (DeepSeek's first_k_dense_replace and
     * Qwen2-MoE's mlp_only_layers run in the forward, in bf16, unseen by policies) */
    a->moe = malloc((size_t)c->layers * sizeof *a->moe);
    if (!a->moe) { rc = mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory"); goto fail; }
    for (int l = 0; l < c->layers; l++)
        if (!a->m.L[l].dense) a->moe[a->n_moe++] = l;
    /* the experiment's model table drives the cost model: it must be this checkpoint's shape */
    struct { const char *field; int exp, ck; } chk[] = {
        {"layers", model->layers, a->n_moe}, {"experts", model->experts, c->experts}, {"top_k", model->top_k, c->top_k},
        {"hidden", model->hidden, c->d}, {"ffn", model->ffn, c->ffn}};
    for (size_t i = 0; i < sizeof chk / sizeof chk[0]; i++)
        if (chk[i].exp != chk[i].ck) {
            rc = mplb_err_set(err, MPLB_ECONFIG, "model.%s = %d, but the checkpoint %s has %d%s (workload.lm)", chk[i].field,
                              chk[i].exp, w->lm, chk[i].ck, i == 0 && a->n_moe < c->layers ? " MoE layers" : "");
            goto fail;
        }
    a->S = w->lm_batch; a->T = w->lm_seq; a->N = a->S * a->T;
    a->L = c->layers; a->E = c->experts; a->K = c->top_k; a->P = n_policies;
    a->ndom = w->n_text;
    a->acts = !strcmp(w->lm_acts, "bf16") ? MPLB_LM_ACTS_BF16 : MPLB_LM_ACTS_MATCHED;
    if (a->ndom < 1 || a->ndom > MAX_DOM) { rc = mplb_err_set(err, MPLB_ECONFIG, "workload.text: 1 to %d domains", MAX_DOM); goto fail; }
    for (int i = 0; i < a->ndom; i++) {
        snprintf(a->dom[i], sizeof a->dom[i], "%s", w->text_name[i]);
        if ((rc = read_tokens(w->text_path[i], c->byte_tokens, c->vocab, &a->text[i], &a->text_n[i], err)) < 0) goto fail;
        if (a->text_n[i] < a->T + 1) {
            rc = mplb_err_set(err, MPLB_ECONFIG, "workload.text.%s: %s has %lld tokens, fewer than seq + 1 = %d", a->dom[i],
                              w->text_path[i], (long long)a->text_n[i], a->T + 1);
            goto fail;
        }
    }
    size_t N = (size_t)a->N, V = (size_t)c->vocab, nk = N * a->K, nd = N * c->d;
    a->tokens = malloc(N * sizeof *a->tokens);
    a->seq_dom = malloc((size_t)a->S * sizeof *a->seq_dom);
    a->ref_logits = malloc(N * V * sizeof(float));
    a->q_logits = malloc(N * V * sizeof(float));
    a->ref_topk = malloc((size_t)a->L * nk * sizeof(int));
    a->ref_topw = malloc((size_t)a->L * nk * sizeof(float));
    a->snap_x = malloc((size_t)a->L * nd * sizeof(float));
    a->snap_h = malloc((size_t)a->L * nd * sizeof(float));
    a->plan = calloc((size_t)(a->P ? a->P : 1) * a->L * a->E, sizeof *a->plan);
    if (!a->tokens || !a->seq_dom || !a->ref_logits || !a->q_logits || !a->ref_topk || !a->ref_topw || !a->snap_x ||
        !a->snap_h || !a->plan) {
        rc = mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory for %d x %d tokens", a->S, a->T);
        goto fail;
    }
    if ((rc = mplb_lm_run_init(&a->ref, &a->m, a->S, a->T, err)) < 0 || (rc = mplb_lm_run_init(&a->q, &a->m, a->S, a->T, err)) < 0)
        goto fail;
    a->step = -1;
    *out = a;
    return 0;
fail:
    mplb_accrun_close(a);
    return rc;
}

int mplb_accrun_domains(const mplb_accrun *a) { return a->ndom; }
const char *mplb_accrun_domain(const mplb_accrun *a, int i) { return i >= 0 && i < a->ndom ? a->dom[i] : NULL; }

int mplb_accrun_step(mplb_accrun *a, int step, mplb_err *err) {
    /* sequence j: domain j mod ndom, the next window of that domain's text */
    for (int j = 0; j < a->S; j++) {
        int g = j % a->ndom;
        int64_t per = (a->S - g + a->ndom - 1) / a->ndom;   /* sequences of domain g per step */
        int64_t win = (int64_t)step * per + j / a->ndom, span = a->text_n[g] - a->T;
        int64_t start = (win * a->T) % span;
        memcpy(a->tokens + (size_t)j * a->T, a->text[g] + start, (size_t)a->T * sizeof(int32_t));
        a->seq_dom[j] = g;
    }
    size_t nk = (size_t)a->N * a->K, nd = (size_t)a->N * a->m.c.d;
    int rc = mplb_lm_begin(&a->ref, a->tokens, err);
    for (int l = 0; l < a->L && rc == 0; l++) {
        if ((rc = mplb_lm_route(&a->ref, l, err)) < 0) break;
        memcpy(a->ref_topk + l * nk, a->ref.topk, nk * sizeof(int));
        memcpy(a->ref_topw + l * nk, a->ref.topw, nk * sizeof(float));
        memcpy(a->snap_x + l * nd, a->ref.x, nd * sizeof(float));
        memcpy(a->snap_h + l * nd, a->ref.h, nd * sizeof(float));
        rc = mplb_lm_experts(&a->ref, l, NULL, a->acts, -1, err);
    }
    if (rc == 0) rc = mplb_lm_logits(&a->ref, a->ref_logits, err);
    if (rc == 0) a->step = step;
    return rc;
}

int mplb_accrun_routing(const mplb_accrun *a, int layer, const struct mplb_placement *pl, int gpus_per_node,
                        struct mplb_routing *rt, mplb_err *err) {
    if (layer < 0 || layer >= a->n_moe || a->step < 0) return mplb_err_set(err, MPLB_EINVAL, "lm: no routing for layer %d", layer);
    layer = a->moe[layer];
    mplb_routing_clear(rt);
    const int *ids = a->ref_topk + (size_t)layer * a->N * a->K;
    const float *w = a->ref_topw + (size_t)layer * a->N * a->K;
    for (int i = 0; i < a->N; i++) {
        int s = i / a->T;
        int vision = !strcmp(a->dom[a->seq_dom[s]], "vision");
        mplb_routing_add_token(rt, pl, gpus_per_node, s % rt->R, vision, ids + (size_t)i * a->K, w + (size_t)i * a->K);
    }
    return 0;
}

void mplb_accrun_plan(mplb_accrun *a, int policy, int layer, const mplb_prec *prec) {
    if (policy < 0 || policy >= a->P || layer < 0 || layer >= a->n_moe) return;
    layer = a->moe[layer];
    memcpy(a->plan + ((size_t)policy * a->L + layer) * a->E, prec, (size_t)a->E * sizeof *prec);
}

int mplb_accrun_measure(mplb_accrun *a, int policy, mplb_lm_metrics *out, mplb_err *err) {
    if (policy < 0 || policy >= a->P || a->step < 0) return mplb_err_set(err, MPLB_EINVAL, "lm: nothing to measure");
    int rc = mplb_lm_forward(&a->q, a->tokens, a->plan + (size_t)policy * a->L * a->E, a->acts, a->q_logits, err);
    if (rc < 0) return rc;
    return mplb_lm_compare(a->ref_logits, a->q_logits, a->tokens, a->seq_dom, a->ndom, a->S, a->T, a->m.c.vocab, out, err);
}

int mplb_accrun_importance(mplb_accrun *a, int layer, double *imp, mplb_err *err) {
    if (layer < 0 || layer >= a->n_moe || a->step < 0) return mplb_err_set(err, MPLB_EINVAL, "lm: no importance for layer %d", layer);
    layer = a->moe[layer];
    size_t nk = (size_t)a->N * a->K, nd = (size_t)a->N * a->m.c.d;
    mplb_lm_metrics *met = malloc((size_t)(a->ndom + 1) * sizeof *met);
    if (!met) return mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory");
    int rc = 0;
    for (int e = 0; e < a->E && rc == 0; e++) {
        /* from the bf16 pass's state at this layer's MoE block: only the rest is recomputed */
        memcpy(a->q.x, a->snap_x + layer * nd, nd * sizeof(float));
        memcpy(a->q.h, a->snap_h + layer * nd, nd * sizeof(float));
        memcpy(a->q.topk, a->ref_topk + layer * nk, nk * sizeof(int));
        memcpy(a->q.topw, a->ref_topw + layer * nk, nk * sizeof(float));
        rc = mplb_lm_experts(&a->q, layer, NULL, a->acts, e, err);
        for (int l = layer + 1; l < a->L && rc == 0; l++) {
            if ((rc = mplb_lm_route(&a->q, l, err)) == 0) rc = mplb_lm_experts(&a->q, l, NULL, a->acts, -1, err);
        }
        if (rc == 0) rc = mplb_lm_logits(&a->q, a->q_logits, err);
        if (rc == 0) rc = mplb_lm_compare(a->ref_logits, a->q_logits, a->tokens, a->seq_dom, a->ndom, a->S, a->T, a->m.c.vocab, met, err);
        if (rc == 0) imp[e] = met[a->ndom].kl;
    }
    free(met);
    return rc;
}
