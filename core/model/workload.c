/* Synthetic and trace routing: see include/mplb/workload.h. */
#include "mplb/workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mplb_rng_seed(mplb_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna): integer-only, so every machine agrees.
 * Inline for the sampling loop: an exported function is not inlined into
 * its own file in a -fPIC build. */
static inline uint64_t rng_next(mplb_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

static inline double rng_uniform(mplb_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t mplb_rng_next(mplb_rng *r) { return rng_next(r); }

double mplb_rng_uniform(mplb_rng *r) { return rng_uniform(r); }

static void shuffle(mplb_rng *rng, int *perm, int E) {
    for (int i = E - 1; i > 0; i--) {
        int j = (int)(mplb_rng_next(rng) % (uint64_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* Vose's alias method over pop[0..n). */
static void build_alias(const double *pop, int n, double *prob, int32_t *alias, int *work) {
    int *small = work, *large = work + n, ns = 0, nl = 0;
    double *scaled = prob;
    for (int i = 0; i < n; i++) {
        scaled[i] = pop[i] * n;
        if (scaled[i] < 1) small[ns++] = i; else large[nl++] = i;
        alias[i] = i;
    }
    while (ns && nl) {
        int s = small[--ns], l = large[--nl];
        alias[s] = l;
        scaled[l] = scaled[l] + scaled[s] - 1;
        if (scaled[l] < 1) small[ns++] = l; else large[nl++] = l;
    }
    while (nl) prob[large[--nl]] = 1;
    while (ns) prob[small[--ns]] = 1;
}

/* The sorted (descending) loads of the trace layer nearest to `layer`,
 * resampled to E values, as the popularity shape. */
static int trace_shape(const mplb_trace *t, int layer, int layers, int E, double *shape) {
    int tl = layers > 1 ? (int)lround((double)layer * (t->layers - 1) / (layers - 1)) : 0;
    int Et = t->experts;
    double *agg = calloc((size_t)Et, sizeof *agg);
    if (!agg) return -1;
    for (int s = 0; s < t->steps; s++)
        for (int e = 0; e < Et; e++) agg[e] += t->counts[((size_t)s * t->layers + tl) * Et + e];
    for (int i = 1; i < Et; i++)   /* insertion sort, descending: Et is small */
        for (int j = i; j > 0 && agg[j] > agg[j - 1]; j--) { double x = agg[j]; agg[j] = agg[j - 1]; agg[j - 1] = x; }
    for (int i = 0; i < E; i++) shape[i] = agg[(size_t)i * Et / E] + 0.5; /* +0.5: no expert is never chosen */
    free(agg);
    return 0;
}

/* A standard normal (Box-Muller; one of the pair). */
static double normal(mplb_rng *rng) {
    double u = 1.0 - mplb_rng_uniform(rng), v = mplb_rng_uniform(rng);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Log-normal base popularity (the data-fitted default): log-shares
 * sigma * g with g standard normal, carried from layer to layer with
 * correlation layer_corr (g_l = c g_{l-1} + sqrt(1 - c^2) e). */
static void lognormal_pop(double *pop, double *g, int first, double c, double sigma, int E, mplb_rng *rng) {
    double sum = 0, keep = first ? 0 : c, fresh = sqrt(1 - keep * keep);
    for (int e = 0; e < E; e++) {
        g[e] = keep * g[e] + fresh * normal(rng);
        pop[e] = exp(sigma * g[e]);
        sum += pop[e];
    }
    for (int e = 0; e < E; e++) pop[e] /= sum;
}

/* Fitted base shares (workload.popularity): row of the nearest fitted layer. */
static void fitted_pop(double *pop, const mplb_workload_cfg *c, int layer, int layers, int E) {
    int r = layers > 1 ? (int)lround((double)layer * (c->pop_layers - 1) / (layers - 1)) : 0;
    for (int e = 0; e < E; e++) pop[e] = c->popularity[(size_t)r * E + e] + 1e-12; /* every expert reachable */
}

static void fill_pop(double *pop, const int *perm, const double *shape, int E, double s) {
    double sum = 0;
    for (int i = 0; i < E; i++) { pop[perm[i]] = shape ? shape[i] : pow(i + 1.0, -s); sum += pop[perm[i]]; }
    for (int e = 0; e < E; e++) pop[e] /= sum;
}

int mplb_wl_init(mplb_wl *wl, const mplb_workload_cfg *cfg, const mplb_model *m,
                 int R, int gpus_per_node, uint64_t seed, mplb_err *err) {
    memset(wl, 0, sizeof *wl);
    wl->cfg = *cfg;
    if (wl->cfg.families < 1) wl->cfg.families = 1;
    if (wl->cfg.prefill_every < 1) wl->cfg.prefill_every = 1;
    if (wl->cfg.drift_period < 1) wl->cfg.drift_period = 50;
    wl->layers = m->layers; wl->E = m->experts; wl->k = m->top_k;
    wl->R = R; wl->gpus_per_node = gpus_per_node; wl->seed = seed;
    wl->F = wl->cfg.families;
    int rc;
    if (strcmp(cfg->kind, "trace") == 0) {
        wl->trace = calloc(1, sizeof *wl->trace);
        if (!wl->trace) return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
        if ((rc = mplb_trace_read(cfg->file, wl->trace, err)) < 0) { free(wl->trace); wl->trace = NULL; return rc; }
        const mplb_trace *t = wl->trace;
        const char *why = t->experts != m->experts ? "experts" : t->top_k != m->top_k ? "top_k" :
                          t->layers < m->layers ? "layers" : t->steps < cfg->steps ? "steps" : NULL;
        if (why) {
            rc = mplb_err_set(err, MPLB_ECONFIG, "%s: the trace has %d steps, %d layers, %d experts, top-%d; the experiment "
                              "asks for %d steps, %d layers, %d experts, top-%d (%s do not fit)", cfg->file, t->steps, t->layers,
                              t->experts, t->top_k, cfg->steps, m->layers, m->experts, m->top_k, why);
            mplb_wl_free(wl);
            return rc;
        }
        return 0;
    }
    int F = wl->F, L = m->layers, E = m->experts;
    if (cfg->popularity && cfg->pop_experts != E)
        return mplb_err_set(err, MPLB_ECONFIG, "workload.popularity: rows have %d experts, the model has %d",
                            cfg->pop_experts, E);
    if (cfg->step_sigma > 0 || cfg->layer_sigma) {
        if (!(wl->layer_sigma = malloc((size_t)L * sizeof *wl->layer_sigma)))
            return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
        for (int l = 0; l < L; l++) {
            int r = cfg->layer_sigma && L > 1 ? (int)lround((double)l * (cfg->pop_layers - 1) / (L - 1)) : 0;
            wl->layer_sigma[l] = cfg->layer_sigma ? cfg->layer_sigma[r] : cfg->step_sigma;
        }
    }
    wl->cfg.popularity = NULL;   /* owned by the experiment: used here only */
    wl->cfg.layer_sigma = NULL;
    size_t n = (size_t)(F + 1) * L * E;
    wl->pop = malloc(n * sizeof(double));
    wl->prob = malloc(n * sizeof(double));
    wl->alias = malloc(n * sizeof(int32_t));
    int *perm = malloc((size_t)E * sizeof *perm), *work = malloc(2 * (size_t)E * sizeof *work);
    double *shape = NULL, *g = calloc((size_t)E, sizeof *g);
    int lognormal = isnan(cfg->zipf) && !cfg->popularity && !cfg->skew_from[0];
    mplb_trace skew;
    memset(&skew, 0, sizeof skew);
    if (cfg->skew_from[0]) {
        if ((rc = mplb_trace_read(cfg->skew_from, &skew, err)) < 0) {
            free(perm); free(work); free(g); mplb_wl_free(wl);
            return mplb_err_set(err, rc, "workload.skew_from: %s", err->msg);
        }
        shape = malloc((size_t)E * sizeof *shape);
    }
    if (!wl->pop || !wl->prob || !wl->alias || !perm || !work || !g || (cfg->skew_from[0] && !shape)) {
        free(perm); free(work); free(shape); free(g); mplb_trace_free(&skew); mplb_wl_free(wl);
        return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
    }
    mplb_rng rng;
    mplb_rng_seed(&rng, seed ^ 0x6d706c62ULL);
    /* families 0..F-1 (text), then F (vision); each walks its layers */
    for (int f = 0; f <= F; f++) {
        for (int i = 0; i < E; i++) perm[i] = i;
        shuffle(&rng, perm, E);
        for (int l = 0; l < L; l++) {
            if (l > 0) {
                if (wl->cfg.layer_corr <= 0) shuffle(&rng, perm, E);
                else {
                    int swaps = (int)lround((1 - wl->cfg.layer_corr) * E);
                    for (int q = 0; q < swaps; q++) {
                        int a = (int)(mplb_rng_next(&rng) % (uint64_t)E), b = (int)(mplb_rng_next(&rng) % (uint64_t)E);
                        int tmp = perm[a]; perm[a] = perm[b]; perm[b] = tmp;
                    }
                }
            }
            size_t o = ((size_t)f * L + l) * E;
            if (shape && f < F) trace_shape(&skew, l, L, E, shape);
            if (f < F && cfg->popularity) fitted_pop(wl->pop + o, cfg, l, L, E);
            else if (f < F && lognormal) lognormal_pop(wl->pop + o, g, l == 0, cfg->layer_corr, cfg->pop_sigma, E, &rng);
            else fill_pop(wl->pop + o, perm, f < F ? shape : NULL, E, f < F ? wl->cfg.zipf : wl->cfg.vision_zipf);
            build_alias(wl->pop + o, E, wl->prob + o, wl->alias + o, work);
        }
    }
    free(perm); free(work); free(shape); free(g);
    mplb_trace_free(&skew);
    return 0;
}

void mplb_wl_free(mplb_wl *wl) {
    free(wl->pop); free(wl->prob); free(wl->alias); free(wl->layer_sigma);
    if (wl->trace) { mplb_trace_free(wl->trace); free(wl->trace); }
    memset(wl, 0, sizeof *wl);
}

int mplb_wl_is_decode(const mplb_wl *wl, int step) {
    if (wl->trace) return wl->trace->is_decode ? wl->trace->is_decode[step] : 0;
    return step % wl->cfg.prefill_every != 0;
}

int64_t mplb_wl_tokens(const mplb_wl *wl, int step) {
    return mplb_wl_is_decode(wl, step) ? wl->cfg.decode_tokens : wl->cfg.tokens;
}

/* experts whose chosen-set bitmap lives on the stack */
#define MPLB_MAX_EXPERTS_BITS 1024

static inline int draw(const double *prob, const int32_t *alias, int E, mplb_rng *rng) {
    uint64_t r = rng_next(rng);
    int i = (int)(((r >> 32) * (uint64_t)E) >> 32);   /* Lemire's multiply-shift, no division */
    double u = (double)(r & 0xFFFFFFFFu) * 0x1.0p-32;
    /* branch-free: the comparison is a coin flip the predictor cannot learn */
    int a = alias[i], keep = -(u < prob[i]);
    return (i & keep) | (a & ~keep);
}

/* The vision popularity of (step, layer): the static base times
 * exp(sigma * z_e), z standard normal drawn afresh for each (step, layer)
 * (independent of the token draws), renormalised; sigma 0 = the base. */
static void vision_pop(const mplb_wl *wl, int step, int layer, double sigma, double *pop) {
    int E = wl->E;
    const double *base = wl->pop + ((size_t)wl->F * wl->layers + layer) * E;
    if (sigma <= 0) { memcpy(pop, base, (size_t)E * sizeof *pop); return; }
    mplb_rng rng;
    mplb_rng_seed(&rng, wl->seed ^ 0x76697369ULL ^ ((uint64_t)step * 0xbf58476d1ce4e5b9ULL) ^ ((uint64_t)(layer + 1) << 32));
    double sum = 0;
    for (int e = 0; e < E; e++) { pop[e] = base[e] * exp(sigma * normal(&rng)); sum += pop[e]; }
    for (int e = 0; e < E; e++) pop[e] /= sum;
}

int mplb_wl_generate(const mplb_wl *wl, int step, int layer, const mplb_placement *pl,
                     mplb_routing *rt, mplb_err *err) {
    if (layer < 0 || layer >= wl->layers || step < 0)
        return mplb_err_set(err, MPLB_ERANGE, "workload: step %d layer %d out of range", step, layer);
    if (wl->trace) return mplb_trace_routing(wl->trace, step, layer, pl, wl->gpus_per_node, rt, err);
    mplb_routing_clear(rt);
    mplb_rng rng;
    mplb_rng_seed(&rng, wl->seed ^ ((uint64_t)step * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(layer + 1) << 40));
    int E = wl->E, k = wl->k, F = wl->F, L = wl->layers;
    int decode = mplb_wl_is_decode(wl, step);
    int64_t T = decode ? wl->cfg.decode_tokens : wl->cfg.tokens;
    /* the family mix of this step: cumulative weights */
    double cum[65], tot = 0;
    for (int f = 0; f < F; f++) {
        double w = 1 + wl->cfg.drift * sin(6.283185307179586 * ((double)step / wl->cfg.drift_period + (double)f / F));
        tot += w > 0 ? w : 0;
        cum[f] = tot;
    }
    /* tables of this layer: static, or the step's fluctuated text
     * popularity (families 0..F-1) and, with vision_sigma, the step's
     * vision popularity (other images route to other experts) built here */
    const double *tab_pop = wl->pop, *tab_prob = wl->prob;
    const int32_t *tab_alias = wl->alias;
    size_t fstride = (size_t)L * E, loff = (size_t)layer * E;
    double *cell = NULL;
    double vsig = decode ? 0 : wl->cfg.vision_sigma;
    if (wl->layer_sigma || vsig > 0) {
        cell = malloc((size_t)(F + 1) * E * (2 * sizeof(double) + sizeof(int32_t)) + 2 * (size_t)E * sizeof(int));
        if (!cell) return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
        double *cprob = cell + (size_t)(F + 1) * E;
        int32_t *calias = (int32_t *)(cprob + (size_t)(F + 1) * E);
        int *work = (int *)(calias + (size_t)(F + 1) * E);
        for (int f = 0; f <= F; f++) {
            double *cp = cell + (size_t)f * E;
            if (f < F) mplb_wl_cell_pop(wl, step, layer, f, cp);
            else vision_pop(wl, step, layer, vsig, cp);
            build_alias(cp, E, cprob + (size_t)f * E, calias + (size_t)f * E, work);
        }
        tab_pop = cell; tab_prob = cprob; tab_alias = calias;
        fstride = (size_t)E; loff = 0;
    }
    int ids[64];
    float w[64];
    /* experts already chosen for this token, one bit each (cleared after
     * the token through its ids): the duplicate test is one load, not a
     * scan of the earlier choices */
    uint64_t chosen[(MPLB_MAX_EXPERTS_BITS + 63) / 64] = {0};
    uint64_t *big = E > MPLB_MAX_EXPERTS_BITS ? calloc(((size_t)E + 63) / 64, sizeof *big) : NULL;
    if (E > MPLB_MAX_EXPERTS_BITS && !big) { free(cell); return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory"); }
    uint64_t *bits = big ? big : chosen;
    for (int64_t t = 0; t < T; t++) {
        int src = (int)(t * wl->R / T);
        int vision = !decode && wl->cfg.vision_frac > 0 && rng_uniform(&rng) < wl->cfg.vision_frac;
        int f = F;
        if (!vision) {
            if (F == 1) f = 0;
            else if (wl->cfg.src_affinity > 0 && rng_uniform(&rng) < wl->cfg.src_affinity)
                f = (src / wl->gpus_per_node) % F;
            else {
                double u = rng_uniform(&rng) * tot;
                for (f = 0; f < F - 1 && cum[f] <= u; f++) {}
            }
        }
        size_t o = (size_t)f * fstride + loff;
        const double *pop = tab_pop + o, *prob = tab_prob + o;
        const int32_t *alias = tab_alias + o;
        double mass = 0;
        for (int j = 0; j < k; j++) {
            /* k distinct experts by rejection: redraw a chosen one (the
             * successive sampling without replacement the cost model and
             * the statistical test in tests/test_run.c assume) */
            int e, tries = 0, dup;
            do {
                e = draw(prob, alias, E, &rng);
                dup = (int)(bits[e >> 6] >> (e & 63)) & 1;
            } while (dup && ++tries < 64);
            /* very skewed layers can keep hitting chosen experts: take the
             * most popular one not yet chosen so the loop always ends */
            if (dup) {
                double best = -1;
                for (int c = 0; c < E; c++)
                    if (!((bits[c >> 6] >> (c & 63)) & 1) && pop[c] > best) { best = pop[c]; e = c; }
            }
            bits[e >> 6] |= 1ULL << (e & 63);
            ids[j] = e;
            w[j] = (float)pop[e];
            mass += pop[e];
        }
        for (int j = 0; j < k; j++) {
            w[j] = (float)(w[j] / mass);
            bits[ids[j] >> 6] = 0;
        }
        mplb_routing_add_token(rt, pl, wl->gpus_per_node, src, vision, ids, w);
    }
    free(big);
    free(cell);
    return 0;
}
