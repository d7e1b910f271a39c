/* Trace importers (CSV, NPY): see include/mplb/trace.h. Every error names
 * the file and the line (CSV) or element (NPY). */
#include "mplb/trace.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM 1000000

typedef struct rec { long step, layer, token, expert, count; } rec;

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r') end++;
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* Split line (modified in place) at commas into at most max fields. */
static int split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        while (*p == ' ' || *p == '\t') p++;
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    char *nl = strpbrk(f[n - 1], "\r\n");
    if (nl) *nl = 0;
    return n;
}

int mplb_trace_import_csv(const char *path, int top_k, int experts, mplb_trace *t, mplb_err *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    if (top_k < 1 || top_k > 64) return mplb_err_set(err, MPLB_EINVAL, "%s: top_k must be in 1..64 (--top-k)", path);
    FILE *fp = fopen(path, "r");
    if (!fp) return mplb_err_set(err, MPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
    char line[4096];
    char *f[8];
    int rc = 0;
    if (!fgets(line, sizeof line, fp)) { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s:1: empty file (expected a header)", path); }
    int nf = split(line, f, 8);
    int col_step = -1, col_layer = -1, col_expert = -1, col_count = -1, col_token = -1, col_weight = -1;
    for (int i = 0; i < nf; i++) {
        if (!strcmp(f[i], "step")) col_step = i;
        else if (!strcmp(f[i], "layer")) col_layer = i;
        else if (!strcmp(f[i], "expert")) col_expert = i;
        else if (!strcmp(f[i], "count")) col_count = i;
        else if (!strcmp(f[i], "token")) col_token = i;
        else if (!strcmp(f[i], "weight")) col_weight = i;
        else { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s:1: unknown column '%s' (known: step, layer, expert, count, token, weight)", path, f[i]); }
    }
    int per_token = col_token >= 0;
    if (col_step < 0 || col_layer < 0 || col_expert < 0 || (per_token ? 0 : col_count < 0)) {
        fclose(fp);
        return mplb_err_set(err, MPLB_EFORMAT, "%s:1: header must be step,layer,expert,count or step,layer,token,expert[,weight]", path);
    }
    (void)col_weight;
    size_t n = 0, cap = 1024;
    rec *rs = malloc(cap * sizeof *rs);
    long maxs = -1, maxl = -1, maxe = -1, maxt = -1;
    long lineno = 1;
    while (rs && fgets(line, sizeof line, fp)) {
        lineno++;
        if (line[0] == '\n' || line[0] == '\r' || line[0] == 0) continue;
        if (!strchr(line, '\n') && !feof(fp)) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: line too long", path, lineno); break; }
        int m = split(line, f, 8);
        if (m != nf) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: %d fields, the header has %d", path, lineno, m, nf); break; }
        rec r = {0, 0, 0, 0, 1};
        struct { int col; long *dst; const char *name; } cols[] = {
            {col_step, &r.step, "step"}, {col_layer, &r.layer, "layer"}, {col_expert, &r.expert, "expert"},
            {col_count, &r.count, "count"}, {col_token, &r.token, "token"}};
        for (int i = 0; i < 5 && rc == 0; i++) {
            if (cols[i].col < 0) continue;
            if (parse_long(f[cols[i].col], cols[i].dst) < 0)
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: field '%s': '%s' is not an integer", path, lineno, cols[i].name, f[cols[i].col]);
            else if (*cols[i].dst < 0 || *cols[i].dst >= MAX_DIM * (i == 3 ? 1000L : 1L))
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: field '%s': %ld is out of range", path, lineno, cols[i].name, *cols[i].dst);
        }
        if (rc == 0 && col_weight >= 0) {
            char *end;
            double w = strtod(f[col_weight], &end);
            if (end == f[col_weight] || !isfinite(w))
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: field 'weight': '%s' is not a finite number", path, lineno, f[col_weight]);
        }
        if (rc == 0 && experts > 0 && r.expert >= experts)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%ld: field 'expert': %ld >= experts (%d)", path, lineno, r.expert, experts);
        if (rc) break;
        if (n == cap) {
            rec *nr = realloc(rs, (cap *= 2) * sizeof *rs);
            if (!nr) { free(rs); rs = NULL; break; }
            rs = nr;
        }
        rs[n++] = r;
        if (r.step > maxs) maxs = r.step;
        if (r.layer > maxl) maxl = r.layer;
        if (r.expert > maxe) maxe = r.expert;
        if (r.token > maxt) maxt = r.token;
    }
    fclose(fp);
    if (!rs) return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
    if (rc == 0 && n == 0) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: no data rows", path);
    if (rc < 0) { free(rs); return rc; }
    t->steps = (int)maxs + 1; t->layers = (int)maxl + 1; t->experts = experts > 0 ? experts : (int)maxe + 1;
    t->top_k = top_k;
    size_t cells = (size_t)t->steps * t->layers;
    if (cells * t->experts > ((size_t)1 << 30)) { free(rs); return mplb_err_set(err, MPLB_EFORMAT, "%s: trace too large", path); }
    t->counts = calloc(cells * t->experts, sizeof *t->counts);
    if (per_token) {
        t->tokens_per_step = maxt + 1;
        t->topk_ids = malloc(cells * (size_t)t->tokens_per_step * top_k * sizeof *t->topk_ids);
        int *fill = calloc(cells * (size_t)t->tokens_per_step, sizeof *fill);
        if (!t->counts || !t->topk_ids || !fill) { free(fill); free(rs); mplb_trace_free(t); return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); }
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t tok = ((size_t)rs[i].step * t->layers + rs[i].layer) * t->tokens_per_step + rs[i].token;
            if (fill[tok] >= top_k) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: step %ld, layer %ld, token %ld has more than top_k = %d experts",
                                                      path, rs[i].step, rs[i].layer, rs[i].token, top_k);
            else t->topk_ids[tok * top_k + fill[tok]++] = (int32_t)rs[i].expert;
            t->counts[((size_t)rs[i].step * t->layers + rs[i].layer) * t->experts + rs[i].expert]++;
        }
        for (size_t tok = 0; tok < cells * (size_t)t->tokens_per_step && rc == 0; tok++)
            if (fill[tok] != top_k)
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s: step %zu, layer %zu, token %zu has %d experts, expected top_k = %d "
                                  "(every step and layer needs the same tokens)", path, tok / t->tokens_per_step / t->layers,
                                  tok / t->tokens_per_step % t->layers, tok % t->tokens_per_step, fill[tok], top_k);
        free(fill);
    } else {
        if (!t->counts) { free(rs); return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); }
        for (size_t i = 0; i < n && rc == 0; i++) {
            int32_t *c = &t->counts[((size_t)rs[i].step * t->layers + rs[i].layer) * t->experts + rs[i].expert];
            if ((int64_t)*c + rs[i].count > INT32_MAX) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: count overflow at step %ld, layer %ld, expert %ld", path, rs[i].step, rs[i].layer, rs[i].expert);
            else *c += (int32_t)rs[i].count;
        }
    }
    free(rs);
    snprintf(t->source, sizeof t->source, "imported from %s", path);
    if (rc == 0) rc = mplb_trace_validate(t, err);
    if (rc < 0) mplb_trace_free(t);
    return rc;
}

/* NPY v1-3: magic, version, header length, a Python dict literal. */
int mplb_trace_import_npy(const char *path, int top_k, mplb_trace *t, mplb_err *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    if (top_k < 1 || top_k > 64) return mplb_err_set(err, MPLB_EINVAL, "%s: top_k must be in 1..64 (--top-k)", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return mplb_err_set(err, MPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    int rc = 0;
    size_t got = fread(pre, 1, 10, fp);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s: not an NPY file (bad magic)", path); }
    size_t hlen;
    if (pre[6] == 1) hlen = pre[8] | (size_t)pre[9] << 8;
    else {
        if (fread(pre + 10, 1, 2, fp) != 2) { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s: truncated NPY header", path); }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    if (hlen > 65536) { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s: NPY header too long", path); }
    char *h = calloc(hlen + 1, 1);
    if (!h || fread(h, 1, hlen, fp) != hlen) { free(h); fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s: truncated NPY header", path); }
    char descr[16] = "";
    const char *d = strstr(h, "'descr'");
    if (d && (d = strchr(d + 7, '\'')) && strchr(d + 1, '\'')) {
        size_t l = (size_t)(strchr(d + 1, '\'') - d - 1);
        if (l < sizeof descr) { memcpy(descr, d + 1, l); descr[l] = 0; }
    }
    int fortran = strstr(h, "'fortran_order': True") != NULL;
    long dims[4];
    int nd = 0;
    const char *sh = strstr(h, "'shape'");
    if (sh && (sh = strchr(sh, '('))) {
        sh++;
        while (nd < 4) {
            while (*sh == ' ') sh++;
            if (!isdigit((unsigned char)*sh)) break;
            dims[nd++] = strtol(sh, (char **)&sh, 10);
            while (*sh == ' ' || *sh == ',') sh++;
        }
    }
    free(h);
    size_t esz = 0;
    int isf = 0;
    if (!strcmp(descr, "<i4")) esz = 4;
    else if (!strcmp(descr, "<i8")) esz = 8;
    else if (!strcmp(descr, "<f4")) { esz = 4; isf = 1; }
    else if (!strcmp(descr, "<f8")) { esz = 8; isf = 1; }
    if (!esz) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: dtype '%s' not supported (int32, int64, float32, float64, little-endian)", path, descr);
    else if (fortran) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: Fortran-order arrays are not supported (save with C order)", path);
    else if (nd != 2 && nd != 3) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: shape must be [layers, experts] or [steps, layers, experts], got %d dimensions", path, nd);
    if (rc == 0) {
        for (int i = 0; i < nd; i++)
            if (dims[i] < 1 || dims[i] > MAX_DIM) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: dimension %d = %ld out of range", path, i, dims[i]);
    }
    if (rc < 0) { fclose(fp); return rc; }
    t->steps = nd == 3 ? (int)dims[0] : 1;
    t->layers = (int)dims[nd - 2];
    t->experts = (int)dims[nd - 1];
    t->top_k = top_k;
    size_t n = (size_t)t->steps * t->layers * t->experts;
    if (n > ((size_t)1 << 30)) { fclose(fp); return mplb_err_set(err, MPLB_EFORMAT, "%s: array too large", path); }
    unsigned char *raw = malloc(n * esz);
    t->counts = malloc(n * sizeof *t->counts);
    if (!raw || !t->counts) { free(raw); fclose(fp); mplb_trace_free(t); return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); }
    size_t rd = fread(raw, esz, n, fp);
    fclose(fp);
    if (rd != n) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: truncated: %zu of %zu elements present", path, rd, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        double v;
        if (isf) {
            if (esz == 4) { float x; memcpy(&x, raw + i * 4, 4); v = x; }
            else memcpy(&v, raw + i * 8, 8);
        } else if (esz == 4) { int32_t x; memcpy(&x, raw + i * 4, 4); v = x; }
        else { int64_t x; memcpy(&x, raw + i * 8, 8); v = (double)x; }
        if (!(v >= 0) || v > INT32_MAX || v != floor(v))
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: element [%zu][%zu][%zu] = %g is not a count (a non-negative integer; float loads: --format loads)",
                              path, i / ((size_t)t->layers * t->experts), i / t->experts % t->layers, i % t->experts, v);
        else t->counts[i] = (int32_t)v;
    }
    free(raw);
    snprintf(t->source, sizeof t->source, "imported from %s", path);
    if (rc == 0) rc = mplb_trace_validate(t, err);
    if (rc < 0) mplb_trace_free(t);
    return rc;
}
