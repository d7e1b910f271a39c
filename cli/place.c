/* mplb place: a placement policy run offline on a trace's load matrix, the
 * map written in mplb's JSON and in the engines' formats (SGLang's
 * --init-expert-location JSON, TensorRT-LLM's load-balancer YAML). */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char place_usage[] =
    "usage: mplb place TRACE.h5 -o PLACEMENT.json [--policy NAME] [--slots N] [--gpus N] [--nodes N] [--groups G]\n"
    "                  [--steps A:B] [--sglang FILE.json] [--trtllm FILE.yaml] [--force]\n"
    "Runs the policy's rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus) (the interface of\n"
    "DeepSeek's EPLB and of vLLM's and SGLang's rebalance_experts; default policy eplb) on the trace's load matrix:\n"
    "per layer the sum over steps A..B-1 (1-based, default all) of /load when the trace has float loads, else of\n"
    "/counts. --slots: physical expert slots (default: experts rounded up to a multiple of --gpus, default 8);\n"
    "--nodes (default 1); --groups: expert groups for the hierarchical mode (default = nodes; not dividing the\n"
    "experts or not a multiple of the nodes: global mode).\n"
    "Writes PLACEMENT.json: phy2log [layers][slots], log2phy [layers][experts][max copies] (-1 padded) and logcnt\n"
    "[layers][experts] as rebalance_experts returns them (GPU g holds slots g*slots/gpus..(g+1)*slots/gpus-1),\n"
    "with the rank max/mean load before (contiguous, one copy) and after; --sglang: {\"physical_to_logical_map\"}\n"
    "for SGLang's --init-expert-location; --trtllm: num_slots / initial_global_assignments / layer_updates_per_iter\n"
    "for TensorRT-LLM's moe_config.load_balancer. Experiments take PLACEMENT.json as placement_file.\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

/* max/mean of per-GPU load when slot x holds logical phy2log[x] and each
 * expert's load is split evenly over its copies */
static double rank_ratio(const double *w, const int *p2l, const int *cnt, int slots, int gpus) {
    double mx = 0, sum = 0, *g = calloc((size_t)gpus, sizeof *g);
    if (!g) return 0;
    for (int x = 0; x < slots; x++) g[x / (slots / gpus)] += w[p2l[x]] / cnt[p2l[x]];
    for (int r = 0; r < gpus; r++) { sum += g[r]; if (g[r] > mx) mx = g[r]; }
    free(g);
    return sum > 0 ? mx * gpus / sum : 1.0;
}

static void put_rows(FILE *f, const int *v, int rows, int cols) {
    fputc('[', f);
    for (int r = 0; r < rows; r++) {
        fprintf(f, "%s[", r ? ",\n  " : "");
        for (int c = 0; c < cols; c++) fprintf(f, "%s%d", c ? ", " : "", v[(size_t)r * cols + c]);
        fputc(']', f);
    }
    fputc(']', f);
}

static FILE *open_out(const char *path, int force) {
    struct stat st;
    if (!force && stat(path, &st) == 0) { fprintf(stderr, "mplb place: %s: file exists (use --force to overwrite)\n", path); return NULL; }
    if (mplb_cli_mkdirs(path, 0) < 0) return NULL;
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "mplb place: %s: cannot create: %s\n", path, strerror(errno));
    return f;
}

typedef struct place_out {
    int L, E, slots, gpus, nodes, groups, maxcnt;
    int *p2l, *rank, *cnt, *l2p;
    double *before, *after;
} place_out;

static int write_json(const char *path, int force, const char *trace, const char *policy, const place_out *o,
                      const int32_t *layer_ids) {
    FILE *f = open_out(path, force);
    if (!f) return 1;
    fprintf(f, "{\"format\": \"mplb-placement-1\", \"trace\": ");
    mplb_cli_json_str_to(f, trace);
    fprintf(f, ", \"policy\": ");
    mplb_cli_json_str_to(f, policy);
    fprintf(f, ",\n \"num_layers\": %d, \"num_logical_experts\": %d, \"num_physical_experts\": %d, \"num_gpus\": %d, "
               "\"num_nodes\": %d, \"num_groups\": %d,\n \"layer_ids\": [", o->L, o->E, o->slots, o->gpus, o->nodes,
            o->groups);
    for (int l = 0; l < o->L; l++) fprintf(f, "%s%d", l ? ", " : "", layer_ids ? layer_ids[l] : l);
    fprintf(f, "],\n \"rank_max_over_mean_before\": [");
    for (int l = 0; l < o->L; l++) fprintf(f, "%s%.6g", l ? ", " : "", o->before[l]);
    fprintf(f, "],\n \"rank_max_over_mean_after\": [");
    for (int l = 0; l < o->L; l++) fprintf(f, "%s%.6g", l ? ", " : "", o->after[l]);
    fprintf(f, "],\n \"phy2log\": ");
    put_rows(f, o->p2l, o->L, o->slots);
    fprintf(f, ",\n \"logcnt\": ");
    put_rows(f, o->cnt, o->L, o->E);
    fprintf(f, ",\n \"log2phy\": [");
    for (int l = 0; l < o->L; l++) {
        fprintf(f, "%s", l ? ",\n  " : "");
        put_rows(f, o->l2p + (size_t)l * o->E * o->maxcnt, o->E, o->maxcnt);
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : 1;
}

static int write_sglang(const char *path, int force, const place_out *o) {
    FILE *f = open_out(path, force);
    if (!f) return 1;
    fprintf(f, "{\"physical_to_logical_map\": ");   /* the only key: SGLang passes the dict as keyword arguments */
    put_rows(f, o->p2l, o->L, o->slots);
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : 1;
}

/* TensorRT-LLM examples/ep_load_balancer/generate_eplb_config.py: yaml.dump
 * of {num_slots, initial_global_assignments: {layer: [slots, rank-major]},
 * layer_updates_per_iter} with inline lists. */
static int write_trtllm(const char *path, int force, const place_out *o, const int32_t *layer_ids) {
    FILE *f = open_out(path, force);
    if (!f) return 1;
    fprintf(f, "initial_global_assignments:\n");
    for (int l = 0; l < o->L; l++) {
        fprintf(f, "  %d: [", layer_ids ? layer_ids[l] : l);
        for (int x = 0; x < o->slots; x++) fprintf(f, "%s%d", x ? ", " : "", o->p2l[(size_t)l * o->slots + x]);
        fprintf(f, "]\n");
    }
    fprintf(f, "layer_updates_per_iter: 0\nnum_slots: %d\n", o->slots);
    return fclose(f) == 0 ? 0 : 1;
}

/* logcnt and log2phy from phy2log and the replica ranks, as EPLB derives
 * them (log2phy[l][e][rank] = slot; without ranks, copies in slot order). */
static int derive_maps(place_out *o, int have_rank) {
    o->maxcnt = 1;
    for (int l = 0; l < o->L; l++)
        for (int x = 0; x < o->slots; x++) {
            int c = ++o->cnt[(size_t)l * o->E + o->p2l[(size_t)l * o->slots + x]];
            if (c > o->maxcnt) o->maxcnt = c;
        }
    o->l2p = malloc((size_t)o->L * o->E * o->maxcnt * sizeof *o->l2p);
    int *seen = calloc((size_t)o->E, sizeof *seen);
    if (!o->l2p || !seen) { free(seen); return -1; }
    for (size_t i = 0; i < (size_t)o->L * o->E * o->maxcnt; i++) o->l2p[i] = -1;
    for (int l = 0; l < o->L; l++) {
        memset(seen, 0, (size_t)o->E * sizeof *seen);
        for (int x = 0; x < o->slots; x++) {
            int e = o->p2l[(size_t)l * o->slots + x];
            int r = have_rank ? o->rank[(size_t)l * o->slots + x] : seen[e];
            seen[e]++;
            if (r < 0 || r >= o->maxcnt || o->l2p[((size_t)l * o->E + e) * o->maxcnt + r] != -1) { free(seen); return -2; }
            o->l2p[((size_t)l * o->E + e) * o->maxcnt + r] = x;
        }
    }
    free(seen);
    return 0;
}

/* Rank max/mean per layer of the summed loads w: before, expert e on GPU
 * e / ceil(E/gpus), one copy each; after, the map's slots. */
static void balance_ratios(place_out *o, const double *w) {
    int gpus = o->gpus, eslots = (o->E + gpus - 1) / gpus * gpus;
    for (int l = 0; l < o->L; l++) {
        double mx = 0, sum = 0;
        for (int r = 0; r < gpus; r++) {
            double g = 0;
            for (int e = r * (eslots / gpus); e < (r + 1) * (eslots / gpus) && e < o->E; e++) g += w[(size_t)l * o->E + e];
            sum += g;
            if (g > mx) mx = g;
        }
        o->before[l] = sum > 0 ? mx * gpus / sum : 1.0;
        o->after[l] = rank_ratio(w + (size_t)l * o->E, o->p2l + (size_t)l * o->slots, o->cnt + (size_t)l * o->E, o->slots,
                                 gpus);
    }
}

int mplb_cmd_place(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, place_usage)) return 0;
    const char *in = NULL, *out = NULL, *policy = "eplb", *sg = NULL, *trt = NULL, *steps = NULL;
    int slots = 0, gpus = 8, nodes = 1, groups = 0, force = 0;
    const char *bad_int = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--policy") && i + 1 < argc) policy = argv[++i];
        else if (!strcmp(argv[i], "--slots") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &slots, &bad_int), i++;
        else if (!strcmp(argv[i], "--gpus") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &gpus, &bad_int), i++;
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &nodes, &bad_int), i++;
        else if (!strcmp(argv[i], "--groups") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &groups, &bad_int), i++;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = argv[++i];
        else if (!strcmp(argv[i], "--sglang") && i + 1 < argc) sg = argv[++i];
        else if (!strcmp(argv[i], "--trtllm") && i + 1 < argc) trt = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return mplb_cli_usage_error("place", place_usage, "unexpected argument '%s'", argv[i]);
    }
    if (bad_int) return mplb_cli_usage_error("place", place_usage, "%s needs a whole number", bad_int);
    if (!in || !out) return mplb_cli_usage_error("place", place_usage, "%s", "needs TRACE.h5 and -o PLACEMENT.json");
    if (gpus < 1 || nodes < 1 || gpus % nodes || slots < 0 || groups < 0)
        return mplb_cli_usage_error("place", place_usage, "%s", "--gpus and --nodes must be >= 1 with nodes dividing gpus");
    mplb_trace t;
    mplb_err err = {0};
    if (mplb_trace_read(in, &t, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    int a = 1, b = t.steps + 1;
    if (steps && (sscanf(steps, "%d:%d", &a, &b) != 2 || a < 1 || b <= a || b > t.steps + 1)) {
        fprintf(stderr, "mplb place: --steps %s: expected A:B with 1 <= A < B <= %d\n", steps, t.steps + 1);
        mplb_trace_free(&t);
        return 2;
    }
    place_out o = {.L = t.layers, .E = t.experts, .gpus = gpus, .nodes = nodes};
    o.slots = slots ? slots : (t.experts + gpus - 1) / gpus * gpus;
    o.groups = groups ? groups : nodes;
    if (o.E % o.groups || o.groups % nodes) o.groups = 1;   /* EPLB's global mode, as policies/eplb.lua */
    int rc = 1;
    double *w = calloc((size_t)o.L * o.E, sizeof *w);
    o.p2l = malloc((size_t)o.L * o.slots * sizeof *o.p2l);
    o.rank = malloc((size_t)o.L * o.slots * sizeof *o.rank);
    o.cnt = calloc((size_t)o.L * o.E, sizeof *o.cnt);
    o.before = calloc((size_t)o.L, sizeof *o.before);
    o.after = calloc((size_t)o.L, sizeof *o.after);
    mplb_policy *pol = NULL;
    char path[MPLB_PATH_MAX];
    if (!w || !o.p2l || !o.rank || !o.cnt || !o.before || !o.after) { fprintf(stderr, "mplb: out of memory\n"); goto done; }
    if (o.slots < o.E || o.slots % gpus) {
        fprintf(stderr, "mplb place: --slots %d: needs at least the %d experts and a multiple of --gpus %d\n", o.slots,
                o.E, gpus);
        goto done;
    }
    for (int s = a - 1; s < b - 1; s++)
        for (size_t i = 0; i < (size_t)o.L * o.E; i++)
            w[i] += t.load ? t.load[(size_t)s * o.L * o.E + i] : t.counts[(size_t)s * o.L * o.E + i];
    if (mplb_find_data("policies", policy, NULL, path, &err) < 0 ||
        mplb_policy_open(path, NULL, NULL, NULL, &pol, &err) < 0 ||
        mplb_policy_rebalance(pol, w, o.L, o.E, o.slots, o.groups, o.nodes, gpus, o.p2l, o.rank, &err) < 0) {
        fprintf(stderr, "mplb: %s\n", err.msg);
        goto done;
    }
    int d = derive_maps(&o, o.rank[0] >= 0);
    for (int l = 0; l < o.L && d == 0; l++)
        for (int e = 0; e < o.E && d == 0; e++)
            if (o.cnt[(size_t)l * o.E + e] == 0) d = -3;
    if (d < 0) {
        fprintf(stderr, "mplb place: %s: rebalance_experts returned %s\n", path,
                d == -3 ? "a map that leaves a logical expert without a slot" :
                d == -2 ? "replica ranks that repeat or exceed an expert's copies" : "(out of memory)");
        goto done;
    }
    balance_ratios(&o, w);
    rc = write_json(out, force, in, policy, &o, t.layer_ids);
    if (rc == 0 && sg) rc = write_sglang(sg, force, &o);
    if (rc == 0 && trt) rc = write_trtllm(trt, force, &o, t.layer_ids);
    if (rc == 0) {
        printf("placed %d layers x %d experts on %d slots, %d GPUs, %d nodes, %d groups (policy %s, steps %d..%d%s)\n",
               o.L, o.E, o.slots, gpus, nodes, o.groups, policy, a, b - 1, t.load ? ", float loads" : "");
        printf("%5s %18s %18s\n", "layer", "rank max/mean", "after");
        for (int l = 0; l < o.L; l++)
            printf("%5d %18.3f %18.3f\n", t.layer_ids ? t.layer_ids[l] : l, o.before[l], o.after[l]);
        printf("wrote %s%s%s%s%s\n", out, sg ? ", " : "", sg ? sg : "", trt ? ", " : "", trt ? trt : "");
    }
done:
    if (pol) mplb_policy_close(pol);
    free(w); free(o.p2l); free(o.rank); free(o.cnt); free(o.l2p); free(o.before); free(o.after);
    mplb_trace_free(&t);
    return rc;
}
