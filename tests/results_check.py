#!/usr/bin/env python3
"""Reads lowbit's results and .npy files with h5py, pandas and numpy alone.

usage: results_check.py PATH-TO-LOWBIT   (exit 0 pass, 1 fail, 77 skipped)

Expected numbers come from ml_dtypes' finfo and casts and from the formats'
definitions written out here, never from lowbit.
"""
import datetime
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import ml_dtypes
    import numpy as np
    import pandas as pd
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

LOWBIT = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def lowbit(*args, cwd, stdin=""):
    r = subprocess.run([LOWBIT, *args], cwd=cwd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"lowbit {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


ML = {  # lowbit name -> ml_dtypes type
    "e4m3fn": ml_dtypes.float8_e4m3fn,
    "e5m2": ml_dtypes.float8_e5m2,
    "e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "e2m1fn": ml_dtypes.float4_e2m1fn,
    "e3m2fn": ml_dtypes.float6_e3m2fn,
    "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
}

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "f.h5")
    lowbit("formats", *ML, "--values", "-o", path, "-q", cwd=tmp)

    with h5py.File(path) as f:
        df = pd.DataFrame(f["formats"][:])
        df["name"] = df["name"].str.decode("utf-8")
        df = df.set_index("name")
        for name, t in ML.items():
            fi = ml_dtypes.finfo(t)
            row = df.loc[name]
            check(row["max_finite"] == float(fi.max), f"{name} max_finite {row['max_finite']} != {fi.max}")
            check(row["min_normal"] == float(fi.smallest_normal), f"{name} min_normal")
            check(row["min_subnormal"] == float(fi.smallest_subnormal), f"{name} min_subnormal")
            check(row["epsilon"] == float(fi.eps), f"{name} epsilon")
            check(row["bits"] == fi.bits, f"{name} bits")
            check(row["man_bits"] == fi.nmant, f"{name} man_bits")
            # Every code through ml_dtypes: its finite values and NaN positions.
            # (4- and 6-bit ml_dtypes hold one code per byte.)
            codes = np.arange(2 ** fi.bits, dtype=np.uint8 if fi.bits <= 8 else np.uint16)
            with np.errstate(invalid="ignore"):
                ref = codes.view(t).astype(np.float64)
            vals = pd.DataFrame(f[f"values/{name}"][:])
            check(list(vals["code"]) == list(range(2 ** fi.bits)), f"{name} codes")
            v = vals["value"].to_numpy()
            check(np.array_equal(np.isnan(v), np.isnan(ref)), f"{name} NaN codes")
            ok = ~np.isnan(ref)
            check(np.array_equal(v[ok], ref[ok]), f"{name} values")
            check(np.array_equal(np.signbit(v[ok]), np.signbit(ref[ok])), f"{name} signs of zero")
            check(row["finite_values"] == len(set(ref[np.isfinite(ref)].tolist())), f"{name} finite_values")
            check(bool(row["has_inf"]) == bool(np.isinf(ref).any()), f"{name} has_inf")
        # The E2M1 value set of facts.md.
        e2m1 = pd.DataFrame(f["values/e2m1fn"][:])["value"].to_numpy()
        check(sorted(set(np.abs(e2m1).tolist())) == [0, 0.5, 1, 1.5, 2, 3, 4, 6], "E2M1 values")
        check(f["formats"].attrs["max_finite.unit"] == "1", "unit attribute")
        check(f["formats"].attrs["schema_version"] == 1, "schema_version")
        check(df["has_inf"].dtype == bool, "bool columns read as bool")
        for key in ("lowbit_version", "git_commit", "command_line", "hostname", "cpu", "gpu", "cuda_version"):
            check(isinstance(f.attrs.get(key), str) and f.attrs[key] != "", f"root attribute {key}")
        for key in ("start_time", "end_time"):
            t = datetime.datetime.strptime(f.attrs[key], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
            now = datetime.datetime.now(datetime.timezone.utc)
            check(abs((now - t).total_seconds()) < 3600, f"{key} is now")
        check(f.attrs["experiment"] == "formats", "experiment attribute")

    lowbit("formats", "e2m1fn", "e3m0", "-o", path, "--append", "-q", cwd=tmp)
    with h5py.File(path) as f:
        names = [n.decode() for n in f["formats"]["name"]]
        check(names == list(ML) + ["e2m1fn", "e3m0"], f"append rows: {names}")
        check(len(f["runs"]) == 2, "two runs recorded")
        check("values" in f and "e4m3fn" in f["values"], "values kept on append")

    # convert: numpy writes the input, ml_dtypes is the reference cast.
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 5)) * 100).astype(np.float32)
    np.save(os.path.join(tmp, "x.npy"), x)
    lowbit("convert", "-i", "x.npy", "--format", "e4m3fn", "--codes", "c.npy", "-o", "d.npy", cwd=tmp)
    codes = np.load(os.path.join(tmp, "c.npy"))
    dec = np.load(os.path.join(tmp, "d.npy"))
    ref = np.clip(x, -448, 448).astype(ml_dtypes.float8_e4m3fn)  # lowbit saturates by default
    check(codes.dtype == np.uint8 and codes.shape == x.shape, "codes dtype/shape")
    check(np.array_equal(codes, ref.view(np.uint8)), "e4m3fn codes equal ml_dtypes")
    check(dec.dtype == np.float32 and np.array_equal(dec, ref.astype(np.float32)), "decoded equal ml_dtypes")
    # bfloat16 as ml_dtypes saves it (|V2) and float64.
    np.save(os.path.join(tmp, "b.npy"), x.astype(ml_dtypes.bfloat16))
    lowbit("convert", "-i", "b.npy", "--input-dtype", "bf16", "--format", "e5m2", "--codes", "c.npy", cwd=tmp)
    ref = x.astype(ml_dtypes.bfloat16).astype(ml_dtypes.float8_e5m2)
    check(np.array_equal(np.load(os.path.join(tmp, "c.npy")), ref.view(np.uint8)), "bf16 -> e5m2 codes")
    np.save(os.path.join(tmp, "x64.npy"), x.astype(np.float64) / 1000)
    lowbit("convert", "-i", "x64.npy", "--format", "e2m1fn", "--codes", "c.npy", cwd=tmp)
    ref = (x.astype(np.float64) / 1000).astype(ml_dtypes.float4_e2m1fn)
    check(np.array_equal(np.load(os.path.join(tmp, "c.npy")), ref.view(np.uint8)), "f64 -> e2m1fn codes")
    check(sorted(os.listdir(tmp)) == ["b.npy", "c.npy", "d.npy", "f.h5", "x.npy", "x64.npy"], "no temporaries")

print("results_check:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
