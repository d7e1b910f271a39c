#define _XOPEN_SOURCE 700 /* realpath */
/* mplb policy check: load a policy and run it on a small experiment. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* The built-in check workload: 2 nodes x 4 GPUs, 60 experts (not divisible
 * by 8), top-4, 3 layers, 16 steps: every 4th a 4096-token prefill, half
 * vision, the others 256-token decodes; three task families drifting, so
 * routing changes from step to step. */
static const char *check_exp =
    "return {\n"
    "  name = 'policy-check',\n"
    "  model = { layers = 3, experts = 60, top_k = 4, hidden = 1024, ffn = 512 },\n"
    "  cluster = { nodes = 2, gpus_per_node = 4, profile = 'h100' },\n"
    "  workload = { steps = 16, tokens = 4096, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5,\n"
    "               prefill_every = 4, decode_tokens = 256, families = 3, drift = 0.5, drift_period = 8 },\n"
    "  policies = { 'baseline' },\n"
    "  seed = 1,\n"
    "}\n";

/* What the checked policy (index 1) chose, summed over its (step, layer)s. */
typedef struct check_tally {
    int R, E, calls, acted;
    double *prec;          /* [R * MPLB_PREC_COUNT] experts homed on r at each precision */
    double *replicas;      /* [R] copies held beyond the home ones */
    double *moved_out, *moved_in; /* [R] tokens */
    double decide_sum, decide_max;
    int dispatch[MPLB_PREC_COUNT];
} check_tally;

static void on_plan(void *ctx, int policy, int step, int layer, const mplb_plan *plan, double decide_us) {
    (void)step; (void)layer;
    check_tally *t = ctx;
    if (policy != 1) return;
    t->calls++;
    t->decide_sum += decide_us;
    if (decide_us > t->decide_max) t->decide_max = decide_us;
    int acted = plan->placement_changed || plan->n_moves > 0 || plan->dispatch_prec != MPLB_PREC_BF16;
    const mplb_placement *pl = &plan->placement;
    for (int e = 0; e < plan->E; e++) {
        t->prec[(size_t)pl->home[e] * MPLB_PREC_COUNT + plan->expert_prec[e]] += 1;
        acted |= plan->expert_prec[e] != MPLB_PREC_BF16;
        for (int i = 1; i < pl->copies[e]; i++) t->replicas[pl->ranks[(size_t)e * pl->R + i]] += 1;
    }
    for (int m = 0; m < plan->n_moves; m++) {
        t->moved_out[plan->moves[m].from] += plan->moves[m].n;
        t->moved_in[plan->moves[m].to] += plan->moves[m].n;
    }
    t->dispatch[plan->dispatch_prec]++;
    t->acted += acted;
}

static void print_tally(const check_tally *t) {
    double n = t->calls ? t->calls : 1;
    printf("  acted on %d of %d (step, layer)s; decide %.2f us mean, %.2f us max (measured here)\n", t->acted, t->calls,
           t->decide_sum / n, t->decide_max);
    printf("  per rank, mean per layer: experts homed there by precision, replicas held, tokens moved out/in\n");
    printf("  %4s  %-44s %9s %10s %10s\n", "rank", "experts by precision", "replicas", "moved_out", "moved_in");
    for (int r = 0; r < t->R; r++) {
        char fmt[256] = "";
        size_t k = 0;
        for (int p = 0; p < MPLB_PREC_COUNT; p++) {
            double v = t->prec[(size_t)r * MPLB_PREC_COUNT + p] / n;
            if (v > 0 && k < sizeof fmt) k += (size_t)snprintf(fmt + k, sizeof fmt - k, "%s%s %.2f", k ? ", " : "", mplb_prec_name(p), v);
        }
        printf("  %4d  %-44s %9.2f %10.1f %10.1f\n", r + 1, fmt[0] ? fmt : "-", t->replicas[r] / n, t->moved_out[r] / n,
               t->moved_in[r] / n);
    }
    for (int p = 0; p < MPLB_PREC_COUNT; p++)
        if (p != MPLB_PREC_BF16 && t->dispatch[p])
            printf("  dispatch in %s on %d of %d (step, layer)s\n", mplb_prec_name(p), t->dispatch[p], t->calls);
}

static const char policy_usage[] =
    "usage: mplb policy check FILE.lua [--param key=value]... [--experiment EXP.lua] [--steps N]\n"
    "Run a policy beside the baseline and show what it chose: per rank the precisions of its experts,\n"
    "replicas and token moves, its speedup, error proxy and decide time. Errors of any step are caught\n"
    "and shown with the policy's file:line.\n"
    "  --param key=value    a parameter, read as --set values are (a bare word is a string): low=nvfp4\n"
    "  --experiment EXP     on your experiment (its model, cluster, workload) instead of the built-in one\n"
    "                       (2 nodes x 4 GPUs, 60 experts, top-4, 3 layers, 4096 tokens, half vision)\n"
    "  --steps N            steps to run (default: the experiment's, 4 on the built-in one)\n"
    "Exit status: 0 ok, 1 the policy failed (or a file is missing), 2 usage error.\n";

int mplb_cmd_policy(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, policy_usage)) return 0;
    if (argc < 3 || strcmp(argv[1], "check") != 0)
        return mplb_cli_usage_error("policy", policy_usage, "%s", argc < 2 || strcmp(argv[1], "check") ? "expected: policy check FILE.lua" : "missing FILE.lua");
    const char *file = NULL, *user_exp = NULL;
    int steps = 0;
    const char **sets = calloc((size_t)argc + 4, sizeof *sets);
    char **owned = calloc((size_t)argc + 4, sizeof *owned);
    int n_sets = 0, n_owned = 0, rc = 0;
    if (!sets || !owned) { free(sets); free(owned); return 1; }
    char abs[MPLB_PATH_MAX], polset[2 * MPLB_PATH_MAX + 64], stepset[64];
    for (int i = 2; i < argc && rc == 0; i++) {
        if (!strcmp(argv[i], "--param") && i + 1 < argc) {
            const char *kv = argv[++i];
            if (!strchr(kv, '=') || kv[0] == '=') { rc = 2; mplb_cli_usage_error("policy check", policy_usage, "--param '%s': expected key=value", kv); break; }
            /* read as --set values are: policies[2].key=value */
            size_t cap = strlen(kv) + 16;
            char *s = malloc(cap);
            if (!s) { rc = 1; break; }
            snprintf(s, cap, "policies[2].%s", kv);
            owned[n_owned++] = s;
        } else if (!strcmp(argv[i], "--experiment") && i + 1 < argc) user_exp = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1) { rc = 2; mplb_cli_usage_error("policy check", policy_usage, "--steps '%s': expected a positive integer", argv[i]); }
            steps = (int)v;
        } else if (argv[i][0] != '-' && !file) file = argv[i];
        else { rc = 2; mplb_cli_usage_error("policy check", policy_usage, "unexpected argument '%s'", argv[i]); }
    }
    if (rc == 0 && !file) rc = 2, mplb_cli_usage_error("policy check", policy_usage, "%s", "missing FILE.lua");
    FILE *pf = rc == 0 ? fopen(file, "r") : NULL;
    if (rc == 0 && !pf) { fprintf(stderr, "mplb: %s: cannot open\n", file); rc = 1; }
    if (pf) fclose(pf);
    char dir[] = "/tmp/mplb-check-XXXXXX", exp_path[MPLB_PATH_MAX] = "", out[MPLB_PATH_MAX] = "";
    int made_dir = 0;
    if (rc == 0 && !mkdtemp(dir)) { fprintf(stderr, "mplb: cannot make a temporary directory\n"); rc = 1; }
    else if (rc == 0) made_dir = 1;
    mplb_exp x;
    memset(&x, 0, sizeof x);
    mplb_err err = {0};
    mplb_run_summary sum = {0};
    char note[600] = "";
    if (rc == 0) {
        if (file[0] == '/' || !realpath(file, abs)) snprintf(abs, sizeof abs, "%s", file);
        /* the compared set: the baseline and the policy, whatever the experiment lists */
        size_t q = (size_t)snprintf(polset, sizeof polset, "policies={\"baseline\",\"");
        for (const char *c = abs; *c && q < sizeof polset - 4; c++) {
            if (*c == '"' || *c == '\\') polset[q++] = '\\';
            polset[q++] = *c;
        }
        snprintf(polset + q, sizeof polset - q, "\"}");
        sets[n_sets++] = polset;
        for (int k = 0; k < n_owned; k++) sets[n_sets++] = owned[k];
        if (steps) { snprintf(stepset, sizeof stepset, "workload.steps=%d", steps); sets[n_sets++] = stepset; }
        snprintf(out, sizeof out, "%s/check.h5", dir);
        if (!user_exp) {
            snprintf(exp_path, sizeof exp_path, "%s/check.lua", dir);
            FILE *f = fopen(exp_path, "w");
            if (!f) { fprintf(stderr, "mplb: cannot write %s\n", exp_path); rc = 1; }
            else { fputs(check_exp, f); fclose(f); }
            if (rc == 0 && mplb_exp_load(exp_path, sets, n_sets, &x, &err) < 0) rc = 1;
            snprintf(note, sizeof note, "the check workload (built in: 8 ranks on 2 nodes, 60 experts, top-4, 3 layers x %d steps, "
                     "prefill 4096 / decode 256 tokens)", steps ? steps : 16);
        } else {
            /* a sweep's first point: the same checks as mplb sweep's */
            mplb_sweep sw;
            char *src = NULL;
            /* expand with --steps only: the experiment's zip may name its own policies' axes */
            if (mplb_sweep_expand(user_exp, steps ? &sets[n_sets - 1] : NULL, steps ? 1 : 0, &sw, &err) < 0) rc = 1;
            else {
                if (mplb_cli_slurp(user_exp, &src) < 0) src = NULL;
                char base[MPLB_PATH_MAX];
                snprintf(base, sizeof base, "%s", user_exp);
                char *slash = strrchr(base, '/');
                if (slash) *slash = 0; else snprintf(base, sizeof base, ".");
                if (mplb_exp_load_text(sw.points[0].text, user_exp, src, base, sets, n_sets, &x, &err) < 0) rc = 1;
                if (sw.n_points > 1) snprintf(note, sizeof note, "%s, point 1 of its %d sweep points (%s)", user_exp, sw.n_points, sw.points[0].label);
                else snprintf(note, sizeof note, "%s", user_exp);
                free(src);
                mplb_sweep_free(&sw);
            }
        }
    }
    if (rc == 0) mplb_cli_warnings(&x);
    check_tally t = {0};
    if (rc == 0) {
        int R = x.cluster.nodes * x.cluster.gpus_per_node;
        t.R = R;
        t.E = x.model.experts;
        t.prec = calloc((size_t)R * MPLB_PREC_COUNT, sizeof *t.prec);
        t.replicas = calloc((size_t)R, sizeof *t.replicas);
        t.moved_out = calloc((size_t)R, sizeof *t.moved_out);
        t.moved_in = calloc((size_t)R, sizeof *t.moved_in);
        if (!t.prec || !t.replicas || !t.moved_out || !t.moved_in) { fprintf(stderr, "mplb: out of memory\n"); rc = 1; }
    }
    if (rc == 0) {
        mplb_run_opts o = {.out_path = out, .command = "mplb policy check", .on_plan = on_plan, .hook_ctx = &t};
        if (mplb_run(&x, &o, &sum, &err) < 0) rc = 1;
    }
    if (rc == 1 && err.msg[0]) fprintf(stderr, "mplb: %s\n", err.msg);
    if (rc == 0) {
        const mplb_policy_summary *b = &sum.pol[0], *p = &sum.pol[1];
        double n = p->rows ? (double)p->rows : 1;
        printf("%s: ok on %s\n", file, note);
        printf("  %s\n", x.policies[1].label);
        printf("  speedup %.3fx over baseline (%s, profile %s), error proxy %.4f, %ld (step, layer)s\n",
               p->sum_t_layer > 0 ? b->sum_t_layer / p->sum_t_layer : 1.0,
               !strcmp(x.backend, "model") ? "cost model" : x.backend, x.cluster.profile, p->sum_error_proxy / n, p->rows);
        print_tally(&t);
    }
    free(t.prec); free(t.replicas); free(t.moved_out); free(t.moved_in);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    for (int k = 0; k < n_owned; k++) free(owned[k]);
    free(owned);
    free(sets);
    if (out[0]) remove(out);
    if (exp_path[0]) remove(exp_path);
    if (made_dir) rmdir(dir);
    return rc;
}
