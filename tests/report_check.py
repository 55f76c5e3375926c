#!/usr/bin/env python3
"""`lowbit report` on small HDF5 files written here with h5py (no lowbit
code): the Markdown tables' numbers must equal the files' numbers, every
figure index.md references must exist and be a valid PNG of sensible size,
the same input must give byte-identical output, and a bad file must give a
clear error with exit 2.

Usage: report_check.py path/to/lowbit
"""
import hashlib
import re
import struct
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

LOWBIT = sys.argv[1]


def write_results(path, tables, schema_version=1):
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = schema_version
        f.attrs["experiment"] = "quant-error"
        f.attrs["command_line"] = "lowbit quant-error --test"
        f.attrs["git_commit"] = "0123456789ab"
        f.attrs["hostname"] = "testhost"
        for name, rows in tables.items():
            f.create_dataset(name, data=rows)


def quant_error_rows():
    dt = np.dtype([("format", "S16"), ("dist", "S16"), ("samples", "<i8"), ("seed", "<u8"), ("mse", "<f8"),
                   ("rmse", "<f8"), ("max_abs_err", "<f8"), ("mean_rel_err", "<f8"), ("sqnr_db", "<f8"),
                   ("bits_per_param", "<f8"), ("n_nan", "<u8"), ("n_clipped", "<u8")])
    rows = [(b"nf4@64", b"normal", 4096, 7, 0.0095, 0.097, 0.41, 0.08, 20.2, 4.5, 0, 0),
            (b"nf4@64", b"normal", 4096, 8, 0.0097, 0.098, 0.40, 0.08, 20.0, 4.5, 0, 0),
            (b"e4m3fn", b"normal", 4096, 7, 0.00099, 0.031, 0.12, 0.02, 30.05, 8.0, 0, 0),
            (b"e4m3fn", b"normal", 4096, 8, 0.00101, 0.032, 0.13, 0.02, 29.95, 8.0, 0, 0),
            (b"int4@64", b"normal", 4096, 7, 0.02, 0.14, 0.5, 0.1, 17.0, 4.5, 0, 3)]
    return np.array(rows, dtype=dt)


KB_COLUMNS = [("op", "S16"), ("impl", "S20"), ("format", "S16"), ("dtype", "S8"), ("elements", "<u8"), ("M", "<u8"),
              ("K", "<u8"), ("N", "<u8"), ("mode", "S8"), ("median_us", "<f8"), ("p10_us", "<f8"), ("p90_us", "<f8"),
              ("min_us", "<f8"), ("max_us", "<f8"), ("reps", "<i8"), ("calls", "<i8"), ("rotation", "<i8"),
              ("bytes", "<f8"), ("flops", "<f8"), ("gbps", "<f8"), ("tflops", "<f8"), ("pct_copy", "<f8"),
              ("ideal_us", "<f8"), ("x_ideal", "<f8"), ("gpu", "S16"), ("outlier_frac", "<f8"), ("rounds", "<i8")]


def kernel_bench_rows(rows, later_columns=True):
    """kernel_bench rows from (op, impl, format, M, mode, median_us, outlier_frac[, gbps, elements])."""
    cols = KB_COLUMNS if later_columns else KB_COLUMNS[:-2]
    a = np.zeros(len(rows), dtype=np.dtype(cols))
    for i, (op, impl, fmt, m, mode, us, frac, *rest) in enumerate(rows):
        a[i]["op"], a[i]["impl"], a[i]["format"], a[i]["mode"] = op.encode(), impl.encode(), fmt.encode(), mode.encode()
        a[i]["dtype"], a[i]["gpu"] = b"bf16", b"Test GPU"
        a[i]["M"], a[i]["K"], a[i]["N"] = m, (8192 if m else 0), (8192 if m else 0)
        a[i]["median_us"] = us
        a[i]["gbps"] = rest[0] if rest else 1.0
        a[i]["elements"] = rest[1] if len(rest) > 1 else 0
        if later_columns:
            a[i]["outlier_frac"], a[i]["rounds"] = frac, 5
    return a


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def run_report(files, out):
    return subprocess.run([LOWBIT, "report", *map(str, files), "-o", str(out)], capture_output=True, text=True)


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res = tmp / "qe.h5"
        write_results(res, {"quant_error": quant_error_rows()})
        r = run_report([res], tmp / "rep")
        assert r.returncode == 0, r.stderr
        md = (tmp / "rep" / "index.md").read_text()
        # Mean over seeds, as the report says: nf4@64 (20.2 + 20.0)/2 = 20.1 dB, e4m3fn 30.0 dB.
        rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\S+) \| [^\n]*$", md, re.M)}
        for fmt, sqnr, bits, clipped in (("nf4@64", "20.1", "4.5", "0"), ("e4m3fn", "30", "8", "0"), ("int4@64", "17", "4.5", "3")):
            cells = [c.strip() for c in rows.get(fmt, "").strip("|").split("|")]
            if cells[:3] != [fmt, bits, sqnr] or cells[6] != clipped:
                failures.append(f"row for {fmt}: {cells} (want bits {bits}, SQNR {sqnr}, clipped {clipped})")
        # Ranked by SQNR: e4m3fn before nf4@64 before int4@64.
        order = [m.group(1) for m in re.finditer(r"^\| (e4m3fn|nf4@64|int4@64) \|", md, re.M)]
        if order != ["e4m3fn", "nf4@64", "int4@64"]:
            failures.append(f"ranking {order}")
        if "lowbit quant-error --test" not in md or "0123456789ab" not in md:
            failures.append("provenance (command line, commit) missing")
        figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
        if not figures:
            failures.append("no figure referenced")
        for fig in figures:
            w, h = png_size(tmp / "rep" / fig)
            if not (400 <= w <= 3000 and 300 <= h <= 3000):
                failures.append(f"{fig}: odd size {w}x{h}")
        # Deterministic: a second run gives the same bytes.
        r2 = run_report([res], tmp / "rep2")
        if r2.returncode != 0 or digest(tmp / "rep") != digest(tmp / "rep2"):
            failures.append("second run differs")
        # Bad inputs: unknown schema version, no table, missing file → exit 2 with a message.
        bad = tmp / "bad.h5"
        write_results(bad, {"quant_error": quant_error_rows()}, schema_version=99)
        empty = tmp / "empty.h5"
        write_results(empty, {})
        for files, what in (([bad], "schema_version"), ([empty], "no results table"), ([tmp / "none.h5"], "no such file")):
            r = run_report(files, tmp / "badrep")
            if r.returncode != 2 or what not in r.stderr:
                failures.append(f"bad input {files[0].name}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
        # kernel_bench with issue 11's matmul rows, beside a peer file in the older layout (no outlier_frac /
        # rounds columns): the matmul tables hold the files' numbers and the ratios.
        kb = tmp / "kb.h5"
        write_results(kb, {"kernel_bench": kernel_bench_rows([
            ("copy", "cuda", "", 0, "eager", 700.0, 0.0, 3000.0),
            ("matmul", "cublaslt", "bf16", 2048, "graph", 400.0, 0.0), ("matmul", "lowbit", "int8", 2048, "graph", 200.0, 0.0),
            ("matmul", "lowbit", "e4m3fn", 2048, "graph", 210.0, 0.0),
            ("linear", "lowbit", "llm.int8", 2048, "graph", 360.0, 0.001),
            ("linear", "lowbit", "llm.int8", 2048, "eager", 370.0, 0.001),
            ("quantize", "lowbit-delayed", "e4m3fn@tensor", 0, "graph", 200.0, 0.0, 2400.0, 1 << 28),
            ("copy", "cuda", "e4m3fn@tensor", 0, "graph", 150.0, 0.0, 3200.0, 1 << 28),  # the same bytes copied
            ("quantize", "lowbit", "nf4@64", 0, "graph", 400.0, 0.0, 1700.0, 1 << 28),
            ("dequantize", "lowbit-generic", "nvfp4", 0, "graph", 1300.0, 0.0, 500.0, 1 << 28)])})
        kp = tmp / "kp.h5"
        write_results(kp, {"kernel_bench": kernel_bench_rows([
            ("matmul", "torch._int_mm", "int8", 2048, "graph", 350.0, 0.0),
            ("matmul", "torch._scaled_mm", "e4m3fn", 2048, "graph", 189.0, 0.0),
            # bitsandbytes' quantize_4bit cannot be captured: compared by its eager time, and marked so
            ("quantize", "bnb", "nf4@64", 0, "eager", 2800.0, 0.0, 250.0, 1 << 28)], later_columns=False)})
        r = run_report([kb, kp], tmp / "kbrep")
        if r.returncode != 0:
            failures.append(f"kernel_bench report: exit {r.returncode}: {r.stderr.strip()[-300:]}")
        else:
            md = (tmp / "kbrep" / "index.md").read_text()
            mm = next((l for l in md.splitlines() if l.startswith("| 8192x8192 | 2048 | 400")), "")
            cells = [c.strip() for c in mm.strip("|").split("|")]
            # int8 vs bf16 400/200, vs _int_mm 350/200, e4m3 vs _scaled_mm 189/210.
            if cells[-3:] != ["2.00×", "1.75×", "0.90×"] or "350" not in cells[5]:
                failures.append(f"matmul row: {cells}")
            llm = next((l for l in md.splitlines() if "| 0.1 % |" in l), "")
            cells = [c.strip() for c in llm.strip("|").split("|")]
            # lowbit 360 (eager 370), bf16 400: vs bf16 1.11×; no bnb rows: —.
            if cells[3:5] != ["360.0", "370.0"] or cells[7] != "1.11×" or cells[8] != "—":
                failures.append(f"LLM.int8 row: {cells}")
            # 2400 GB/s: 80 % of the 3000 GB/s ceiling, 75 % of the same-size copy's 3200.
            if not re.search(r"^\| delayed \| 268435456 \| 200\.0 \| 2400 \| 80\.0 \| 75\.0 \|$", md, re.M):
                failures.append("FP8 quantize row missing or wrong")
            if "(3000 GB/s)" not in md:
                failures.append("copy ceiling in the header is not the 1 GiB row alone")
            if not re.search(r"^\| quantize \| nf4@64 \| bf16 \| 400(\.0)? \|.*\| bnb \(eager only\) \| 2800\.0 \| 7\.00× \|$", md, re.M):
                failures.append("quantize row against the eager-only bnb peer missing or wrong")
            if not re.search(r"^\| dequantize \| nvfp4 \(generic path\) \| bf16 \| 1300(\.0)? \|", md, re.M):
                failures.append("generic-path dequantize row missing")
            r2 = run_report([kb, kp], tmp / "kbrep2")
            if r2.returncode != 0 or digest(tmp / "kbrep") != digest(tmp / "kbrep2"):
                failures.append("kernel_bench report: second run differs")
    for f in failures:
        print("FAIL:", f)
    print(f"report check: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
