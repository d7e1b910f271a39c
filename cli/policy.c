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
 * by 8), top-4, 3 layers, 4 steps of 4096 tokens, half vision. */
static const char *check_exp =
    "return {\n"
    "  name = 'policy-check',\n"
    "  model = { layers = 3, experts = 60, top_k = 4, hidden = 1024, ffn = 512 },\n"
    "  cluster = { nodes = 2, gpus_per_node = 4, profile = 'h100' },\n"
    "  workload = { steps = 4, tokens = 4096, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5 },\n"
    "  policies = { 'baseline', { %s%s } },\n"
    "  seed = 1,\n"
    "}\n";

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
    const char *file = argv[2];
    char params[2048] = "", quoted[1200];
    size_t n = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--param") && i + 1 < argc && strchr(argv[i + 1], '='))
            n += (size_t)snprintf(params + n, sizeof params - (n < sizeof params ? n : sizeof params), ", %s", argv[++i]);
        else { fprintf(stderr, "mplb policy check: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    FILE *pf = fopen(file, "r");
    if (!pf) { fprintf(stderr, "mplb: %s: cannot open\n", file); return 1; }
    fclose(pf);
    char abs[MPLB_PATH_MAX];
    if (file[0] == '/' || !realpath(file, abs)) snprintf(abs, sizeof abs, "%s", file);
    size_t q = 0;
    quoted[q++] = '"';
    for (const char *c = abs; *c && q < sizeof quoted - 3; c++) {
        if (*c == '"' || *c == '\\') quoted[q++] = '\\';
        quoted[q++] = *c;
    }
    quoted[q++] = '"';
    quoted[q] = 0;
    char dir[] = "/tmp/mplb-check-XXXXXX";
    if (!mkdtemp(dir)) { fprintf(stderr, "mplb: cannot make a temporary directory\n"); return 1; }
    char exp_path[MPLB_PATH_MAX], out[MPLB_PATH_MAX];
    snprintf(exp_path, sizeof exp_path, "%s/check.lua", dir);
    snprintf(out, sizeof out, "%s/check.h5", dir);
    FILE *f = fopen(exp_path, "w");
    if (!f) { fprintf(stderr, "mplb: cannot write %s\n", exp_path); return 1; }
    fprintf(f, check_exp, quoted, params);
    fclose(f);
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load(exp_path, NULL, 0, &x, &err);
    mplb_run_summary sum = {0};
    if (rc == 0) {
        mplb_run_opts o = {.out_path = out, .command = "mplb policy check"};
        rc = mplb_run(&x, &o, &sum, &err);
    }
    if (rc < 0) fprintf(stderr, "mplb: %s\n", err.msg);
    else {
        printf("%s: ok on the check workload (8 ranks on 2 nodes, 60 experts, top-4, 3 layers x 4 steps)\n", file);
        const mplb_policy_summary *b = &sum.pol[0], *p = &sum.pol[1];
        printf("  speedup %.3fx over baseline (cost model, h100), error proxy %.4f, decide %.2f us per call\n",
               p->sum_t_layer > 0 ? b->sum_t_layer / p->sum_t_layer : 1.0, p->sum_error_proxy / (double)p->rows,
               p->sum_decide_us / (double)p->rows);
        mplb_exp_free(&x);
    }
    mplb_run_summary_free(&sum);
    remove(out);
    remove(exp_path);
    rmdir(dir);
    return rc < 0 ? 1 : 0;
}
