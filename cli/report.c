/* mplb report: figures and tables of run files through the Python package. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

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
 * $MPLB_PYTHON, else the project's .venv, else python3 on PATH; the source
 * tree's analysis/ (when the binary was built from one) comes first on PYTHONPATH. */
int mplb_cmd_report(int argc, char **argv) {
    char py[MPLB_PATH_MAX];
    const char *env = getenv("MPLB_PYTHON");
    if (env) snprintf(py, sizeof py, "%s", env);
    else {
        snprintf(py, sizeof py, "%s/.venv/bin/python", MPLB_SOURCE_DIR);
        if (access(py, X_OK) != 0) snprintf(py, sizeof py, "python3");
    }
    /* the package of this binary's own source tree first, so the figures are
     * drawn by the same version that wrote the file (a venv may hold another) */
    char pkg[MPLB_PATH_MAX], path[2 * MPLB_PATH_MAX];
    snprintf(pkg, sizeof pkg, "%s/analysis/mplb/report.py", MPLB_SOURCE_DIR);
    if (access(pkg, R_OK) == 0) {
        const char *old = getenv("PYTHONPATH");
        snprintf(path, sizeof path, "%s/analysis%s%s", MPLB_SOURCE_DIR, old && *old ? ":" : "", old && *old ? old : "");
        setenv("PYTHONPATH", path, 1);
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
