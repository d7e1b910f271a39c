/* EP dispatch and combine: see include/mplb/dispatch.h. The layer is three
 * phases (pack, compute, unpack) around two all-to-alls, so one data path
 * serves the in-process and the MPI transports. */
#include "mplb/dispatch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A dispatched row: token id, k slots (expert or -1, gate), then the payload:
 * bf16 codes, or an fp8 per-token scale and e4m3 codes. */
static size_t row_bytes(int d, int k, mplb_prec p) {
    size_t payload = p == MPLB_PREC_FP8_E4M3 ? 4 + (size_t)d : 2 * (size_t)d;
    return 8 + (size_t)k * 8 + payload;
}

typedef struct ep_state {
    int R, rank, d, k;
    mplb_prec p;
    const mplb_placement *pl;
    const mplb_expert_w *experts;
    const mplb_ep_rank *me;
    uint8_t **send;      /* [R] parts of send_block */
    uint8_t *send_block;
    size_t *send_n;
    uint8_t **recv;      /* [R] (owned by the transport or the local exchange) */
    size_t *recv_n;
    mplb_ep_stats *st;
} ep_state;

static int dest_of(const mplb_placement *pl, int64_t t, int j, int e) {
    return pl->ranks[(size_t)e * pl->R + (int)((t + j) % pl->copies[e])];
}

/* Send parts are packed back to back in one block (send[0] is its start), so
 * a transport can hand the block to MPI without copying it. */
static void free_send(ep_state *s) {
    if (s->send) free(s->send_block);
    s->send_block = NULL;
    if (s->send) memset(s->send, 0, (size_t)s->R * sizeof *s->send);
}

static int alloc_send(ep_state *s, const size_t *bytes, mplb_err *err) {
    size_t total = 0;
    for (int r = 0; r < s->R; r++) total += bytes[r];
    s->send_block = malloc(total + 1);
    if (!s->send_block) return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    size_t off = 0;
    for (int r = 0; r < s->R; r++) { s->send[r] = s->send_block + off; off += bytes[r]; }
    return 0;
}

/* Phase 1: one row per (token, destination rank). */
static int ep_pack(ep_state *s, mplb_err *err) {
    int R = s->R, d = s->d, k = s->k;
    size_t rb = row_bytes(d, k, s->p);
    const mplb_ep_rank *me = s->me;
    double t0 = now_s();
    memset(s->send_n, 0, (size_t)R * sizeof *s->send_n);
    size_t *rows = calloc((size_t)R, sizeof *rows);
    if (!rows) return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    for (int64_t t = 0; t < me->tokens; t++) {
        int seen[64], ns = 0;
        for (int j = 0; j < k; j++) {
            int dst = dest_of(s->pl, t, j, me->ids[t * k + j]), q;
            for (q = 0; q < ns && seen[q] != dst; q++) {}
            if (q == ns) { seen[ns++] = dst; rows[dst]++; }
        }
    }
    for (int r = 0; r < R; r++) s->send_n[r] = rows[r] * rb;
    if (alloc_send(s, s->send_n, err) < 0) { free(rows); return err->code; }
    memset(rows, 0, (size_t)R * sizeof *rows);
    float *tmp = malloc((size_t)d * sizeof *tmp);
    mplb_qtensor q;
    mplb_qopts qo = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
    int rc = tmp ? mplb_qtensor_alloc(&q, s->p, &qo, 1, d, err) : mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    for (int64_t t = 0; t < me->tokens && rc == 0; t++) {
        /* round the row once, whatever its destinations */
        const float *xt = me->x + (size_t)t * d;
        if ((rc = mplb_quant_quantize(xt, &q, err)) < 0) break;
        int seen[64], ns = 0;
        for (int j = 0; j < k; j++) {
            int dst = dest_of(s->pl, t, j, me->ids[t * k + j]), qq;
            for (qq = 0; qq < ns && seen[qq] != dst; qq++) {}
            if (qq < ns) continue;
            seen[ns++] = dst;
            uint8_t *row = s->send[dst] + rows[dst]++ * rb;
            int32_t tok = (int32_t)t, nsl = 0;
            memcpy(row, &tok, 4);
            uint8_t *slots = row + 8;
            for (int jj = 0; jj < k; jj++) {
                int32_t e = me->ids[t * k + jj];
                float g = me->gates[t * k + jj];
                if (dest_of(s->pl, t, jj, e) != dst) e = -1;
                else nsl++;
                memcpy(slots + 8 * jj, &e, 4);
                memcpy(slots + 8 * jj + 4, &g, 4);
            }
            memcpy(row + 4, &nsl, 4);
            uint8_t *pay = row + 8 + (size_t)k * 8;
            if (s->p == MPLB_PREC_FP8_E4M3) {
                memcpy(pay, &q.global_scale, 4);
                memcpy(pay + 4, q.data, (size_t)d);
            } else memcpy(pay, q.data, 2 * (size_t)d);
        }
    }
    if (tmp) mplb_qtensor_free(&q);
    free(tmp);
    for (int r = 0; r < R; r++) {
        s->send_n[r] = rows[r] * rb;
        if (r != s->rank) { s->st->bytes_sent += s->send_n[r]; s->st->rows_sent += rows[r]; }
    }
    free(rows);
    s->st->t_pack_s += now_s() - t0;
    return rc;
}

/* Phase 2: run local experts on received rows; send back gate-weighted
 * partial sums, one (token id, d floats) record per received row. */
static int ep_compute(ep_state *s, mplb_err *err) {
    int R = s->R, d = s->d, k = s->k, E = s->pl->E;
    size_t rb = row_bytes(d, k, s->p), out_rb = 4 + (size_t)d * 4;
    double t0 = now_s();
    size_t total = 0;
    for (int r = 0; r < R; r++) total += s->recv_n[r] / rb;
    /* decode every received row once */
    float *xs = malloc((total ? total : 1) * (size_t)d * sizeof *xs);
    float *part = calloc((total ? total : 1) * (size_t)d, sizeof *part);
    int64_t *idx = malloc((total ? total : 1) * (size_t)k * sizeof *idx);
    float *xe = malloc((total ? total : 1) * (size_t)d * sizeof *xe), *ye = malloc((total ? total : 1) * (size_t)d * sizeof *ye);
    if (!xs || !part || !idx || !xe || !ye) {
        free(xs); free(part); free(idx); free(xe); free(ye);
        return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    }
    const uint8_t **rowp = malloc((total ? total : 1) * sizeof *rowp);
    size_t n = 0;
    for (int r = 0; r < R; r++)
        for (size_t i = 0; i < s->recv_n[r] / rb; i++, n++) {
            const uint8_t *row = s->recv[r] + i * rb;
            rowp[n] = row;
            const uint8_t *pay = row + 8 + (size_t)k * 8;
            float *dst = xs + n * d;
            if (s->p == MPLB_PREC_FP8_E4M3) {
                float sc;
                memcpy(&sc, pay, 4);
                for (int c = 0; c < d; c++) { float v = mplb_e4m3_to_f32(pay[4 + c]); dst[c] = sc == 1.0f ? v : v * sc; }
            } else
                for (int c = 0; c < d; c++) { uint16_t h; memcpy(&h, pay + 2 * c, 2); dst[c] = mplb_bf16_to_f32(h); }
        }
    /* rows per local expert in one pass: counting sort of (row, slot) by expert */
    int64_t *start = calloc((size_t)E + 1, sizeof *start);
    int rc = start ? 0 : mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    for (size_t i = 0; i < n && rc == 0; i++)
        for (int j = 0; j < k; j++) {
            int32_t ej;
            memcpy(&ej, rowp[i] + 8 + 8 * j, 4);
            if (ej >= 0 && ej < E) start[ej + 1]++;
        }
    for (int e = 0; e < E && rc == 0; e++) start[e + 1] += start[e];
    int64_t *fill = rc == 0 ? calloc((size_t)E, sizeof *fill) : NULL;
    if (rc == 0 && !fill) rc = mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    for (size_t i = 0; i < n && rc == 0; i++)
        for (int j = 0; j < k; j++) {
            int32_t ej;
            memcpy(&ej, rowp[i] + 8 + 8 * j, 4);
            if (ej >= 0 && ej < E) idx[start[ej] + fill[ej]++] = (int64_t)i * k + j;
        }
    mplb_ffn_ws ws = {0};
    for (int e = 0; e < E && rc == 0; e++) {
        size_t m = (size_t)(start[e + 1] - start[e]);
        if (!m || !s->pl->has[(size_t)e * R + s->rank]) continue;
        const int64_t *ix = idx + start[e];
        for (size_t q = 0; q < m; q++) memcpy(xe + q * d, xs + (size_t)(ix[q] / k) * d, (size_t)d * 4);
        rc = mplb_ffn_forward(&s->experts[e], xe, (int)m, MPLB_PREC_BF16, ye, &ws, err);
        for (size_t q = 0; q < m && rc == 0; q++) {
            size_t i = (size_t)(ix[q] / k);
            int j = (int)(ix[q] % k);
            float g;
            memcpy(&g, rowp[i] + 8 + 8 * j + 4, 4);
            for (int c = 0; c < d; c++) part[i * d + c] += g * ye[q * d + c];
        }
    }
    free(start);
    free(fill);
    mplb_ffn_ws_free(&ws);
    s->st->t_ffn_s += now_s() - t0;
    /* partial sums go back to the row's source, in the order it was received */
    free_send(s);
    for (int r = 0; r < R; r++) s->send_n[r] = s->recv_n[r] / rb * out_rb;
    if (rc == 0) rc = alloc_send(s, s->send_n, err);
    n = 0;
    for (int r = 0; r < R && rc == 0; r++) {
        size_t rows = s->recv_n[r] / rb;
        for (size_t i = 0; i < rows; i++, n++) {
            memcpy(s->send[r] + i * out_rb, rowp[n], 4);
            memcpy(s->send[r] + i * out_rb + 4, part + n * d, (size_t)d * 4);
        }
    }
    free(xs); free(part); free(idx); free(xe); free(ye); free(rowp);
    return rc;
}

/* Phase 3: add the partial sums into y, destination ranks in order. */
static void ep_unpack(ep_state *s) {
    int d = s->d;
    size_t out_rb = 4 + (size_t)d * 4;
    double t0 = now_s();
    memset(s->me->y, 0, (size_t)s->me->tokens * d * sizeof(float));
    for (int r = 0; r < s->R; r++)
        for (size_t i = 0; i < s->recv_n[r] / out_rb; i++) {
            const uint8_t *rec = s->recv[r] + i * out_rb;
            int32_t t;
            memcpy(&t, rec, 4);
            float *y = s->me->y + (size_t)t * d;
            for (int c = 0; c < d; c++) {
                float v;
                memcpy(&v, rec + 4 + 4 * (size_t)c, 4);
                y[c] += v;
            }
        }
    s->st->t_combine_s += now_s() - t0;
}

static int state_init(ep_state *s, int R, int rank, const mplb_placement *pl, int d, int k, const mplb_expert_w *ex,
                      mplb_prec p, const mplb_ep_rank *me, mplb_ep_stats *st, mplb_err *err) {
    memset(s, 0, sizeof *s);
    if (p != MPLB_PREC_BF16 && p != MPLB_PREC_FP8_E4M3)
        return mplb_err_set(err, MPLB_EINVAL, "dispatch: activations travel as bf16 or fp8_e4m3, not %s", mplb_prec_name(p));
    if (k < 1 || k > 64) return mplb_err_set(err, MPLB_EINVAL, "dispatch: top_k %d", k);
    s->R = R; s->rank = rank; s->pl = pl; s->d = d; s->k = k; s->experts = ex; s->p = p; s->me = me; s->st = st;
    s->send = calloc((size_t)R, sizeof *s->send);
    s->send_n = calloc((size_t)R, sizeof *s->send_n);
    s->recv_n = calloc((size_t)R, sizeof *s->recv_n);
    if (!s->send || !s->send_n || !s->recv_n) return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    return 0;
}

static void state_free(ep_state *s) {
    free_send(s);
    free(s->send); free(s->send_n); free(s->recv_n);
}

int mplb_ep_layer(const mplb_ep_transport *tp, const mplb_placement *pl, int d, int k,
                  const mplb_expert_w *experts, mplb_prec act_prec, const mplb_ep_rank *me,
                  mplb_ep_stats *st, mplb_err *err) {
    ep_state s;
    int rc = state_init(&s, tp->size, tp->rank, pl, d, k, experts, act_prec, me, st, err);
    uint8_t **recv = calloc((size_t)tp->size, sizeof *recv);
    if (rc == 0 && !recv) rc = mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    s.recv = recv;
    if (rc == 0) rc = ep_pack(&s, err);
    double t0 = now_s();
    if (rc == 0) rc = tp->alltoallv(tp->ctx, s.send, s.send_n, recv, s.recv_n, err);
    double x1 = now_s() - t0;
    st->t_alltoall_s += x1;
    st->t_dispatch_xchg_s += x1;
    if (rc == 0 && me->ready) {
        t0 = now_s();
        rc = me->ready(me->ready_arg);
        st->t_ready_s += now_s() - t0;
        if (rc) rc = mplb_err_set(err, MPLB_EIO, "dispatch: the experts' weights were not ready");
    }
    if (rc == 0) rc = ep_compute(&s, err);
    if (recv) { free(recv[0]); memset(recv, 0, (size_t)tp->size * sizeof *recv); }
    t0 = now_s();
    if (rc == 0) rc = tp->alltoallv(tp->ctx, s.send, s.send_n, recv, s.recv_n, err);
    st->t_alltoall_s += now_s() - t0;
    if (rc == 0) ep_unpack(&s);
    if (recv) free(recv[0]);
    free(recv);
    state_free(&s);
    return rc;
}

int mplb_ep_layer_local(int R, const mplb_placement *pl, int d, int k, const mplb_expert_w *experts,
                        mplb_prec act_prec, const mplb_ep_rank *ranks, mplb_ep_stats *st, mplb_err *err) {
    ep_state *s = calloc((size_t)R, sizeof *s);
    if (!s) return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory");
    int rc = 0;
    for (int r = 0; r < R && rc == 0; r++) rc = state_init(&s[r], R, r, pl, d, k, experts, act_prec, &ranks[r], st, err);
    for (int r = 0; r < R && rc == 0; r++) s[r].recv = calloc((size_t)R, sizeof(uint8_t *));
    /* the exchange: rank r receives what every s sent to r (pointers, then copies
     * the MPI transport would make) */
    for (int phase = 0; phase < 2 && rc == 0; phase++) {
        for (int r = 0; r < R && rc == 0; r++) rc = phase == 0 ? ep_pack(&s[r], err) : ep_compute(&s[r], err);
        if (rc) break;
        if (phase == 1)   /* received dispatch rows are consumed by compute */
            for (int r = 0; r < R; r++)
                for (int q = 0; q < R; q++) { free(s[r].recv[q]); s[r].recv[q] = NULL; }
        double t0 = now_s();
        for (int r = 0; r < R && rc == 0; r++)
            for (int src = 0; src < R; src++) {
                size_t nb = s[src].send_n[r];
                s[r].recv[src] = malloc(nb + 1);
                if (!s[r].recv[src]) { rc = mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory"); break; }
                memcpy(s[r].recv[src], s[src].send[r], nb);
                s[r].recv_n[src] = nb;
            }
        st->t_alltoall_s += now_s() - t0;
    }
    for (int r = 0; r < R && rc == 0; r++) ep_unpack(&s[r]);
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < R && s[r].recv; q++) free(s[r].recv[q]);
        free(s[r].recv);
        state_free(&s[r]);
    }
    free(s);
    return rc;
}

int mplb_moe_reference(int64_t tokens, int d, int k, const float *x, const int32_t *ids, const float *gates,
                       const mplb_expert_w *experts, mplb_prec act_prec, float *y, mplb_err *err) {
    float *xq = malloc((size_t)d * sizeof *xq), *out = malloc((size_t)d * sizeof *out);
    if (!xq || !out) { free(xq); free(out); return mplb_err_set(err, MPLB_ENOMEM, "reference: out of memory"); }
    mplb_ffn_ws ws = {0};
    mplb_qopts qo = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
    int rc = 0;
    for (int64_t t = 0; t < tokens && rc == 0; t++) {
        if ((rc = mplb_quant_fake(x + (size_t)t * d, xq, 1, d, act_prec, &qo, err)) < 0) break;
        float *yt = y + (size_t)t * d;
        memset(yt, 0, (size_t)d * sizeof *yt);
        for (int j = 0; j < k && rc == 0; j++) {
            rc = mplb_ffn_forward(&experts[ids[t * k + j]], xq, 1, MPLB_PREC_BF16, out, &ws, err);
            for (int c = 0; c < d && rc == 0; c++) yt[c] += gates[t * k + j] * out[c];
        }
    }
    mplb_ffn_ws_free(&ws);
    free(xq);
    free(out);
    return rc;
}
