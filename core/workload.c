/* Synthetic routing: see include/mplb/workload.h. */
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

/* xoshiro256** (Blackman & Vigna): integer-only, so every machine agrees. */
uint64_t mplb_rng_next(mplb_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

double mplb_rng_uniform(mplb_rng *r) { return (double)(mplb_rng_next(r) >> 11) * 0x1.0p-53; }

static void zipf_layer(mplb_rng *rng, int E, double s, double *pop, double *cdf) {
    int *perm = malloc((size_t)E * sizeof *perm);
    for (int i = 0; i < E; i++) perm[i] = i;
    for (int i = E - 1; i > 0; i--) {
        int j = (int)(mplb_rng_next(rng) % (uint64_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    double sum = 0;
    for (int i = 0; i < E; i++) { pop[perm[i]] = pow(i + 1.0, -s); sum += pop[perm[i]]; }
    double acc = 0;
    for (int e = 0; e < E; e++) { pop[e] /= sum; acc += pop[e]; cdf[e] = acc; }
    cdf[E - 1] = 1.0;
    free(perm);
}

int mplb_wl_init(mplb_wl *wl, const mplb_workload_cfg *cfg, const mplb_model *m,
                 int R, int gpus_per_node, uint64_t seed, mplb_err *err) {
    memset(wl, 0, sizeof *wl);
    wl->cfg = *cfg;
    wl->layers = m->layers; wl->E = m->experts; wl->k = m->top_k;
    wl->R = R; wl->gpus_per_node = gpus_per_node; wl->seed = seed;
    size_t n = (size_t)m->layers * m->experts;
    wl->cdf_text = malloc(n * sizeof(double));
    wl->cdf_vision = malloc(n * sizeof(double));
    wl->pop_text = malloc(n * sizeof(double));
    wl->pop_vision = malloc(n * sizeof(double));
    if (!wl->cdf_text || !wl->cdf_vision || !wl->pop_text || !wl->pop_vision) {
        mplb_wl_free(wl);
        return mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
    }
    mplb_rng rng;
    mplb_rng_seed(&rng, seed ^ 0x6d706c62ULL);
    for (int l = 0; l < m->layers; l++) {
        size_t o = (size_t)l * m->experts;
        zipf_layer(&rng, m->experts, cfg->zipf, wl->pop_text + o, wl->cdf_text + o);
        zipf_layer(&rng, m->experts, cfg->vision_zipf, wl->pop_vision + o, wl->cdf_vision + o);
    }
    return 0;
}

void mplb_wl_free(mplb_wl *wl) {
    free(wl->cdf_text); free(wl->cdf_vision); free(wl->pop_text); free(wl->pop_vision);
    memset(wl, 0, sizeof *wl);
}

static int draw(const double *cdf, int E, double u) {
    int lo = 0, hi = E - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] > u) hi = mid; else lo = mid + 1;
    }
    return lo;
}

int mplb_wl_generate(const mplb_wl *wl, int step, int layer, const mplb_placement *pl,
                     mplb_routing *rt, mplb_err *err) {
    if (layer < 0 || layer >= wl->layers || step < 0)
        return mplb_err_set(err, MPLB_ERANGE, "workload: step %d layer %d out of range", step, layer);
    mplb_routing_clear(rt);
    mplb_rng rng;
    mplb_rng_seed(&rng, wl->seed ^ ((uint64_t)step * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(layer + 1) << 40));
    int E = wl->E, k = wl->k;
    size_t o = (size_t)layer * E;
    int ids[64];
    float w[64];
    int64_t T = wl->cfg.tokens;
    for (int64_t t = 0; t < T; t++) {
        int src = (int)(t * wl->R / T);
        int vision = mplb_rng_uniform(&rng) < wl->cfg.vision_frac;
        const double *cdf = (vision ? wl->cdf_vision : wl->cdf_text) + o;
        const double *pop = (vision ? wl->pop_vision : wl->pop_text) + o;
        double mass = 0;
        for (int j = 0; j < k; j++) {
            int e, tries = 0, dup;
            do {
                e = draw(cdf, E, mplb_rng_uniform(&rng));
                dup = 0;
                for (int q = 0; q < j; q++) dup |= ids[q] == e;
            } while (dup && ++tries < 64);
            /* Very skewed layers can keep hitting chosen experts: take the
             * most popular one not yet chosen so the loop always ends. */
            if (dup) {
                double best = -1;
                for (int c = 0; c < E; c++) {
                    int used = 0;
                    for (int q = 0; q < j; q++) used |= ids[q] == c;
                    if (!used && pop[c] > best) { best = pop[c]; e = c; }
                }
            }
            ids[j] = e;
            w[j] = (float)pop[e];
            mass += pop[e];
        }
        for (int j = 0; j < k; j++) w[j] = (float)(w[j] / mass);
        mplb_routing_add_token(rt, pl, wl->gpus_per_node, src, vision, ids, w);
    }
    return 0;
}
