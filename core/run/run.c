/* The step loop: see include/mplb/run.h. */
#include "mplb/run.h"
#include "mplb/runfile.h"
#include "mplb/version.h"
#include "mplb/workload.h"
#include "lsandbox.h"
#include "mplb/quant.h"
#include "mplb/execute.h"
#include "mplb/ep_run.h"
#include "mplb/accuracy.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Relative RMS error of each format on a seeded synthetic weight matrix:
 * Gaussian with 1% outliers at 10x (heavy-tailed like real expert weights).
 * fp8/fp4 casts use a per-tensor scale, as a weight format would. A proxy:
 * `mplb calibrate --accuracy` on real weights is the better table. */
void mplb_error_table(double relerr[MPLB_PREC_COUNT]) {
    enum { ROWS = 64, COLS = 1024 };
    float *w = malloc(sizeof(float) * ROWS * COLS), *y = malloc(sizeof(float) * ROWS * COLS);
    mplb_rng g;
    mplb_rng_seed(&g, 0x5eed);
    for (int i = 0; w && i < ROWS * COLS; i++) {
        double u1 = mplb_rng_uniform(&g), u2 = mplb_rng_uniform(&g);
        double z = sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2);
        w[i] = (float)(0.02 * z * (mplb_rng_uniform(&g) < 0.01 ? 10 : 1));
    }
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
        mplb_qstats st;
        relerr[p] = 1.0;
        if (w && y && mplb_quant_fake(w, y, ROWS, COLS, (mplb_prec)p, &o, NULL) == 0) {
            mplb_quant_stats(w, y, ROWS * COLS, &st);
            relerr[p] = st.rms_rel;
        }
    }
    relerr[MPLB_PREC_BF16] = 0;  /* the reference: weights are stored in bf16 */
    free(w);
    free(y);
}

double mplb_error_proxy(const mplb_routing *rt, const mplb_plan *plan, const double *relerr) {
    double num = 0, den = 0;
    for (int e = 0; e < rt->E; e++) {
        den += rt->importance[e];
        num += rt->importance[e] * relerr[plan->expert_prec[e]];
    }
    return den > 0 ? num / den : 0;
}

typedef struct run_state {
    mplb_profile hw;
    mplb_placement base;
    mplb_wl wl;
    mplb_routing rt;
    mplb_plan plan, base_plan;
    mplb_cost_result res, base_res;
    mplb_policy **pols;
    double *rank_load, *rank_vision, *rank_mem, mem_budget;
    uint8_t *prec8;
    mplb_runfile *rf;
    double relerr[MPLB_PREC_COUNT], speed[MPLB_PREC_COUNT];
    int execute;              /* backend "cpu": expert compute measured */
    mplb_ep_run *ep;          /* ... and with a transport: a real EP layer per row */
    mplb_ep_times *ept;       /* [R] at rank 0 */
    mplb_exec ex;
    mplb_exec_result xr;
    /* [P * layers] the placement each policy had in force per layer: a plan
     * that differs is a rebalance, and the cost model charges its migration */
    mplb_placement *prev;
    int n_prev;
    mplb_accrun *acc;         /* workload.kind = "lm": routing from a real model, accuracy measured */
    mplb_lm_metrics *met;     /* [domains + 1] */
    double *ablation;         /* [E] this (step, layer)'s importance by ablation, or NULL */
} run_state;

/* backend "cpu": the measured per-rank FFN time replaces the model's compute
 * term; online conversion, measured, is hidden behind the modelled dispatch. */
static int apply_measured(run_state *s, const mplb_exp *x, int step, int layer, const mplb_plan *plan,
                          mplb_cost_result *res, double *error, mplb_err *err) {
    int rc = mplb_exec_layer(&s->ex, step, layer, &s->rt, plan, &s->xr, err);
    if (rc < 0) return rc;
    double worst = 0, cmax = 0, emax = 0;
    for (int r = 0; r < s->base.R; r++) {
        double exposed = s->xr.conv_us[r] > res->t_dispatch ? s->xr.conv_us[r] - res->t_dispatch : 0;
        res->rank_compute[r] = s->xr.rank_us[r] + exposed;
        if (s->xr.rank_us[r] > cmax) cmax = s->xr.rank_us[r];
        if (exposed > emax) emax = exposed;
        if (res->rank_compute[r] > worst) worst = res->rank_compute[r];
    }
    (void)x;
    res->t_compute_max = cmax;
    res->exposed_conv = emax;
    res->t_layer = res->t_dispatch + worst + res->t_combine;
    if (error) *error = s->xr.error;
    return 0;
}

/* With a transport: the layer runs for real across ranks; rank 0 receives
 * every rank's measured times and they replace the model's. */
static int apply_ep(run_state *s, int step, int layer, const mplb_plan *plan, mplb_cost_result *res, mplb_err *err) {
    int rc = mplb_ep_run_layer(s->ep, step, layer, &s->rt, plan, s->ept, err);
    if (rc < 0) return rc;
    double disp = 0, comb = 0, total = 0, cmax = 0, emax = 0;
    res->bytes_intra = res->bytes_inter = 0;
    for (int r = 0; r < s->base.R; r++) {
        const mplb_ep_times *t = &s->ept[r];
        res->bytes_intra += t->bytes_intra;
        res->bytes_inter += t->bytes_inter;
        res->rank_compute[r] = t->ffn + t->exposed;
        if (t->dispatch > disp) disp = t->dispatch;
        if (t->combine > comb) comb = t->combine;
        if (t->total > total) total = t->total;
        if (t->ffn > cmax) cmax = t->ffn;
        if (t->exposed > emax) emax = t->exposed;
    }
    res->t_dispatch = disp;
    res->t_combine = comb;
    res->t_layer = total;
    res->t_compute_max = cmax;
    res->exposed_conv = emax;
    return 0;
}

static void state_free(run_state *s, int n_pol) {
    for (int i = 0; i < n_pol && s->pols; i++) mplb_policy_close(s->pols[i]);
    free(s->pols);
    mplb_placement_free(&s->base);
    mplb_wl_free(&s->wl);
    mplb_routing_free(&s->rt);
    mplb_plan_free(&s->plan);
    mplb_plan_free(&s->base_plan);
    mplb_cost_result_free(&s->res);
    mplb_cost_result_free(&s->base_res);
    free(s->rank_load);
    free(s->rank_vision);
    free(s->rank_mem);
    free(s->prec8);
    mplb_ep_run_close(s->ep);
    mplb_accrun_close(s->acc);
    free(s->met);
    free(s->ablation);
    free(s->ept);
    for (int i = 0; i < s->n_prev; i++) mplb_placement_free(&s->prev[i]);
    free(s->prev);
    if (s->execute) {
        mplb_exec_free(&s->ex);
        free(s->xr.rank_us);
        free(s->xr.conv_us);
    }
}

static void observe(const mplb_exp *x, const run_state *s, int step, int layer, mplb_obs *o) {
    int R = s->base.R, E = s->base.E;
    memset(s->rank_load, 0, (size_t)R * sizeof(double));
    memset(s->rank_vision, 0, (size_t)R * sizeof(double));
    for (int e = 0; e < E; e++) {
        s->rank_load[s->base.home[e]] += s->rt.expert_counts[e];
        s->rank_vision[s->base.home[e]] += s->rt.vision_counts[e];
    }
    o->step = step; o->layer = layer; o->layers = x->model.layers;
    o->ranks = R; o->experts = E; o->top_k = x->model.top_k;
    o->nodes = x->cluster.nodes; o->gpus_per_node = x->cluster.gpus_per_node;
    o->tokens = s->rt.tokens;
    o->rank_load = s->rank_load;
    o->rank_vision = s->rank_vision;
    o->expert_load = s->rt.expert_counts;
    o->expert_vision = s->rt.vision_counts;
    o->expert_importance = s->rt.importance;
    o->expert_ablation = s->ablation;
    o->expert_rank = s->base.home;
    o->rank_mem = s->rank_mem;
    o->src_counts = s->rt.src_counts;
    o->prec_error = s->relerr;
    o->prec_speed = s->speed;
    o->model = &x->model;
    o->mem_budget = s->mem_budget;
}

int mplb_run(const mplb_exp *x, const mplb_run_opts *opts, mplb_run_summary *sum, mplb_err *err) {
    memset(sum, 0, sizeof *sum);
    run_state s;
    memset(&s, 0, sizeof s);
    int R = x->cluster.nodes * x->cluster.gpus_per_node, E = x->model.experts, P = x->n_policies;
    int rc;
    if (opts->hw) s.hw = *opts->hw;
    else if ((rc = mplb_profile_load(x->cluster.profile, x->base_dir, &s.hw, err)) < 0) return rc;
    if ((rc = mplb_placement_init_contiguous(&s.base, R, E, err)) < 0) goto out;
    if ((rc = mplb_wl_init(&s.wl, &x->workload, &x->model, R, x->cluster.gpus_per_node, x->seed, err)) < 0) goto out;
    if ((rc = mplb_routing_alloc(&s.rt, R, E, x->cluster.nodes, x->model.top_k, err)) < 0) goto out;
    if ((rc = mplb_plan_init(&s.plan, &s.base, err)) < 0) goto out;
    if ((rc = mplb_plan_init(&s.base_plan, &s.base, err)) < 0) goto out;
    if ((rc = mplb_cost_result_alloc(&s.res, R, err)) < 0) goto out;
    if ((rc = mplb_cost_result_alloc(&s.base_res, R, err)) < 0) goto out;
    s.pols = calloc((size_t)P, sizeof *s.pols);
    s.rank_load = calloc((size_t)R, sizeof(double));
    s.rank_vision = calloc((size_t)R, sizeof(double));
    s.prec8 = calloc((size_t)E, 1);
    s.rank_mem = calloc((size_t)R, sizeof(double));
    sum->pol = calloc((size_t)P, sizeof *sum->pol);
    if (!s.pols || !s.rank_load || !s.rank_vision || !s.prec8 || !s.rank_mem || !sum->pol) {
        rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
        goto out;
    }
    s.prev = calloc((size_t)P * x->model.layers, sizeof *s.prev);
    if (!s.prev) { rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory"); goto out; }
    for (; s.n_prev < P * x->model.layers; s.n_prev++)
        if ((rc = mplb_placement_copy(&s.prev[s.n_prev], &s.base, err)) < 0) goto out;
    sum->n_policies = P;
    if (!strcmp(x->workload.kind, "lm")) {
        if ((rc = mplb_accrun_open(&x->workload, &x->model, P, &s.acc, err)) < 0) goto out;
        s.met = calloc((size_t)mplb_accrun_domains(s.acc) + 1, sizeof *s.met);
        if (x->workload.lm_ablation) s.ablation = calloc((size_t)E, sizeof *s.ablation);
        sum->n_domains = mplb_accrun_domains(s.acc);
        for (int g = 0; g < sum->n_domains && g < 8; g++)
            snprintf(sum->domains[g], sizeof sum->domains[g], "%s", mplb_accrun_domain(s.acc, g));
        if (!s.met || (x->workload.lm_ablation && !s.ablation)) { rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory"); goto out; }
    }
    mplb_error_table(s.relerr);
    if (x->accuracy[0] && (rc = mplb_accuracy_load(x->accuracy, s.relerr, err)) < 0) goto out;
    int cuda = !strcmp(x->backend, "cuda");
    if (cuda && !opts->device) {
        rc = mplb_err_set(err, MPLB_EUNSUPP, "%s: backend = \"cuda\" needs a CUDA device and an mplb built with CUDA", x->path);
        goto out;
    }
    if (cuda && opts->transport) {
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: a transport runs real EP layers on the cpu backend, not cuda", x->path);
        goto out;
    }
    if (!strcmp(x->backend, "cpu") || cuda) {
        s.execute = 1;
        s.xr.rank_us = calloc((size_t)R, sizeof(double));
        s.xr.conv_us = calloc((size_t)R, sizeof(double));
        if (!s.xr.rank_us || !s.xr.conv_us) { rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory"); goto out; }
        if ((rc = mplb_exec_init_device(&s.ex, &x->model, x->seed, cuda ? opts->device : NULL, err)) < 0) goto out;
        if (opts->transport) {
            s.ept = calloc((size_t)R, sizeof *s.ept);
            if (!s.ept) { rc = mplb_err_set(err, MPLB_ENOMEM, "run: out of memory"); goto out; }
            if (opts->transport->size != R) {
                rc = mplb_err_set(err, MPLB_ECONFIG, "%s: %d processes, but the cluster has %d ranks (nodes x gpus_per_node)",
                                  x->path, opts->transport->size, R);
                goto out;
            }
            if ((rc = mplb_ep_run_open(&x->model, x->seed, opts->transport, &s.ep, err)) < 0) goto out;
        }
    } else if (opts->transport) {
        rc = mplb_err_set(err, MPLB_ECONFIG, "%s: a transport runs real layers: it needs backend = \"cpu\"", x->path);
        goto out;
    }
    for (int p = 0; p < MPLB_PREC_COUNT; p++)
        s.speed[p] = s.hw.peak_tflops[s.hw.compute_as[p]] / s.hw.peak_tflops[s.hw.compute_as[MPLB_PREC_BF16]];
    mplb_plan_memory(&s.base_plan, &x->model, s.rank_mem);
    s.mem_budget = x->cluster.expert_memory_gb * 1e9;
    if (s.mem_budget <= 0) {
        for (int r = 0; r < R; r++) if (s.rank_mem[r] > s.mem_budget) s.mem_budget = s.rank_mem[r];
        s.mem_budget *= 1.25;
    }
    mplb_obs ctx;
    memset(&ctx, 0, sizeof ctx);
    observe(x, &s, 0, 0, &ctx);
    const char **names = calloc((size_t)P, sizeof *names), **srcs = calloc((size_t)P, sizeof *srcs),
               **params = calloc((size_t)P, sizeof *params);
    for (int i = 0; i < P && names && srcs && params; i++) {
        if ((rc = mplb_policy_open(x->policies[i].path, x->policies[i].params, &opts->limits, &ctx, &s.pols[i], err)) < 0) {
            free(names); free(srcs); free(params);
            goto out;
        }
        names[i] = x->policies[i].label;
        srcs[i] = mplb_policy_source(s.pols[i]);
        params[i] = mplb_policy_params(s.pols[i]);
        snprintf(sum->pol[i].name, sizeof sum->pol[i].name, "%s", x->policies[i].label);
    }
    char *hw_src = NULL;
    if (!names || !srcs || !params || mplb_read_file(s.hw.path, &hw_src, NULL, err) < 0) {
        free(names); free(srcs); free(params);
        rc = names ? err->code : mplb_err_set(err, MPLB_ENOMEM, "run: out of memory");
        goto out;
    }
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    /* where the times come from, for every reader and figure */
    char source[1024];
    if (s.ep)
        snprintf(source, sizeof source, "measured: real EP layers (dispatch, experts on CPU, combine) across %d processes on %s",
                 R, host);
    else if (s.execute && opts->device)
        snprintf(source, sizeof source, "expert compute measured on %s (host %s); dispatch/combine: cost model, profile %s",
                 opts->device->name, host, s.hw.name);
    else if (s.execute)
        snprintf(source, sizeof source, "expert compute measured on the CPU of %s; dispatch/combine: cost model, profile %s",
                 host, s.hw.name);
    else snprintf(source, sizeof source, "cost model, profile %s", s.hw.name);
    mplb_runfile_meta meta = {.mplb_version = MPLB_VERSION, .git_revision = mplb_git_revision(),
                              .command = opts->command ? opts->command : "", .config = x->resolved,
                              .hardware = hw_src, .host = host, .times_source = source, .seed = x->seed, .n_policies = P,
                              .policy_names = names, .policy_sources = srcs, .policy_params = params};
    /* --resume: keep the complete steps of an earlier (killed or failed) run.
     * The kept rows are copied into a new file beside the old one, which is
     * renamed over it at the end; the old file is never opened for writing
     * (a killed SWMR writer leaves it flagged open). */
    int start_step = 0;
    char tmp_path[MPLB_PATH_MAX + 16];
    const char *write_path = opts->out_path;
    mplb_runfile_info old;
    memset(&old, 0, sizeof old);
    int resuming = 0;
    if (opts->resume && opts->out_path && access(opts->out_path, F_OK) == 0) {
        rc = mplb_runfile_read_arrays(opts->out_path, &old, err);
        int damaged = rc == MPLB_EFORMAT;
        if (damaged) {
            /* killed before its header was complete: nothing to keep, start it
             * over (the damaged file is replaced only when the new one is done) */
            memset(&old, 0, sizeof old);
            rc = 0;
        }
        if (rc == 0 && !damaged && (!old.config || strcmp(old.config, x->resolved) != 0 || old.R != R || old.E != E ||
                        old.n_policies != P))
            rc = mplb_err_set(err, MPLB_ECONFIG, "%s: written by a different experiment (its /config differs); "
                              "resume needs the same experiment and --set values, or use --force to start over",
                              opts->out_path);
        if (rc < 0) { free(names); free(srcs); free(params); free(hw_src); goto out; }
        int64_t per_step = (int64_t)x->model.layers * P;
        start_step = (int)(old.n_rows / per_step);
        if (start_step > x->workload.steps) start_step = x->workload.steps;
        snprintf(tmp_path, sizeof tmp_path, "%s.resume", opts->out_path);
        write_path = tmp_path;
        resuming = 1;
    }
    /* out_path NULL: evaluate without writing (benchmarks of the writer's cost) */
    if (write_path)
        rc = mplb_runfile_create(write_path, &meta, R, E, opts->force || resuming, opts->flush_rows,
                                 opts->flush_seconds, &s.rf, err);
    free(names); free(srcs); free(params); free(hw_src);
    if (rc < 0) { mplb_runfile_info_free(&old); goto out; }
    if (resuming) {
        int64_t keep = (int64_t)start_step * x->model.layers * P;
        for (int64_t i = 0; i < keep && rc == 0; i++) {
            const mplb_step_row *row = &old.rows[i];
            rc = mplb_runfile_append(s.rf, row, old.rank_load + i * R, old.rank_compute + i * R,
                                     old.expert_load + i * E, old.expert_prec + i * E, err);
            mplb_policy_summary *ps = &sum->pol[row->policy];
            ps->rows++;
            ps->sum_t_layer += row->t_layer_us;
            ps->sum_t_baseline += row->t_baseline_us;
            ps->sum_imbalance += row->imbalance;
            ps->sum_error_proxy += row->error_proxy;
            ps->sum_decide_us += row->decide_us;
            if (!isnan(row->kl)) {
                ps->acc_rows++;
                ps->sum_kl += row->kl;
                ps->sum_top1 += row->top1_agree;
                ps->sum_ppl_delta += row->ppl_delta;
            }
        }
        sum->resumed_steps = start_step;
        mplb_runfile_info_free(&old);
    }
    /* Policies that keep state (history, learned thresholds) replay the kept
     * steps without writing, so the resumed run equals an uninterrupted one. */
    int replay = 0;
    for (int i = 0; i < P; i++) replay |= !mplb_policy_stateless(s.pols[i]);

    int stopped = 0;
    for (int step = replay ? 0 : start_step; step < x->workload.steps && rc == 0 && !stopped; step++) {
        int replaying = step < start_step;
        for (int layer = 0; layer < x->model.layers && rc == 0; layer++) {
            if (opts->stop && *opts->stop) { stopped = 1; break; }
            if (opts->progress) opts->progress(opts->hook_ctx, step, layer, x->workload.steps, x->model.layers);
            if (s.acc) {   /* the model's own router on the step's text */
                if (layer == 0 && (rc = mplb_accrun_step(s.acc, step, err)) < 0) break;
                if ((rc = mplb_accrun_routing(s.acc, layer, &s.base, x->cluster.gpus_per_node, &s.rt, err)) < 0) break;
                if (s.ablation && (rc = mplb_accrun_importance(s.acc, layer, s.ablation, err)) < 0) break;
            } else if ((rc = mplb_wl_generate(&s.wl, step, layer, &s.base, &s.rt, err)) < 0) break;
            mplb_plan_reset(&s.base_plan, &s.base);
            if ((rc = mplb_cost_eval(&s.hw, &x->model, x->cluster.gpus_per_node, &s.rt, &s.base_plan, &s.base_res, err)) < 0) break;
            if (s.ep) { if ((rc = apply_ep(&s, step, layer, &s.base_plan, &s.base_res, err)) < 0) break; }
            else if (s.execute && (rc = apply_measured(&s, x, step, layer, &s.base_plan, &s.base_res, NULL, err)) < 0) break;
            double lis = mplb_lis(s.rt.expert_counts, E, s.rt.tokens, x->model.top_k);
            for (int i = 0; i < P && rc == 0; i++) {
                mplb_obs obs;
                observe(x, &s, step, layer, &obs);
                mplb_plan_reset(&s.plan, &s.base);
                double t0 = now_us();
                rc = mplb_policy_decide(s.pols[i], &obs, &s.plan, err);
                double dt = now_us() - t0;
                if (rc < 0) break;
                mplb_placement *prev = &s.prev[(size_t)i * x->model.layers + layer];
                s.plan.prev_placement = prev;
                if ((rc = mplb_cost_eval(&s.hw, &x->model, x->cluster.gpus_per_node, &s.rt, &s.plan, &s.res, err)) < 0) break;
                mplb_placement_assign(prev, &s.plan.placement);
                if (opts->on_plan && !replaying) opts->on_plan(opts->hook_ctx, i, step, layer, &s.plan, dt);
                double acc_kl = NAN, acc_top1 = NAN, acc_ppl = NAN;
                if (s.acc) {   /* measured on the model's output once the step's last layer is decided */
                    mplb_accrun_plan(s.acc, i, layer, s.plan.expert_prec);
                    if (layer == x->model.layers - 1) {
                        if ((rc = mplb_accrun_measure(s.acc, i, s.met, err)) < 0) break;
                        const mplb_lm_metrics *all = &s.met[mplb_accrun_domains(s.acc)];
                        acc_kl = all->kl;
                        acc_top1 = all->top1;
                        acc_ppl = all->ppl_q - all->ppl_ref;
                        mplb_policy_summary *ps = &sum->pol[i];
                        for (int g = 0; g < sum->n_domains && g < 8 && !replaying; g++) {
                            ps->dom_kl[g] += s.met[g].kl;
                            ps->dom_top1[g] += s.met[g].top1;
                            ps->dom_ppl_delta[g] += s.met[g].ppl_q - s.met[g].ppl_ref;
                        }
                        if (!replaying) ps->dom_rows++;
                    }
                }
                double measured_err = -1;
                int untouched = !s.plan.placement_changed && s.plan.n_moves == 0 && s.plan.dispatch_prec == s.base_plan.dispatch_prec;
                for (int e = 0; e < E && untouched; e++) untouched = s.plan.expert_prec[e] == MPLB_PREC_BF16;
                if (s.execute && untouched) {
                    /* the baseline's plan: its measurement is the baseline's */
                    s.res.t_layer = s.base_res.t_layer;
                    s.res.t_compute_max = s.base_res.t_compute_max;
                    s.res.exposed_conv = s.base_res.exposed_conv;
                    memcpy(s.res.rank_compute, s.base_res.rank_compute, (size_t)R * sizeof(double));
                    if (s.ep) {   /* measured too */
                        s.res.t_dispatch = s.base_res.t_dispatch;
                        s.res.t_combine = s.base_res.t_combine;
                        s.res.bytes_intra = s.base_res.bytes_intra;
                        s.res.bytes_inter = s.base_res.bytes_inter;
                    }
                    measured_err = 0;
                } else if (s.ep) {
                    if ((rc = apply_ep(&s, step, layer, &s.plan, &s.res, err)) < 0) {
                        mplb_err_wrap(err, "policy %s, step %d, layer %d", x->policies[i].label, step + 1, layer + 1);
                        break;
                    }
                } else if (s.execute && (rc = apply_measured(&s, x, step, layer, &s.plan, &s.res, &measured_err, err)) < 0)
                    break;
                mplb_step_row row = {
                    .policy = i, .step = step, .layer = layer, .tokens = s.rt.tokens,
                    .t_layer_us = s.res.t_layer, .t_baseline_us = s.base_res.t_layer,
                    .t_dispatch_us = s.res.t_dispatch, .t_compute_max_us = s.res.t_compute_max,
                    .t_combine_us = s.res.t_combine, .exposed_conv_us = s.res.exposed_conv,
                    .imbalance = s.res.imbalance, .lis = lis,
                    .error_proxy = measured_err >= 0 ? measured_err : mplb_error_proxy(&s.rt, &s.plan, s.relerr),
                    .decide_us = dt,
                    .bytes_intra = s.res.bytes_intra, .bytes_inter = s.res.bytes_inter,
                    .kl = acc_kl, .top1_agree = acc_top1, .ppl_delta = acc_ppl,
                };
                mplb_feedback fb = {step, layer, row.t_layer_us, row.t_baseline_us, row.imbalance, row.error_proxy,
                                    !isnan(row.kl), row.kl};
                if (replaying) {
                    rc = mplb_policy_feedback(s.pols[i], &fb, err);
                    continue;
                }
                for (int e = 0; e < E; e++) s.prec8[e] = (uint8_t)s.plan.expert_prec[e];
                if (s.rf && (rc = mplb_runfile_append(s.rf, &row, s.res.rank_load, s.res.rank_compute,
                                                      s.rt.expert_counts, s.prec8, err)) < 0) break;
                mplb_policy_summary *ps = &sum->pol[i];
                ps->rows++;
                ps->sum_t_layer += row.t_layer_us;
                ps->sum_t_baseline += row.t_baseline_us;
                ps->sum_imbalance += row.imbalance;
                ps->sum_error_proxy += row.error_proxy;
                ps->sum_decide_us += row.decide_us;
                if (!isnan(row.kl)) {
                    ps->acc_rows++;
                    ps->sum_kl += row.kl;
                    ps->sum_top1 += row.top1_agree;
                    ps->sum_ppl_delta += row.ppl_delta;
                }
                rc = mplb_policy_feedback(s.pols[i], &fb, err);
            }
        }
    }
    mplb_err cerr = {0};
    int crc = s.rf ? mplb_runfile_close(s.rf, rc < 0 ? "failed" : stopped ? "interrupted" : "complete", rc < 0 ? err->msg : "", &cerr) : 0;
    s.rf = NULL;
    if (rc == 0 && crc < 0) { *err = cerr; rc = crc; }
    if (resuming && crc == 0 && rename(write_path, opts->out_path) != 0 && rc == 0)
        rc = mplb_err_set(err, MPLB_EIO, "cannot rename %s to %s", write_path, opts->out_path);
out:
    state_free(&s, P);
    return rc;
}

void mplb_run_summary_free(mplb_run_summary *sum) {
    free(sum->pol);
    memset(sum, 0, sizeof *sum);
}
