"""Compare two run files: every /steps column but decide_us, and every per-rank/per-expert table."""
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True) for p in sys.argv[1:3])
assert a.attrs["status"] == b.attrs["status"] == "complete", (a.attrs["status"], b.attrs["status"])
sa, sb = a["steps"][()], b["steps"][()]
assert sa.shape == sb.shape, (sa.shape, sb.shape)
for name in sa.dtype.names:
    if name == "decide_us":
        continue
    nan = sa[name].dtype.kind == "f"   # kl, top1_agree, ppl_delta: NaN where not measured
    if not np.array_equal(sa[name], sb[name], equal_nan=nan):
        raise SystemExit(f"column {name} differs")
for d in ("ranks/load", "ranks/compute_us", "experts/load", "experts/precision"):
    if not np.array_equal(a[d][()], b[d][()]):
        raise SystemExit(f"{d} differs")
print("identical", sa.shape[0], "rows")
