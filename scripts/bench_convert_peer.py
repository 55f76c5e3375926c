#!/usr/bin/env python3
"""The CPU conversion peer: ml_dtypes astype (fp32 -> format and back) on the
same data as kernels/bench/bench_convert.cpp (N(0,1)*8, 2^16 floats, one
thread), reported as elements per second. Run it beside bench_convert so the
ratio comes from one machine and one session."""
import time

import ml_dtypes
import numpy as np

N = 1 << 16
x = (np.random.default_rng(7).standard_normal(N) * 8).astype(np.float32)


def rate(fn, repeats=200):
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return N / best


for name in ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"]:
    t = getattr(ml_dtypes, name)
    y = x.astype(t)
    print(f"ml_dtypes {ml_dtypes.__version__} fp32->{name}: {rate(lambda: x.astype(t)) / 1e6:7.1f} M elem/s   "
          f"{name}->fp32: {rate(lambda: y.astype(np.float32)) / 1e6:7.1f} M elem/s")
