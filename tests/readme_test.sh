#!/usr/bin/env bash
# The README's "Using it" block runs as written in a fresh clone: every
# command is extracted from README.md and run in a copy of the repository's
# files (tracked and new, not ignored: no build leftovers), at small sizes
# (--set workload.steps=1 --set model.layers=4 on run and sweep, --quick on
# calibrate). Lines marked "needs a GPU" must fail with the no-GPU message
# where there is none. usage: readme_test.sh PATH/TO/mplb SOURCE_DIR
set -u
MPLB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # what the README says root needs; --oversubscribe is the README's own
pass=0 fail=0

# the fresh clone: what git would check out, plus files not yet committed
(cd "$SRC" && git ls-files -co --exclude-standard -z | xargs -0 -I{} sh -c 'test -f "{}" && printf "%s\0" "{}"') |
  tar -C "$SRC" --null -T - -cf - | tar -C "$work" -xf -
mkdir -p "$work/build" && ln -s "$MPLB" "$work/build/mplb"
cd "$work" || exit 1

# the first ```sh block after "## Using it"; continuation lines joined
awk '/^## Using it/ { u = 1 } u && /^```sh/ { b = 1; next } b && /^```/ { exit } b { print }' README.md |
  sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' > commands.txt
n=$(grep -c . commands.txt)
if [ "$n" -lt 15 ]; then echo "FAIL only $n commands found in README.md's Using it block"; exit 1; fi

has_gpu=0
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && has_gpu=1
while IFS= read -r line; do
  [ -z "$line" ] && continue
  cmd=$(sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' <<<"$line")
  note=$(sed -n 's/^[^#]*#//p' <<<"$line")
  small=$cmd
  case "$cmd" in
    *"mplb run "*|*"mplb sweep "*) small="$cmd --set workload.steps=1 --set model.layers=4" ;;
    *"mplb calibrate "*) small="$cmd --quick" ;;
  esac
  if [[ "$cmd" == mpirun* ]] && ! command -v mpirun >/dev/null; then
    echo "skip (no mpirun here): $cmd"; continue
  fi
  out=$(timeout 600 bash -c "$small" 2>&1 </dev/null)
  rc=$?
  if [[ "$note" == *"needs a GPU"* && $has_gpu -eq 0 ]]; then
    if [ $rc -ne 0 ] && grep -qE "no CUDA device|built without CUDA" <<<"$out"; then
      echo "ok   (no GPU here: refused as documented) $cmd"; pass=$((pass + 1))
    else echo "FAIL (no GPU here, expected the no-GPU message) exit $rc: $cmd"; echo "$out" | sed 's/^/    /' | tail -15; fail=$((fail + 1)); fi
  elif [ $rc -eq 0 ]; then
    echo "ok   $cmd"; pass=$((pass + 1))
  else
    echo "FAIL exit $rc: $small"; echo "$out" | sed 's/^/    /' | tail -15; fail=$((fail + 1))
  fi
done < commands.txt
# the Quick start's sample table is what `make demo` prints today (it went
# stale once when a profile value changed): every column but decide_us
"$MPLB" run experiments/demo.lua -o demo_sample.h5 > demo_now.txt 2>&1
table() { grep -E '^(baseline|threshold|static|lis|eplb)' "$1" | awk '{$NF = ""; print}'; }
awk '/^## Quick start/ { q = 1 } q && /^```/ { b = !b; next } q && b { print } /^## Using it/ { exit }' README.md > demo_readme.txt
if [ -s demo_readme.txt ] && [ "$(table demo_readme.txt)" = "$(table demo_now.txt)" ]; then
  echo "ok   README's sample table equals make demo's output (but decide_us)"; pass=$((pass + 1))
else
  echo "FAIL README's sample table differs from make demo's output:"; diff <(table demo_readme.txt) <(table demo_now.txt) | head; fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
