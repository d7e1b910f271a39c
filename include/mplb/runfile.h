/* mplb_runfile: the HDF5 file one run writes (schema in docs/run-file.md).
 *
 * Written in SWMR mode (single writer, multiple readers): h5py and mplb can
 * read a running file (h5py: swmr=True). After the last row the file is
 * closed and reopened once, normally, to record status and error. A run
 * killed with -9 leaves a file whose "open for write" flag is still set:
 * every appended-and-flushed row is readable with SWMR read access, which
 * mplb_runfile_read uses as a fallback; resume copies those rows into a new
 * file rather than reopening the old one for writing.
 *
 * Root attributes: schema_version, mplb_version, git_revision, command,
 * seed, status (running/complete/failed), error, times_source, backend,
 * error_metric (what the error_proxy column holds: mplb/backend.h). /config: the resolved
 * experiment (Lua text). /policy/{names,sources,params}. /hardware: the
 * profile's source. /steps: one compound row per (policy, step, layer);
 * /ranks/{load,compute} [rows x R]; /experts/{load,precision} [rows x E],
 * precision as an HDF5 enum of the mplb precision names;
 * /repeats/{t_layer_us,t_baseline_us} [rows x N] every timed run of a
 * measuring backend (mplb/measure.h). With text domains
 * (workload.kind = "lm"): /accuracy/domains [D] names and /accuracy/by_domain,
 * one compound row per (policy, step, domain) measured. Datasets are
 * chunked and deflated with an unlimited first axis; rows are buffered and
 * flushed every flush_rows rows, so a killed run keeps every flushed row.
 * The file is opened with H5Fcreate(EXCL) unless force: results are never
 * silently overwritten.
 */
#ifndef MPLB_RUNFILE_H
#define MPLB_RUNFILE_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"

MPLB_BEGIN_DECLS

#define MPLB_SCHEMA_VERSION "1.0"

typedef struct mplb_step_row {
    int32_t policy, step, layer;
    int64_t tokens;
    double t_layer_us, t_baseline_us, t_dispatch_us, t_compute_max_us, t_combine_us;
    double exposed_conv_us, imbalance, lis, error_proxy, decide_us;
    double bytes_intra, bytes_inter;
    /* measured accuracy (workload.kind = "lm"), in the last layer's row of a
     * step (the model's output); NaN where not measured. Not error_proxy. */
    double kl, top1_agree, ppl_delta;
    /* LIS after the policy's plan (mplb_lis_rows); `lis` is the routing's, before it */
    double lis_after;
    /* measuring backends (mplb/measure.h): t_layer_us and t_baseline_us are
     * low medians of `repeats` timed runs, these their min and max (the
     * model: repeats 1, min = max = the time) */
    double t_layer_min_us, t_layer_max_us, t_baseline_min_us, t_baseline_max_us;
    int32_t repeats;
} mplb_step_row;

/* Measured accuracy on one text domain (workload.kind = "lm"), from the
 * step's model output; written with the step's last-layer /steps row. */
typedef struct mplb_domain_row {
    int32_t policy, step, domain;      /* domain: index into /accuracy/domains */
    int64_t positions;                 /* positions compared (tokens with a next token) */
    double kl, top1_agree, ppl_delta, ppl_ref, ppl_q;
} mplb_domain_row;

typedef struct mplb_runfile_meta {
    const char *mplb_version, *git_revision, *command, *config, *hardware, *host;
    const char *times_source;   /* where the times come from: "cost model, profile h100", "measured on ..." */
    const char *backend;        /* model, cpu, cuda, ep */
    const char *error_metric;   /* what /steps.error_proxy holds (mplb/backend.h) */
    uint64_t seed;
    int n_policies;
    const char *const *policy_names, *const *policy_sources, *const *policy_params;
    int repeats;   /* > 0: /repeats/{t_layer_us,t_baseline_us} [rows x repeats] hold every timed run */
    int n_domains;                     /* 0: no /accuracy group */
    const char *const *domain_names;
} mplb_runfile_meta;

typedef struct mplb_runfile mplb_runfile;

/* flush_rows (0 = 64) and flush_seconds (0 = 1 s): whichever comes first. */
MPLB_API int mplb_runfile_create(const char *path, const mplb_runfile_meta *meta, int R, int E,
                        int force, int flush_rows, double flush_seconds, mplb_runfile **out, mplb_err *err);
MPLB_API int mplb_runfile_append(mplb_runfile *rf, const mplb_step_row *row, const double *rank_load,
                        const double *rank_compute, const int32_t *expert_load,
                        const uint8_t *expert_prec, mplb_err *err);
/* The timed runs of the next appended row (n = meta->repeats values each;
 * mplb/measure.h); a row appended without them gets NaN. */
MPLB_API void mplb_runfile_stage_repeats(mplb_runfile *rf, const double *t_layer, const double *t_baseline, int n);
/* Buffered; flushed with the next /steps rows (a file created with n_domains > 0). */
MPLB_API int mplb_runfile_append_domain(mplb_runfile *rf, const mplb_domain_row *row, mplb_err *err);
MPLB_API int mplb_runfile_flush(mplb_runfile *rf, mplb_err *err);
/* Flush, write status ("complete" or "failed") and error, close, free rf. */
MPLB_API int mplb_runfile_close(mplb_runfile *rf, const char *status, const char *error, mplb_err *err);

/* Reading back (inspect, tests). */
typedef struct mplb_runfile_info {
    char status[32], schema_version[16], mplb_version[32];
    int unclosed;                      /* still open for write, or killed (read via SWMR) */
    char *error, *config, *command;    /* malloc'd */
    uint64_t seed;
    int n_policies;
    char **policy_names;               /* malloc'd */
    int64_t n_rows;
    mplb_step_row *rows;               /* malloc'd, n_rows */
    int R, E;
    /* with mplb_runfile_read_arrays: [n_rows x R] and [n_rows x E] */
    double *rank_load, *rank_compute;
    int32_t *expert_load;
    uint8_t *expert_prec;
    char **policy_sources, **policy_params; /* malloc'd, n_policies */
    char *hardware, *host;
    char *times_source;   /* NULL in files written before mplb recorded it */
    char *backend, *error_metric;   /* NULL in files written before mplb recorded them */
    /* with mplb_runfile_read_arrays, when the file has /repeats: [n_rows x repeats] each, else NULL and 0 */
    int repeats;
    double *rep_layer, *rep_baseline;
    /* with mplb_runfile_read_arrays: /accuracy (0 and NULL in files without it) */
    int n_domains;
    char **domain_names;               /* malloc'd, n_domains */
    int64_t n_domain_rows;
    mplb_domain_row *domain_rows;      /* malloc'd */
} mplb_runfile_info;

MPLB_API int mplb_runfile_read(const char *path, mplb_runfile_info *info, mplb_err *err);
/* mplb_runfile_read plus the per-rank and per-expert arrays and policy texts. */
MPLB_API int mplb_runfile_read_arrays(const char *path, mplb_runfile_info *info, mplb_err *err);
MPLB_API void mplb_runfile_info_free(mplb_runfile_info *info);
/* May a run described by meta (R ranks, E experts) continue the file read
 * into old (with mplb_runfile_read_arrays)? Only if /config, every policy's
 * name, source and params, and the widths are all the same: otherwise the
 * kept rows would come from other inputs than the new ones (and
 * /policy/sources would describe only the new). 0, or MPLB_ECONFIG naming
 * the first difference. */
MPLB_API int mplb_runfile_resumable(const char *path, const mplb_runfile_info *old, const mplb_runfile_meta *meta, int R, int E,
                           mplb_err *err);

MPLB_END_DECLS

#endif
