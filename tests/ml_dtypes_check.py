#!/usr/bin/env python3
"""lowbit's value tables and roundings against ml_dtypes, for every format
ml_dtypes has. Runs `lowbit convert` (the CLI a researcher uses) on .npy
files and compares the codes bit for bit.

  value tables: every code of the format, decoded by ml_dtypes, must encode
                back to the same code in lowbit and decode to the same value;
  roundings:    every midpoint between neighbouring values and ±1 fp32 ulp
                around it, specials, and 10^6 random fp32 values must give
                ml_dtypes' code (NaN results compared as NaN).

Usage: ml_dtypes_check.py path/to/lowbit        (exit 77: ml_dtypes missing)
"""
import os
import subprocess
import sys
import tempfile

try:
    import ml_dtypes
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

LOWBIT = sys.argv[1]
# lowbit name -> ml_dtypes type
FORMATS = {
    "e4m3fn": "float8_e4m3fn",
    "e5m2": "float8_e5m2",
    "e4m3fnuz": "float8_e4m3fnuz",
    "e5m2fnuz": "float8_e5m2fnuz",
    "e4m3": "float8_e4m3",
    "e3m4": "float8_e3m4",
    "e4m3b11fnuz": "float8_e4m3b11fnuz",
    "e2m3fn": "float6_e2m3fn",
    "e3m2fn": "float6_e3m2fn",
    "e2m1fn": "float4_e2m1fn",
    "e8m0fnu": "float8_e8m0fnu",
    "bf16": "bfloat16",
}


def lowbit_convert(fmt, x, tmp):
    src = os.path.join(tmp, "in.npy")
    codes = os.path.join(tmp, "codes.npy")
    out = os.path.join(tmp, "out.npy")
    np.save(src, x.astype(np.float32))
    subprocess.run([LOWBIT, "convert", "--format", fmt, "--preset", "ml_dtypes", "-i", src,
                    "--codes", codes, "-o", out], check=True, stderr=subprocess.DEVNULL)
    return np.load(codes).astype(np.uint32), np.load(out)


def bits_of(t, x):
    y = np.asarray(x, dtype=np.float32).astype(t)
    width = np.dtype(t).itemsize
    raw = y.view(np.uint8 if width == 1 else np.uint16).astype(np.uint32)
    nbits = {"float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4}.get(t.__name__)
    return raw if nbits is None else raw & ((1 << nbits) - 1)


def check(fmt, tname, tmp):
    t = getattr(ml_dtypes, tname)
    width = np.dtype(t).itemsize
    nbits = {"float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4}.get(tname, 8 * width)
    all_codes = np.arange(1 << nbits, dtype=np.uint32)
    storage = np.uint8 if width == 1 else np.uint16
    values = all_codes.astype(storage).view(t).astype(np.float32)
    failures = 0

    # Value table: encode(decode(c)) == c and decode agrees, for every non-NaN code.
    codes, decoded = lowbit_convert(fmt, values, tmp)
    finite = ~np.isnan(values)
    # −0 and +0 share a value; ml_dtypes' −0 code decodes to −0.0, which lowbit keeps.
    bad = finite & ((codes != all_codes) | (decoded.view(np.uint32) != values.view(np.uint32)))
    if bad.any():
        failures += int(bad.sum())
        i = np.flatnonzero(bad)[:5]
        print(f"{fmt}: value table mismatch at codes {all_codes[i]}: ml_dtypes {values[i]} lowbit codes {codes[i]} values {decoded[i]}")
    if not np.array_equal(np.isnan(decoded), np.isnan(values)):
        failures += 1
        print(f"{fmt}: NaN codes differ")

    # Roundings: midpoints ±1 ulp, specials, random values.
    v = np.unique(values[np.isfinite(values)].astype(np.float64))
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    with np.errstate(over="ignore"):  # E8M0's next value beyond max is inf in fp32
        top = np.float32(v[-1] + (v[-1] - v[-2]))
        pts = np.concatenate([mids, v.astype(np.float32), [top, v[-1] * 2, v[1] / 4]]).astype(np.float32)
    near = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)), np.nextafter(pts, np.float32(-np.inf))])
    rng = np.random.default_rng(4)
    randbits = rng.integers(0, 2**32, 500_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    centre = np.sqrt(float(v[-1]) * float(v[v > 0][0]))
    randlog = (centre * np.exp2(rng.uniform(-20, 20, 500_000)) * rng.choice([-1, 1], 500_000)).astype(np.float32)
    specials = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0], dtype=np.float32)
    x = np.concatenate([near, -near, randbits, randlog, specials]).astype(np.float32)
    with np.errstate(all="ignore"):
        want = bits_of(t, x)
        want_val = x.astype(t).astype(np.float32)
    codes, decoded = lowbit_convert(fmt, x, tmp)
    both_nan = np.isnan(want_val) & np.isnan(decoded)
    bad = (codes != want) & ~both_nan
    if tname == "float8_e8m0fnu":
        # ml_dtypes 0.6 rounds fp32 *subnormal* inputs in (2^-127, 2^-126) up to
        # 2^-126 even below the midpoint (0x1.000004p-127 -> 2^-126); every
        # other input rounds ties-away as elsewhere. lowbit keeps
        # round-to-nearest there; the known divergence is counted, not hidden.
        quirk = bad & (np.abs(x) > 2.0**-127) & (np.abs(x) < 2.0**-126) & (codes == 0) & (want == 1)
        print(f"{fmt}: {int(quirk.sum())} fp32-subnormal inputs where ml_dtypes rounds up (known ml_dtypes quirk)")
        bad &= ~quirk
    if bad.any():
        failures += int(bad.sum())
        i = np.flatnonzero(bad)[:5]
        print(f"{fmt}: rounding mismatch for x={x[i]} ({[float(a).hex() for a in x[i]]}): "
              f"ml_dtypes codes {want[i]} lowbit {codes[i]}")
    print(f"{fmt:12s} vs ml_dtypes.{tname}: {len(all_codes)} codes, {len(x)} inputs, {failures} mismatches")
    return failures


def main():
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, tname in FORMATS.items():
            if not hasattr(ml_dtypes, tname):
                print(f"ml_dtypes {ml_dtypes.__version__} has no {tname}; skipped")
                continue
            total += check(fmt, tname, tmp)
    print(f"{len(FORMATS)} formats, {total} mismatches in total")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
