/* mplb trace import|stats: routing traces in and their statistics out. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static const char trace_usage[] =
    "usage: mplb trace import INPUT.(csv|npy) -o OUT.h5 --top-k K [--experts E] [--model NAME] [--force]\n"
    "       mplb trace stats FILE.h5 [--ranks R] [--top N] [--json]\n"
    "import: routing data (per-step, per-layer expert counts as CSV or NPY) to an mplb trace file\n"
    "        (docs/trace-file.md); -o folders are created; --force overwrites.\n"
    "stats:  per layer: max/mean expert load, LIS, Gini, normalised entropy and the rank imbalance of a\n"
    "        contiguous placement on R ranks (default 8); top-N persistence across steps; the\n"
    "        prefill/decode load correlation. --json: the same as one JSON object on stdout.\n"
    "Exit status: 0 ok, 1 error (unreadable or malformed input), 2 usage error.\n";

static int trace_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *model = "";
    int k = 0, E = 0, force = 0;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--top-k") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--experts") && i + 1 < argc) E = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return mplb_cli_usage_error("trace import", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (!in || !out || k < 1)
        return mplb_cli_usage_error("trace import", trace_usage, "%s", "needs INPUT, -o OUT.h5 and --top-k K");
    if (mplb_cli_mkdirs(out, 0) < 0) return 1;
    mplb_trace t;
    mplb_err err = {0};
    const char *dot = strrchr(in, '.');
    int rc;
    if (dot && !strcmp(dot, ".npy")) rc = mplb_trace_import_npy(in, k, &t, &err);
    else if (dot && !strcmp(dot, ".csv")) rc = mplb_trace_import_csv(in, k, E, &t, &err);
    else { fprintf(stderr, "mplb: %s: unknown input format (use .csv or .npy)\n", in); return 1; }
    if (rc == 0) {
        snprintf(t.model, sizeof t.model, "%s", model);
        rc = mplb_trace_write(out, &t, force, &err);
    }
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    printf("wrote %s: %d steps x %d layers x %d experts, top-%d%s\n", out, t.steps, t.layers, t.experts, t.top_k,
           t.topk_ids ? ", per-token choices" : "");
    mplb_trace_free(&t);
    return 0;
}

static void json_str(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* JSON numbers: NaN (a statistic without data) as null */
static void json_num(const char *key, double v, int comma) {
    if (v == v) printf("%s\"%s\": %.6g", comma ? ", " : "", key, v);
    else printf("%s\"%s\": null", comma ? ", " : "", key);
}

/* stats --json: the text output's numbers, per layer as a list. */
static int stats_json(const mplb_trace *t, const char *path, int R, int top) {
    printf("{\"file\": "); json_str(path);
    printf(", \"model\": "); json_str(t->model);
    printf(", \"source\": "); json_str(t->source);
    printf(", \"license\": "); json_str(t->license);
    printf(", \"steps\": %d, \"layers\": %d, \"experts\": %d, \"top_k\": %d, \"ranks\": %d, "
           "\"source_ranks\": %s, \"per_token\": %s, \"per_layer\": [",
           t->steps, t->layers, t->experts, t->top_k, R, t->src_counts ? "true" : "false", t->topk_ids ? "true" : "false");
    for (int l = 0; l < t->layers; l++) {
        double acc[5] = {0};
        for (int s = 0; s < t->steps; s++) {
            mplb_trace_stats st;
            mplb_stats_counts(t->counts + ((size_t)s * t->layers + l) * t->experts, t->experts, t->top_k, R, &st);
            acc[0] += st.max_over_mean; acc[1] += st.lis; acc[2] += st.gini; acc[3] += st.entropy_norm;
            acc[4] += st.rank_imbalance;
        }
        printf("%s{\"layer\": %d", l ? ", " : "", l + 1);
        json_num("max_over_mean", acc[0] / t->steps, 1);
        json_num("lis", acc[1] / t->steps, 1);
        json_num("gini", acc[2] / t->steps, 1);
        json_num("entropy", acc[3] / t->steps, 1);
        json_num("rank_imbalance", acc[4] / t->steps, 1);
        printf("}");
    }
    printf("], \"persistence_top\": %d", top);
    json_num("persistence", mplb_trace_persistence(t, top), 1);
    json_num("prefill_decode_correlation", mplb_trace_phase_correlation(t), 1);
    printf("}\n");
    return 0;
}

static int trace_stats(int argc, char **argv) {
    const char *path = NULL;
    int R = 8, top = 0, json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc) R = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) top = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else return mplb_cli_usage_error("trace stats", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (!path || R < 1) return mplb_cli_usage_error("trace stats", trace_usage, "%s", "needs FILE.h5 (and --ranks R >= 1)");
    mplb_trace t;
    mplb_err err = {0};
    if (mplb_trace_read(path, &t, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    if (top < 1) top = t.top_k;
    if (json) { int rc = stats_json(&t, path, R, top); mplb_trace_free(&t); return rc; }
    printf("trace:    %s\n", path);
    printf("model:    %s\nsource:   %s\nlicense:  %s\n", t.model, t.source, t.license);
    printf("shape:    %d steps x %d layers x %d experts, top-%d%s%s\n", t.steps, t.layers, t.experts, t.top_k,
           t.src_counts ? ", source ranks" : "", t.topk_ids ? ", per-token choices" : "");
    printf("%5s %12s %8s %7s %8s %12s   (rank imbalance: contiguous placement on %d ranks)\n", "layer",
           "max/mean", "LIS", "gini", "entropy", "rank_imbal", R);
    for (int l = 0; l < t.layers; l++) {
        double acc[5] = {0};
        for (int s = 0; s < t.steps; s++) {
            mplb_trace_stats st;
            mplb_stats_counts(t.counts + ((size_t)s * t.layers + l) * t.experts, t.experts, t.top_k, R, &st);
            acc[0] += st.max_over_mean; acc[1] += st.lis; acc[2] += st.gini; acc[3] += st.entropy_norm;
            acc[4] += st.rank_imbalance;
        }
        printf("%5d %12.3f %8.3f %7.3f %8.3f %12.3f\n", l + 1, acc[0] / t.steps, acc[1] / t.steps, acc[2] / t.steps,
               acc[3] / t.steps, acc[4] / t.steps);
    }
    printf("(per layer: mean over %d steps; LIS = E * max_e n_e / (T * k), 1 = balanced)\n", t.steps);
    double pers = mplb_trace_persistence(&t, top), corr = mplb_trace_phase_correlation(&t);
    if (pers == pers) printf("top-%d persistence across steps: %.3f\n", top, pers);
    if (corr == corr) printf("prefill/decode load correlation: %.3f\n", corr);
    else printf("prefill/decode load correlation: n/a (the trace has no decode steps)\n");
    mplb_trace_free(&t);
    return 0;
}

int mplb_cmd_trace(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, trace_usage)) return 0;
    if (argc >= 2 && !strcmp(argv[1], "import")) return trace_import(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "stats")) return trace_stats(argc, argv);
    return mplb_cli_usage_error("trace", trace_usage, "%s", argc >= 2 ? "expected import or stats" : "missing import or stats");
}
