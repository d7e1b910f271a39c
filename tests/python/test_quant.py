"""mplb.quant against independent oracles: ml_dtypes for the element casts,
exact rational arithmetic (fractions) for the block formats."""
import math
import os
from fractions import Fraction

import ml_dtypes as md
import numpy as np
import pytest

from mplb import quant

SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")


def rng():
    return np.random.default_rng(SEED)


def bits32(a):
    return np.asarray(a, np.float32).view(np.uint32)


def random_floats(n, r):
    """Random bit patterns (NaN, Inf, denormals included) mixed with normal-range values."""
    raw = r.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    near = (r.standard_normal(n) * np.exp2(r.integers(-20, 20, size=n))).astype(np.float32)
    return np.concatenate([raw, near])


def ties_and_edges(table_f32):
    """Exact midpoints between neighbours (and their float32 neighbours), values around max."""
    v = np.unique(np.abs(table_f32[np.isfinite(table_f32)]).astype(np.float64))
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    assert np.all(mids.astype(np.float64) == (v[:-1] + v[1:]) / 2)  # exact ties
    up = np.nextafter(mids, np.float32(np.inf))
    dn = np.nextafter(mids, np.float32(0))
    mx = np.float32(v.max())
    around = np.array([mx, np.nextafter(mx, np.float32(np.inf)), mx * 1.0625, mx * 1.125, mx * 1.5, mx * 4,
                       np.float32(1e38), np.float32(np.inf), np.float32(np.nan), 0.0, 1e-45, 1e-40], np.float32)
    x = np.concatenate([mids, up, dn, around])
    return np.concatenate([x, -x])


CASTS = [("fp8_e4m3", md.float8_e4m3fn), ("fp8_e5m2", md.float8_e5m2)]


@pytest.mark.parametrize("fmt,dt", CASTS)
def test_fp8_every_byte_decodes_like_ml_dtypes(fmt, dt):
    codes = np.arange(256, dtype=np.uint8)
    ours = quant.dequantize(codes, np.zeros(0, np.uint8), fmt, (256,))
    ref = codes.view(dt).astype(np.float32)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(bits32(ours)[~nan], bits32(ref)[~nan])
    # and every finite value encodes back to its own byte
    packed, _ = quant.quantize(ref, fmt)
    assert np.array_equal(packed[~nan], codes[~nan])


@pytest.mark.parametrize("fmt,dt", CASTS)
@pytest.mark.parametrize("saturate", [False, True])
def test_fp8_encode_bit_exact(fmt, dt, saturate):
    r = rng()
    table = np.arange(256, dtype=np.uint8).view(dt).astype(np.float32)
    x = np.concatenate([random_floats(1_000_000, r), ties_and_edges(table)])
    packed, _ = quant.quantize(x, fmt, saturate=saturate)
    mx = float(np.nanmax(np.abs(table[np.isfinite(table)])))
    src = np.clip(x, -mx, mx) if saturate else x  # clip keeps NaN, maps Inf to max
    ref = src.astype(dt).view(np.uint8)
    nan = np.isnan(x)
    assert np.array_equal(packed[~nan], ref[~nan]), np.flatnonzero(packed[~nan] != ref[~nan])[:5]
    # NaN stays NaN with its sign
    dec = quant.dequantize(packed, np.zeros(0, np.uint8), fmt, x.shape)
    assert np.all(np.isnan(dec[nan]))
    assert np.array_equal(np.signbit(dec[nan]), np.signbit(x[nan]))


def test_fp4_e2m1_bit_exact():
    r = rng()
    table = np.arange(16, dtype=np.uint8).view(md.float4_e2m1fn).astype(np.float32)
    x = np.concatenate([random_floats(500_000, r), ties_and_edges(table)])
    x = x[~np.isnan(x)]  # E2M1 has no NaN: mplb's rule is tested below
    packed, _ = quant.quantize(x, "fp4_e2m1")
    codes = np.empty(x.size + (x.size & 1), np.uint8)
    codes[0::2] = packed & 0xF
    codes[1::2] = packed >> 4
    ref = x.astype(md.float4_e2m1fn).view(np.uint8) & 0xF
    assert np.array_equal(codes[: x.size], ref)
    y = quant.fake_quant(np.array([np.nan, -np.nan, 7.0], np.float32), "fp4_e2m1")
    assert list(y) == [0.0, 0.0, 6.0]


@pytest.mark.parametrize("fmt,dt", [("bf16", md.bfloat16), ("fp16", np.float16)])
def test_half_formats_bit_exact(fmt, dt):
    x = random_floats(1_000_000, rng())
    packed, _ = quant.quantize(x, fmt)
    ours = packed.view(np.uint16)
    ref = x.astype(dt).view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(ours[~nan], ref[~nan])
    assert np.all(np.isnan(quant.fake_quant(x[nan], fmt)))


# ---- exact oracle for the block formats ------------------------------------

def e4m3_values():
    vals = []
    for e in range(16):
        for m in range(8):
            if e == 15 and m == 7:
                continue
            vals.append(Fraction(m, 8) * Fraction(2) ** -6 if e == 0 else (1 + Fraction(m, 8)) * Fraction(2) ** (e - 7))
    return vals


E4M3 = e4m3_values()
E2M1 = [Fraction(v) for v in ("0", "1/2", "1", "3/2", "2", "3", "4", "6")]


def rne_index(q, table):
    """Nearest entry to q >= 0, ties to the even index, saturating."""
    if q >= table[-1]:
        return len(table) - 1
    lo = max(i for i, v in enumerate(table) if v <= q)
    a, b = q - table[lo], table[lo + 1] - q
    if a < b:
        return lo
    if b < a:
        return lo + 1
    return lo if lo % 2 == 0 else lo + 1


def to_f32(fr):
    """Exact rational -> float32; every product here fits a float64 exactly, so one rounding."""
    d = float(fr)
    assert Fraction(d) == fr
    return np.float32(d)


def floor_log2(a):
    m, e = math.frexp(a)
    return e - 1


def oracle_mx(x, fp4, round_up):
    emax, mx, table = (2, Fraction(6), E2M1) if fp4 else (8, Fraction(448), E4M3)
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        for b0 in range(0, x.shape[1], 32):
            blk = x[r, b0:b0 + 32]
            if not np.all(np.isfinite(blk)):
                out[r, b0:b0 + 32] = np.nan
                continue
            amax = float(np.max(np.abs(blk)))
            if amax == 0:
                continue
            if round_up:
                e = -200
                while mx * Fraction(2) ** e < Fraction(amax):
                    e += 1
            else:
                e = floor_log2(amax) - emax
            e = min(max(e, -127), 127)
            # only codes whose value stays a finite float32 (the round-up rule
            # at the top of the range would otherwise give 2^128 = Inf)
            fmax = Fraction(float(np.finfo(np.float32).max))
            fin = [t for t in table if t * Fraction(2) ** e <= fmax]
            for j, v in enumerate(blk):
                i = rne_index(abs(Fraction(float(v))) / Fraction(2) ** e, fin)
                val = table[i] * Fraction(2) ** e
                out[r, b0 + j] = -to_f32(val) if v < 0 or (v == 0 and math.copysign(1, v) < 0) else to_f32(val)
    return out


def oracle_nvfp4(x, two_d):
    fin = np.abs(x[np.isfinite(x)])
    amax = np.float32(fin.max()) if fin.size else np.float32(0)
    gs = np.float32(amax) / np.float32(2688) if amax > 0 else np.float32(1)
    out = np.zeros_like(x)
    tile = 16 if two_d else 1
    for r0 in range(0, x.shape[0], tile):
        for b0 in range(0, x.shape[1], 16):
            blk = x[r0:r0 + tile, b0:b0 + 16]
            if not np.all(np.isfinite(blk)):
                out[r0:r0 + tile, b0:b0 + 16] = np.nan
                continue
            bmax = Fraction(float(np.max(np.abs(blk))))
            s = E4M3[rne_index(bmax / (6 * Fraction(float(gs))), E4M3)]
            D = s * Fraction(float(gs))
            for (i, j), v in np.ndenumerate(blk):
                if D == 0:
                    val = Fraction(0)
                else:
                    val = E2M1[rne_index(abs(Fraction(float(v))) / D, E2M1)] * D
                f = to_f32(val)
                out[r0 + i, b0 + j] = -f if np.signbit(v) else f
    return out


def oracle_int8(x):
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        row = x[r]
        if not np.all(np.isfinite(row)):
            out[r] = np.nan
            continue
        amax = np.float32(np.max(np.abs(row)))
        s = amax / np.float32(127) if amax > 0 else np.float32(1)
        for j, v in enumerate(row):
            q = max(-127, min(127, round(Fraction(float(v)) / Fraction(float(s)))))
            out[r, j] = to_f32(q * Fraction(float(s)))
    return out


def oracle_int4(x, g, asym):
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        for b0 in range(0, x.shape[1], g):
            blk = x[r, b0:b0 + g]
            if not np.all(np.isfinite(blk)):
                out[r, b0:b0 + g] = np.nan
                continue
            mn, mx = np.float32(min(0, blk.min())), np.float32(max(0, blk.max()))
            sf = (mx - mn) / np.float32(15) if asym else max(abs(mn), mx) / np.float32(7)
            s = np.float16(sf)
            if np.isinf(s):
                s = np.float16(65504)
            S = Fraction(float(s))
            zp = 0
            if asym and S > 0:
                zp = max(0, min(15, round(-Fraction(float(mn)) / S)))
            for j, v in enumerate(blk):
                if S == 0:
                    q = zp
                else:
                    q = round(Fraction(float(v)) / S) + zp
                    q = max(0, min(15, q)) if asym else max(-7, min(7, q))
                out[r, b0 + j] = to_f32((q - zp) * S)
    return out


def block_inputs(r, rows, cols):
    """Heavy-tailed values with outliers, denormals, zero blocks and exact ties."""
    x = (r.standard_t(3, size=(rows, cols)) * np.exp2(r.integers(-8, 8, size=(rows, 1)))).astype(np.float32)
    x[0, :] = 0                                   # an all-zero row
    x[1, :7] = np.float32(1e-41)                  # denormals
    x[2, 3] = np.float32(3e38)                    # near float max
    x[3, 5] = -x[3, 5] * 1000                     # an outlier
    x[4, :] = np.float32(0.25) * np.arange(cols)  # exact grid values and ties
    return x


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4"])
@pytest.mark.parametrize("round_up", [False, True])
@pytest.mark.parametrize("cols", [75, 64])  # 75: a partial last block; 64: the SIMD path
def test_mx_exact(fmt, round_up, cols):
    x = block_inputs(rng(), 12, cols)
    got = quant.fake_quant(x, fmt, mx_round_up=round_up)
    ref = oracle_mx(x, fmt == "mxfp4", round_up)
    assert np.array_equal(bits32(got), bits32(ref))


@pytest.mark.parametrize("two_d", [False, True])
@pytest.mark.parametrize("cols", [40, 64])
def test_nvfp4_exact(two_d, cols):
    x = block_inputs(rng(), 20, cols)  # 20 rows: a partial 16x16 tile too
    got = quant.fake_quant(x, "nvfp4", nvfp4_2d=two_d)
    ref = oracle_nvfp4(x, two_d)
    assert np.array_equal(bits32(got), bits32(ref))


def test_int8_exact():
    x = block_inputs(rng(), 10, 33)
    assert np.array_equal(bits32(quant.fake_quant(x, "int8")), bits32(oracle_int8(x)))


@pytest.mark.parametrize("fmt,g", [("int4_g32", 32), ("int4_g128", 128)])
@pytest.mark.parametrize("asym", [False, True])
def test_int4_exact(fmt, g, asym):
    x = block_inputs(rng(), 8, 150)
    got = quant.fake_quant(x, fmt, int4_asym=asym)
    assert np.array_equal(bits32(got), bits32(oracle_int4(x, g, asym)))


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4", "nvfp4", "int8", "int4_g32"])
def test_nonfinite_marks_its_block(fmt):
    x = np.ones((2, 64), np.float32)
    x[0, 3] = np.nan
    x[1, 40] = np.inf
    y = quant.fake_quant(x, fmt)
    assert np.isnan(y[0, 3])
    assert np.isnan(y[1, 40])
    # a block away from the bad value stays finite for the blocked formats
    if fmt != "int8":
        assert np.all(np.isfinite(y[0, 40:]))


@pytest.mark.parametrize("fmt,top", [("mxfp4", 3 * 2.0**126), ("mxfp8", 240 * 2.0**120)])
def test_mx_round_up_near_float_max_stays_finite(fmt, top):
    # 3e38 / 2^126 = 3.53 would round to 4 x 2^126 = 2^128 (Inf in float32):
    # it saturates to the largest finite value of the block instead
    x = np.zeros((1, 32), np.float32)
    x[0, 0] = np.float32(3.3e38)
    x[0, 1] = -np.finfo(np.float32).max
    y = quant.fake_quant(x, fmt, mx_round_up=True)
    assert np.all(np.isfinite(y))
    assert y[0, 0] == np.float32(top) and y[0, 1] == -np.float32(top)


def test_mx_spec_rule_clips_and_round_up_does_not():
    # amax = 7.5 in one mxfp4 block: spec scale 2^(2-2) = 1 clips 7.5 to 6;
    # the round-up scale 2^ceil(log2(7.5/6)) = 2 represents 7.5 as 8 (4*2).
    x = np.zeros((1, 32), np.float32)
    x[0, 0] = 7.5
    assert quant.fake_quant(x, "mxfp4")[0, 0] == 6.0
    assert quant.fake_quant(x, "mxfp4", mx_round_up=True)[0, 0] == 8.0


@pytest.mark.parametrize("fmt", quant.PRECISIONS)
def test_shapes_empty_and_odd(fmt):
    for shape in [(0,), (0, 5), (3, 0), (1,), (7,), (3, 17), (2, 3, 33)]:
        x = np.linspace(-2, 2, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        y = quant.fake_quant(x, fmt)
        assert y.shape == x.shape and y.dtype == np.float32
    # padding: the packed row is whole blocks; the data bytes do not depend on values
    p1, _ = quant.quantize(np.ones((2, 33), np.float32), fmt)
    p2, _ = quant.quantize(np.full((2, 33), 3.0, np.float32), fmt)
    assert p1.size == p2.size


def test_packing_layout_nibbles():
    x = np.array([1.0, -6.0, 0.5], np.float32)  # E2M1 codes 0x2, 0xF, 0x1
    packed, _ = quant.quantize(x, "fp4_e2m1")
    assert list(packed) == [0xF2, 0x01]


def test_errors():
    with pytest.raises(quant.QuantError, match="unknown precision 'fp3'"):
        quant.fake_quant(np.ones(4), "fp3")
    with pytest.raises(quant.QuantError, match="unknown option"):
        quant.fake_quant(np.ones(4), "fp8_e4m3", satur=True)
    with pytest.raises(quant.QuantError, match="needs"):
        quant.dequantize(np.zeros(3, np.uint8), np.zeros(0, np.uint8), "fp8_e4m3", (4,))


@pytest.mark.parametrize("fmt", quant.PRECISIONS)
def test_fast_path_equals_reference(fmt):
    r = rng()
    x = np.concatenate([random_floats(20_000, r), r.standard_normal(20_000).astype(np.float32)]).reshape(125, 480)
    opts = [{}]
    if fmt.startswith("fp8"):
        opts = [{}, {"saturate": True}, {"scaling": "tensor"}]
    if fmt.startswith("mx"):
        opts = [{}, {"mx_round_up": True}]
    for o in opts:
        a = quant.quantize(x, fmt, **o)
        b = quant.quantize(x, fmt, _ref=True, **o)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1].block, b[1].block)
        ya = quant.dequantize(*a, fmt, x.shape, **o)
        yb = quant.dequantize(*b, fmt, x.shape, _ref=True, **o)
        assert np.array_equal(bits32(ya), bits32(yb))
