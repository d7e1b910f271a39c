"""The figures and the report checked through their data (artists, labels,
counts), against numpy recomputations from the run files, on a real sweep
(two profiles x two token counts x a policy axis, seven policies, failing
points) and a measured run, both made by the mplb binary."""
import os
import re
import subprocess
from html.parser import HTMLParser

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mplb
from mplb import plots
from mplb.report import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))

SWEEP = '''return {
  name = "figs",
  model = { preset = "qwen3-30b-a3b", layers = 3, experts = 16 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = { "h100", "b200" } },
  workload = { steps = 3, tokens = { 1024, 2048, 3072 }, zipf = 1.0, vision_frac = 0.6, vision_zipf = 1.4 },
  policies = {
    "baseline",
    { "threshold", label = "thr", tau = { 1.05, 1.3 }, min_tokens = 0, low = "nvfp4" },
    { "static", label = "fp4", prec = "nvfp4", mode = "online" },
    "eplb",
    { "static", label = "fp8", prec = "fp8_e4m3" },
    "redistribute",
    { "boom.lua", fail_tokens = 3072 },
  },
  seed = SEED,
}
'''
BOOM = '''-- fails at the second step of batches of params.fail_tokens tokens
local P = { params = { fail_tokens = -1 } }
function P.decide(obs, act)
  if obs.tokens == P.params.fail_tokens and obs.step == 2 then error("failing on purpose") end
end
return P
'''


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("figs")
    seed = int(np.random.default_rng().integers(1, 2**31))
    (d / "figs.lua").write_text(SWEEP.replace("SEED", str(seed)))
    (d / "boom.lua").write_text(BOOM)
    subprocess.run([BIN, "sweep", str(d / "figs.lua"), "-o", str(d / "sw"), "-j", "2"], capture_output=True)
    sw = mplb.load(d / "sw")
    assert len(sw.index) == 12 and (sw.index["status"] == "complete").sum() == 8, sw.index
    return sw


@pytest.fixture(scope="module")
def summary(sweep):
    return sweep.summary()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("meas") / "meas.h5"
    subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "execute_small.lua"), "-o", str(out),
                    "--backend", "cpu", "--set", "workload.steps=2", "--set", "model.layers=1"],
                   check=True, capture_output=True)
    return mplb.load(out)


def _front_ref(e, s):
    """Brute force: i is on the front when no j is at least as good in both
    and better in one (exact duplicates: the first only)."""
    keep = []
    for i in range(len(e)):
        dominated = any((e[j] <= e[i] and s[j] >= s[i] and (e[j] < e[i] or s[j] > s[i]))
                        or (e[j] == e[i] and s[j] == s[i] and j < i) for j in range(len(e)))
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: e[i])


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng()
    for n in (1, 2, 5, 30):
        for grid in (False, True):   # grid: many ties
            e = rng.integers(0, 4, n).astype(float) if grid else rng.random(n)
            s = rng.integers(0, 4, n).astype(float) if grid else rng.random(n)
            assert plots.pareto_front(e, s) == _front_ref(e, s)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_pareto_one_front_per_condition(summary):
    fig = plots.pareto(summary)
    axes = _panels(fig)
    conds = summary.groupby(["cluster.profile", "workload.tokens"])
    assert len(axes) == conds.ngroups == 4   # the policy axis is not a condition
    for ax in axes:
        title = ax.get_title()
        prof = re.search(r"profile=(\w+)", title).group(1)
        tok = int(re.search(r"tokens=(\d+)", title).group(1))
        g = summary[(summary["cluster.profile"] == prof) & (summary["workload.tokens"] == tok)]
        # every row of the condition, and nothing else, is drawn
        pts = np.concatenate([c.get_offsets() for c in ax.collections if c.get_facecolors().size])
        assert sorted(map(tuple, pts.round(12))) == sorted(zip(g["error_proxy"].round(12), g["speedup"].round(12)))
        # the front is the condition's own, drawn as a visible black line above the points
        front = [ln for ln in ax.get_lines() if ln.get_label().startswith("Pareto front")]
        assert len(front) == 1
        idx = _front_ref(g["error_proxy"].to_numpy(), g["speedup"].to_numpy())
        np.testing.assert_allclose(front[0].get_xdata(), g["error_proxy"].to_numpy()[idx])
        np.testing.assert_allclose(front[0].get_ydata(), g["speedup"].to_numpy()[idx])
        assert front[0].get_linewidth() >= 2 and front[0].get_color() == "black"
        assert front[0].get_alpha() in (None, 1.0) and front[0].get_zorder() > max(c.get_zorder() for c in ax.collections[:1])
    # panels compare: shared axes
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    # the policy axis makes the threshold's two tau values two series, every policy in the legend
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "thr [policies[2].tau=1.05]" in legend and "thr [policies[2].tau=1.3]" in legend
    for name in summary["policy"].unique():
        assert any(t == name or t.startswith(name + " [") for t in legend)


def test_pareto_single_run_and_ax(sweep, summary):
    fig, ax = plt.subplots()
    try:
        plots.pareto(sweep.run(0).summary(), ax=ax)
        assert sum(ln.get_label().startswith("Pareto front") for ln in ax.get_lines()) == 1
        assert len(ax.get_legend().get_texts()) == 7 + 1
        with pytest.raises(ValueError, match="conditions"):
            plots.pareto(summary, ax=ax)
    finally:
        plt.close(fig)


def test_sweep_metrics_by_axis(summary):
    fig = plots.sweep_metrics(summary)
    axes = _panels(fig)
    assert len(axes) == 2 * 2   # speedup and error rows x one column per profile
    ticks = [t.get_text() for t in axes[-1].get_xticklabels()]
    assert ticks == ["1024", "2048"]   # the x axis: the tokens axis (3072 failed everywhere)
    top = [ax for ax in axes if ax.get_ylabel().startswith("speedup") or ax.get_title()]
    for ax in axes[:2]:
        prof = re.search(r"profile=(\w+)", ax.get_title()).group(1)
        g = summary[summary["cluster.profile"] == prof]
        lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        series = plots._series(summary)[g.index]
        assert sorted(lines) == sorted(series.unique())
        for name, ln in lines.items():
            ref = g[series == name].drop_duplicates("workload.tokens").sort_values("workload.tokens")
            np.testing.assert_allclose(ln.get_xdata(), [0, 1])
            np.testing.assert_allclose(ln.get_ydata(), ref["speedup"])
    assert top


def test_every_policy_on_a_shared_axis(sweep):
    run = sweep.run(0)
    assert len(run.policies) == 7   # more than the 4 the old report drew
    step, layer = plots.worst_step_layer(run)
    s = run.steps
    base = s[s["policy"] == 0]
    assert base["imbalance"].max() == base[(base["step"] == step) & (base["layer"] == layer)]["imbalance"].iloc[0]
    fig = plots.timelines(run, where="point 0")
    axes = _panels(fig)
    assert len(axes) == 7
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert f"step {step}, layer {layer}" in fig.get_suptitle() and "point 0" in fig.get_suptitle()
    assert plots.source_label(run) in fig.get_suptitle()
    for p, ax in enumerate(axes):
        assert ax.get_title(loc="left").startswith(run.policies[p])
        i = np.flatnonzero(((s["policy"] == p) & (s["step"] == step) & (s["layer"] == layer)).to_numpy())[0]
        comp = [b.get_width() for b in ax.patches if b.get_label() == "compute (+exposed conversion)"]
        if not comp:   # bar containers label the container, not the patches
            comp = [b.get_width() for c in ax.containers if c.get_label().startswith("compute") for b in c]
        np.testing.assert_allclose(comp, run.rank_compute_us[i])


def test_heatmap_and_precision_map_every_policy(sweep):
    run = sweep.run(0)
    s = run.steps
    fig = plots.rank_heatmap(run, layer=1, where="point 0")
    axes = [ax for ax in _panels(fig) if ax.images]
    assert len(axes) == 7 and "layer 1" in fig.get_suptitle() and "point 0" in fig.get_suptitle()
    clims = {ax.images[0].get_clim() for ax in axes}
    assert len(clims) == 1   # one colour scale
    for p, ax in enumerate(axes):
        np.testing.assert_array_equal(ax.images[0].get_array(),
                                      run.rank_load[((s["policy"] == p) & (s["layer"] == 1)).to_numpy()])
    fig = plots.precision_map(run, where="point 0")
    axes = [ax for ax in _panels(fig) if ax.images]
    assert len(axes) == 7 and "point 0" in fig.get_suptitle()
    R, E = run.rank_load.shape[1], run.expert_precision.shape[1]
    for p, ax in enumerate(axes):
        ref = np.zeros((3, R))
        for lay in range(3):
            rows = run.expert_precision[((s["policy"] == p) & (s["layer"] == lay)).to_numpy()]
            for r in range(R):
                experts = [e for e in range(E) if e * R // E == r]
                ref[lay, r] = (rows[:, experts] != 0).mean()
        np.testing.assert_allclose(ax.images[0].get_array(), ref)
    # fp4 everywhere is all below bf16, the baseline none
    assert axes[0].images[0].get_array().max() == 0 and axes[2].images[0].get_array().min() == 1


def test_lis_plot_covers_every_policy(sweep):
    run = sweep.run(0)
    s = run.steps
    fig = plots.lis_over_time(run, where="point 0")
    top, bottom = _panels(fig)
    assert top.get_shared_x_axes().joined(top, bottom)
    lis = s[s["policy"] == 0].groupby("step")["lis"].mean()
    (line,) = [ln for ln in top.get_lines() if not ln.get_label().startswith("_")]
    np.testing.assert_allclose(line.get_ydata(), lis.to_numpy())
    named = [ln for ln in bottom.get_lines() if not ln.get_label().startswith("_")]
    covered = [n for ln in named for n in ln.get_label().split(", ")]
    assert sorted(covered) == sorted(run.policies)   # each policy exactly once
    for ln in named:
        for name in ln.get_label().split(", "):
            p = run.policies.index(name)
            ref = s[s["policy"] == p].groupby("step")["imbalance"].mean()
            np.testing.assert_allclose(ln.get_ydata(), ref.to_numpy())


def test_sweep_lis_every_point(sweep):
    fig = plots.sweep_lis(sweep)
    (ax,) = _panels(fig)
    labels = [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    points = sorted(int(p) for lab in labels for p in re.findall(r"point (\d+)", lab))
    assert points == sorted(sweep.index.loc[sweep.index["status"] == "complete", "point"])


def test_sources_modelled_and_measured(sweep, measured):
    run = sweep.run(0)
    assert not plots.is_measured(run) and "not measurements" in plots.source_note(run)
    assert plots.is_measured(measured)
    note = plots.source_note(measured)
    assert "not measurements" not in note and note.startswith(measured.attrs["times_source"])
    assert plots.config_value(run, "profile") == "h100" and plots.config_value(run, "model") == "qwen3-30b-a3b"


def test_figures_are_not_left_open(sweep):
    """Figures are plain Figure objects: pyplot keeps none of them, so a
    notebook shows each once (as the cell's value) and reports do not leak."""
    before = plt.get_fignums()
    run = sweep.run(0)
    for fig in (plots.pareto(sweep.summary()), plots.timelines(run), plots.rank_heatmap(run),
                plots.precision_map(run), plots.lis_over_time(run), plots.sweep_lis(sweep)):
        assert isinstance(fig, matplotlib.figure.Figure)
    assert plt.get_fignums() == before


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.tables, self.paras, self._cur, self._tag = [], [], [], [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("wbr", "img", "meta", "br"):   # void elements have no end tag
            self._tag.append(tag)
        if tag == "h2":
            self.sections.append({"id": a.get("id"), "title": "", "src": None, "imgs": []})
            self._cur = "h2"
        elif tag == "img":
            self.imgs.append(a["src"])
            if self.sections:
                self.sections[-1]["imgs"].append(a["src"])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag == "p":
            self.paras.append({"cls": a.get("class"), "text": ""})
            self._cur = "p"

    def handle_endtag(self, tag):
        if self._tag:
            self._tag.pop()
        if tag in ("h2", "p"):
            if tag == "p" and self.paras[-1]["cls"] == "src" and self.sections:
                self.sections[-1]["src"] = self.paras[-1]["text"]
            self._cur = None

    def handle_data(self, data):
        if self._cur == "h2":
            self.sections[-1]["title"] += data
        elif self._cur == "p":
            self.paras[-1]["text"] += data
        if self._tag and self._tag[-1] in ("td", "th") and self.tables and self.tables[-1]:
            self.tables[-1][-1][-1] += data


def _check_tables(page, text):
    assert "table-layout:fixed" in text and "width:100%" in text
    for group in re.findall(r"<colgroup>(.*?)</colgroup>", text):   # widths add up to the page
        assert sum(map(float, re.findall(r"width:([0-9.]+)%", group))) == pytest.approx(100, abs=0.1)
    assert text.count("<colgroup>") == text.count("<table")
    for t in page.tables:
        ncols = len(t[0])
        assert ncols <= 14   # >= 75 px a column on the 1100 px page
        for row in t[1:]:
            for cell in row:
                if re.fullmatch(r"-?[0-9.e+-]+", cell):
                    assert len(cell) <= 10, cell   # numbers fit their column unbroken


def test_report_of_a_sweep(sweep, tmp_path, monkeypatch):
    done = sweep.index[sweep.index["status"] == "complete"]
    # a section for every complete point by default; the per-point figures are
    # drawn for two points below (drawing all eight would make the test slow)
    drawn = []
    monkeypatch.setattr(mplb.report, "_run_figures",
                        lambda run, where, prefix, files: drawn.append((run.path, where)) or [])
    out = tmp_path / "all"
    report(sweep.path, str(out), dpi=30)
    monkeypatch.undo()
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert [s["id"] for s in page.sections if s["id"]] == [f"p{p}" for p in done["point"]]
    assert [os.path.basename(p) for p, _ in drawn] == list(done["file"].map(os.path.basename))
    assert all(w.startswith(f"point {p} (") for (_, w), p in zip(drawn, done["point"]))
    for sec in (s for s in page.sections if s["id"]):
        run = sweep.run(int(sec["id"][1:]))
        # each point: its own axes in its heading, its own source
        assert f"profile={plots.config_value(run, 'profile')}" in sec["title"]
        assert sec["src"] == f"Times: {plots.source_note(run)}"

    show = int(done.loc[done["cluster.profile"] == "b200", "point"].iloc[0])
    out = tmp_path / "rep"
    files = report(sweep.path, str(out), points=[show], dpi=40)
    text = (out / "index.html").read_text()
    page = _Page()
    page.feed(text)
    (sec,) = [s for s in page.sections if s["id"]]
    assert sec["id"] == f"p{show}" and sec["src"] == f"Times: {plots.source_note(sweep.run(show))}"
    assert len(sec["imgs"]) == 4 and all(i.startswith(f"p{show:04d}_") for i in sec["imgs"])
    # the header names every profile and source of the sweep, each with its points
    header = " ".join(p["text"] for p in page.paras)
    by_prof = {p: ", ".join(str(x) for x in done.loc[done["cluster.profile"] == p, "point"]) for p in ("h100", "b200")}
    assert f"Profiles: h100 (points {by_prof['h100']}); b200 (points {by_prof['b200']})" in header
    assert "cost model, profile b200" in header and "cost model, profile h100" in header
    # failed points are listed with their error
    assert "failing on purpose" in text and "Points not complete" in text
    for img in page.imgs:
        assert (out / img).exists()
    assert {os.path.basename(f) for f in files} == set(page.imgs) | {"index.html"}
    _check_tables(page, text)
    failed = int(sweep.index.loc[sweep.index["status"] != "complete", "point"].iloc[0])
    with pytest.raises(mplb.RunFileError, match=rf"point\(s\) \[{failed}\] not complete"):
        report(sweep.path, str(tmp_path / "bad"), points=[failed])


def test_report_of_a_measured_run(measured, tmp_path):
    out = tmp_path / "rep"
    report(measured.path, str(out), dpi=40)
    text = (out / "index.html").read_text()
    assert "not measurements" not in text
    page = _Page()
    page.feed(text)
    (src,) = [p["text"] for p in page.paras if p["cls"] == "src"]
    assert src == f"Times: {plots.source_note(measured)}" and "measured" in src
    _check_tables(page, text)
    assert len(page.imgs) == 5


def test_report_of_an_empty_run(tmp_path):
    """A run stopped before its first layer has no rows: a clear error."""
    import ctypes
    from mplb import api
    out = tmp_path / "empty.h5"
    err, stop = mplb.quant._Err(), ctypes.c_int(1)
    assert api._lib().mplb_py_run(os.path.join(ROOT, "experiments", "demo.lua").encode(), None, 0,
                                  str(out).encode(), 0, 0, b"test", ctypes.byref(stop), ctypes.byref(err)) == 0
    with pytest.raises(mplb.RunFileError, match=r"no rows to report \(status interrupted\)"):
        report(str(out), str(tmp_path / "rep"))
    with pytest.raises(ValueError, match="no rows of the first policy"):
        plots.timelines(mplb.load(out))
