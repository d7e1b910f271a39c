/* safetensors reading: see include/mplb/safetensors.h. JSON by cJSON. */
#include "mplb/safetensors.h"
#include "quant_elem.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_HEADER_MAX (100u << 20)   /* the format's own limit */

void mplb_st_close(mplb_st *st) {
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

static int dtype_size(const char *d) {
    if (!strcmp(d, "F32")) return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16")) return 2;
    return 0;
}

int mplb_st_open(const char *path, mplb_st *st, mplb_err *err) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return mplb_err_set(err, MPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    fstat(fileno(f), &sb);
    st->file_size = (uint64_t)sb.st_size;
    unsigned char lenb[8];
    if (fread(lenb, 1, 8, f) != 8) { fclose(f); return mplb_err_set(err, MPLB_EFORMAT, "%s: shorter than the 8-byte header length", path); }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | lenb[i];
    if (hl == 0 || hl > ST_HEADER_MAX || 8 + hl > st->file_size) {
        fclose(f);
        return mplb_err_set(err, MPLB_EFORMAT, "%s: header length %llu does not fit the file (%llu bytes)", path,
                            (unsigned long long)hl, (unsigned long long)st->file_size);
    }
    char *h = malloc(hl + 1);
    if (!h || fread(h, 1, hl, f) != hl) { free(h); fclose(f); return mplb_err_set(err, MPLB_EFORMAT, "%s: truncated header", path); }
    fclose(f);
    h[hl] = 0;
    st->data_start = 8 + hl;
    cJSON *root = cJSON_ParseWithLength(h, hl);
    free(h);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mplb_err_set(err, MPLB_EFORMAT, "%s: the header is not a JSON object", path);
    }
    int n = cJSON_GetArraySize(root), rc = 0;
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    if (!st->tensors) { cJSON_Delete(root); return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); }
    uint64_t data_len = st->file_size - st->data_start;
    for (cJSON *it = root->child; it && rc == 0; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) continue;
        mplb_st_tensor *t = &st->tensors[st->n];
        snprintf(t->name, sizeof t->name, "%s", it->string);
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(it, "shape"),
              *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]", path, t->name);
            break;
        }
        snprintf(t->dtype, sizeof t->dtype, "%s", dt->valuestring);
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > 8) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': %d dimensions", path, t->name, t->ndim); break; }
        uint64_t count = 1;
        for (int k = 0; k < t->ndim; k++) {
            cJSON *dim = cJSON_GetArrayItem(sh, k);
            if (!cJSON_IsNumber(dim) || dim->valuedouble < 0 || dim->valuedouble > 1e12) {
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': bad shape[%d]", path, t->name, k);
                break;
            }
            t->shape[k] = (int64_t)dim->valuedouble;
            count *= (uint64_t)t->shape[k];
        }
        if (rc) break;
        cJSON *b = cJSON_GetArrayItem(off, 0), *e = cJSON_GetArrayItem(off, 1);
        if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 || e->valuedouble < b->valuedouble) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': bad data_offsets", path, t->name);
            break;
        }
        t->begin = (uint64_t)b->valuedouble;
        t->end = (uint64_t)e->valuedouble;
        if (t->end > data_len) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': data_offsets end %llu beyond the data (%llu bytes): truncated file?",
                              path, t->name, (unsigned long long)t->end, (unsigned long long)data_len);
            break;
        }
        int es = dtype_size(t->dtype);
        if (es && t->end - t->begin != count * (uint64_t)es) {
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': %llu bytes for %llu elements of %s", path, t->name,
                              (unsigned long long)(t->end - t->begin), (unsigned long long)count, t->dtype);
            break;
        }
        st->n++;
    }
    cJSON_Delete(root);
    if (rc < 0) mplb_st_close(st);
    return rc;
}

int mplb_st_find(const mplb_st *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name)) return i;
    return -1;
}

int mplb_st_read_f32(const mplb_st *st, int i, float **out, int64_t *count, mplb_err *err) {
    *out = NULL;
    if (i < 0 || i >= st->n) return mplb_err_set(err, MPLB_EINVAL, "%s: no tensor %d", st->path, i);
    const mplb_st_tensor *t = &st->tensors[i];
    int es = dtype_size(t->dtype);
    if (!es) return mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': dtype %s not supported (F32, F16, BF16)", st->path, t->name, t->dtype);
    uint64_t n = (t->end - t->begin) / (uint64_t)es;
    FILE *f = fopen(st->path, "rb");
    if (!f) return mplb_err_set(err, MPLB_EIO, "%s: cannot open", st->path);
    unsigned char *raw = malloc(n * es + 1);
    float *v = malloc(n * sizeof(float) + 1);
    int rc = 0;
    if (!raw || !v) rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", st->path);
    else if (fseek(f, (long)(st->data_start + t->begin), SEEK_SET) != 0 || fread(raw, (size_t)es, n, f) != n)
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: tensor '%s': truncated data", st->path, t->name);
    fclose(f);
    for (uint64_t k = 0; rc == 0 && k < n; k++) {
        if (es == 4) memcpy(&v[k], raw + 4 * k, 4);
        else {
            uint16_t hbits = (uint16_t)(raw[2 * k] | raw[2 * k + 1] << 8);
            v[k] = !strcmp(t->dtype, "BF16") ? mplb_bf16_to_f32(hbits) : mplb_fp16_to_f32(hbits);
        }
    }
    free(raw);
    if (rc < 0) { free(v); return rc; }
    *out = v;
    *count = (int64_t)n;
    return 0;
}
