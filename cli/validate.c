/* mplb validate: the cost model against published GPU measurements.
 *
 * Reads validation/measurements.lua (or --data FILE), evaluates each row on
 * its profile (or only the rows of --profile P) and prints model against
 * measurement per row, then the median and worst relative error per
 * component with its goal. Exit 0 when it ran (errors above the goals are
 * reported, not fatal: tests/test_validate.c holds the medians); 1 on a bad
 * file or profile; 2 on a usage error. */
#include "mplb.h"
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The goals per component (|model - measured| / measured). */
static const double goal[MPLB_VC_COUNT] = {0.25, 0.20, 0.25, 0.25, 0.25};

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char validate_usage[] =
    "usage: mplb validate [--profile NAME] [--data FILE.lua] [--quiet]\n"
    "  --profile NAME  only the rows measured on NAME's hardware (profiles/NAME.lua)\n"
    "  --data FILE     measurements file (default validation/measurements.lua)\n"
    "  --quiet         summary only\n"
    "Exit status: 0 ok (rows over their goal are reported, not fatal), 1 bad file or profile, 2 usage error.\n";

int mplb_cmd_validate(int argc, char **argv) {
    const char *only = NULL, *data = "measurements";
    int quiet = 0;
    if (mplb_cli_help(argc, argv, validate_usage)) return 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--profile") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else return mplb_cli_usage_error("validate", validate_usage, "unexpected argument '%s'", argv[i]);
    }
    mplb_err err = {0};
    char path[MPLB_PATH_MAX];
    if (mplb_find_data("validation", data, NULL, path, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    mplb_vrow *rows;
    int n;
    if (mplb_valid_load(path, &rows, &n, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    char pdir[MPLB_PATH_MAX];
    snprintf(pdir, sizeof pdir, "%s", path);
    char *slash = strrchr(pdir, '/');
    if (slash) *slash = 0; else snprintf(pdir, sizeof pdir, ".");
    double *errs[MPLB_VC_COUNT];
    int cnt[MPLB_VC_COUNT] = {0}, worst_row[MPLB_VC_COUNT], used = 0, rc = 0;
    for (int c = 0; c < MPLB_VC_COUNT; c++) errs[c] = calloc((size_t)n + 1, sizeof(double));
    if (!quiet) printf("%-32s %-9s %-8s %10s %10s %-7s %8s\n", "row", "component", "profile", "model", "measured", "unit", "error");
    for (int i = 0; i < n && rc == 0; i++) {
        mplb_vrow *r = &rows[i];
        if (only && strcmp(r->profile, only)) continue;
        mplb_profile hw;
        double model;
        if (mplb_profile_load(r->profile, pdir, &hw, &err) < 0 || mplb_valid_model(r, &hw, &model, &err) < 0) {
            fprintf(stderr, "mplb: %s:%d: row %s: %s\n", path, r->line, r->id, err.msg);
            rc = 1;
            break;
        }
        double e = (model - r->measured) / r->measured;
        int c = r->component;
        if (cnt[c] == 0 || fabs(e) > fabs(errs[c][n])) { errs[c][n] = e; worst_row[c] = i; }
        errs[c][cnt[c]++] = fabs(e);
        used++;
        if (!quiet)
            printf("%-32s %-9s %-8s %10.4g %10.4g %-7s %+7.1f%%%s\n", r->id, mplb_valid_component_name(c), r->profile,
                   model, r->measured, r->unit, 100 * e, fabs(e) > goal[c] ? "  (over goal)" : "");
    }
    if (rc == 0) {
        if (only && used == 0) {
            fprintf(stderr, "mplb validate: no rows measured on profile '%s' in %s\n", only, path);
            rc = 1;
        } else {
            printf("\n%-10s %5s %12s %12s  %-32s %6s\n", "component", "rows", "median|err|", "worst|err|", "worst row", "goal");
            for (int c = 0; c < MPLB_VC_COUNT; c++) {
                if (!cnt[c]) continue;
                qsort(errs[c], (size_t)cnt[c], sizeof(double), cmp_dbl);
                double med = cnt[c] % 2 ? errs[c][cnt[c] / 2] : 0.5 * (errs[c][cnt[c] / 2 - 1] + errs[c][cnt[c] / 2]);
                printf("%-10s %5d %11.1f%% %+11.1f%%  %-32s %5.0f%%\n", mplb_valid_component_name(c), cnt[c], 100 * med,
                       100 * errs[c][n], rows[worst_row[c]].id, 100 * goal[c]);
            }
            printf("(model: cost model v2 on each row's profile; measurements: %s, sources per row)\n", path);
        }
    }
    for (int c = 0; c < MPLB_VC_COUNT; c++) free(errs[c]);
    free(rows);
    return rc;
}
