/* Scalar reference quantizers: see include/mplb/quant.h. These are the
 * source of truth; quant_simd.c must match them bit for bit. */
#include "mplb/quant.h"
#include "quant_elem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MX_BLOCK 32
#define NV_BLOCK 16

int mplb_quant_block(mplb_prec fmt) {
    switch (fmt) {
    case MPLB_PREC_MXFP8: case MPLB_PREC_MXFP4: return MX_BLOCK;
    case MPLB_PREC_NVFP4: return NV_BLOCK;
    case MPLB_PREC_INT4_G32: return 32;
    case MPLB_PREC_INT4_G128: return 128;
    default: return 1;
    }
}

static int is_nibble(mplb_prec f) {
    return f == MPLB_PREC_FP4_E2M1 || f == MPLB_PREC_MXFP4 || f == MPLB_PREC_NVFP4 ||
           f == MPLB_PREC_INT4_G32 || f == MPLB_PREC_INT4_G128;
}

int mplb_quant_sizes(mplb_prec fmt, const mplb_qopts *o, int64_t rows, int64_t cols,
                     size_t *data_bytes, size_t *scale_bytes, size_t *zero_bytes, mplb_err *err) {
    if (fmt < 0 || fmt >= MPLB_PREC_COUNT) return mplb_err_set(err, MPLB_EINVAL, "quant: unknown precision %d", (int)fmt);
    if (rows < 0 || cols < 0) return mplb_err_set(err, MPLB_EINVAL, "quant: negative shape %lldx%lld", (long long)rows, (long long)cols);
    int64_t bs = mplb_quant_block(fmt);
    int64_t nb = (cols + bs - 1) / bs, padded = nb * bs;
    size_t n = (size_t)rows * (size_t)padded;
    *zero_bytes = 0;
    *scale_bytes = 0;
    if (fmt == MPLB_PREC_BF16 || fmt == MPLB_PREC_FP16) *data_bytes = n * 2;
    else if (is_nibble(fmt)) {
        /* each row padded to an even count so rows start on a byte */
        int64_t pr = (padded + 1) / 2;
        *data_bytes = (size_t)rows * (size_t)pr;
    } else *data_bytes = n;
    switch (fmt) {
    case MPLB_PREC_MXFP8: case MPLB_PREC_MXFP4: *scale_bytes = (size_t)rows * (size_t)nb; break;
    case MPLB_PREC_NVFP4:
        *scale_bytes = (o && o->nvfp4_2d) ? (size_t)((rows + 15) / 16) * (size_t)nb : (size_t)rows * (size_t)nb;
        break;
    case MPLB_PREC_INT8: *scale_bytes = (size_t)rows * sizeof(float); break;
    case MPLB_PREC_INT4_G32: case MPLB_PREC_INT4_G128:
        *scale_bytes = (size_t)rows * (size_t)nb * 2;
        if (o && o->int4_asym) *zero_bytes = (size_t)rows * (size_t)nb;
        break;
    default: break;
    }
    return 0;
}

int mplb_qtensor_alloc(mplb_qtensor *t, mplb_prec fmt, const mplb_qopts *o, int64_t rows,
                       int64_t cols, mplb_err *err) {
    memset(t, 0, sizeof *t);
    int rc = mplb_quant_sizes(fmt, o, rows, cols, &t->data_bytes, &t->scale_bytes, &t->zero_bytes, err);
    if (rc < 0) return rc;
    t->fmt = fmt;
    if (o) t->opts = *o;
    t->rows = rows;
    t->cols = cols;
    t->global_scale = 1.0f;
    t->data = calloc(t->data_bytes + 1, 1);
    t->scales = calloc(t->scale_bytes + 1, 1);
    t->zeros = calloc(t->zero_bytes + 1, 1);
    if (!t->data || !t->scales || !t->zeros) {
        mplb_qtensor_free(t);
        return mplb_err_set(err, MPLB_ENOMEM, "quant: out of memory for %lldx%lld", (long long)rows, (long long)cols);
    }
    return 0;
}

void mplb_qtensor_free(mplb_qtensor *t) {
    free(t->data);
    free(t->scales);
    free(t->zeros);
    t->data = t->scales = t->zeros = NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static void put_nibble(uint8_t *row, int64_t i, uint8_t v) {
    if (i & 1) row[i >> 1] = (uint8_t)((row[i >> 1] & 0x0F) | (v << 4));
    else row[i >> 1] = (uint8_t)((row[i >> 1] & 0xF0) | (v & 0x0F));
}

static uint8_t get_nibble(const uint8_t *row, int64_t i) { return mplb_nibble(row, i); }

/* amax over finite values; *bad = 1 if any NaN/Inf. */
static float amax_of(const float *x, int64_t n, int *bad) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= 3.4028235e38f)) { *bad = 1; continue; }
        if (a > m) m = a;
    }
    return m;
}

/* ---- per-format reference quantizers ------------------------------------ */

static void q_cast(const float *x, mplb_qtensor *t) {
    int64_t n = t->rows * t->cols;
    const mplb_qopts *o = &t->opts;
    mplb_prec f = t->fmt;
    float gs = 1.0f;
    if (o->scaling == MPLB_SCALE_TENSOR && f != MPLB_PREC_BF16 && f != MPLB_PREC_FP16) {
        int bad = 0;
        float amax = amax_of(x, n, &bad);
        float mx = f == MPLB_PREC_FP8_E4M3 ? 448.0f : f == MPLB_PREC_FP8_E5M2 ? 57344.0f : 6.0f;
        gs = mplb_amax_scale(amax, mx);
    }
    t->global_scale = gs;
    for (int64_t r = 0; r < t->rows; r++) {
        uint8_t *row = t->data + (size_t)r * (size_t)((t->cols + 1) / 2);
        for (int64_t c = 0; c < t->cols; c++) {
            int64_t i = r * t->cols + c;
            float v = gs == 1.0f ? x[i] : x[i] / gs;
            switch (f) {
            case MPLB_PREC_BF16: { uint16_t h = mplb_f32_to_bf16(v); memcpy(t->data + 2 * i, &h, 2); break; }
            case MPLB_PREC_FP16: { uint16_t h = mplb_f32_to_fp16(v); memcpy(t->data + 2 * i, &h, 2); break; }
            case MPLB_PREC_FP8_E4M3: t->data[i] = mplb_f32_to_e4m3(v, o->saturate); break;
            case MPLB_PREC_FP8_E5M2: t->data[i] = mplb_f32_to_e5m2(v, o->saturate); break;
            default: put_nibble(row, c, mplb_f32_to_e2m1(v)); break;
            }
        }
    }
}

static void dq_cast(const mplb_qtensor *t, float *y) {
    float gs = t->global_scale;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)r * (size_t)((t->cols + 1) / 2);
        for (int64_t c = 0; c < t->cols; c++) {
            int64_t i = r * t->cols + c;
            float v;
            uint16_t h;
            switch (t->fmt) {
            case MPLB_PREC_BF16: memcpy(&h, t->data + 2 * i, 2); v = mplb_bf16_to_f32(h); break;
            case MPLB_PREC_FP16: memcpy(&h, t->data + 2 * i, 2); v = mplb_fp16_to_f32(h); break;
            case MPLB_PREC_FP8_E4M3: v = mplb_e4m3_to_f32(t->data[i]); break;
            case MPLB_PREC_FP8_E5M2: v = mplb_e5m2_to_f32(t->data[i]); break;
            default: v = mplb_e2m1_to_f32(get_nibble(row, c)); break;
            }
            y[i] = gs == 1.0f ? v : v * gs;
        }
    }
}

/* MX: E8M0 scale per 32 along the row. */
static void q_mx(const float *x, mplb_qtensor *t) {
    int fp4 = t->fmt == MPLB_PREC_MXFP4;
    int64_t nb = (t->cols + MX_BLOCK - 1) / MX_BLOCK, rowbytes = fp4 ? (nb * MX_BLOCK + 1) / 2 : nb * MX_BLOCK;
    for (int64_t r = 0; r < t->rows; r++) {
        uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t b = 0; b < nb; b++) {
            int64_t c0 = b * MX_BLOCK, n = t->cols - c0 < MX_BLOCK ? t->cols - c0 : MX_BLOCK;
            const float *xb = x + r * t->cols + c0;
            int bad = 0;
            float amax = amax_of(xb, n, &bad);
            int e;
            uint8_t sc = mplb_mx_scale_code(amax, bad, fp4, t->opts.mx_round_up, &e);
            t->scales[r * nb + b] = sc;
            for (int64_t j = 0; j < MX_BLOCK; j++) {
                uint8_t code = 0;
                if (j < n && sc != 0xFF && amax != 0) code = mplb_mx_code(xb[j], e, fp4);
                if (fp4) put_nibble(row, c0 + j, code);
                else row[c0 + j] = code;
            }
        }
    }
}

static void dq_mx(const mplb_qtensor *t, float *y) {
    int fp4 = t->fmt == MPLB_PREC_MXFP4;
    int64_t nb = (t->cols + MX_BLOCK - 1) / MX_BLOCK, rowbytes = fp4 ? (nb * MX_BLOCK + 1) / 2 : nb * MX_BLOCK;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t c = 0; c < t->cols; c++) {
            uint8_t sc = t->scales[r * nb + c / MX_BLOCK];
            y[r * t->cols + c] = mplb_mx_value(fp4 ? get_nibble(row, c) : row[c], sc, fp4);
        }
    }
}

/* NVFP4: E2M1 elements, E4M3 scale per 16 (or 16x16 tile), FP32 tensor scale. */
static void q_nv(const float *x, mplb_qtensor *t) {
    int64_t R = t->rows, C = t->cols, nb = (C + NV_BLOCK - 1) / NV_BLOCK, rowbytes = (nb * NV_BLOCK + 1) / 2;
    int bad_any = 0;
    float amax = amax_of(x, R * C, &bad_any);
    float gs = mplb_amax_scale(amax, 2688.0f);
    t->global_scale = gs;
    int tile = t->opts.nvfp4_2d ? 16 : 1;
    for (int64_t r0 = 0; r0 < R; r0 += tile) {
        int64_t nr = R - r0 < tile ? R - r0 : tile;
        for (int64_t b = 0; b < nb; b++) {
            int64_t c0 = b * NV_BLOCK, n = C - c0 < NV_BLOCK ? C - c0 : NV_BLOCK;
            int bad = 0;
            float bmax = 0;
            for (int64_t rr = 0; rr < nr; rr++) {
                float m = amax_of(x + (r0 + rr) * C + c0, n, &bad);
                if (m > bmax) bmax = m;
            }
            uint8_t sc = bad ? 0x7F : mplb_nvfp4_scale_code(bmax, gs);
            t->scales[(r0 / tile) * nb + b] = sc;
            for (int64_t rr = 0; rr < nr; rr++) {
                uint8_t *row = t->data + (size_t)((r0 + rr) * rowbytes);
                const float *xb = x + (r0 + rr) * C + c0;
                for (int64_t j = 0; j < NV_BLOCK; j++)
                    put_nibble(row, c0 + j, j < n && !bad ? mplb_nvfp4_code(xb[j], sc, gs) : 0);
            }
        }
    }
}

static void dq_nv(const mplb_qtensor *t, float *y) {
    int64_t C = t->cols, nb = (C + NV_BLOCK - 1) / NV_BLOCK, rowbytes = (nb * NV_BLOCK + 1) / 2;
    int tile = t->opts.nvfp4_2d ? 16 : 1;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t c = 0; c < C; c++) {
            uint8_t sc = t->scales[(r / tile) * nb + c / NV_BLOCK];   /* NaN code for a NaN block */
            y[r * C + c] = mplb_nvfp4_value(get_nibble(row, c), sc, t->global_scale);
        }
    }
}

static void q_int8(const float *x, mplb_qtensor *t) {
    for (int64_t r = 0; r < t->rows; r++) {
        const float *xr = x + r * t->cols;
        int bad = 0;
        float amax = amax_of(xr, t->cols, &bad);
        float s = bad ? NAN : mplb_amax_scale(amax, 127.0f);
        memcpy(t->scales + r * 4, &s, 4);
        for (int64_t c = 0; c < t->cols; c++) {
            double q = bad ? 0 : rint((double)xr[c] / (double)s);
            if (q > 127) q = 127;
            if (q < -127) q = -127;
            t->data[r * t->cols + c] = (uint8_t)(int8_t)q;
        }
    }
}

static void dq_int8(const mplb_qtensor *t, float *y) {
    for (int64_t r = 0; r < t->rows; r++) {
        float s;
        memcpy(&s, t->scales + r * 4, 4);
        for (int64_t c = 0; c < t->cols; c++)
            y[r * t->cols + c] = (float)(int8_t)t->data[r * t->cols + c] * s;
    }
}

static void q_int4(const float *x, mplb_qtensor *t) {
    int64_t g = mplb_quant_block(t->fmt), nb = (t->cols + g - 1) / g, rowbytes = (nb * g + 1) / 2;
    int asym = t->opts.int4_asym;
    for (int64_t r = 0; r < t->rows; r++) {
        uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t b = 0; b < nb; b++) {
            int64_t c0 = b * g, n = t->cols - c0 < g ? t->cols - c0 : g;
            const float *xb = x + r * t->cols + c0;
            int bad = 0;
            float mn = 0, mx = 0;   /* 0 is always representable */
            for (int64_t j = 0; j < n; j++) {
                if (!isfinite(xb[j])) { bad = 1; continue; }
                if (xb[j] < mn) mn = xb[j];
                if (xb[j] > mx) mx = xb[j];
            }
            float sf;
            if (asym) sf = (mx - mn) / 15.0f;
            else sf = (fabsf(mn) > mx ? fabsf(mn) : mx) / 7.0f;
            uint16_t sh = bad ? 0x7E00u : mplb_f32_to_fp16(sf);
            if (!bad && sh == 0x7C00u) sh = 0x7BFFu;  /* clamp to the fp16 max */
            float s = mplb_fp16_to_f32(sh);
            memcpy(t->scales + 2 * (r * nb + b), &sh, 2);
            int zp = 0;
            if (asym && s > 0 && !bad) {
                double z = rint(-(double)mn / (double)s);
                zp = z < 0 ? 0 : z > 15 ? 15 : (int)z;
            }
            if (asym) t->zeros[r * nb + b] = (uint8_t)zp;
            for (int64_t j = 0; j < g; j++) {
                int q = asym ? zp : 0;
                if (j < n && s > 0 && !bad) {
                    double v = rint((double)xb[j] / (double)s) + (asym ? zp : 0);
                    int lo = asym ? 0 : -7, hi = asym ? 15 : 7;
                    q = v < lo ? lo : v > hi ? hi : (int)v;
                }
                put_nibble(row, c0 + j, (uint8_t)(q & 0xF));
            }
        }
    }
}

static void dq_int4(const mplb_qtensor *t, float *y) {
    int64_t g = mplb_quant_block(t->fmt), nb = (t->cols + g - 1) / g, rowbytes = (nb * g + 1) / 2;
    int asym = t->opts.int4_asym;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t c = 0; c < t->cols; c++) {
            int64_t b = c / g;
            uint16_t sh;
            memcpy(&sh, t->scales + 2 * (r * nb + b), 2);
            float s = mplb_fp16_to_f32(sh);
            int q = get_nibble(row, c);
            if (asym) q -= t->zeros[r * nb + b];
            else if (q > 7) q -= 16;
            y[r * t->cols + c] = (float)q * s;
        }
    }
}

int mplb_quant_quantize_ref(const float *x, mplb_qtensor *t, mplb_err *err) {
    if (t->rows * t->cols > 0 && (!x || !t->data))
        return mplb_err_set(err, MPLB_EINVAL, "quant: NULL buffer");
    switch (t->fmt) {
    case MPLB_PREC_BF16: case MPLB_PREC_FP16: case MPLB_PREC_FP8_E4M3: case MPLB_PREC_FP8_E5M2:
    case MPLB_PREC_FP4_E2M1: q_cast(x, t); return 0;
    case MPLB_PREC_MXFP8: case MPLB_PREC_MXFP4: q_mx(x, t); return 0;
    case MPLB_PREC_NVFP4: q_nv(x, t); return 0;
    case MPLB_PREC_INT8: q_int8(x, t); return 0;
    case MPLB_PREC_INT4_G32: case MPLB_PREC_INT4_G128: q_int4(x, t); return 0;
    default: return mplb_err_set(err, MPLB_EINVAL, "quant: unknown precision %d", (int)t->fmt);
    }
}

int mplb_quant_dequantize_ref(const mplb_qtensor *t, float *y, mplb_err *err) {
    if (t->rows * t->cols > 0 && (!y || !t->data))
        return mplb_err_set(err, MPLB_EINVAL, "quant: NULL buffer");
    switch (t->fmt) {
    case MPLB_PREC_BF16: case MPLB_PREC_FP16: case MPLB_PREC_FP8_E4M3: case MPLB_PREC_FP8_E5M2:
    case MPLB_PREC_FP4_E2M1: dq_cast(t, y); return 0;
    case MPLB_PREC_MXFP8: case MPLB_PREC_MXFP4: dq_mx(t, y); return 0;
    case MPLB_PREC_NVFP4: dq_nv(t, y); return 0;
    case MPLB_PREC_INT8: dq_int8(t, y); return 0;
    case MPLB_PREC_INT4_G32: case MPLB_PREC_INT4_G128: dq_int4(t, y); return 0;
    default: return mplb_err_set(err, MPLB_EINVAL, "quant: unknown precision %d", (int)t->fmt);
    }
}

int mplb_quant_fake(const float *x, float *y, int64_t rows, int64_t cols, mplb_prec fmt,
                    const mplb_qopts *o, mplb_err *err) {
    mplb_qtensor t;
    int rc = mplb_qtensor_alloc(&t, fmt, o, rows, cols, err);
    if (rc < 0) return rc;
    rc = mplb_quant_quantize(x, &t, err);
    if (rc == 0) rc = mplb_quant_dequantize(&t, y, err);
    mplb_qtensor_free(&t);
    return rc;
}

void mplb_quant_stats(const float *x, const float *y, int64_t n, mplb_qstats *s) {
    double se = 0, sx = 0, mx = 0;
    s->nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        if (!isfinite(y[i])) { s->nonfinite++; continue; }
        double d = (double)y[i] - (double)x[i];
        se += d * d;
        sx += (double)x[i] * x[i];
        if (fabs(d) > mx) mx = fabs(d);
    }
    s->max_abs = mx;
    s->rms_rel = sx > 0 ? sqrt(se / sx) : (se > 0 ? INFINITY : 0);
    s->snr_db = se > 0 ? 10 * log10(sx / se) : INFINITY;
}
