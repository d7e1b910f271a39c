/* The HDF5 run file: see include/mplb/runfile.h. */
#include "mplb/runfile.h"
#include "mplb/prec.h"
#include "mplb/cost.h"
#include "mplb/config.h"
#include "h5check.h"

#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define CHUNK_ROWS 256

struct mplb_runfile {
    hid_t file, steps, rank_load, rank_compute, exp_load, exp_prec;
    hid_t rep_layer, rep_base;   /* /repeats (N > 0) */
    int N;
    double staged[2 * MPLB_REPEATS_MAX];
    int n_staged;
    double *b_rep;               /* [flush_rows x 2N]: layer runs, then baseline runs */
    hid_t row_t, prec_t;
    hid_t by_dom, dom_t;  /* /accuracy/by_domain and its row type (0 without domains) */
    int R, E, flush_rows;
    int broken;           /* a flush failed: nothing more is written, the file stays as its last flush left it */
    double flush_seconds, last_flush;
    int64_t written, nbuf;
    char path[1024];
    mplb_step_row *rows;
    double *b_rload, *b_rcomp;
    int32_t *b_eload;
    uint8_t *b_eprec;
    mplb_domain_row *b_dom;   /* buffered /accuracy/by_domain rows */
    int64_t dom_written, n_dom, cap_dom;
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
    F(kl, H5T_NATIVE_DOUBLE); F(top1_agree, H5T_NATIVE_DOUBLE); F(ppl_delta, H5T_NATIVE_DOUBLE);
    F(lis_after, H5T_NATIVE_DOUBLE);
    F(t_layer_min_us, H5T_NATIVE_DOUBLE); F(t_layer_max_us, H5T_NATIVE_DOUBLE);
    F(t_baseline_min_us, H5T_NATIVE_DOUBLE); F(t_baseline_max_us, H5T_NATIVE_DOUBLE);
    F(repeats, H5T_NATIVE_INT32);
#undef F
    return t;
}

static hid_t domain_row_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(mplb_domain_row));
#define F(name, type) H5Tinsert(t, #name, offsetof(mplb_domain_row, name), type)
    F(policy, H5T_NATIVE_INT32); F(step, H5T_NATIVE_INT32); F(domain, H5T_NATIVE_INT32);
    F(positions, H5T_NATIVE_INT64);
    F(kl, H5T_NATIVE_DOUBLE); F(top1_agree, H5T_NATIVE_DOUBLE); F(ppl_delta, H5T_NATIVE_DOUBLE);
    F(ppl_ref, H5T_NATIVE_DOUBLE); F(ppl_q, H5T_NATIVE_DOUBLE);
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
    hid_t ds[] = {rf->steps, rf->rank_load, rf->rank_compute, rf->exp_load, rf->exp_prec, rf->rep_layer, rf->rep_base};
    for (int i = 0; i < 7; i++) if (ds[i] > 0) H5Dclose(ds[i]);
    if (rf->by_dom > 0) H5Dclose(rf->by_dom);
    if (rf->dom_t > 0) H5Tclose(rf->dom_t);
    if (rf->row_t > 0) H5Tclose(rf->row_t);
    if (rf->prec_t > 0) H5Tclose(rf->prec_t);
    if (rf->file > 0) H5Fclose(rf->file);
    free(rf->rows); free(rf->b_rload); free(rf->b_rcomp); free(rf->b_eload); free(rf->b_eprec); free(rf->b_rep);
    free(rf->b_dom);
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
    rf->N = meta->repeats > 0 ? (meta->repeats < MPLB_REPEATS_MAX ? meta->repeats : MPLB_REPEATS_MAX) : 0;
    rf->b_rep = calloc(fr * 2 * (size_t)rf->N + 1, sizeof(double));
    if (!rf->rows || !rf->b_rload || !rf->b_rcomp || !rf->b_eload || !rf->b_eprec || !rf->b_rep) {
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
    /* PATH.part is made with O_EXCL: a second run on the same output fails
     * here, before touching the first one's file (H5F_ACC_TRUNC alone would
     * truncate it under its writer). */
    int pfd = open(part, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (pfd < 0) {
        int e = errno;
        rf_free(rf);
        if (e == EEXIST)
            return mplb_err_set(err, MPLB_EEXISTS, "%s: another mplb run is writing it (%s exists; if none is, a run "
                                "was killed while writing its header: remove %s)", path, part, part);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot create: %s", part, strerror(e));
    }
    close(pfd);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);   /* SWMR needs it */
    rf->file = H5Fcreate(part, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (rf->file < 0) {
        rf->file = 0;
        rf_free(rf);
        remove(part);
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
    if (meta->backend) bad |= set_str_attr(f, "backend", meta->backend);
    if (meta->error_metric) bad |= set_str_attr(f, "error_metric", meta->error_metric);
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
    if (rf->N > 0) {   /* every timed run of a measuring backend */
        hid_t gp = H5Gcreate2(f, "repeats", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rf->rep_layer = make_table(gp, "t_layer_us", H5T_NATIVE_DOUBLE, rf->N);
        rf->rep_base = make_table(gp, "t_baseline_us", H5T_NATIVE_DOUBLE, rf->N);
        bad |= gp < 0 || rf->rep_layer < 0 || rf->rep_base < 0;
        if (gp >= 0) H5Gclose(gp);
    }
    if (meta->n_domains > 0) {   /* measured accuracy per text domain (workload.kind = "lm") */
        hid_t ga = H5Gcreate2(f, "accuracy", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad |= ga < 0 || write_strings(ga, "domains", meta->n_domains, meta->domain_names) < 0;
        rf->dom_t = domain_row_type();
        rf->by_dom = ga < 0 ? -1 : make_table(ga, "by_domain", rf->dom_t, 0);
        bad |= rf->by_dom < 0;
        if (ga >= 0) H5Gclose(ga);
    }
    if (bad || rf->steps < 0 || rf->rank_load < 0 || rf->rank_compute < 0 || rf->exp_load < 0 || rf->exp_prec < 0 ||
        H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 || H5Fstart_swmr_write(f) < 0) {
        rf_free(rf);
        remove(part);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot write the run file's header", path);
    }
    /* without force, link() puts it in place only if PATH still does not
     * exist (a run that finished meanwhile is never replaced) */
    int placed = force ? rename(part, path) : link(part, path);
    int e = errno;
    if (placed == 0 && !force) unlink(part);
    if (placed != 0) {
        rf_free(rf);
        remove(part);
        if (e == EEXIST)
            return mplb_err_set(err, MPLB_EEXISTS, "%s: file exists (written meanwhile; use --force to overwrite)", path);
        return mplb_err_set(err, MPLB_EIO, "%s: cannot put %s in place: %s", path, part, strerror(e));
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

/* Room on disk for the next flush, claimed before libhdf5 writes a byte of
 * it: a full disk (or a file-size limit) then fails here, with the file as
 * its last flush left it, instead of inside a half-written metadata update
 * (which left nothing readable, and libhdf5 crashing at exit). The space is
 * claimed past the file's end of allocation (EOA), where libhdf5 allocates
 * next; a normal close truncates the file back to its EOA. */
static int reserve(mplb_runfile *rf, int64_t rows, mplb_err *err) {
    haddr_t eoa;
    int *fd = NULL;
    if (H5Fget_eoa(rf->file, &eoa) < 0 || H5Fget_vfd_handle(rf->file, H5P_DEFAULT, (void **)&fd) < 0 || !fd)
        return 0;   /* not the sec2 driver: nothing to claim through */
    /* the rows uncompressed (deflate never grows data by more than a few
     * bytes per 16 KB block, zlib's deflateBound) plus room for the chunk
     * index and object headers */
    off_t bytes = (off_t)rows * (off_t)(sizeof(mplb_step_row) + (size_t)rf->R * 16 + (size_t)rf->E * 5 + (size_t)rf->N * 16) +
                  (off_t)rf->n_dom * (off_t)sizeof(mplb_domain_row) + (64 << 10);
    int e = posix_fallocate(*fd, (off_t)eoa, bytes);
    if (e == 0 || e == EOPNOTSUPP || e == EINVAL) return 0;
    rf->broken = 1;
    return mplb_err_set(err, MPLB_EIO, "%s: %s: no room for rows %lld..%lld (%lld bytes); the %lld rows flushed "
                        "before stay readable", rf->path, strerror(e), (long long)rf->written,
                        (long long)(rf->written + rows - 1), (long long)bytes, (long long)rf->written);
}

int mplb_runfile_flush(mplb_runfile *rf, mplb_err *err) {
    if (rf->nbuf == 0 && rf->n_dom == 0) return 0;
    if (rf->broken) return mplb_err_set(err, MPLB_EIO, "%s: an earlier write failed; no more rows are written", rf->path);
    int64_t n = rf->nbuf, at = rf->written;
    int rc = reserve(rf, n, err);
    if (rc < 0) return rc;
    if (append_rows(rf->steps, rf->row_t, at, n, 0, rf->rows) < 0 ||
        append_rows(rf->rank_load, H5T_NATIVE_DOUBLE, at, n, rf->R, rf->b_rload) < 0 ||
        append_rows(rf->rank_compute, H5T_NATIVE_DOUBLE, at, n, rf->R, rf->b_rcomp) < 0 ||
        append_rows(rf->exp_load, H5T_NATIVE_INT32, at, n, rf->E, rf->b_eload) < 0 ||
        append_rows(rf->exp_prec, rf->prec_t, at, n, rf->E, rf->b_eprec) < 0 ||
        (rf->N > 0 && (append_rows(rf->rep_layer, H5T_NATIVE_DOUBLE, at, n, rf->N, rf->b_rep) < 0 ||
                       append_rows(rf->rep_base, H5T_NATIVE_DOUBLE, at, n, rf->N, rf->b_rep + (size_t)rf->flush_rows * rf->N) < 0 ||
                       H5Dflush(rf->rep_layer) < 0 || H5Dflush(rf->rep_base) < 0)) ||
        H5Dflush(rf->steps) < 0 || H5Dflush(rf->rank_load) < 0 || H5Dflush(rf->rank_compute) < 0 ||
        H5Dflush(rf->exp_load) < 0 || H5Dflush(rf->exp_prec) < 0 ||
        (rf->n_dom && (append_rows(rf->by_dom, rf->dom_t, rf->dom_written, rf->n_dom, 0, rf->b_dom) < 0 ||
                       H5Dflush(rf->by_dom) < 0)) ||
        H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0) {
        rf->broken = 1;
        return mplb_err_set(err, MPLB_EIO, "%s: cannot append rows %lld..%lld (disk full or I/O error)", rf->path,
                            (long long)at, (long long)(at + n - 1));
    }
    rf->dom_written += rf->n_dom;
    rf->n_dom = 0;
    rf->written += n;
    rf->nbuf = 0;
    rf->last_flush = mono_s();
    return 0;
}

void mplb_runfile_stage_repeats(mplb_runfile *rf, const double *t_layer, const double *t_baseline, int n) {
    if (n > MPLB_REPEATS_MAX) n = MPLB_REPEATS_MAX;
    memcpy(rf->staged, t_layer, (size_t)n * sizeof(double));
    memcpy(rf->staged + MPLB_REPEATS_MAX, t_baseline, (size_t)n * sizeof(double));
    rf->n_staged = n;
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
    for (int j = 0; j < rf->N; j++) {   /* layer runs in the first half of b_rep, baseline runs in the second */
        int have = j < rf->n_staged;
        rf->b_rep[i * rf->N + j] = have ? rf->staged[j] : NAN;
        rf->b_rep[(size_t)rf->flush_rows * rf->N + i * rf->N + j] = have ? rf->staged[MPLB_REPEATS_MAX + j] : NAN;
    }
    rf->n_staged = 0;
    rf->nbuf++;
    if (rf->nbuf >= rf->flush_rows || mono_s() - rf->last_flush >= rf->flush_seconds) return mplb_runfile_flush(rf, err);
    return 0;
}

int mplb_runfile_append_domain(mplb_runfile *rf, const mplb_domain_row *row, mplb_err *err) {
    if (rf->by_dom <= 0) return mplb_err_set(err, MPLB_EINVAL, "%s: created without text domains", rf->path);
    if (rf->n_dom == rf->cap_dom) {
        int64_t cap = rf->cap_dom ? 2 * rf->cap_dom : 64;
        mplb_domain_row *b = realloc(rf->b_dom, (size_t)cap * sizeof *b);
        if (!b) return mplb_err_set(err, MPLB_ENOMEM, "runfile: out of memory");
        rf->b_dom = b;
        rf->cap_dom = cap;
    }
    rf->b_dom[rf->n_dom++] = *row;
    return 0;
}

int mplb_runfile_close(mplb_runfile *rf, const char *status, const char *error, mplb_err *err) {
    /* after a failed write the buffered rows are dropped, not retried: the
     * error already says which rows the file keeps */
    int rc = rf->broken ? 0 : mplb_runfile_flush(rf, err);
    if (rf->broken && !strcmp(status, "complete")) status = "failed";
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
/* Every object is checked (class, rank, shape, range) before it is read: the
 * file may be damaged, killed mid-write, or crafted (tests/test_fuzz_files.c). */

#define MAX_WIDTH (1 << 20)     /* ranks or experts: far above any real cluster or model */
#define MAX_POLICIES (1 << 16)

static int known_status(const char *s) {
    return !strcmp(s, "running") || !strcmp(s, "complete") || !strcmp(s, "failed") || !strcmp(s, "interrupted");
}

/* Text that inspect prints, with terminal control characters escaped. */
static char *display(char *s) {
    if (!s) return NULL;
    size_t n = strlen(s), cap = 4 * n + 1;
    char *out = malloc(cap);
    if (!out) return s;   /* unescaped rather than lost */
    memcpy(out, s, n + 1);
    mplb_escape_controls(out, cap);
    free(s);
    return out;
}

static int read_header(mplb_h5_file *h, mplb_runfile_info *info, mplb_err *err) {
    const char *path = h->path;
    hid_t f = h->id;
    char *s = NULL;
    int rc = mplb_h5_attr_str(h, f, "schema_version", &s, err);
    if (rc < 0) return rc;
    if (rc > 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: not an mplb run file (no schema_version attribute)", path);
    int major = -1, minor = -1;
    int ok = sscanf(s, "%d.%d", &major, &minor) == 2 && major == atoi(MPLB_SCHEMA_VERSION);
    snprintf(info->schema_version, sizeof info->schema_version, "%s", s);
    if (!ok) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: schema version %.32s is not readable by this mplb (reads %s.x)",
                          path, s, MPLB_SCHEMA_VERSION);
        free(s);
        return rc;
    }
    free(s);
    if ((rc = mplb_h5_attr_str(h, f, "status", &s, err)) < 0) return rc;
    if (rc == 0) {
        int known = known_status(s);
        snprintf(info->status, sizeof info->status, "%s", s);
        free(s);
        if (!known) return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute status must be running, complete, failed or interrupted", path);
    }
    if ((rc = mplb_h5_attr_str(h, f, "mplb_version", &s, err)) < 0) return rc;
    if (rc == 0) {
        snprintf(info->mplb_version, sizeof info->mplb_version, "%s", s);
        mplb_escape_controls(info->mplb_version, sizeof info->mplb_version);
        free(s);
    }
    if ((rc = mplb_h5_attr_str(h, f, "error", &info->error, err)) < 0) return rc;
    if ((rc = mplb_h5_attr_str(h, f, "command", &info->command, err)) < 0) return rc;
    if ((rc = mplb_h5_attr_str(h, f, "times_source", &info->times_source, err)) < 0) return rc;
    if ((rc = mplb_h5_attr_str(h, f, "backend", &info->backend, err)) < 0) return rc;
    if ((rc = mplb_h5_attr_str(h, f, "error_metric", &info->error_metric, err)) < 0) return rc;
    if ((rc = mplb_h5_attr_str(h, f, "host", &info->host, err)) < 0) return rc;
    info->error = display(info->error);
    info->command = display(info->command);
    info->times_source = display(info->times_source);
    info->host = display(info->host);
    if ((rc = mplb_h5_attr_u64(h, f, "seed", &info->seed, err)) < 0) return rc;
    int64_t v;
    const char *wn[2] = {"ranks", "experts"};
    for (int i = 0; i < 2; i++) {
        if ((rc = mplb_h5_attr_int(h, f, wn[i], 1, MAX_WIDTH, &v, err)) < 0) return rc;
        if (rc > 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: missing attribute %s", path, wn[i]);
        if (i) info->E = (int)v; else info->R = (int)v;
    }
    if ((rc = mplb_h5_dset_str(h, "config", &info->config, err)) < 0) return rc;
    int64_t np = 0;
    if ((rc = mplb_h5_dset_strs(h, "policy/names", -1, &info->policy_names, &np, err)) < 0) return rc;
    if (np > MAX_POLICIES) {
        for (int64_t i = 0; i < np; i++) free(info->policy_names[i]);
        free(info->policy_names);
        info->policy_names = NULL;
        return mplb_err_set(err, MPLB_EFORMAT, "%s: /policy/names holds %lld names (at most %d)", path, (long long)np,
                            MAX_POLICIES);
    }
    info->n_policies = (int)np;
    for (int64_t i = 0; i < np; i++) info->policy_names[i] = display(info->policy_names[i]);
    hsize_t dims[1];
    hid_t d = mplb_h5_dset_open(h, "steps", H5T_COMPOUND, 1, NULL, sizeof(mplb_step_row), dims, err);
    if (d == 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /steps", path);
    if (d < 0) return err->code;
    hid_t rt = row_type();
    info->rows = mplb_h5_read_rows(h, d, "steps", rt, sizeof(mplb_step_row), 1, dims, dims[0], err);
    H5Tclose(rt);
    /* Files written before /steps had lis_after read it as 0, a value a resume
     * would then copy as if measured: mark it not recorded (NaN) instead. The
     * repeat columns need nothing: 0 is what the model backend writes. */
    hid_t ft = H5Dget_type(d);
    int has_lis_after = ft >= 0 && H5Tget_member_index(ft, "lis_after") >= 0;
    if (ft >= 0) H5Tclose(ft);
    H5Dclose(d);
    if (!info->rows) return err->code;
    info->n_rows = (int64_t)dims[0];
    if (!has_lis_after)
        for (int64_t i = 0; i < info->n_rows; i++) info->rows[i].lis_after = NAN;
    for (int64_t i = 0; i < info->n_rows; i++) {
        const mplb_step_row *r = &info->rows[i];
        if (r->policy < 0 || r->policy >= info->n_policies || r->step < 0 || r->layer < 0 || r->tokens < 0)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /steps row %lld: policy %d (of %d), step %d, layer %d, "
                                "tokens %lld: expected policy in 0..%d and the rest >= 0", path, (long long)i,
                                r->policy, info->n_policies, r->step, r->layer, (long long)r->tokens,
                                info->n_policies - 1);
    }
    return 0;
}

/* /repeats, when the file has it (measuring backends): rows kept as in
 * /steps' common prefix. */
static int read_repeats(mplb_h5_file *h, mplb_runfile_info *info, mplb_err *err) {
    static const char *const name[2] = {"repeats/t_layer_us", "repeats/t_baseline_us"};
    double **out[2] = {&info->rep_layer, &info->rep_baseline};
    if (H5Lexists(h->id, "repeats", H5P_DEFAULT) <= 0) return 0;
    for (int i = 0; i < 2; i++) {
        hsize_t want[2] = {MPLB_H5_ANY, MPLB_H5_ANY}, dims[2];
        hid_t d = mplb_h5_dset_open(h, name[i], H5T_FLOAT, 2, want, sizeof(double), dims, err);
        if (d == 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /%s", h->path, name[i]);
        if (d < 0) return err->code;
        int bad = dims[1] < 1 || dims[1] > MPLB_REPEATS_MAX || (i && (int)dims[1] != info->repeats) ||
                  (int64_t)dims[0] < info->n_rows;
        if (bad) {
            H5Dclose(d);
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /%s is %llu x %llu: expected %lld rows (or more) of 1..%d runs, "
                                "as many as /%s", h->path, name[i], (unsigned long long)dims[0],
                                (unsigned long long)dims[1], (long long)info->n_rows, MPLB_REPEATS_MAX, name[0]);
        }
        info->repeats = (int)dims[1];
        *out[i] = mplb_h5_read_rows(h, d, name[i], H5T_NATIVE_DOUBLE, 8, 2, dims, (hsize_t)info->n_rows, err);
        H5Dclose(d);
        if (!*out[i]) return err->code;
    }
    return 0;
}

/* /accuracy: domain names and the per-domain rows (absent: none). */
static int read_domains(mplb_h5_file *h, mplb_runfile_info *info, mplb_err *err) {
    int64_t nd = 0;
    int rc = mplb_h5_dset_strs(h, "accuracy/domains", -1, &info->domain_names, &nd, err);
    if (rc < 0) return rc;
    if (rc > 0) return 0;
    if (nd > MPLB_MAX_DOMAINS || nd < 1) {
        for (int64_t i = 0; i < nd; i++) free(info->domain_names[i]);
        free(info->domain_names);
        info->domain_names = NULL;
        return mplb_err_set(err, MPLB_EFORMAT, "%s: /accuracy/domains holds %lld names (1 to %d)", h->path, (long long)nd,
                            MPLB_MAX_DOMAINS);
    }
    info->n_domains = (int)nd;
    for (int i = 0; i < info->n_domains; i++) info->domain_names[i] = display(info->domain_names[i]);
    hsize_t dims[1];
    hid_t d = mplb_h5_dset_open(h, "accuracy/by_domain", H5T_COMPOUND, 1, NULL, sizeof(mplb_domain_row), dims, err);
    if (d == 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /accuracy/by_domain", h->path);
    if (d < 0) return err->code;
    hid_t t = domain_row_type();
    info->domain_rows = mplb_h5_read_rows(h, d, "accuracy/by_domain", t, sizeof(mplb_domain_row), 1, dims, dims[0], err);
    H5Tclose(t);
    H5Dclose(d);
    if (!info->domain_rows) return err->code;
    info->n_domain_rows = (int64_t)dims[0];
    for (int64_t i = 0; i < info->n_domain_rows; i++) {
        const mplb_domain_row *r = &info->domain_rows[i];
        if (r->policy < 0 || r->policy >= info->n_policies || r->step < 0 || r->domain < 0 || r->domain >= info->n_domains ||
            r->positions < 0)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /accuracy/by_domain row %lld: policy %d, step %d, domain %d, "
                                "positions %lld: expected policy in 0..%d, domain in 0..%d, the rest >= 0", h->path,
                                (long long)i, r->policy, r->step, r->domain, (long long)r->positions,
                                info->n_policies - 1, info->n_domains - 1);
    }
    return 0;
}

/* The per-rank and per-expert tables, policy texts and hardware. */
static int read_arrays(mplb_h5_file *h, mplb_runfile_info *info, mplb_err *err) {
    static const struct { const char *name; int experts; H5T_class_t cls; size_t elem; } tab[4] = {
        {"ranks/load", 0, H5T_NO_CLASS, sizeof(double)},
        {"ranks/compute_us", 0, H5T_NO_CLASS, sizeof(double)},
        {"experts/load", 1, H5T_NO_CLASS, sizeof(int32_t)},
        {"experts/precision", 1, H5T_ENUM, 1},
    };
    hid_t d[4] = {-1, -1, -1, -1};
    hsize_t dims[4][2];
    int rc = 0;
    /* the per-row tables may hold fewer flushed rows than /steps in a killed
     * file: take the common prefix */
    int64_t n = info->n_rows;
    for (int i = 0; i < 4 && rc == 0; i++) {
        hsize_t want[2] = {MPLB_H5_ANY, (hsize_t)(tab[i].experts ? info->E : info->R)};
        d[i] = mplb_h5_dset_open(h, tab[i].name, tab[i].cls, 2, want, tab[i].elem, dims[i], err);
        if (d[i] == 0) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /%s", h->path, tab[i].name);
        else if (d[i] < 0) rc = err->code;
        else if ((int64_t)dims[i][0] < n) n = (int64_t)dims[i][0];
    }
    if (rc == 0) {
        info->n_rows = n;
        info->rank_load = mplb_h5_read_rows(h, d[0], tab[0].name, H5T_NATIVE_DOUBLE, 8, 2, dims[0], (hsize_t)n, err);
        if (info->rank_load)
            info->rank_compute = mplb_h5_read_rows(h, d[1], tab[1].name, H5T_NATIVE_DOUBLE, 8, 2, dims[1], (hsize_t)n, err);
        if (info->rank_compute)
            info->expert_load = mplb_h5_read_rows(h, d[2], tab[2].name, H5T_NATIVE_INT32, 4, 2, dims[2], (hsize_t)n, err);
        if (info->expert_load)
            info->expert_prec = mplb_h5_read_rows(h, d[3], tab[3].name, H5T_NATIVE_UINT8, 1, 2, dims[3], (hsize_t)n, err);
        if (!info->expert_prec) rc = err->code;
    }
    for (int i = 0; i < 4; i++) if (d[i] > 0) H5Dclose(d[i]);
    if (rc < 0) return rc;
    size_t m = (size_t)n * (size_t)info->E;
    for (size_t i = 0; i < m; i++)
        if (info->expert_prec[i] >= MPLB_PREC_COUNT)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /experts/precision[%zu][%zu] = %u is not a precision code",
                                h->path, i / (size_t)info->E, i % (size_t)info->E, info->expert_prec[i]);
    const char *sn[2] = {"policy/sources", "policy/params"};
    char ***sv[2] = {&info->policy_sources, &info->policy_params};
    for (int i = 0; i < 2; i++) {
        if ((rc = mplb_h5_dset_strs(h, sn[i], info->n_policies, sv[i], NULL, err)) < 0) return rc;
        if (rc > 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: missing dataset /%s", h->path, sn[i]);
    }
    if ((rc = mplb_h5_dset_str(h, "hardware", &info->hardware, err)) < 0) return rc;
    if ((rc = read_repeats(h, info, err)) < 0) return rc;
    return read_domains(h, info, err);
}

static int read_file(const char *path, int arrays, mplb_runfile_info *info, mplb_err *err) {
    memset(info, 0, sizeof *info);
    mplb_h5_file h;
    int rc = mplb_h5_open(path, &h, err);
    if (rc < 0) return rc;
    info->unclosed = h.unclosed;
    rc = read_header(&h, info, err);
    if (rc == 0 && arrays) rc = read_arrays(&h, info, err);
    mplb_h5_close(&h);
    if (rc < 0) mplb_runfile_info_free(info);
    return rc < 0 ? rc : 0;
}

int mplb_runfile_read(const char *path, mplb_runfile_info *info, mplb_err *err) {
    return read_file(path, 0, info, err);
}

int mplb_runfile_read_arrays(const char *path, mplb_runfile_info *info, mplb_err *err) {
    return read_file(path, 1, info, err);
}

/* First index where two string lists differ, or -1. */
static int first_diff(int n, char *const *a, const char *const *b) {
    for (int i = 0; i < n; i++)
        if (strcmp(a && a[i] ? a[i] : "", b && b[i] ? b[i] : "") != 0) return i;
    return -1;
}

int mplb_runfile_resumable(const char *path, const mplb_runfile_info *old, const mplb_runfile_meta *meta, int R, int E,
                           mplb_err *err) {
    static const char tail[] = "resume needs the same experiment, --set values, policy files and parameters "
                               "(or --force to start over)";
    if (old->R != R || old->E != E)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: written for %d ranks and %d experts, this run has %d and %d; %s",
                            path, old->R, old->E, R, E, tail);
    if (!old->config || strcmp(old->config, meta->config ? meta->config : "") != 0)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: written by a different experiment (its /config differs); %s", path, tail);
    if (old->n_policies != meta->n_policies)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: written with %d policies, this run has %d; %s", path,
                            old->n_policies, meta->n_policies, tail);
    static const char *const what[3] = {"names", "sources", "params"};
    char *const *had[3] = {old->policy_names, old->policy_sources, old->policy_params};
    const char *const *now[3] = {meta->policy_names, meta->policy_sources, meta->policy_params};
    for (int k = 0; k < 3; k++) {
        int i = first_diff(old->n_policies, had[k], now[k]);
        if (i >= 0)
            return mplb_err_set(err, MPLB_ECONFIG, "%s: /policy/%s[%d] (policy %s) differs from this run's%s; %s", path,
                                what[k], i, meta->policy_names[i], k == 1 ? " (the policy file changed)" : "", tail);
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
    free(info->rep_layer); free(info->rep_baseline);
    free(info->hardware); free(info->host); free(info->times_source); free(info->backend); free(info->error_metric);
    for (int i = 0; i < info->n_domains && info->domain_names; i++) free(info->domain_names[i]);
    free(info->domain_names); free(info->domain_rows);
    memset(info, 0, sizeof *info);
}
