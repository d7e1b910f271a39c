/* The HDF5 run file: see include/mplb/runfile.h. */
#include "mplb/runfile.h"
#include "mplb/prec.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_ROWS 256

struct mplb_runfile {
    hid_t file, steps, rank_load, rank_compute, exp_load, exp_prec;
    hid_t row_t, prec_t;
    int R, E, flush_rows;
    double flush_seconds, last_flush;
    int64_t written, nbuf;
    char path[1024];
    mplb_step_row *rows;
    double *b_rload, *b_rcomp;
    int32_t *b_eload;
    uint8_t *b_eprec;
};

static hid_t row_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(mplb_step_row));
#define F(name, type) H5Tinsert(t, #name, offsetof(mplb_step_row, name), type)
    F(policy, H5T_NATIVE_INT32); F(step, H5T_NATIVE_INT32); F(layer, H5T_NATIVE_INT32);
    F(tokens, H5T_NATIVE_INT64);
    F(t_layer_us, H5T_NATIVE_DOUBLE); F(t_baseline_us, H5T_NATIVE_DOUBLE);
    F(t_dispatch_us, H5T_NATIVE_DOUBLE); F(t_compute_max_us, H5T_NATIVE_DOUBLE);
    F(t_combine_us, H5T_NATIVE_DOUBLE); F(exposed_conv_us, H5T_NATIVE_DOUBLE);
    F(imbalance, H5T_NATIVE_DOUBLE); F(lis, H5T_NATIVE_DOUBLE);
    F(error_proxy, H5T_NATIVE_DOUBLE); F(decide_us, H5T_NATIVE_DOUBLE);
    F(bytes_intra, H5T_NATIVE_DOUBLE); F(bytes_inter, H5T_NATIVE_DOUBLE);
#undef F
    return t;
}

static hid_t prec_type(void) {
    hid_t t = H5Tenum_create(H5T_NATIVE_UINT8);
    for (uint8_t p = 0; p < MPLB_PREC_COUNT; p++) H5Tenum_insert(t, mplb_prec_name(p), &p);
    return t;
}

static int set_str_attr(hid_t obj, const char *name, const char *val) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char *v = val ? val : "";
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static int write_strings(hid_t loc, const char *name, int n, const char *const *vals) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dim = (hsize_t)n;
    hid_t s = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static hid_t make_table(hid_t loc, const char *name, hid_t type, int width) {
    int rank = width > 0 ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)width}, maxd[2] = {H5S_UNLIMITED, (hsize_t)width};
    hsize_t chunk[2] = {CHUNK_ROWS, (hsize_t)(width > 0 ? width : 1)};
    if (width > 0 && (hsize_t)width * CHUNK_ROWS > (1u << 20)) chunk[0] = (1u << 20) / (hsize_t)width + 1;
    hid_t s = H5Screate_simple(rank, dims, maxd);
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, rank, chunk);
    H5Pset_shuffle(p);
    H5Pset_deflate(p, 4);
    hid_t d = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
    H5Pclose(p);
    H5Sclose(s);
    return d;
}

static void rf_free(mplb_runfile *rf) {
    if (!rf) return;
    hid_t ds[] = {rf->steps, rf->rank_load, rf->rank_compute, rf->exp_load, rf->exp_prec};
    for (int i = 0; i < 5; i++) if (ds[i] > 0) H5Dclose(ds[i]);
    if (rf->row_t > 0) H5Tclose(rf->row_t);
    if (rf->prec_t > 0) H5Tclose(rf->prec_t);
    if (rf->file > 0) H5Fclose(rf->file);
    free(rf->rows); free(rf->b_rload); free(rf->b_rcomp); free(rf->b_eload); free(rf->b_eprec);
    free(rf);
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mplb_runfile_create(const char *path, const mplb_runfile_meta *meta, int R, int E,
                        int force, int flush_rows, double flush_seconds, mplb_runfile **out, mplb_err *err) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mplb_runfile *rf = calloc(1, sizeof *rf);
    if (!rf) return mplb_err_set(err, MPLB_ENOMEM, "runfile: out of memory");
    rf->R = R; rf->E = E;
    rf->flush_rows = flush_rows > 0 ? flush_rows : 512;
    rf->flush_seconds = flush_seconds > 0 ? flush_seconds : 1.0;
    rf->last_flush = mono_s();
    snprintf(rf->path, sizeof rf->path, "%s", path);
    size_t fr = (size_t)rf->flush_rows;
    rf->rows = calloc(fr, sizeof *rf->rows);
    rf->b_rload = calloc(fr * R, sizeof(double));
    rf->b_rcomp = calloc(fr * R, sizeof(double));
    rf->b_eload = calloc(fr * E, sizeof(int32_t));
    rf->b_eprec = calloc(fr * E, 1);
    if (!rf->rows || !rf->b_rload || !rf->b_rcomp || !rf->b_eload || !rf->b_eprec) {
        rf_free(rf);
        return mplb_err_set(err, MPLB_ENOMEM, "runfile: out of memory");
    }
    /* The file is built under PATH.part and renamed once its header is written
     * and the SWMR session has started, so a run killed at any moment leaves
     * either no file or one that opens (with every row flushed so far). */
    FILE *ex = force ? NULL : fopen(path, "rb");
    if (ex) {
        fclose(ex);
        rf_free(rf);
        return mplb_err_set(err, MPLB_EEXISTS, "%s: file exists (use --force to overwrite)", path);
    }
    char part[sizeof rf->path + 8];
    snprintf(part, sizeof part, "%s.part", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);   /* SWMR needs it */
    rf->file = H5Fcreate(part, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (rf->file < 0) {
        rf->file = 0;
        rf_free(rf);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot create HDF5 file", part);
    }
    rf->row_t = row_type();
    rf->prec_t = prec_type();
    hid_t f = rf->file;
    int bad = 0;
    bad |= set_str_attr(f, "schema_version", MPLB_SCHEMA_VERSION);
    bad |= set_str_attr(f, "mplb_version", meta->mplb_version);
    bad |= set_str_attr(f, "git_revision", meta->git_revision);
    bad |= set_str_attr(f, "command", meta->command);
    bad |= set_str_attr(f, "host", meta->host);
    if (meta->times_source) bad |= set_str_attr(f, "times_source", meta->times_source);
    bad |= set_str_attr(f, "status", "running");
    bad |= set_str_attr(f, "error", "");
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "seed", H5T_NATIVE_UINT64, s, H5P_DEFAULT, H5P_DEFAULT);
    bad |= a < 0 || H5Awrite(a, H5T_NATIVE_UINT64, &meta->seed) < 0;
    if (a >= 0) H5Aclose(a);
    a = H5Acreate2(f, "ranks", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT);
    bad |= a < 0 || H5Awrite(a, H5T_NATIVE_INT, &R) < 0;
    if (a >= 0) H5Aclose(a);
    a = H5Acreate2(f, "experts", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT);
    bad |= a < 0 || H5Awrite(a, H5T_NATIVE_INT, &E) < 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    bad |= write_strings(f, "config", -1, &meta->config);
    bad |= write_strings(f, "hardware", -1, &meta->hardware);
    hid_t g = H5Gcreate2(f, "policy", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bad |= g < 0;
    bad |= write_strings(g, "names", meta->n_policies, meta->policy_names);
    bad |= write_strings(g, "sources", meta->n_policies, meta->policy_sources);
    bad |= write_strings(g, "params", meta->n_policies, meta->policy_params);
    if (g >= 0) H5Gclose(g);
    rf->steps = make_table(f, "steps", rf->row_t, 0);
    hid_t gr = H5Gcreate2(f, "ranks", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rf->rank_load = make_table(gr, "load", H5T_NATIVE_DOUBLE, R);
    rf->rank_compute = make_table(gr, "compute_us", H5T_NATIVE_DOUBLE, R);
    H5Gclose(gr);
    hid_t ge = H5Gcreate2(f, "experts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rf->exp_load = make_table(ge, "load", H5T_NATIVE_INT32, E);
    rf->exp_prec = make_table(ge, "precision", rf->prec_t, E);
    H5Gclose(ge);
    if (bad || rf->steps < 0 || rf->rank_load < 0 || rf->rank_compute < 0 || rf->exp_load < 0 || rf->exp_prec < 0 ||
        H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 || H5Fstart_swmr_write(f) < 0) {
        rf_free(rf);
        remove(part);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot write the run file's header", path);
    }
    if (rename(part, path) != 0) {
        rf_free(rf);
        remove(part);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot rename %s into place", path, part);
    }
    *out = rf;
    return 0;
}

static int append_rows(hid_t d, hid_t type, int64_t at, int64_t n, int width, const void *buf) {
    int rank = width > 0 ? 2 : 1;
    hsize_t size[2] = {(hsize_t)(at + n), (hsize_t)width};
    hsize_t start[2] = {(hsize_t)at, 0}, count[2] = {(hsize_t)n, (hsize_t)width};
    if (H5Dset_extent(d, size) < 0) return -1;
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dwrite(d, type, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? -1 : 0;
}

int mplb_runfile_flush(mplb_runfile *rf, mplb_err *err) {
    if (rf->nbuf == 0) return 0;
    int64_t n = rf->nbuf, at = rf->written;
    if (append_rows(rf->steps, rf->row_t, at, n, 0, rf->rows) < 0 ||
        append_rows(rf->rank_load, H5T_NATIVE_DOUBLE, at, n, rf->R, rf->b_rload) < 0 ||
        append_rows(rf->rank_compute, H5T_NATIVE_DOUBLE, at, n, rf->R, rf->b_rcomp) < 0 ||
        append_rows(rf->exp_load, H5T_NATIVE_INT32, at, n, rf->E, rf->b_eload) < 0 ||
        append_rows(rf->exp_prec, rf->prec_t, at, n, rf->E, rf->b_eprec) < 0 ||
        H5Dflush(rf->steps) < 0 || H5Dflush(rf->rank_load) < 0 || H5Dflush(rf->rank_compute) < 0 ||
        H5Dflush(rf->exp_load) < 0 || H5Dflush(rf->exp_prec) < 0 || H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0)
        return mplb_err_set(err, MPLB_EIO, "%s: cannot append rows %lld..%lld", rf->path,
                            (long long)at, (long long)(at + n - 1));
    rf->written += n;
    rf->nbuf = 0;
    rf->last_flush = mono_s();
    return 0;
}

int mplb_runfile_append(mplb_runfile *rf, const mplb_step_row *row, const double *rank_load,
                        const double *rank_compute, const int32_t *expert_load,
                        const uint8_t *expert_prec, mplb_err *err) {
    size_t i = (size_t)rf->nbuf, R = (size_t)rf->R, E = (size_t)rf->E;
    rf->rows[i] = *row;
    memcpy(rf->b_rload + i * R, rank_load, R * sizeof(double));
    memcpy(rf->b_rcomp + i * R, rank_compute, R * sizeof(double));
    memcpy(rf->b_eload + i * E, expert_load, E * sizeof(int32_t));
    memcpy(rf->b_eprec + i * E, expert_prec, E);
    rf->nbuf++;
    if (rf->nbuf >= rf->flush_rows || mono_s() - rf->last_flush >= rf->flush_seconds) return mplb_runfile_flush(rf, err);
    return 0;
}

int mplb_runfile_close(mplb_runfile *rf, const char *status, const char *error, mplb_err *err) {
    int rc = mplb_runfile_flush(rf, err);
    char path[sizeof rf->path];
    memcpy(path, rf->path, sizeof path);
    rf_free(rf);  /* ends the SWMR session: the file is now complete and consistent */
    /* attributes cannot change under SWMR writing, so status goes in now */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0 || set_str_attr(f, "status", status) < 0 || set_str_attr(f, "error", error) < 0)
        rc = rc < 0 ? rc : mplb_err_set(err, MPLB_EIO, "%s: cannot write status", path);
    if (f >= 0) H5Fclose(f);
    return rc;
}

/* ---- reading -------------------------------------------------------------- */

static char *get_str_attr(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *v = NULL, *out = NULL;
    if (H5Aread(a, t, &v) >= 0 && v) {
        out = strdup(v);
        H5free_memory(v);
    }
    H5Tclose(t);
    H5Aclose(a);
    return out;
}

static char *get_str_dset(hid_t loc, const char *name) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return NULL;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *v = NULL, *out = NULL;
    if (d >= 0 && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0 && v) {
        out = strdup(v);
        H5free_memory(v);
    }
    H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return out;
}

int mplb_runfile_read(const char *path, mplb_runfile_info *info, mplb_err *err) {
    memset(info, 0, sizeof *info);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: not an HDF5 file (or cannot be read)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        /* a running or killed SWMR writer: its flushed rows are readable this way */
        f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        info->unclosed = 1;
    }
    if (f < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: cannot open as HDF5 (truncated or damaged)", path);
    int rc = 0;
    char *sv = get_str_attr(f, "schema_version");
    if (!sv) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s: not an mplb run file (no schema_version attribute)", path); goto out; }
    snprintf(info->schema_version, sizeof info->schema_version, "%s", sv);
    if (atoi(sv) != atoi(MPLB_SCHEMA_VERSION)) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: schema version %s is not readable by this mplb (reads %s.x)",
                          path, sv, MPLB_SCHEMA_VERSION);
        free(sv);
        goto out;
    }
    free(sv);
    char *s;
    if ((s = get_str_attr(f, "status"))) { snprintf(info->status, sizeof info->status, "%s", s); free(s); }
    if ((s = get_str_attr(f, "mplb_version"))) { snprintf(info->mplb_version, sizeof info->mplb_version, "%s", s); free(s); }
    info->error = get_str_attr(f, "error");
    info->command = get_str_attr(f, "command");
    info->times_source = get_str_attr(f, "times_source");
    info->config = get_str_dset(f, "config");
    hid_t a = H5Aopen(f, "seed", H5P_DEFAULT);
    if (a >= 0) { H5Aread(a, H5T_NATIVE_UINT64, &info->seed); H5Aclose(a); }
    a = H5Aopen(f, "ranks", H5P_DEFAULT);
    if (a >= 0) { H5Aread(a, H5T_NATIVE_INT, &info->R); H5Aclose(a); }
    a = H5Aopen(f, "experts", H5P_DEFAULT);
    if (a >= 0) { H5Aread(a, H5T_NATIVE_INT, &info->E); H5Aclose(a); }
    hid_t d = H5Dopen2(f, "policy/names", H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        char **v = calloc((size_t)n + 1, sizeof *v);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        if (v && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
            info->policy_names = calloc((size_t)n + 1, sizeof(char *));
            for (hssize_t i = 0; i < n && info->policy_names; i++) info->policy_names[i] = strdup(v[i] ? v[i] : "");
            info->n_policies = info->policy_names ? (int)n : 0;
            for (hssize_t i = 0; i < n; i++) H5free_memory(v[i]);
        }
        free(v);
        H5Tclose(t);
        H5Dclose(d);
    }
    d = H5Dopen2(f, "steps", H5P_DEFAULT);
    if (d < 0) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /steps", path); goto out; }
    hid_t sp = H5Dget_space(d);
    info->n_rows = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    info->rows = calloc((size_t)info->n_rows + 1, sizeof *info->rows);
    hid_t rt = row_type();
    if (!info->rows || H5Dread(d, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, info->rows) < 0)
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: cannot read /steps", path);
    H5Tclose(rt);
    H5Dclose(d);
out:
    H5Fclose(f);
    if (rc < 0) mplb_runfile_info_free(info);
    return rc;
}

static int read_strings(hid_t f, const char *name, int n, char ***out) {
    *out = NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    char **v = calloc((size_t)n + 1, sizeof *v);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = -1;
    if (v && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
        *out = calloc((size_t)n + 1, sizeof(char *));
        for (int i = 0; i < n && *out; i++) (*out)[i] = strdup(v[i] ? v[i] : "");
        for (int i = 0; i < n; i++) H5free_memory(v[i]);
        rc = *out ? 0 : -1;
    }
    free(v);
    H5Tclose(t);
    H5Dclose(d);
    return rc;
}

/* Read the first n rows of a [rows x width] table into a malloc'd buffer. */
static void *read_table(hid_t f, const char *name, hid_t type, size_t elem, int64_t n, int width) {
    void *buf = calloc((size_t)(n > 0 ? n : 1) * (size_t)width, elem);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (!buf || d < 0) { free(buf); if (d >= 0) H5Dclose(d); return NULL; }
    if (n > 0) {
        hsize_t start[2] = {0, 0}, count[2] = {(hsize_t)n, (hsize_t)width};
        hid_t fs = H5Dget_space(d), ms = H5Screate_simple(2, count, NULL);
        hsize_t dims[2];
        H5Sget_simple_extent_dims(fs, dims, NULL);
        if (dims[0] < (hsize_t)n || dims[1] != (hsize_t)width ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, type, ms, fs, H5P_DEFAULT, buf) < 0) { free(buf); buf = NULL; }
        H5Sclose(ms);
        H5Sclose(fs);
    }
    H5Dclose(d);
    return buf;
}

int mplb_runfile_read_arrays(const char *path, mplb_runfile_info *info, mplb_err *err) {
    int rc = mplb_runfile_read(path, info, err);
    if (rc < 0) return rc;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY | (info->unclosed ? H5F_ACC_SWMR_READ : 0), H5P_DEFAULT);
    if (f < 0) { mplb_runfile_info_free(info); return mplb_err_set(err, MPLB_EFORMAT, "%s: cannot reopen", path); }
    /* the per-row tables may hold fewer flushed rows than /steps in a killed
     * file: take the common prefix */
    int64_t n = info->n_rows;
    hid_t tables[4];
    const char *names[4] = {"ranks/load", "ranks/compute_us", "experts/load", "experts/precision"};
    for (int i = 0; i < 4; i++) {
        tables[i] = H5Dopen2(f, names[i], H5P_DEFAULT);
        if (tables[i] < 0) continue;
        hid_t sp = H5Dget_space(tables[i]);
        hsize_t dims[2] = {0, 0};
        H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        H5Dclose(tables[i]);
        if ((int64_t)dims[0] < n) n = (int64_t)dims[0];
    }
    info->n_rows = n;
    info->rank_load = read_table(f, "ranks/load", H5T_NATIVE_DOUBLE, sizeof(double), n, info->R);
    info->rank_compute = read_table(f, "ranks/compute_us", H5T_NATIVE_DOUBLE, sizeof(double), n, info->R);
    info->expert_load = read_table(f, "experts/load", H5T_NATIVE_INT32, sizeof(int32_t), n, info->E);
    info->expert_prec = read_table(f, "experts/precision", H5T_NATIVE_UINT8, 1, n, info->E);
    int bad = !info->rank_load || !info->rank_compute || !info->expert_load || !info->expert_prec;
    bad |= read_strings(f, "policy/sources", info->n_policies, &info->policy_sources) < 0;
    bad |= read_strings(f, "policy/params", info->n_policies, &info->policy_params) < 0;
    info->hardware = get_str_dset(f, "hardware");
    info->host = get_str_attr(f, "host");
    H5Fclose(f);
    if (bad) {
        mplb_runfile_info_free(info);
        return mplb_err_set(err, MPLB_EFORMAT, "%s: cannot read the per-rank/per-expert tables", path);
    }
    return 0;
}

void mplb_runfile_info_free(mplb_runfile_info *info) {
    free(info->error); free(info->config); free(info->command); free(info->rows);
    for (int i = 0; i < info->n_policies; i++) {
        free(info->policy_names[i]);
        if (info->policy_sources) free(info->policy_sources[i]);
        if (info->policy_params) free(info->policy_params[i]);
    }
    free(info->policy_names); free(info->policy_sources); free(info->policy_params);
    free(info->rank_load); free(info->rank_compute); free(info->expert_load); free(info->expert_prec);
    free(info->hardware); free(info->host); free(info->times_source);
    memset(info, 0, sizeof *info);
}
