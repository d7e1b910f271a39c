/* Structure-aware fuzzing of the run-file and trace readers.
 *
 * Each input starts from a valid file mplb wrote and changes its structure
 * through libhdf5: attributes replaced by arrays, other types, extreme values
 * or deleted; datasets replaced by other ranks (0..10), dims, classes
 * (numbers, strings, compounds) and chunked ones claiming 2^31 elements they
 * never stored; groups swapped for datasets. Optionally (MPLB_FUZZ_BYTES=1)
 * raw bytes are flipped too. Each input is read in a forked child with an
 * alarm, and the child then touches every element the reader returned, so
 * ASan sees any reader that over-promises. A crash (signal or sanitizer
 * exit) or a hang (alarm) fails the test and keeps the input as
 * fz_bad_N.h5.
 *
 *   MPLB_FUZZ_N        inputs per file kind (default 30: ~1 s, ~10 s under ASan)
 *   MPLB_FUZZ_TIMEOUT  seconds per input before it counts as a hang (10)
 *   MPLB_FUZZ_VERBOSE  print each input's error message
 *   MPLB_TEST_SEED     replay a run
 * bench/fuzz.sh runs it longer and records the counts.
 */
#include <time.h>
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct rng { uint64_t s; } rng;
static uint64_t rnext(rng *r) {   /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rint_(rng *r, int n) { return (int)(rnext(r) % (uint64_t)n); }

static const char *const RUN_ATTRS[] = {"schema_version", "mplb_version", "git_revision", "command", "host",
                                        "times_source", "status", "error", "seed", "ranks", "experts"};
static const char *const RUN_DSETS[] = {"config", "hardware", "policy/names", "policy/sources", "policy/params",
                                        "steps", "ranks/load", "ranks/compute_us", "experts/load",
                                        "experts/precision"};
static const char *const RUN_GROUPS[] = {"policy", "ranks", "experts"};
static const char *const TR_ATTRS[] = {"top_k", "model", "source", "license", "phase", "format"};
static const char *const TR_DSETS[] = {"counts", "vision_counts", "importance", "src_counts", "topk_ids"};
#define NELEM(a) (int)(sizeof a / sizeof a[0])

static const int64_t INTERESTING[] = {0, 1, -1, 2, 3, 7, 64, 65, 255, 256, 1000000, 2147483647, -2147483648LL,
                                      4294967297LL, 9007199254740993LL};

static void rand_value(rng *r, void *buf, hid_t t) {
    size_t n = H5Tget_size(t);
    int64_t v = rint_(r, 3) ? INTERESTING[rint_(r, NELEM(INTERESTING))] : (int64_t)rnext(r);
    if (H5Tget_class(t) == H5T_FLOAT) { double d = rint_(r, 4) ? (double)v : (rint_(r, 2) ? NAN : 1e300); memcpy(buf, &d, 8); }
    else memcpy(buf, &v, n < 8 ? n : 8);
}

/* A random type for a replacement object: numbers, strings, compound. */
static hid_t rand_type(rng *r) {
    switch (rint_(r, 8)) {
    case 0: return H5Tcopy(H5T_NATIVE_INT32);
    case 1: return H5Tcopy(H5T_NATIVE_INT64);
    case 2: return H5Tcopy(H5T_NATIVE_UINT8);
    case 3: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case 4: { hid_t t = H5Tcopy(H5T_C_S1); H5Tset_size(t, (size_t)(1 + rint_(r, 300))); return t; }
    case 5: { hid_t t = H5Tcopy(H5T_C_S1); H5Tset_size(t, H5T_VARIABLE); return t; }
    case 6: {   /* a /steps-like row with some of its fields */
        hid_t t = H5Tcreate(H5T_COMPOUND, 24);
        H5Tinsert(t, "policy", 0, H5T_NATIVE_INT32);
        H5Tinsert(t, "step", 4, H5T_NATIVE_INT32);
        if (rint_(r, 2)) H5Tinsert(t, "layer", 8, H5T_NATIVE_INT32);
        H5Tinsert(t, "tokens", 16, H5T_NATIVE_INT64);
        return t;
    }
    default: {
        hid_t t = H5Tenum_create(H5T_NATIVE_UINT8);
        for (uint8_t p = 0; p < 4; p++) { char nm[8]; snprintf(nm, sizeof nm, "e%u", p); H5Tenum_insert(t, nm, &p); }
        return t;
    }
    }
}

static hid_t rand_space(rng *r, hsize_t *npts) {
    int k = rint_(r, 10);
    if (k == 0) { *npts = 1; return H5Screate(H5S_SCALAR); }
    int rank = k < 4 ? 1 : k < 7 ? 2 : 3 + rint_(r, 8);   /* up to 10 dimensions */
    hsize_t dims[10], n = 1;
    static const hsize_t small[] = {0, 1, 2, 3, 4, 8, 9, 40};
    for (int i = 0; i < rank; i++) {
        dims[i] = rank > 3 ? 1 + (hsize_t)rint_(r, 2) : small[rint_(r, NELEM(small))];
        n *= dims[i];
    }
    *npts = n;
    return H5Screate_simple(rank, dims, NULL);
}

/* Fill n elements of type t with random values (strings: random text). */
static void *rand_data(rng *r, hid_t t, hsize_t n, char ***strs) {
    size_t sz = H5Tget_size(t);
    *strs = NULL;
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
        char **v = calloc(n + 1, sizeof *v);
        for (hsize_t i = 0; i < n; i++) {
            size_t len = (size_t)rint_(r, 3) ? (size_t)rint_(r, 20) : (size_t)rint_(r, 5000);
            v[i] = malloc(len + 1);
            for (size_t j = 0; j < len; j++) v[i][j] = (char)(1 + rint_(r, 255));
            v[i][len] = 0;
        }
        *strs = v;
        return v;
    }
    unsigned char *buf = calloc(n ? n : 1, sz);
    for (hsize_t i = 0; i < n; i++) {
        if (H5Tget_class(t) == H5T_COMPOUND) {
            for (int f = 0; f < 4; f++) { int32_t x = (int32_t)INTERESTING[rint_(r, NELEM(INTERESTING))]; memcpy(buf + i * sz + 4 * (size_t)f, &x, 4); }
        } else if (H5Tget_class(t) == H5T_STRING) {
            for (size_t j = 0; j < sz; j++) buf[i * sz + j] = (unsigned char)rint_(r, 256);
        } else if (H5Tget_class(t) == H5T_ENUM) {
            buf[i] = (unsigned char)rint_(r, 4);
        } else rand_value(r, buf + i * sz, t);
    }
    return buf;
}

static void free_data(void *buf, char **strs, hsize_t n) {
    if (strs) for (hsize_t i = 0; i < n; i++) free(strs[i]);
    free(buf);
}

static void replace_attr(rng *r, hid_t f, const char *name) {
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    if (rint_(r, 6) == 0) return;   /* deleted */
    hsize_t n;
    hid_t t = rand_type(r), s = rand_space(r, &n);
    char **strs;
    void *buf = rand_data(r, t, n, &strs);
    hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) { H5Awrite(a, t, buf); H5Aclose(a); }
    free_data(buf, strs, n);
    H5Sclose(s);
    H5Tclose(t);
}

static void replace_dset(rng *r, hid_t f, const char *name) {
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    int kind = rint_(r, 8);
    if (kind == 0) return;   /* deleted */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (kind == 1) {         /* a group where a dataset belongs */
        hid_t g = H5Gcreate2(f, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        H5Pclose(lcpl);
        return;
    }
    if (kind == 2) {         /* chunked, claiming ~2^31 elements it never stores */
        int rank = 1 + rint_(r, 3);
        hsize_t dims[3] = {1, 1, 1}, chunk[3] = {1, 1, 1};
        dims[rank - 1] = ((hsize_t)1 << 31) - 2;
        chunk[rank - 1] = 1024;
        hid_t s = H5Screate_simple(rank, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(p, rank, chunk);
        H5Pset_deflate(p, 4);
        hid_t d = H5Dcreate2(f, name, rint_(r, 2) ? H5T_NATIVE_INT32 : H5T_NATIVE_DOUBLE, s, lcpl, p, H5P_DEFAULT);
        if (d >= 0) H5Dclose(d);
        H5Pclose(p);
        H5Sclose(s);
        H5Pclose(lcpl);
        return;
    }
    hsize_t n;
    hid_t t = rand_type(r), s = rand_space(r, &n);
    char **strs;
    void *buf = rand_data(r, t, n, &strs);
    hid_t d = H5Dcreate2(f, name, t, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) { if (n) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); H5Dclose(d); }
    free_data(buf, strs, n);
    H5Sclose(s);
    H5Tclose(t);
    H5Pclose(lcpl);
}

/* Grow or shrink an unlimited table (rows beyond the written ones read as fill). */
static void resize_dset(rng *r, hid_t f, const char *name) {
    hid_t d = H5Oexists_by_name(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (d < 0) return;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 1) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (rank >= 1) {
        dims[0] = rint_(r, 2) ? dims[0] / 2 : dims[0] * 3 + 5;
        H5Dset_extent(d, dims);
    }
    H5Dclose(d);
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[1 << 15];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

static void flip_bytes(rng *r, const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    int k = 1 + rint_(r, 8);
    for (int i = 0; i < k && size > 0; i++) {
        fseek(f, (long)(rnext(r) % (uint64_t)size), SEEK_SET);
        fputc(rint_(r, 256), f);
    }
    fclose(f);
}

static int mutate(rng *r, const char *path, int trace, int bytes) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    int m = 1 + rint_(r, 3);
    for (int i = 0; i < m; i++) {
        int what = rint_(r, trace ? 3 : 5);
        if (what == 0) replace_attr(r, f, trace ? TR_ATTRS[rint_(r, NELEM(TR_ATTRS))] : RUN_ATTRS[rint_(r, NELEM(RUN_ATTRS))]);
        else if (what == 1) replace_dset(r, f, trace ? TR_DSETS[rint_(r, NELEM(TR_DSETS))] : RUN_DSETS[rint_(r, NELEM(RUN_DSETS))]);
        else if (what == 2) resize_dset(r, f, trace ? TR_DSETS[rint_(r, NELEM(TR_DSETS))] : RUN_DSETS[5 + rint_(r, 5)]);
        else if (what == 3) {   /* a group replaced by a dataset */
            const char *g = RUN_GROUPS[rint_(r, NELEM(RUN_GROUPS))];
            H5Ldelete(f, g, H5P_DEFAULT);
            replace_dset(r, f, g);
        } else {                /* /steps rows with out-of-range policy, step, layer */
            replace_dset(r, f, "steps");
        }
    }
    H5Fclose(f);
    if (bytes && rint_(r, 2)) flip_bytes(r, path);
    return 0;
}

/* Read the file and touch everything the reader returned (child process). */
static int consume(const char *path, int trace) {
    mplb_err err = {0};
    volatile double sink = 0;
    if (trace) {
        mplb_trace t;
        if (mplb_trace_read(path, &t, &err) < 0) {
            if (getenv("MPLB_FUZZ_VERBOSE")) printf("# %s: %s\n", path, err.msg);
            return 0;
        }
        mplb_trace_stats s;
        for (int st = 0; st < t.steps; st++)
            for (int l = 0; l < t.layers; l++) {
                mplb_stats_counts(t.counts + ((size_t)st * t.layers + l) * t.experts, t.experts, t.top_k, 4, &s);
                sink += s.lis;
            }
        sink += mplb_trace_persistence(&t, 2) + mplb_trace_phase_correlation(&t);
        mplb_trace_free(&t);
        return 0;
    }
    mplb_runfile_info info;
    if (mplb_runfile_read_arrays(path, &info, &err) == 0) {
        double *per_policy = calloc((size_t)info.n_policies + 1, sizeof(double));
        for (int64_t i = 0; i < info.n_rows; i++) per_policy[info.rows[i].policy] += info.rows[i].t_layer_us;
        size_t nr = (size_t)info.n_rows * (size_t)info.R, ne = (size_t)info.n_rows * (size_t)info.E;
        for (size_t i = 0; i < nr; i++) sink += info.rank_load[i] + info.rank_compute[i];
        for (size_t i = 0; i < ne; i++) sink += info.expert_load[i] + (double)strlen(mplb_prec_name(info.expert_prec[i]));
        for (int p = 0; p < info.n_policies; p++)
            sink += (double)(strlen(info.policy_names[p]) + strlen(info.policy_sources[p]) + strlen(info.policy_params[p]));
        sink += (double)strlen(info.status) + (info.config ? (double)strlen(info.config) : 0);
        free(per_policy);
        mplb_runfile_info_free(&info);
    }
    else if (getenv("MPLB_FUZZ_VERBOSE")) printf("# %s: %s\n", path, err.msg);
    if (mplb_runfile_read(path, &info, &err) == 0) mplb_runfile_info_free(&info);
    (void)sink;
    return 0;
}

static void make_run(const char *path) {
    const char *names[] = {"baseline", "realb"}, *srcs[] = {"return {}", "local P = {} return P"},
               *params[] = {"{}", "{tau=1.2}"};
    mplb_runfile_meta m = {.mplb_version = "0", .git_revision = "x", .command = "mplb run fuzz", .config = "return {}",
                           .hardware = "return {}", .host = "h", .times_source = "cost model", .seed = 7,
                           .n_policies = 2, .policy_names = names, .policy_sources = srcs, .policy_params = params};
    mplb_runfile *rf;
    mplb_err err = {0};
    assert_int_equal(mplb_runfile_create(path, &m, 4, 8, 1, 16, 0, &rf, &err), 0);
    double rl[4] = {1, 2, 3, 4};
    int32_t el[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t ep[8] = {0, 1, 2, 3, 0, 1, 2, 3};
    for (int i = 0; i < 40; i++) {
        mplb_step_row row = {.policy = i % 2, .step = i / 4, .layer = i / 2 % 2, .tokens = 64, .t_layer_us = 10 + i};
        assert_int_equal(mplb_runfile_append(rf, &row, rl, rl, el, ep, &err), 0);
    }
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);
}

static void make_trace(const char *path, int with_ids) {
    mplb_trace t;
    memset(&t, 0, sizeof t);
    t.steps = 3; t.layers = 2; t.experts = 8; t.top_k = 2; t.src = 2;
    size_t n = (size_t)t.steps * t.layers * t.experts;
    t.counts = calloc(n, 4);
    t.vision_counts = calloc(n, 4);
    t.importance = calloc(n, 8);
    t.src_counts = calloc(n * 2, 4);
    for (size_t i = 0; i < n; i++) {
        t.counts[i] = (int32_t)(i % 5) * 2;
        t.vision_counts[i] = t.counts[i] / 2;
        t.importance[i] = 0.5;
        size_t sl = i / 8, e = i % 8;
        t.src_counts[(sl * 2 + 0) * 8 + e] = t.counts[i] / 2;
        t.src_counts[(sl * 2 + 1) * 8 + e] = t.counts[i] - t.counts[i] / 2;
    }
    t.is_decode = calloc(3, 1);
    t.is_decode[2] = 1;
    if (with_ids) {
        t.tokens_per_step = 4;
        t.topk_ids = calloc((size_t)t.steps * t.layers * 4 * 2, 4);
        for (size_t i = 0; i < (size_t)t.steps * t.layers * 8; i++) t.topk_ids[i] = (int32_t)(i % 8);
        free(t.src_counts);
        t.src_counts = NULL;
        for (size_t sl = 0; sl < 6; sl++)
            for (int e = 0; e < 8; e++) t.counts[sl * 8 + e] = 1, t.vision_counts[sl * 8 + e] = 0;
    }
    snprintf(t.model, sizeof t.model, "fuzz");
    mplb_err err = {0};
    assert_int_equal(mplb_trace_write(path, &t, 1, &err), 0);
    mplb_trace_free(&t);
}

typedef struct counts { int tried, crashes, hangs; } counts;

static void fuzz_kind(const char *base, int trace, int n, uint64_t seed, counts *c) {
    rng r = {seed};
    int timeout = getenv("MPLB_FUZZ_TIMEOUT") ? atoi(getenv("MPLB_FUZZ_TIMEOUT")) : 10;
    int bytes = getenv("MPLB_FUZZ_BYTES") && atoi(getenv("MPLB_FUZZ_BYTES"));
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "fz_%s_%d.h5", trace ? "trace" : "run", i);
        copy_file(base, path);
        if (mutate(&r, path, trace, bytes) < 0) { remove(path); continue; }
        c->tried++;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm((unsigned)timeout);
            int rc = consume(path, trace);
            fflush(stdout);
            _exit(rc);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int hang = WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
        int crash = !hang && (WIFSIGNALED(st) || WEXITSTATUS(st) != 0);
        if (hang || crash) {
            char keep[64];
            snprintf(keep, sizeof keep, "fz_bad_%s_%d.h5", trace ? "trace" : "run", c->crashes + c->hangs);
            rename(path, keep);
            printf("# %s: %s (%s %d)\n", keep, hang ? "hang" : "crash", WIFSIGNALED(st) ? "signal" : "exit",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            c->hangs += hang;
            c->crashes += crash;
        } else remove(path);
    }
}

static void test_fuzz(void **st) {
    (void)st;
    int n = getenv("MPLB_FUZZ_N") ? atoi(getenv("MPLB_FUZZ_N")) : 30;
    uint64_t seed = test_seed();
    make_run("fz_base_run.h5");
    make_trace("fz_base_trace.h5", 0);
    make_trace("fz_base_ids.h5", 1);
    counts run = {0}, tr = {0};
    fuzz_kind("fz_base_run.h5", 0, n, seed, &run);
    fuzz_kind("fz_base_trace.h5", 1, n / 2, seed + 1, &tr);
    fuzz_kind("fz_base_ids.h5", 1, n - n / 2, seed + 2, &tr);
    printf("# fuzz run files: %d inputs, %d crashes, %d hangs\n", run.tried, run.crashes, run.hangs);
    printf("# fuzz traces:    %d inputs, %d crashes, %d hangs\n", tr.tried, tr.crashes, tr.hangs);
    assert_int_equal(run.crashes + run.hangs + tr.crashes + tr.hangs, 0);
}

/* The red team's crafted files (issue #18, findings 1 and 9), one by one:
 * each is refused with an error naming the file and object. */
static void set_attr(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims, const void *v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t s = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, type, v) >= 0);
    H5Aclose(a); H5Sclose(s); H5Fclose(f);
}

static void set_dset(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims, const void *v,
                     const hsize_t *chunk) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t s = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) H5Pset_chunk(p, rank, chunk);
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
    assert_true(d >= 0);
    if (v) assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d); H5Pclose(p); H5Sclose(s); H5Fclose(f);
}

static void expect_run_error(const char *path, const char *needle) {
    mplb_runfile_info info;
    mplb_err err = {0};
    assert_int_equal(mplb_runfile_read_arrays(path, &info, &err), MPLB_EFORMAT);
    printf("# %s\n", err.msg);
    assert_contains(err.msg, path);
    assert_contains(err.msg, needle);
}

static void test_red_team_files(void **st) {
    (void)st;
    uint64_t big[16] = {0};
    hsize_t d2[2] = {2, 3}, d1[1] = {5}, d10[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 2};
    const char *attrs[] = {"seed", "ranks", "status", "schema_version"};
    for (int i = 0; i < 4; i++) {
        make_run("rt.h5");
        set_attr("rt.h5", attrs[i], H5T_NATIVE_UINT64, 2, d2, big);
        expect_run_error("rt.h5", attrs[i]);
    }
    make_run("rt.h5");
    set_dset("rt.h5", "config", H5T_NATIVE_UINT64, 1, d1, big, NULL);
    expect_run_error("rt.h5", "/config");
    make_run("rt.h5");
    double z[2] = {0};
    set_dset("rt.h5", "ranks/load", H5T_NATIVE_DOUBLE, 10, d10, z, NULL);
    expect_run_error("rt.h5", "/ranks/load is [1 x 1 x 1 x 1 x 1 x 1 x 1 x 1 x 1 x 2], expected [N x 4]");
    make_run("rt.h5");
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    const char *srcs[5] = {"a", "b", "c", "d", "e"};
    set_dset("rt.h5", "policy/sources", vs, 1, d1, srcs, NULL);
    expect_run_error("rt.h5", "/policy/sources is [5], expected [2]");
    H5Tclose(vs);
    make_run("rt.h5");
    hid_t f = H5Fopen("rt.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "steps", H5P_DEFAULT);
    hid_t m = H5Tcreate(H5T_COMPOUND, sizeof(int32_t));
    H5Tinsert(m, "policy", 0, H5T_NATIVE_INT32);
    hid_t fs = H5Dget_space(d);
    hsize_t one = 1, at = 3;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int32_t pol = 1000000;
    assert_true(H5Dwrite(d, m, ms, fs, H5P_DEFAULT, &pol) >= 0);
    H5Sclose(ms); H5Sclose(fs); H5Tclose(m); H5Dclose(d); H5Fclose(f);
    expect_run_error("rt.h5", "/steps row 3: policy 1000000 (of 2)");
    /* traces: an array top_k; a 1.5 KB file whose chunked /counts claims
     * 1 x 1 x (2^31 - 2) (8.5 GB once read) */
    mplb_trace t;
    mplb_err err = {0};
    make_trace("rtt.h5", 0);
    int32_t ks[5] = {2, 2, 2, 2, 2};
    set_attr("rtt.h5", "top_k", H5T_NATIVE_INT32, 1, d1, ks);
    assert_int_equal(mplb_trace_read("rtt.h5", &t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "attribute top_k must be one integer");
    make_trace("rtt.h5", 0);
    hsize_t huge[3] = {1, 1, ((hsize_t)1 << 31) - 2}, chunk[3] = {1, 1, 1024};
    set_dset("rtt.h5", "counts", H5T_NATIVE_INT32, 3, huge, NULL, chunk);
    assert_int_equal(mplb_trace_read("rtt.h5", &t, &err), MPLB_EFORMAT);
    printf("# %s\n", err.msg);
    assert_contains(err.msg, "/counts claims [1 x 1 x 2147483646] elements but stores only 0 bytes");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_red_team_files), cmocka_unit_test(test_fuzz)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
