/* The MoE decoder's forward pass: see include/mplb/accuracy.h.
 * Projections by OpenBLAS sgemm over all N tokens; attention per (sequence,
 * head); routed experts gather their tokens and run through mplb_ffn_forward. */
#include "mplb/accuracy.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mplb_lm_run_free(mplb_lm_run *r) {
    free(r->x); free(r->h); free(r->q); free(r->k); free(r->v); free(r->o); free(r->p); free(r->y);
    free(r->xe); free(r->ye); free(r->cos); free(r->sin); free(r->topk); free(r->topw);
    free(r->counts); free(r->mass); free(r->order);
    mplb_ffn_ws_free(&r->ws);
    memset(r, 0, sizeof *r);
}

int mplb_lm_run_init(mplb_lm_run *r, mplb_lm *m, int S, int T, mplb_err *err) {
    memset(r, 0, sizeof *r);
    const mplb_lm_config *c = &m->c;
    if (S < 1 || T < 1) return mplb_err_set(err, MPLB_EINVAL, "lm: %d sequences of %d tokens", S, T);
    r->m = m; r->S = S; r->T = T; r->N = S * T;
    size_t N = (size_t)r->N, d = (size_t)c->d, qd = (size_t)c->heads * c->head_dim, kd = (size_t)c->kv_heads * c->head_dim;
    size_t wide = (size_t)c->ffn > (size_t)c->shared_ffn ? (size_t)c->ffn : (size_t)c->shared_ffn;
    if ((size_t)c->dense_ffn > wide) wide = (size_t)c->dense_ffn;
    r->x = malloc(N * d * sizeof(float));
    r->h = malloc(N * d * sizeof(float));
    r->q = malloc(N * qd * sizeof(float));
    r->k = malloc(N * kd * sizeof(float));
    r->v = malloc(N * kd * sizeof(float));
    r->o = malloc(N * qd * sizeof(float));
    r->p = malloc((size_t)T * T * sizeof(float));
    r->y = malloc(N * d * sizeof(float));
    r->xe = malloc(N * d * sizeof(float));
    r->ye = malloc(N * d * sizeof(float));
    r->cos = malloc((size_t)T * c->head_dim / 2 * sizeof(float));
    r->sin = malloc((size_t)T * c->head_dim / 2 * sizeof(float));
    r->topk = malloc(N * c->top_k * sizeof(int));
    r->topw = malloc(N * c->top_k * sizeof(float));
    r->counts = calloc((size_t)c->experts, sizeof(double));
    r->mass = calloc((size_t)c->experts, sizeof(double));
    r->order = malloc((N * c->top_k + (size_t)c->experts + 1) * sizeof(int));
    (void)wide;
    if (!r->x || !r->h || !r->q || !r->k || !r->v || !r->o || !r->p || !r->y || !r->xe || !r->ye || !r->cos || !r->sin ||
        !r->topk || !r->topw || !r->counts || !r->mass || !r->order) {
        mplb_lm_run_free(r);
        return mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory for %d x %d tokens", S, T);
    }
    /* RoPE tables as HF computes them: inv_freq = theta^(-2i/hd), angle = t * inv_freq */
    int half = c->head_dim / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double a = t * pow(c->rope_theta, -2.0 * i / c->head_dim);
            r->cos[t * half + i] = (float)cos(a);
            r->sin[t * half + i] = (float)sin(a);
        }
    return 0;
}

int mplb_lm_begin(mplb_lm_run *r, const int32_t *tokens, mplb_err *err) {
    const mplb_lm_config *c = &r->m->c;
    for (int i = 0; i < r->N; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return mplb_err_set(err, MPLB_ERANGE, "lm: token %d at position %d is outside the vocabulary [0, %d)", tokens[i], i, c->vocab);
        memcpy(r->x + (size_t)i * c->d, r->m->embed + (size_t)tokens[i] * c->d, (size_t)c->d * sizeof(float));
    }
    return 0;
}

/* out[n x len] = RMSNorm of x over each group of len, times g[len] (g may cycle: g_len < len per group) */
static void rmsnorm(const float *x, float *out, int64_t rows, int len, const float *g, double eps) {
    for (int64_t i = 0; i < rows; i++) {
        const float *a = x + i * len;
        double ss = 0;
        for (int j = 0; j < len; j++) ss += (double)a[j] * a[j];
        float inv = (float)(1.0 / sqrt(ss / len + eps));
        for (int j = 0; j < len; j++) out[i * len + j] = a[j] * inv * g[j];
    }
}

/* out[N x rows] = in[N x cols] . W^T (+ b) */
static void linear(const float *in, int N, int cols, const float *W, int rows, const float *b, float *out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, cols, 1.0f, in, cols, W, cols, 0.0f, out, rows);
    if (b)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < rows; j++) out[(size_t)i * rows + j] += b[j];
}

static void rope(float *x, int N, int T, int heads, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int i = 0; i < N; i++) {
        int t = i % T;
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)i * heads + h) * hd;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half], c = cs[t * half + j], s = sn[t * half + j];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
    }
}

static void attention(mplb_lm_run *r, const mplb_lm_layer *L) {
    const mplb_lm_config *c = &r->m->c;
    int T = r->T, H = c->heads, hd = c->head_dim, rep = c->heads / c->kv_heads;
    int qd = H * hd, kd = c->kv_heads * hd;
    linear(r->h, r->N, c->d, L->wq, qd, L->bq, r->q);
    linear(r->h, r->N, c->d, L->wk, kd, L->bk, r->k);
    linear(r->h, r->N, c->d, L->wv, kd, L->bv, r->v);
    if (L->qn) {   /* QK norm: per head (Qwen3) or over the projection (OLMoE), before OLMoE's clip */
        int per_head = c->family == MPLB_LM_QWEN3MOE;
        rmsnorm(r->q, r->q, per_head ? (int64_t)r->N * H : r->N, per_head ? hd : qd, L->qn, c->eps);
        rmsnorm(r->k, r->k, per_head ? (int64_t)r->N * c->kv_heads : r->N, per_head ? hd : kd, L->kn, c->eps);
    }
    if (c->clip_qkv > 0) {
        float cl = (float)c->clip_qkv;
        for (size_t i = 0; i < (size_t)r->N * qd; i++) r->q[i] = fminf(fmaxf(r->q[i], -cl), cl);
        for (size_t i = 0; i < (size_t)r->N * kd; i++) {
            r->k[i] = fminf(fmaxf(r->k[i], -cl), cl);
            r->v[i] = fminf(fmaxf(r->v[i], -cl), cl);
        }
    }
    rope(r->q, r->N, T, H, hd, r->cos, r->sin);
    rope(r->k, r->N, T, c->kv_heads, hd, r->cos, r->sin);
    float scale = 1.0f / sqrtf((float)hd);
    for (int s = 0; s < r->S; s++)
        for (int h = 0; h < H; h++) {
            const float *q = r->q + (size_t)s * T * qd + (size_t)h * hd;
            const float *k = r->k + (size_t)s * T * kd + (size_t)(h / rep) * hd;
            const float *v = r->v + (size_t)s * T * kd + (size_t)(h / rep) * hd;
            float *o = r->o + (size_t)s * T * qd + (size_t)h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, qd, k, kd, 0.0f, r->p, T);
            for (int i = 0; i < T; i++) {   /* causal softmax of row i over j <= i */
                float *row = r->p + (size_t)i * T, mx = row[0];
                for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0;
                for (int j = 0; j <= i; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
                for (int j = 0; j <= i; j++) row[j] = (float)(row[j] / sum);
                for (int j = i + 1; j < T; j++) row[j] = 0;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, r->p, T, v, kd, 0.0f, o, qd);
        }
    linear(r->o, r->N, qd, L->wo, c->d, NULL, r->y);
    for (size_t i = 0; i < (size_t)r->N * c->d; i++) r->x[i] += r->y[i];
}

/* softmax over the experts, top-k (ties to the lower index), optional renormalisation */
static void route(mplb_lm_run *r, const mplb_lm_layer *L) {
    const mplb_lm_config *c = &r->m->c;
    int E = c->experts, K = c->top_k;
    float *lg = malloc((size_t)E * sizeof(float));
    memset(r->counts, 0, (size_t)E * sizeof(double));
    memset(r->mass, 0, (size_t)E * sizeof(double));
    for (int i = 0; i < r->N && lg; i++) {
        linear(r->h + (size_t)i * c->d, 1, c->d, L->router, E, NULL, lg);
        float mx = lg[0];
        for (int e = 1; e < E; e++) mx = lg[e] > mx ? lg[e] : mx;
        double sum = 0;
        for (int e = 0; e < E; e++) sum += exp((double)lg[e] - mx);
        int *ids = r->topk + (size_t)i * K;
        float *w = r->topw + (size_t)i * K;
        double wsum = 0;
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int used = 0;
                for (int u = 0; u < j; u++) used |= ids[u] == e;
                if (!used && (best < 0 || lg[e] > lg[best])) best = e;
            }
            ids[j] = best;
            w[j] = (float)(exp((double)lg[best] - mx) / sum);
            wsum += w[j];
        }
        for (int j = 0; j < K; j++) {
            if (c->norm_topk) w[j] = (float)(w[j] / wsum);
            w[j] *= (float)c->routed_scale;
            r->counts[ids[j]] += 1;
            r->mass[ids[j]] += w[j];
        }
    }
    free(lg);
}

int mplb_lm_route(mplb_lm_run *r, int l, mplb_err *err) {
    const mplb_lm_config *c = &r->m->c;
    if (l < 0 || l >= c->layers) return mplb_err_set(err, MPLB_EINVAL, "lm: layer %d of %d", l, c->layers);
    const mplb_lm_layer *L = &r->m->L[l];
    rmsnorm(r->x, r->h, r->N, c->d, L->ln1, c->eps);
    attention(r, L);
    rmsnorm(r->x, r->h, r->N, c->d, L->ln2, c->eps);
    if (!L->dense) route(r, L);
    if (!L->dense && !r->topw) return mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory");
    return 0;
}

static const mplb_expert_w *packed(mplb_lm *m, int l, int e, mplb_prec p, mplb_err *err) {
    size_t i = ((size_t)l * m->c.experts + e) * MPLB_PREC_COUNT + p;
    if (!m->have[i]) {
        const mplb_lm_layer *L = &m->L[l];
        if (mplb_expert_quantize(L->eg[e], L->eu[e], L->ed[e], m->c.d, m->c.ffn, p, NULL, &m->q[i], err) < 0) return NULL;
        m->have[i] = 1;
    }
    return &m->q[i];
}

/* y[n x d] += sigmoid(x . g) * FFN(x) for the shared expert (gate NULL: 1) */
static int shared_ffn(mplb_lm_run *r, const mplb_lm_layer *L, mplb_err *err) {
    const mplb_lm_config *c = &r->m->c;
    int rc = mplb_ffn_forward(&L->shared, r->h, r->N, MPLB_PREC_BF16, r->ye, &r->ws, err);
    if (rc < 0) return rc;
    for (int i = 0; i < r->N; i++) {
        float g = 1;
        if (L->sgate) {
            double z = 0;
            for (int j = 0; j < c->d; j++) z += (double)L->sgate[j] * r->h[(size_t)i * c->d + j];
            g = (float)(1.0 / (1.0 + exp(-z)));
        }
        for (int j = 0; j < c->d; j++) r->y[(size_t)i * c->d + j] += g * r->ye[(size_t)i * c->d + j];
    }
    return 0;
}

int mplb_lm_experts(mplb_lm_run *r, int l, const mplb_prec *prec, mplb_lm_acts acts, int skip, mplb_err *err) {
    mplb_lm *m = r->m;
    const mplb_lm_config *c = &m->c;
    if (l < 0 || l >= c->layers) return mplb_err_set(err, MPLB_EINVAL, "lm: layer %d of %d", l, c->layers);
    const mplb_lm_layer *L = &m->L[l];
    int E = c->experts, K = c->top_k, d = c->d, rc = 0;
    memset(r->y, 0, (size_t)r->N * d * sizeof(float));
    if (L->dense || L->sg) rc = shared_ffn(r, L, err);
    for (int e = 0; e < E && rc == 0 && !L->dense; e++) {
        if (e == skip) continue;
        mplb_prec p = prec ? prec[e] : MPLB_PREC_BF16;
        if (p < 0 || p >= MPLB_PREC_COUNT) return mplb_err_set(err, MPLB_EINVAL, "lm: layer %d expert %d: precision %d", l, e, (int)p);
        int n = 0;   /* gather expert e's tokens: (token, slot) pairs */
        for (int i = 0; i < r->N; i++)
            for (int j = 0; j < K; j++)
                if (r->topk[(size_t)i * K + j] == e) {
                    r->order[n] = i * K + j;
                    memcpy(r->xe + (size_t)n * d, r->h + (size_t)i * d, (size_t)d * sizeof(float));
                    n++;
                }
        if (n == 0) continue;
        const mplb_expert_w *w = packed(m, l, e, p, err);
        if (!w) return err->code;
        if ((rc = mplb_ffn_forward(w, r->xe, n, mplb_lm_act_prec(p, acts), r->ye, &r->ws, err)) < 0) break;
        for (int t = 0; t < n; t++) {
            int i = r->order[t] / K, slot = r->order[t] % K;
            float g = r->topw[(size_t)i * K + slot];
            if (skip >= 0) {   /* ablation: the remaining gates renormalised as the router would */
                const int *ids = r->topk + (size_t)i * K;
                const float *ws = r->topw + (size_t)i * K;
                float kept = 0, all = 0;
                for (int u = 0; u < K; u++) { all += ws[u]; if (ids[u] != skip) kept += ws[u]; }
                if (c->norm_topk && kept > 0) g *= all / kept;
            }
            for (int j = 0; j < d; j++) r->y[(size_t)i * d + j] += g * r->ye[(size_t)t * d + j];
        }
    }
    if (rc < 0) return mplb_err_wrap(err, "lm: layer %d", l);
    for (size_t i = 0; i < (size_t)r->N * d; i++) r->x[i] += r->y[i];
    return 0;
}

int mplb_lm_logits(mplb_lm_run *r, float *logits, mplb_err *err) {
    (void)err;
    const mplb_lm_config *c = &r->m->c;
    rmsnorm(r->x, r->h, r->N, c->d, r->m->norm, c->eps);
    linear(r->h, r->N, c->d, r->m->lm_head, c->vocab, NULL, logits);
    return 0;
}

int mplb_lm_forward(mplb_lm_run *r, const int32_t *tokens, const mplb_prec *prec, mplb_lm_acts acts, float *logits,
                    mplb_err *err) {
    int rc = mplb_lm_begin(r, tokens, err);
    for (int l = 0; l < r->m->c.layers && rc == 0; l++) {
        if ((rc = mplb_lm_route(r, l, err)) < 0) break;
        rc = mplb_lm_experts(r, l, prec ? prec + (size_t)l * r->m->c.experts : NULL, acts, -1, err);
    }
    return rc < 0 ? rc : mplb_lm_logits(r, logits, err);
}

int mplb_lm_eval(const char *dir, const int32_t *tokens, int S, int T, const int32_t *prec, int acts, float *logits,
                 mplb_err *err) {
    mplb_lm m;
    mplb_lm_run r;
    int rc = mplb_lm_load(dir, &m, err);
    if (rc < 0) return rc;
    mplb_prec *p = NULL;
    size_t n = (size_t)m.c.layers * m.c.experts;
    if (prec && !(p = malloc(n * sizeof *p))) rc = mplb_err_set(err, MPLB_ENOMEM, "lm: out of memory");
    for (size_t i = 0; p && i < n; i++) {
        if (prec[i] < 0 || prec[i] >= MPLB_PREC_COUNT) { rc = mplb_err_set(err, MPLB_EINVAL, "lm: precision %d at %zu", prec[i], i); break; }
        p[i] = (mplb_prec)prec[i];
    }
    if (rc == 0 && (rc = mplb_lm_run_init(&r, &m, S, T, err)) == 0) {
        rc = mplb_lm_forward(&r, tokens, p, acts ? MPLB_LM_ACTS_BF16 : MPLB_LM_ACTS_MATCHED, logits, err);
        mplb_lm_run_free(&r);
    }
    free(p);
    mplb_lm_free(&m);
    return rc;
}
