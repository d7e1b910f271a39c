/* The synthetic workload's time structure (see include/mplb/workload.h):
 * a step's text popularity is the base popularity times exp(sigma * z),
 * where z is a standard normal vector per (layer, regime) that jumps at
 * regime changes and, within a regime, rotates smoothly to a fresh vector
 * every wander_period steps (z = cos(th) K_j + sin(th) K_{j+1} keeps every
 * z standard normal while consecutive steps stay correlated). Regime changes
 * are shared by all layers (the request mix changed) and are a Bernoulli
 * draw per step from (seed, step) alone, so a cell is regenerated from
 * (seed, step, layer) without the steps before it: the regime start is found
 * by scanning back to the last change (1 / regime_rate steps on average).
 */
#include "mplb/workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The first step of the regime that step belongs to. */
static int regime_start(const mplb_wl *wl, int step) {
    double q = wl->cfg.regime_rate;
    if (q <= 0) return 0;
    if (q >= 1) return step;
    uint64_t thr = (uint64_t)(q * 18446744073709551616.0);
    for (int r = step; r > 0; r--)
        if (mix64(wl->seed ^ 0x7265676dULL ^ ((uint64_t)r * 0x9e3779b97f4a7c15ULL)) < thr) return r;
    return 0;
}

/* Knot j of regime r in layer: E standard normals. */
static void knot(const mplb_wl *wl, int layer, int r, int j, double *z) {
    mplb_rng rng;
    mplb_rng_seed(&rng, mix64(wl->seed ^ 0x6b6e6f74ULL ^ ((uint64_t)(layer + 1) << 44) ^
                              ((uint64_t)r * 0xd1342543de82ef95ULL) ^ ((uint64_t)j << 20)));
    for (int e = 0; e < wl->E; e++) {
        double u = 1.0 - mplb_rng_uniform(&rng), v = mplb_rng_uniform(&rng);
        z[e] = sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
    }
}

void mplb_wl_cell_pop(const mplb_wl *wl, int step, int layer, int f, double *pop) {
    int E = wl->E, L = wl->layers, P = wl->cfg.wander_period;
    const double *base = wl->pop + ((size_t)f * L + layer) * E;
    double sigma = wl->layer_sigma ? wl->layer_sigma[layer] : 0;
    double *z = malloc(2 * (size_t)E * sizeof *z);
    if (!z || sigma <= 0) {   /* no fluctuation (or no memory: the base is still a valid popularity) */
        memcpy(pop, base, (size_t)E * sizeof *pop);
        free(z);
        return;
    }
    int r = regime_start(wl, step), d = step - r;
    knot(wl, layer, r, P > 0 ? d / P : 0, z);
    if (P > 0 && d % P) {
        double th = 1.5707963267948966 * (d % P) / P, c = cos(th), s = sin(th);
        knot(wl, layer, r, d / P + 1, z + E);
        for (int e = 0; e < E; e++) z[e] = c * z[e] + s * z[E + e];
    }
    double sum = 0;
    for (int e = 0; e < E; e++) { pop[e] = base[e] * exp(sigma * z[e]); sum += pop[e]; }
    for (int e = 0; e < E; e++) pop[e] /= sum;
    free(z);
}

int mplb_wl_to_trace(const mplb_workload_cfg *cfg, const mplb_model *m, int steps, uint64_t seed,
                     mplb_trace *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    mplb_workload_cfg c = *cfg;
    c.steps = steps;
    mplb_wl wl;
    mplb_placement pl;
    mplb_routing rt;
    int rc = mplb_wl_init(&wl, &c, m, 1, 1, seed, err);
    if (rc < 0) return rc;
    memset(&pl, 0, sizeof pl);
    memset(&rt, 0, sizeof rt);
    int L = m->layers, E = m->experts;
    out->steps = steps; out->layers = L; out->experts = E; out->top_k = m->top_k;
    snprintf(out->model, sizeof out->model, "synthetic (%.40s)", m->name);
    out->counts = malloc((size_t)steps * L * E * sizeof *out->counts);
    out->is_decode = malloc((size_t)steps);
    if (!out->counts || !out->is_decode) rc = mplb_err_set(err, MPLB_ENOMEM, "workload: out of memory");
    if (rc == 0) rc = mplb_placement_init_contiguous(&pl, 1, E, err);
    if (rc == 0) rc = mplb_routing_alloc(&rt, 1, E, 1, m->top_k, err);
    for (int s = 0; s < steps && rc == 0; s++) {
        out->is_decode[s] = (uint8_t)mplb_wl_is_decode(&wl, s);
        for (int l = 0; l < L && rc == 0; l++) {
            if ((rc = mplb_wl_generate(&wl, s, l, &pl, &rt, err)) == 0)
                memcpy(out->counts + ((size_t)s * L + l) * E, rt.expert_counts, (size_t)E * sizeof(int32_t));
        }
    }
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
    mplb_wl_free(&wl);
    if (rc < 0) mplb_trace_free(out);
    return rc;
}
