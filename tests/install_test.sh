#!/usr/bin/env bash
# cmake --install into a temporary prefix, then: a C program built against
# the installed mplb through `pkg-config --cflags --libs mplb` loads an
# experiment and runs it (profiles found in PREFIX/share/mplb), a CMake
# project finds it with find_package(mplb), the installed binary finds its
# own data, and libmplb.so exports only the mplb_ API.
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
P=$work/prefix
if cmake --install "$BUILD" --prefix "$P" > "$work/install.txt" 2>&1; then ok "cmake --install"
else bad "cmake --install"; cat "$work/install.txt"; fi
for f in include/mplb.h include/mplb/run.h lib/pkgconfig/mplb.pc lib/cmake/mplb/mplbConfig.cmake bin/mplb \
         share/mplb/policies/threshold.lua share/mplb/profiles/h100.lua; do
  [ -e "$P/$f" ] || [ -e "$P/${f/lib\//lib64/}" ] || { bad "installed $f"; }
done
lib=$(ls -d "$P"/lib*/ | head -1)
cat > "$work/use.c" <<'C'
#include <mplb.h>
#include <stdio.h>
/* load an experiment, run it on the cost model, print the first policy's speedup */
int main(int argc, char **argv) {
    mplb_exp x;
    mplb_err err;
    if (argc < 2 || mplb_exp_load(argv[1], NULL, 0, &x, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    mplb_run_opts o = {.out_path = NULL};
    mplb_run_summary sum;
    int rc = mplb_run(&x, &o, &sum, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    else printf("%s %ld rows %s\n", sum.pol[0].name, sum.pol[0].rows, sum.times_source);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    return rc < 0;
}
C
cat > "$work/exp.lua" <<'LUA'
return { model = { layers = 2, experts = 16, top_k = 2, hidden = 256, ffn = 128 },
         cluster = { gpus_per_node = 4, profile = "h100" },
         workload = { steps = 2, tokens = 512 }, policies = { "threshold" } }
LUA
export PKG_CONFIG_PATH="$lib/pkgconfig"
# a sanitizer build's library needs its runtime first: build the program with it too
san=""
if ldd "$lib/libmplb.so" 2>/dev/null | grep -q libasan; then san="-fsanitize=address,undefined"; export ASAN_OPTIONS=detect_leaks=0; fi
if cc -std=c11 -Wall -Wextra -Werror $san "$work/use.c" -o "$work/use" $(pkg-config --cflags --libs mplb) 2> "$work/cc.txt"; then
  ok "a C program builds with pkg-config --cflags --libs mplb"
else bad "pkg-config build"; cat "$work/cc.txt"; fi
# data from the install: the source tree's profiles are not on the path
if (cd "$work" && MPLB_DATA_DIR="$P/share/mplb" LD_LIBRARY_PATH="$lib" ./use exp.lua) > "$work/use.txt" 2>&1 &&
   grep -q "threshold.* 4 rows cost model, profile h100" "$work/use.txt"; then ok "it runs an experiment against the installed library"
else bad "running the program"; cat "$work/use.txt"; fi
mkdir -p "$work/cm"
cat > "$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(use_mplb C)
find_package(mplb REQUIRED)
add_executable(use ../use.c)
target_link_libraries(use PRIVATE mplb::mplb)
CM
if cmake -S "$work/cm" -B "$work/cm/b" -DCMAKE_PREFIX_PATH="$P" > "$work/cm.txt" 2>&1 && cmake --build "$work/cm/b" >> "$work/cm.txt" 2>&1
then ok "find_package(mplb) and mplb::mplb"
else bad "find_package"; cat "$work/cm.txt"; fi
if (cd "$work" && "$P/bin/mplb" run exp.lua -o r.h5) > "$work/bin.txt" 2>&1 && grep -q "run file: r.h5" "$work/bin.txt"
then ok "the installed binary finds its profiles and policies"
else bad "installed binary"; cat "$work/bin.txt"; fi
others=$(nm -D --defined-only "$lib/libmplb.so" | awk '{print $3}' | grep -v '^mplb_' | grep -v '^_' || true)
if [ -z "$others" ]; then ok "libmplb.so exports only mplb_ symbols"
else bad "exported non-API symbols: $others"; fi
if nm -D --defined-only "$lib/libmplb.so" | grep -qw mplb_lsb_open; then bad "internal sandbox exported"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
