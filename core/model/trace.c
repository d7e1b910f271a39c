/* Routing traces in HDF5: see include/mplb/trace.h. */
#include "mplb/trace.h"
#include "h5check.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

void mplb_trace_free(mplb_trace *t) {
    free(t->counts); free(t->src_counts); free(t->vision_counts);
    free(t->importance); free(t->topk_ids); free(t->is_decode); free(t->load); free(t->layer_ids);
    memset(t, 0, sizeof *t);
}

/* Read a whole numeric dataset of the given rank into a new buffer (class,
 * rank and a size the file's storage can justify are checked first); dims
 * out. 1 if absent, 0 ok, -1 error (err set). */
static int read_ds(const mplb_h5_file *h, const char *name, int rank, hid_t mem_t, size_t elem,
                   hsize_t *dims, void **out, mplb_err *err) {
    *out = NULL;
    hid_t d = mplb_h5_dset_open(h, name, H5T_NO_CLASS, rank, NULL, elem, dims, err);
    if (d <= 0) return d < 0 ? -1 : 1;
    *out = mplb_h5_read_rows(h, d, name, mem_t, elem, rank, dims, dims[0], err);
    H5Dclose(d);
    return *out ? 0 : -1;
}

/* Fixed-length string attributes only: libhdf5 1.10 can crash following a
 * damaged variable-length reference (found by tests/test_trace.c's fuzz), so
 * traces store their text as fixed-length strings and vlen ones are skipped. */
static void read_str_attr(hid_t f, const char *name, char *out, size_t cap) {
    out[0] = 0;
    if (H5Aexists(f, name) <= 0) return;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    if (H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0 && H5Sget_simple_extent_npoints(sp) == 1) {
        size_t n = H5Tget_size(ft);
        char *buf = n < (1u << 20) ? calloc(n + 1, 1) : NULL;
        hid_t mt = H5Tcopy(ft);
        if (buf && H5Aread(a, mt, buf) >= 0) snprintf(out, cap, "%s", buf);
        H5Tclose(mt);
        free(buf);
    }
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
}

int mplb_trace_validate(const mplb_trace *t, mplb_err *err) {
    const char *p = t->path;
    if (t->steps < 1 || t->layers < 1 || t->experts < 1)
        return mplb_err_set(err, MPLB_EFORMAT, "%s: /counts must be [steps x layers x experts] with each >= 1", p);
    if (t->top_k < 1 || t->top_k > t->experts || t->top_k > 64)
        return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute top_k = %d must be in 1..min(experts, 64)", p, t->top_k);
    size_t n = (size_t)t->steps * t->layers * t->experts;
    for (size_t i = 0; i < n; i++) {
        if (t->counts[i] < 0)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /counts[%zu][%zu][%zu] = %d is negative", p,
                                i / ((size_t)t->layers * t->experts), i / t->experts % t->layers, i % t->experts,
                                t->counts[i]);
        if (t->vision_counts && (t->vision_counts[i] < 0 || t->vision_counts[i] > t->counts[i]))
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /vision_counts[%zu][%zu][%zu] = %d outside [0, counts]", p,
                                i / ((size_t)t->layers * t->experts), i / t->experts % t->layers, i % t->experts,
                                t->vision_counts[i]);
        if (t->load && !(t->load[i] >= 0 && isfinite(t->load[i])))
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /load[%zu][%zu][%zu] is not a finite non-negative load", p,
                                i / ((size_t)t->layers * t->experts), i / t->experts % t->layers, i % t->experts);
        if (t->importance && !isfinite(t->importance[i]))
            return mplb_err_set(err, MPLB_EFORMAT, "%s: /importance[%zu][%zu][%zu] is not finite", p,
                                i / ((size_t)t->layers * t->experts), i / t->experts % t->layers, i % t->experts);
    }
    if (t->src_counts) {
        size_t m = n * (size_t)t->src;
        for (size_t i = 0; i < m; i++)
            if (t->src_counts[i] < 0)
                return mplb_err_set(err, MPLB_EFORMAT, "%s: /src_counts element %zu = %d is negative", p, i, t->src_counts[i]);
        /* sources must add up to the counts */
        for (size_t sl = 0; sl < (size_t)t->steps * t->layers; sl++)
            for (int e = 0; e < t->experts; e++) {
                int64_t s = 0;
                for (int r = 0; r < t->src; r++) s += t->src_counts[(sl * t->src + r) * t->experts + e];
                if (s != t->counts[sl * t->experts + e])
                    return mplb_err_set(err, MPLB_EFORMAT, "%s: /src_counts of step %zu, layer %zu, expert %d sum to %lld, "
                                        "/counts says %d", p, sl / t->layers, sl % t->layers, e, (long long)s,
                                        t->counts[sl * t->experts + e]);
            }
    }
    if (t->topk_ids) {
        size_t m = n / t->experts * (size_t)t->tokens_per_step * t->top_k;
        for (size_t i = 0; i < m; i++)
            if (t->topk_ids[i] < 0 || t->topk_ids[i] >= t->experts)
                return mplb_err_set(err, MPLB_EFORMAT, "%s: /topk_ids element %zu (step %zu, layer %zu, token %zu) = %d "
                                    "is not an expert id in 0..%d", p, i,
                                    i / ((size_t)t->layers * t->tokens_per_step * t->top_k),
                                    i / ((size_t)t->tokens_per_step * t->top_k) % t->layers,
                                    i / t->top_k % t->tokens_per_step, t->topk_ids[i], t->experts - 1);
    }
    return 0;
}

int mplb_trace_read(const char *path, mplb_trace *t, mplb_err *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    mplb_h5_file h;
    int rc = mplb_h5_open(path, &h, err);
    if (rc < 0) return rc;
    hid_t f = h.id;
    hsize_t d3[3], d4[4];
    void *buf;
    int r = read_ds(&h, "counts", 3, H5T_NATIVE_INT32, 4, d3, &buf, err);
    if (r != 0) {
        rc = r > 0 ? mplb_err_set(err, MPLB_EFORMAT, "%s: no /counts dataset (steps x layers x experts)", path) : err->code;
        goto out;
    }
    t->counts = buf;
    if (d3[0] > (1u << 30) || d3[1] > (1u << 30) || d3[2] > (1u << 30)) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /counts is %llux%llux%llu: each dimension must be below 2^30", path,
                          (unsigned long long)d3[0], (unsigned long long)d3[1], (unsigned long long)d3[2]);
        goto out;
    }
    t->steps = (int)d3[0]; t->layers = (int)d3[1]; t->experts = (int)d3[2];
    int64_t k64 = 0;
    r = mplb_h5_attr_int(&h, f, "top_k", 1, 64, &k64, err);
    if (r != 0) {
        rc = r > 0 ? mplb_err_set(err, MPLB_EFORMAT, "%s: missing attribute top_k", path) : r;
        goto out;
    }
    int k = (int)k64;
    t->top_k = k;
    read_str_attr(f, "model", t->model, sizeof t->model);
    read_str_attr(f, "source", t->source, sizeof t->source);
    read_str_attr(f, "license", t->license, sizeof t->license);
    hsize_t dd[3];
    const char *same[3] = {"vision_counts", "importance", "load"};
    for (int i = 0; i < 3; i++) {
        r = read_ds(&h, same[i], 3, i ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT32, i ? 8 : 4, dd, &buf, err);
        if (r < 0) { rc = err->code; goto out; }
        if (r == 0 && (dd[0] != d3[0] || dd[1] != d3[1] || dd[2] != d3[2])) {
            free(buf);
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /%s is %llux%llux%llu, /counts is %llux%llux%llu", path, same[i],
                              (unsigned long long)dd[0], (unsigned long long)dd[1], (unsigned long long)dd[2],
                              (unsigned long long)d3[0], (unsigned long long)d3[1], (unsigned long long)d3[2]);
            goto out;
        }
        if (i == 2) t->load = buf;
        else if (i) t->importance = buf;
        else t->vision_counts = buf;
    }
    r = read_ds(&h, "src_counts", 4, H5T_NATIVE_INT32, 4, d4, &buf, err);
    if (r < 0) { rc = err->code; goto out; }
    if (r == 0) {
        t->src_counts = buf;
        t->src = (int)d4[2];
        if (d4[0] != d3[0] || d4[1] != d3[1] || d4[3] != d3[2] || d4[2] < 1 || d4[2] > (1u << 20)) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /src_counts must be [steps x layers x sources x experts] "
                              "matching /counts", path);
            goto out;
        }
    }
    r = read_ds(&h, "topk_ids", 4, H5T_NATIVE_INT32, 4, d4, &buf, err);
    if (r < 0) { rc = err->code; goto out; }
    if (r == 0) {
        t->topk_ids = buf;
        t->tokens_per_step = (int64_t)d4[2];
        if (d4[0] != d3[0] || d4[1] != d3[1] || d4[3] != (hsize_t)k) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /topk_ids must be [steps x layers x tokens x top_k] matching /counts", path);
            goto out;
        }
    }
    if (H5Aexists(f, "phase") > 0) {
        hid_t pa = H5Aopen(f, "phase", H5P_DEFAULT);
        hid_t ps = H5Aget_space(pa), ft = H5Aget_type(pa);
        hssize_t np = H5Sget_simple_extent_npoints(ps);
        size_t w = H5Tget_size(ft);
        int ok = pa >= 0 && H5Sget_simple_extent_ndims(ps) == 1 && np == t->steps && H5Tget_class(ft) == H5T_STRING &&
                 H5Tis_variable_str(ft) == 0 && w > 0 && w < 64;
        char *v = ok ? calloc((size_t)np, w) : NULL;
        t->is_decode = ok ? calloc((size_t)t->steps, 1) : NULL;
        ok = ok && v && t->is_decode && H5Aread(pa, ft, v) >= 0;
        for (hssize_t i = 0; ok && i < np; i++) {
            const char *p = v + (size_t)i * w;
            t->is_decode[i] = strncmp(p, "decode", w) == 0;
            ok = t->is_decode[i] || strncmp(p, "prefill", w) == 0;
        }
        free(v);
        H5Tclose(ft);
        H5Sclose(ps);
        H5Aclose(pa);
        if (!ok) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: attribute phase must be %d fixed-length strings "
                              "\"prefill\" or \"decode\", one per step", path, t->steps);
            goto out;
        }
    }
    if (H5Aexists(f, "layer_ids") > 0) {   /* optional: the model's layer index of each trace layer */
        hid_t la = H5Aopen(f, "layer_ids", H5P_DEFAULT);
        hid_t ls = H5Aget_space(la), lt = H5Aget_type(la);
        int ok = la >= 0 && H5Tget_class(lt) == H5T_INTEGER && H5Sget_simple_extent_ndims(ls) == 1 &&
                 H5Sget_simple_extent_npoints(ls) == t->layers;
        t->layer_ids = ok ? calloc((size_t)t->layers, sizeof *t->layer_ids) : NULL;
        ok = ok && t->layer_ids && H5Aread(la, H5T_NATIVE_INT32, t->layer_ids) >= 0;
        H5Tclose(lt);
        H5Sclose(ls);
        H5Aclose(la);
        if (!ok) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: attribute layer_ids must be %d integers, one per layer", path, t->layers);
            goto out;
        }
    }
    rc = mplb_trace_validate(t, err);
out:
    mplb_h5_close(&h);
    if (rc < 0) mplb_trace_free(t);
    return rc;
}

static int write_ds(hid_t f, const char *name, int rank, const hsize_t *dims, hid_t file_t, hid_t mem_t, const void *buf) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n > 0) {
        hsize_t chunk[4];
        for (int i = 0; i < rank; i++) chunk[i] = i == 0 ? 1 : dims[i];
        H5Pset_chunk(p, rank, chunk);
        H5Pset_deflate(p, 4);
    }
    hid_t d = H5Dcreate2(f, name, file_t, sp, H5P_DEFAULT, p, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0) H5Dclose(d);
    H5Pclose(p);
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int write_str_attr(hid_t f, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

int mplb_trace_write(const char *path, const mplb_trace *t, int force, mplb_err *err) {
    int rc = mplb_trace_validate(t, err);
    if (rc < 0) return rc;
    hid_t f = H5Fcreate(path, force ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        /* say which: an existing file (needs --force) or a folder that is not there */
        struct stat st;
        if (!force && stat(path, &st) == 0) return mplb_err_set(err, MPLB_EEXISTS, "%s: file exists (use --force to overwrite)", path);
        FILE *probe = fopen(path, "ab");
        int e = probe ? 0 : errno;
        if (probe) { fclose(probe); remove(path); }
        return mplb_err_set(err, MPLB_EIO, "%s: cannot create: %s", path, e ? strerror(e) : "not writable as HDF5");
    }
    hsize_t d3[3] = {(hsize_t)t->steps, (hsize_t)t->layers, (hsize_t)t->experts};
    int bad = write_ds(f, "counts", 3, d3, H5T_STD_I32LE, H5T_NATIVE_INT32, t->counts);
    if (t->vision_counts) bad |= write_ds(f, "vision_counts", 3, d3, H5T_STD_I32LE, H5T_NATIVE_INT32, t->vision_counts);
    if (t->importance) bad |= write_ds(f, "importance", 3, d3, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, t->importance);
    if (t->load) bad |= write_ds(f, "load", 3, d3, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, t->load);
    if (t->src_counts) {
        hsize_t d4[4] = {d3[0], d3[1], (hsize_t)t->src, d3[2]};
        bad |= write_ds(f, "src_counts", 4, d4, H5T_STD_I32LE, H5T_NATIVE_INT32, t->src_counts);
    }
    if (t->topk_ids) {
        hsize_t d4[4] = {d3[0], d3[1], (hsize_t)t->tokens_per_step, (hsize_t)t->top_k};
        bad |= write_ds(f, "topk_ids", 4, d4, H5T_STD_I32LE, H5T_NATIVE_INT32, t->topk_ids);
    }
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "top_k", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    bad |= a < 0 || H5Awrite(a, H5T_NATIVE_INT, &t->top_k) < 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    bad |= write_str_attr(f, "model", t->model);
    bad |= write_str_attr(f, "source", t->source);
    bad |= write_str_attr(f, "license", t->license);
    bad |= write_str_attr(f, "format", "mplb-trace-1");
    if (t->layer_ids) {
        hsize_t n = (hsize_t)t->layers;
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t la = H5Acreate2(f, "layer_ids", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        bad |= la < 0 || H5Awrite(la, H5T_NATIVE_INT32, t->layer_ids) < 0;
        if (la >= 0) H5Aclose(la);
        H5Sclose(sp);
    }
    if (t->is_decode) {
        hsize_t n = (hsize_t)t->steps;
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, 8);
        char *v = calloc((size_t)n, 8);
        for (hsize_t i = 0; v && i < n; i++) memcpy(v + i * 8, t->is_decode[i] ? "decode" : "prefill", t->is_decode[i] ? 7 : 8);
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t pa = H5Acreate2(f, "phase", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        bad |= !v || pa < 0 || H5Awrite(pa, st, v) < 0;
        if (pa >= 0) H5Aclose(pa);
        H5Sclose(sp);
        H5Tclose(st);
        free(v);
    }
    if (H5Fclose(f) < 0 || bad) return mplb_err_set(err, MPLB_EIO, "%s: cannot write the trace", path);
    return 0;
}

int mplb_trace_routing(const mplb_trace *t, int step, int layer, const mplb_placement *pl,
                       int gpn, mplb_routing *rt, mplb_err *err) {
    if (step < 0 || step >= t->steps || layer < 0 || layer >= t->layers)
        return mplb_err_set(err, MPLB_ERANGE, "%s: step %d, layer %d outside the trace (%d steps, %d layers)",
                            t->path, step + 1, layer + 1, t->steps, t->layers);
    if (rt->E != t->experts || rt->top_k != t->top_k)
        return mplb_err_set(err, MPLB_ECONFIG, "%s: the trace has %d experts, top-%d; the model %d, top-%d",
                            t->path, t->experts, t->top_k, rt->E, rt->top_k);
    mplb_routing_clear(rt);
    int R = rt->R, E = rt->E, k = t->top_k;
    size_t sl = (size_t)step * t->layers + layer;
    if (t->topk_ids) {
        const int32_t *ids = t->topk_ids + sl * (size_t)t->tokens_per_step * k;
        for (int64_t i = 0; i < t->tokens_per_step; i++)
            mplb_routing_add_token(rt, pl, gpn, (int)(i * R / t->tokens_per_step), 0, ids + i * k, NULL);
        return 0;
    }
    const int32_t *c = t->counts + sl * E;
    int64_t total = 0;
    for (int e = 0; e < E; e++) {
        total += c[e];
        rt->expert_counts[e] = c[e];
        rt->importance[e] = t->importance ? t->importance[sl * E + e] : (double)c[e] / k;
        if (t->vision_counts) rt->vision_counts[e] = t->vision_counts[sl * E + e];
        if (t->src_counts && t->src == R) {
            for (int r = 0; r < R; r++) rt->src_counts[(size_t)r * E + e] = t->src_counts[(sl * t->src + r) * E + e];
        } else {
            /* spread over sources evenly: no source information in the trace */
            for (int r = 0; r < R; r++) rt->src_counts[(size_t)r * E + e] = c[e] / R + (r < c[e] % R);
        }
    }
    rt->tokens = total / k;
    rt->has_dedup = 0;  /* no per-token choices: dispatch counts every copy */
    return 0;
}
