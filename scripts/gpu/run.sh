#!/usr/bin/env bash
# The one GPU-machine call: builds lowbit's CUDA code, checks GPU against the
# CPU reference (and under compute-sanitizer), regenerates the bitsandbytes
# golden files and runs the memory measurements. Full logs and results go to
# $OUT; a short summary is printed last.
#
# The GPU machine reaches no package registry, so what it lacks travels with
# the call: Debian's libgtest-dev/libeigen3-dev .debs in .deps/ and Python
# wheels (bitsandbytes, peft) in .whl/ — see scripts/gpu/README.md.
#   device run: carry [".deps", ".whl"], command: bash scripts/gpu/run.sh [steps...]
# Steps (default: all): cuda-tests bnb-golden memory
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/lowbit-gpu-out}"
mkdir -p "$OUT"
steps="${*:-cuda-tests bnb-golden memory}"
summary=()
log() { echo "== $*" >> "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

deps=/tmp/lowbit-deps
mkdir -p "$deps"
for f in .deps/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$deps"; done
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi

if [[ " $steps " == *" cuda-tests "* ]]; then
  t0=$(date +%s)
  nvcc -std=c++20 -O2 -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=sm_90 \
    --expt-relaxed-constexpr -lineinfo -DLOWBIT_HAVE_CUDA=1 \
    -Iformats/include -I. -Itests -isystem "$deps/usr/include" -isystem "$deps/usr/include/eigen3" \
    tests/test_cuda_minifloat.cpp kernels/cuda/minifloat_convert.cu \
    -L"$deps/usr/lib/x86_64-linux-gnu" -lgtest -lgtest_main -o /tmp/test_cuda_minifloat 2>&1 | tee "$OUT/build.log"
  /tmp/test_cuda_minifloat > "$OUT/test_cuda.log" 2>&1; rc=$?
  log "cuda-tests: exit $rc ($(grep -E '^\[  (PASSED|FAILED)' "$OUT/test_cuda.log" | tr '\n' ' '))"
  compute-sanitizer --tool memcheck --error-exitcode 9 /tmp/test_cuda_minifloat > "$OUT/memcheck.log" 2>&1; rc=$?
  log "memcheck: exit $rc ($(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1))"
  compute-sanitizer --tool racecheck --error-exitcode 9 /tmp/test_cuda_minifloat > "$OUT/racecheck.log" 2>&1; rc=$?
  log "racecheck: exit $rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/racecheck.log" | tail -1)) after $(( $(date +%s) - t0 )) s"
fi

if [[ " $steps " == *" bnb-golden "* ]] && [ -f scripts/gpu/make_bnb_golden.py ]; then
  rm -rf /tmp/bnb && python3 scripts/gpu/make_bnb_golden.py /tmp/bnb > "$OUT/bnb_golden.log" 2>&1; rc=$?
  tar czf "$OUT/bnb_golden.tgz" -C /tmp/bnb . 2>/dev/null
  log "bnb-golden: exit $rc, $(ls /tmp/bnb 2>/dev/null | wc -l) files"
fi

if [[ " $steps " == *" memory "* ]] && [ -f scripts/measure_memory.py ]; then
  t0=$(date +%s)
  PYTHONUNBUFFERED=1 timeout 420 python3 scripts/measure_memory.py -o "$OUT/memory_measured.h5" > "$OUT/memory.log" 2>&1; rc=$?
  log "memory: exit $rc after $(( $(date +%s) - t0 )) s"
  tail -n 40 "$OUT/memory.log"
fi

echo; cat "$OUT/summary.txt"
