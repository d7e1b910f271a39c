/* mplb calibrate: measure this machine (cpu) or a GPU (cuda) into a profile. */
#include "mplb.h"
#include "cli.h"
#ifdef MPLB_HAVE_CUDA
#include "mplb/cuda.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static const char calibrate_usage[] =
    "usage: mplb calibrate --backend cpu|cuda [-o profiles/NAME.lua] [--quick]\n"
    "       mplb calibrate --accuracy [--weights FILE.safetensors [--prefix NAME]] [-o FILE.lua] [--quick]\n"
    "Measure this machine into a hardware profile (a Lua file), or the per-format error table.\n"
    "  --backend cpu    OpenBLAS GEMM per format, memory bandwidth, weight conversion on this CPU\n"
    "  --backend cuda   cuBLASLt expert FFNs per format on GPU 0 (a build with CUDA, a machine with a GPU)\n"
    "  --accuracy       relative FFN output error per format against float64 (the error proxy's table)\n"
    "  --weights FILE   real expert weights (safetensors) for --accuracy; --prefix picks the tensors\n"
    "  -o FILE          write there (folders are created; written whole or not at all); default stdout\n"
    "  --quick          fewer sizes and shorter timings (tests)\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

int mplb_cmd_calibrate(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, calibrate_usage)) return 0;
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
        else return mplb_cli_usage_error("calibrate", calibrate_usage, "unknown argument '%s'", argv[i]);
    }
    if (accuracy && !backend) backend = "cpu";
    if (!backend) return mplb_cli_usage_error("calibrate", calibrate_usage, "%s", "--backend is required (cpu or cuda)");
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
        if (mplb_cli_mkdirs(out, 0) < 0) return 1;
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
