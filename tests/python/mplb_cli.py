"""The mplb binary under test for the Python tests that drive its CLI: its
path ($MPLB_BIN, else build/mplb), a seed printed for replay
($MPLB_TEST_SEED), and mplb(*args) that runs it (ok=True: must exit 0)."""
import os
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))


def mplb(*args, ok=True):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "analysis"))
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    if ok:
        assert p.returncode == 0, p.stderr + p.stdout
    return p
