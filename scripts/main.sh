#!/usr/bin/env bash
# Sets everything up, builds, and runs lowbit's main job: a format
# comparison with sensible defaults. Extra arguments go to that command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
if build/release/bin/lowbit compare --help >/dev/null 2>&1; then
  exec build/release/bin/lowbit compare "$@"
else
  exec build/release/bin/lowbit formats "$@"
fi
