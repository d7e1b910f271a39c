"""experiments/accuracy_small.lua on the shipped tiny MoE: accuracy measured
on the model's output (workload.kind = "lm"), written beside the proxy."""
import os
import re
import subprocess

import h5py
import numpy as np
import pytest

import mplb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
EXP = os.path.join(ROOT, "experiments", "accuracy_small.lua")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("acc") / "acc.h5"
    subprocess.run([BIN, "run", EXP, "-o", str(out)], check=True, capture_output=True)
    return out


def test_baseline_zero_fp8_below_threshold_below_nvfp4(run):
    r = mplb.load(run)
    st = r.steps
    last = st[st["layer"] == st["layer"].max()]
    assert np.isnan(st[st["layer"] < st["layer"].max()]["kl"]).all()   # measured once a step, on the output
    kl = last.groupby("policy_name")["kl"].mean()
    names = r.policies
    base, fp8, fp4, thr = names[0], names[1], names[2], names[3]
    b = last[last["policy_name"] == base]
    assert (b["kl"] == 0).all() and (b["top1_agree"] == 1).all() and (b["ppl_delta"] == 0).all()
    assert 0 < kl[fp8] < kl[thr] < kl[fp4]
    top1 = last.groupby("policy_name")["top1_agree"].mean()
    assert top1[fp4] < top1[fp8] <= 1
    # the threshold policy kept some experts in bf16 and lowered others
    with h5py.File(run, "r") as f:
        prec = f["experts/precision"][()]
        pol = f["steps"]["policy"]
    t = prec[pol == 3]
    assert (t == mplb.PRECISIONS.index("nvfp4")).any() and (t == 0).any()
    # the proxy stays a separate column
    assert (last[last["policy_name"] == fp4]["error_proxy"] > 0).all()


def test_lm_workload_errors(tmp_path):
    def fails(*sets):
        args = [BIN, "run", EXP, "-o", str(tmp_path / "x.h5"), "--force"]
        for s in sets:
            args += ["--set", s]
        p = subprocess.run(args, capture_output=True, text=True)
        assert p.returncode != 0
        return p.stderr
    assert "model.experts = 8, but the checkpoint" in fails("model.experts=8")
    assert "workload.lm" in fails('workload.lm="no-such-model"')
    assert "workload.text" in fails("workload.text={}")
    assert "workload.text.code" in fails('workload.text={code="missing.txt"}')
    assert "unknown acts 'w4'" in fails('workload.acts="w4"')
    assert "leave tokens out" in fails("workload.tokens=100")


def test_learned_targets_a_kl_budget(tmp_path):
    """learned(metric = "kl") moves its thresholds on the measured KL: a tighter
    budget gives a smaller KL, and each settles near its budget."""
    got = {}
    for budget in (0.002, 0.008):
        out = tmp_path / f"l{budget}.h5"
        subprocess.run([BIN, "run", EXP, "-o", str(out), "--set", "workload.steps=10", "--set",
                        f"policies={{'baseline',{{'learned',metric='kl',budget={budget},low='nvfp4',tau0=1.2,lr=0.2}}}}"],
                       check=True, capture_output=True)
        st = mplb.load(out).steps
        kl = st[(st["policy"] == 1) & st["kl"].notna()].sort_values("step")["kl"].to_numpy()
        got[budget] = kl[-5:].mean()
        assert 0.3 * budget < got[budget] < 3 * budget, (budget, kl)
    assert got[0.002] < got[0.008]
    p = subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "execute_small.lua"), "-o", str(tmp_path / "x.h5"),
                        "--set", "policies={{'learned',metric='kl'}}"], capture_output=True, text=True)
    assert p.returncode != 0 and "needs measured accuracy" in p.stderr


def test_split_by_domain_printed(tmp_path):
    out = subprocess.run([BIN, "run", EXP, "-o", str(tmp_path / "d.h5")], check=True, capture_output=True,
                         text=True).stdout
    rows = {}
    for l in out.splitlines():
        m = re.match(r"^(.*\[(code|prose)\])\s+(\S+)\s+(\S+)\s+(\S+)\s*$", l)
        if m:
            rows[m.group(1)] = [float(m.group(i)) for i in (3, 4, 5)]
    assert rows["baseline [code]"] == [0, 1, 0] and rows["baseline [prose]"] == [0, 1, 0]
    for dom in ("code", "prose"):
        assert 0 < rows[f"fp8-everywhere [{dom}]"][0] < rows[f"nvfp4-everywhere [{dom}]"][0]


def test_threshold_targets_a_kl_budget(tmp_path):
    """threshold(kl_budget): budget 0 is the baseline, a budget above what the
    rule spends is the rule (same precisions, same KL), one in between lowers
    fewer ranks and keeps the mean measured KL within it."""
    out = tmp_path / "t.h5"
    thr = "{'threshold',tau=1.1,low='nvfp4',min_tokens=0,mode='stored'%s}"
    pols = ["'baseline'", thr % ""] + [thr % f",kl_budget={b}" for b in (0, 1e9, 0.006)]
    subprocess.run([BIN, "run", EXP, "-o", str(out), "--set", "workload.steps=8", "--set",
                    "policies={" + ",".join(pols) + "}"], check=True, capture_output=True)
    st = mplb.load(out).steps
    with h5py.File(out, "r") as f:
        prec = f["experts/precision"][()]
        pol = f["steps"]["policy"][()]
    kl = {i: st[(st["policy"] == i) & st["kl"].notna()].sort_values("step")["kl"].to_numpy() for i in range(5)}
    assert (kl[2] == 0).all() and (prec[pol == 2] == 0).all()                  # budget 0: the baseline
    assert (prec[pol == 3] == prec[pol == 1]).all() and (kl[3] == kl[1]).all()  # unbounded: the rule
    assert (prec[pol == 1] != 0).sum() > (prec[pol == 4] != 0).sum() > 0
    assert 0 < kl[4].mean() <= 0.006 < kl[1].mean()
    p = subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "execute_small.lua"), "-o", str(tmp_path / "x.h5"),
                        "--set", "policies={{'threshold',kl_budget=0.01}}"], capture_output=True, text=True)
    assert p.returncode != 0 and "kl_budget needs measured accuracy" in p.stderr


def test_threshold_kl_budget_resumes_like_a_whole_run(tmp_path):
    """threshold(kl_budget) keeps state (its measured KL-per-proxy ratio): it
    declares itself stateful, so --resume replays the kept steps and the rest
    of the run equals an uninterrupted one."""
    import shutil
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    pol = "policies={'baseline',{'threshold',tau=1.1,low='nvfp4',min_tokens=0,mode='stored',kl_budget=0.006}}"
    args = [BIN, "run", EXP, "--set", "workload.steps=7", "--set", pol]
    subprocess.run(args + ["-o", str(full)], check=True, capture_output=True)
    shutil.copy(full, part)
    with h5py.File(part, "r+") as f:   # as a run interrupted after its 4th step leaves it
        keep = int((f["steps"]["step"] < 4).sum())
        for name in ("steps", "ranks/load", "ranks/compute_us", "experts/load", "experts/precision"):
            f[name].resize(keep, axis=0)
        f["accuracy/by_domain"].resize(int((f["accuracy/by_domain"]["step"] < 4).sum()), axis=0)
        f.attrs["status"] = "interrupted"
    subprocess.run(args + ["-o", str(part), "--resume"], check=True, capture_output=True)
    a, b = mplb.load(full).steps, mplb.load(part).steps
    for c in ("kl", "error_proxy", "t_layer_us"):
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy(), equal_nan=True), c
    with h5py.File(full, "r") as f, h5py.File(part, "r") as g:
        assert np.array_equal(f["experts/precision"][()], g["experts/precision"][()])
    # the policy lowered something after the kept steps (the replayed ratio mattered)
    assert (a[(a["policy"] == 1) & (a["step"] >= 4)]["error_proxy"] > 0).any()
