#!/usr/bin/env bash
# bench/eplb: see bench/eplb.py (run by bench/run.sh eplb).
cd "$(dirname "$0")/.." && exec .venv/bin/python bench/eplb.py "$@"
