# mplb: the two commands of the README's quick start, around CMake.
#   make demo   install what is missing, build, run experiments/demo.lua
#   make test   the whole suite: release + ASan/UBSan builds (ctest) and pytest
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: demo test setup build build-asan ctest ctest-asan pytest repro clean

demo: build
	./build/mplb run experiments/demo.lua

test: ctest ctest-asan pytest

setup:
	@bash scripts/setup.sh

build: setup
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPLB_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

# The sanitizer build skips CUDA: nvcc objects are not instrumented.
build-asan: setup
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMPLB_SANITIZE=ON -DMPLB_CUDA=OFF -DMPLB_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)

ctest: build
	cd build && ctest --output-on-failure -j $(JOBS)

ctest-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

pytest: build
	PYTHONPATH=$(CURDIR)/analysis MPLB_BIN=$(CURDIR)/build/mplb .venv/bin/python -m pytest -q tests/python

# Every reproduction card's numbers and figures, full size (docs/reproductions/).
repro: build
	bash scripts/reproduce.sh --bin ./build/mplb

clean:
	rm -rf build build-asan
