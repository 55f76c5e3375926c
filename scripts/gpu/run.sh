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
# Steps (default: cuda-tests bnb-golden memory): cuda-tests bnb-golden memory
#   kernels   GPU==CPU tests of the blockwise / GEMM kernels (tests/test_cuda_blockwise) and of
#             every registry quantizer (tests/test_cuda_scaled),
#             `lowbit kernel-bench`, scripts/peer_bench.py (PyTorch, bitsandbytes) and one
#             side-by-side table with ratios. Runs the binaries that `build-kernels` made
#             beforehand on the development machine into .gpubin/ (carry ".gpubin" too).
#   build-kernels  (NOT on the GPU machine) builds lowbit + tests/test_cuda_blockwise for sm_90
#             in build/gpu-helper and copies them with their non-system shared libraries
#             (not libcudart/libcublasLt: the GPU machine's CUDA provides those) into .gpubin/.
#   sanitize  compute-sanitizer memcheck + racecheck on tests/test_cuda_blockwise and test_cuda_scaled,
#             synccheck on its 4-bit GEMM tests,
#             memcheck on test_cuda_llm_int8, racecheck + synccheck on its small-M path
#   ncu       Nsight Compute on the 4-bit GEMV and the NF4 dequantize (--clock-control none)
#   probe     runs the command in $PROBE (T_PROBE seconds) with the kernels' libraries on the path;
#             its output goes to probe.log, the last PROBE_TAIL lines to the console.
#   matmul    issue 11: tests/test_cuda_llm_int8, `lowbit kernel-bench --ops matmul,fp8quant` (int8,
#             LLM.int8 at 0 / 0.1 / 1 % outlier columns, FP8 beside cuBLASLt bf16, FP8 quantize with amax),
#             `scripts/peer_bench.py run --ops matmul` (torch bf16, _int_mm, _scaled_mm, bnb LLM.int8) and
#             one side-by-side table with ratios (compare_matmul.txt). MM_ARGS / MM_PB_ARGS add options
#             to both (e.g. "--quick"); T_MM / T_MM_PEERS are their time limits in seconds.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/lowbit-gpu-out}"
mkdir -p "$OUT"
steps="${*:-cuda-tests bnb-golden memory}"
summary=()
log() { echo "== $*" >> "$OUT/summary.txt"; }

if [[ " $steps " == *" build-kernels "* ]]; then
  bdir=build/gpu-helper
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real > "$OUT/build_kernels.log" 2>&1 &&
    cmake --build "$bdir" --target lowbit lowbit_capi test_cuda_blockwise test_cuda_scaled test_cuda_llm_int8 -j"${JOBS:-2}" >> "$OUT/build_kernels.log" 2>&1 ||
    { tail -n 30 "$OUT/build_kernels.log"; exit 1; }
  rm -rf .gpubin && mkdir -p .gpubin/lib
  cp "$bdir/bin/lowbit" "$bdir/lib/liblowbit_capi.so" "$bdir/tests/test_cuda_blockwise" "$bdir/tests/test_cuda_scaled" "$bdir/tests/test_cuda_llm_int8" .gpubin/
  ldd .gpubin/lowbit .gpubin/test_cuda_blockwise .gpubin/test_cuda_scaled .gpubin/test_cuda_llm_int8 | awk '/=> \//{print $3}' | sort -u |
    grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*|libcudart|libcublas|libcublasLt|libcuda|libpthread|libdl|librt|libresolv|libutil|libnss[^/]*)\.so' |
    xargs -r -I{} cp -L {} .gpubin/lib/
  strip .gpubin/lowbit .gpubin/liblowbit_capi.so .gpubin/test_cuda_blockwise .gpubin/test_cuda_scaled .gpubin/test_cuda_llm_int8 2>/dev/null
  # bitsandbytes without its other CUDA / ROCm builds (129 MB → 4 MB), so that
  # .gpubin alone stays under the 64 MiB carry limit (.whl need not travel).
  mkdir -p .gpubin/wheels
  python3 - <<'PY' || echo "build-kernels: no slim bitsandbytes wheel (.whl/bitsandbytes-*.whl missing?)"
import glob, re, zipfile
src = sorted(glob.glob(".whl/bitsandbytes-*.whl"))[-1]
drop = lambda n: re.search(r"libbitsandbytes_(cuda(?!130)|rocm|xpu)", n) is not None
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(".gpubin/wheels/" + src.split("/")[-1], "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        if drop(info.filename):
            continue
        data = zi.read(info.filename)
        if info.filename.endswith("RECORD"):
            data = "\n".join(l for l in data.decode().split("\n") if not drop(l.split(",")[0])).encode()
        zo.writestr(info, data)
PY
  grep -qx '/.gpubin/' .git/info/exclude 2>/dev/null || echo '/.gpubin/' >> .git/info/exclude
  echo "build-kernels: $(du -sh .gpubin | cut -f1) in .gpubin ($(ls .gpubin/lib | wc -l) libraries)"
  exit 0
fi

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

if [[ " $steps " == *" kernels "* || " $steps " == *" sanitize "* || " $steps " == *" ncu "* || " $steps " == *" matmul "* || " $steps " == *" probe "* ]]; then
  if [ -x .gpubin/lowbit ]; then
    # The cuBLASLt / cudart of the machine (too large to carry), then the carried libraries. The
    # cuBLAS that PyTorch loads goes first: lowbit and its torch peers then run the same cuBLASLt
    # build (the CUDA toolkit on the machine carries another one, cuBLASLt 13.1.0.3).
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
             $(python3 -c 'import nvidia, os, glob; print(" ".join(sorted({os.path.dirname(p) for q in nvidia.__path__ for p in glob.glob(os.path.join(q, "*", "lib", "libcublasLt.so*")) + glob.glob(os.path.join(q, "*", "lib", "libcudart.so*"))})))' 2>/dev/null); do
      [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
    done
    export LD_LIBRARY_PATH="$PWD/.gpubin/lib:${LD_LIBRARY_PATH:-}"
    # peer_bench.py --ops matmul then times lowbit's matmuls in its own process too (lowbit-inproc rows).
    [ -f .gpubin/liblowbit_capi.so ] && export LOWBIT_CAPI="$PWD/.gpubin/liblowbit_capi.so"
    log "cuBLASLt: $(ldd .gpubin/lowbit | awk '/libcublasLt/{print $3}')"
    ldd .gpubin/lowbit | grep "not found" && log "kernels: missing libraries (above)"
  else
    log "kernels: .gpubin/lowbit missing — run \`bash scripts/gpu/run.sh build-kernels\` first and carry .gpubin"
  fi
fi

if [[ " $steps " == *" kernels "* || " $steps " == *" matmul "* ]] && [ -x .gpubin/lowbit ]; then
  # bitsandbytes (a peer of both steps) from the slim wheel that build-kernels made.
  if ! python3 -c 'import bitsandbytes' 2>/dev/null && ls .gpubin/wheels/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-kb \
      .gpubin/wheels/*.whl && export PYTHONPATH="/tmp/site-kb:${PYTHONPATH:-}"
  fi
fi

if [[ " $steps " == *" probe "* ]] && [ -x .gpubin/lowbit ]; then
  # One command in the kernels' environment (a quick measurement between full runs).
  log "probe: ${PROBE:-}"
  timeout ${T_PROBE:-300} bash -c "${PROBE:-true}" > "$OUT/probe.log" 2>&1
  log "probe: exit $?"
  tail -n ${PROBE_TAIL:-60} "$OUT/probe.log"
fi

if [[ " $steps " == *" kernels "* ]] && [ -x .gpubin/lowbit ]; then
  for t in blockwise scaled; do
    t0=$(date +%s)
    timeout ${T_TESTS:-120} .gpubin/test_cuda_$t > "$OUT/test_$t.log" 2>&1; rc=$?
    log "kernel tests ($t): exit $rc ($(grep -E '^\[  (PASSED|FAILED)' "$OUT/test_$t.log" | tr '\n' ' ')) $(( $(date +%s) - t0 )) s"
    grep -E "Failure|FAILED|Expected|Which is|differ" "$OUT/test_$t.log" | head -20
  done
  t0=$(date +%s)
  timeout ${T_KB:-200} .gpubin/lowbit kernel-bench ${KB_ARGS:-} -o "$OUT/kernel_bench.h5" --json "$OUT/kernel_bench.json" \
    > "$OUT/kernel_bench.log" 2>&1; rc=$?
  log "kernel-bench: exit $rc after $(( $(date +%s) - t0 )) s"
  tail -n 5 "$OUT/kernel_bench.log"
  t0=$(date +%s)
  PYTHONUNBUFFERED=1 timeout ${T_PEERS:-200} python3 scripts/peer_bench.py run ${PB_ARGS:-} -o "$OUT/peer_bench.h5" \
    > "$OUT/peer_bench.log" 2>&1; rc=$?
  log "peer_bench: exit $rc after $(( $(date +%s) - t0 )) s"
  tail -n 5 "$OUT/peer_bench.log"
  python3 scripts/peer_bench.py compare "$OUT/kernel_bench.h5" "$OUT/peer_bench.h5" -o "$OUT/compare.txt" \
    > /dev/null 2>"$OUT/compare.err" || log "compare failed: $(tail -n 3 "$OUT/compare.err")"
fi

if [[ " $steps " == *" matmul "* ]] && [ -x .gpubin/lowbit ]; then
  # Issue 11: LLM.int8 / int8 / FP8 tests, lowbit's matmuls, their peers in the same table layout, ratios.
  .gpubin/test_cuda_llm_int8 > "$OUT/test_cuda_llm_int8.log" 2>&1; rc=$?
  log "matmul tests: exit $rc ($(grep -E '^\[  (PASSED|FAILED)' "$OUT/test_cuda_llm_int8.log" | tr '\n' ' '))"
  t0=$(date +%s)
  timeout ${T_MM:-300} .gpubin/lowbit kernel-bench --ops matmul,fp8quant ${MM_ARGS:-} -o "$OUT/kernel_bench_matmul.h5" \
    --json "$OUT/kernel_bench_matmul.json" > "$OUT/kernel_bench_matmul.log" 2>&1; rc=$?
  log "kernel-bench matmul: exit $rc after $(( $(date +%s) - t0 )) s"
  t0=$(date +%s)
  PYTHONUNBUFFERED=1 timeout ${T_MM_PEERS:-300} python3 scripts/peer_bench.py run --ops matmul ${MM_PB_ARGS:-${MM_ARGS:-}} \
    -o "$OUT/peer_bench_matmul.h5" > "$OUT/peer_bench_matmul.log" 2>&1; rc=$?
  log "peer_bench matmul: exit $rc after $(( $(date +%s) - t0 )) s"
  python3 scripts/peer_bench.py compare "$OUT/kernel_bench_matmul.h5" "$OUT/peer_bench_matmul.h5" \
    -o "$OUT/compare_matmul.txt" > /dev/null 2>"$OUT/compare_matmul.err" ||
    log "compare (matmul) failed: $(tail -n 3 "$OUT/compare_matmul.err")"
  grep -E "skipped|failed|FAILED" "$OUT/kernel_bench_matmul.log" "$OUT/peer_bench_matmul.log" | head -20
fi

if [[ " $steps " == *" sanitize "* ]] && [ -x .gpubin/test_cuda_blockwise ]; then
  for t in blockwise scaled; do
    for tool in memcheck racecheck; do
      t0=$(date +%s)
      LOWBIT_TEST_SMALL=1 timeout ${T_SANITIZE:-120} compute-sanitizer --tool $tool --error-exitcode 9 .gpubin/test_cuda_$t \
        > "$OUT/${tool}_$t.log" 2>&1; rc=$?
      log "$tool ($t): exit $rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/${tool}_$t.log" | tail -1)) $(( $(date +%s) - t0 )) s"
    done
  done
  # The 4-bit GEMMs' barriers (the windows kernel's mbarriers: up to 32 per CTA, beyond synccheck's default).
  t0=$(date +%s)
  LOWBIT_TEST_SMALL=1 timeout ${T_SANITIZE:-120} compute-sanitizer --tool synccheck --num-cuda-barriers 64 --error-exitcode 9 \
    .gpubin/test_cuda_blockwise --gtest_filter='*Gemm4*' > "$OUT/synccheck_gemm4.log" 2>&1; rc=$?
  log "synccheck (blockwise, Gemm4): exit $rc ($(grep -E 'ERROR SUMMARY' "$OUT/synccheck_gemm4.log" | tail -1)) $(( $(date +%s) - t0 )) s"
  # LLM.int8: memcheck on every test; racecheck and synccheck (the cluster's barriers) on the
  # small-M path's test, shrunk (the rest spends its time in cuBLASLt's kernels). LLM_SAN_FILTER overrides.
  if [ -x .gpubin/test_cuda_llm_int8 ]; then
    for tool in memcheck racecheck synccheck; do
      t0=$(date +%s)
      filter='*'
      [ $tool != memcheck ] && filter="${LLM_SAN_FILTER:-CudaLlmInt8.FusedSmallM*}"
      LOWBIT_TEST_SMALL=1 timeout ${T_SANITIZE:-120} compute-sanitizer --tool $tool --error-exitcode 9 .gpubin/test_cuda_llm_int8 \
        --gtest_filter="$filter" > "$OUT/${tool}_llm_int8.log" 2>&1; rc=$?
      log "$tool (llm_int8, $filter): exit $rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/${tool}_llm_int8.log" | tail -1)) $(( $(date +%s) - t0 )) s"
    done
  fi
fi

if [[ " $steps " == *" ncu "* ]] && [ -x .gpubin/lowbit ] && command -v ncu >/dev/null; then
  sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis --section SchedulerStats"
  timeout ${T_NCU:-90} ncu --clock-control none -k regex:'gemm4_pipe_kernel' -c 2 $sections \
    .gpubin/lowbit kernel-bench --ops gemm --shapes 8192x8192 --m 1,16 --gemm-formats nf4@64 --reps 1 --warmup 0 \
      --calls 1 -o /tmp/ncu_kb.h5 -q > "$OUT/ncu.txt" 2>&1; rc=$?
  timeout ${T_NCU:-90} ncu --clock-control none -k regex:'quant4_kernel|quant_mx8' -c 2 $sections \
    .gpubin/lowbit kernel-bench --ops quant --elements 67108864 --quant-formats nf4@64,mxfp8 --reps 1 --warmup 0 \
      --calls 1 -o /tmp/ncu_kb2.h5 -q >> "$OUT/ncu.txt" 2>&1; rc2=$?
  log "ncu: exit $rc / $rc2"
  if command -v cuobjdump >/dev/null; then
    cuobjdump -sass .gpubin/lowbit 2>/dev/null | awk '/Function : .*gemm4_pipe_kernel.*13__nv_bfloat16Li1ELi8E/{p=1} p{print} p&&/EXIT/{n++} p&&/\.L_x_[0-9]+:$/&&n>0{exit}' > "$OUT/sass_gemm4_m1.txt"
    cuobjdump -sass .gpubin/lowbit 2>/dev/null | awk '/Function : .*quant4_kernel.*13__nv_bfloat16Lb0E/{p=1} p{print} p&&/EXIT/{n++} p&&/\.L_x_[0-9]+:$/&&n>0{exit}' > "$OUT/sass_quant4.txt"
  fi
fi

# Few files come back from the machine: the logs travel as one archive.
if [[ " $steps " == *" kernels "* || " $steps " == *" sanitize "* || " $steps " == *" ncu "* || " $steps " == *" matmul "* ]] &&
   ls "$OUT"/*.log >/dev/null 2>&1; then
  (cd "$OUT" && tar czf logs.tgz --remove-files $(ls *.log ncu.txt sass_*.txt compare*.err gpu.txt 2>/dev/null))
fi
echo; cat "$OUT/summary.txt"
[ -f "$OUT/compare.txt" ] && cat "$OUT/compare.txt"
[ -f "$OUT/compare_matmul.txt" ] && cat "$OUT/compare_matmul.txt"
