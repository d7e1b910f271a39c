/* mplb sweep: run every point of an experiment's sweep axes, in -j worker
 * processes on one machine or across MPI ranks (mpirun -np N mplb sweep ...),
 * resumably. Layout of DIR: points/pNNNN.lua (each point as a complete
 * experiment), runs/pNNNN.h5 (its run file), runs/pNNNN.err (the message of
 * a point that failed before or without a run file), index.csv. */
#define _XOPEN_SOURCE 700
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MPLB_HAVE_MPI
#include <mpi.h>
#endif

enum { PT_PENDING = 0, PT_COMPLETE = 1, PT_FAILED = 2, PT_OTHER = 3 };
enum { EXIT_INTERRUPTED = 3 };   /* a worker's exit status when Ctrl-C stopped its run */

/* Ctrl-C: workers close their run files (status interrupted) before the next
 * layer; the sweep writes index.csv and prints the resume command. A second
 * Ctrl-C kills. Workers inherit the handler and their own copy of the flag. */
static volatile sig_atomic_t sweep_stop;

static void on_sigint(int sig) {
    if (sweep_stop) { signal(sig, SIG_DFL); raise(sig); }
    sweep_stop = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run_path(const char *dir, int p, const char *ext, char *out, size_t cap) {
    snprintf(out, cap, "%s/runs/p%04d.%s", dir, p, ext);
}

/* A point's state from its files: complete run file, failed, or to do. */
static int point_state(const char *dir, int p) {
    char h5[MPLB_PATH_MAX], er[MPLB_PATH_MAX];
    run_path(dir, p, "h5", h5, sizeof h5);
    run_path(dir, p, "err", er, sizeof er);
    if (access(er, F_OK) == 0) return PT_FAILED;
    if (access(h5, F_OK) != 0) return PT_PENDING;
    mplb_runfile_info info;
    mplb_err err = {0};
    if (mplb_runfile_read(h5, &info, &err) < 0) return PT_PENDING;
    int st = info.unclosed ? PT_PENDING : !strcmp(info.status, "complete") ? PT_COMPLETE
                                        : !strcmp(info.status, "failed") ? PT_FAILED : PT_PENDING;
    mplb_runfile_info_free(&info);
    return st;
}

/* Child: run one point; its process exits with 0 (complete) or 1. */
static int run_point(const char *dir, const char *base_dir, int p, int sensitivity, const char *note) {
    char pt[MPLB_PATH_MAX], h5[MPLB_PATH_MAX], er[MPLB_PATH_MAX];
    snprintf(pt, sizeof pt, "%s/points/p%04d.lua", dir, p);
    run_path(dir, p, "h5", h5, sizeof h5);
    run_path(dir, p, "err", er, sizeof er);
    mplb_exp x;
    mplb_err err = {0};
    int rc = mplb_exp_load_ex(pt, base_dir, NULL, 0, &x, &err);
    if (rc == 0) {
        char cmd[MPLB_PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "mplb sweep (point %s)", pt);
        mplb_run_opts o = {.out_path = h5, .resume = 1, .command = cmd, .stop = &sweep_stop,
                           .allow_oversubscribed = note[0] != 0, .times_note = note[0] ? note : NULL};
        mplb_run_summary sum;
        rc = mplb_run(&x, &o, &sum, &err);
        /* --sensitivity: each point's bands into its run file's /sensitivity */
        if (rc == 0 && sensitivity && !sweep_stop && !strcmp(x.backend, "model")) {
            mplb_sens sens;
            if ((rc = mplb_sensitivity(&x, &o, &sum, &sens, &err)) == 0) {
                rc = mplb_sens_write(h5, &sens, &err);
                mplb_sens_free(&sens);
            }
        }
        mplb_run_summary_free(&sum);
        mplb_exp_free(&x);
        if (rc == 0 && sweep_stop) return EXIT_INTERRUPTED;
    }
    if (rc < 0) {
        /* the run file keeps a policy's error; a point that failed before its
         * run file existed (a bad parameter) leaves its message here */
        FILE *f = fopen(er, "w");
        if (f) { fprintf(f, "%s\n", err.msg); fclose(f); }
        return 1;
    }
    return 0;
}

static void progress(int tty, int done, int total, int failed, double t0, const char *label, int state) {
    double el = now_s() - t0, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    if (tty) {
        int w = 30, fill = total ? done * w / total : w;
        fprintf(stderr, "\r[%.*s%.*s] %d/%d points, %.2f/s, ETA %.0fs%s", fill,
                "##############################", w - fill, "------------------------------", done, total, rate, eta,
                failed ? " (some failed)" : "");
        if (done == total) fputc('\n', stderr);
    } else {
        fprintf(stderr, "[%d/%d] %s: %s (%.2f points/s, ETA %.0fs)\n", done, total, label,
                state == PT_COMPLETE ? "complete" : state == PT_FAILED ? "failed" : "interrupted", rate, eta);
    }
}

static char *read_err(const char *dir, int p) {
    char er[MPLB_PATH_MAX], h5[MPLB_PATH_MAX];
    run_path(dir, p, "err", er, sizeof er);
    char *msg = NULL;
    if (mplb_cli_slurp(er, &msg) == 0) {
        char *nl = strchr(msg, '\n');
        if (nl) *nl = 0;
        return msg;
    }
    run_path(dir, p, "h5", h5, sizeof h5);
    mplb_runfile_info info;
    mplb_err err = {0};
    if (mplb_runfile_read(h5, &info, &err) == 0) {
        msg = strdup(info.error ? info.error : "");
        mplb_runfile_info_free(&info);
    }
    return msg ? msg : strdup("");
}

static void csv_field(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static int write_index(const char *dir, const mplb_sweep *sw, const int *state) {
    char path[MPLB_PATH_MAX], tmp[MPLB_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/index.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "point");
    for (int a = 0; a < sw->n_axes; a++) { fputc(',', f); csv_field(f, sw->axis_names[a]); }
    fprintf(f, ",file,status,error\n");
    for (int p = 0; p < sw->n_points; p++) {
        fprintf(f, "%d", p);
        for (int a = 0; a < sw->n_axes; a++) { fputc(',', f); csv_field(f, sw->values[(size_t)p * sw->n_axes + a]); }
        fprintf(f, ",runs/p%04d.h5,%s,", p, state[p] == PT_COMPLETE ? "complete" : state[p] == PT_FAILED ? "failed" : "pending");
        char *msg = state[p] == PT_FAILED ? read_err(dir, p) : NULL;
        csv_field(f, msg ? msg : "");
        free(msg);
        fputc('\n', f);
    }
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

static const char sweep_usage[] =
    "usage: mplb sweep EXP.lua -o DIR [-j N] [--set key=value]... [--zip a,b]... [--point-timeout S] [--resume]\n"
    "                  [--sensitivity] [--allow-oversubscribed]\n"
    "Run every point of the experiment's sweep axes: each list-valued key (cluster.profile = {\"h100\",\n"
    "\"b200\"}), policy parameter ({\"threshold\", tau = {1.1, 1.5}}) or --set value (--set\n"
    "'workload.tokens={2048,8192}'). Axes combine as a cross product, except axes tied together\n"
    "(zip = {{\"workload.tokens\", \"policies.threshold.min_tokens\"}} in the experiment, or --zip a,b),\n"
    "which take their values side by side (equal lengths).\n"
    "  -o DIR     the sweep's folder (created): points/pNNNN.lua, runs/pNNNN.h5, index.csv\n"
    "  -j N       N worker processes on this machine (under mpirun the points are divided across ranks)\n"
    "  --point-timeout S  a point running longer than S seconds is stopped and marked failed (default 3600)\n"
    "  --resume   continue DIR: complete points are kept, failed and unfinished ones rerun\n"
    "  --sensitivity  after each point, every profile assumption at both ends of its range: the\n"
    "             speedups' bands into the point's run file (/sensitivity; see mplb run --help)\n"
    "  --allow-oversubscribed  run measuring points (backend cpu, cuda, ep) with -j above the core count\n"
    "             (refused otherwise: their times would share cores); their times are labelled OVERSUBSCRIBED\n"
    "Ctrl-C stops the workers, writes index.csv (pending points marked) and prints the resume command.\n"
    "Exit status: 0 every point complete, 1 some point failed (index.csv says which) or an error,\n"
    "2 usage error.\n";

/* Every point through the experiment checker before anything is written, so
 * a misspelled key fails the sweep at once, named at the experiment's
 * file:line (not once per point in index.csv); warnings are printed once. */
static int check_points(const char *exp, const mplb_sweep *sw, int verbose, int *measured, mplb_err *err) {
    char *src = NULL;
    if (mplb_cli_slurp(exp, &src) < 0) return mplb_err_set(err, MPLB_EIO, "%s: cannot open", exp);
    char base_dir[MPLB_PATH_MAX];
    snprintf(base_dir, sizeof base_dir, "%s", exp);
    char *slash = strrchr(base_dir, '/');
    if (slash) *slash = 0; else snprintf(base_dir, sizeof base_dir, ".");
    char *seen = NULL;
    size_t seen_n = 0;
    int rc = 0;
    for (int p = 0; p < sw->n_points && rc == 0; p++) {
        mplb_exp x;
        rc = mplb_exp_load_text(sw->points[p].text, exp, src, base_dir, NULL, 0, &x, err);
        if (rc < 0) {
            if (sw->n_axes) mplb_err_wrap(err, "point %d (%s)", p, sw->points[p].label);
            break;
        }
        if (strcmp(x.backend, "model") != 0) *measured = 1;   /* its times come from clocks, not the cost model */
        for (const char *w = x.warnings; verbose && w && *w;) {
            const char *nl = strchr(w, '\n');
            size_t n = nl ? (size_t)(nl - w) : strlen(w);
            int dup = 0;
            for (const char *q = seen; q && q < seen + seen_n && !dup; q += strlen(q) + 1) dup = strlen(q) == n && !strncmp(q, w, n);
            if (!dup) {
                fprintf(stderr, "mplb: warning: %.*s\n", (int)n, w);
                char *ns = realloc(seen, seen_n + n + 1);
                if (ns) { seen = ns; memcpy(seen + seen_n, w, n); seen[seen_n + n] = 0; seen_n += n + 1; }
            }
            w += n + (nl != NULL);
        }
        mplb_exp_free(&x);
    }
    free(seen);
    free(src);
    return rc;
}

/* Measuring points side by side share the cores: each one's times would
 * include the others' work (4 cpu points on 2 cores once reported speedups
 * that were the scheduler's), so -j above the core count is refused unless
 * allowed, and then note says so for every point's times source. */
static int check_oversubscribed(const char *exp, int jobs, int allow, char *note, size_t cap, mplb_err *err) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores <= 0 || jobs <= cores) return 0;
    if (!allow)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: -j %d runs %d measuring points (backend other than \"model\") at "
                            "once on %ld cores: their times would include each other's work; use -j %ld or fewer, "
                            "or --allow-oversubscribed (the times are then labelled OVERSUBSCRIBED)", exp, jobs, jobs,
                            cores, cores);
    snprintf(note, cap, "OVERSUBSCRIBED, allowed by --allow-oversubscribed: mplb sweep -j %d on %ld cores, the times "
             "include other points' work", jobs, cores);
    return 0;
}

int mplb_cmd_sweep(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, sweep_usage)) return 0;
    const char *exp = NULL, *dir = NULL;
    int jobs = 1, resume = 0, n_sets = 0, sensitivity = 0, allow_over = 0;
    const char *bad_int = NULL;
    char over_note[256] = "";
    double point_timeout = 3600;   /* a last line behind the sandbox's limits: no point hangs a sweep */
    char zipset[2048] = "", zipline[2100];
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "-j") && i + 1 < argc) mplb_cli_int(argv[i], argv[i + 1], &jobs, &bad_int), i++;
        else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) mplb_cli_int("-j", argv[i] + 2, &jobs, &bad_int);
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (!strcmp(argv[i], "--zip") && i + 1 < argc) {
            /* a,b -> {"a","b"}, gathered into one zip = {...} set below */
            const char *z = argv[++i];
            size_t n = strlen(zipset);
            n += (size_t)snprintf(zipset + n, sizeof zipset - n, "%s{\"", n ? "," : "");
            for (; *z && n + 8 < sizeof zipset; z++) {
                if (*z == ',') n += (size_t)snprintf(zipset + n, sizeof zipset - n, "\",\"");
                else if (*z != '"' && *z != '\\') zipset[n++] = *z;
            }
            snprintf(zipset + n, sizeof zipset - n, "\"}");
        }
        else if (!strcmp(argv[i], "--resume")) resume = 1;
        else if (!strcmp(argv[i], "--sensitivity")) sensitivity = 1;
        else if (!strcmp(argv[i], "--allow-oversubscribed")) allow_over = 1;
        else if (!strcmp(argv[i], "--point-timeout") && i + 1 < argc) {
            char *end;
            point_timeout = strtod(argv[++i], &end);
            if (*end || !(point_timeout >= 1 && point_timeout <= 1e7)) {
                free(sets);
                return mplb_cli_usage_error("sweep", sweep_usage, "--point-timeout needs seconds in 1..1e7, got '%s'", argv[i]);
            }
        }
        else if (argv[i][0] != '-' && !exp) exp = argv[i];
        else { free(sets); return mplb_cli_usage_error("sweep", sweep_usage, "unexpected argument '%s'", argv[i]); }
    }
    if (!exp || !dir || jobs < 1 || bad_int) {
        free(sets);
        return mplb_cli_usage_error("sweep", sweep_usage, "%s", !exp ? "missing EXP.lua" : !dir ? "missing -o DIR" : "-j needs a whole number N >= 1");
    }
    int rank = 0, size = 1;
#ifdef MPLB_HAVE_MPI
    int use_mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
    if (use_mpi) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
#endif
    mplb_sweep sw;
    mplb_err err = {0};
    if (zipset[0]) {
        snprintf(zipline, sizeof zipline, "zip={%s}", zipset);
        sets[n_sets++] = zipline;
    }
    int rc = mplb_sweep_expand(exp, sets, n_sets, &sw, &err);
    free(sets);
    int measured = 0;
    if (rc == 0) rc = check_points(exp, &sw, rank == 0, &measured, &err);
    if (rc == 0 && measured) rc = check_oversubscribed(exp, jobs, allow_over, over_note, sizeof over_note, &err);
    if (rc < 0) {
        if (rank == 0) fprintf(stderr, "mplb: %s\n", err.msg);
#ifdef MPLB_HAVE_MPI
        if (use_mpi) MPI_Finalize();
#endif
        return 1;
    }
    char sub[MPLB_PATH_MAX], index[MPLB_PATH_MAX];
    snprintf(index, sizeof index, "%s/index.csv", dir);
    int exists = access(index, F_OK) == 0;
    int bad = 0;
    if (rank == 0) {
        if (exists && !resume) {
            fprintf(stderr, "mplb: %s already holds a sweep (use --resume to continue it, or another -o)\n", dir);
            bad = 1;
        } else {
            if (mplb_cli_mkdirs(dir, 1) < 0) bad = 1;
            snprintf(sub, sizeof sub, "%s/points", dir);
            mkdir(sub, 0777);
            snprintf(sub, sizeof sub, "%s/runs", dir);
            mkdir(sub, 0777);
            for (int p = 0; p < sw.n_points && !bad; p++) {
                char pt[MPLB_PATH_MAX];
                snprintf(pt, sizeof pt, "%s/points/p%04d.lua", dir, p);
                FILE *f = fopen(pt, "w");
                if (!f) { fprintf(stderr, "mplb: cannot write %s: %s\n", pt, strerror(errno)); bad = 1; break; }
                fprintf(f, "-- point %d of %s: %s\n%s\n", p, exp, sw.points[p].label, sw.points[p].text);
                fclose(f);
            }
        }
    }
#ifdef MPLB_HAVE_MPI
    if (use_mpi) MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
    if (bad) {
        mplb_sweep_free(&sw);
#ifdef MPLB_HAVE_MPI
        if (use_mpi) MPI_Finalize();
#endif
        return 1;
    }
    char base_dir[MPLB_PATH_MAX];
    snprintf(base_dir, sizeof base_dir, "%s", exp);
    char *slash = strrchr(base_dir, '/');
    if (slash) *slash = 0; else snprintf(base_dir, sizeof base_dir, ".");
    int *state = calloc((size_t)sw.n_points, sizeof *state);
    int *mine = calloc((size_t)sw.n_points, sizeof *mine);
    pid_t *pids = calloc((size_t)jobs, sizeof *pids);
    int *slot_pt = calloc((size_t)jobs, sizeof *slot_pt);
    if (!state || !mine || !pids || !slot_pt) { fprintf(stderr, "mplb: out of memory\n"); return 1; }
    int todo = 0, done = 0, failed = 0, total = 0;
    for (int p = 0; p < sw.n_points; p++) {
        if (p % size != rank) continue;
        total++;
        /* a failed point is retried on resume: its message file goes first */
        char er[MPLB_PATH_MAX];
        run_path(dir, p, "err", er, sizeof er);
        remove(er);
        state[p] = point_state(dir, p);
        if (state[p] == PT_COMPLETE) done++;
        else { mine[p] = 1; todo++; state[p] = PT_PENDING; }
    }
    int tty = isatty(2);
    double t0 = now_s();
    struct sigaction sa = {0};
    int handle_int = 1;
#ifdef MPLB_HAVE_MPI
    handle_int = !use_mpi;   /* MPI ranks: mpirun's own handling */
#endif
    if (handle_int) {
        sweep_stop = 0;
        sa.sa_handler = on_sigint;   /* no SA_RESTART: wait() returns to forward the stop */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    int forwarded = 0;
    if (rank == 0 && size == 1)
        fprintf(stderr, "mplb sweep: %d points (%d axes), %d to run, %d worker(s)\n", sw.n_points, sw.n_axes, todo, jobs);
    int next = 0, running = 0;
    for (;;) {
        while (running < jobs && !sweep_stop) {
            while (next < sw.n_points && !mine[next]) next++;
            if (next >= sw.n_points) break;
            int slot = 0;
            while (pids[slot]) slot++;
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed sweep takes its workers with it */
                alarm((unsigned)point_timeout);   /* SIGALRM ends a point that runs too long */
                _exit(run_point(dir, base_dir, next, sensitivity, over_note));
            }
            if (pid < 0) { fprintf(stderr, "mplb: fork failed: %s\n", strerror(errno)); break; }
            pids[slot] = pid;
            slot_pt[slot] = next++;
            running++;
        }
        if (running == 0) break;
        int ws;
        pid_t pid = wait(&ws);
        if (sweep_stop && !forwarded) {
            /* a stop sent to this process alone (kill -INT): pass it on */
            for (int s = 0; s < jobs; s++) if (pids[s]) kill(pids[s], SIGINT);
            forwarded = 1;
        }
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break;
        for (int s = 0; s < jobs; s++) {
            if (pids[s] != pid) continue;
            int p = slot_pt[s];
            pids[s] = 0;
            running--;
            state[p] = WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? PT_COMPLETE : PT_FAILED;
            if (WIFEXITED(ws) && WEXITSTATUS(ws) == EXIT_INTERRUPTED) {
                state[p] = PT_PENDING;   /* its run file is closed, resumable */
                if (size == 1) progress(tty, done, total, failed, t0, sw.points[p].label, PT_PENDING);
                continue;
            }
            if (state[p] == PT_FAILED) {
                failed++;
                char er[MPLB_PATH_MAX];
                run_path(dir, p, "err", er, sizeof er);
                if (access(er, F_OK) != 0) {   /* killed by a signal: say so */
                    FILE *f = fopen(er, "w");
                    if (f && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM)
                        fprintf(f, "timed out after %.0f s (--point-timeout); its run file keeps the rows flushed so far\n",
                                point_timeout);
                    else if (f) fprintf(f, "worker ended by signal %d\n", WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
                    if (f) fclose(f);
                }
            }
            done++;
            if (size == 1) progress(tty, done, total, failed, t0, sw.points[p].label, state[p]);
        }
    }
    int *all = state;
#ifdef MPLB_HAVE_MPI
    int *gathered = NULL;
    if (use_mpi) {
        gathered = calloc((size_t)sw.n_points, sizeof *gathered);
        MPI_Reduce(state, gathered, sw.n_points, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
        all = gathered;
    }
#endif
    if (handle_int) signal(SIGINT, SIG_DFL);
    int n_ok = 0, n_fail = 0, n_pending = 0;
    if (rank == 0) {
        for (int p = 0; p < sw.n_points; p++) {
            if (all[p] == PT_COMPLETE) n_ok++;
            else if (all[p] == PT_PENDING && sweep_stop) n_pending++;
            else n_fail++;
        }
        if (write_index(dir, &sw, all) < 0) fprintf(stderr, "mplb: cannot write %s\n", index);
        printf("sweep %s: %d points, %d complete, %d failed%s%s; index: %s\n", exp, sw.n_points, n_ok, n_fail,
               sweep_stop ? ", the rest pending (interrupted)" : "",
               size > 1 ? " (over MPI ranks)" : "", index);
        if (sweep_stop) {
            fprintf(stderr, "mplb: interrupted: %d point(s) complete, %d pending (index.csv lists them)\nresume with: %s",
                    n_ok, n_pending, argv[-1]);
            for (int i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--resume")) continue;
                int plain = argv[i][0] && !strpbrk(argv[i], " \t\"'{}$`\\*?;&|<>()");
                fprintf(stderr, plain ? " %s" : " '%s'", argv[i]);
            }
            fprintf(stderr, " --resume\n");
        }
        for (int p = 0; p < sw.n_points; p++)
            if (all[p] != PT_COMPLETE && !(all[p] == PT_PENDING && sweep_stop)) {
                char *msg = read_err(dir, p);
                printf("  point %d (%s) failed: %s\n", p, sw.points[p].label, msg);
                free(msg);
            }
    }
#ifdef MPLB_HAVE_MPI
    if (use_mpi) {
        MPI_Bcast(&n_fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
        free(gathered);
        MPI_Finalize();
    }
#endif
    free(state); free(mine); free(pids); free(slot_pt);
    mplb_sweep_free(&sw);
    return sweep_stop ? 130 : n_fail ? 1 : 0;
}
