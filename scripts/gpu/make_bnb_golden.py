#!/usr/bin/env python3
"""Golden data from bitsandbytes for tests/test_bnb_golden.cpp.

Usage: python3 make_bnb_golden.py OUTDIR

Runs on the GPU machine (numpy + torch + bitsandbytes only). Writes small
.npy files (< 2 MB in all) to OUTDIR; commit them under tests/data/bnb/.
Every bnb call is wrapped: a failing one is reported and skipped, the rest
still written; the exit status is 1 if anything failed.

Inputs (float32, seeded):
  input.npy          N(0,1) · 0.1, 64·300 + 37 elements: block 1 all zero,
                     block 2 subnormal-only, block 3 huge (1e30), a partial
                     final block of 37, and values placed exactly on NF4
                     midpoints × absmax (ties).
  input_special.npy  4 blocks of 64: NaN in one, +inf in one, −inf in one,
                     NaN and inf in the last (bnb's edge behaviour).
For each input and device (cuda, and cpu where bnb has a CPU path):
  {tag}_{nf4,fp4}_codes.npy (uint8, packed, first element high nibble),
  _absmax.npy (float32), _deq.npy (float32, dequantize_4bit);
  {tag}_{nf4,fp4}_dq_{qabsmax (uint8), absmax2 (float32), offset (float32[1]),
  code2 (float32[256]), deq (float32)} for compress_statistics=True;
  {tag}_dyn8_{codes, absmax, deq} for quantize_blockwise(blocksize=256).
Plus dynamic_map.npy (create_dynamic_map(), the table bnb used) and
versions.txt.
"""
import os
import sys
import traceback

import numpy as np
import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F

out_dir = sys.argv[1] if len(sys.argv) > 1 else "bnb_golden"
os.makedirs(out_dir, exist_ok=True)
written, failed = [], []


def save(name, arr):
    arr = np.ascontiguousarray(arr)
    np.save(os.path.join(out_dir, name + ".npy"), arr)
    written.append((name, arr.dtype, arr.shape))


def host(t):
    return t.detach().to("cpu").contiguous()


def attempt(label, fn):
    try:
        fn()
    except Exception as e:  # keep going: one missing path must not lose the rest
        failed.append(label)
        print(f"FAILED {label}: {type(e).__name__}: {e}", file=sys.stderr)
        traceback.print_exc()


# ---- inputs -----------------------------------------------------------------
rng = np.random.default_rng(20261122)
n = 64 * 300 + 37
x = (rng.standard_normal(n) * 0.1).astype(np.float32)
x[64:128] = 0.0                                                        # all-zero block
x[128:192] = (rng.standard_normal(64) * 1e-40).astype(np.float32)      # subnormal-only block
x[192:256] = (rng.standard_normal(64) * 1e30).astype(np.float32)       # huge block
nf4 = np.array(F.get_4bit_type("nf4", device="cpu").tolist(), dtype=np.float32)
mid = ((nf4[:-1].astype(np.float64) + nf4[1:]) / 2).astype(np.float32)
x[256] = 1.0                                                           # block 4: absmax 1, ties
x[257:257 + 15] = mid
save("input", x)

s = (rng.standard_normal(256) * 0.1).astype(np.float32)
s[10] = np.nan
s[64 + 20] = np.inf
s[128 + 30] = -np.inf
s[192 + 1] = np.nan
s[192 + 2] = np.inf
save("input_special", s)


def run(tag, data, device):
    A = torch.from_numpy(data).to(device)
    for qt in ("nf4", "fp4"):
        def plain(qt=qt):
            q, st = F.quantize_4bit(A, blocksize=64, quant_type=qt)
            save(f"{tag}_{qt}_codes", host(q).numpy().reshape(-1).astype(np.uint8))
            save(f"{tag}_{qt}_absmax", host(st.absmax).numpy().astype(np.float32))
            save(f"{tag}_{qt}_deq", host(F.dequantize_4bit(q, st)).float().numpy().reshape(-1))
        attempt(f"{tag} quantize_4bit {qt}", plain)

        def nested(qt=qt):
            q, st = F.quantize_4bit(A, blocksize=64, quant_type=qt, compress_statistics=True)
            save(f"{tag}_{qt}_dq_codes", host(q).numpy().reshape(-1).astype(np.uint8))
            save(f"{tag}_{qt}_dq_qabsmax", host(st.absmax).numpy().astype(np.uint8))
            save(f"{tag}_{qt}_dq_absmax2", host(st.state2.absmax).numpy().astype(np.float32))
            save(f"{tag}_{qt}_dq_offset", np.array([float(st.offset)], dtype=np.float32))
            save(f"{tag}_{qt}_dq_code2", host(st.state2.code).numpy().astype(np.float32))
            save(f"{tag}_{qt}_dq_deq", host(F.dequantize_4bit(q, st)).float().numpy().reshape(-1))
        attempt(f"{tag} quantize_4bit {qt} compress_statistics", nested)

    def blockwise():
        q, st = F.quantize_blockwise(A, blocksize=256)
        save(f"{tag}_dyn8_codes", host(q).numpy().reshape(-1).astype(np.uint8))
        save(f"{tag}_dyn8_absmax", host(st.absmax).numpy().astype(np.float32))
        save(f"{tag}_dyn8_deq", host(F.dequantize_blockwise(q, st)).float().numpy().reshape(-1))
    attempt(f"{tag} quantize_blockwise dynamic 256", blockwise)


attempt("create_dynamic_map", lambda: save("dynamic_map", F.create_dynamic_map().numpy().astype(np.float32)))

devices = (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]
for dev in devices:
    suffix = "" if dev == "cuda" else "_cpu"
    run("normal" + suffix, x, dev)
    run("special" + suffix, s, dev)

with open(os.path.join(out_dir, "versions.txt"), "w") as f:
    f.write(f"bitsandbytes {bnb.__version__}\ntorch {torch.__version__}\nnumpy {np.__version__}\n")
    f.write(f"cuda {torch.version.cuda} device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}\n")
    f.write(f"cpu capability {getattr(torch.backends.cpu, 'get_cpu_capability', lambda: '?')()}\n")
    f.write("failed: " + (", ".join(failed) if failed else "none") + "\n")

total = 0
for name, dtype, shape in written:
    size = os.path.getsize(os.path.join(out_dir, name + ".npy"))
    total += size
    print(f"wrote {name}.npy {dtype} {shape} ({size} bytes)")
print(f"{len(written)} files, {total} bytes in {out_dir}; failed: {failed or 'none'}")
sys.exit(1 if failed else 0)
