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

int mplb_cmd_calibrate(int argc, char **argv) {
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
