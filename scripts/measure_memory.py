#!/usr/bin/env python3
"""Measure GPU memory of real training steps, for `lowbit memory --validate`.

Runs a grid of finetuning configurations (full / LoRA in bf16, QLoRA 4-bit and
LLM.int8 via bitsandbytes when importable) on randomly initialised models built
from lowbit's catalog config.json files (experiments/memory/models/; no
downloads), and records torch.cuda.max_memory_allocated / max_memory_reserved
(steady state: the maximum over the steps after the first, once optimizer
states exist) into the `memory` table of an HDF5 file, in the schema that
`lowbit memory` writes (estimate columns NaN; `lowbit memory --validate FILE`
recomputes them from the configuration columns).

    python3 scripts/measure_memory.py -o measured_memory.h5        # ~5 min on an H100
    python3 scripts/measure_memory.py --dry-run                    # list the grid, no GPU
    build/bin/lowbit memory --validate measured_memory.h5

Robust by design: every configuration runs in try/except (OOM -> status "oom",
anything else -> "error: ..."), results are flushed to the file after each one
(write to a temporary, rename), and configurations are skipped once the time
budget (--budget-s, default 320 s) is spent.

What it replicates (so that the estimator's assumptions are the ones measured):
  * the HF model with attn_implementation eager or sdpa, use_cache=False, train();
  * LoRA via peft.get_peft_model (adapters fp32, dropout 0);
  * QLoRA: every block nn.Linear replaced by bnb.nn.Linear4bit (blocksize 64,
    nf4 / fp4, double quant per config), LLM.int8: bnb.nn.Linear8bitLt
    (has_fp16_weights=False, threshold 6.0); lm_head and embeddings stay 16-bit;
    then what peft.prepare_model_for_kbit_training does: non-quantized
    parameters cast to fp32, input require-grads for checkpointing;
  * gradient checkpointing: model.gradient_checkpointing_enable(use_reentrant=True);
  * optimizer: torch.optim.AdamW (foreach; "adamw"), bnb AdamW8bit ("adamw8"),
    bnb PagedAdamW32bit ("paged-adamw32"); zero_grad(set_to_none=True);
  * loss: the model's own (labels = input ids), random token ids, no padding.
"""
import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(REPO, "experiments", "memory", "models")

TERM_KEYS = ["weights", "quant_constants", "embeddings_lm_head", "norms_biases", "lora_params", "gradients",
             "optimizer_states", "optimizer_step_temp", "act_checkpoints", "act_norms", "act_linear_inputs",
             "act_lora", "act_attention", "act_mlp", "act_dropout", "backward_workspace", "logits_loss",
             "dequant_workspace", "kv_cache", "prefill_workspace", "allocator_overhead", "cuda_context"]

# (label-free) grid: model, method, weights, optimizer, attention, batch, seq_len, grad_ckpt, rank, targets, grad_accum
S, M, L, X = "llama-0.5b-scaled", "tinyllama-1.1b", "open-llama-3b", "llama-7b"
QV = "q_proj,v_proj"
ALL = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
GRID = [
    # model, method, weights, optimizer, attn, batch, seq, gc, rank, targets, ga
    (S, "full", "bf16", "adamw", "eager", 4, 512, False, 0, "", 1),
    (S, "full", "bf16", "adamw", "sdpa", 4, 512, False, 0, "", 2),
    (S, "lora", "bf16", "adamw", "eager", 8, 512, False, 16, QV, 1),
    (S, "lora", "bf16", "adamw", "sdpa", 8, 1024, False, 16, ALL, 1),
    (S, "lora", "bf16", "adamw", "eager", 8, 1024, True, 16, QV, 1),
    (S, "qlora", "nf4@64+dq", "adamw", "eager", 4, 1024, True, 16, QV, 1),
    (S, "qlora", "nf4@64", "adamw", "sdpa", 4, 512, False, 16, QV, 1),
    (S, "full", "bf16", "adamw8", "sdpa", 4, 512, False, 0, "", 1),
    (M, "full", "bf16", "adamw", "sdpa", 2, 1024, False, 0, "", 1),
    (M, "full", "bf16", "adamw", "sdpa", 4, 1024, True, 0, "", 1),
    (M, "lora", "bf16", "adamw", "eager", 4, 1024, False, 16, QV, 1),
    (M, "lora", "bf16", "adamw", "sdpa", 8, 2048, True, 64, ALL, 1),
    (M, "qlora", "nf4@64+dq", "adamw", "eager", 4, 1024, False, 16, QV, 1),
    (M, "qlora", "nf4@64+dq", "paged-adamw32", "sdpa", 8, 2048, True, 16, QV, 1),
    (M, "lora", "int8@row", "adamw", "eager", 4, 512, True, 16, QV, 1),
    (L, "full", "bf16", "adamw", "sdpa", 2, 1024, True, 0, "", 1),
    (L, "lora", "bf16", "adamw", "eager", 2, 1024, False, 16, QV, 1),
    (L, "lora", "bf16", "adamw", "sdpa", 4, 2048, True, 16, QV, 2),
    (L, "qlora", "nf4@64+dq", "adamw", "sdpa", 4, 1024, True, 64, ALL, 1),
    (L, "qlora", "fp4-bnb@64", "adamw", "eager", 2, 512, False, 16, QV, 1),
    (L, "lora", "int8@row", "adamw", "eager", 2, 512, True, 16, QV, 1),
    (X, "lora", "bf16", "adamw", "eager", 1, 1024, True, 16, QV, 1),
    (X, "lora", "bf16", "adamw", "eager", 1, 512, False, 16, QV, 1),
    (X, "qlora", "nf4@64+dq", "adamw", "eager", 1, 1024, True, 64, QV, 1),
    (X, "qlora", "nf4@64+dq", "adamw", "sdpa", 2, 512, False, 16, QV, 1),
    (X, "lora", "int8@row", "adamw", "eager", 1, 512, True, 16, QV, 1),
]


def label_of(c):
    m, method, w, opt, attn, b, s, gc_, r, t, ga = c
    return f"{m} {method} {w} {opt} {attn} b{b} s{s}{' gc' if gc_ else ''}{f' r{r}' if r else ''}{' all' if t == ALL else ''}{f' ga{ga}' if ga > 1 else ''}"


def param_count(model):
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def write_h5(path, rows, meta):
    import h5py
    cols = [("label", "s"), ("model", "s"), ("params", "i"), ("trainable", "i"), ("mode", "s"), ("method", "s"),
            ("weights", "s"), ("weight_bits", "f"), ("compute", "s"), ("optimizer", "s"), ("attention", "s"),
            ("batch", "i"), ("seq_len", "i"), ("grad_accum", "i"), ("grad_ckpt", "b"), ("lora_rank", "i"),
            ("lora_targets", "s"), ("kbit_prep", "b"), ("gpu", "s"), ("gpus", "i")]
    cols += [(k + "_bytes", "f") for k in TERM_KEYS]
    cols += [("est_allocated_bytes", "f"), ("est_reserved_bytes", "f"), ("est_total_bytes", "f"), ("usable_bytes", "f"),
             ("headroom_bytes", "f"), ("peak_phase", "s"), ("verdict", "s"), ("published", "s"), ("agree", "b"),
             ("measured_allocated_bytes", "f"), ("measured_reserved_bytes", "f"), ("status", "s")]
    dt = []
    for name, kind in cols:
        if kind == "s":
            width = max([1] + [len(str(r.get(name, "")).encode()) for r in rows])
            dt.append((name, h5py.string_dtype("utf-8", width)))  # fixed-length UTF-8, as lowbit writes
        else:
            dt.append((name, {"i": "<i8", "f": "<f8", "b": "?"}[kind]))
    arr = np.zeros(len(rows), dtype=dt)
    for i, r in enumerate(rows):
        for name, kind in cols:
            v = r.get(name)
            if kind == "s":
                arr[name][i] = str(v if v is not None else "").encode()
            elif kind == "f":
                arr[name][i] = np.nan if v is None else float(v)
            elif kind == "i":
                arr[name][i] = 0 if v is None else int(v)
            else:
                arr[name][i] = bool(v)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", dir=d)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("memory", data=arr)
            ds.attrs["schema_version"] = 1
            ds.attrs["description"] = "measured GPU memory of training steps (scripts/measure_memory.py)"
            for name, kind in cols:
                ds.attrs[name + ".unit"] = "B" if name.endswith("_bytes") else ("" if kind in "sb" else "1")
                ds.attrs[name + ".description"] = name
            ds.attrs["measured_allocated_bytes.description"] = "max over steps >= 2 of torch.cuda.max_memory_allocated"
            ds.attrs["measured_reserved_bytes.description"] = "max over steps >= 2 of torch.cuda.max_memory_reserved"
            for k, v in meta.items():
                f.attrs[k] = str(v)
            f.attrs["schema_version"] = 1
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_model(cfg_dict, c, torch, transformers):
    model_name, method, weights, opt_name, attn, b, s, gc_, r, targets, ga = c
    cfg_dict = {k: v for k, v in cfg_dict.items() if not k.startswith("_")}
    cfg = transformers.AutoConfig.for_model(**cfg_dict)
    cfg.use_cache = False
    compute = torch.float16 if weights.startswith("int8") else torch.bfloat16
    with torch.device("cuda"):
        try:
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=compute, attn_implementation=attn)
        except TypeError:
            cfg._attn_implementation = attn
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=compute)
    quantized = weights not in ("bf16", "fp16", "fp32")
    if quantized:
        import bitsandbytes as bnb
        layers = model.model.layers
        for layer in layers:
            for parent in (layer.self_attn, layer.mlp):
                for name, lin in list(parent.named_children()):
                    if not isinstance(lin, torch.nn.Linear):
                        continue
                    w = lin.weight.data
                    if weights.startswith("int8"):
                        q = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                                has_fp16_weights=False, threshold=6.0, device="meta")
                        q.weight = bnb.nn.Int8Params(w.to("cpu", torch.float16), requires_grad=False,
                                                     has_fp16_weights=False)
                    else:
                        qt = "nf4" if weights.startswith("nf4") else "fp4"
                        dq = weights.endswith("+dq")
                        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                              compute_dtype=compute, compress_statistics=dq, quant_type=qt,
                                              device="meta")
                        q.weight = bnb.nn.Params4bit(w.to("cpu"), requires_grad=False, quant_type=qt,
                                                     compress_statistics=dq, blocksize=64)
                    if lin.bias is not None:
                        q.bias = torch.nn.Parameter(lin.bias.data, requires_grad=False)
                    q = q.cuda()
                    setattr(parent, name, q)
                    del lin, w
        # peft.prepare_model_for_kbit_training: non-quantized params to fp32, inputs require grad.
        for p in model.parameters():
            p.requires_grad_(False)
            if p.dtype in (torch.float16, torch.bfloat16) and p.__class__.__name__ not in ("Params4bit", "Int8Params"):
                p.data = p.data.float()
        model.enable_input_require_grads()
    if gc_:
        try:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        except TypeError:
            model.gradient_checkpointing_enable()
        if method != "full":
            model.enable_input_require_grads()
    if method != "full":
        import peft
        lc = peft.LoraConfig(r=r, lora_alpha=16, lora_dropout=0.0, target_modules=targets.split(","), bias="none",
                             task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lc)
    model.train()
    return model, quantized


def make_optimizer(opt_name, params, torch):
    if opt_name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5)
    import bitsandbytes as bnb
    if opt_name == "adamw8":
        return bnb.optim.AdamW8bit(params, lr=1e-5)
    if opt_name == "paged-adamw32":
        return bnb.optim.PagedAdamW32bit(params, lr=1e-5)
    raise ValueError(opt_name)


def run_one(c, torch, transformers, steps):
    model_name, method, weights, opt_name, attn, b, s, gc_, r, targets, ga = c
    with open(os.path.join(MODELS, model_name + ".json")) as f:
        cfg_dict = json.load(f)
    torch.manual_seed(0)
    model, quantized = build_model(cfg_dict, c, torch, transformers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    opt = make_optimizer(opt_name, trainable, torch)
    vocab = cfg_dict["vocab_size"]
    per_step = []
    gc.collect()
    torch.cuda.empty_cache()
    # Phase peaks (MiB allocated): blocks forward (until lm_head), loss forward, loss backward
    # (until the lm_head input gradient), blocks backward, optimizer step. Hooks only read and
    # reset the peak counter; the step's peak is the largest phase peak.
    phase = {}
    reserved = [0]
    mib = 2.0 ** 20

    def mark(name):
        torch.cuda.synchronize()
        phase[name] = max(phase.get(name, 0), torch.cuda.max_memory_allocated() / mib)
        reserved[0] = max(reserved[0], torch.cuda.max_memory_reserved())
        torch.cuda.reset_peak_memory_stats()

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    hooks = []
    if head is not None:
        hooks.append(head.register_forward_pre_hook(lambda m, a: mark("F_blocks")))
        hooks.append(head.register_full_backward_pre_hook(lambda m, g: mark("L_loss_bwd")))
    phases_per_step = []
    for step in range(steps):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        phase.clear()
        reserved[0] = 0
        for micro in range(ga):
            ids = torch.randint(0, vocab, (b, s), device="cuda")
            out = model(input_ids=ids, labels=ids)
            loss = out.loss / ga
            del out
            mark("L_loss_fwd")
            loss.backward()
            del loss
            mark("B_blocks_bwd")
        opt.step()
        opt.zero_grad(set_to_none=True)
        mark("S_step")
        phases_per_step.append(dict(phase))
        per_step.append((max(phase.values()) * mib, reserved[0]))
    for h in hooks:
        h.remove()
    base = getattr(model, "base_model", model)
    params = param_count(model) if method == "full" else None
    del opt, model, trainable
    steady = per_step[1:] if len(per_step) > 1 else per_step
    return {
        "measured_allocated_bytes": max(a for a, _ in steady),
        "measured_reserved_bytes": max(rv for _, rv in steady),
        "trainable": n_trainable,
        "params": params,
        "per_step": per_step,
        "phases": phases_per_step[-1],
        "kbit_prep": quantized,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default="measured_memory.h5")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration (>= 2)")
    ap.add_argument("--budget-s", type=float, default=320, help="skip remaining configurations after this many seconds")
    ap.add_argument("--only", default="", help="run only configurations whose label contains this text")
    ap.add_argument("--dry-run", action="store_true", help="list the grid and exit (no torch needed)")
    args = ap.parse_args()
    grid = [c for c in GRID if args.only in label_of(c)]
    if args.dry_run:
        for c in grid:
            print(label_of(c))
        print(f"{len(grid)} configurations over {len(set(c[0] for c in grid))} models")
        return 0
    t0 = time.time()
    import torch
    import transformers
    try:
        import peft  # noqa: F401
    except Exception as e:  # LoRA rows will fail one by one with a clear status
        print(f"warning: peft not importable: {e}", file=sys.stderr)
    try:
        import bitsandbytes as bnb
        bnb_version = bnb.__version__
    except Exception as e:
        bnb_version = f"not importable: {e}"
    props = torch.cuda.get_device_properties(0)
    meta = {"experiment": "measure_memory", "torch": torch.__version__, "transformers": transformers.__version__,
            "bitsandbytes": bnb_version, "gpu": props.name, "gpu_total_memory": props.total_memory,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command_line": " ".join(sys.argv)}
    gpu_name = "h200" if "H200" in props.name else "h100" if "H100" in props.name else f"{props.total_memory / 2**30:.2f}GiB"
    print(f"# {props.name}, total_memory {props.total_memory / 2**20:.0f} MiB; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, bitsandbytes {bnb_version}", flush=True)
    rows = []
    for i, c in enumerate(grid):
        model_name, method, weights, opt_name, attn, b, s, gc_, r, targets, ga = c
        row = {"label": label_of(c), "model": model_name, "mode": "train", "method": method, "weights": weights,
               "compute": "fp16" if weights.startswith("int8") else "bf16", "optimizer": opt_name, "attention": attn,
               "batch": b, "seq_len": s, "grad_accum": ga, "grad_ckpt": gc_, "lora_rank": r, "lora_targets": targets,
               "kbit_prep": weights not in ("bf16", "fp16", "fp32"), "gpu": gpu_name, "gpus": 1, "agree": False}
        elapsed = time.time() - t0
        if elapsed > args.budget_s:
            row["status"] = "skipped: time budget"
        else:
            t1 = time.time()
            try:
                res = run_one(c, torch, transformers, max(2, args.steps))
                row.update({k: v for k, v in res.items() if k in ("measured_allocated_bytes", "measured_reserved_bytes",
                                                                   "trainable", "params")})
                row["status"] = "ok"
                steps_txt = " ".join(f"{a / 2**20:.0f}/{rv / 2**20:.0f}" for a, rv in res["per_step"])
                print(f"[{i + 1:2d}/{len(grid)}] ok    {label_of(c):<60} alloc {row['measured_allocated_bytes'] / 2**30:6.2f} GiB"
                      f"  reserved {row['measured_reserved_bytes'] / 2**30:6.2f} GiB  ({time.time() - t1:.1f} s; per step MiB {steps_txt})",
                      flush=True)
                print("        phase peaks MiB: " + "  ".join(f"{k} {v:.0f}" for k, v in res["phases"].items()), flush=True)
            except torch.cuda.OutOfMemoryError:
                row["status"] = "oom"
                print(f"[{i + 1:2d}/{len(grid)}] OOM   {label_of(c)}", flush=True)
            except Exception as e:  # keep going: one broken configuration must not end the run
                msg = f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
                row["status"] = "error: " + msg
                print(f"[{i + 1:2d}/{len(grid)}] ERROR {label_of(c)}: {msg}", flush=True)
                traceback.print_exc(limit=3)
            finally:
                gc.collect()
                torch.cuda.empty_cache()
        rows.append(row)
        meta["end_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            write_h5(args.output, rows, meta)
        except Exception as e:
            print(f"warning: could not write {args.output}: {e}", file=sys.stderr)
    ok = [r for r in rows if r["status"] == "ok"]
    print(f"\nsummary: {len(ok)}/{len(rows)} configurations measured over "
          f"{len(set(r['model'] for r in ok))} models in {time.time() - t0:.0f} s; "
          f"{sum(r['status'] == 'oom' for r in rows)} OOM, {sum(r['status'].startswith('error') for r in rows)} errors, "
          f"{sum(r['status'].startswith('skipped') for r in rows)} skipped -> {args.output}")
    print("next: lowbit memory --validate " + args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
