/* The cost model's primitives: grouped-GEMM roofline, activation bytes,
 * link time. See include/mplb/cost.h and docs/cost-model.md. */
#include "mplb/cost.h"

#include <math.h>

double mplb_cost_eff(const mplb_profile *hw, mplb_prec p, double n) {
    const mplb_eff_pt *c = hw->eff[p];
    int k = hw->n_eff[p];
    if (k == 0) return 1;
    if (n <= c[0].n) return c[0].eff;
    if (n >= c[k - 1].n) return c[k - 1].eff;
    int i = 1;
    while (n > c[i].n) i++;
    if (hw->eff_ln_ready) return c[i - 1].eff + hw->eff_slope[p][i] * (log(n) - hw->eff_ln[p][i - 1]);
    double a = log(c[i - 1].n), b = log(c[i].n);
    return c[i - 1].eff + (c[i].eff - c[i - 1].eff) * (log(n) - a) / (b - a);
}

void mplb_gemm_add(mplb_gemm_acc *a, const mplb_profile *hw, mplb_prec cp, double n, double N, double K,
                   double w_bits, double a_bytes) {
    if (n <= 0) return;
    a->N = N;
    a->K = K;
    a->rate = hw->peak_tflops[cp] * 1e12 * hw->mma_eff[cp];
    if (hw->tile_m > 0 && hw->tile_n > 0)
        for (int i = 0; i < 3; i++) a->mtiles[i] += ceil(n / (hw->tile_m / (double)(4 >> i)));
    else a->mma_us += 1e6 * 2.0 * n * N * K / (a->rate * mplb_cost_eff(hw, cp, n));
    a->load += N * K * w_bits / 8.0 + n * K * a_bytes;
    a->store += n * N * 2.0;   /* bf16 outputs */
    a->busy++;
}

/* MMA time of the launch with the kernel's best tile: padding rows and
 * columns cost as much as real ones; the last wave runs with idle SMs. */
static double mma_us(const mplb_gemm_acc *a, const mplb_profile *hw) {
    if (!(hw->tile_m > 0 && hw->tile_n > 0)) return a->mma_us;
    double best = INFINITY;
    for (int i = 0; i < 3; i++) {
        double bm = hw->tile_m / (double)(4 >> i);
        for (double bn = 16; bn <= hw->tile_n; bn += 8) {
            if (bm > 128 && bn > 128) continue;   /* register file: one side <= 128 */
            double tiles = a->mtiles[i] * ceil(a->N / bn);
            double slots = hw->sms > 0 ? ceil(tiles / hw->sms) * hw->sms : tiles;
            double t = 1e6 * slots * 2.0 * bm * bn * a->K / a->rate;
            if (t < best) best = t;
        }
        if (hw->tile_n < 16) {
            double tiles = a->mtiles[i] * ceil(a->N / hw->tile_n);
            double slots = hw->sms > 0 ? ceil(tiles / hw->sms) * hw->sms : tiles;
            double t = 1e6 * slots * 2.0 * bm * hw->tile_n * a->K / a->rate;
            if (t < best) best = t;
        }
    }
    return best;
}

double mplb_gemm_us(const mplb_gemm_acc *a, const mplb_profile *hw) {
    if (a->busy == 0) return 0;
    double mma = mma_us(a, hw);
    double bw = hw->hbm_gbps * 1e3 * hw->hbm_eff; /* bytes per us */
    double load = a->load / bw, store = a->store / bw;
    /* operand loads overlap the MMAs (TMA pipelines); each tile's epilogue
     * store follows its main loop, so the stores do not hide */
    return (mma > load ? mma : load) + store;
}

double mplb_cost_act_bytes(mplb_prec p) {
    double b = mplb_prec_bits(p) / 8.0;  /* MX/NV block scales are in prec_bits */
    if (p == MPLB_PREC_FP8_E4M3 || p == MPLB_PREC_FP8_E5M2) b += 4.0 / 128; /* float scale per 128 channels */
    return b;
}

double mplb_cost_token_bytes(const mplb_model *m, mplb_prec p) {
    double b = m->hidden * mplb_prec_bits(p) / 8.0;
    if (p == MPLB_PREC_FP8_E4M3 || p == MPLB_PREC_FP8_E5M2) b += 4.0 * ((m->hidden + 127) / 128);
    return b;
}

double mplb_cost_link_us(double sent, double recv, double gbps, double eff) {
    double b = sent > recv ? sent : recv;
    return b > 0 ? b / (gbps * 1e3 * eff) : 0;
}
