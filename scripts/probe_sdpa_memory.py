#!/usr/bin/env python3
"""Memory of one scaled_dot_product_attention call, per B·A·S² element (lowbit memory's attention terms).

For each case (dtype, GQA or not): the backend torch picks, the forward's transient peak above
the inputs, the bytes saved for backward, and the backward's peak above the saved bytes, all
divided by batch·heads·seq² so that they read as bytes per score element.
    python3 scripts/probe_sdpa_memory.py            # on a CUDA GPU
"""
import torch
import torch.nn.functional as F


def probe(dtype, kv_heads, B=4, A=32, S=2048, d=64, eager=False):
    torch.cuda.empty_cache()
    dev = "cuda"
    q = torch.randn(B, A, S, d, device=dev, dtype=dtype, requires_grad=True)
    k = torch.randn(B, kv_heads, S, d, device=dev, dtype=dtype, requires_grad=True)
    v = torch.randn(B, kv_heads, S, d, device=dev, dtype=dtype, requires_grad=True)
    n = B * A * S * S
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    gqa = kv_heads != A
    if eager:  # transformers eager_attention_forward
        kk = k.repeat_interleave(A // kv_heads, 1) if gqa else k
        vv = v.repeat_interleave(A // kv_heads, 1) if gqa else v
        mask = torch.full((S, S), float("-inf"), device=dev, dtype=dtype).triu(1)[None, None]
        w = torch.matmul(q, kk.transpose(2, 3)) * d ** -0.5
        w = w + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, vv)
        del w, kk, vv
    else:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    torch.cuda.synchronize()
    fwd_peak = torch.cuda.max_memory_allocated() - base
    saved = torch.cuda.memory_allocated() - base - o.numel() * o.element_size()
    torch.cuda.reset_peak_memory_stats()
    before_bwd = torch.cuda.memory_allocated()
    o.backward(torch.ones_like(o))
    torch.cuda.synchronize()
    bwd_peak = torch.cuda.max_memory_allocated() - before_bwd
    fn = o.grad_fn.name() if o.grad_fn is not None else "-"
    try:
        choice = torch._fused_sdp_choice(q, k, v, is_causal=True, enable_gqa=gqa)
    except Exception as e:  # noqa: BLE001
        choice = f"? {type(e).__name__}"
    name = "eager" if eager else "sdpa"
    print(f"{name:5} {str(dtype):15} kv_heads {kv_heads:2}: backend {choice} grad_fn {fn:40} "
          f"fwd peak {fwd_peak / n:6.2f} B/elem  saved {saved / n:6.2f}  bwd peak {bwd_peak / n:6.2f}  "
          f"(qkv elems {q.numel() / n:.4f})", flush=True)
    del q, k, v, o


def main():
    x = torch.randn(4, 8, device="cuda", requires_grad=True)
    y = torch._safe_softmax(x, -1)
    print("torch", torch.__version__, "_safe_softmax grad_fn:", y.grad_fn.name(), flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        for kv in (32, 4):
            probe(dtype, kv)
            probe(dtype, kv, eager=True)


if __name__ == "__main__":
    main()
