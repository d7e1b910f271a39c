/* mplb_valid: the cost model checked against published GPU measurements.
 *
 * validation/measurements.lua holds one row per published number (source and
 * setting included). A row says what the model evaluates: a grouped GEMM
 * (TFLOPS), the ratio of two precisions' GEMM rates, or a DeepEP-style
 * dispatch or combine (bandwidth as the source's test defines it, or
 * latency), rebuilt with the source's routing rule and run through
 * mplb_cost_eval, or a bf16 -> p cast of m x k elements (the cost model's
 * online conversion, mplb_cost_conv_bytes at hbm_gbps x conv_eff) as
 * logical IO bandwidth: bf16 read, `out_bits` per element and `scale_bytes`
 * per `group` elements written, over the time. The model value comes from the row's profile; nothing here
 * is fitted to the rows.
 *
 *   mplb_vrow *rows; int n;
 *   if (mplb_valid_load("validation/measurements.lua", &rows, &n, &err) < 0) ...
 *   mplb_valid_model(&rows[i], &hw, &model, &err); ... free(rows);
 */
#ifndef MPLB_VALIDATE_H
#define MPLB_VALIDATE_H

#include "mplb/api.h"

#include "mplb/config.h"

MPLB_BEGIN_DECLS

/*  X(id, name) */
#define MPLB_VCOMP_MAP(X) \
    X(COMPUTE, "compute") X(RATIO, "ratio") X(DISPATCH, "dispatch") X(COMBINE, "combine") X(CONVERSION, "conversion")
#define MPLB_VKIND_MAP(X) X(GEMM, "gemm") X(GEMM_RATIO, "gemm_ratio") X(A2A, "a2a") X(CAST, "cast")
#define MPLB_VMETRIC_MAP(X) X(NONE, "") X(BW_NVL, "bw_nvl") X(BW_RDMA, "bw_rdma") X(LATENCY, "latency") X(BW_IO, "bw_io")

enum {
#define MPLB_VC_ENUM(id, name) MPLB_VC_##id,
    MPLB_VCOMP_MAP(MPLB_VC_ENUM)
#undef MPLB_VC_ENUM
    MPLB_VC_COUNT
};
enum {
#define MPLB_VK_ENUM(id, name) MPLB_VK_##id,
    MPLB_VKIND_MAP(MPLB_VK_ENUM)
#undef MPLB_VK_ENUM
    MPLB_VK_COUNT
};
enum {
#define MPLB_VM_ENUM(id, name) MPLB_VM_##id,
    MPLB_VMETRIC_MAP(MPLB_VM_ENUM)
#undef MPLB_VM_ENUM
    MPLB_VM_COUNT
};
MPLB_API const char *mplb_valid_component_name(int c);

typedef struct mplb_vrow {
    char id[64];
    int component, kind, metric, line;
    char profile[MPLB_NAME_MAX];
    /* gemm, gemm_ratio: `groups` GEMMs of m x n x k at prec (ratio: over base) */
    double groups, m, n, k;
    mplb_prec prec, base;
    /* a2a: DeepEP's test routing: `tokens` per rank, top-k of `experts`
     * restricted to `node_groups` nodes (0: unrestricted); ll = low-latency
     * kernels, one copy per (token, expert): 1 every peer over RDMA, 2 peers
     * in the node over NVLink */
    int ranks, gpn, tokens, hidden, topk, experts, node_groups, ll;
    /* cast: m x k elements to prec, written at out_bits per element plus one
     * scale of scale_bytes per group elements (the source's IO accounting) */
    double group, scale_bytes, out_bits;
    double measured;
    char unit[16];
    char source[320], setting[400];
} mplb_vrow;

/* Read every row of a measurements file; *rows is malloc'd (free it). A bad
 * row is an error naming the file, its line and the field. */
MPLB_API int mplb_valid_load(const char *path, mplb_vrow **rows, int *n, mplb_err *err);
/* The model's value for a row, in the row's unit, on profile hw. */
MPLB_API int mplb_valid_model(const mplb_vrow *row, const mplb_profile *hw, double *model, mplb_err *err);

MPLB_END_DECLS

#endif
