#!/usr/bin/env bash
# Builds and runs the three measurement probes on the GPU machine (nvcc there; not part of the CMake build):
#   device run: command "bash scripts/gpu/probes/run.sh" (nothing to carry)
set -euo pipefail
cd "$(dirname "$0")"
bin="${TMPDIR:-/tmp}/lowbit-probes"
mkdir -p "$bin"
nvcc -O2 -std=c++17 -arch=sm_90 -o "$bin/read_floor" read_floor.cu
nvcc -O2 -std=c++17 -arch=sm_90 -o "$bin/resident_floor" resident_floor.cu
nvcc -O2 -std=c++17 -arch=sm_90 -o "$bin/cublaslt_candidates" cublaslt_candidates.cu -lcublasLt
nvidia-smi --query-gpu=name --format=csv,noheader
"$bin/read_floor"
"$bin/resident_floor"
for M in 128 2048; do
  "$bin/cublaslt_candidates" "$M" 1 0
  "$bin/cublaslt_candidates" "$M" 1 1
  "$bin/cublaslt_candidates" "$M" 0 0
done
