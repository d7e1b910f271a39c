/* mplb run: one experiment through the run loop, and its summary table. */
#define _POSIX_C_SOURCE 200809L   /* sigaction, localtime_r */
#include "mplb.h"
#include "cli.h"
#ifdef MPLB_HAVE_MPI
#include "mplb/ep_mpi.h"
#endif
#ifdef MPLB_HAVE_CUDA
#include "mplb/cuda.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* device: what backend "cuda" ran on */
static void print_summary(const mplb_run_summary *sum, const mplb_exp *x, const char *out, const char *device) {
    int w = 14;
    for (int i = 0; i < sum->n_policies; i++)
        if ((int)strlen(sum->pol[i].name) > w) w = (int)strlen(sum->pol[i].name);
    int reps = 0;   /* measured: the repeats' min..max beside the median */
    for (int i = 0; i < sum->n_policies; i++)
        if (sum->pol[i].repeats > reps) reps = sum->pol[i].repeats;
    printf("%-*s %10s", w, "policy", "layer_us");
    if (reps > 1) printf(" %21s", "layer_us min..max");
    printf(" %12s %9s %10s %12s %10s\n", "baseline_us", "speedup", "imbalance", "error_proxy", "decide_us");
    for (int i = 0; i < sum->n_policies; i++) {
        const mplb_policy_summary *p = &sum->pol[i];
        if (p->rows == 0) continue;
        double n = (double)p->rows;
        printf("%-*s %10.1f", w, p->name, p->sum_t_layer / n);
        if (reps > 1) printf(" %10.1f..%-9.1f", p->sum_t_layer_min / n, p->sum_t_layer_max / n);
        printf(" %12.1f %8.3fx %10.3f %12.4f %10.2f\n", p->sum_t_baseline / n,
               p->sum_t_layer > 0 ? p->sum_t_baseline / p->sum_t_layer : 1.0, p->sum_imbalance / n,
               p->sum_error_proxy / n, p->sum_decide_us / n);
    }
    if (reps > 1)
        printf("(measured: each row's times are the low median of %d timed runs after warm-up, each policy's run "
               "interleaved with the baseline's; min..max: mean over rows of the runs' extremes)\n", reps);
    int measured = 0;
    for (int i = 0; i < sum->n_policies; i++) measured |= sum->pol[i].acc_rows > 0;
    if (measured) {   /* workload.kind = "lm": accuracy measured on the model's output */
        int wd = w + (sum->n_domains > 1 ? 10 : 0);   /* room for " [domain]" */
        printf("\n%-*s %12s %12s %12s %12s\n", wd, "policy", "kl", "top1_agree", "ppl_delta", "error_proxy");
        for (int i = 0; i < sum->n_policies; i++) {
            const mplb_policy_summary *p = &sum->pol[i];
            if (p->acc_rows == 0) continue;
            double n = (double)p->acc_rows;
            printf("%-*s %12.3e %12.4f %12.4f %12.4f\n", wd, p->name, p->sum_kl / n, p->sum_top1 / n, p->sum_ppl_delta / n,
                   p->rows ? p->sum_error_proxy / (double)p->rows : 0.0);
        }
        for (int g = 0; g < sum->n_domains && sum->n_domains > 1; g++) {   /* the split by text domain */
            char label[sizeof sum->pol[0].name + sizeof sum->domains[0] + 4];
            for (int i = 0; i < sum->n_policies; i++) {
                const mplb_policy_summary *p = &sum->pol[i];
                if (p->dom_rows == 0) continue;
                double n = (double)p->dom_rows;
                snprintf(label, sizeof label, "%s [%s]", p->name, sum->domains[g]);
                printf("%-*s %12.3e %12.4f %12.4f\n", wd, label, p->dom_kl[g] / n, p->dom_top1[g] / n, p->dom_ppl_delta[g] / n);
            }
        }
        printf("(accuracy: measured, %s on %d x %d tokens of text per step against its bf16 run: mean KL in nats per "
               "token, top-1 agreement, perplexity change; error_proxy is the proxy)\n", x->workload.lm,
               x->workload.lm_batch, x->workload.lm_seq);
    }
    printf("(times: %s; error_proxy column: %s%s;", sum->times_source, sum->error_metric,
           !strcmp(sum->error_metric, "weight_error_proxy") ? " (a proxy, not a measurement)" : " (measured against bf16)");
    if (device[0]) printf(" device: %s;", device);
    printf(" %d ranks on %d node(s), %s, %d steps x %d layers; decide_us measured on this machine)\n", x->cluster.nodes * x->cluster.gpus_per_node, x->cluster.nodes, x->model.name,
           x->workload.steps, x->model.layers);
    printf("run file: %s\n", out);
}

/* Ctrl-C: the first asks the run to stop before the next layer (the run
 * file closes with every row, status "interrupted"); a second one kills. */
static volatile sig_atomic_t run_stop;

static void on_sigint(int sig) {
    if (run_stop) { signal(sig, SIG_DFL); raise(sig); }
    run_stop = 1;
}

typedef struct run_progress {
    double t0, last;
    int first;            /* the step x layer index the run started at */
    int drawn;
} run_progress;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "step 3/8, layer 12/48, 27%, ETA 14s" on one terminal line, at most 10 times a second */
static void draw_progress(void *ctx, int step, int layer, int steps, int layers) {
    run_progress *p = ctx;
    int at = step * layers + layer, total = steps * layers;
    double now = mono_s();
    if (p->first < 0) { p->first = at; p->t0 = now; }
    if (now - p->last < 0.1) return;
    p->last = now;
    int done = at - p->first;
    double el = now - p->t0, eta = done > 0 ? el / done * (total - at) : 0;
    fprintf(stderr, "\r\033[Kstep %d/%d, layer %d/%d, %d%%", step + 1, steps, layer + 1, layers, total ? 100 * at / total : 100);
    if (done > 0) fprintf(stderr, ", ETA %.0fs", eta);
    p->drawn = 1;
}

/* The command that continues an interrupted run: this one, with --resume
 * and -o, without --force. */
static void print_resume(int argc, char **argv, const char *out, int has_o) {
    fprintf(stderr, "resume with: %s", argv[-1]);   /* argv[-1]: the program as it was called */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "--resume")) continue;
        int plain = argv[i][0] && !strpbrk(argv[i], " \t\"'{}$`\\*?;&|<>()");
        fprintf(stderr, plain ? " %s" : " '%s'", argv[i]);
    }
    if (!has_o) fprintf(stderr, " -o %s", out);
    fprintf(stderr, " --resume\n");
}

static int join_cmd(int argc, char **argv, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", argv[i]);
    return 0;
}

static const char run_usage[] =
    "usage: mplb run EXP.lua [-o FILE.h5] [--set key=value]... [--policy NAME[,k=v...]]... [--force | --resume]\n"
    "                [--backend model|cpu|cuda] [--transport mpi] [--sensitivity]\n"
    "                [--repeats N] [--warmup N] [--allow-oversubscribed]\n"
    "Run an experiment: every policy on the same routing, one HDF5 run file.\n"
    "  -o, --output FILE.h5   the run file (default runs/NAME-DATE.h5; folders are created)\n"
    "  --set key=value        override a key: workload.tokens=4096, cluster.profile=b200,\n"
    "                         policies.threshold.tau=1.1 (every policy of that name), policies[2].tau=1.1;\n"
    "                         the value is a Lua literal, a bare word is a string (see mplb help experiment)\n"
    "  --policy NAME[,k=v...] REPLACES the experiment's policies with these (give it once per policy):\n"
    "                         --policy baseline --policy threshold,tau=1.1,low=nvfp4 --policy ./mine.lua\n"
    "  --force                overwrite an existing run file\n"
    "  --resume               continue the run file given with -o from its last complete step\n"
    "  --backend model        the cost model (default); cpu: run every expert's FFN on this CPU, timed;\n"
    "                         cuda: on the GPU (cuBLASLt), where mplb was built with CUDA and a GPU exists\n"
    "  --transport mpi        with --backend cpu under mpirun -np RANKS: real EP layers across processes\n"
    "  --repeats N            measured backends: time each plan N times (default 3), each policy's run\n"
    "                         interleaved with the baseline's; rows keep the median and min/max (--set repeats=N)\n"
    "  --warmup N             measured backends: untimed runs of each plan first (default 1; --set warmup=N)\n"
    "  --allow-oversubscribed with --transport: run even with more processes than cores on a host (refused\n"
    "                         otherwise: the times would include waiting for a core); labelled OVERSUBSCRIBED\n"
    "  --sensitivity          then re-run with every profile assumption at each end of its range: each\n"
    "                         speedup's band, flagged when it crosses 1.0 or the ranking flips (also in\n"
    "                         the run file's /sensitivity)\n"
    "On a terminal a progress line (step, layer, ETA) is drawn on stderr. Ctrl-C stops after the current\n"
    "layer, keeps every row written (status: interrupted) and prints the command that resumes the run.\n"
    "Exit status: 0 ok, 1 error (bad experiment, failed run), 2 usage error, 130 interrupted (Ctrl-C).\n";

int mplb_cmd_run(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, run_usage)) return 0;
    const char *exp_path = NULL, *out = NULL;
    int force = 0, resume = 0, n_sets = 0, n_pol = 0, sensitivity = 0, allow_over = 0;
    const char *transport = NULL;
    const char **sets = calloc((size_t)argc * 8 + 8, sizeof *sets);
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
            mplb_backend_id id;
            mplb_err berr;
            if (mplb_backend_find(argv[i], &id, &berr) < 0) {
                fprintf(stderr, "mplb run: %s\n", berr.msg);
                free(sets); free(pols);
                return 2;
            }
            static char bset[64];
            snprintf(bset, sizeof bset, "backend=\"%s\"", mplb_backend_name(id));
            sets[n_sets++] = bset;
        }
        else if (!strcmp(a, "--force")) force = 1;
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (!strcmp(a, "--sensitivity")) sensitivity = 1;
        else if (!strcmp(a, "--allow-oversubscribed")) allow_over = 1;
        else if ((!strcmp(a, "--repeats") || !strcmp(a, "--warmup")) && i + 1 < argc) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (!*argv[i + 1] || *end || v < 0 || v > 1000) {
                int urc = mplb_cli_usage_error("run", run_usage, "--repeats/--warmup '%s': expected a whole number",
                                               argv[i + 1]);
                free(sets); free(pols);
                return urc;
            }
            static char rset[2][48];   /* the range is the experiment key's (repeats 1..32, warmup 0..16) */
            int k = a[2] == 'r' ? 0 : 1;
            snprintf(rset[k], sizeof rset[k], "%s=%ld", k ? "warmup" : "repeats", v);
            sets[n_sets++] = rset[k];
            i++;
        }
        else if (a[0] == '-') {
            fprintf(stderr, "mplb run: unknown option '%s'\n%s", a, run_usage);
            free(sets); free(pols);
            return 2;
        } else if (!exp_path) exp_path = a;
        else { fprintf(stderr, "mplb run: unexpected argument '%s'\n", a); free(sets); free(pols); return 2; }
    }
    if (!exp_path) { fprintf(stderr, "mplb run: missing EXP.lua\n%s", run_usage); free(sets); free(pols); return 2; }
    /* --policy replaces the experiment's list, through the same --set path so
     * the run file's resolved config says what ran: policies={"a","b"} and
     * one policies[i].k=v per param. */
    char *polset = NULL;
    int first_param = n_sets + 1;
    if (n_pol) {
        size_t cap = 32;
        for (int i = 0; i < n_pol; i++) cap += strlen(pols[i]) * 4 + 8;
        polset = malloc(cap);
        size_t n = (size_t)snprintf(polset, cap, "policies={");
        sets[n_sets++] = polset;
        for (int i = 0; i < n_pol; i++) {
            char name[MPLB_PATH_MAX];
            if (mplb_cli_policy_spec(pols[i], i + 1, name, sizeof name, sets, &n_sets) < 0) {
                const char *bad = pols[i];
                for (int k = first_param; k < n_sets; k++) free((char *)sets[k]);
                free(sets); free(polset);
                int urc = mplb_cli_usage_error("run", run_usage, "--policy '%s': expected NAME or NAME,key=value,...", bad);
                free(pols);
                return urc;
            }
            n += (size_t)snprintf(polset + n, cap - n, "\"");
            for (const char *c = name; *c; c++) {
                if (*c == '"' || *c == '\\') polset[n++] = '\\';
                polset[n++] = *c;
            }
            n += (size_t)snprintf(polset + n, cap - n, "\",");
        }
        snprintf(polset + n, cap - n, "}");
    }
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load(exp_path, sets, n_sets, &x, &err);
    if (n_pol) for (int k = first_param; k < n_sets; k++) free((char *)sets[k]);
    free(sets); free(pols); free(polset);
    if (rc < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    mplb_cli_warnings(&x);
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
    if (mplb_cli_mkdirs(out, 0) < 0) { mplb_exp_free(&x); return 1; }
    char cmdline[4096];
    join_cmd(argc + 1, argv - 1, cmdline, sizeof cmdline);
    if (resume && force) { fprintf(stderr, "mplb run: --resume and --force exclude each other\n"); mplb_exp_free(&x); return 2; }
    if (resume && out == def_out) {
        fprintf(stderr, "mplb run: --resume needs -o FILE (the run to continue)\n");
        mplb_exp_free(&x);
        return 2;
    }
    mplb_run_opts o = {.out_path = out, .force = force, .resume = resume, .command = cmdline,
                       .allow_oversubscribed = allow_over};
    int rank = 0;
#ifdef MPLB_HAVE_MPI
    mplb_ep_mpi mctx;
    mplb_ep_transport tp;
#endif
    /* a transport runs real EP layers: backend "ep" ("cpu" names the same
     * experts run on this CPU, so --backend cpu --transport mpi means ep) */
    if (transport && strcmp(x.backend, "cpu") != 0 && strcmp(x.backend, "ep") != 0) {
        fprintf(stderr, "mplb run: --transport runs real EP layers (backend ep, or cpu); this run's backend: %s\n", x.backend);
        mplb_exp_free(&x);
        return 2;
    }
    if (transport) snprintf(x.backend, sizeof x.backend, "ep");
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
    /* the progress line and Ctrl-C: on one process only (MPI ranks must stop together) */
    run_progress prog = {.first = -1};
    struct sigaction sa_old, sa = {0};
    if (!transport) {
        if (isatty(2)) { o.progress = draw_progress; o.hook_ctx = &prog; }
        run_stop = 0;
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &sa_old);
        o.stop = &run_stop;
    }
    rc = mplb_run(&x, &o, &sum, &err);
    if (prog.drawn) fprintf(stderr, "\r\033[K");
    if (!transport) sigaction(SIGINT, &sa_old, NULL);
#ifdef MPLB_HAVE_CUDA
    if (cuda) { mplb_cuda_exec_device_free(&dev); mplb_cuda_close(cuda); }
#endif
    if (rc < 0) {
        fprintf(stderr, "mplb: %s\n", err.msg);
        if ((rc == MPLB_EPOLICY || rc == MPLB_ELIMIT) && sum.n_policies && out && access(out, F_OK) == 0) fprintf(stderr, "mplb: rows written so far are kept in %s (status: failed)\n", out);
    } else if (rank == 0) {
        if (sum.resumed_steps) printf("resumed: %d step(s) kept from %s\n", sum.resumed_steps, out);
        print_summary(&sum, &x, out, device);
    }
    if (rc == 0 && sensitivity && rank == 0 && !run_stop) {
        if (strcmp(x.backend, "model") != 0)
            fprintf(stderr, "mplb run: --sensitivity moves the cost model's assumptions: it needs --backend model\n");
        else {
            mplb_sens sens;
            if ((rc = mplb_sensitivity(&x, &o, &sum, &sens, &err)) == 0) {
                mplb_sens_print(&sens, stdout);
                if (out && (rc = mplb_sens_write(out, &sens, &err)) == 0) printf("sensitivity: written to %s:/sensitivity\n", out);
                mplb_sens_free(&sens);
            }
            if (rc < 0) fprintf(stderr, "mplb: %s\n", err.msg);
        }
    }
    int interrupted = rc == 0 && run_stop;
    if (interrupted) {
        long rows = 0;
        for (int i = 0; i < sum.n_policies; i++) rows += sum.pol[i].rows;
        fprintf(stderr, "mplb: interrupted: %ld row(s) kept in %s (status: interrupted)\n", rows, out);
        int has_o = 0;
        for (int i = 1; i < argc; i++) has_o |= !strcmp(argv[i], "-o") || !strcmp(argv[i], "--output");
        print_resume(argc, argv, out, has_o);
    }
#ifdef MPLB_HAVE_MPI
    if (transport) MPI_Finalize();
#endif
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    return rc < 0 ? 1 : interrupted ? 130 : 0;
}
