/* mplb inspect: a run file's header and progress, as text or JSON. */
#include "mplb.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static const char inspect_usage[] =
    "usage: mplb inspect FILE.h5 [--json]\n"
    "Summarise a run file: status (complete, failed, or not closed: running or killed), command,\n"
    "seed, where its times come from, and one row per policy. A killed run reads up to its last flush.\n"
    "  --json   the same as one JSON object on stdout\n"
    "Exit status: 0 ok, 1 unreadable file, 2 usage error.\n";

int mplb_cmd_inspect(int argc, char **argv) {
    if (mplb_cli_help(argc, argv, inspect_usage)) return 0;
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!path && argv[i][0] != '-') path = argv[i];
        else return mplb_cli_usage_error("inspect", inspect_usage, "unexpected argument '%s'", argv[i]);
    }
    if (!path) return mplb_cli_usage_error("inspect", inspect_usage, "%s", "missing FILE.h5");
    mplb_runfile_info info;
    mplb_err err = {0};
    if (mplb_runfile_read(path, &info, &err) < 0) { fprintf(stderr, "mplb: %s\n", err.msg); return 1; }
    const char *note = info.unclosed ? "not closed: still running, or killed (mplb run --resume continues it)" : "";
    if (json) {
        printf("{\"file\": "); mplb_cli_json_str(path);
        printf(", \"status\": "); mplb_cli_json_str(info.status);
        printf(", \"closed\": %s, \"error\": ", info.unclosed ? "false" : "true"); mplb_cli_json_str(info.error);
        printf(", \"schema_version\": "); mplb_cli_json_str(info.schema_version);
        printf(", \"mplb_version\": "); mplb_cli_json_str(info.mplb_version);
        printf(", \"command\": "); mplb_cli_json_str(info.command);
        printf(", \"times_source\": "); mplb_cli_json_str(info.times_source ? info.times_source : "");
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
            mplb_cli_json_str(info.policy_names[p]);
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
