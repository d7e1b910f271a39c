/* run_resume: --resume for the run loop (core/run/run.c). An earlier file
 * (killed or failed) of the same experiment keeps its complete steps: they
 * are copied into a new file FILE.resume, which is renamed over FILE once it
 * is closed; the old file is never opened for writing (a killed SWMR writer
 * leaves it flagged open). */
#ifndef MPLB_RUN_RESUME_H
#define MPLB_RUN_RESUME_H

#include "mplb/config.h"
#include "mplb/run.h"
#include "mplb/runfile.h"

typedef struct run_resume {
    int active;                     /* continuing an earlier file */
    int start_step;                 /* the first step not kept */
    const char *write_path;         /* where this run writes: out_path, FILE.resume, or NULL */
    char tmp[MPLB_PATH_MAX + 16];
    mplb_runfile_info old;          /* its rows, until copied */
} run_resume;

/* Decide where to write and what to keep (start_step 0 when not resuming). */
int run_resume_open(run_resume *rs, const mplb_exp *x, const mplb_run_opts *opts, int R, int E, int P, mplb_err *err);
/* Append the kept steps' rows to rf, counting them into sum. */
int run_resume_copy(run_resume *rs, mplb_runfile *rf, const mplb_exp *x, int P, mplb_run_summary *sum, mplb_err *err);
/* After the file is closed (ok != 0): FILE.resume replaces FILE. */
int run_resume_finish(run_resume *rs, const char *out_path, int ok, mplb_err *err);
void run_resume_free(run_resume *rs);

/* Count one row into a policy's summary. */
void run_summary_add(mplb_policy_summary *ps, const mplb_step_row *row);

#endif
