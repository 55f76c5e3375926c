#!/usr/bin/env python3
"""quant_error_check.py LOWBIT — `lowbit quant-error` against ml_dtypes and numpy.

Independent reimplementations on the same data (a .npy the script writes):
  * unscaled e4m3fn, e5m2, e2m3fn, e3m2fn, e2m1fn: ml_dtypes astype round trip;
  * e4m3fn@tensor: absmax scaling done in numpy, conversion by ml_dtypes;
  * nf4@64: numpy blockwise absmax (fp32) with facts.md's NF4 table, nearest value
    (ties to the lower value; none occur on random data);
  * int8@row: numpy absmax per row, round half away from zero, 127 levels.
Metrics are recomputed in numpy from their definitions (design.md) and must
agree with lowbit's table to 1e-9 relative (they are the same numbers up to
summation order). Also: the results file reads with h5py + pandas alone and a
pivot works; bad input exits 2 with one line. Exit 77 (skip) without ml_dtypes.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import h5py
    import ml_dtypes
    import pandas as pd
except ImportError as e:  # pragma: no cover
    print(f"skip: {e}")
    sys.exit(77)

LOWBIT = sys.argv[1]
NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=np.float32)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def metrics(x, q):
    x = x.astype(np.float64).ravel()
    q = q.astype(np.float64).ravel()
    e = x - q
    rel = np.abs(x) >= np.finfo(np.float32).tiny
    return {
        "mse": np.mean(e * e),
        "max_abs_err": np.max(np.abs(e)),
        "mean_rel_err": np.mean(np.abs(e[rel]) / np.abs(x[rel])),
        "sqnr_db": 10 * np.log10(np.sum(x * x) / np.sum(e * e)),
    }


def nf4_blocks(x, block=64):
    flat = x.ravel()
    out = np.empty_like(flat)
    mids = (NF4[1:] + NF4[:-1]) / 2
    for b in range(0, flat.size, block):
        blk = flat[b:b + block]
        amax = np.float32(np.max(np.abs(blk)))
        y = (blk * np.float32(1 / amax)).astype(np.float32) if amax > 0 else blk
        idx = np.searchsorted(mids, y, side="left")  # x > midpoint goes up; ties stay low
        out[b:b + block] = NF4[idx] * amax
    return out.reshape(x.shape)


def int8_rows(x):
    amax = np.max(np.abs(x), axis=1, keepdims=True).astype(np.float32)
    s = amax / np.float32(127)
    y = x / s
    qi = np.sign(y) * np.floor(np.abs(y) + 0.5)
    return (np.clip(qi, -127, 127) * s).astype(np.float32)


def main():
    rng = np.random.default_rng(1234)
    rows, cols = 256, 1024
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "x.npy")
        np.save(data, x)
        out = os.path.join(d, "qe.h5")
        fmts = ["e4m3fn", "e5m2", "e2m3fn", "e3m2fn", "e2m1fn", "e4m3fn@tensor", "nf4@64", "int8@row"]
        r = subprocess.run([LOWBIT, "quant-error", "--formats", ",".join(fmts), "--dist", f"weights:{data}",
                            "-q", "-o", out], capture_output=True, text=True)
        check(r.returncode == 0, f"quant-error failed: {r.stderr}")
        if r.returncode != 0:
            return
        f = h5py.File(out, "r")
        df = pd.DataFrame(f["quant_error"][:])
        for c in ["format", "dist", "samples", "seed", "mse", "rmse", "max_abs_err", "mean_rel_err", "sqnr_db",
                  "bits_per_param", "n_nan", "n_clipped"]:
            check(c in df.columns, f"column {c}")
            check(f"{c}.unit" in f["quant_error"].attrs, f"unit of {c}")
        df["format"] = df["format"].str.decode("utf-8")
        piv = df.pivot_table(index="format", columns="dist", values="sqnr_db")
        check(piv.shape == (len(fmts), 1), "pivot by format x dist")

        ml = {"e4m3fn": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m3fn": ml_dtypes.float6_e2m3fn,
              "e3m2fn": ml_dtypes.float6_e3m2fn, "e2m1fn": ml_dtypes.float4_e2m1fn}
        ref = {k: x.astype(t).astype(np.float32) for k, t in ml.items()}
        amax = np.float32(np.max(np.abs(x)))
        s = np.float32(amax / np.float32(448))
        ref["e4m3fn@tensor"] = ((x / s).astype(ml_dtypes.float8_e4m3fn).astype(np.float32) * s).astype(np.float32)
        ref["nf4@64"] = nf4_blocks(x)
        ref["int8@row"] = int8_rows(x)
        for name, q in ref.items():
            row = df[df["format"] == name]
            check(len(row) == 1, f"one row for {name}")
            if len(row) != 1:
                continue
            m = metrics(x, q)
            # Scaled formats: lowbit may compute x * (1/s) where numpy does x / s — allow a rounding's worth.
            tol = 1e-9 if name in ml else 2e-3
            for k, v in m.items():
                got = float(row[k].iloc[0])
                ok = abs(got - v) <= tol * abs(v) + 1e-15
                check(ok, f"{name} {k}: lowbit {got!r} vs reference {v!r}")
            print(f"{name:14s} sqnr lowbit {float(row['sqnr_db'].iloc[0]):8.4f} dB, reference {m['sqnr_db']:8.4f} dB")
        check(df[df.format == "nf4@64"]["bits_per_param"].iloc[0] == 4.5, "nf4@64 is 4.5 bits (facts.md)")

        # Bad input: exit 2, one line, no output file.
        bad = os.path.join(d, "never.h5")
        for args in (["--formats", "e4m3fx"], ["--formats", "nf4", "--dist", "gauss"],
                     ["--formats", "nf4", "--shard", "1/0"], ["--formats", "nf4", "--dist", "weights:/nonexistent.npy"]):
            r = subprocess.run([LOWBIT, "quant-error", *args, "-o", bad], capture_output=True, text=True)
            check(r.returncode == 2 and r.stderr.count("\n") == 1, f"{args}: rc {r.returncode}, {r.stderr!r}")
        check(not os.path.exists(bad), "no output after errors")


main()
if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("quant_error_check: all passed")
