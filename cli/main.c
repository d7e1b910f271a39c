#define _XOPEN_SOURCE 700 /* realpath */
/* mplb: the command-line front end. A table of subcommands (like linit.c's
 * table of libraries); each returns the process exit status. */
#include "mplb.h"
#include "sweep_cli.h"
#ifdef MPLB_HAVE_MPI
#include "mplb/ep_mpi.h"
#endif
#ifdef MPLB_HAVE_CUDA
#include "mplb/cuda.h"
#endif

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static const char *usage_text =
    "usage: mplb <command> [options]\n"
    "\n"
    "commands:\n"
    "  run EXP.lua [-o FILE.h5] [--policy NAME|FILE]... [--set key=value]... [--force | --resume]\n"
    "              [--backend model|cpu]   (cpu: run every expert's FFN for real, timed)\n"
    "              [--transport mpi]       (with cpu, under mpirun -np RANKS: real EP layers across processes)\n"
    "              run an experiment with the cost model; writes one HDF5 run file\n"
    "  inspect FILE.h5 [--json] summarise a run file (also a running or killed one)\n"
    "  sweep EXP.lua -o DIR [-j N] [--set key=value]... [--resume]\n"
    "              run every point of the experiment's list-valued fields (sweep axes);\n"
    "              under mpirun the points are divided across ranks\n"
    "  report RUN.h5|SWEEP_DIR -o DIR\n"
    "              figures (PNG) and an HTML page (needs the Python analysis package)\n"
    "  policy check FILE.lua [--param key=value]...\n"
    "              run a policy on a small built-in workload and report problems\n"
    "  trace import INPUT.(csv|npy) -o OUT.h5 --top-k K [--experts E] [--model NAME] [--force]\n"
    "  trace stats FILE.h5 [--ranks R] [--top N]\n"
    "              convert routing data to an mplb trace; print its skew statistics\n"
    "  calibrate --backend cpu|cuda [-o profiles/NAME.lua] [--quick]\n"
    "              measure this machine (OpenBLAS GEMM, memory, conversion) and write a profile\n"
    "  calibrate --accuracy [--weights FILE.safetensors [--prefix NAME]] [-o FILE.lua]\n"
    "              per-format FFN error of the CPU kernel against float64 (the error proxy's table)\n"
    "  --help, --version\n"
    "\n"
    "Policies and profiles are looked up beside the experiment, in ./policies,\n"
    "./profiles, $MPLB_DATA_DIR and the install's data directory.\n";

static int cmd_help(int argc, char **argv) { (void)argc; (void)argv; fputs(usage_text, stdout); return 0; }

static int cmd_version(int argc, char **argv) {
    (void)argc; (void)argv;
    printf("mplb %s (git %s)\n", MPLB_VERSION, mplb_git_revision());
    return 0;
}

/* device: what backend "cuda" ran on */
static void print_summary(const mplb_run_summary *sum, const mplb_exp *x, const char *out, const char *device) {
    int w = 14;
    for (int i = 0; i < sum->n_policies; i++)
        if ((int)strlen(sum->pol[i].name) > w) w = (int)strlen(sum->pol[i].name);
    printf("%-*s %10s %12s %9s %10s %12s %10s\n", w, "policy", "layer_us", "baseline_us", "speedup",
           "imbalance", "error_proxy", "decide_us");
    for (int i = 0; i < sum->n_policies; i++) {
        const mplb_policy_summary *p = &sum->pol[i];
        if (p->rows == 0) continue;
        double n = (double)p->rows;
        printf("%-*s %10.1f %12.1f %8.3fx %10.3f %12.4f %10.2f\n", w, p->name, p->sum_t_layer / n,
               p->sum_t_baseline / n, p->sum_t_layer > 0 ? p->sum_t_baseline / p->sum_t_layer : 1.0,
               p->sum_imbalance / n, p->sum_error_proxy / n, p->sum_decide_us / n);
    }
    if (!strcmp(x->backend, "cpu") && x->transport_used)
        printf("(times: measured, every EP layer run for real across %d MPI processes on this machine (dispatch, "
               "experts, combine; online conversion beside the dispatch); error_proxy from the weight-error table;",
               x->cluster.nodes * x->cluster.gpus_per_node);
    else if (!strcmp(x->backend, "cpu"))
        printf("(times: expert compute and weight conversion measured on this CPU (ranks run in turn), "
               "dispatch/combine from the cost model with profile %s; error_proxy = measured relative error "
               "vs bf16 experts;", x->cluster.profile);
    else if (!strcmp(x->backend, "cuda"))
        printf("(times: expert FFNs (cuBLASLt; nvfp4/mxfp4 weight-only: dequantize + BF16 GEMM) and online conversion "
               "measured on %s (ranks run in turn), dispatch/combine from the cost model with profile %s; error_proxy "
               "= measured relative error vs bf16 experts on the device;", device, x->cluster.profile);
    else printf("(times: cost model, profile %s;", x->cluster.profile);
    printf(" %d ranks on %d node(s), %s, %d steps x %d layers; decide_us measured on this machine)\n", x->cluster.nodes * x->cluster.gpus_per_node, x->cluster.nodes, x->model.name,
           x->workload.steps, x->model.layers);
    printf("run file: %s\n", out);
}

static int join_cmd(int argc, char **argv, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", argv[i]);
    return 0;
}

static int cmd_run(int argc, char **argv) {
    const char *exp_path = NULL, *out = NULL;
    int force = 0, resume = 0, n_sets = 0, n_pol = 0;
    const char *transport = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    const char **pols = calloc((size_t)argc + 1, sizeof *pols);
    if (!sets || !pols) { free(sets); free(pols); fprintf(stderr, "mplb: out of memory\n"); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--set") && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (!strcmp(a, "--policy") && i + 1 < argc) pols[n_pol++] = argv[++i];
        else if (!strcmp(a, "--transport") && i + 1 < argc) transport = argv[++i];
        else if (!strcmp(a, "--backend") && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "model") && strcmp(argv[i], "cpu") && strcmp(argv[i], "cuda")) {
                fprintf(stderr, "mplb run: unknown backend '%s' (known: model, cpu, cuda)\n", argv[i]);
                free(sets); free(pols);
                return 2;
            }
            sets[n_sets++] = !strcmp(argv[i], "cpu") ? "backend=\"cpu\"" : !strcmp(argv[i], "cuda") ? "backend=\"cuda\"" : "backend=\"model\"";
        }
        else if (!strcmp(a, "--force")) force = 1;
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (a[0] == '-') {
            fprintf(stderr, "mplb run: unknown option '%s'\n%s", a, usage_text);
            free(sets); free(pols);
            return 2;
        } else if (!exp_path) exp_path = a;
        else { fprintf(stderr, "mplb run: unexpected argument '%s'\n", a); free(sets); free(pols); return 2; }
    }
    if (!exp_path) { fprintf(stderr, "mplb run: missing EXP.lua\n%s", usage_text); free(sets); free(pols); return 2; }
    /* --policy replaces the experiment's list, through the same --set path so
     * the run file's resolved config says what ran. */
    char *polset = NULL;
    if (n_pol) {
        size_t cap = 32;
        for (int i = 0; i < n_pol; i++) cap += strlen(pols[i]) * 4 + 8;
        polset = malloc(cap);
        size_t n = (size_t)snprintf(polset, cap, "policies={");
        for (int i = 0; i < n_pol; i++) {
            n += (size_t)snprintf(polset + n, cap - n, "\"");
            for (const char *c = pols[i]; *c; c++) {
                if (*c == '"' || *c == '\\') polset[n++] = '\\';
                polset[n++] = *c;
            }
            n += (size_t)snprintf(polset + n, cap - n, "\",");
        }
        snprintf(polset + n, cap - n, "}");
        sets[n_sets++] = polset;
    }
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load(exp_path, sets, n_sets, &x, &err);
    free(sets); free(pols); free(polset);
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    char def_out[MPLB_PATH_MAX];
    if (!out) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        mkdir("runs", 0777);
        snprintf(def_out, sizeof def_out, "runs/%s-%s.h5", x.name, stamp);
        out = def_out;
    }
    char cmdline[4096];
    join_cmd(argc + 1, argv - 1, cmdline, sizeof cmdline);
    if (resume && force) { fprintf(stderr, "mplb run: --resume and --force exclude each other\n"); mplb_exp_free(&x); return 2; }
    if (resume && out == def_out) {
        fprintf(stderr, "mplb run: --resume needs -o FILE (the run to continue)\n");
        mplb_exp_free(&x);
        return 2;
    }
    mplb_run_opts o = {.out_path = out, .force = force, .resume = resume, .command = cmdline};
    int rank = 0;
#ifdef MPLB_HAVE_MPI
    mplb_ep_mpi mctx;
    mplb_ep_transport tp;
#endif
    if (transport && strcmp(x.backend, "cpu") != 0) {
        fprintf(stderr, "mplb run: --transport runs real EP layers on the cpu backend (this run's backend: %s)\n", x.backend);
        mplb_exp_free(&x);
        return 2;
    }
    if (transport) {
#ifdef MPLB_HAVE_MPI
        if (strcmp(transport, "mpi") != 0) {
            fprintf(stderr, "mplb run: unknown transport '%s' (known: mpi)\n", transport);
            mplb_exp_free(&x);
            return 2;
        }
        MPI_Init(NULL, NULL);
        mplb_ep_mpi_transport(&mctx, MPI_COMM_WORLD, &tp, &err);
        tp.topo.gpus_per_node = x.cluster.gpus_per_node;   /* node dedup follows the experiment's cluster */
        rank = tp.rank;
        o.transport = &tp;
        if (rank != 0) o.out_path = NULL;   /* rank 0 gathers and writes the one run file */
#else
        fprintf(stderr, "mplb run: this mplb was built without MPI: no --transport\n");
        mplb_exp_free(&x);
        return 2;
#endif
    }
    char device[128] = "";
#ifdef MPLB_HAVE_CUDA
    mplb_cuda *cuda = NULL;
    mplb_exec_device dev;
    memset(&dev, 0, sizeof dev);
    if (!strcmp(x.backend, "cuda")) {
        if (mplb_cuda_open(0, &cuda, &err) < 0 || mplb_cuda_exec_device(cuda, &dev, &err) < 0) {
            fprintf(stderr, "mplb run: backend cuda: %s\n", err.msg);
            mplb_cuda_close(cuda);
            mplb_exp_free(&x);
            return 1;
        }
        o.device = &dev;
        snprintf(device, sizeof device, "%s", dev.name);
    }
#else
    if (!strcmp(x.backend, "cuda")) {
        fprintf(stderr, "mplb run: this mplb was built without CUDA: no backend cuda\n");
        mplb_exp_free(&x);
        return 2;
    }
#endif
    mplb_run_summary sum;
    x.transport_used = transport != NULL;
    rc = mplb_run(&x, &o, &sum, &err);
#ifdef MPLB_HAVE_CUDA
    if (cuda) { mplb_cuda_exec_device_free(&dev); mplb_cuda_close(cuda); }
#endif
    if (rc < 0) {
        fprintf(stderr, "mplb: %s\n", err.msg);
        if ((rc == MPLB_EPOLICY || rc == MPLB_ELIMIT) && sum.n_policies) fprintf(stderr, "mplb: rows written so far are kept in %s (status: failed)\n", out);
    } else if (rank == 0) {
        if (sum.resumed_steps) printf("resumed: %d step(s) kept from %s\n", sum.resumed_steps, out);
        print_summary(&sum, &x, out, device);
    }
#ifdef MPLB_HAVE_MPI
    if (transport) MPI_Finalize();
#endif
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    return rc < 0 ? 1 : 0;
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

static int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!path) path = argv[i];
        else { fprintf(stderr, "mplb inspect: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!path) { fprintf(stderr, "mplb inspect: missing FILE.h5\n"); return 2; }
    mplb_runfile_info info;
    mplb_err err = {0};
    if (mplb_runfile_read(path, &info, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    const char *note = info.unclosed ? "not closed: still running, or killed (mplb run --resume continues it)" : "";
    if (json) {
        printf("{\"file\": "); json_str(path);
        printf(", \"status\": "); json_str(info.status);
        printf(", \"closed\": %s, \"error\": ", info.unclosed ? "false" : "true"); json_str(info.error);
        printf(", \"schema_version\": "); json_str(info.schema_version);
        printf(", \"mplb_version\": "); json_str(info.mplb_version);
        printf(", \"command\": "); json_str(info.command);
        printf(", \"times_source\": "); json_str(info.times_source ? info.times_source : "");
        printf(", \"seed\": %llu, \"ranks\": %d, \"experts\": %d, \"rows\": %lld, \"policies\": [",
               (unsigned long long)info.seed, info.R, info.E, (long long)info.n_rows);
    } else {
        printf("file:     %s\n", path);
        printf("status:   %s%s%s\n", info.status, note[0] ? " — " : "", note);
        if (info.error && info.error[0]) printf("error:    %s\n", info.error);
        printf("schema:   %s (written by mplb %s)\n", info.schema_version, info.mplb_version);
        printf("command:  %s\n", info.command ? info.command : "");
        printf("seed:     %llu\n", (unsigned long long)info.seed);
        if (info.times_source) printf("times:    %s\n", info.times_source);
        printf("ranks:    %d   experts: %d   rows: %lld\n", info.R, info.E, (long long)info.n_rows);
        printf("%-34s %6s %10s %12s %9s %10s %12s\n", "policy", "rows", "layer_us", "baseline_us", "speedup", "imbalance", "error_proxy");
    }
    for (int p = 0; p < info.n_policies; p++) {
        double tl = 0, tb = 0, im = 0, ep = 0;
        long n = 0;
        for (int64_t i = 0; i < info.n_rows; i++) {
            const mplb_step_row *r = &info.rows[i];
            if (r->policy != p) continue;
            n++; tl += r->t_layer_us; tb += r->t_baseline_us; im += r->imbalance; ep += r->error_proxy;
        }
        double dn = n ? (double)n : 1;
        if (json) {
            printf("%s{\"name\": ", p ? ", " : "");
            json_str(info.policy_names[p]);
            printf(", \"rows\": %ld, \"mean_t_layer_us\": %.6g, \"mean_t_baseline_us\": %.6g, \"speedup\": %.6g, "
                   "\"mean_imbalance\": %.6g, \"mean_error_proxy\": %.6g}",
                   n, tl / dn, tb / dn, tl > 0 ? tb / tl : 1.0, im / dn, ep / dn);
        } else if (!n) printf("%-34s %6d\n", info.policy_names[p], 0);
        else
            printf("%-34s %6ld %10.1f %12.1f %8.3fx %10.3f %12.4f\n", info.policy_names[p], n, tl / dn, tb / dn,
                   tl > 0 ? tb / tl : 1.0, im / dn, ep / dn);
    }
    if (json) printf("]}\n");
    mplb_runfile_info_free(&info);
    return 0;
}

static int cmd_calibrate(int argc, char **argv) {
    const char *backend = NULL, *out = NULL;
    mplb_calib_opts o = {0};
    mplb_acc_opts ao = {0};
    int accuracy = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quick")) { o.max_tokens = 256; o.min_seconds = 0.01; ao.tokens = 16; }
        else if (!strcmp(argv[i], "--accuracy")) accuracy = 1;
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) ao.weights = argv[++i];
        else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) ao.prefix = argv[++i];
        else { fprintf(stderr, "mplb calibrate: unknown argument '%s'\n", argv[i]); return 2; }
    }
    if (accuracy && !backend) backend = "cpu";
    if (!backend) { fprintf(stderr, "mplb calibrate: --backend is required (cpu or cuda)\n"); return 2; }
    int gpu = !strcmp(backend, "cuda") || !strcmp(backend, "gpu");
    if (strcmp(backend, "cpu") != 0 && !gpu) {
        fprintf(stderr, "mplb calibrate: unknown backend '%s' (known: cpu, cuda)\n", backend);
        return 2;
    }
#ifndef MPLB_HAVE_CUDA
    if (gpu) { fprintf(stderr, "mplb calibrate: this mplb was built without CUDA: no --backend %s\n", backend); return 2; }
#endif
    if (gpu && accuracy) { fprintf(stderr, "mplb calibrate: --accuracy runs on the cpu backend\n"); return 2; }
    char name[MPLB_NAME_MAX];
    snprintf(name, sizeof name, "%s", gpu ? "cuda" : "cpu");
    if (out) {
        const char *b = strrchr(out, '/');
        snprintf(name, sizeof name, "%s", b ? b + 1 : out);
        char *dot = strstr(name, ".lua");
        if (dot) *dot = 0;
    }
    o.name = name;
    /* write to a temporary file first: a failed calibration leaves no half profile */
    char tmp[MPLB_PATH_MAX];
    FILE *f = stdout;
    if (out) {
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        f = fopen(tmp, "w");
        if (!f) { fprintf(stderr, "mplb calibrate: cannot write %s\n", tmp); return 1; }
    }
    mplb_err err = {0};
    int rc;
    if (accuracy) rc = mplb_calibrate_accuracy(&ao, f, &err);
#ifdef MPLB_HAVE_CUDA
    else if (gpu) rc = mplb_calibrate_gpu(&o, f, &err);
#endif
    else rc = mplb_calibrate_cpu(&o, f, &err);
    if (out) {
        if (fclose(f) != 0 && rc == 0) rc = mplb_err_set(&err, MPLB_EIO, "%s: write error", tmp);
        if (rc == 0 && rename(tmp, out) != 0) rc = mplb_err_set(&err, MPLB_EIO, "cannot rename %s to %s", tmp, out);
        if (rc < 0) remove(tmp);
    }
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    if (out && accuracy) fprintf(stderr, "mplb: wrote accuracy table %s (use it as accuracy = \"%s\")\n", out, out);
    else if (out) fprintf(stderr, "mplb: wrote profile %s (use it as cluster.profile = \"%s\")\n", out, out);
    return 0;
}

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

static int cmd_policy(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: mplb policy check FILE.lua [--param key=value]...\n");
        return 2;
    }
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
        else { fprintf(stderr, "mplb trace import: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!in || !out || k < 1) {
        fprintf(stderr, "usage: mplb trace import INPUT.(csv|npy) -o OUT.h5 --top-k K [--experts E] [--model NAME] [--force]\n");
        return 2;
    }
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

static int trace_stats(int argc, char **argv) {
    const char *path = NULL;
    int R = 8, top = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--ranks") && i + 1 < argc) R = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) top = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else { fprintf(stderr, "mplb trace stats: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!path || R < 1) { fprintf(stderr, "usage: mplb trace stats FILE.h5 [--ranks R] [--top N]\n"); return 2; }
    mplb_trace t;
    mplb_err err = {0};
    if (mplb_trace_read(path, &t, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    if (top < 1) top = t.top_k;
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

static int cmd_trace(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "import")) return trace_import(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "stats")) return trace_stats(argc, argv);
    fprintf(stderr, "usage: mplb trace import|stats ...\n");
    return 2;
}

int mplb_read_file_text(const char *path, char **out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *buf = calloc(4097, 1);
    size_t n = buf ? fread(buf, 1, 4096, f) : 0;
    fclose(f);
    if (!buf) return -1;
    buf[n] = 0;
    *out = buf;
    return 0;
}

/* mplb report: the Python analysis package draws the figures. Run it with
 * $MPLB_PYTHON, else the project's .venv, else python3 on PATH. */
static int cmd_report(int argc, char **argv) {
    char py[MPLB_PATH_MAX];
    const char *env = getenv("MPLB_PYTHON");
    if (env) snprintf(py, sizeof py, "%s", env);
    else {
        snprintf(py, sizeof py, "%s/.venv/bin/python", MPLB_SOURCE_DIR);
        if (access(py, X_OK) != 0) snprintf(py, sizeof py, "python3");
    }
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) return 1;
    args[0] = py;
    args[1] = "-m";
    args[2] = "mplb.report";
    for (int i = 1; i < argc; i++) args[i + 2] = argv[i];
    execvp(py, args);
    fprintf(stderr, "mplb report: cannot run %s (%s); install the analysis package: make setup\n", py, strerror(errno));
    free(args);
    return 1;
}

static const struct { const char *name; int (*fn)(int, char **); } commands[] = {
    {"report", cmd_report},
    {"sweep", mplb_cmd_sweep},
    {"trace", cmd_trace},
    {"policy", cmd_policy},
    {"calibrate", cmd_calibrate},
    {"run", cmd_run},
    {"inspect", cmd_inspect},
    {"help", cmd_help},
    {"--help", cmd_help},
    {"-h", cmd_help},
    {"--version", cmd_version},
    {"version", cmd_version},
};

int main(int argc, char **argv) {
    /* Keep large buffers (dispatch rows, partial sums, activations) on the
     * heap rather than in fresh mmap'ed pages: a layer's exchange otherwise
     * spends most of its time faulting new pages in (bench/dispatch). */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (argc < 2) { fputs(usage_text, stderr); return 2; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mplb: unknown command '%s'\n%s", argv[1], usage_text);
    return 2;
}
