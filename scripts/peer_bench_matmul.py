#!/usr/bin/env python3
"""Peers of kernels/bench/bench_matmul_cuda.cpp (issue 11), same shapes, same
way: PyTorch bf16 matmul (cuBLAS), torch._int_mm (int8 → int32),
torch._scaled_mm (FP8 e4m3 → bf16, per-tensor scales) in CUDA graphs,
candidates interleaved round by round (median of the rounds' medians), and
bitsandbytes' LLM.int8 (Linear8bitLt, threshold 6.0, 0.1 % outlier columns)
eager — its host-side outlier search cannot be captured in a graph.

    python3 scripts/peer_bench_matmul.py [out.csv] [--quick]
"""
import statistics
import sys

import torch

out = next((a for a in sys.argv[1:] if not a.startswith("-")), "peer_bench_matmul.csv")
quick = "--quick" in sys.argv
K = N = 8192
MS = [16, 2048] if quick else [16, 128, 2048, 8192]
dev = torch.cuda.get_device_name()
rows = []


def graph_time(fn, calls, reps):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    for _ in range(3):
        g.replay()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(reps):
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / calls)
    return statistics.median(ts)


def eager_time(fn, calls, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(reps):
        a.record()
        for _ in range(calls):
            fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3 / calls)
    return statistics.median(ts)


try:
    import bitsandbytes as bnb
except Exception as e:  # noqa: BLE001
    bnb = None
    print(f"bitsandbytes not importable ({e}); its LLM.int8 is not timed")

w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.05
w8 = torch.randint(-127, 128, (N, K), device="cuda", dtype=torch.int8)
wf8 = (w * 20).to(torch.float8_e4m3fn)
one = torch.ones((), device="cuda")
lin8 = None
if bnb is not None:
    lin8 = bnb.nn.Linear8bitLt(K, N, bias=False, has_fp16_weights=False, threshold=6.0)
    lin8.weight = bnb.nn.Int8Params(w.to(torch.float16).cpu(), requires_grad=False, has_fp16_weights=False)
    lin8 = lin8.cuda()

print(f"{dev}")
print(f"{'op':28s} {'M':>6s} | {'graph us':>10s} {'eager us':>10s} | {'TOP/s':>7s}")
for m in MS:
    x = torch.randn(m, K, device="cuda", dtype=torch.bfloat16)
    x16 = x.to(torch.float16).clone()
    x16[:, 500::1000] *= 20  # 0.1 % outlier columns, as the lowbit benchmark plants them
    x8 = torch.randint(-127, 128, (m, K), device="cuda", dtype=torch.int8)
    xf8 = x.to(torch.float8_e4m3fn)
    cands = {"torch bf16 matmul": lambda: torch.matmul(x, w.t()),
             "torch._scaled_mm e4m3": lambda: torch._scaled_mm(xf8, wf8.t(), one, one, out_dtype=torch.bfloat16)}
    if m > 16:
        cands["torch._int_mm"] = lambda: torch._int_mm(x8, w8.t())
    calls = 2 if m >= 2048 else 10
    rounds = {k: [] for k in cands}
    eager = {k: eager_time(f, calls, 10) for k, f in cands.items()}
    for _ in range(3 if quick else 5):
        for k, f in cands.items():
            rounds[k].append(graph_time(f, calls, 10 if quick else 20))
    if lin8 is not None:
        with torch.no_grad():
            eager["bnb LLM.int8 (Linear8bitLt)"] = eager_time(lambda: lin8(x16), calls, 10)
        rounds["bnb LLM.int8 (Linear8bitLt)"] = [float("nan")]
    for k in rounds:
        g = statistics.median(rounds[k])
        t = g if g == g else eager[k]
        print(f"{k:28s} {m:6d} | {g:10.1f} {eager[k]:10.1f} | {2 * m * N * K / t * 1e-6:7.0f}")
        rows.append((dev, k, m, K, N, g, eager[k]))

with open(out, "w") as f:
    f.write("gpu,op,m,k,n,graph_us,eager_us\n")
    for r in rows:
        f.write(",".join(str(v) for v in r) + "\n")
