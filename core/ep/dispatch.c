/* EP dispatch and combine: see include/mplb/dispatch.h. A layer is a list of
 * phases, each of which consumes what the last exchange delivered and packs
 * what the next one sends; the in-process and the MPI transports run the
 * same phases, so their results are bit-identical.
 *
 *   one hop:  pack(rank) | compute | unpack
 *   two hops: pack(node) | forward | compute | reduce | unpack
 *
 * ("|" is an all-to-all). */
#include "mplb/dispatch.h"
#include "quant_elem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A dispatched row: an id (the sender's token index, or the proxy's row
 * index once forwarded), its number of live slots, k slots of SLOT bytes
 * (expert or -1, the rank that computes it, gate), then the payload: bf16
 * codes, or (fp8, DeepEP's layout) one float scale per GROUP channels, then
 * the e4m3 codes. A combine record is the row's id and d float32 partial
 * sums. */
enum { HEAD = 8, SLOT = 12, GROUP = 128 };

static size_t payload_bytes(int d, mplb_prec p) {
    return p == MPLB_PREC_FP8_E4M3 ? 4 * (size_t)((d + GROUP - 1) / GROUP) + (size_t)d : 2 * (size_t)d;
}

static size_t row_bytes(int d, int k, mplb_prec p) {
    return HEAD + (size_t)k * SLOT + payload_bytes(d, p);
}

/* Rounds activation rows into payloads: bf16 as one 1 x d tensor, fp8 as
 * 1 x GROUP tensors with a tensor scale each (amax / 448), the last group
 * possibly shorter. */
typedef struct row_codec {
    int d;
    mplb_prec p;
    mplb_qtensor q[2];   /* a full group (or the bf16 row), the short last group */
    int nq;
} row_codec;

static int codec_init(row_codec *c, int d, mplb_prec p, mplb_err *err) {
    memset(c, 0, sizeof *c);
    c->d = d;
    c->p = p;
    mplb_qopts qo = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
    int fp8 = p == MPLB_PREC_FP8_E4M3, lens[2] = {fp8 ? (d < GROUP ? d : GROUP) : d, fp8 && d > GROUP ? d % GROUP : 0};
    for (int i = 0; i < 2; i++) {
        if (!lens[i]) continue;
        if (mplb_qtensor_alloc(&c->q[i], p, &qo, 1, lens[i], err) < 0) return err->code;
        c->nq = i + 1;
    }
    return 0;
}

static void codec_free(row_codec *c) {
    for (int i = 0; i < c->nq; i++) mplb_qtensor_free(&c->q[i]);
}

static int codec_encode(row_codec *c, const float *x, uint8_t *pay, mplb_err *err) {
    int d = c->d;
    if (c->p != MPLB_PREC_FP8_E4M3) {
        if (mplb_quant_quantize(x, &c->q[0], err) < 0) return err->code;
        memcpy(pay, c->q[0].data, 2 * (size_t)d);
        return 0;
    }
    int groups = (d + GROUP - 1) / GROUP;
    for (int g = 0; g < groups; g++) {
        mplb_qtensor *q = d - g * GROUP >= GROUP ? &c->q[0] : &c->q[c->nq - 1];
        if (mplb_quant_quantize(x + (size_t)g * GROUP, q, err) < 0) return err->code;
        memcpy(pay + 4 * (size_t)g, &q->global_scale, 4);
        memcpy(pay + 4 * (size_t)groups + (size_t)g * GROUP, q->data, (size_t)q->cols);
    }
    return 0;
}

static void decode_payload(const uint8_t *pay, int d, mplb_prec p, float *x) {
    if (p != MPLB_PREC_FP8_E4M3) {
        for (int c = 0; c < d; c++) { uint16_t h; memcpy(&h, pay + 2 * c, 2); x[c] = mplb_bf16_to_f32(h); }
        return;
    }
    int groups = (d + GROUP - 1) / GROUP;
    for (int g = 0; g < groups; g++) {
        float sc;
        memcpy(&sc, pay + 4 * (size_t)g, 4);
        const uint8_t *codes = pay + 4 * (size_t)groups;
        for (int c = g * GROUP; c < d && c < (g + 1) * GROUP; c++) {
            float v = mplb_e4m3_to_f32(codes[c]);
            x[c] = sc == 1.0f ? v : v * sc;
        }
    }
}

static size_t rec_bytes(int d) { return 4 + (size_t)d * 4; }

typedef struct ep_state {
    int R, rank, d, k;
    int gpn, two_hop;    /* ranks per node (R: one node); dedup per node */
    mplb_prec p;
    const mplb_placement *pl;
    const mplb_expert_w *experts;
    const mplb_ep_rank *me;
    uint8_t **send;      /* [R] parts of send_block, back to back */
    uint8_t *send_block;
    size_t *send_n;
    uint8_t **recv;      /* [R] parts of one block at recv[0], owned here */
    size_t *recv_n;
    uint8_t **held;      /* two hops: the rows this rank proxied, kept for the reduce */
    size_t *held_n;
    int borrowed;        /* local: recv and held point into the senders' blocks (lent) */
    uint8_t *lent[8];    /* local: this rank's sent blocks, read in place by the others until the layer ends */
    int n_lent;
    mplb_ep_stats *st;
} ep_state;

typedef int (*ep_phase)(ep_state *s, mplb_err *err);

static int oom(mplb_err *err) { return mplb_err_set(err, MPLB_ENOMEM, "dispatch: out of memory"); }

int mplb_ep_proxy(int R, int gpn, int s, int n) {
    int first = n * gpn, size = R - first < gpn ? R - first : gpn;
    return first + s % gpn % size;
}

static void drop_recv(ep_state *s) {
    if (!s->borrowed) free(s->recv[0]);
    memset(s->recv, 0, (size_t)s->R * sizeof *s->recv);
    memset(s->recv_n, 0, (size_t)s->R * sizeof *s->recv_n);
}

static void free_send(ep_state *s) {
    free(s->send_block);
    s->send_block = NULL;
    memset(s->send, 0, (size_t)s->R * sizeof *s->send);
}

/* Sizes first, then one block, so a transport can send it in place. */
static int alloc_send(ep_state *s, mplb_err *err) {
    size_t total = 0;
    for (int r = 0; r < s->R; r++) total += s->send_n[r];
    free_send(s);
    if (!(s->send_block = malloc(total + 1))) return oom(err);
    size_t off = 0;
    for (int r = 0; r < s->R; r++) { s->send[r] = s->send_block + off; off += s->send_n[r]; }
    return 0;
}

static void count_sent(ep_state *s, int dst, size_t rows, size_t bytes) {
    if (dst == s->rank) return;
    mplb_ep_stats *st = s->st;
    st->rows_sent += rows;
    st->bytes_sent += bytes;
    if (dst / s->gpn != s->rank / s->gpn) { st->rows_inter += rows; st->bytes_inter += bytes; }
    else { st->rows_intra += rows; st->bytes_intra += bytes; }
}

/* The ranks that compute token t's slots (the caller's per-slot ranks, or
 * the home of a single-copy expert) and where this rank sends each: that rank, or on two hops its node's
 * proxy. */
static int token_route(const ep_state *s, int64_t t, int32_t *rank, int *hop, mplb_err *err) {
    const mplb_ep_rank *me = s->me;
    for (int j = 0; j < s->k; j++) {
        int e = me->ids[t * s->k + j];
        if (e < 0 || e >= s->pl->E) return mplb_err_set(err, MPLB_EINVAL, "dispatch: token %lld slot %d: expert %d of %d", (long long)t, j, e, s->pl->E);
        if (!me->dests && s->pl->copies[e] > 1)
            return mplb_err_set(err, MPLB_EINVAL, "dispatch: expert %d has %d copies: pass per-slot ranks (mplb_split_dests)",
                                e, s->pl->copies[e]);
        int r = me->dests ? me->dests[t * s->k + j] : s->pl->home[e];
        if (r < 0 || r >= s->R) return mplb_err_set(err, MPLB_EINVAL, "dispatch: token %lld slot %d: rank %d of %d", (long long)t, j, r, s->R);
        rank[j] = r;
        hop[j] = s->two_hop ? mplb_ep_proxy(s->R, s->gpn, s->rank, r / s->gpn) : r;
    }
    return 0;
}

/* Copy of a row for one destination: slots that go elsewhere become -1. */
static void put_row(uint8_t *row, int32_t id, const int32_t *ids, const int32_t *ranks, const float *gates, const int *hop, int dst,
                    int k, const uint8_t *payload, size_t payload_n) {
    int32_t live = 0;
    memcpy(row, &id, 4);
    for (int j = 0; j < k; j++) {
        int32_t e = hop[j] == dst ? ids[j] : -1;
        uint8_t *sl = row + HEAD + (size_t)SLOT * j;
        live += e >= 0;
        memcpy(sl, &e, 4);
        memcpy(sl + 4, &ranks[j], 4);
        memcpy(sl + 8, &gates[j], 4);
    }
    memcpy(row + 4, &live, 4);
    memcpy(row + HEAD + (size_t)k * SLOT, payload, payload_n);
}

/* Distinct destinations of a row, in first-slot order. */
static int distinct(const int *slot_dst, int k, int *out) {
    int n = 0;
    for (int j = 0; j < k; j++) {
        int q;
        if (slot_dst[j] < 0) continue;
        for (q = 0; q < n && out[q] != slot_dst[j]; q++) {}
        if (q == n) out[n++] = slot_dst[j];
    }
    return n;
}

/* Phase: one row per (token, destination rank or proxy); the row is rounded
 * once, whatever its destinations. */
static int ep_pack(ep_state *s, mplb_err *err) {
    int R = s->R, d = s->d, k = s->k;
    size_t rb = row_bytes(d, k, s->p), pay_n = rb - HEAD - (size_t)k * SLOT;
    const mplb_ep_rank *me = s->me;
    double t0 = now_s();
    int sd[64], dst[64];
    int32_t rk[64];
    memset(s->send_n, 0, (size_t)R * sizeof *s->send_n);
    for (int64_t t = 0; t < me->tokens; t++) {
        if (token_route(s, t, rk, sd, err) < 0) return err->code;
        for (int q = distinct(sd, k, dst) - 1; q >= 0; q--) s->send_n[dst[q]] += rb;
    }
    if (alloc_send(s, err) < 0) return err->code;
    size_t *fill = calloc((size_t)R, sizeof *fill);
    uint8_t *pay = malloc(pay_n);
    row_codec codec;
    int rc = fill && pay ? codec_init(&codec, d, s->p, err) : oom(err);
    for (int64_t t = 0; t < me->tokens && rc == 0; t++) {
        if ((rc = codec_encode(&codec, me->x + (size_t)t * d, pay, err)) < 0) break;
        token_route(s, t, rk, sd, err);   /* checked in the first pass */
        int nd = distinct(sd, k, dst);
        for (int i = 0; i < nd; i++) {
            put_row(s->send[dst[i]] + fill[dst[i]], (int32_t)t, me->ids + t * k, rk, me->gates + t * k, sd, dst[i], k, pay, pay_n);
            fill[dst[i]] += rb;
        }
    }
    if (fill && pay) codec_free(&codec);
    for (int r = 0; r < R && rc == 0; r++) count_sent(s, r, s->send_n[r] / rb, s->send_n[r]);
    free(fill);
    free(pay);
    s->st->t_pack_s += now_s() - t0;
    return rc;
}

/* A row's slots: expert ids, their ranks, gates, and the rank of this node
 * each live slot goes to (-1: none). */
static void read_slots(const ep_state *s, const uint8_t *row, int32_t *ids, int32_t *ranks, float *gates, int *slot_dst) {
    for (int j = 0; j < s->k; j++) {
        const uint8_t *sl = row + HEAD + (size_t)SLOT * j;
        memcpy(&ids[j], sl, 4);
        memcpy(&ranks[j], sl + 4, 4);
        memcpy(&gates[j], sl + 8, 4);
        int here = ranks[j] >= 0 && ranks[j] < s->R && ranks[j] / s->gpn == s->rank / s->gpn;
        slot_dst[j] = ids[j] >= 0 && ids[j] < s->pl->E && here ? ranks[j] : -1;
    }
}

/* Phase (two hops, at the proxy): keep the rows that crossed to this node
 * and forward each to the ranks here that hold its experts, its id now the
 * row's index among the kept ones, for the reduce. */
static int ep_forward(ep_state *s, mplb_err *err) {
    int R = s->R, k = s->k;
    size_t rb = row_bytes(s->d, k, s->p), off = HEAD + (size_t)k * SLOT;
    double t0 = now_s();
    uint8_t **tp = s->held;
    s->held = s->recv; s->recv = tp;
    size_t *tn = s->held_n;
    s->held_n = s->recv_n; s->recv_n = tn;
    int32_t ids[64], rk[64];
    float gates[64];
    int sd[64], dst[64];
    memset(s->send_n, 0, (size_t)R * sizeof *s->send_n);
    for (int src = 0; src < R; src++)
        for (size_t i = 0; i < s->held_n[src] / rb; i++) {
            read_slots(s, s->held[src] + i * rb, ids, rk, gates, sd);
            for (int q = distinct(sd, k, dst) - 1; q >= 0; q--) s->send_n[dst[q]] += rb;
        }
    if (alloc_send(s, err) < 0) return err->code;
    size_t *fill = calloc((size_t)R, sizeof *fill);
    if (!fill) return oom(err);
    int32_t n = 0;
    for (int src = 0; src < R; src++)
        for (size_t i = 0; i < s->held_n[src] / rb; i++, n++) {
            const uint8_t *row = s->held[src] + i * rb;
            read_slots(s, row, ids, rk, gates, sd);
            int nd = distinct(sd, k, dst);
            for (int q = 0; q < nd; q++) {
                put_row(s->send[dst[q]] + fill[dst[q]], n, ids, rk, gates, sd, dst[q], k, row + off, rb - off);
                fill[dst[q]] += rb;
            }
        }
    free(fill);
    for (int r = 0; r < R; r++) count_sent(s, r, s->send_n[r] / rb, s->send_n[r]);
    s->st->t_pack_s += now_s() - t0;
    return 0;
}

/* Phase: run local experts on the received rows; send back one record per
 * row (its id, the gate-weighted sum of its local experts' outputs) in the
 * order the rows came. */
static int ep_compute(ep_state *s, mplb_err *err) {
    int R = s->R, d = s->d, k = s->k, E = s->pl->E;
    size_t rb = row_bytes(d, k, s->p), out_rb = rec_bytes(d);
    if (s->me->ready) {
        double t0 = now_s();
        int bad = s->me->ready(s->me->ready_arg);
        s->st->t_ready_s += now_s() - t0;
        if (bad) return mplb_err_set(err, MPLB_EIO, "dispatch: the experts' weights were not ready");
    }
    double t0 = now_s();
    size_t total = 0;
    for (int r = 0; r < R; r++) total += s->recv_n[r] / rb;
    size_t cap = total ? total : 1;
    float *xs = malloc(cap * (size_t)d * sizeof *xs), *part = calloc(cap * (size_t)d, sizeof *part);
    float *xe = malloc(cap * (size_t)d * sizeof *xe), *ye = malloc(cap * (size_t)d * sizeof *ye);
    int64_t *idx = malloc(cap * (size_t)k * sizeof *idx), *start = calloc((size_t)E + 1, sizeof *start);
    int64_t *fill = calloc((size_t)E, sizeof *fill);
    const uint8_t **rowp = malloc(cap * sizeof *rowp);
    int rc = xs && part && xe && ye && idx && start && fill && rowp ? 0 : oom(err);
    /* decode every received row once */
    size_t n = 0;
    for (int r = 0; r < R && rc == 0; r++)
        for (size_t i = 0; i < s->recv_n[r] / rb; i++, n++) {
            const uint8_t *row = s->recv[r] + i * rb;
            rowp[n] = row;
            decode_payload(row + HEAD + (size_t)k * SLOT, d, s->p, xs + n * d);
        }
    /* (row, slot) pairs grouped by expert: a counting sort */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                int32_t e;
                memcpy(&e, rowp[i] + HEAD + (size_t)SLOT * j, 4);
                if (e < 0 || e >= E) continue;
                if (pass == 0) start[e + 1]++;
                else idx[start[e] + fill[e]++] = (int64_t)i * k + j;
            }
        for (int e = 0; e < E && pass == 0; e++) start[e + 1] += start[e];
    }
    mplb_ffn_ws ws = {0};
    for (int e = 0; e < E && rc == 0; e++) {
        size_t m = (size_t)(start[e + 1] - start[e]);
        if (!m) continue;
        if (s->experts[e].d != d) {
            rc = mplb_err_set(err, MPLB_EINVAL, "dispatch: rank %d got tokens for expert %d but not its weights", s->rank, e);
            break;
        }
        const int64_t *ix = idx + start[e];
        for (size_t q = 0; q < m; q++) memcpy(xe + q * d, xs + (size_t)(ix[q] / k) * d, (size_t)d * 4);
        rc = mplb_ffn_forward(&s->experts[e], xe, (int)m, MPLB_PREC_BF16, ye, &ws, err);
        for (size_t q = 0; q < m && rc == 0; q++) {
            size_t i = (size_t)(ix[q] / k);
            float g;
            memcpy(&g, rowp[i] + HEAD + (size_t)SLOT * (ix[q] % k) + 8, 4);
            for (int c = 0; c < d; c++) part[i * d + c] += g * ye[q * d + c];
        }
    }
    mplb_ffn_ws_free(&ws);
    s->st->t_ffn_s += now_s() - t0;
    for (int r = 0; r < R; r++) s->send_n[r] = s->recv_n[r] / rb * out_rb;
    if (rc == 0) rc = alloc_send(s, err);
    n = 0;
    for (int r = 0; r < R && rc == 0; r++)
        for (size_t i = 0; i < s->recv_n[r] / rb; i++, n++) {
            memcpy(s->send[r] + i * out_rb, rowp[n], 4);
            memcpy(s->send[r] + i * out_rb + 4, part + n * d, (size_t)d * 4);
        }
    free(xs); free(part); free(xe); free(ye); free(idx); free(start); free(fill); free(rowp);
    drop_recv(s);
    return rc;
}

/* a[0..d) += the d floats at p (unaligned bytes), eight at a time as one
 * vector (GCC/Clang vector extension), compiled for AVX-512, AVX2 and the
 * baseline and picked at load time where the toolchain can (x86 ifunc) */
typedef float v8f __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MPLB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MPLB_CLONES
#endif

MPLB_CLONES static void add_row(float *a, const uint8_t *p, int d) {
    int c = 0;
    for (; c + 8 <= d; c += 8) {
        v8f x, y;
        memcpy(&x, p + 4 * (size_t)c, sizeof x);
        memcpy(&y, a + c, sizeof y);
        y += x;
        memcpy(a + c, &y, sizeof y);
    }
    for (; c < d; c++) {
        float v;
        memcpy(&v, p + 4 * (size_t)c, 4);
        a[c] += v;
    }
}

/* Sum the received records into acc[id] (n_ids rows of d), ranks in order.
 * With seen (n_ids flags, zeroed), acc need not be cleared: a row's first
 * record is copied (0 + v is v but for the sign of a zero) and rows without
 * one are zeroed at the end, which saves a pass over acc. */
static int add_records(const ep_state *s, float *acc, int64_t n_ids, uint8_t *seen, mplb_err *err) {
    int d = s->d;
    size_t out_rb = rec_bytes(d);
    for (int r = 0; r < s->R; r++)
        for (size_t i = 0; i < s->recv_n[r] / out_rb; i++) {
            const uint8_t *rec = s->recv[r] + i * out_rb;
            int32_t id;
            memcpy(&id, rec, 4);
            if (id < 0 || id >= n_ids) return mplb_err_set(err, MPLB_EIO, "dispatch: rank %d returned row %d of %lld", r, id, (long long)n_ids);
            if (seen && !seen[id]) {
                memcpy(acc + (size_t)id * d, rec + 4, (size_t)d * 4);
                seen[id] = 1;
            } else {
                add_row(acc + (size_t)id * d, rec + 4, d);
            }
        }
    for (int64_t t = 0; seen && t < n_ids; t++)
        if (!seen[t]) memset(acc + (size_t)t * d, 0, (size_t)d * 4);
    return 0;
}

/* Phase (two hops, at the proxy): sum the partials of each kept row and
 * send one record per row back across the network to its sender. */
static int ep_reduce(ep_state *s, mplb_err *err) {
    int R = s->R, d = s->d;
    size_t rb = row_bytes(d, s->k, s->p), out_rb = rec_bytes(d), n = 0;
    double t0 = now_s();
    for (int r = 0; r < R; r++) n += s->held_n[r] / rb;
    float *acc = calloc((n ? n : 1) * (size_t)d, sizeof *acc);
    int rc = acc ? add_records(s, acc, (int64_t)n, NULL, err) : oom(err);
    for (int r = 0; r < R; r++) s->send_n[r] = s->held_n[r] / rb * out_rb;
    if (rc == 0) rc = alloc_send(s, err);
    n = 0;
    for (int r = 0; r < R && rc == 0; r++)
        for (size_t i = 0; i < s->held_n[r] / rb; i++, n++) {
            memcpy(s->send[r] + i * out_rb, s->held[r] + i * rb, 4);   /* the sender's token index */
            memcpy(s->send[r] + i * out_rb + 4, acc + n * d, (size_t)d * 4);
        }
    free(acc);
    drop_recv(s);
    if (!s->borrowed) free(s->held[0]);
    memset(s->held, 0, (size_t)R * sizeof *s->held);
    s->st->t_combine_s += now_s() - t0;
    return rc;
}

/* Phase: y = the records that came home, summed in rank order. */
static int ep_unpack(ep_state *s, mplb_err *err) {
    double t0 = now_s();
    uint8_t *seen = calloc(s->me->tokens > 0 ? (size_t)s->me->tokens : 1, 1);
    int rc = seen ? add_records(s, s->me->y, s->me->tokens, seen, err) : oom(err);
    free(seen);
    drop_recv(s);
    s->st->t_combine_s += now_s() - t0;
    return rc;
}

static const ep_phase one_hop[] = {ep_pack, ep_compute, ep_unpack};
static const ep_phase two_hops[] = {ep_pack, ep_forward, ep_compute, ep_reduce, ep_unpack};

/* The phases of this layer and how many exchanges belong to the dispatch. */
static const ep_phase *phases(const ep_state *s, int *n, int *n_dispatch) {
    *n = s->two_hop ? 5 : 3;
    *n_dispatch = s->two_hop ? 2 : 1;
    return s->two_hop ? two_hops : one_hop;
}

static int state_init(ep_state *s, int R, const mplb_ep_topo *topo, int rank, const mplb_placement *pl, int d, int k, const mplb_expert_w *ex,
                      mplb_prec p, const mplb_ep_rank *me, mplb_ep_stats *st, mplb_err *err) {
    memset(s, 0, sizeof *s);
    if (p != MPLB_PREC_BF16 && p != MPLB_PREC_FP8_E4M3)
        return mplb_err_set(err, MPLB_EINVAL, "dispatch: activations travel as bf16 or fp8_e4m3, not %s", mplb_prec_name(p));
    if (k < 1 || k > 64) return mplb_err_set(err, MPLB_EINVAL, "dispatch: top_k %d", k);
    if (pl->R != R) return mplb_err_set(err, MPLB_EINVAL, "dispatch: placement for %d ranks, transport has %d", pl->R, R);
    s->R = R; s->rank = rank; s->pl = pl; s->d = d; s->k = k; s->experts = ex; s->p = p; s->me = me; s->st = st;
    int gpn = topo ? topo->gpus_per_node : 0;
    s->gpn = gpn <= 0 || gpn > R ? R : gpn;
    s->two_hop = s->gpn > 1 && s->gpn < R && !(topo && topo->direct);
    s->send = calloc((size_t)R, sizeof *s->send);
    s->send_n = calloc((size_t)R, sizeof *s->send_n);
    s->recv = calloc((size_t)R, sizeof *s->recv);
    s->recv_n = calloc((size_t)R, sizeof *s->recv_n);
    s->held = calloc((size_t)R, sizeof *s->held);
    s->held_n = calloc((size_t)R, sizeof *s->held_n);
    if (!s->send || !s->send_n || !s->recv || !s->recv_n || !s->held || !s->held_n) return oom(err);
    return 0;
}

static void state_free(ep_state *s) {
    if (s->send) free_send(s);
    if (s->recv && !s->borrowed) free(s->recv[0]);
    if (s->held && !s->borrowed) free(s->held[0]);
    for (int i = 0; i < s->n_lent; i++) free(s->lent[i]);
    free(s->send); free(s->send_n); free(s->recv); free(s->recv_n); free(s->held); free(s->held_n);
}

int mplb_ep_layer(const mplb_ep_transport *tp, const mplb_placement *pl, int d, int k,
                  const mplb_expert_w *experts, mplb_prec act_prec, const mplb_ep_rank *me,
                  mplb_ep_stats *st, mplb_err *err) {
    ep_state s;
    int rc = state_init(&s, tp->size, &tp->topo, tp->rank, pl, d, k, experts, act_prec, me, st, err), n, nd;
    const ep_phase *ph = phases(&s, &n, &nd);
    for (int i = 0; i < n && rc == 0; i++) {
        if ((rc = ph[i](&s, err)) < 0 || i == n - 1) break;
        double t0 = now_s();
        rc = tp->alltoallv(tp->ctx, s.send, s.send_n, s.recv, s.recv_n, err);
        double dt = now_s() - t0;
        st->t_alltoall_s += dt;
        if (i < nd) st->t_dispatch_xchg_s += dt;
        free_send(&s);
    }
    state_free(&s);
    return rc;
}

/* Rank r receives what every rank sent to r: in one process it reads the
 * senders' rows in place (as a shared-memory transport would), so each
 * sender's block is lent until the layer ends instead of copied. */
static int local_exchange(ep_state *s, int R, mplb_err *err) {
    for (int r = 0; r < R; r++) {
        if (s[r].n_lent == (int)(sizeof s[r].lent / sizeof s[r].lent[0]))
            return mplb_err_set(err, MPLB_EINVAL, "dispatch: more exchanges in a layer than phases");
        for (int src = 0; src < R; src++) {
            s[r].recv[src] = s[src].send[r];
            s[r].recv_n[src] = s[src].send_n[r];
        }
        s[r].borrowed = 1;
    }
    for (int r = 0; r < R; r++) {
        s[r].lent[s[r].n_lent++] = s[r].send_block;
        s[r].send_block = NULL;
        memset(s[r].send, 0, (size_t)R * sizeof *s[r].send);
    }
    return 0;
}

int mplb_ep_layer_local(int R, const mplb_ep_topo *topo, const mplb_placement *pl, int d, int k, const mplb_expert_w *experts,
                        mplb_prec act_prec, const mplb_ep_rank *ranks, mplb_ep_stats *st, mplb_err *err) {
    ep_state *s = calloc((size_t)R, sizeof *s);
    if (!s) return oom(err);
    int rc = 0, n = 0, nd = 0;
    for (int r = 0; r < R && rc == 0; r++) rc = state_init(&s[r], R, topo, r, pl, d, k, experts, act_prec, &ranks[r], st, err);
    const ep_phase *ph = rc == 0 ? phases(&s[0], &n, &nd) : NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        for (int r = 0; r < R && rc == 0; r++) rc = ph[i](&s[r], err);
        if (rc < 0 || i == n - 1) break;
        double t0 = now_s();
        rc = local_exchange(s, R, err);
        double dt = now_s() - t0;
        st->t_alltoall_s += dt;
        if (i < nd) st->t_dispatch_xchg_s += dt;
        for (int r = 0; r < R; r++) free_send(&s[r]);
    }
    for (int r = 0; r < R; r++) state_free(&s[r]);
    free(s);
    return rc;
}

int mplb_dispatch_round(const float *x, int d, mplb_prec p, float *xq, mplb_err *err) {
    mplb_qopts qo = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
    /* fp8: a tensor scale per GROUP channels, as the dispatch sends them */
    int glen = p == MPLB_PREC_FP8_E4M3 ? GROUP : d;
    for (int c0 = 0; c0 < d; c0 += glen) {
        int len = d - c0 < glen ? d - c0 : glen, rc = mplb_quant_fake(x + c0, xq + c0, 1, len, p, &qo, err);
        if (rc < 0) return rc;
    }
    return 0;
}

int mplb_moe_reference(int64_t tokens, int d, int k, const float *x, const int32_t *ids, const float *gates,
                       const mplb_expert_w *experts, mplb_prec act_prec, float *y, mplb_err *err) {
    float *xq = malloc((size_t)d * sizeof *xq), *out = malloc((size_t)d * sizeof *out);
    if (!xq || !out) { free(xq); free(out); return mplb_err_set(err, MPLB_ENOMEM, "reference: out of memory"); }
    mplb_ffn_ws ws = {0};
    int rc = 0;
    for (int64_t t = 0; t < tokens && rc == 0; t++) {
        if ((rc = mplb_dispatch_round(x + (size_t)t * d, d, act_prec, xq, err)) < 0) break;
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
