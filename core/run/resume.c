/* --resume: see core/internal/run_resume.h. */
#include "run_resume.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void run_summary_add(mplb_policy_summary *ps, const mplb_step_row *row) {
    ps->rows++;
    ps->sum_t_layer += row->t_layer_us;
    ps->sum_t_baseline += row->t_baseline_us;
    ps->sum_imbalance += row->imbalance;
    ps->sum_error_proxy += row->error_proxy;
    ps->sum_decide_us += row->decide_us;
    ps->sum_t_layer_min += row->t_layer_min_us;
    ps->sum_t_layer_max += row->t_layer_max_us;
    ps->repeats = row->repeats;
    if (!isnan(row->kl)) {   /* accuracy measured (workload.kind = "lm") */
        ps->acc_rows++;
        ps->sum_kl += row->kl;
        ps->sum_top1 += row->top1_agree;
        ps->sum_ppl_delta += row->ppl_delta;
    }
}

int run_resume_open(run_resume *rs, const mplb_exp *x, const mplb_run_opts *opts, int R, int E, int P, mplb_err *err) {
    memset(rs, 0, sizeof *rs);
    rs->write_path = opts->out_path;   /* NULL: evaluate without writing (benchmarks) */
    if (!opts->resume || !opts->out_path || access(opts->out_path, F_OK) != 0) return 0;
    int rc = mplb_runfile_read_arrays(opts->out_path, &rs->old, err);
    if (rc == MPLB_EFORMAT && opts->force) {
        /* --force: start it over (the file is replaced only when the new one is done) */
        mplb_runfile_info_free(&rs->old);
        memset(&rs->old, 0, sizeof rs->old);
        return 0;
    } else if (rc == MPLB_EFORMAT) {
        /* the file is put in place only after its header is complete, so an
         * unreadable one is foreign or damaged: never replaced silently */
        return mplb_err_wrap(err, "cannot resume (not a readable mplb run file of schema %s.x; run with --force instead of --resume to replace it)",
                             MPLB_SCHEMA_VERSION);
    } else if (rc < 0) {
        return rc;
    } else if (!rs->old.config || strcmp(rs->old.config, x->resolved) != 0 || rs->old.R != R || rs->old.E != E ||
               rs->old.n_policies != P) {
        mplb_runfile_info_free(&rs->old);
        return mplb_err_set(err, MPLB_ECONFIG, "%s: written by a different experiment (its /config differs); "
                            "resume needs the same experiment and --set values, or use --force to start over",
                            opts->out_path);
    }
    int64_t per_step = (int64_t)x->model.layers * P;
    rs->start_step = per_step > 0 ? (int)(rs->old.n_rows / per_step) : 0;
    if (rs->start_step > x->workload.steps) rs->start_step = x->workload.steps;
    snprintf(rs->tmp, sizeof rs->tmp, "%s.resume", opts->out_path);
    rs->write_path = rs->tmp;
    rs->active = 1;
    return 0;
}

int run_resume_copy(run_resume *rs, mplb_runfile *rf, const mplb_exp *x, int P, mplb_run_summary *sum, mplb_err *err) {
    if (!rs->active) return 0;
    int R = rs->old.R, E = rs->old.E, rc = 0;
    int64_t keep = (int64_t)rs->start_step * x->model.layers * P;
    for (int64_t i = 0; i < keep && rc == 0; i++) {
        const mplb_step_row *row = &rs->old.rows[i];
        if (rs->old.repeats)   /* the timed runs of a measuring backend travel with their row */
            mplb_runfile_stage_repeats(rf, rs->old.rep_layer + i * rs->old.repeats, rs->old.rep_baseline + i * rs->old.repeats,
                                       rs->old.repeats);
        rc = mplb_runfile_append(rf, row, rs->old.rank_load + i * R, rs->old.rank_compute + i * R,
                                 rs->old.expert_load + i * E, rs->old.expert_prec + i * E, err);
        if (rc == 0 && row->policy >= 0 && row->policy < P) run_summary_add(&sum->pol[row->policy], row);
    }
    for (int64_t i = 0; i < rs->old.n_domain_rows && rc == 0; i++) {   /* /accuracy/by_domain of the kept steps */
        const mplb_domain_row *d = &rs->old.domain_rows[i];
        if (d->step >= rs->start_step || d->policy >= P) continue;
        rc = mplb_runfile_append_domain(rf, d, err);
        mplb_policy_summary *ps = &sum->pol[d->policy];
        if (rc == 0 && d->domain < MPLB_MAX_DOMAINS) {
            ps->dom_kl[d->domain] += d->kl;
            ps->dom_top1[d->domain] += d->top1_agree;
            ps->dom_ppl_delta[d->domain] += d->ppl_delta;
            ps->dom_rows += d->domain == 0;
        }
    }
    sum->resumed_steps = rs->start_step;
    mplb_runfile_info_free(&rs->old);
    memset(&rs->old, 0, sizeof rs->old);
    return rc;
}

int run_resume_finish(run_resume *rs, const char *out_path, int ok, mplb_err *err) {
    if (!rs->active || !ok) return 0;
    if (rename(rs->tmp, out_path) != 0) return mplb_err_set(err, MPLB_EIO, "cannot rename %s to %s", rs->tmp, out_path);
    return 0;
}

void run_resume_free(run_resume *rs) {
    mplb_runfile_info_free(&rs->old);
    memset(&rs->old, 0, sizeof rs->old);
}
