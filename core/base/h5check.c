/* Checked HDF5 reads: see core/internal/h5check.h. */
#include "h5check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

hid_t mplb_h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* libhdf5 retries a checksum failure up to 100 times under SWMR read,
     * sleeping longer each time: a killed or damaged file then takes minutes
     * to fail. A live writer's half-written metadata settles within a retry
     * or two, so a few attempts keep reading running files working. */
    if (fapl >= 0) H5Pset_metadata_read_attempts(fapl, MPLB_H5_READ_ATTEMPTS);
    return fapl;
}

int mplb_h5_open(const char *path, mplb_h5_file *h, mplb_err *err) {
    memset(h, 0, sizeof *h);
    h->id = -1;
    h->path = path;
    struct stat st;
    if (stat(path, &st) != 0)
        return mplb_err_set(err, MPLB_EIO, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
    if (!S_ISREG(st.st_mode)) return mplb_err_set(err, MPLB_EIO, "%s: not a regular file", path);
    h->size = (hsize_t)st.st_size;
    if (H5Fis_hdf5(path) <= 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: not an HDF5 file", path);
    hid_t fapl = mplb_h5_fapl();
    h->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (h->id < 0) {
        /* a running or killed SWMR writer: its flushed rows are readable this way */
        h->id = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        h->unclosed = 1;
    }
    H5Pclose(fapl);
    if (h->id < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: cannot open as HDF5 (truncated or damaged)", path);
    return 0;
}

void mplb_h5_close(mplb_h5_file *h) {
    if (h->id >= 0) H5Fclose(h->id);
    h->id = -1;
}

/* One element: a scalar, or a simple dataspace of one point. */
static int one_elem(hid_t space) {
    H5S_class_t c = H5Sget_simple_extent_type(space);
    return c == H5S_SCALAR || (c == H5S_SIMPLE && H5Sget_simple_extent_npoints(space) == 1);
}

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "vlen";
    case H5T_ARRAY: return "array";
    default: return "other";
    }
}

/* Open attribute name of obj, check one element of class cls. */
static hid_t attr_open(const mplb_h5_file *h, hid_t obj, const char *name, H5T_class_t cls, const char *want,
                       mplb_err *err) {
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0) return 0;
    hid_t a = ex > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    if (a < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute %s cannot be opened", h->path, name), -1;
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int ok = sp >= 0 && one_elem(sp) && c == cls;
    if (!ok) {
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        mplb_err_set(err, MPLB_EFORMAT, "%s: attribute %s must be %s; it is %s with %lld element(s), %d dimension(s)",
                     h->path, name, want, class_name(c), sp >= 0 ? (long long)H5Sget_simple_extent_npoints(sp) : -1LL, nd);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (!ok) { H5Aclose(a); return -1; }
    return a;
}

int mplb_h5_attr_int(const mplb_h5_file *h, hid_t obj, const char *name, int64_t lo, int64_t hi, int64_t *out,
                     mplb_err *err) {
    hid_t a = attr_open(h, obj, name, H5T_INTEGER, "one integer", err);
    if (a <= 0) return a < 0 ? err->code : 1;
    long long v = 0;
    herr_t rc = H5Aread(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    if (rc < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute %s cannot be read", h->path, name);
    if (v < lo || v > hi)
        return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute %s = %lld is outside %lld..%lld", h->path, name, v,
                            (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int mplb_h5_attr_u64(const mplb_h5_file *h, hid_t obj, const char *name, uint64_t *out, mplb_err *err) {
    hid_t a = attr_open(h, obj, name, H5T_INTEGER, "one integer", err);
    if (a <= 0) return a < 0 ? err->code : 1;
    unsigned long long v = 0;
    herr_t rc = H5Aread(a, H5T_NATIVE_ULLONG, &v);
    H5Aclose(a);
    if (rc < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: attribute %s cannot be read", h->path, name);
    *out = v;
    return 0;
}

/* Read one string element of file type ft from attribute or dataset obj. */
static int read_str(const mplb_h5_file *h, hid_t obj, int is_attr, hid_t ft, const char *name, char **out,
                    mplb_err *err) {
    *out = NULL;
    htri_t vl = H5Tis_variable_str(ft);
    herr_t rc = -1;
    if (vl > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft) == H5T_CSET_UTF8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
        char *v = NULL;
        rc = is_attr ? H5Aread(obj, mt, &v) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
        if (rc >= 0) {
            *out = strdup(v ? v : "");
            if (v) H5free_memory(v);
        }
        H5Tclose(mt);
    } else if (vl == 0) {
        size_t n = H5Tget_size(ft);
        if (n == 0 || n > h->size + MPLB_H5_SLACK)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: %s: a %zu-byte string in a %llu-byte file", h->path, name, n,
                                (unsigned long long)h->size);
        char *buf = calloc(n + 1, 1);
        hid_t mt = H5Tcopy(ft);
        if (buf) rc = is_attr ? H5Aread(obj, mt, buf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Tclose(mt);
        if (rc >= 0) *out = buf;
        else free(buf);
    }
    if (rc < 0 || !*out) {
        free(*out);
        *out = NULL;
        return mplb_err_set(err, MPLB_EFORMAT, "%s: %s: the string cannot be read", h->path, name);
    }
    return 0;
}

int mplb_h5_attr_str(const mplb_h5_file *h, hid_t obj, const char *name, char **out, mplb_err *err) {
    *out = NULL;
    hid_t a = attr_open(h, obj, name, H5T_STRING, "one string", err);
    if (a <= 0) return a < 0 ? err->code : 1;
    char what[128];
    snprintf(what, sizeof what, "attribute %s", name);
    hid_t ft = H5Aget_type(a);
    int rc = read_str(h, a, 1, ft, what, out, err);
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* Does every component of a slash path exist, and is the last a dataset? */
static int dset_exists(hid_t loc, const char *name) {
    char buf[256];
    if (strlen(name) >= sizeof buf) return 0;
    strcpy(buf, name);
    for (char *s = buf; (s = strchr(s, '/')); s++) {
        *s = 0;
        int ok = H5Lexists(loc, buf, H5P_DEFAULT) > 0;
        *s = '/';
        if (!ok) return 0;
    }
    return H5Lexists(loc, buf, H5P_DEFAULT) > 0;
}

/* Elements of a simple dataspace, or -1 past 2^40 (no file of ours is near). */
static int64_t npoints(int rank, const hsize_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > ((hsize_t)1 << 40)) return -1;
        if (dims[i] && n > ((int64_t)1 << 40) / (int64_t)dims[i]) return -1;
        n *= (int64_t)dims[i];
    }
    return n;
}

static void dims_text(char *buf, size_t cap, int rank, const hsize_t *dims, int want) {
    size_t o = 0;
    buf[0] = 0;
    if (rank == 0) { snprintf(buf, cap, "a scalar"); return; }
    for (int i = 0; i < rank && o < cap; i++) {
        if (want && dims[i] == MPLB_H5_ANY) o += (size_t)snprintf(buf + o, cap - o, "%sN", i ? " x " : "[");
        else o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? " x " : "[", (unsigned long long)dims[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

hid_t mplb_h5_dset_open(const mplb_h5_file *h, const char *name, H5T_class_t cls, int rank, const hsize_t *want,
                        size_t elem, hsize_t *dims, mplb_err *err) {
    if (!dset_exists(h->id, name)) return 0;
    hid_t d = H5Dopen2(h->id, name, H5P_DEFAULT);
    if (d < 0) return mplb_err_set(err, MPLB_EFORMAT, "%s: /%s is not a readable dataset", h->path, name), -1;
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t got[H5S_MAX_RANK] = {0};
    if (r >= 0 && r <= H5S_MAX_RANK) H5Sget_simple_extent_dims(sp, got, NULL);
    int ok_class = cls == H5T_NO_CLASS ? (c == H5T_INTEGER || c == H5T_FLOAT) : c == cls;
    int ok_shape = r == rank;
    for (int i = 0; ok_shape && i < rank; i++) ok_shape = !want || want[i] == MPLB_H5_ANY || want[i] == got[i];
    int64_t n = ok_shape ? npoints(rank, got) : 0;
    hsize_t stored = H5Dget_storage_size(d);
    int rc = 0;
    char exp[160], has[160];
    if (!ok_class) {
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /%s holds %s values, expected %s", h->path, name, class_name(c),
                          cls == H5T_NO_CLASS ? "numbers" : class_name(cls));
    } else if (!ok_shape) {
        hsize_t w[H5S_MAX_RANK];
        for (int i = 0; i < rank; i++) w[i] = want ? want[i] : MPLB_H5_ANY;
        dims_text(exp, sizeof exp, rank, w, 1);
        if (r < 0 || r > H5S_MAX_RANK) snprintf(has, sizeof has, "unreadable");
        else dims_text(has, sizeof has, r, got, 0);
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /%s is %s, expected %s", h->path, name, has, exp);
    } else if (n < 0 || (hsize_t)n > (stored * MPLB_H5_MAX_RATIO + MPLB_H5_SLACK) / (elem ? elem : 1)) {
        dims_text(has, sizeof has, r, got, 0);
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /%s claims %s elements but stores only %llu bytes "
                          "(truncated or crafted)", h->path, name, has, (unsigned long long)stored);
    }
    if (rc == 0 && n > 0) {
        /* a compact dataset keeps its bytes in the header: their count must be
         * what the shape and type say (libhdf5 1.10 copies the shape's worth
         * out of a shorter damaged block) */
        hid_t dcpl = H5Dget_create_plist(d);
        H5D_layout_t lay = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
        if (dcpl >= 0) H5Pclose(dcpl);
        size_t tsz = t >= 0 ? H5Tget_size(t) : 0;
        if (lay == H5D_COMPACT && stored != (hsize_t)n * tsz)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: /%s stores %llu bytes for %lld elements of %zu bytes (damaged)",
                              h->path, name, (unsigned long long)stored, (long long)n, tsz);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (rc < 0) { H5Dclose(d); return -1; }
    for (int i = 0; i < rank; i++) dims[i] = got[i];
    return d;
}

void *mplb_h5_read_rows(const mplb_h5_file *h, hid_t d, const char *name, hid_t mem_t, size_t elem, int rank,
                        const hsize_t *dims, hsize_t rows, mplb_err *err) {
    hsize_t count[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) count[i] = i == 0 ? rows : dims[i];
    int64_t n = rank ? npoints(rank, count) : 1;
    if (n < 0 || (rank && rows > dims[0])) {
        mplb_err_set(err, MPLB_EFORMAT, "%s: /%s: %llu rows asked, %llu stored", h->path, name,
                     (unsigned long long)rows, rank ? (unsigned long long)dims[0] : 1ULL);
        return NULL;
    }
    void *buf = calloc((size_t)(n ? n : 1), elem);
    if (!buf) { mplb_err_set(err, MPLB_ENOMEM, "%s: /%s: out of memory", h->path, name); return NULL; }
    if (n == 0) return buf;
    hid_t fs = H5Dget_space(d), ms = rank ? H5Screate_simple(rank, count, NULL) : H5Screate(H5S_SCALAR);
    herr_t rc = fs < 0 || ms < 0 ? -1 : 0;
    if (rc >= 0 && rank) rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dread(d, mem_t, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (rc < 0) {
        free(buf);
        mplb_err_set(err, MPLB_EFORMAT, "%s: /%s cannot be read (damaged, or of a type that does not convert)",
                     h->path, name);
        return NULL;
    }
    return buf;
}

int mplb_h5_dset_str(const mplb_h5_file *h, const char *name, char **out, mplb_err *err) {
    *out = NULL;
    hsize_t dims[1];
    hid_t d = mplb_h5_dset_open(h, name, H5T_STRING, 0, NULL, 1, dims, err);
    if (d <= 0) return d < 0 ? err->code : 1;
    char what[128];
    snprintf(what, sizeof what, "/%s", name);
    hid_t ft = H5Dget_type(d);
    int rc = read_str(h, d, 0, ft, what, out, err);
    H5Tclose(ft);
    H5Dclose(d);
    return rc;
}

int mplb_h5_dset_strs(const mplb_h5_file *h, const char *name, int64_t n, char ***out, int64_t *n_out,
                      mplb_err *err) {
    *out = NULL;
    hsize_t want[1] = {n < 0 ? MPLB_H5_ANY : (hsize_t)n}, dims[1];
    /* each variable-length string takes a 16-byte heap reference in the file */
    hid_t d = mplb_h5_dset_open(h, name, H5T_STRING, 1, want, 16, dims, err);
    if (d <= 0) return d < 0 ? err->code : 1;
    int rc = 0;
    hid_t ft = H5Dget_type(d);
    size_t cnt = (size_t)dims[0];
    char **v = calloc(cnt + 1, sizeof *v);
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft) == H5T_CSET_UTF8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
        char **raw = calloc(cnt + 1, sizeof *raw);
        if (!v || !raw || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) rc = -1;
        for (size_t i = 0; raw && i < cnt; i++) {
            if (rc == 0 && !(v[i] = strdup(raw[i] ? raw[i] : ""))) rc = -1;
            if (raw[i]) H5free_memory(raw[i]);
        }
        free(raw);
        H5Tclose(mt);
    } else {
        size_t w = H5Tget_size(ft);
        char *raw = w && w <= h->size + MPLB_H5_SLACK && cnt <= (h->size + MPLB_H5_SLACK) / w ? calloc(cnt + 1, w) : NULL;
        hid_t mt = H5Tcopy(ft);
        if (!v || !raw || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) rc = -1;
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (!(v[i] = strndup(raw + i * w, w))) rc = -1;
        H5Tclose(mt);
        free(raw);
    }
    H5Tclose(ft);
    H5Dclose(d);
    if (rc < 0) {
        for (size_t i = 0; v && i < cnt; i++) free(v[i]);
        free(v);
        return mplb_err_set(err, MPLB_EFORMAT, "%s: /%s: its %zu strings cannot be read", h->path, name, cnt);
    }
    *out = v;
    if (n_out) *n_out = (int64_t)cnt;
    return 0;
}
