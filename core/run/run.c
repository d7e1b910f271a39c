/* The step loop: see include/mplb/run.h. */
#include "mplb/run.h"
#include "mplb/backend.h"
#include "mplb/measure.h"
#include "mplb/observe.h"
#include "mplb/runfile.h"
#include "mplb/split.h"
#include "mplb/version.h"
#include "mplb/workload.h"
#include "lsandbox.h"
#include "run_resume.h"
#include "mplb/accuracy.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Everything one run holds, opened by run_open and freed by run_free. */
typedef struct run {
    const mplb_exp *x;
    const mplb_run_opts *opts;
    mplb_profile hw;
    mplb_placement base;
    mplb_wl wl;
    mplb_routing rt;
    mplb_plan plan, base_plan;
    mplb_placement *bases;   /* [layers] initial placements from placement_file, or NULL (r->base for all) */
    double *base_mem;        /* [layers * R] their all-bf16 expert bytes per rank (obs.rank_mem), or NULL */
    int n_bases;
    mplb_cost_result res, base_res;
    double base_error;
    mplb_observer ob;
    int P, n_open;
    mplb_policy **pols;
    mplb_backend_env env;
    const mplb_backend_ops *be;
    void *be_ctx;
    mplb_runfile *rf;
    run_resume rs;
    uint8_t *prec8;
    int64_t *slot_rows;       /* [E*R] rows each expert instance computes under the plan (LIS after it) */
    mplb_run_summary *sum;
    /* [P * layers] the placement each policy had in force per layer: a plan
     * that differs is a rebalance, and the cost model charges its migration */
    mplb_placement *prev;
    int n_prev;
    mplb_accrun *acc;         /* workload.kind = "lm": routing from a real model, accuracy measured */
    mplb_lm_metrics *met;     /* [domains + 1] */
    double *ablation;         /* [E] this (step, layer)'s importance by ablation, or NULL */
} run;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void run_free(run *r) {
    for (int i = 0; i < r->n_open; i++) mplb_policy_close(r->pols[i]);
    free(r->pols);
    if (r->be && r->be_ctx) r->be->close(r->be_ctx);
    mplb_observer_free(&r->ob);
    mplb_placement_free(&r->base);
    for (int l = 0; l < r->n_bases; l++) mplb_placement_free(&r->bases[l]);
    free(r->bases);
    free(r->base_mem);
    mplb_wl_free(&r->wl);
    mplb_routing_free(&r->rt);
    mplb_plan_free(&r->plan);
    mplb_plan_free(&r->base_plan);
    mplb_cost_result_free(&r->res);
    mplb_cost_result_free(&r->base_res);
    run_resume_free(&r->rs);
    free(r->prec8);
    free(r->slot_rows);
    for (int i = 0; i < r->n_prev; i++) mplb_placement_free(&r->prev[i]);
    free(r->prev);
    mplb_accrun_close(r->acc);
    free(r->met);
    free(r->ablation);
}

/* The layer's starting placement: placement_file's row, else contiguous. */
static mplb_placement *base_of(run *r, int layer) { return r->bases ? &r->bases[layer] : &r->base; }

/* The model of the layer: profile, home placement, workload, routing,
 * plans, results, observer; then the backend the experiment names. */
static int open_model(run *r, const mplb_exp *x, const mplb_run_opts *opts, mplb_err *err) {
    int R = x->cluster.nodes * x->cluster.gpus_per_node, E = x->model.experts, rc;
    double relerr[MPLB_PREC_COUNT];
    mplb_error_table(relerr);
    if (x->accuracy[0] && (rc = mplb_accuracy_load(x->accuracy, relerr, err)) < 0) return rc;
    if (opts->hw) r->hw = *opts->hw;   /* a profile given (mplb_sensitivity moves its values) */
    else if ((rc = mplb_profile_load(x->cluster.profile, x->base_dir, &r->hw, err)) < 0) return rc;
    if ((rc = mplb_placement_init_contiguous(&r->base, R, E, err)) < 0 ||
        (rc = mplb_wl_init(&r->wl, &x->workload, &x->model, R, x->cluster.gpus_per_node, x->seed, err)) < 0 ||
        (rc = mplb_routing_alloc(&r->rt, R, E, x->cluster.nodes, x->model.top_k, err)) < 0 ||
        (rc = mplb_plan_init(&r->plan, &r->base, err)) < 0 || (rc = mplb_plan_init(&r->base_plan, &r->base, err)) < 0 ||
        (rc = mplb_cost_result_alloc(&r->res, R, err)) < 0 || (rc = mplb_cost_result_alloc(&r->base_res, R, err)) < 0 ||
        (rc = mplb_observer_init(&r->ob, &x->model, &x->cluster, &r->hw, &r->base, relerr, err)) < 0)
        return rc;
    if (x->placement_file[0]) {   /* an engine's physical->logical map, per layer */
        if (!(r->bases = calloc((size_t)x->model.layers, sizeof *r->bases))) return mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
        if ((rc = mplb_placement_load_map(x->placement_file, x->model.layers, R, E, r->bases, err)) < 0) return rc;
        r->n_bases = x->model.layers;
        /* obs.rank_mem per layer (replicas take memory); an unset budget covers the busiest rank x 1.25 */
        if (!(r->base_mem = calloc((size_t)x->model.layers * R, sizeof *r->base_mem)))
            return mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
        double most = 0;
        int most_l = 0, most_q = 0;
        for (int l = 0; l < x->model.layers; l++) {
            mplb_plan bf16;
            if ((rc = mplb_plan_init(&bf16, &r->bases[l], err)) < 0) return rc;
            mplb_plan_memory(&bf16, &x->model, r->base_mem + (size_t)l * R);
            mplb_plan_free(&bf16);
            for (int q = 0; q < R; q++)
                if (r->base_mem[(size_t)l * R + q] > most) { most = r->base_mem[(size_t)l * R + q]; most_l = l; most_q = q; }
        }
        if (x->cluster.expert_memory_gb <= 0) r->ob.mem_budget = 1.25 * most;
        else if (most > r->ob.mem_budget)   /* refused here, not later in the name of the first policy */
            return mplb_err_set(err, MPLB_ECONFIG, "%s: placement_file %s: layer %d puts %.4g GB of bf16 experts on rank %d, "
                                "over cluster.expert_memory_gb = %g", x->path, x->placement_file, most_l + 1, most / 1e9,
                                most_q + 1, x->cluster.expert_memory_gb);
    }
    r->prev = calloc((size_t)r->P * x->model.layers + 1, sizeof *r->prev);
    if (!r->prev) return mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
    for (; r->n_prev < r->P * x->model.layers; r->n_prev++)
        if ((rc = mplb_placement_copy(&r->prev[r->n_prev], base_of(r, r->n_prev % x->model.layers), err)) < 0) return rc;
    if (!strcmp(x->workload.kind, "lm")) {   /* a real model's router gives the routing; accuracy measured */
        if ((rc = mplb_accrun_open(&x->workload, &x->model, r->P, &r->acc, err)) < 0) return rc;
        r->met = calloc((size_t)mplb_accrun_domains(r->acc) + 1, sizeof *r->met);
        if (x->workload.lm_ablation) r->ablation = calloc((size_t)E, sizeof *r->ablation);
        if (!r->met || (x->workload.lm_ablation && !r->ablation)) return mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
        r->sum->n_domains = mplb_accrun_domains(r->acc);
        for (int g = 0; g < r->sum->n_domains && g < MPLB_MAX_DOMAINS; g++)
            snprintf(r->sum->domains[g], sizeof r->sum->domains[g], "%s", mplb_accrun_domain(r->acc, g));
    }
    mplb_backend_id id;
    if ((rc = mplb_backend_find(x->backend, &id, err)) < 0) return rc;
    r->env = (mplb_backend_env){.exp = x, .hw = &r->hw, .relerr = r->ob.relerr, .transport = opts->transport,
                                .device = opts->device, .repeats = x->repeats, .warmup = x->warmup,
                                .allow_oversubscribed = opts->allow_oversubscribed};
    r->be = mplb_backend_ops_of(id);
    if (opts->transport && id != MPLB_BACKEND_EP)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: a transport runs real EP layers: it needs backend = \"ep\" (not %s)",
                            x->path, x->backend);
    r->sum->backend = r->be->name;
    r->sum->error_metric = r->be->error_metric;
    if ((rc = r->be->open(&r->env, &r->be_ctx, err)) < 0) return rc;
    r->be->describe(r->be_ctx, r->sum->times_source, sizeof r->sum->times_source);
    if (opts->times_note && strcmp(r->be->name, "model") != 0) {
        size_t n = strlen(r->sum->times_source);
        snprintf(r->sum->times_source + n, sizeof r->sum->times_source - n, " (%s)", opts->times_note);
    }
    return 0;
}

/* The policies (init sees an empty routing) and the summary's names. */
static int open_policies(run *r, const mplb_exp *x, const mplb_run_opts *opts, mplb_err *err) {
    mplb_obs ctx;
    mplb_observe(&r->ob, &r->rt, 0, 0, &ctx);
    ctx.expert_ablation = r->ablation;
    for (int i = 0; i < r->P; i++) {
        int rc = mplb_policy_open(x->policies[i].path, x->policies[i].params, &opts->limits, &ctx, &r->pols[i], err);
        if (rc < 0) return rc;
        r->n_open++;
        snprintf(r->sum->pol[i].name, sizeof r->sum->pol[i].name, "%s", x->policies[i].label);
    }
    return 0;
}

/* The run file: its header (provenance of every number in it), then the
 * steps an earlier file keeps when resuming. */
static int open_file(run *r, const mplb_exp *x, const mplb_run_opts *opts, mplb_err *err) {
    int R = r->base.R, E = r->base.E, P = r->P, rc;
    if ((rc = run_resume_open(&r->rs, x, opts, R, E, P, err)) < 0 || !r->rs.write_path) return rc;
    const char **names = calloc((size_t)P + 1, sizeof *names), **srcs = calloc((size_t)P + 1, sizeof *srcs),
               **params = calloc((size_t)P + 1, sizeof *params);
    char *hw_src = NULL, host[256] = "unknown";
    if (!names || !srcs || !params) rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
    else rc = mplb_read_file(r->hw.path, &hw_src, NULL, err);
    for (int i = 0; i < P && rc == 0; i++) {
        names[i] = x->policies[i].label;
        srcs[i] = mplb_policy_source(r->pols[i]);
        params[i] = mplb_policy_params(r->pols[i]);
    }
    gethostname(host, sizeof host - 1);
    const char *doms[MPLB_MAX_DOMAINS];   /* workload.kind = "lm": the text domains of /accuracy */
    int nd = r->acc ? mplb_accrun_domains(r->acc) : 0;
    for (int g = 0; g < nd && g < MPLB_MAX_DOMAINS; g++) doms[g] = mplb_accrun_domain(r->acc, g);
    mplb_runfile_meta meta = {.mplb_version = MPLB_VERSION, .git_revision = mplb_git_revision(),
                              .command = opts->command ? opts->command : "", .config = x->resolved, .hardware = hw_src,
                              .host = host, .times_source = r->sum->times_source, .backend = r->be->name,
                              .error_metric = r->be->error_metric, .seed = x->seed, .n_policies = P,
                              .repeats = strcmp(r->be->name, "model") != 0 ? x->repeats : 0,
                              .policy_names = names, .policy_sources = srcs, .policy_params = params,
                              .n_domains = nd < MPLB_MAX_DOMAINS ? nd : MPLB_MAX_DOMAINS, .domain_names = doms};
    /* resume only a file of the same config, policy sources and params */
    if (rc == 0 && r->rs.active) rc = mplb_runfile_resumable(opts->out_path, &r->rs.old, &meta, R, E, err);
    if (rc == 0)
        rc = mplb_runfile_create(r->rs.write_path, &meta, R, E, opts->force || r->rs.active, opts->flush_rows,
                                 opts->flush_seconds, &r->rf, err);
    free(names); free(srcs); free(params); free(hw_src);
    return rc < 0 ? rc : run_resume_copy(&r->rs, r->rf, x, P, r->sum, err);
}

static int run_open(run *r, const mplb_exp *x, const mplb_run_opts *opts, mplb_run_summary *sum, mplb_err *err) {
    memset(r, 0, sizeof *r);
    memset(sum, 0, sizeof *sum);
    r->x = x;
    r->opts = opts;
    r->P = x->n_policies;
    r->sum = sum;
    r->pols = calloc((size_t)r->P + 1, sizeof *r->pols);
    r->prec8 = calloc((size_t)x->model.experts, 1);
    r->slot_rows = calloc((size_t)x->model.experts * (size_t)x->cluster.nodes * x->cluster.gpus_per_node + 1,
                          sizeof *r->slot_rows);
    sum->pol = calloc((size_t)r->P + 1, sizeof *sum->pol);
    sum->n_policies = r->P;
    if (!r->pols || !r->prec8 || !r->slot_rows || !sum->pol) return mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
    int rc = open_model(r, x, opts, err);
    if (rc == 0) rc = open_policies(r, x, opts, err);
    if (rc == 0) rc = open_file(r, x, opts, err);
    return rc;
}

/* A plan equal to the baseline's, from the home placement, is the baseline:
 * not evaluated twice (a measuring backend would report two samples of one
 * thing). Returning to the home placement is a rebalance, not the baseline. */
static int is_baseline(const mplb_plan *p, const mplb_plan *base) {
    if (p->placement_changed || p->n_moves || p->dispatch_prec != base->dispatch_prec) return 0;
    const mplb_placement *pv = p->prev_placement;
    if (pv && memcmp(pv->has, base->placement.has, (size_t)p->E * p->R) != 0) return 0;
    for (int e = 0; e < p->E; e++)
        if (p->expert_prec[e] != base->expert_prec[e]) return 0;
    return 1;
}

/* One policy on the current (step, layer): observe, decide, evaluate, write. */
static int run_policy(run *r, int i, const mplb_layer_in *in, double lis, int replaying, mplb_err *err) {
    const mplb_exp *x = r->x;
    mplb_obs obs;
    mplb_observe(&r->ob, &r->rt, in->step, in->layer, &obs);
    obs.expert_ablation = r->ablation;
    double t0 = now_us();
    int rc = mplb_policy_decide(r->pols[i], &obs, &r->plan, err);
    double dt = now_us() - t0, error = r->base_error;
    if (rc < 0) return rc;
    if (r->opts->on_plan && !replaying) r->opts->on_plan(r->opts->hook_ctx, i, in->step, in->layer, &r->plan, dt);
    mplb_placement *prev = &r->prev[(size_t)i * x->model.layers + in->layer];
    r->plan.prev_placement = prev;
    if (is_baseline(&r->plan, &r->base_plan)) mplb_cost_result_copy(&r->res, &r->base_res);
    else if ((rc = r->be->eval(r->be_ctx, in, &r->plan, &r->res, &error, err)) < 0)
        return mplb_err_wrap(err, "policy %s, step %d, layer %d", x->policies[i].label, in->step + 1, in->layer + 1);
    mplb_placement_assign(prev, &r->plan.placement);
    double kl = NAN, top1 = NAN, ppl = NAN;
    if (r->acc) {   /* measured on the model's output once the step's last layer is decided */
        mplb_accrun_plan(r->acc, i, in->layer, r->plan.expert_prec);
        if (in->layer == x->model.layers - 1) {
            if ((rc = mplb_accrun_measure(r->acc, i, r->met, err)) < 0) return rc;
            const mplb_lm_metrics *all = &r->met[mplb_accrun_domains(r->acc)];
            kl = all->kl;
            top1 = all->top1;
            ppl = all->ppl_q - all->ppl_ref;
            mplb_policy_summary *ps = &r->sum->pol[i];
            for (int g = 0; g < r->sum->n_domains && g < MPLB_MAX_DOMAINS && !replaying; g++) {
                ps->dom_kl[g] += r->met[g].kl;
                ps->dom_top1[g] += r->met[g].top1;
                ps->dom_ppl_delta[g] += r->met[g].ppl_q - r->met[g].ppl_ref;
            }
            if (!replaying) ps->dom_rows++;
            for (int g = 0; g < r->sum->n_domains && !replaying && r->rf && rc == 0; g++) {
                const mplb_lm_metrics *m = &r->met[g];
                mplb_domain_row dr = {i, in->step, g, m->n, m->kl, m->top1, m->ppl_q - m->ppl_ref, m->ppl_ref, m->ppl_q};
                rc = mplb_runfile_append_domain(r->rf, &dr, err);
            }
            if (rc < 0) return rc;
        }
    }
    /* LIS after the plan (R&Q's measure of what a policy achieved): per expert
     * instance, the rows the split rule gives it (replicas share, moves take) */
    if ((rc = mplb_split_rows(&r->plan, r->rt.expert_counts, r->slot_rows, err)) < 0) return rc;
    double lis_after = mplb_lis_rows(r->slot_rows, r->plan.E, r->plan.R, r->rt.tokens, x->model.top_k);
    double tb, tb_lo, tb_hi, tl_lo, tl_hi;   /* medians and spreads of the repeats (mplb/measure.h) */
    mplb_measure_baseline(&r->res, &r->base_res, &tb, &tb_lo, &tb_hi);
    mplb_min_max(r->res.rep_layer, r->res.repeats, &tl_lo, &tl_hi);
    mplb_step_row row = {
        .policy = i, .step = in->step, .layer = in->layer, .tokens = r->rt.tokens,
        .t_layer_us = r->res.t_layer, .t_baseline_us = tb, .t_dispatch_us = r->res.t_dispatch,
        .t_compute_max_us = r->res.t_compute_max, .t_combine_us = r->res.t_combine, .exposed_conv_us = r->res.exposed_conv,
        .imbalance = r->res.imbalance, .lis = lis, .error_proxy = error, .decide_us = dt,
        .bytes_intra = r->res.bytes_intra, .bytes_inter = r->res.bytes_inter,
        .kl = kl, .top1_agree = top1, .ppl_delta = ppl, .lis_after = lis_after,
        .repeats = r->res.repeats, .t_layer_min_us = tl_lo, .t_layer_max_us = tl_hi,
        .t_baseline_min_us = tb_lo, .t_baseline_max_us = tb_hi,
    };
    if (!replaying) {
        for (int e = 0; e < x->model.experts; e++) r->prec8[e] = (uint8_t)r->plan.expert_prec[e];
        if (r->rf) mplb_runfile_stage_repeats(r->rf, r->res.rep_layer, r->res.n_base ? r->res.rep_base : r->base_res.rep_layer,
                                              r->res.repeats);
        if (r->rf && (rc = mplb_runfile_append(r->rf, &row, r->res.rank_load, r->res.rank_compute, r->rt.expert_counts,
                                               r->prec8, err)) < 0)
            return rc;
        run_summary_add(&r->sum->pol[i], &row);
    }
    mplb_feedback fb = {in->step, in->layer, row.t_layer_us, row.t_baseline_us, row.imbalance, row.error_proxy,
                        !isnan(row.kl), row.kl};
    return mplb_policy_feedback(r->pols[i], &fb, err);
}

/* One (step, layer): routing, the all-bf16 baseline, then every policy on
 * the same routing, so their rows compare like for like. Replayed steps
 * (resume) feed stateful policies without writing. */
static int run_layer(run *r, int step, int layer, int replaying, mplb_err *err) {
    const mplb_exp *x = r->x;
    mplb_layer_in in = {step, layer, &r->rt, NULL};
    int rc = 0;
    if (r->acc) {   /* the model's own router on the step's text */
        if (layer == 0 && (rc = mplb_accrun_step(r->acc, step, err)) < 0) return rc;
        if ((rc = mplb_accrun_routing(r->acc, layer, base_of(r, layer), x->cluster.gpus_per_node, &r->rt, err)) < 0) return rc;
        if (r->ablation && (rc = mplb_accrun_importance(r->acc, layer, r->ablation, err)) < 0) return rc;
    } else if ((rc = mplb_wl_generate(&r->wl, step, layer, base_of(r, layer), &r->rt, err)) < 0)
        return rc;
    r->ob.base = base_of(r, layer);   /* obs.expert_rank: this layer's homes */
    if (r->base_mem) memcpy(r->ob.rank_mem, r->base_mem + (size_t)layer * r->base.R, (size_t)r->base.R * sizeof *r->ob.rank_mem);
    mplb_plan_reset(&r->base_plan, base_of(r, layer));
    if ((rc = r->be->eval(r->be_ctx, &in, &r->base_plan, &r->base_res, &r->base_error, err)) < 0)
        return mplb_err_wrap(err, "baseline, step %d, layer %d", step + 1, layer + 1);
    double lis = mplb_lis(r->rt.expert_counts, x->model.experts, r->rt.tokens, x->model.top_k);
    in.baseline = &r->base_plan;   /* measuring backends time each plan interleaved with it */
    for (int i = 0; i < r->P && rc == 0; i++) {
        mplb_plan_reset(&r->plan, base_of(r, layer));
        rc = run_policy(r, i, &in, lis, replaying, err);
    }
    return rc;
}

/* Close the file with the run's status (every appended row is flushed
 * first), finish a resume, free. */
static int run_close(run *r, int rc, int stopped, const mplb_run_opts *opts, mplb_err *err) {
    mplb_err cerr = {0};
    const char *status = rc < 0 ? "failed" : stopped ? "interrupted" : "complete";
    int crc = r->rf ? mplb_runfile_close(r->rf, status, rc < 0 ? err->msg : "", &cerr) : 0;
    r->rf = NULL;
    if (rc == 0 && crc < 0) { *err = cerr; rc = crc; }
    int frc = crc == 0 ? run_resume_finish(&r->rs, opts->out_path, 1, rc == 0 ? err : &cerr) : 0;
    if (rc == 0) rc = frc;
    run_free(r);
    return rc;
}

int mplb_run(const mplb_exp *x, const mplb_run_opts *opts, mplb_run_summary *sum, mplb_err *err) {
    run r;
    int rc = run_open(&r, x, opts, sum, err);
    /* policies that keep state (history, learned thresholds) replay the
     * kept steps of a resumed run, so it equals an uninterrupted one */
    int replay = 0;
    for (int i = 0; i < r.n_open; i++) replay |= !mplb_policy_stateless(r.pols[i]);
    int stopped = 0;   /* *opts->stop (Ctrl-C): end before the next layer, resumable */
    for (int step = replay ? 0 : r.rs.start_step; rc == 0 && !stopped && step < x->workload.steps; step++)
        for (int layer = 0; rc == 0 && layer < x->model.layers; layer++) {
            if ((stopped = opts->stop && *opts->stop)) break;
            if (opts->progress) opts->progress(opts->hook_ctx, step, layer, x->workload.steps, x->model.layers);
            rc = run_layer(&r, step, layer, step < r.rs.start_step, err);
        }
    return run_close(&r, rc, stopped, opts, err);
}

void mplb_run_summary_free(mplb_run_summary *sum) {
    free(sum->pol);
    memset(sum, 0, sizeof *sum);
}
