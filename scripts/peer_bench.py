#!/usr/bin/env python3
"""Peers of `lowbit kernel-bench`, timed the same way, written in the same table.

    python3 scripts/peer_bench.py run -o peers.h5 [--quick] [--ops ceiling,dequant,quant,gemm]
    python3 scripts/peer_bench.py run -o peers_mm.h5 --ops matmul [--matmul-shapes ... --matmul-m ... --outliers ...]
    python3 scripts/peer_bench.py compare kernel_bench.h5 peers.h5   # side-by-side table with ratios

Peers: PyTorch (bf16 F.linear → cuBLAS; torch.compile'd NF4 blockwise
dequantize; tinygemm `aten._weight_int4pack_mm`, int4 with bf16 scale and
zero per group of 64) and bitsandbytes (dequantize_4bit / quantize_4bit for
nf4 / fp4 at blocks 64 and 4096, double-quantized; `bnb.matmul_4bit` at
M = 1 … 64); for `--ops matmul` (issue 11, the peers of `lowbit kernel-bench
--ops matmul`): torch bf16 matmul, torch._int_mm (int8 → int32; needs
M > 16), torch._scaled_mm (e4m3 × e4m3 → bf16, per-tensor scales) and
bitsandbytes' LLM.int8 (`bnb.matmul`, threshold 6.0, on Int8Params /
MatmulLtState as its Linear8bitLt sets them up; eager only: it finds outlier
columns with a host synchronisation, so it cannot be captured in a CUDA
graph), with lowbit's outlier planting (every column c with c % e == e // 2,
e = round(1 / fraction), times 20) and lowbit's interleaving (the candidates
of a shape timed round by round, median of the rounds' medians). Timing is lowbit's (kernels/cuda/timing.cuh): eager = CUDA
events around `calls` consecutive calls from Python, per call; graph = the
same calls captured once into a CUDA graph, each replay timed; warm-up
rounds, then ≥ 50 timed rounds; median, p10/p90, min/max. Inputs are random
normal (never zeros) and rotated over copies that together exceed 4× L2.

The `kernel_bench` table has lowbit's columns (op, impl, format, dtype,
elements, M, K, N, mode, median_us, …, bytes, gbps, pct_copy, ideal_us,
x_ideal, gpu); `bytes` counts the same floor as lowbit for the same
operation, so GB/s compare directly.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np

COLUMNS = [
    ("op", "S"), ("impl", "S"), ("format", "S"), ("dtype", "S"), ("elements", "u8"), ("M", "u8"), ("K", "u8"),
    ("N", "u8"), ("mode", "S"), ("median_us", "f8"), ("p10_us", "f8"), ("p90_us", "f8"), ("min_us", "f8"),
    ("max_us", "f8"), ("reps", "i8"), ("calls", "i8"), ("rotation", "i8"), ("bytes", "f8"), ("flops", "f8"),
    ("gbps", "f8"), ("tflops", "f8"), ("pct_copy", "f8"), ("ideal_us", "f8"), ("x_ideal", "f8"), ("gpu", "S"),
    ("outlier_frac", "f8"), ("rounds", "i8"),
]
MATMUL_SHAPES = [(4096, 4096), (8192, 8192), (8192, 28672), (28672, 8192)]
MATMUL_MS = [1, 16, 128, 2048, 8192]
OUTLIERS = [0.0, 0.001, 0.01]
SHAPES = [(4096, 4096), (4096, 11008), (8192, 8192), (8192, 28672), (28672, 8192)]
MS = [1, 4, 16, 64]
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


# ----------------------------------------------------------------------------- timing

def timed(torch, fn, calls, warmup, reps, graph):
    """Median etc. of per-call time (µs) of fn(i), eager or in a CUDA graph."""
    stream = torch.cuda.current_stream()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    per_call = []
    if not graph:
        i = 0
        for _ in range(warmup):
            for _ in range(calls):
                fn(i); i += 1
        torch.cuda.synchronize()
        for _ in range(reps):
            start.record(stream)
            for _ in range(calls):
                fn(i); i += 1
            end.record(stream)
            end.synchronize()
            per_call.append(start.elapsed_time(end) * 1e3 / calls)
    else:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):  # warm up on a side stream, as torch's docs ask before capture
            for c in range(calls):
                fn(c)
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for c in range(calls):
                fn(c)
        for _ in range(warmup):
            g.replay()
        torch.cuda.synchronize()
        for _ in range(reps):
            start.record(stream)
            g.replay()
            end.record(stream)
            end.synchronize()
            per_call.append(start.elapsed_time(end) * 1e3 / calls)
        del g
    a = np.sort(np.array(per_call))
    q = lambda f: float(np.quantile(a, f))
    return dict(median_us=q(0.5), p10_us=q(0.1), p90_us=q(0.9), min_us=float(a[0]), max_us=float(a[-1]),
                reps=len(a), calls=calls)


class Bench:
    def __init__(self, torch, args):
        self.torch, self.args = torch, args
        self.rows = []
        self.notes = []  # said on stderr, kept in the file's `notes` attribute
        self.copy_gbps = 0.0
        p = torch.cuda.get_device_properties(0)
        self.gpu = p.name
        self.l2 = getattr(p, "L2_cache_size", 50 << 20) or (50 << 20)

    def note(self, text):
        self.notes.append(text)
        print(f"  peer_bench: {text}", file=sys.stderr, flush=True)

    def rotation(self, bytes_per_call):
        return int(min(16, max(2, math.ceil(4 * self.l2 / max(bytes_per_call, 1)))))

    def add(self, op, impl, fmt, dtype, elements, M, K, N, t, mode, rot, nbytes, flops, outlier_frac=0.0, rounds=1):
        s = t["median_us"] * 1e-6
        gbps = nbytes / s / 1e9
        ideal = nbytes / (self.copy_gbps * 1e9) * 1e6 if self.copy_gbps else 0.0
        self.rows.append(dict(op=op, impl=impl, format=fmt, dtype=dtype, elements=elements, M=M, K=K, N=N, mode=mode,
                              rotation=rot, bytes=nbytes, flops=flops, gbps=gbps, tflops=flops / s / 1e12,
                              pct_copy=100 * gbps / self.copy_gbps if self.copy_gbps else 0.0, ideal_us=ideal,
                              x_ideal=t["median_us"] / ideal if ideal else 0.0, gpu=self.gpu,
                              outlier_frac=outlier_frac, rounds=rounds, **t))

    def measure(self, op, impl, fmt, dtype, elements, M, K, N, rot, nbytes, flops, fn, graph=True, calls=None,
                reps=None):
        a = self.args
        calls = calls or a.calls
        reps = reps or a.reps
        label = f"{op:<12} {impl:<14} {fmt:<16} {dtype:<5} " + (f"M={M} K={K} N={N}" if M else f"n={elements}")
        try:
            e = timed(self.torch, fn, calls, a.warmup, reps, False)
            self.add(op, impl, fmt, dtype, elements, M, K, N, e, "eager", rot, nbytes, flops)
            gtxt = "n/a"
            if graph:
                try:
                    g = timed(self.torch, fn, calls, a.warmup, reps, True)
                    self.add(op, impl, fmt, dtype, elements, M, K, N, g, "graph", rot, nbytes, flops)
                    gtxt = f"{g['median_us']:9.2f} us"
                except Exception as ex:  # a peer that cannot be captured: say so, keep its eager time
                    gtxt = f"graph failed: {type(ex).__name__}: {str(ex)[:80]}"
            print(f"  {label:<72} eager {e['median_us']:9.2f} us  graph {gtxt}", file=sys.stderr, flush=True)
        except Exception as ex:
            print(f"  {label:<72} FAILED: {type(ex).__name__}: {str(ex)[:160]}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- peers

def run_ceiling(b):
    torch = b.torch
    n = 1 << 30
    x = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    y = torch.empty_like(x)
    t = timed(torch, lambda i: y.copy_(x), 1, 3, b.args.reps, False)
    b.copy_gbps = 2 * n / (t["median_us"] * 1e3)
    b.add("copy", "torch", "", "", n, 0, 0, 0, t, "eager", 1, 2.0 * n, 0.0)
    print(f"  copy ceiling (torch copy_, 1 GiB): {b.copy_gbps:.1f} GB/s", file=sys.stderr, flush=True)
    del x, y
    S = 8192
    a = torch.randn(S, S, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(S, S, device="cuda", dtype=torch.bfloat16)
    b.measure("gemm", "torch", "bf16", "bf16", 0, S, S, S, 1, 3.0 * S * S * 2, 2.0 * S ** 3,
              lambda i: torch.matmul(a, w), calls=3, reps=max(20, b.args.reps // 2))
    del a, w


def nf4_dequant_torch(torch):
    table = torch.tensor(NF4, dtype=torch.float32, device="cuda")

    def deq(codes, absmax):  # codes: uint8 [n/2], first element in the high nibble; absmax: fp32 [n/64]
        hi = (codes >> 4).long()
        lo = (codes & 15).long()
        v = torch.stack((table[hi], table[lo]), dim=-1).reshape(-1, 64)
        return (v * absmax[:, None]).to(torch.bfloat16).reshape(-1)
    return deq


def run_dequant(b, bnb):
    torch, n = b.torch, b.args.elements
    F = bnb.functional if bnb else None
    # torch.compile'd NF4 blockwise dequantize (block 64, fp32 absmax) → bf16.
    try:
        deq = torch.compile(nf4_dequant_torch(torch))
        sets = [(torch.randint(0, 256, (n // 2,), dtype=torch.uint8, device="cuda"),
                 torch.rand(n // 64, device="cuda") + 0.01) for _ in range(2)]
        nbytes = n / 2 + 4 * n / 64 + 2 * n
        b.measure("dequantize", "torch.compile", "nf4@64", "bf16", n, 0, 0, 0, 2, nbytes, 0.0,
                  lambda i: deq(*sets[i % 2]))
        del sets
    except Exception as ex:
        print(f"  torch.compile NF4 dequant: {type(ex).__name__}: {ex}", file=sys.stderr)
    if not bnb:
        return
    for qt, bs, dq in [("nf4", 64, False), ("nf4", 4096, False), ("fp4", 64, False), ("nf4", 64, True)]:
        fmt = f"{'nf4' if qt == 'nf4' else 'fp4-bnb'}@{bs}" + ("+dq" if dq else "")
        sets = []
        for r in range(2):
            x = torch.randn(n, device="cuda", dtype=torch.bfloat16)
            q, st = F.quantize_4bit(x, blocksize=bs, quant_type=qt, compress_statistics=dq)
            sets.append((q, st))
            del x
        blocks = n / bs
        sbytes = (blocks + 4 * math.ceil(blocks / 256) + 4) if dq else 4 * blocks
        nbytes = n / 2 + sbytes + 2 * n
        b.measure("dequantize", "bnb", fmt, "bf16", n, 0, 0, 0, 2, nbytes, 0.0,
                  lambda i: F.dequantize_4bit(sets[i % 2][0], sets[i % 2][1]))
        del sets
        torch.cuda.empty_cache()


def run_quant(b, bnb):
    if not bnb:
        return
    torch, n = b.torch, b.args.elements
    F = bnb.functional
    xs = [torch.randn(n, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    for bs in (64, 4096):
        nbytes = 2 * n + n / 2 + 4 * n / bs
        b.measure("quantize", "bnb", f"nf4@{bs}", "bf16", n, 0, 0, 0, 2, nbytes, 0.0,
                  lambda i: F.quantize_4bit(xs[i % 2], blocksize=bs, quant_type="nf4"))
    del xs
    torch.cuda.empty_cache()


def run_gemm(b, bnb):
    torch = b.torch
    import torch.nn.functional as Fn
    shapes = [(8192, 8192)] if b.args.quick else SHAPES
    ms = [1, 16] if b.args.quick else MS
    for K, N in shapes:
        xs = [torch.randn(max(ms), K, device="cuda", dtype=torch.bfloat16) for _ in range(16)]
        # bf16 F.linear (cuBLAS).
        rot16 = b.rotation(2.0 * K * N)
        w16 = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(rot16)]
        for M in ms:
            b.measure("gemm", "torch", "bf16", "bf16", 0, M, K, N, rot16, 2.0 * K * N + 2.0 * M * (K + N),
                      2.0 * M * N * K, lambda i: Fn.linear(xs[i % 16][:M], w16[i % rot16]))
        # tinygemm int4, group 64 (bf16 scale + zero per group).
        try:
            g = 64
            wbytes = K * N / 2 + (K // g) * N * 2 * 2
            rot = b.rotation(wbytes)
            packs = []
            for r in range(rot):
                wq = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, device="cuda")
                packed = torch.ops.aten._convert_weight_to_int4pack(wq, 8)
                sz = torch.rand(K // g, N, 2, device="cuda", dtype=torch.bfloat16) * 0.05 + 0.01
                packs.append((packed, sz))
            for M in ms:
                b.measure("gemm4", "tinygemm", "int4-zp@64:bf16", "bf16", 0, M, K, N, rot,
                          wbytes + 2.0 * M * (K + N), 2.0 * M * N * K,
                          lambda i: torch.ops.aten._weight_int4pack_mm(xs[i % 16][:M], packs[i % rot][0], g,
                                                                        packs[i % rot][1]))
            del packs
        except Exception as ex:
            print(f"  tinygemm {K}x{N}: {type(ex).__name__}: {str(ex)[:200]}", file=sys.stderr)
        del w16
        torch.cuda.empty_cache()
        if bnb:
            F = bnb.functional
            wbytes = K * N / 2 + 4 * K * N / 64
            rot = b.rotation(wbytes)
            ws = []
            for r in range(rot):
                w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02
                ws.append(F.quantize_4bit(w, blocksize=64, quant_type="nf4"))
                del w
            for M in ms:
                b.measure("gemm4", "bnb", "nf4@64", "bf16", 0, M, K, N, rot, wbytes + 2.0 * M * (K + N),
                          2.0 * M * N * K,
                          lambda i: bnb.matmul_4bit(xs[i % 16][:M], ws[i % rot][0].t(), quant_state=ws[i % rot][1]))
            del ws
        del xs
        torch.cuda.empty_cache()


def outlier_every(frac):
    """plant_outlier_columns' period for a fraction (std::lround(1 / frac)); 0: none."""
    return int(math.floor(1.0 / frac + 0.5)) if frac > 0 else 0


def plant_outliers(x, frac, scale=20.0):
    """lowbit's plant_outlier_columns (kernels/cuda/llm_int8.cu): every column c with c % e == e // 2,
    e = round(1 / frac), multiplied by `scale` (in float, rounded once to x's dtype)."""
    e = outlier_every(frac)
    if e:
        x[:, e // 2::e] = (x[:, e // 2::e].float() * scale).to(x.dtype)
    return x


def of_rounds(rounds):
    """A graph row of interleaved rounds, as lowbit's of_rounds: median / p10 / p90 of the rounds' medians,
    min / max over every replay, replays summed."""
    med = np.array([r["median_us"] for r in rounds])
    q = lambda f: float(np.quantile(med, f))
    return dict(median_us=q(0.5), p10_us=q(0.1), p90_us=q(0.9), min_us=min(r["min_us"] for r in rounds),
                max_us=max(r["max_us"] for r in rounds), reps=sum(r["reps"] for r in rounds),
                calls=rounds[0]["calls"])


class LowbitLib:
    """lowbit's matmuls from liblowbit_capi.so (kernels/capi/lowbit_capi.cpp) through ctypes, so that they are
    timed in this process, interleaved with the peers on the same tensors: the GEMMs of LLM layers run at the
    card's power limit and their clock follows what ran just before, which two processes never share."""

    def __init__(self, torch, path):
        import ctypes
        self.torch, self.lib = torch, ctypes.CDLL(path)
        vp, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        L = self.lib
        L.lowbit_capi_last_error.restype = ctypes.c_char_p
        L.lowbit_fp8_gemm.argtypes = [i, i, i, i, vp, vp, vp, vp, vp, vp]
        L.lowbit_int8_gemm.argtypes = [i, i, i, vp, vp, vp, vp]
        L.lowbit_llm_int8_create.argtypes = [i, vp, i, i, i, f, vp]
        L.lowbit_llm_int8_create.restype = vp
        L.lowbit_llm_int8_forward.argtypes = [vp, vp, vp, i, vp]
        L.lowbit_llm_int8_destroy.argtypes = [vp]

    def _stream(self):
        return self.torch.cuda.current_stream().cuda_stream  # the capture stream inside torch.cuda.graph

    def _ok(self, rc, what):
        if rc:
            raise RuntimeError(f"lowbit {what}: {self.lib.lowbit_capi_last_error().decode()}")

    def fp8_gemm(self, x, w, y, sx, sw):
        """y = x · wᵀ: x (M×K e4m3 or e5m2), w (N×K e4m3), y (≥ M×N bf16), sx / sw one fp32 each."""
        M, K = x.shape
        self._ok(self.lib.lowbit_fp8_gemm(int(x.dtype == self.torch.float8_e5m2), M, w.shape[0], K, x.data_ptr(),
                                          w.data_ptr(), y.data_ptr(), sx.data_ptr(), sw.data_ptr(), self._stream()),
                 "fp8_gemm")

    def int8_gemm(self, x, w, c):
        M, K = x.shape
        self._ok(self.lib.lowbit_int8_gemm(M, w.shape[0], K, x.data_ptr(), w.data_ptr(), c.data_ptr(), self._stream()),
                 "int8_gemm")

    def llm_int8(self, w16, max_m, threshold=6.0):
        """An LLM.int8 layer on w16 (N×K fp16 or bf16, kept alive by the caller); returns (forward, destroy)."""
        N, K = w16.shape
        h = self.lib.lowbit_llm_int8_create(int(w16.dtype == self.torch.float16), w16.data_ptr(), N, K, max_m,
                                            threshold, self._stream())
        if not h:
            raise RuntimeError(f"lowbit llm_int8_create: {self.lib.lowbit_capi_last_error().decode()}")
        self.torch.cuda.synchronize()

        def forward(x, y):
            self._ok(self.lib.lowbit_llm_int8_forward(h, x.data_ptr(), y.data_ptr(), x.shape[0], self._stream()),
                     "llm_int8_forward")
        return forward, lambda: self.lib.lowbit_llm_int8_destroy(h)


def run_interleaved(b, cands, M, K, N, rot):
    """lowbit kernel-bench's interleaving: each candidate's first call, then its eager timing (once); then
    `rounds` rounds, each timing every candidate once in a CUDA graph, each round after the first in a new
    (fixed-seed) order. A candidate that cannot be captured (graph=False: bnb) is timed eagerly in every
    round instead, so its figure is a median of rounds too."""
    torch, a = b.torch, b.args
    calls, reps, warmup = (2 if M >= 2048 else 10), (10 if a.quick else 20), 3
    flops = 2.0 * M * N * K
    live = []
    for c in cands:
        try:
            c["fn"](0)
            torch.cuda.synchronize()
            c["eager"] = timed(torch, c["fn"], calls, warmup, reps, False) if c["graph"] else None
            c["rounds"], c["ok"] = [], True
            live.append(c)
        except Exception as ex:
            b.note(f"{c['op']} {c['impl']} {c['fmt']} M={M} K={K} N={N}: skipped ({type(ex).__name__}: {str(ex)[:160]})")
    order, rng = list(range(len(live))), random.Random(20261127)
    for r in range(a.rounds):
        if r:  # a new order each round, as lowbit kernel-bench does: the power-limit clock follows the neighbour
            rng.shuffle(order)
        for c in (live[j] for j in order):
            if not c["ok"]:
                continue
            try:
                c["rounds"].append(timed(torch, c["fn"], calls, warmup, reps, c["graph"]))
            except Exception as ex:
                c["ok"] = False
                b.note(f"{c['op']} {c['impl']} {c['fmt']} M={M} K={K} N={N}: "
                       f"{'graph' if c['graph'] else 'eager'} failed ({type(ex).__name__}: {str(ex)[:160]})")
    for c in live:
        args = (c["op"], c["impl"], c["fmt"], c["dtype"], 0, M, K, N)
        tail = (rot, c["nbytes"], flops, c["frac"])
        g = of_rounds(c["rounds"]) if c["ok"] and c["rounds"] else None
        if c["graph"]:
            b.add(*args, c["eager"], "eager", *tail, 1)
            if g:
                b.add(*args, g, "graph", *tail, len(c["rounds"]))
        elif g:
            b.add(*args, g, "eager", *tail, len(c["rounds"]))
        e = c["eager"] or g
        outl = f" outliers {100 * c['frac']:g} %" if c["fmt"] == "llm.int8" else ""
        label = f"{c['op']:<7} {c['impl']:<16} {c['fmt']:<9} {c['dtype']:<5} M={M} K={K} N={N}{outl}"
        gtxt = (f"{g['median_us']:9.2f} us ({len(c['rounds'])} rounds)" if g and c["graph"] else
                "n/a (eager only)" if not c["graph"] else "failed")
        etxt = f"{e['median_us']:9.2f} us" if e else "failed"
        each = " ".join(f"{x['median_us']:.0f}" for x in c["rounds"])
        print(f"  {label:<72} eager {etxt}  graph {gtxt}  rounds: {each}", file=sys.stderr, flush=True)


def run_matmul(b, bnb):
    """Issue 11's peers on lowbit kernel-bench --ops matmul's shapes; with --lowbit-lib, lowbit's FP8 / int8
    GEMMs and LLM.int8 layer in the same rounds (impl "lowbit-inproc")."""
    torch, a = b.torch, b.args
    lb = None
    if a.lowbit_lib:
        try:
            lb = LowbitLib(torch, a.lowbit_lib)
        except (OSError, AttributeError) as ex:  # not a library, or not lowbit's
            print(f"peer_bench: --lowbit-lib {a.lowbit_lib}: cannot load lowbit's C API ({ex})", file=sys.stderr)
            sys.exit(2)
    shapes = [(8192, 8192)] if a.quick else parse_shapes(a.matmul_shapes)
    ms = [16, 2048] if a.quick else [int(m) for m in a.matmul_m.split(",")]
    fracs = [float(f) for f in a.outliers.split(",")]
    if any(m <= 16 for m in ms):
        b.note(f"torch._int_mm needs M > 16 (PyTorch's rule): not timed at M = {', '.join(str(m) for m in ms if m <= 16)}")
    if bnb:
        b.note("bnb LLM.int8 (bnb.matmul, threshold 6.0): eager only: it finds the outlier columns with a host "
               "synchronisation, so CUDA graph capture fails; its eager time is taken in every round")
    for K, N in shapes:
        bnb = matmul_shape(b, bnb, lb, K, N, ms, fracs)  # its tensors are freed on return
        torch.cuda.empty_cache()


def matmul_shape(b, bnb, lb, K, N, ms, fracs):
    """One K x N shape at every M; returns bnb, or None where its setup failed."""
    torch, max_m, e4m3 = b.torch, max(ms), b.torch.float8_e4m3fn
    rot = b.rotation(K * N)  # the smallest weight form (int8 / e4m3) defeats L2
    x = torch.randn(max_m, K, device="cuda", dtype=torch.bfloat16)
    x8 = torch.randint(-127, 128, (max_m, K), device="cuda", dtype=torch.int8)
    sx = (x.abs().max().float() / 448).reshape(())
    xf8 = (x.float() / sx).to(e4m3)
    w16, w8, wf8, sw, lt = [], [], [], [], []
    for r in range(rot):
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.05
        w16.append(w)
        w8.append(torch.randint(-127, 128, (N, K), device="cuda", dtype=torch.int8))
        s = (w.abs().max().float() / 448).reshape(())
        sw.append(s)
        wf8.append((w.float() / s).to(e4m3))
        if bnb:
            try:
                # As Linear8bitLt(has_fp16_weights=False, threshold=6.0) sets itself up: Int8Params quantizes
                # the fp16 weight row-wise on .cuda() (CB, SCB); init_8bit_state moves CB / SCB to the state.
                p = bnb.nn.Int8Params(w.to(torch.float16).cpu(), requires_grad=False, has_fp16_weights=False).cuda()
                st = bnb.MatmulLtState()
                st.threshold, st.has_fp16_weights, st.is_training, st.use_pool = 6.0, False, False, True
                st.CB, st.SCB = p.CB, p.SCB
                p.CB, p.SCB = None, None
                lt.append((p, st))
            except Exception as ex:
                b.note(f"bnb Int8Params / MatmulLtState setup failed ({type(ex).__name__}: {str(ex)[:160]}); "
                       f"bnb LLM.int8 not timed")
                bnb = None
                lt = []
    x16 = {f: plant_outliers(x.to(torch.float16), f) for f in fracs} if bnb or lb else {}
    layers, destroy = [], []  # lowbit's LLM.int8 layers on the fp16 weights, as bnb gets them
    if lb:
        y16, c32 = torch.empty(max_m, N, device="cuda", dtype=torch.bfloat16), torch.empty(
            max_m, N, device="cuda", dtype=torch.int32)
        yh = torch.empty(max_m, N, device="cuda", dtype=torch.float16)
        try:
            for r in range(rot):
                wh = w16[r].to(torch.float16)
                fwd, dst = lb.llm_int8(wh, max_m)
                layers.append((fwd, wh))
                destroy.append(dst)
        except RuntimeError as ex:
            b.note(f"lowbit-inproc LLM.int8 K={K} N={N}: {ex}")
            layers = []
    for M in ms:
        xm, x8m, xf8m = x[:M], x8[:M], xf8[:M]
        wb = float(K * N)
        cands = []

        def cand(op, impl, fmt, dtype, nbytes, fn, graph=True, frac=0.0):
            cands.append(dict(op=op, impl=impl, fmt=fmt, dtype=dtype, nbytes=nbytes, fn=fn, graph=graph,
                              frac=frac))
        cand("matmul", "torch", "bf16", "bf16", 2 * wb + 2.0 * M * K + 2.0 * M * N,
             lambda i: torch.matmul(xm, w16[i % rot].t()))
        if M > 16:
            cand("matmul", "torch._int_mm", "int8", "int32", wb + 1.0 * M * K + 4.0 * M * N,
                 lambda i: torch._int_mm(x8m, w8[i % rot].t()))
        cand("matmul", "torch._scaled_mm", "e4m3fn", "bf16", wb + 1.0 * M * K + 2.0 * M * N,
             lambda i: torch._scaled_mm(xf8m, wf8[i % rot].t(), scale_a=sx, scale_b=sw[i % rot],
                                        out_dtype=torch.bfloat16))
        if lb:
            cand("matmul", "lowbit-inproc", "e4m3fn", "bf16", wb + 1.0 * M * K + 2.0 * M * N,
                 lambda i: lb.fp8_gemm(xf8m, wf8[i % rot], y16, sx, sw[i % rot]))
            cand("matmul", "lowbit-inproc", "int8", "int32", wb + 1.0 * M * K + 4.0 * M * N,
                 lambda i: lb.int8_gemm(x8m, w8[i % rot], c32))
            for f in (fracs if layers else []):
                cand("linear", "lowbit-inproc", "llm.int8", "fp16", wb + 4.0 * N + 2.0 * M * K + 2.0 * M * N,
                     lambda i, xo=x16[f][:M]: layers[i % rot][0](xo, yh), frac=f)
        for f in (fracs if lt else []):
            xo = x16[f][:M]
            cand("linear", "bnb", "llm.int8", "fp16", wb + 4.0 * N + 2.0 * M * K + 2.0 * M * N,
                 lambda i, xo=xo: bnb.matmul(xo, lt[i % rot][0], state=lt[i % rot][1], threshold=6.0),
                 graph=False, frac=f)
        with torch.no_grad():
            run_interleaved(b, cands, M, K, N, rot)
    torch.cuda.synchronize()
    for d in destroy:
        d()
    return bnb


def parse_shapes(text):
    out = []
    for s in text.split(","):
        k, _, n = s.partition("x")
        out.append((int(k), int(n)))
    return out


def write_h5(path, rows, attrs):
    import h5py
    dt = np.dtype([(c, "S64" if t == "S" else t) for c, t in COLUMNS])
    arr = np.zeros(len(rows), dtype=dt)
    for i, r in enumerate(rows):
        for c, t in COLUMNS:
            arr[i][c] = r[c].encode() if t == "S" else r[c]
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        d = f.create_dataset("kernel_bench", data=arr)
        d.attrs["description"] = "peer timings (PyTorch, bitsandbytes), lowbit kernel-bench's layout"
        f.attrs["schema_version"] = 1  # lowbit's results layout (experiments/harness/results.hpp)
        f.attrs["experiment"] = "peer-bench"
        for k, v in attrs.items():
            f.attrs[k] = v
    os.replace(tmp, path)


def check_matmul_args(args):
    """The matmul options, checked before any GPU work (lowbit kernel-bench's rules); exit 2 on a bad one."""
    def bad(msg):
        print(f"peer_bench: {msg}", file=sys.stderr)
        sys.exit(2)
    unknown = [op for op in args.ops.split(",") if op not in ("ceiling", "dequant", "quant", "gemm", "matmul")]
    if unknown:
        bad(f"--ops: unknown {', '.join(unknown)} (ceiling, dequant, quant, gemm, matmul)")
    try:
        shapes = parse_shapes(args.matmul_shapes)
    except ValueError:
        bad(f"--matmul-shapes: '{args.matmul_shapes}' is not KxN,... (e.g. 8192x28672)")
    if not shapes or any(k <= 0 or n <= 0 or k % 16 or n % 16 for k, n in shapes):
        bad(f"--matmul-shapes: '{args.matmul_shapes}': K and N must be positive multiples of 16")
    try:
        ms = [int(m) for m in args.matmul_m.split(",")]
    except ValueError:
        ms = []
    if not ms or any(m < 1 or m > 65536 for m in ms):
        bad(f"--matmul-m: '{args.matmul_m}' is not a list of batch sizes in 1..65536")
    try:
        fr = [float(f) for f in args.outliers.split(",")]
    except ValueError:
        fr = [-1.0]
    if not all(0 <= f <= 0.5 for f in fr):
        bad(f"--outliers: '{args.outliers}' is not a list of fractions in [0, 0.5] (0.001 = 0.1 % of the columns)")
    if args.rounds < 1:
        bad("--rounds must be >= 1")


def cmd_run(args):
    check_matmul_args(args)
    try:
        import torch
    except ImportError as ex:
        print(f"peer_bench: PyTorch is not importable ({ex}); nothing measured", file=sys.stderr)
        return 77
    if not torch.cuda.is_available():
        print("peer_bench: no CUDA device; nothing measured", file=sys.stderr)
        return 77
    if args.quick:
        args.elements = 1 << 26
        args.reps = min(args.reps, 20)
        args.rounds = min(args.rounds, 3)
    try:
        import bitsandbytes as bnb
        bnb_version = bnb.__version__
    except Exception as ex:
        print(f"peer_bench: bitsandbytes unavailable ({type(ex).__name__}: {ex}); its rows are skipped",
              file=sys.stderr)
        bnb, bnb_version = None, "none"
    b = Bench(torch, args)
    ops = args.ops.split(",")
    t0 = time.time()
    print(f"peer_bench on {b.gpu}: torch {torch.__version__}, bitsandbytes {bnb_version}", file=sys.stderr)
    run_ceiling(b)
    if "dequant" in ops:
        run_dequant(b, bnb)
    if "quant" in ops:
        run_quant(b, bnb)
    if "gemm" in ops:
        run_gemm(b, bnb)
    if "matmul" in ops:
        run_matmul(b, bnb)
    write_h5(args.output, b.rows, dict(gpu_name=str(b.gpu), torch_version=str(torch.__version__),
                                       bitsandbytes_version=str(bnb_version), copy_gbps=float(b.copy_gbps),
                                       cuda_version=str(torch.version.cuda), seconds=time.time() - t0,
                                       notes="\n".join(b.notes)))
    print(f"wrote {args.output} ({len(b.rows)} rows, {time.time() - t0:.0f} s)", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- compare

def load(path):
    import h5py
    with h5py.File(path, "r") as f:
        a = f["kernel_bench"][:]
        attrs = dict(f.attrs)
    rows = []
    for r in a:
        d = {}
        for c in a.dtype.names:
            v = r[c]
            d[c] = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
        rows.append(d)
    return rows, attrs


def compare_matmul(rows, copy, p):
    """Issue 11's tables: lowbit's matmuls beside cuBLASLt bf16 (same process) and the torch / bnb peers.
    Ratios are speed-ups: the other time / lowbit's time (> 1: lowbit faster)."""
    def find(op, impl, fmt, K, N, M, mode="graph", frac=0.0):
        for r in rows:
            if (r["op"], r["impl"], r["format"], r["mode"], r["K"], r["N"], r["M"]) == (op, impl, fmt, mode, K, N, M) \
                    and abs(float(r.get("outlier_frac", 0.0)) - frac) < 1e-12:
                return r
        return None

    t = lambda r: r["median_us"] if r else float("nan")
    nan = float("nan")

    def cell(g, e, w=15):
        if g is None and e is None:
            return f"{'-':>{w}}"
        et = f"{t(e):6.1f}" if e else f"{'-':>6}"
        return f"{t(g):7.1f}({et})".rjust(w) if g else f"{'e ' + format(t(e), '.1f'):>{w}}"

    def ratio(num, den):
        return f"{num / den:6.2f}x" if num == num and den == den and den > 0 else f"{'-':>7}"

    mm = [r for r in rows if r["op"] in ("matmul", "linear")]
    keys = sorted({(r["K"], r["N"], r["M"]) for r in mm if r["impl"] in ("lowbit", "cublaslt")})
    if keys:
        p()
        p("### int8 / FP8 matmuls (issue 11), us per call: graph (eager in brackets); speed-up = other / lowbit")
        cols = [("cuBLASLt bf16", "matmul", "cublaslt", "bf16"), ("torch bf16", "matmul", "torch", "bf16"),
                ("lowbit int8", "matmul", "lowbit", "int8"), ("torch._int_mm", "matmul", "torch._int_mm", "int8"),
                ("lowbit e4m3", "matmul", "lowbit", "e4m3fn"), ("_scaled_mm", "matmul", "torch._scaled_mm", "e4m3fn"),
                ("lowbit e5m2xe4m3", "matmul", "lowbit", "e5m2xe4m3fn"), ("int8@row layer", "linear", "lowbit", "int8@row"),
                ("e4m3 layer", "linear", "lowbit", "e4m3fn@tensor")]
        p(f"{'K x N':<12} {'M':>5} | " + " ".join(f"{c[0]:>15}" for c in cols) +
          f" | {'int8 vs bf16':>12} {'vs _int_mm':>10} {'e4m3 vs bf16':>12} {'vs _scaled_mm':>13} {'int8@row vs bf16':>16}")
        for K, N, M in keys:
            g = {c[0]: find(c[1], c[2], c[3], K, N, M) for c in cols}
            e = {c[0]: find(c[1], c[2], c[3], K, N, M, "eager") for c in cols}
            base = t(g["cuBLASLt bf16"])
            p(f"{f'{K}x{N}':<12} {M:>5} | " + " ".join(cell(g[c[0]], e[c[0]]) for c in cols) + " | " +
              f"{ratio(base, t(g['lowbit int8'])):>12} {ratio(t(g['torch._int_mm']), t(g['lowbit int8'])):>10} "
              f"{ratio(base, t(g['lowbit e4m3'])):>12} {ratio(t(g['_scaled_mm']), t(g['lowbit e4m3'])):>13} "
              f"{ratio(base, t(g['int8@row layer'])):>16}")
    llm = sorted({(r["K"], r["N"], r["M"], float(r.get("outlier_frac", 0.0))) for r in mm if r["format"] == "llm.int8"})
    if llm:
        p()
        p("### LLM.int8 layer, us per call: lowbit graph (eager), bnb eager only (it cannot be captured); "
          "speed-up = other / lowbit")
        p(f"{'K x N':<12} {'M':>5} {'outliers':>8} | {'lowbit LLM.int8':>16} {'cuBLASLt bf16':>15} {'bnb LLM.int8':>12} "
          f"| {'vs bf16':>8} {'vs bnb':>8} {'vs bnb (eager/eager)':>20}")
        for K, N, M, f in llm:
            lg = find("linear", "lowbit", "llm.int8", K, N, M, frac=f)
            le = find("linear", "lowbit", "llm.int8", K, N, M, "eager", frac=f)
            bg = find("matmul", "cublaslt", "bf16", K, N, M)
            be = find("matmul", "cublaslt", "bf16", K, N, M, "eager")
            bnb = find("linear", "bnb", "llm.int8", K, N, M, "eager", frac=f)
            p(f"{f'{K}x{N}':<12} {M:>5} {f'{100 * f:g} %':>8} | {cell(lg, le, 16)} {cell(bg, be)} {t(bnb):12.1f} | "
              f"{ratio(t(bg), t(lg)):>8} {ratio(t(bnb), t(lg)):>8} {ratio(t(bnb), t(le)):>20}")
    same = sorted({(r["K"], r["N"], r["M"]) for r in mm if r["impl"] == "lowbit-inproc"})
    if same:
        p()
        p("### Same process (peer_bench --lowbit-lib): lowbit through liblowbit_capi.so, interleaved with the peers "
          "on the same tensors; graph us (bnb: eager); speed-up = peer / lowbit")
        fr = sorted({float(r.get("outlier_frac", 0.0)) for r in mm if r["impl"] == "lowbit-inproc" and r["format"] == "llm.int8"})
        p(f"{'K x N':<12} {'M':>5} | {'lowbit e4m3':>11} {'_scaled_mm':>10} {'vs':>7} | {'lowbit int8':>11} "
          f"{'_int_mm':>9} {'vs':>7} | {'torch bf16':>10} | " +
          " | ".join(f"{'LLM.int8 ' + format(100 * f, 'g') + ' %':>16} {'vs bf16':>7} {'bnb':>8} {'vs bnb':>7}" for f in fr))
        for K, N, M in same:
            le, se = find("matmul", "lowbit-inproc", "e4m3fn", K, N, M), find("matmul", "torch._scaled_mm", "e4m3fn", K, N, M)
            li, ti = find("matmul", "lowbit-inproc", "int8", K, N, M), find("matmul", "torch._int_mm", "int8", K, N, M)
            tb = find("matmul", "torch", "bf16", K, N, M)
            cells = []
            for f in fr:
                ll = find("linear", "lowbit-inproc", "llm.int8", K, N, M, frac=f)
                bb = find("linear", "bnb", "llm.int8", K, N, M, "eager", frac=f)
                cells.append(f"{t(ll):16.1f} {ratio(t(tb), t(ll)):>7} {t(bb):8.1f} {ratio(t(bb), t(ll)):>7}")
            p(f"{f'{K}x{N}':<12} {M:>5} | {t(le):11.1f} {t(se):10.1f} {ratio(t(se), t(le)):>7} | {t(li):11.1f} "
              f"{t(ti):9.1f} {ratio(t(ti), t(li)):>7} | {t(tb):10.1f} | " + " | ".join(cells))
    q = [r for r in rows if r["op"] == "quantize" and r["format"] == "e4m3fn@tensor" and r["mode"] == "graph"]
    if q:
        p()
        p("### FP8 quantize with amax, bf16 -> e4m3fn per tensor (graph)")
        same = {r["elements"]: r["gbps"] for r in rows
                if r["op"] == "copy" and r["format"] == "e4m3fn@tensor" and r["mode"] == "graph"}
        p(f"{'impl':<16} {'elements':>10} {'us':>9} {'GB/s':>7} {'% copy':>7} {'% same-size copy':>17}")
        for r in sorted(q, key=lambda r: (r["impl"], r["elements"])):
            pct = 100 * r["gbps"] / copy if copy else nan
            pct_same = 100 * r["gbps"] / same[r["elements"]] if r["elements"] in same else nan
            p(f"{r['impl']:<16} {r['elements']:>10} {r['median_us']:9.1f} {r['gbps']:7.0f} {pct:6.1f}% {pct_same:16.1f}%")
        for n, gbps in sorted(same.items()):
            p(f"{'copy, same bytes':<16} {n:>10} {3.0 * n / gbps / 1e3:9.1f} {gbps:7.0f} "
              f"{100 * gbps / copy if copy else nan:6.1f}%")


def cmd_compare(args):
    lb, la = load(args.lowbit)
    pr, pa = load(args.peers) if args.peers and os.path.exists(args.peers) else ([], {})
    rows = lb + pr
    copy = la.get("copy_gbps", 0.0)

    def get(op, impl, fmt, M=0, K=0, N=0, mode="graph", dtype=None):
        for r in rows:
            if (r["op"], r["impl"], r["format"], r["mode"]) == (op, impl, fmt, mode) and \
                    (not M or (r["M"], r["K"], r["N"]) == (M, K, N)) and (dtype is None or r["dtype"] == dtype):
                return r
        return None

    out = []
    p = lambda s="": out.append(s)
    read = la.get("read_gbps", 0.0)
    p(f"## lowbit vs peers — {la.get('gpu_name', '?')}; copy ceiling {copy:.0f} GB/s (lowbit run), "
      f"{pa.get('copy_gbps', 0):.0f} GB/s (peer run)" + (f"; read ceiling {read:.0f} GB/s (lowbit run)" if read else "")
      + "; graph times, eager in brackets")
    pairs = [("dequantize", "nf4@64", "bf16", [("bnb", "nf4@64"), ("torch.compile", "nf4@64")]),
             ("dequantize", "nf4@64", "fp16", []), ("dequantize", "nf4@64", "fp32", []),
             ("dequantize", "nf4@4096", "bf16", [("bnb", "nf4@4096")]),
             ("dequantize", "fp4-bnb@64", "bf16", [("bnb", "fp4-bnb@64")]),
             ("dequantize", "nf4@64+dq", "bf16", [("bnb", "nf4@64+dq")]),
             ("dequantize", "int4@64", "bf16", []), ("dequantize", "e2m1fn@32", "bf16", []),
             ("dequantize", "mxfp8", "bf16", []),
             ("quantize", "nf4@64", "bf16", [("bnb", "nf4@64")]), ("quantize", "nf4@64", "fp32", []),
             ("quantize", "nf4@4096", "bf16", [("bnb", "nf4@4096")]), ("quantize", "nf4@64~bnb", "bf16", []),
             ("quantize", "mxfp8", "bf16", []), ("quantize", "mxfp8", "fp32", [])]
    if any(get(op, "lowbit", fmt, dtype=dt) for op, fmt, dt, _ in pairs):
        p()
        p("### blockwise dequantize / quantize (2^28 elements unless noted)")
        p(f"{'op':<11} {'format':<15} {'dtype':<5} {'lowbit GB/s':>11} {'% copy':>7} {'us':>17} | {'peer':<14} {'GB/s':>7} {'% copy':>7} {'us':>17} {'lowbit speed-up':>15}")
    for op, fmt, dt, peers in pairs:
        l = get(op, "lowbit", fmt, dtype=dt)
        le = get(op, "lowbit", fmt, dtype=dt, mode="eager")
        if not l:
            continue
        ltxt = f"{l['gbps']:11.0f} {l['pct_copy']:6.1f}% {l['median_us']:8.1f} ({le['median_us'] if le else float('nan'):6.1f})"
        if not peers:
            p(f"{op:<11} {fmt:<15} {dt:<5} {ltxt} |")
        for impl, pf in peers:
            r = get(op, impl, pf)
            re_ = get(op, impl, pf, mode="eager")
            if r is None:
                r = re_
            if r is None:
                p(f"{op:<11} {fmt:<15} {dt:<5} {ltxt} | {impl:<14} (not measured)")
                continue
            pct = 100 * r["gbps"] / copy if copy else 0
            p(f"{op:<11} {fmt:<15} {dt:<5} {ltxt} | {impl:<14} {r['gbps']:7.0f} {pct:6.1f}% {r['median_us']:8.1f} "
              f"({re_['median_us'] if re_ else float('nan'):6.1f}) {r['median_us'] / l['median_us']:14.2f}x")
    shapes = sorted({(r["K"], r["N"]) for r in rows if r["op"] == "gemm4"})
    ms = sorted({r["M"] for r in rows if r["op"] == "gemm4"})
    if shapes:
        p()
        p("### 4-bit weight x bf16 activation, us per call (graph; eager in brackets); ratio = peer / lowbit nf4; "
          "x ideal = time / (weight bytes at the " + ("read" if read else "copy") + " ceiling)")
        p(f"{'K x N':<12} {'M':>3} | {'lowbit nf4':>17} {'x ideal':>7} | {'cuBLASLt bf16':>17} {'torch bf16':>17} "
          f"{'deq+cuBLAS':>17} {'tinygemm':>17} {'bnb nf4':>17} | {'lowbit int4':>11}")

    def cell(r, re_, base):
        if r is None and re_ is None:
            return f"{'-':>17}"
        t = r["median_us"] if r else float("nan")
        e = re_["median_us"] if re_ else float("nan")
        ratio = f"{t / base:4.1f}x" if base and r else "     "
        return f"{t:6.1f}({e:5.1f}){ratio}"

    for K, N in shapes:
        for M in ms:
            l = get("gemm4", "lowbit", "nf4@64", M, K, N, dtype="bf16")
            if l is None:
                continue
            le = get("gemm4", "lowbit", "nf4@64", M, K, N, "eager", dtype="bf16")
            base = l["median_us"]
            cols = []
            for op, impl, fmt in [("gemm", "cublaslt", "bf16"), ("gemm", "torch", "bf16"),
                                  ("dequant_gemm", "lowbit+cublaslt", "nf4@64"),
                                  ("gemm4", "tinygemm", "int4-zp@64:bf16"), ("gemm4", "bnb", "nf4@64")]:
                cols.append(cell(get(op, impl, fmt, M, K, N), get(op, impl, fmt, M, K, N, "eager"), base))
            i4 = get("gemm4", "lowbit", "int4@64", M, K, N, dtype="bf16")
            p(f"{f'{K}x{N}':<12} {M:>3} | {base:6.1f}({le['median_us'] if le else float('nan'):5.1f})     "
              f" {l['x_ideal']:6.2f} | " + " ".join(cols) + f" | {i4['median_us'] if i4 else float('nan'):11.1f}")
    compare_matmul(rows, copy, p)
    notes = [n for n in str(pa.get("notes", "") or "").split("\n") if n]
    if notes:
        p()
        p("peer notes: " + "; ".join(notes))
    text = "\n".join(out)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="time the peers")
    r.add_argument("-o", "--output", default="peer_bench.h5")
    r.add_argument("--ops", default="ceiling,dequant,quant,gemm",
                   help="ceiling (always run), dequant, quant, gemm, matmul (issue 11; not in the default)")
    r.add_argument("--elements", type=int, default=1 << 28)
    r.add_argument("--reps", type=int, default=50)
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--calls", type=int, default=20)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--matmul-shapes", default=",".join(f"{k}x{n}" for k, n in MATMUL_SHAPES),
                   help="matmul shapes KxN (lowbit kernel-bench's --matmul-shapes)")
    r.add_argument("--matmul-m", default=",".join(map(str, MATMUL_MS)), help="matmul batch sizes (tokens)")
    r.add_argument("--outliers", default=",".join(f"{f:g}" for f in OUTLIERS),
                   help="fractions of activation columns planted as outliers for bnb LLM.int8")
    r.add_argument("--rounds", type=int, default=5, help="matmul: interleaved rounds (median of the rounds' medians)")
    r.add_argument("--lowbit-lib", default=os.environ.get("LOWBIT_CAPI"),
                   help="matmul: liblowbit_capi.so; lowbit's FP8 / int8 GEMMs and LLM.int8 layer are then timed in "
                        "this process too, interleaved with the peers (impl lowbit-inproc); default $LOWBIT_CAPI")
    c = sub.add_parser("compare", help="side-by-side table of lowbit and peer results")
    c.add_argument("lowbit")
    c.add_argument("peers", nargs="?")
    c.add_argument("-o", "--output")
    args = ap.parse_args()
    return cmd_run(args) if args.cmd == "run" else cmd_compare(args)


if __name__ == "__main__":
    sys.exit(main())
