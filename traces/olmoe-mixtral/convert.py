"""Convert the OLMoE/Mixtral routing counts (../shared/traces/olmoe-mixtral/counts.json,
from allenai/OLMoE, Apache-2.0) into mplb trace files, numbers unchanged.

One trace per model: each text domain is one "step" (a batch of that domain's
tokens), the recorded decoder layers 0, 7 and 15 are the trace's 3 layers
(attribute layer_ids). counts = the top-k slot counts (a layer sums to
tokens x k); crosslayer_topk holds the co-activation matrices [domain, pair
(0-7, 7-15), E, E] for placement studies (all zero for a domain the source has no
co-activation for: tulu).

usage: python convert.py [SOURCE_JSON] [OUT_DIR]
"""
import json
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SRC = os.path.join(HERE, "..", "..", "..", "shared", "traces", "olmoe-mixtral", "counts.json")
LAYERS = ["0", "7", "15"]
PAIRS = ["0-7", "7-15"]
LICENSE = "Apache-2.0 (allenai/OLMoE; see LICENSE beside this file)"


def convert(src, out_dir, force=False):
    data = json.load(open(src))
    written = []
    for key in ("olmoe", "mixtral"):
        info = data["models"][key]
        E, k = info["experts"], info["top_k"]
        topk = data["counts"][key]["topk"]
        domains = sorted(topk)
        counts = np.zeros((len(domains), len(LAYERS), E), np.int32)
        for s, dom in enumerate(domains):
            for l, layer in enumerate(LAYERS):
                for e, c in topk[dom][layer].items():
                    counts[s, l, int(e)] = c
        cross = np.zeros((len(domains), len(PAIRS), E, E), np.int32)
        for s, dom in enumerate(domains):
            for p, pair in enumerate(PAIRS):
                for ij, c in data["counts"][key]["crosslayer_topk"].get(dom, {}).get(pair, {}).items():
                    i, j = (int(x) for x in ij.split(","))
                    cross[s, p, i, j] = c
        path = os.path.join(out_dir, f"{key}.h5")
        if os.path.exists(path) and not force:
            raise SystemExit(f"{path} exists (use --force)")
        with h5py.File(path, "w") as f:
            f.create_dataset("counts", data=counts, compression="gzip")
            f.create_dataset("crosslayer_topk", data=cross, compression="gzip")
            # text as fixed-length strings (np.bytes_): mplb reads no variable-length ones
            f.attrs["top_k"] = np.int32(k)
            f.attrs["model"] = np.bytes_(info["hf_model"])
            f.attrs["source"] = np.bytes_("allenai/OLMoE scripts/routing_output (commit 357454f4), per-domain top-k "
                                          "counts; steps = domains " + ",".join(domains) +
                                          "; layers = decoder layers 0, 7, 15")
            f.attrs["license"] = np.bytes_(LICENSE)
            f.attrs["format"] = np.bytes_("mplb-trace-1")
            f.attrs["domains"] = np.bytes_(",".join(domains))
            f.attrs["layer_ids"] = np.array([int(x) for x in LAYERS], np.int32)
            f.attrs["phase"] = np.array([b"prefill"] * len(domains), dtype="S8")
        written.append(path)
    return written


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--force"]
    src = args[0] if args else DEFAULT_SRC
    out = args[1] if len(args) > 1 else HERE
    for p in convert(src, out, force="--force" in sys.argv):
        print("wrote", p)
