/* The model's value for a published measurement: see include/mplb/validate.h. */
#include "mplb/validate.h"
#include "mplb/cost.h"
#include "mplb/prec.h"
#include "mplb/routing.h"
#include "mplb/workload.h"

#include <stdlib.h>
#include <string.h>

/* groups GEMMs of m x n x k in one grouped launch, as TFLOPS. */
/* Kernel time as the sources time it (CUDA events / kineto around the
 * kernel), which includes the kernel's fixed fill-and-drain (launch_us). */
static double gemm_tflops(const mplb_vrow *r, const mplb_profile *hw, mplb_prec p) {
    mplb_gemm_acc a;
    memset(&a, 0, sizeof a);
    mplb_prec cp = hw->compute_as[p];
    for (int g = 0; g < (int)r->groups; g++)
        mplb_gemm_add(&a, hw, cp, r->m, r->n, r->k, mplb_prec_bits(p), mplb_cost_act_bytes(cp));
    double us = mplb_gemm_us(&a, hw) + hw->launch_us;
    return 2.0 * r->groups * r->m * r->n * r->k / (us * 1e-6) / 1e12;
}

/* k distinct values from [lo, lo + span) into out (span >= k). */
static void pick(mplb_rng *rng, int lo, int span, int k, int *out) {
    for (int j = 0; j < k; j++) {
        int v, dup;
        do {
            v = lo + (int)(mplb_rng_uniform(rng) * span);
            dup = 0;
            for (int q = 0; q < j; q++) dup |= out[q] == v;
        } while (dup);
        out[j] = v;
    }
}

/* DeepEP's test routing (tests/test_internode.py, test_low_latency.py):
 * scores |randn| + 1, so the top-k of them is a uniform random k-subset; with
 * node groups, the top `node_groups` nodes by their best score first. */
static void deepep_routing(const mplb_vrow *r, const mplb_placement *pl, int gpn, mplb_routing *rt) {
    mplb_rng rng;
    mplb_rng_seed(&rng, 0x5eedULL);
    int nodes = r->ranks / gpn, per_node = r->experts / (nodes > 0 ? nodes : 1);
    int ng = r->node_groups > 0 && r->node_groups < nodes ? r->node_groups : 0;
    int ids[64], chosen[64], pool[64];
    for (int s = 0; s < r->ranks; s++)
        for (int t = 0; t < r->tokens; t++) {
            if (ng) {
                pick(&rng, 0, nodes, ng, chosen);
                /* top-k among the chosen nodes' experts: an index into their union */
                pick(&rng, 0, ng * per_node, r->topk, pool);
                for (int j = 0; j < r->topk; j++) ids[j] = chosen[pool[j] / per_node] * per_node + pool[j] % per_node;
            } else pick(&rng, 0, r->experts, r->topk, ids);
            mplb_routing_add_token(rt, pl, gpn, s, 0, ids, NULL);
        }
}

static int a2a(const mplb_vrow *r, const mplb_profile *hw, double *model, mplb_err *err) {
    if (r->topk > 64) return mplb_err_set(err, MPLB_EINVAL, "validation %s: topk > 64", r->id);
    /* low-latency kernels send every copy over RDMA, even to a peer in the node */
    int gpn = r->ll == 1 ? 1 : r->gpn, R = r->ranks, E = r->experts, nodes = R / gpn;
    mplb_model m = {"validation", 1, E, r->topk, r->hidden, 1, 0};
    mplb_placement pl;
    mplb_routing rt;
    mplb_plan plan;
    mplb_cost_result res;
    memset(&rt, 0, sizeof rt);
    memset(&plan, 0, sizeof plan);
    memset(&res, 0, sizeof res);
    int rc = mplb_placement_init_contiguous(&pl, R, E, err);
    if (rc < 0) return rc;
    if ((rc = mplb_routing_alloc(&rt, R, E, nodes, r->topk, err)) < 0 || (rc = mplb_plan_init(&plan, &pl, err)) < 0 ||
        (rc = mplb_cost_result_alloc(&res, R, err)) < 0)
        goto out;
    deepep_routing(r, &pl, gpn, &rt);
    if (r->ll) rt.has_dedup = 0;   /* one message per (token, expert) */
    plan.dispatch_prec = r->component == MPLB_VC_DISPATCH ? r->prec : MPLB_PREC_BF16;
    if ((rc = mplb_cost_eval(hw, &m, gpn, &rt, &plan, &res, err)) < 0) goto out;
    double t = r->component == MPLB_VC_DISPATCH ? res.t_dispatch : res.t_combine;
    if (r->metric == MPLB_VM_LATENCY) { *model = t; goto out; }
    /* the source's logical bytes per rank: tokens received over NVLink
     * (tests/test_intranode.py, recv_x) or sent to RDMA ranks
     * (test_internode.py, num_rdma_token_sent), each including the rank's
     * own share, in the phase's format (fp8: hidden * (1 + 4/128)) */
    double tok = 0;
    for (int s = 0; s < R; s++)
        for (int d = 0; d < (r->metric == MPLB_VM_BW_NVL ? R : rt.nodes); d++)
            tok += r->metric == MPLB_VM_BW_NVL ? rt.tok_to_rank[(size_t)s * R + d] : rt.tok_to_node[(size_t)s * rt.nodes + d];
    tok /= R;
    double bytes = tok * mplb_cost_token_bytes(&m, plan.dispatch_prec);
    *model = bytes / (t * 1e-6) / 1e9;
out:
    mplb_cost_result_free(&res);
    mplb_plan_free(&plan);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
    return rc;
}

/* A bf16 -> p cast of m x k elements as the cost model prices an online
 * conversion (one HBM stream at hbm_gbps x conv_eff, no launch term: the
 * model has none), in the source's unit: logical IO bytes (bf16 read, p
 * written at out_bits, the source's scales) over the time, GB/s. */
static double cast_gbps(const mplb_vrow *r, const mplb_profile *hw) {
    double n = r->m * r->k;
    double us = mplb_cost_conv_bytes(n, r->prec) / (hw->hbm_gbps * 1e3 * hw->conv_eff);
    double io = n * (2.0 + r->out_bits / 8.0) + n / r->group * r->scale_bytes;
    return io / (us * 1e-6) / 1e9;
}

int mplb_valid_model(const mplb_vrow *r, const mplb_profile *hw, double *model, mplb_err *err) {
    switch (r->kind) {
    case MPLB_VK_GEMM: *model = gemm_tflops(r, hw, r->prec); return 0;
    case MPLB_VK_GEMM_RATIO: *model = gemm_tflops(r, hw, r->prec) / gemm_tflops(r, hw, r->base); return 0;
    case MPLB_VK_A2A: return a2a(r, hw, model, err);
    case MPLB_VK_CAST: *model = cast_gbps(r, hw); return 0;
    }
    return mplb_err_set(err, MPLB_EINVAL, "validation %s: unknown kind", r->id);
}
