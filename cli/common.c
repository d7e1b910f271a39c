/* Helpers every subcommand shares: --help, output folders, warnings, and
 * --policy specs. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mplb_cli_help(int argc, char **argv, const char *usage) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 1; }
    }
    return 0;
}

int mplb_cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "mplb %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

void mplb_cli_int(const char *opt, const char *s, int *out, const char **bad) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < INT_MIN || v > INT_MAX) { if (!*bad) *bad = opt; return; }
    *out = (int)v;
}

/* mkdir -p of the folder holding path (dir = 0) or of path itself (dir = 1). */
int mplb_cli_mkdirs(const char *path, int dir) {
    char p[MPLB_PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    if (!dir) {
        char *slash = strrchr(p, '/');
        if (!slash) return 0;
        *slash = 0;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) goto fail;
        *s = '/';
    }
    if (p[0] && mkdir(p, 0777) != 0 && errno != EEXIST) goto fail;
    return 0;
fail:
    fprintf(stderr, "mplb: cannot create folder %s: %s\n", p, strerror(errno));
    return -1;
}

void mplb_cli_warnings(const mplb_exp *x) {
    for (const char *w = x->warnings; w && *w;) {
        const char *nl = strchr(w, '\n');
        int n = nl ? (int)(nl - w) : (int)strlen(w);
        fprintf(stderr, "mplb: warning: %.*s\n", n, w);
        w += n + (nl != NULL);
    }
}

/* "threshold,tau=1.1,low=nvfp4" as --set lines: the name becomes entry i of
 * the policies list (listed by the caller), each k=v "policies[i].k=v", so
 * values read as --set values do (a bare word is a string). */
int mplb_cli_policy_spec(const char *spec, int i, char *name, size_t cap, const char **sets, int *n_sets) {
    const char *comma = strchr(spec, ',');
    size_t nl = comma ? (size_t)(comma - spec) : strlen(spec);
    if (nl == 0 || nl >= cap) return -1;
    memcpy(name, spec, nl);
    name[nl] = 0;
    while (comma) {
        const char *p = comma + 1;
        comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        /* a comma inside {...} belongs to the value (tau={1.1,1.5}) */
        int depth = 0;
        for (const char *q = p; q < p + n; q++) depth += (*q == '{') - (*q == '}');
        while (depth > 0 && comma) {
            const char *q = comma + 1;
            comma = strchr(q, ',');
            const char *end = comma ? comma : q + strlen(q);
            for (; q < end; q++) depth += (*q == '{') - (*q == '}');
            n = (size_t)(end - p);
        }
        if (!memchr(p, '=', n)) return -1;
        size_t cap2 = n + 32;
        char *s = malloc(cap2);
        if (!s) return -1;
        snprintf(s, cap2, "policies[%d].%.*s", i, (int)n, p);
        sets[(*n_sets)++] = s;
    }
    return 0;
}

int mplb_cli_slurp(const char *path, char **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; }
            else buf = nb;
        }
    }
    fclose(f);
    if (!buf) return -1;
    buf[n] = 0;
    *out = buf;
    return 0;
}

/* s as a JSON string on stdout (quotes, backslashes and control characters escaped) */
void mplb_cli_json_str(const char *s) { mplb_cli_json_str_to(stdout, s); }

void mplb_cli_json_str_to(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int mplb_cli_exec_python(const char *cmd, const char *module, int n, char **args_in) {
    char py[MPLB_PATH_MAX], pkg[MPLB_PATH_MAX], path[2 * MPLB_PATH_MAX];
    const char *env = getenv("MPLB_PYTHON");
    if (env) snprintf(py, sizeof py, "%s", env);
    else {
        snprintf(py, sizeof py, "%s/.venv/bin/python", MPLB_SOURCE_DIR);
        if (access(py, X_OK) != 0) snprintf(py, sizeof py, "python3");
    }
    /* the package of this binary's own source tree first, so the Python side
     * is the version the binary was built with (a venv may hold another) */
    snprintf(pkg, sizeof pkg, "%s/analysis/mplb/__init__.py", MPLB_SOURCE_DIR);
    if (access(pkg, R_OK) == 0) {
        const char *old = getenv("PYTHONPATH");
        snprintf(path, sizeof path, "%s/analysis%s%s", MPLB_SOURCE_DIR, old && *old ? ":" : "", old && *old ? old : "");
        setenv("PYTHONPATH", path, 1);
    }
    char **args = calloc((size_t)n + 4, sizeof *args);
    if (!args) return 1;
    args[0] = py;
    args[1] = "-m";
    args[2] = (char *)module;
    for (int i = 0; i < n; i++) args[i + 3] = args_in[i];
    fflush(stdout);
    execvp(py, args);
    fprintf(stderr, "mplb %s: cannot run %s (%s); install the analysis package: make setup\n", cmd, py, strerror(errno));
    free(args);
    return 1;
}
