/* mplb: the command-line front end. A table of subcommands (like linit.c's
 * table of libraries), one file per subcommand; each returns the process
 * exit status. */
#include "mplb.h"
#include "cli.h"

#include <limits.h>
#include <malloc.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *mplb_usage_text =
    "usage: mplb <command> [options]        (mplb <command> --help: that command's options)\n"
    "\n"
    "commands:\n"
    "  run EXP.lua [-o FILE.h5] [--set key=value]... [--policy NAME[,k=v...]]... [--force | --resume]\n"
    "              [--backend model|cpu|cuda|ep] [--transport mpi] [--sensitivity]\n"
    "              run an experiment; writes one HDF5 run file. Backends (where times and errors\n"
    "              come from): model = cost model; cpu = every expert's FFN run and timed on this\n"
    "              CPU; cuda = on a GPU; ep = real EP layers across mpirun processes (--transport mpi;\n"
    "              --backend cpu --transport mpi means the same)\n"
    "  inspect FILE.h5 [--json] summarise a run file (also a running or killed one)\n"
    "  sweep EXP.lua -o DIR [-j N] [--set key=value]... [--resume]\n"
    "              run every point of the experiment's list-valued fields (sweep axes);\n"
    "              under mpirun the points are divided across ranks\n"
    "  report RUN.h5|SWEEP_DIR -o DIR\n"
    "              figures (PNG) and an HTML page (needs the Python analysis package)\n"
    "  policy check FILE.lua [--param key=value]... [--experiment EXP.lua] [--steps N]\n"
    "              run a policy on your experiment (or a built-in one): what it chose, per rank\n"
    "  trace import INPUT... -o OUT.h5 [--format F] [--top-k K] [--phase prefill|decode] [--force]\n"
    "              (CSV, NPY; engine dumps: SGLang, vLLM, TensorRT-LLM, Megatron, npz, float loads)\n"
    "  trace stats FILE.h5 [--ranks R] [--top N] [--json] [--workload W.lua [--steps N] [--seed S]]\n"
    "              convert routing data to an mplb trace; print its skew statistics per layer\n"
    "              (with --workload: beside a trace generated from W.lua, and the 10% fit goal)\n"
    "  trace fit TRACE.h5 -o W.lua [--ranks R] [--force]\n"
    "              fit the synthetic workload to a real trace (experiments: workload = \"W.lua\")\n"
    "  trace gen W.lua -o OUT.h5 (--model PRESET | --layers L --experts E --top-k K) [--steps N]\n"
    "              the counts a workload file generates, as a trace\n"
    "  place TRACE.h5 -o PLACEMENT.json [--policy eplb] [--slots N --gpus N --nodes N] [--sglang F.json]\n"
    "              [--trtllm F.yaml]   a placement policy run offline on the trace's loads, written for\n"
    "              mplb (placement_file) and the engines\n"
    "  calibrate --backend cpu|cuda [-o profiles/NAME.lua] [--quick]\n"
    "              measure this machine (OpenBLAS GEMM, memory, conversion) and write a profile\n"
    "  calibrate --accuracy [--weights FILE.safetensors [--prefix NAME]] [-o FILE.lua]\n"
    "              per-format FFN error of the CPU kernel against float64 (the error proxy's table)\n"
    "  validate [--profile NAME] [--data FILE.lua] [--quiet]\n"
    "              the cost model against published GPU measurements (validation/), per row\n"
    "              and per component with median and worst error\n"
    "  help [COMMAND | experiment]\n"
    "              this text, a command's options, or every experiment key with its default\n"
    "  --help, --version\n"
    "\n"
    "Policies and profiles are looked up beside the experiment, in ./policies,\n"
    "./profiles, $MPLB_DATA_DIR and the install's data directory.\n"
    "Exit status: 0 ok, 1 error (bad experiment or policy, failed run, missing file), 2 usage error,\n"
    "130 interrupted (run, sweep: Ctrl-C keeps every row and prints the command that resumes).\n";

static int dispatch(int argc, char **argv);

/* mplb help [COMMAND | experiment]: the usage text, a subcommand's help, or
 * the reference of experiment keys (docs/experiment-reference.md). */
static int cmd_help(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "experiment")) return mplb_exp_reference(stdout) < 0;
    if (argc >= 2 && strcmp(argv[1], "help") != 0) {
        char *sub[4] = {argv[1], argc >= 3 ? argv[2] : "--help", "--help", NULL};
        return dispatch(argc >= 3 ? 3 : 2, sub);
    }
    fputs(mplb_usage_text, stdout);
    return 0;
}

static int cmd_version(int argc, char **argv) {
    (void)argc; (void)argv;
    printf("mplb %s (git %s)\n", MPLB_VERSION, mplb_git_revision());
    return 0;
}

static const struct { const char *name; int (*fn)(int, char **); } commands[] = {
    {"report", mplb_cmd_report},
    {"sweep", mplb_cmd_sweep},
    {"trace", mplb_cmd_trace},
    {"place", mplb_cmd_place},
    {"policy", mplb_cmd_policy},
    {"calibrate", mplb_cmd_calibrate},
    {"run", mplb_cmd_run},
    {"inspect", mplb_cmd_inspect},
    {"validate", mplb_cmd_validate},
    {"help", cmd_help},
    {"--help", cmd_help},
    {"-h", cmd_help},
    {"--version", cmd_version},
    {"version", cmd_version},
};

/* An installed mplb (PREFIX/bin/mplb) finds its policies and profiles in
 * PREFIX/share/mplb: point the library's data lookup there unless the user
 * already did (a build-tree binary has no such folder and keeps the source's). */
static void data_dir_from_exe(void) {
    char exe[PATH_MAX], dir[PATH_MAX + 32], probe[PATH_MAX + 48];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (getenv("MPLB_DATA_DIR") || n <= 0) return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = 0;
    snprintf(dir, sizeof dir, "%s/../share/mplb", exe);
    snprintf(probe, sizeof probe, "%s/policies", dir);
    struct stat st;
    if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) setenv("MPLB_DATA_DIR", dir, 0);
}

int main(int argc, char **argv) {
    data_dir_from_exe();
    /* Keep large buffers (dispatch rows, partial sums, activations) on the
     * heap rather than in fresh mmap'ed pages: a layer's exchange otherwise
     * spends most of its time faulting new pages in (bench/dispatch). */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* every file is closed explicitly; libhdf5's own exit handler would only
     * retry closing one whose write failed (a full disk), and crash doing so */
    H5dont_atexit();
    mplb_init(MPLB_INIT_ALL);   /* the library changes no process-wide state by itself */
    if (argc < 2) { fputs(mplb_usage_text, stderr); return 2; }
    return dispatch(argc - 1, argv + 1);
}

/* argv[0] names the command */
static int dispatch(int argc, char **argv) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[0], commands[i].name)) return commands[i].fn(argc, argv);
    fprintf(stderr, "mplb: unknown command '%s'\n%s", argv[0], mplb_usage_text);
    return 2;
}
