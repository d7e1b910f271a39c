/* Loading a Hugging Face MoE checkpoint: see include/mplb/accuracy.h.
 * config.json by cJSON; tensors by mplb_st (one file, or the shards that
 * model.safetensors.index.json lists). Every tensor's shape is checked; a
 * missing one is an error naming it and the closest name the file has. */
#include "mplb/accuracy.h"
#include "mplb/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *model_type, *moe, *g, *u, *d, *shared, *sgate;
} FAM[] = {
#define MPLB_LM_FAM_ROW(id, mt, moe, g, u, d, sh, sg) {mt, moe, g, u, d, sh, sg},
    MPLB_LM_FAMILY_MAP(MPLB_LM_FAM_ROW)
#undef MPLB_LM_FAM_ROW
};

const char *mplb_lm_family_name(mplb_lm_family f) {
    return f >= 0 && f < MPLB_LM_FAMILY_COUNT ? FAM[f].model_type : NULL;
}

/* W8A8 / W4A4 where the format has an activation form; weight-only otherwise. */
mplb_prec mplb_lm_act_prec(mplb_prec p, mplb_lm_acts acts) {
    if (acts == MPLB_LM_ACTS_BF16) return MPLB_PREC_BF16;
    switch (p) {
    case MPLB_PREC_FP16: case MPLB_PREC_FP8_E4M3: case MPLB_PREC_FP8_E5M2: case MPLB_PREC_MXFP8:
    case MPLB_PREC_MXFP4: case MPLB_PREC_NVFP4: case MPLB_PREC_INT8:
        return p;
    default:
        return MPLB_PREC_BF16;   /* bf16; fp4_e2m1 casts and int4 groups are weight-only formats */
    }
}

typedef struct loader {
    mplb_lm *m;
    mplb_st *st;   /* shards */
    int n_st;
    const char *cfg_path;
} loader;

static int lev(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int *row = malloc((lb + 1) * sizeof *row);
    if (!row) return 1 << 20;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    int r = row[lb];
    free(row);
    return r;
}

static const char *closest(const loader *ld, const char *name) {
    const char *best = "(none)";
    int bd = 1 << 30;
    for (int s = 0; s < ld->n_st; s++)
        for (int i = 0; i < ld->st[s].n; i++) {
            int d = lev(name, ld->st[s].tensors[i].name);
            if (d < bd) { bd = d; best = ld->st[s].tensors[i].name; }
        }
    return best;
}

/* Read tensor `name` of shape [r] or [r x c] (c = 0: 1-D). Missing and
 * optional: *out = NULL, 0. */
static int get(loader *ld, const char *name, int64_t r, int64_t c, int optional, float **out, mplb_err *err) {
    *out = NULL;
    for (int s = 0; s < ld->n_st; s++) {
        int i = mplb_st_find(&ld->st[s], name);
        if (i < 0) continue;
        const mplb_st_tensor *t = &ld->st[s].tensors[i];
        int ok = c ? (t->ndim == 2 && t->shape[0] == r && t->shape[1] == c)
                   : ((t->ndim == 1 && t->shape[0] == r) || (t->ndim == 2 && t->shape[0] * t->shape[1] == r));
        if (!ok)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s' has shape [%lld%s%lld], config.json says [%lld%s%lld]",
                                ld->st[s].path, name, (long long)t->shape[0], t->ndim > 1 ? " x " : "",
                                t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)r, c ? " x " : "", (long long)c);
        int64_t n;
        mplb_lm *m = ld->m;
        float **grown = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *grown);
        if (!grown) return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", ld->st[s].path);
        m->owned = grown;
        int rc = mplb_st_read_f32(&ld->st[s], i, out, &n, err);
        if (rc < 0) return rc;
        m->owned[m->n_owned++] = *out;
        return 0;
    }
    if (optional) return 0;
    return mplb_err_set(err, MPLB_EFORMAT, "%s: no tensor '%s' (a %s checkpoint needs it; closest name there: '%s')",
                        ld->st[0].path, name, FAM[ld->m->c.family].model_type, closest(ld, name));
}

/* ---- config.json */
static int num(const cJSON *root, const char *path, const char *key, int required, double dflt, double *out, mplb_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return mplb_err_set(err, MPLB_ECONFIG, "%s: field '%s' is missing", path, key);
        *out = dflt;
        return 0;
    }
    if (cJSON_IsBool(it)) { *out = cJSON_IsTrue(it); return 0; }
    if (!cJSON_IsNumber(it)) return mplb_err_set(err, MPLB_ECONFIG, "%s: field '%s' must be a number", path, key);
    *out = it->valuedouble;
    return 0;
}

static int inum(const cJSON *root, const char *path, const char *key, int required, int dflt, int *out, mplb_err *err) {
    double v;
    int rc = num(root, path, key, required, dflt, &v, err);
    if (rc < 0) return rc;
    if (v != (int)v || v < 0) return mplb_err_set(err, MPLB_ECONFIG, "%s: field '%s' must be a non-negative integer (got %g)", path, key, v);
    *out = (int)v;
    return 0;
}

/* Which layers are dense: qwen2/3 mlp_only_layers + decoder_sparse_step,
 * deepseek first_k_dense_replace + moe_layer_freq. */
static int is_dense(const cJSON *root, const mplb_lm_config *c, int l) {
    if (c->family == MPLB_LM_QWEN2MOE || c->family == MPLB_LM_QWEN3MOE) {
        const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers"), *it;
        cJSON_ArrayForEach(it, only) if (cJSON_IsNumber(it) && (int)it->valuedouble == l) return 1;
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(root, "decoder_sparse_step");
        int s = cJSON_IsNumber(step) && step->valuedouble >= 1 ? (int)step->valuedouble : 1;
        return (l + 1) % s != 0;
    }
    if (c->family == MPLB_LM_DEEPSEEK) {
        const cJSON *fk = cJSON_GetObjectItemCaseSensitive(root, "first_k_dense_replace"),
                    *fr = cJSON_GetObjectItemCaseSensitive(root, "moe_layer_freq");
        int k = cJSON_IsNumber(fk) ? (int)fk->valuedouble : 0, f = cJSON_IsNumber(fr) && fr->valuedouble >= 1 ? (int)fr->valuedouble : 1;
        return l < k || l % f != 0;
    }
    return 0;
}

static int parse_config(const cJSON *root, const char *path, mplb_lm_config *c, mplb_err *err) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) return mplb_err_set(err, MPLB_ECONFIG, "%s: field 'model_type' is missing", path);
    c->family = MPLB_LM_FAMILY_COUNT;
    for (int f = 0; f < MPLB_LM_FAMILY_COUNT; f++)
        if (!strcmp(mt->valuestring, FAM[f].model_type)) c->family = (mplb_lm_family)f;
    if (!strncmp(mt->valuestring, "deepseek_v", 10))
        return mplb_err_set(err, MPLB_EUNSUPP, "%s: model_type '%s': multi-head latent attention (DeepSeek-V2/V3) is not "
                            "implemented; DeepSeek-MoE v1 ('deepseek') is", path, mt->valuestring);
    if (c->family == MPLB_LM_FAMILY_COUNT) {
        char all[256] = "";
        for (int f = 0; f < MPLB_LM_FAMILY_COUNT; f++)
            snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", f ? ", " : "", FAM[f].model_type);
        return mplb_err_set(err, MPLB_EUNSUPP, "%s: model_type '%s' is not a supported MoE family (%s)", path, mt->valuestring, all);
    }
    int rc = 0, shared_n = 0;
    const char *ek = "num_experts", *fk = "moe_intermediate_size";
    if (c->family == MPLB_LM_MIXTRAL) { ek = "num_local_experts"; fk = "intermediate_size"; }
    if (c->family == MPLB_LM_OLMOE) fk = "intermediate_size";
    if (c->family == MPLB_LM_DEEPSEEK) ek = "n_routed_experts";
    if ((rc = inum(root, path, "vocab_size", 1, 0, &c->vocab, err)) < 0 ||
        (rc = inum(root, path, "hidden_size", 1, 0, &c->d, err)) < 0 ||
        (rc = inum(root, path, "num_hidden_layers", 1, 0, &c->layers, err)) < 0 ||
        (rc = inum(root, path, "num_attention_heads", 1, 0, &c->heads, err)) < 0 ||
        (rc = inum(root, path, "num_key_value_heads", 0, c->heads, &c->kv_heads, err)) < 0 ||
        (rc = inum(root, path, ek, 1, 0, &c->experts, err)) < 0 ||
        (rc = inum(root, path, "num_experts_per_tok", 1, 0, &c->top_k, err)) < 0 ||
        (rc = inum(root, path, fk, 1, 0, &c->ffn, err)) < 0 ||
        (rc = inum(root, path, "intermediate_size", 0, c->ffn, &c->dense_ffn, err)) < 0 ||
        (rc = num(root, path, "rms_norm_eps", 0, 1e-6, &c->eps, err)) < 0 ||
        (rc = num(root, path, "rope_theta", 0, 10000, &c->rope_theta, err)) < 0 ||
        (rc = num(root, path, "clip_qkv", 0, 0, &c->clip_qkv, err)) < 0 ||
        (rc = num(root, path, "routed_scaling_factor", 0, 1, &c->routed_scale, err)) < 0)
        return rc;
    if (c->heads < 1 || c->d < 1 || c->kv_heads < 1 || c->heads % c->kv_heads)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: num_attention_heads %d must be a multiple of num_key_value_heads %d", path,
                            c->heads, c->kv_heads);
    if ((rc = inum(root, path, "head_dim", 0, c->d / c->heads, &c->head_dim, err)) < 0) return rc;
    if (c->head_dim < 2 || c->head_dim % 2)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: head_dim %d must be even (RoPE rotates pairs)", path, c->head_dim);
    if (c->top_k < 1 || c->top_k > c->experts)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: num_experts_per_tok %d must be in [1, %s = %d]", path, c->top_k, ek, c->experts);
    double v;
    if ((rc = num(root, path, "norm_topk_prob", 0, c->family == MPLB_LM_MIXTRAL, &v, err)) < 0) return rc;
    c->norm_topk = c->family == MPLB_LM_MIXTRAL ? 1 : v != 0;
    if (c->family == MPLB_LM_QWEN2MOE && (rc = inum(root, path, "shared_expert_intermediate_size", 1, 0, &c->shared_ffn, err)) < 0)
        return rc;
    if (c->family == MPLB_LM_DEEPSEEK) {
        if ((rc = inum(root, path, "n_shared_experts", 0, 0, &shared_n, err)) < 0) return rc;
        c->shared_ffn = shared_n * c->ffn;
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(root, "scoring_func");
        if (sf && (!cJSON_IsString(sf) || strcmp(sf->valuestring, "softmax")))
            return mplb_err_set(err, MPLB_EUNSUPP, "%s: scoring_func must be \"softmax\" (the router implemented here)", path);
    }
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    c->byte_tokens = cJSON_IsString(tok) && !strcmp(tok->valuestring, "bytes");
    return 0;
}

static int read_text(const char *path, char **out, mplb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mplb_err_set(err, MPLB_EIO, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); fclose(f); return mplb_err_set(err, MPLB_EIO, "%s: cannot read", path); }
    fclose(f);
    b[n] = 0;
    *out = b;
    return 0;
}

/* model.safetensors, or every shard model.safetensors.index.json names. */
static int open_shards(loader *ld, const char *dir, mplb_err *err) {
    char p[1100];
    struct stat sb;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ld->st = calloc(1, sizeof *ld->st);
    if (!ld->st) return mplb_err_set(err, MPLB_ENOMEM, "out of memory");
    if (stat(p, &sb) == 0) {
        ld->n_st = 1;
        return mplb_st_open(p, &ld->st[0], err);
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    char *txt;
    int rc = read_text(p, &txt, err);
    if (rc < 0) return mplb_err_set(err, MPLB_EIO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    cJSON *root = cJSON_Parse(txt), *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *it;
    free(txt);
    if (!cJSON_IsObject(wm)) { cJSON_Delete(root); return mplb_err_set(err, MPLB_EFORMAT, "%s: no weight_map object", p); }
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s: weight_map['%s'] is not a file name", p, it->string); break; }
        char f[1100];
        snprintf(f, sizeof f, "%s/%s", dir, it->valuestring);
        int seen = 0;
        for (int s = 0; s < ld->n_st && !seen; s++) seen = !strcmp(ld->st[s].path, f);
        if (seen) continue;
        mplb_st *g = realloc(ld->st, (size_t)(ld->n_st + 1) * sizeof *g);
        if (!g) { rc = mplb_err_set(err, MPLB_ENOMEM, "out of memory"); break; }
        ld->st = g;
        if ((rc = mplb_st_open(f, &ld->st[ld->n_st], err)) < 0) break;
        ld->n_st++;
    }
    cJSON_Delete(root);
    if (rc == 0 && ld->n_st == 0) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: weight_map names no file", p);
    return rc;
}

static int load_layer(loader *ld, const cJSON *root, int l, mplb_err *err) {
    mplb_lm *m = ld->m;
    const mplb_lm_config *c = &m->c;
    mplb_lm_layer *L = &m->L[l];
    int d = c->d, qd = c->heads * c->head_dim, kd = c->kv_heads * c->head_dim, rc;
    char n[512], pre[64];
    snprintf(pre, sizeof pre, "model.layers.%d.", l);
#define T(field, suffix, r, cc, opt) \
    (snprintf(n, sizeof n, "%s%s", pre, suffix), (rc = get(ld, n, r, cc, opt, &(field), err)) < 0)
    if (T(L->ln1, "input_layernorm.weight", d, 0, 0) || T(L->ln2, "post_attention_layernorm.weight", d, 0, 0) ||
        T(L->wq, "self_attn.q_proj.weight", qd, d, 0) || T(L->wk, "self_attn.k_proj.weight", kd, d, 0) ||
        T(L->wv, "self_attn.v_proj.weight", kd, d, 0) || T(L->wo, "self_attn.o_proj.weight", d, qd, 0) ||
        T(L->bq, "self_attn.q_proj.bias", qd, 0, 1) || T(L->bk, "self_attn.k_proj.bias", kd, 0, 1) ||
        T(L->bv, "self_attn.v_proj.bias", kd, 0, 1))
        return rc;
    /* QK norm: over the whole projection (OLMoE) or per head (Qwen3) */
    int qn = c->family == MPLB_LM_QWEN3MOE ? c->head_dim : qd, kn = c->family == MPLB_LM_QWEN3MOE ? c->head_dim : kd;
    if (T(L->qn, "self_attn.q_norm.weight", qn, 0, 1) || T(L->kn, "self_attn.k_norm.weight", kn, 0, 1)) return rc;
    if (c->family == MPLB_LM_OLMOE && (!L->qn || !L->kn))
        return mplb_err_set(err, MPLB_EFORMAT, "%s: OLMoE layer %d needs self_attn.q_norm and k_norm", ld->st[0].path, l);
    L->dense = is_dense(root, c, l);
    if (L->dense) {
        if (T(L->sg, "mlp.gate_proj.weight", c->dense_ffn, d, 0) || T(L->su, "mlp.up_proj.weight", c->dense_ffn, d, 0) ||
            T(L->sd, "mlp.down_proj.weight", d, c->dense_ffn, 0))
            return rc;
        return mplb_expert_quantize(L->sg, L->su, L->sd, d, c->dense_ffn, MPLB_PREC_BF16, NULL, &L->shared, err);
    }
    const char *moe = FAM[c->family].moe;
    snprintf(n, sizeof n, "%s%s.gate.weight", pre, moe);
    if ((rc = get(ld, n, c->experts, d, 0, &L->router, err)) < 0) return rc;
    L->eg = calloc((size_t)c->experts, sizeof(float *));
    L->eu = calloc((size_t)c->experts, sizeof(float *));
    L->ed = calloc((size_t)c->experts, sizeof(float *));
    if (!L->eg || !L->eu || !L->ed) return mplb_err_set(err, MPLB_ENOMEM, "out of memory");
    for (int e = 0; e < c->experts; e++) {
        char ep[128];
        snprintf(ep, sizeof ep, "%s%s.experts.%d.", pre, moe, e);
#define X3(field, w, r, cc) (snprintf(n, sizeof n, "%s%s.weight", ep, w), (rc = get(ld, n, r, cc, 0, &(field), err)) < 0)
        if (X3(L->eg[e], FAM[c->family].g, c->ffn, d) || X3(L->eu[e], FAM[c->family].u, c->ffn, d) ||
            X3(L->ed[e], FAM[c->family].d, d, c->ffn))
            return rc;
#undef X3
    }
    if (c->shared_ffn > 0) {
        char sp[128];
        snprintf(sp, sizeof sp, "%s%s.%s.", pre, moe, FAM[c->family].shared);
#define S3(field, w, r, cc) (snprintf(n, sizeof n, "%s%s.weight", sp, w), (rc = get(ld, n, r, cc, 0, &(field), err)) < 0)
        if (S3(L->sg, "gate_proj", c->shared_ffn, d) || S3(L->su, "up_proj", c->shared_ffn, d) ||
            S3(L->sd, "down_proj", d, c->shared_ffn))
            return rc;
#undef S3
        if (FAM[c->family].sgate) {
            snprintf(n, sizeof n, "%s%s.%s.weight", pre, moe, FAM[c->family].sgate);
            if ((rc = get(ld, n, d, 0, 0, &L->sgate, err)) < 0) return rc;
        }
        return mplb_expert_quantize(L->sg, L->su, L->sd, d, c->shared_ffn, MPLB_PREC_BF16, NULL, &L->shared, err);
    }
#undef T
    return 0;
}

int mplb_lm_load(const char *dir_in, mplb_lm *m, mplb_err *err) {
    memset(m, 0, sizeof *m);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", dir_in);
    size_t dl = strlen(dir);
    if (dl > 12 && !strcmp(dir + dl - 12, ".safetensors")) {   /* a file: its directory */
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    }
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char cp[1100];
    snprintf(cp, sizeof cp, "%s/config.json", dir);
    char *txt;
    int rc = read_text(cp, &txt, err);
    if (rc < 0) return rc;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return mplb_err_set(err, MPLB_EFORMAT, "%s: not a JSON object", cp); }
    loader ld = {.m = m, .cfg_path = cp};
    if ((rc = parse_config(root, cp, &m->c, err)) < 0 || (rc = open_shards(&ld, dir, err)) < 0) goto out;
    const mplb_lm_config *c = &m->c;
    m->L = calloc((size_t)c->layers, sizeof *m->L);
    size_t nq = (size_t)c->layers * c->experts * MPLB_PREC_COUNT;
    m->q = calloc(nq, sizeof *m->q);
    m->have = calloc(nq, 1);
    if (!m->L || !m->q || !m->have) { rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", dir); goto out; }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if ((rc = get(&ld, "model.embed_tokens.weight", c->vocab, c->d, 0, &m->embed, err)) < 0 ||
        (rc = get(&ld, "model.norm.weight", c->d, 0, 0, &m->norm, err)) < 0 ||
        (rc = get(&ld, "lm_head.weight", c->vocab, c->d, cJSON_IsTrue(tie), &m->lm_head, err)) < 0)
        goto out;
    if (!m->lm_head) m->lm_head = m->embed;
    for (int l = 0; l < c->layers && rc == 0; l++) {
        rc = load_layer(&ld, root, l, err);
        if (rc < 0) mplb_err_wrap(err, "%s: layer %d", dir, l);
    }
out:
    for (int s = 0; s < ld.n_st; s++) mplb_st_close(&ld.st[s]);
    free(ld.st);
    cJSON_Delete(root);
    if (rc < 0) mplb_lm_free(m);
    return rc;
}

void mplb_lm_free(mplb_lm *m) {
    for (int l = 0; m->L && l < m->c.layers; l++) {
        free(m->L[l].eg); free(m->L[l].eu); free(m->L[l].ed);
        mplb_expert_free(&m->L[l].shared);
    }
    size_t nq = (size_t)m->c.layers * m->c.experts * MPLB_PREC_COUNT;
    for (size_t i = 0; m->q && i < nq; i++)
        if (m->have[i]) mplb_expert_free(&m->q[i]);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned); free(m->L); free(m->q); free(m->have);
    memset(m, 0, sizeof *m);
}
