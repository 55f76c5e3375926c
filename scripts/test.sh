#!/usr/bin/env bash
# Sets everything up, builds (release), and runs every test through CTest.
# With --asan, also builds and tests under Address + UB sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
ctest --preset release
if [ "${1:-}" = "--asan" ]; then
  bash scripts/build.sh asan
  ctest --preset asan
fi
