/* Sensitivity of every speedup to the profile's assumptions: see
 * include/mplb/sensitivity.h. */
#include "mplb/sensitivity.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

void mplb_sens_free(mplb_sens *s) {
    free(s->policy); free(s->param); free(s->param_lo); free(s->param_hi); free(s->nominal);
    free(s->speedup); free(s->band_lo); free(s->band_hi); free(s->lo_arg); free(s->hi_arg); free(s->crosses_one);
    memset(s, 0, sizeof *s);
}

static double speedup_of(const mplb_policy_summary *p) {
    return p->sum_t_layer > 0 ? p->sum_t_baseline / p->sum_t_layer : 1.0;
}

/* 1 when a and b order the P policies differently (ties broken alike). */
static int order_differs(const double *a, const double *b, int P) {
    for (int i = 0; i < P; i++)
        for (int j = i + 1; j < P; j++)
            if ((a[i] > a[j]) != (b[i] > b[j]) && a[i] != a[j] && b[i] != b[j]) return 1;
    return 0;
}

int mplb_sensitivity(const mplb_exp *x, const mplb_run_opts *opts, const mplb_run_summary *sum, mplb_sens *s,
                     mplb_err *err) {
    memset(s, 0, sizeof *s);
    s->rank_flip_k = -1;
    mplb_profile hw;
    int rc;
    if (opts->hw) hw = *opts->hw;
    else if ((rc = mplb_profile_load(x->cluster.profile, x->base_dir, &hw, err)) < 0) return rc;
    mplb_param ps[MPLB_PARAMS_MAX];
    int np = mplb_profile_params(&hw, ps), P = sum->n_policies, K = 0;
    int idx[MPLB_PARAMS_MAX];
    for (int k = 0; k < np; k++)
        if (ps[k].prov->src == MPLB_SRC_ASSUMPTION && ps[k].prov->lo < ps[k].prov->hi) idx[K++] = k;
    s->n_policies = P;
    s->n_params = K;
    s->policy = calloc((size_t)P + 1, sizeof *s->policy);
    s->param = calloc((size_t)K + 1, sizeof *s->param);
    s->param_lo = calloc((size_t)K + 1, sizeof(double));
    s->param_hi = calloc((size_t)K + 1, sizeof(double));
    s->nominal = calloc((size_t)P + 1, sizeof(double));
    s->speedup = calloc((size_t)K * 2 * P + 1, sizeof(double));
    s->band_lo = calloc((size_t)P + 1, sizeof(double));
    s->band_hi = calloc((size_t)P + 1, sizeof(double));
    s->lo_arg = calloc((size_t)P + 1, sizeof(int));
    s->hi_arg = calloc((size_t)P + 1, sizeof(int));
    s->crosses_one = calloc((size_t)P + 1, sizeof(int));
    if (!s->policy || !s->param || !s->param_lo || !s->param_hi || !s->nominal || !s->speedup || !s->band_lo ||
        !s->band_hi || !s->lo_arg || !s->hi_arg || !s->crosses_one) {
        mplb_sens_free(s);
        return mplb_err_set(err, MPLB_ENOMEM, "sensitivity: out of memory");
    }
    for (int p = 0; p < P; p++) {
        snprintf(s->policy[p], sizeof s->policy[p], "%s", sum->pol[p].name);
        s->nominal[p] = s->band_lo[p] = s->band_hi[p] = speedup_of(&sum->pol[p]);
        s->lo_arg[p] = s->hi_arg[p] = -1;
    }
    mplb_run_opts o = *opts;
    o.out_path = NULL;
    o.resume = 0;
    o.progress = NULL;
    o.on_plan = NULL;
    for (int k = 0; k < K; k++) {
        const mplb_param *pp = &ps[idx[k]];
        snprintf(s->param[k], sizeof s->param[k], "%s", pp->name);
        s->param_lo[k] = pp->prov->lo;
        s->param_hi[k] = pp->prov->hi;
        for (int end = 0; end < 2; end++) {
            /* the profile with one parameter moved: pointers of ps index hw, so
             * shift the same offset into the copy */
            mplb_profile moved = hw;
            double *v = (double *)((char *)&moved + ((char *)pp->value - (char *)&hw));
            *v = end ? pp->prov->hi : pp->prov->lo;
            o.hw = &moved;
            mplb_run_summary rs;
            if ((rc = mplb_run(x, &o, &rs, err)) < 0) {
                mplb_err_wrap(err, "sensitivity: %s = %g", pp->name, *v);
                mplb_sens_free(s);
                return rc;
            }
            double *row = s->speedup + ((size_t)k * 2 + end) * P;
            for (int p = 0; p < P && p < rs.n_policies; p++) {
                row[p] = speedup_of(&rs.pol[p]);
                if (row[p] < s->band_lo[p]) { s->band_lo[p] = row[p]; s->lo_arg[p] = k * 2 + end; }
                if (row[p] > s->band_hi[p]) { s->band_hi[p] = row[p]; s->hi_arg[p] = k * 2 + end; }
            }
            if (s->rank_flip_k < 0 && order_differs(s->nominal, row, P)) s->rank_flip_k = k * 2 + end;
            mplb_run_summary_free(&rs);
        }
    }
    /* a speedup whose band holds 1.0 could be a slowdown (or the reverse) */
    for (int p = 0; p < P; p++)
        s->crosses_one[p] = s->nominal[p] != 1.0 && s->band_lo[p] < 1.0 && s->band_hi[p] > 1.0;
    return 0;
}

static void end_name(const mplb_sens *s, int arg, char *buf, size_t cap) {
    if (arg < 0) { snprintf(buf, cap, "-"); return; }
    int k = arg / 2;
    snprintf(buf, cap, "%s=%g", s->param[k], arg % 2 ? s->param_hi[k] : s->param_lo[k]);
}

void mplb_sens_print(const mplb_sens *s, FILE *f) {
    fprintf(f, "\nsensitivity: %d assumption(s) of the profile, each at both ends of its range\n", s->n_params);
    int w = 6;
    for (int p = 0; p < s->n_policies; p++)
        if ((int)strlen(s->policy[p]) > w) w = (int)strlen(s->policy[p]);
    fprintf(f, "%-*s %9s  %-17s %-28s %-28s %s\n", w, "policy", "speedup", "band", "low end at", "high end at", "flags");
    for (int p = 0; p < s->n_policies; p++) {
        char lo[96], hi[96], band[40];
        end_name(s, s->lo_arg[p], lo, sizeof lo);
        end_name(s, s->hi_arg[p], hi, sizeof hi);
        snprintf(band, sizeof band, "%.3fx-%.3fx", s->band_lo[p], s->band_hi[p]);
        fprintf(f, "%-*s %8.3fx  %-17s %-28s %-28s %s\n", w, s->policy[p], s->nominal[p], band, lo, hi,
                s->crosses_one[p] ? "CROSSES 1.0" : "");
    }
    if (s->rank_flip_k >= 0) {
        char at[96];
        end_name(s, s->rank_flip_k, at, sizeof at);
        fprintf(f, "RANKING FLIPS inside the bands (first at %s): the order of the policies is not settled\n", at);
    } else fprintf(f, "ranking: the same at every end of every range\n");
}

static int write_doubles(hid_t g, const char *name, int rank, const hsize_t *dims, const double *v) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(g, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

static int write_strings(hid_t g, const char *name, int n, const char *base, size_t stride) {
    const char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) return -1;
    for (int i = 0; i < n; i++) v[i] = base + (size_t)i * stride;
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || (n > 0 && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    free(v);
    return rc;
}

int mplb_sens_write(const char *path, const mplb_sens *s, mplb_err *err) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return mplb_err_set(err, MPLB_EIO, "%s: cannot open to add /sensitivity", path);
    if (H5Lexists(f, "sensitivity", H5P_DEFAULT) > 0) H5Ldelete(f, "sensitivity", H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "sensitivity", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int P = s->n_policies, K = s->n_params, rc = g < 0 ? -1 : 0;
    double *band = calloc((size_t)P * 3 + 1, sizeof(double)), *cross = calloc((size_t)P + 1, sizeof(double));
    if (!band || !cross) rc = -1;
    for (int p = 0; rc == 0 && p < P; p++) {
        band[p * 3] = s->nominal[p];
        band[p * 3 + 1] = s->band_lo[p];
        band[p * 3 + 2] = s->band_hi[p];
        cross[p] = s->crosses_one[p];
    }
    hsize_t dk = (hsize_t)K, dsp[3] = {(hsize_t)K, 2, (hsize_t)P}, db[2] = {(hsize_t)P, 3}, dp = (hsize_t)P;
    if (rc == 0) rc = write_strings(g, "param", K, (const char *)s->param, sizeof s->param[0]);
    if (rc == 0) rc = write_strings(g, "policy", P, (const char *)s->policy, sizeof s->policy[0]);
    if (rc == 0) rc = write_doubles(g, "lo", 1, &dk, s->param_lo);
    if (rc == 0) rc = write_doubles(g, "hi", 1, &dk, s->param_hi);
    if (rc == 0) rc = write_doubles(g, "speedup", 3, dsp, s->speedup);
    if (rc == 0) rc = write_doubles(g, "band", 2, db, band);
    if (rc == 0) rc = write_doubles(g, "crosses_one", 1, &dp, cross);
    if (rc == 0) {
        char at[96] = "";
        if (s->rank_flip_k >= 0)
            snprintf(at, sizeof at, "%s=%g", s->param[s->rank_flip_k / 2],
                     s->rank_flip_k % 2 ? s->param_hi[s->rank_flip_k / 2] : s->param_lo[s->rank_flip_k / 2]);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(at) + 1);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(g, "rank_flip", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, t, at) < 0) rc = -1;
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(t);
    }
    free(band);
    free(cross);
    if (g >= 0) H5Gclose(g);
    if (H5Fclose(f) < 0) rc = -1;
    return rc < 0 ? mplb_err_set(err, MPLB_EIO, "%s: cannot write /sensitivity", path) : 0;
}
