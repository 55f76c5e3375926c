#!/usr/bin/env python3
"""`scripts/peer_bench.py compare` on a small synthetic pair of HDF5 files
written here with h5py (no GPU, no torch): the issue-11 matmul tables must
show the numbers and the ratios of the files; a pair in the old layout
(without the outlier_frac / rounds columns) must still compare; peer_bench's
columns must be lowbit kernel-bench's, in its order (the report joins the
two tables); bad matmul options of `run` are exit 2 before any GPU work.

usage: peer_bench_check.py PATH-TO-LOWBIT   (exit 0 pass, 1 fail, 77 skipped)
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

SRC = Path(os.environ.get("LOWBIT_SOURCE_DIR", Path(__file__).resolve().parent.parent))
SCRIPT = SRC / "scripts" / "peer_bench.py"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


# lowbit kernel-bench's columns, read from its schema (experiments/drivers/kernel_bench.cpp).
schema = (SRC / "experiments" / "drivers" / "kernel_bench.cpp").read_text()
schema = schema[schema.index("Table kernel_bench_schema()"):]
schema = schema[:schema.index("return t;")]
LOWBIT_COLUMNS = re.findall(r'add_column\("(\w+)"', schema)
TYPES = {"op": "S32", "impl": "S32", "format": "S32", "dtype": "S8", "mode": "S8", "gpu": "S32",
         "elements": "<u8", "M": "<u8", "K": "<u8", "N": "<u8", "reps": "<i8", "calls": "<i8", "rotation": "<i8",
         "rounds": "<i8"}


def rows_array(rows, columns):
    dt = np.dtype([(c, TYPES.get(c, "<f8")) for c in columns])
    a = np.zeros(len(rows), dtype=dt)
    for i, r in enumerate(rows):
        for c in columns:
            v = r.get(c, 0)
            a[i][c] = v.encode() if isinstance(v, str) else v
    return a


def row(op, impl, fmt, M, us, mode="graph", frac=0.0, K=8192, N=8192, dtype="bf16", **kw):
    r = dict(op=op, impl=impl, format=fmt, dtype=dtype, M=M, K=K, N=N, mode=mode, median_us=us, p10_us=us,
             p90_us=us, min_us=us, max_us=us, reps=20, calls=2, rotation=2, bytes=1e6, flops=2.0 * M * N * K,
             gbps=1e6 / (us * 1e3), gpu="Test GPU", outlier_frac=frac, rounds=5 if mode == "graph" else 1)
    r.update(kw)
    return r


def write(path, rows, columns, **attrs):
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = 1
        for k, v in attrs.items():
            f.attrs[k] = v
        f.create_dataset("kernel_bench", data=rows_array(rows, columns))


def compare(a, b):
    r = subprocess.run([sys.executable, str(SCRIPT), "compare", str(a), str(b)], capture_output=True, text=True)
    check(r.returncode == 0, f"compare exit {r.returncode}: {r.stderr[-400:]}")
    return r.stdout


def line(text, *words):
    """The first line holding every one of `words`."""
    for l in text.splitlines():
        if all(w in l for w in words):
            return l
    return ""


def main():
    check(len(LOWBIT_COLUMNS) > 20 and LOWBIT_COLUMNS[-2:] == ["outlier_frac", "rounds"],
          f"kernel_bench schema parsed as {LOWBIT_COLUMNS}")
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, str(SCRIPT.parent))
    import peer_bench  # must import without torch
    check([c for c, _ in peer_bench.COLUMNS] == LOWBIT_COLUMNS,
          f"peer_bench COLUMNS {[c for c, _ in peer_bench.COLUMNS]} != lowbit's {LOWBIT_COLUMNS}")
    check(peer_bench.outlier_every(0.001) == 1000 and peer_bench.outlier_every(0.01) == 100 and
          peer_bench.outlier_every(0.4) == 3 and peer_bench.outlier_every(0) == 0, "outlier_every != std::lround(1/f)")

    lowbit = [row("copy", "cuda", "", 0, 700.0, mode="eager", K=0, N=0, gbps=3000.0),
              row("matmul", "cublaslt", "bf16", 2048, 400.0), row("matmul", "cublaslt", "bf16", 2048, 410.0, "eager"),
              row("matmul", "lowbit", "int8", 2048, 200.0, dtype="int32"),
              row("matmul", "lowbit", "int8", 2048, 205.0, "eager", dtype="int32"),
              row("matmul", "lowbit", "e4m3fn", 2048, 200.0), row("matmul", "lowbit", "e5m2xe4m3fn", 2048, 210.0),
              row("linear", "lowbit", "int8@row", 2048, 250.0), row("linear", "lowbit", "e4m3fn@tensor", 2048, 230.0),
              row("linear", "lowbit", "llm.int8", 2048, 360.0, frac=0.001),
              row("linear", "lowbit", "llm.int8", 2048, 370.0, "eager", frac=0.001),
              row("linear", "lowbit", "llm.int8", 2048, 300.0, frac=0.0),
              row("matmul", "cublaslt", "bf16", 16, 33.0), row("matmul", "lowbit", "int8", 16, 21.0, dtype="int32"),
              row("quantize", "lowbit", "e4m3fn@tensor", 0, 300.0, K=0, N=0, elements=1 << 28, gbps=2700.0),
              row("quantize", "lowbit-delayed", "e4m3fn@tensor", 0, 200.0, K=0, N=0, elements=1 << 28, gbps=4000.0),
              row("copy", "cuda", "e4m3fn@tensor", 0, 150.0, K=0, N=0, elements=1 << 28, gbps=3200.0)]
    peers = [row("matmul", "torch", "bf16", 2048, 380.0), row("matmul", "torch._int_mm", "int8", 2048, 350.0, dtype="int32"),
             row("matmul", "torch._scaled_mm", "e4m3fn", 2048, 198.0),
             row("linear", "bnb", "llm.int8", 2048, 840.0, "eager", frac=0.001, dtype="fp16"),
             row("linear", "bnb", "llm.int8", 2048, 700.0, "eager", frac=0.0, dtype="fp16")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp / "kb.h5", lowbit, LOWBIT_COLUMNS, gpu_name="Test GPU", copy_gbps=3000.0)
        write(tmp / "peers.h5", peers, LOWBIT_COLUMNS, copy_gbps=2990.0, notes="torch._int_mm needs M > 16")
        out = compare(tmp / "kb.h5", tmp / "peers.h5")
        if os.environ.get("VERBOSE"):
            print(out)
        mm = line(out, "8192x8192", " 2048 |", "400.0( 410.0)")
        # int8 vs bf16 400/200, vs _int_mm 350/200, e4m3 vs bf16 400/200, vs _scaled_mm 198/200, int8@row 400/250.
        check(re.search(r"\|\s+2\.00x\s+1\.75x\s+2\.00x\s+0\.99x\s+1\.60x\s*$", mm) is not None, f"matmul row: {mm!r}")
        check("380.0" in mm and "350.0" in mm and "198.0" in mm and "210.0" in mm, f"peer times missing: {mm!r}")
        m16 = line(out, "8192x8192", "   16 |")
        # No _int_mm at M = 16: its cell and ratio are '-'; int8 vs bf16 = 33/21.
        check(re.search(r"\|\s+1\.57x\s+-\s+-", m16) is not None, f"M = 16 row: {m16!r}")
        llm = line(out, "8192x8192", " 2048", "0.1 %")
        # vs bf16 400/360, vs bnb 840/360, eager/eager 840/370.
        check(re.search(r"360\.0\( 370\.0\).*840\.0 \|\s+1\.11x\s+2\.33x\s+2\.27x\s*$", llm) is not None,
              f"LLM.int8 row: {llm!r}")
        llm0 = line(out, "8192x8192", " 2048", " 0 %")
        check(re.search(r"\|\s+1\.33x\s+2\.33x\s+-\s*$", llm0) is not None, f"LLM.int8 row at 0 %: {llm0!r}")
        check(re.search(r"lowbit-delayed\s+268435456\s+200\.0\s+4000\s+133\.3%\s+125\.0%", out) is not None,
              f"fp8 quantize row: {line(out, 'lowbit-delayed')!r}")
        check("torch._int_mm needs M > 16" in out, "peer notes not printed")
        check("blockwise" not in out and "4-bit weight" not in out, "empty sections printed")

        # The old layout (no outlier_frac / rounds) still compares: its 4-bit table as before.
        old_cols = [c for c in LOWBIT_COLUMNS if c not in ("outlier_frac", "rounds")]
        old = [row("gemm4", "lowbit", "nf4@64", 1, 20.0, x_ideal=1.5), row("gemm", "cublaslt", "bf16", 1, 45.0),
               row("dequantize", "lowbit", "nf4@64", 0, 200.0, K=0, N=0, gbps=2500.0, pct_copy=80.0)]
        write(tmp / "old.h5", old, old_cols, copy_gbps=3000.0)
        write(tmp / "oldp.h5", [row("gemm4", "bnb", "nf4@64", 1, 34.0)], old_cols)
        out = compare(tmp / "old.h5", tmp / "oldp.h5")
        check("1.7x" in line(out, "8192x8192", "20.0") and "int8 / FP8" not in out, f"old layout: {out[-600:]!r}")

    # Bad matmul options: exit 2 before torch is imported.
    for args, words in ((["--matmul-m", "0"], "--matmul-m"), (["--outliers", "0.7"], "--outliers"),
                        (["--matmul-shapes", "8192x100"], "multiples of 16"), (["--rounds", "0"], "--rounds")):
        r = subprocess.run([sys.executable, str(SCRIPT), "run", "--ops", "matmul", *args], capture_output=True, text=True)
        check(r.returncode == 2 and words in r.stderr, f"run {args}: exit {r.returncode}, {r.stderr.strip()!r}")
    for f in failures:
        print("FAIL:", f)
    print(f"peer_bench check: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
