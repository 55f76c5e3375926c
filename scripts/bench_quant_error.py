#!/usr/bin/env python3
"""bench_quant_error.py [LOWBIT] [--samples N] [--repeat R] — quant-error throughput.

Measures, on this machine in one run (design.md: speed claims are ratios
against a peer measured in the same run):
  * `lowbit quant-error` samples/s for e4m3fn, nf4@64 and int8@row on N(0,1):
      - on lowbit's own generator (--dist normal: generation + quantization + metrics),
      - on a fixed .npy of N(0,1) data (weights:x.npy: load + quantization + metrics),
    as whole-command wall time (process start and HDF5 write included) and the
    rate lowbit reports for its cells;
  * ml_dtypes: numpy astype(float8_e4m3fn).astype(float32) round trip on the same
    .npy data, alone and with the same metrics computed in numpy;
  * the wall time of `lowbit compare` (default arguments).
Median of --repeat runs. OMP_NUM_THREADS is left as set (default: all cores).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("lowbit", nargs="?", default=os.path.join(here, "..", "build", "experiments", "bin", "lowbit"))
p.add_argument("--samples", type=int, default=4_000_000)
p.add_argument("--repeat", type=int, default=3)
p.add_argument("--no-compare", action="store_true")
a = p.parse_args()


def run(args):
    t = time.perf_counter()
    r = subprocess.run([a.lowbit, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"lowbit {' '.join(args)} failed: {r.stderr}")
    m = re.search(r"= ([0-9.e+]+) values/s", r.stderr)
    return wall, float(m.group(1)) if m else float("nan")


def median_of(fn):
    return statistics.median(fn() for _ in range(a.repeat))


with tempfile.TemporaryDirectory() as d:
    x = np.random.default_rng(0).standard_normal(a.samples).astype(np.float32)
    x = x.reshape(-1, 3200) if a.samples % 3200 == 0 else x.reshape(1, -1)
    data = os.path.join(d, "x.npy")
    np.save(data, x)
    out = os.path.join(d, "o.h5")
    print(f"N(0,1), {a.samples:.3g} values, median of {a.repeat}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'what':44s} {'wall s':>8s} {'values/s (wall)':>16s} {'values/s (cells)':>17s}")
    for fmt in ["e4m3fn", "e4m3fn@tensor", "nf4@64", "int8@row"]:
        for src, label in [("normal", "generated"), (f"weights:{data}", "same .npy")]:
            res = [run(["quant-error", "--formats", fmt, "--dist", src, "--samples", str(a.samples), "-o", out])
                   for _ in range(a.repeat)]
            wall = statistics.median(r[0] for r in res)
            cells = statistics.median(r[1] for r in res)
            print(f"lowbit quant-error {fmt:14s} {label:10s} {wall:8.3f} {a.samples / wall:16.3g} {cells:17.3g}")

    import ml_dtypes

    def astype():
        t = time.perf_counter()
        q = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
        return time.perf_counter() - t, q

    def astype_metrics():
        t = time.perf_counter()
        q = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
        xd = x.astype(np.float64)
        e = xd - q
        ae = np.abs(e)
        mse = np.mean(e * e)
        mx = ae.max()
        rel = np.mean(ae / np.abs(xd))
        sq = 10 * np.log10(np.sum(xd * xd) / np.sum(e * e))
        return time.perf_counter() - t, (mse, mx, rel, sq)

    t1 = statistics.median(astype()[0] for _ in range(a.repeat))
    t2 = statistics.median(astype_metrics()[0] for _ in range(a.repeat))
    print(f"{'ml_dtypes e4m3fn astype round trip':44s} {t1:8.3f} {a.samples / t1:16.3g}")
    print(f"{'ml_dtypes e4m3fn astype + numpy metrics':44s} {t2:8.3f} {a.samples / t2:16.3g}")

    if not a.no_compare:
        walls = []
        for _ in range(1 if a.repeat < 3 else 2):
            t = time.perf_counter()
            r = subprocess.run([a.lowbit, "compare", "-q", "-o", os.path.join(d, "compare.h5")], capture_output=True)
            walls.append(time.perf_counter() - t)
        print(f"{'lowbit compare (default)':44s} {statistics.median(walls):8.3f}")
