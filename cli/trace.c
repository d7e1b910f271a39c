/* mplb trace import|stats|fit|gen: routing traces in, their statistics out,
 * and the synthetic workload fitted to them. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static const char trace_usage[] =
    "usage: mplb trace import INPUT... -o OUT.h5 [--format F] [--phase prefill|decode] [--top-k K] [--experts E]\n"
    "                     [--model NAME] [--license TEXT] [--force]\n"
    "       mplb trace stats FILE.h5 [--ranks R] [--top N] [--json] [--workload W.lua [--steps N] [--tokens T] [--seed S]]\n"
    "       mplb trace fit TRACE.h5 -o W.lua [--ranks R] [--force]\n"
    "       mplb trace gen W.lua -o OUT.h5 (--model PRESET | --layers L --experts E --top-k K) [--steps N] [--tokens T]\n"
    "                     [--seed S] [--force]\n"
    "import: routing data to an mplb trace file (docs/trace-file.md): CSV, NPY (read here) or, through the\n"
    "        Python package, F = sglang-stat | sglang-detail (SGLang expert-distribution .pt dumps),\n"
    "        vllm-routed (routed experts: .npy/.npz/API JSON), vllm-eplb (load window + physical->logical\n"
    "        map), trtllm (EXPERT_STATISTIC_PATH folder), megatron (router_trace_rank*.jsonl), npz, loads\n"
    "        (float load matrix); detected from the input when --format is not given. --top-k where the\n"
    "        input does not record k; --phase marks every step. -o folders are created; --force overwrites.\n"
    "stats:  per layer: max/mean expert load, LIS, Gini, normalised entropy and the rank imbalance of a\n"
    "        contiguous placement on R ranks (default 8); top-N persistence across steps; the\n"
    "        prefill/decode load correlation. --json: the same as one JSON object on stdout.\n"
    "        --workload: per layer LIS, rank max/mean and persistence beside a trace generated from the\n"
    "        workload file (same shape and tokens; --steps, default max(64, the trace's)), and whether the\n"
    "        medians are within 10%% (the `trace fit` goal).\n"
    "fit:    fit the synthetic workload to a real trace; writes a Lua file returning a workload table\n"
    "        (experiments: workload = \"W.lua\" or { from = \"W.lua\", steps = N }).\n"
    "gen:    the counts a workload file generates for a model shape, as a trace file.\n"
    "Exit status: 0 ok, 1 error (unreadable or malformed input), 2 usage error.\n";

/* Engine dumps (torch.save files, safetensors, JSON, npz) are read by the
 * Python package (analysis/mplb/importers.py): exec it with the same
 * arguments, with $MPLB_PYTHON, else the project's .venv, else python3, and
 * the source tree's analysis/ first on PYTHONPATH (a build-tree binary). */
static int trace_import_python(int argc, char **argv) {
    return mplb_cli_exec_python("trace import", "mplb.importers", argc - 2, argv + 2);
}

static int trace_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *model = "", *fmt = NULL, *first = NULL, *phase = NULL, *license = "";
    int k = 0, E = 0, force = 0, n_in = 0;
    const char *bad_int = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--force")) continue;
        if (argv[i][0] == '-') {
            if (!strcmp(argv[i], "--format") && i + 1 < argc) fmt = argv[i + 1];
            i++;
            continue;
        }
        if (!n_in++) first = argv[i];
    }
    /* CSV and integer NPY stay in C; every other format goes to Python */
    const char *ext = first ? strrchr(first, '.') : NULL;
    int native = ext && (!strcmp(ext, ".csv") || !strcmp(ext, ".npy")) && n_in == 1;
    if (fmt) native = native && (!strcmp(fmt, "csv") || !strcmp(fmt, "npy"));
    if (first && !native) return trace_import_python(argc, argv);
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) i++;
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--top-k") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &k, &bad_int), i++;
        else if (!strcmp(argv[i], "--experts") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &E, &bad_int), i++;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--license") && i + 1 < argc) license = argv[++i];
        else if (!strcmp(argv[i], "--phase") && i + 1 < argc) phase = argv[++i];
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return mplb_cli_usage_error("trace import", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (bad_int) return mplb_cli_usage_error("trace import", trace_usage, "%s needs a whole number", bad_int);
    if (phase && strcmp(phase, "prefill") && strcmp(phase, "decode"))
        return mplb_cli_usage_error("trace import", trace_usage, "--phase '%s': expected prefill or decode", phase);
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
        snprintf(t.license, sizeof t.license, "%s", license);
        if (phase && !(t.is_decode = malloc((size_t)t.steps))) rc = mplb_err_set(&err, MPLB_ENOMEM, "out of memory");
        else if (phase) memset(t.is_decode, !strcmp(phase, "decode"), (size_t)t.steps);
        if (rc == 0) rc = mplb_trace_write(out, &t, force, &err);
        if (rc < 0) mplb_trace_free(&t);
    }
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    printf("wrote %s: %d steps x %d layers x %d experts, top-%d%s\n", out, t.steps, t.layers, t.experts, t.top_k,
           t.topk_ids ? ", per-token choices" : "");
    mplb_trace_free(&t);
    return 0;
}

/* JSON numbers: NaN (a statistic without data) as null */
static void json_num(const char *key, double v, int comma) {
    if (v == v) printf("%s\"%s\": %.6g", comma ? ", " : "", key, v);
    else printf("%s\"%s\": null", comma ? ", " : "", key);
}

/* stats --json: the text output's numbers, per layer as a list. */
static int stats_json(const mplb_trace *t, const char *path, int R, int top) {
    printf("{\"file\": "); mplb_cli_json_str(path);
    printf(", \"model\": "); mplb_cli_json_str(t->model);
    printf(", \"source\": "); mplb_cli_json_str(t->source);
    printf(", \"license\": "); mplb_cli_json_str(t->license);
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

static double median3(const double *x, int n) {
    double v[4096];
    int m = 0;
    for (int i = 0; i < n && m < 4096; i++) if (x[i] == x[i]) v[m++] = x[i];
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { double y = v[j]; v[j] = v[j - 1]; v[j - 1] = y; }
    return m == 0 ? NAN : m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

/* Real per-layer LIS, rank max/mean and persistence beside a trace generated
 * from a workload file of the same shape; the 10% goal on the medians. */
static int stats_side_by_side(const mplb_trace *t, const char *wpath, int R, int top, int steps, long long tokens,
                              uint64_t seed) {
    mplb_workload_cfg w;
    mplb_err err = {0};
    if (mplb_workload_load(wpath, &w, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    if (tokens > 0) w.tokens = tokens;
    long long gen_tokens = w.tokens;
    mplb_model m = {.layers = t->layers, .experts = t->experts, .top_k = t->top_k};
    snprintf(m.name, sizeof m.name, "%s", wpath);
    mplb_trace g;
    int rc = mplb_wl_to_trace(&w, &m, steps > 0 ? steps : (t->steps > 64 ? t->steps : 64), seed, &g, &err);
    mplb_workload_cfg_free(&w);
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    int L = t->layers;
    double *v = calloc((size_t)6 * L, sizeof *v);
    if (!v) { mplb_trace_free(&g); fprintf(stderr, "mplb: out of memory\n"); return 1; }
    printf("\nreal vs generated by %s (%d steps of %lld tokens, seed %llu):\n", wpath, g.steps,
           gen_tokens, (unsigned long long)seed);
    printf("%5s %9s %9s %13s %13s %9s %9s\n", "layer", "LIS", "gen", "rank_max/mean", "gen", "persist", "gen");
    for (int l = 0; l < L; l++) {
        double a[3], b[3];
        mplb_trace_layer_stats(t, l, R, top, a);
        mplb_trace_layer_stats(&g, l, R, top, b);
        for (int q = 0; q < 3; q++) { v[(size_t)q * L + l] = a[q]; v[(size_t)(3 + q) * L + l] = b[q]; }
        printf("%5d %9.3f %9.3f %13.3f %13.3f %9.3f %9.3f\n", l + 1, a[0], b[0], a[1], b[1], a[2], b[2]);
    }
    static const char *names[] = {"LIS", "rank max/mean", "persistence"};
    int all = 1;
    for (int q = 0; q < 3; q++) {
        double r = median3(v + (size_t)q * L, L), x = median3(v + (size_t)(3 + q) * L, L);
        int within = fabs(x - r) <= 0.10 * fabs(r);
        if (r == r) all &= within;
        printf("median %-14s real %.4f  generated %.4f  (%+.1f%%) %s\n", names[q], r, x, 100 * (x - r) / r,
               r != r ? "n/a" : within ? "within 10%" : "NOT within 10%");
    }
    printf("fit goal (medians within 10%%): %s\n", all ? "met" : "NOT met");
    free(v);
    mplb_trace_free(&g);
    return 0;
}

static int trace_fit(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int R = 8, force = 0;
    const char *bad_int = NULL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &R, &bad_int), i++;
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return mplb_cli_usage_error("trace fit", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (bad_int) return mplb_cli_usage_error("trace fit", trace_usage, "%s needs a whole number", bad_int);
    if (!in || !out || R < 1 || R > 1024)
        return mplb_cli_usage_error("trace fit", trace_usage, "%s", "needs TRACE.h5, -o W.lua (and --ranks R in 1..1024)");
    mplb_trace t;
    mplb_wl_fit f;
    mplb_err err = {0};
    if (mplb_trace_read(in, &t, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    int rc = mplb_wl_fit_trace(&t, R, &f, &err);
    if (rc == 0) rc = mplb_wl_fit_write(&f, &t, out, force, &err);
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); mplb_trace_free(&t); return 1; }
    printf("wrote %s: %d layers x %d experts, regime_rate %.3f, wander_period %d (lag-1/2 autocorrelation %.3f/%.3f)\n",
           out, f.layers, f.experts, f.regime_rate, f.wander_period, f.rho1, f.rho2);
    printf("%5s %7s %7s %9s %9s %13s %13s %9s %9s\n", "layer", "gamma", "sigma", "LIS", "model", "rank_max/mean",
           "model", "persist", "model");
    for (int l = 0; l < f.layers; l++)
        printf("%5d %7.3f %7.3f %9.3f %9.3f %13.3f %13.3f %9.3f %9.3f\n", l + 1, f.gamma[l], f.sigma[l],
               f.real[0][l], f.model[0][l], f.real[1][l], f.model[1][l], f.real[2][l], f.model[2][l]);
    printf("(model: the fit's expected values; check with `mplb trace stats %s --workload %s`)\n", in, out);
    mplb_wl_fit_free(&f);
    mplb_trace_free(&t);
    return 0;
}

/* A trace generated by a workload file for a model shape: the synthetic
 * workload's statistics through the same `trace stats`. */
static int trace_gen(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *preset = NULL;
    mplb_model m = {.layers = 0};
    int steps = 0, force = 0;
    long long tokens = 0;
    uint64_t seed = 1;
    const char *bad_int = NULL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &m.layers, &bad_int), i++;
        else if (!strcmp(argv[i], "--experts") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &m.experts, &bad_int), i++;
        else if (!strcmp(argv[i], "--top-k") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &m.top_k, &bad_int), i++;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &steps, &bad_int), i++;
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return mplb_cli_usage_error("trace gen", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (bad_int) return mplb_cli_usage_error("trace gen", trace_usage, "%s needs a whole number", bad_int);
    if (preset && mplb_model_preset(preset, &m) < 0)
        return mplb_cli_usage_error("trace gen", trace_usage, "unknown model preset '%s'", preset);
    if (!in || !out || m.layers < 1 || m.experts < 1 || m.top_k < 1 || m.top_k > m.experts || m.top_k > 64 ||
        steps < 0 || tokens < 0)
        return mplb_cli_usage_error("trace gen", trace_usage, "%s",
                                    "needs W.lua, -o OUT.h5 and a model shape (--model or --layers/--experts/--top-k)");
    if (!preset) snprintf(m.name, sizeof m.name, "custom");
    mplb_workload_cfg w;
    mplb_err err = {0};
    if (mplb_workload_load(in, &w, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    if (tokens > 0) w.tokens = tokens;
    mplb_trace t;
    int rc = mplb_wl_to_trace(&w, &m, steps > 0 ? steps : w.steps, seed, &t, &err);
    mplb_workload_cfg_free(&w);
    if (rc == 0) {
        snprintf(t.source, sizeof t.source, "mplb trace gen %.400s (seed %llu)", in, (unsigned long long)seed);
        rc = mplb_trace_write(out, &t, force, &err);
    }
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    printf("wrote %s: %d steps x %d layers x %d experts, top-%d\n", out, t.steps, t.layers, t.experts, t.top_k);
    mplb_trace_free(&t);
    return 0;
}

static int trace_stats(int argc, char **argv) {
    const char *path = NULL, *wpath = NULL;
    int R = 8, top = 0, json = 0, gsteps = 0;
    long long gtokens = 0;
    uint64_t seed = 1;
    const char *bad_int = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--workload") && i + 1 < argc) wpath = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &gsteps, &bad_int), i++;
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) gtokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &R, &bad_int), i++;
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &top, &bad_int), i++;
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else return mplb_cli_usage_error("trace stats", trace_usage, "unexpected argument '%s'", argv[i]);
    }
    if (bad_int) return mplb_cli_usage_error("trace stats", trace_usage, "%s needs a whole number", bad_int);
    if (!path || R < 1 || R > 1024 || gsteps < 0 || gtokens < 0)
        return mplb_cli_usage_error("trace stats", trace_usage, "%s", "needs FILE.h5 (and --ranks R in 1..1024)");
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
    int rc = wpath ? stats_side_by_side(&t, wpath, R, top, gsteps, gtokens, seed) : 0;
    mplb_trace_free(&t);
    return rc;
}

int mplb_cmd_trace(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, trace_usage)) return 0;
    if (argc >= 2 && !strcmp(argv[1], "import")) return trace_import(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "stats")) return trace_stats(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "fit")) return trace_fit(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "gen")) return trace_gen(argc, argv);
    return mplb_cli_usage_error("trace", trace_usage, "%s",
                                argc >= 2 ? "expected import, stats, fit or gen" : "missing import, stats, fit or gen");
}
