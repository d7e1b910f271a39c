/* KL divergence, top-1 agreement and perplexity of a quantized run against
 * the reference: see include/mplb/accuracy.h. Sums in double. */
#include "mplb/accuracy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-softmax of row into out (double) */
static void log_softmax(const float *row, int V, double *out) {
    double mx = row[0], s = 0;
    for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++) out[v] = (double)row[v] - lse;
}

static int argmax(const float *row, int V) {
    int b = 0;
    for (int v = 1; v < V; v++) if (row[v] > row[b]) b = v;
    return b;
}

int mplb_lm_compare(const float *ref, const float *q, const int32_t *tokens, const int *dom, int ndom, int S, int T,
                    int V, mplb_lm_metrics *out, mplb_err *err) {
    if (ndom < 0 || S < 1 || T < 2 || V < 1) return mplb_err_set(err, MPLB_EINVAL, "lm_compare: %d domains, %d x %d, vocab %d", ndom, S, T, V);
    double *lr = malloc((size_t)V * sizeof *lr), *lq = malloc((size_t)V * sizeof *lq);
    double *acc = calloc((size_t)(ndom + 1) * 4, sizeof *acc);   /* kl, agree, nll_ref, nll_q */
    int64_t *cnt = calloc((size_t)ndom + 1, sizeof *cnt);
    if (!lr || !lq || !acc || !cnt) {
        free(lr); free(lq); free(acc); free(cnt);
        return mplb_err_set(err, MPLB_ENOMEM, "lm_compare: out of memory");
    }
    int rc = 0;
    for (int s = 0; s < S && rc == 0; s++) {
        int g = dom ? dom[s] : 0;
        if (dom && (g < 0 || g >= ndom)) { rc = mplb_err_set(err, MPLB_ERANGE, "lm_compare: sequence %d: domain %d of %d", s, g, ndom); break; }
        for (int t = 0; t + 1 < T; t++) {
            size_t i = (size_t)s * T + t;
            const float *a = ref + i * V, *b = q + i * V;
            log_softmax(a, V, lr);
            log_softmax(b, V, lq);
            double kl = 0;
            for (int v = 0; v < V; v++) kl += exp(lr[v]) * (lr[v] - lq[v]);
            int next = tokens[i + 1];
            if (next < 0 || next >= V) { rc = mplb_err_set(err, MPLB_ERANGE, "lm_compare: token %d outside [0, %d)", next, V); break; }
            double row[4] = {kl > 0 ? kl : 0, argmax(a, V) == argmax(b, V), -lr[next], -lq[next]};
            for (int k = 0; k < 4; k++) {
                if (dom) acc[g * 4 + k] += row[k];
                acc[ndom * 4 + k] += row[k];
            }
            if (dom) cnt[g]++;
            cnt[ndom]++;
        }
    }
    for (int g = 0; g <= ndom && rc == 0; g++) {
        double n = cnt[g] ? (double)cnt[g] : 1;
        out[g] = (mplb_lm_metrics){.kl = acc[g * 4] / n, .top1 = acc[g * 4 + 1] / n, .ppl_ref = exp(acc[g * 4 + 2] / n),
                                   .ppl_q = exp(acc[g * 4 + 3] / n), .n = cnt[g]};
    }
    free(lr); free(lq); free(acc); free(cnt);
    return rc;
}
