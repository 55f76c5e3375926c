#!/usr/bin/env python3
"""lowbit report: Markdown + PNG reports from lowbit's HDF5 results.

    python3 scripts/lowbit_report.py RESULTS.h5 [MORE.h5 ...] -o reports/NAME/
    (or `lowbit report ...`, which runs this file)

Writes NAME/index.md and one PNG per figure, for whatever tables the files
hold: formats, quant_error, matmul_error, memory (+ memory_measured),
kernel_bench. Every report states its provenance from the files' root
attributes. Output is deterministic: the same HDF5 gives byte-identical
Markdown and PNGs (fixed fonts, no timestamps in PNG metadata). A file
without any known table, or with a schema_version this script does not
know, is an error (exit 2); rows are never dropped silently.
"""
import argparse
import math
import os
import sys
import zlib
from pathlib import Path

SCHEMA_VERSIONS = {1}
# Columns a table gained later, appended at its end, with the value older files mean: files written
# before and after can be read together.
LATER_COLUMNS = {"kernel_bench": [("outlier_frac", 0.0), ("rounds", 1)]}


class ReportError(Exception):
    pass


# ---- reading -------------------------------------------------------------------

def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace").rstrip("\x00")
    if hasattr(v, "item"):
        v = v.item()
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace").rstrip("\x00")
    return v


def load(paths):
    """{table name: DataFrame (rows of all files concatenated)}, [provenance per file]."""
    import h5py
    import pandas as pd

    tables, provenance = {}, []
    for p in paths:
        if not os.path.exists(p):
            raise ReportError(f"cannot read '{p}': no such file")
        try:
            f = h5py.File(p, "r")
        except OSError as e:
            raise ReportError(f"cannot read '{p}': not an HDF5 file ({e})")
        with f:
            version = f.attrs.get("schema_version")
            if version is None or int(version) not in SCHEMA_VERSIONS:
                raise ReportError(f"'{p}': unknown schema_version {version!r} (this report knows {sorted(SCHEMA_VERSIONS)})")
            provenance.append({"file": os.path.basename(p), **{k: _text(v) for k, v in f.attrs.items()}})
            found = False
            for name, obj in f.items():
                if not isinstance(obj, h5py.Dataset) or obj.dtype.names is None or name == "runs":
                    continue
                df = pd.DataFrame(obj[:])
                for c in df.columns:
                    if df[c].dtype == object:
                        df[c] = df[c].map(_text)
                for c, v in LATER_COLUMNS.get(name, []):
                    if c not in df.columns:
                        df[c] = v
                df.attrs["units"] = {c: _text(obj.attrs.get(f"{c}.unit", "")) for c in df.columns}
                if name in tables:
                    units = tables[name].attrs["units"]
                    if list(tables[name].columns) != list(df.columns):
                        raise ReportError(f"'{p}': table '{name}' has columns {list(df.columns)}, "
                                          f"another file has {list(tables[name].columns)}")
                    tables[name] = pd.concat([tables[name], df], ignore_index=True)
                    tables[name].attrs["units"] = units
                else:
                    tables[name] = df
                found = True
            if "values" in f and isinstance(f["values"], h5py.Group):
                for name, obj in f["values"].items():
                    tables.setdefault("_values", {})[name] = obj[:]
            if not found:
                raise ReportError(f"'{p}': holds no results table (expected formats, quant_error, "
                                  f"matmul_error, memory or kernel_bench)")
    return tables, provenance


# ---- presentation --------------------------------------------------------------

# Each format keeps its colour in every figure: the standard set has fixed
# entries, any other name a stable hash into the same palette.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
           "#e6550d", "#31a354", "#756bb1", "#636363"]
STANDARD = ["fp16", "bf16", "e4m3fn", "e5m2", "e2m3fn", "e3m2fn", "e2m1fn", "e3m0", "e1m2", "nf4@64",
            "nf4@64+dq", "fp4-bnb@64", "int8@row", "int4@64", "mxfp8", "mxfp6", "mxfp4", "nvfp4"]


def colour(name):
    base = str(name)
    if base.endswith("@tensor"):  # e4m3fn@tensor keeps e4m3fn's colour
        base = base[: -len("@tensor")]
    if base in STANDARD:
        return PALETTE[STANDARD.index(base) % len(PALETTE)]
    return PALETTE[zlib.crc32(base.encode()) % len(PALETTE)]


def marker(name):
    """One marker per family, so neighbours of the same colour stay apart."""
    n = str(name)
    if n.startswith(("mx", "nvfp")) or ":e8m0" in n or ":e4m3fn" in n:
        return "D"
    if n.startswith(("nf", "fp4-bnb", "dyn8", "table:")):
        return "s"
    if n.startswith("int"):
        return "^"
    return "o"


def short_source(dist):
    """A readable label for a data source: weights:PATH:GLOB keeps the file's last folders."""
    d = str(dist)
    if d.startswith("weights:"):
        rest = d[len("weights:"):]
        path, _, glob = rest.rpartition(":") if rest.count(":") else (rest, "", "")
        parts = [p for p in path.split("/") if p]
        return "weights " + "/".join(parts[-3:]) + (f" [{glob}]" if glob else "")
    return d


def slug(text):
    s = "".join(ch if ch.isalnum() else "_" for ch in short_source(text))[:48].strip("_")
    return f"{s}_{zlib.crc32(str(text).encode()) & 0xffff:04x}"


def fmt_num(v):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if isinstance(v, (bool,)) or (hasattr(v, "dtype") and v.dtype == bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) or (hasattr(v, "dtype") and v.dtype.kind in "iu"):
        return str(int(v))
    v = float(v)
    if v == 0:
        return "0"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if 1e-3 <= a < 1e6:
        return f"{v:.6g}"
    return f"{v:.5g}"


def md_table(df, columns, headers=None):
    headers = headers or columns
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt_num(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10, "figure.dpi": 110,
                         "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "lowbit"})
    return plt


def save(fig, out_dir, name):
    path = Path(out_dir) / name
    # No Software/date chunks: the same data gives the same bytes.
    fig.savefig(path, format="png", metadata={"Software": None}, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name


# ---- sections ------------------------------------------------------------------

def section_formats(df, values, out):
    plt = figure()
    md = ["## Formats", "", "Limits of each format (from `lowbit formats`).", ""]
    cols = [c for c in ["name", "bits", "exp_bits", "man_bits", "bias", "policy", "max_finite", "min_normal",
                        "min_subnormal", "epsilon", "finite_values", "dynamic_range"] if c in df.columns]
    md += [md_table(df, cols), ""]
    # The x range covers the narrow formats' binades; wider formats (bf16,
    # E8M0) run off the axis and say how far they go.
    x_lo, x_hi = -26.0, 18.0
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(df) + 1.4))
    for i, (_, r) in enumerate(df.iterrows()):
        name = r["name"]
        lo, hi = math.log2(r["min_subnormal"]), math.log2(r["max_finite"])
        if values is not None and name in values and r["bits"] <= 8:
            v = values[name]
            vals = v["value"] if getattr(v, "dtype", None) is not None and v.dtype.names else v
            pos = sorted({abs(float(x)) for x in vals if math.isfinite(float(x)) and float(x) != 0})
            ax.scatter([math.log2(p) for p in pos], [i] * len(pos), s=60, color=colour(name), marker="|", lw=1.2)
        else:
            ax.plot([max(lo, x_lo), min(hi, x_hi)], [i, i], color=colour(name), lw=7, solid_capstyle="butt", alpha=0.8)
        if lo < x_lo:
            ax.annotate(f"from 2^{lo:.0f}", (x_lo, i), xytext=(2, 6), textcoords="offset points", fontsize=7)
        if hi > x_hi:
            ax.annotate(f"to 2^{hi:.3g}", (x_hi, i), xytext=(-40, 6), textcoords="offset points", fontsize=7)
    ax.set_xlim(x_lo, x_hi)
    ax.set_yticks(range(len(df)))
    ax.set_yticklabels(df["name"])
    ax.invert_yaxis()
    ax.set_xlabel("log2 |value| (sign folded); ticks: every positive value of formats up to 8 bits, bars: ranges")
    ax.set_title("Where each format's values lie")
    md += [f"![format values]({save(fig, out, 'formats_values.png')})", ""]
    return md


def pareto(points):
    """Points (bits, sqnr) not dominated by a cheaper-or-equal, better one."""
    front, best = [], -math.inf
    for b, s in sorted(points, key=lambda p: (p[0], -p[1])):
        if s > best:
            front.append((b, s))
            best = s
    return front


def section_quant_error(df, out):
    plt = figure()
    md = ["## Quantization error", "",
          "SQNR = 10·log10(Σx² / Σ(x − q(x))²) in dB; bits per parameter include scales and constants. "
          "Mean over seeds where several were run.", ""]
    group = ["format", "dist"]
    agg = df.groupby(group, sort=True).agg(
        sqnr_db=("sqnr_db", "mean"), bits_per_param=("bits_per_param", "mean"), mse=("mse", "mean"),
        max_abs_err=("max_abs_err", "max"), n_nan=("n_nan", "sum"), n_clipped=("n_clipped", "sum"),
        cells=("sqnr_db", "size")).reset_index()
    for dist in sorted(agg["dist"].unique()):
        d = agg[agg["dist"] == dist].sort_values(["sqnr_db", "format"], ascending=[False, True])
        fig, ax = plt.subplots(figsize=(9.5, 5.5))
        for _, r in d.iterrows():
            ax.scatter(r["bits_per_param"], r["sqnr_db"], color=colour(r["format"]), marker=marker(r["format"]),
                       s=46, zorder=3, label=r["format"], edgecolors="black", linewidths=0.4)
        front = pareto([(r["bits_per_param"], r["sqnr_db"]) for _, r in d.iterrows() if math.isfinite(r["sqnr_db"])])
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#444", lw=1,
                    ls="--", label="Pareto front", zorder=2)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  title="format (ranked)", title_fontsize=8)
        ax.set_xlabel("bits per parameter (incl. scales)")
        ax.set_ylabel("SQNR (dB)")
        ax.set_title(f"SQNR vs storage — {short_source(dist)}")
        png = save(fig, out, f"sqnr_vs_bits_{slug(dist)}.png")
        md += [f"### {short_source(dist)}", "", f"![SQNR vs bits, {short_source(dist)}]({png})", "",
               md_table(d, ["format", "bits_per_param", "sqnr_db", "mse", "max_abs_err", "n_nan", "n_clipped", "cells"],
                        ["format", "bits/param", "SQNR dB", "MSE", "max abs err", "NaN out", "clipped", "cells"]), ""]
    return md


def section_matmul_error(df, out):
    plt = figure()
    md = ["## Matmul error", "",
          "Relative Frobenius error ‖C − C₆₄‖/‖C₆₄‖ of C = A·B against an fp64 reference, by method and fraction "
          "of A's columns planted as outliers (LLM activations). Mean over seeds and shapes.", ""]
    keys = ["method", "outlier_frac"]
    agg = df.groupby(keys, sort=True).agg(rel_fro_err=("rel_fro_err", "mean"), max_abs_err=("max_abs_err", "max"),
                                          weight_bits=("weight_bits", "mean"),
                                          outliers_detected=("outliers_detected", "mean"),
                                          cells=("rel_fro_err", "size")).reset_index()
    fracs = sorted(agg["outlier_frac"].unique())
    methods = list(agg.sort_values("weight_bits", ascending=False)["method"].unique())
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / max(1, len(fracs))
    for j, f in enumerate(fracs):
        d = agg[agg["outlier_frac"] == f].set_index("method")
        ys = [d["rel_fro_err"].get(m, float("nan")) for m in methods]
        ax.bar([i + (j - (len(fracs) - 1) / 2) * width for i in range(len(methods))], ys, width,
               label=f"{100 * f:g} % outlier columns", color=PALETTE[j % len(PALETTE)], edgecolor="black", linewidth=0.4)
    ax.set_yscale("log")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30, ha="right")
    ax.set_ylabel("relative Frobenius error (log)")
    ax.set_title("Matmul error by method and outlier fraction")
    ax.legend(fontsize=8)
    md += [f"![matmul error]({save(fig, out, 'matmul_error.png')})", ""]
    agg = agg.sort_values(["outlier_frac", "rel_fro_err"])
    md += [md_table(agg, ["method", "outlier_frac", "weight_bits", "rel_fro_err", "max_abs_err", "outliers_detected", "cells"],
                    ["method", "outlier fraction", "weight bits", "rel. Frobenius err", "max abs err",
                     "outlier cols found", "cells"]), ""]
    return md


MEMORY_TERM_COLOURS = {
    "weights": "#1f77b4", "quant_constants": "#aec7e8", "embeddings_lm_head": "#393b79", "norms_biases": "#9edae5",
    "lora_params": "#2ca02c", "gradients": "#98df8a", "optimizer_states": "#ff7f0e", "optimizer_step_temp": "#ffbb78",
    "act_checkpoints": "#8c564b", "act_norms": "#c49c94", "act_linear_inputs": "#e377c2", "act_lora": "#f7b6d2",
    "act_attention": "#d62728", "act_mlp": "#ff9896", "act_dropout": "#7f7f7f", "forward_workspace": "#bcbd22",
    "backward_workspace": "#dbdb8d", "logits_loss": "#9467bd", "dequant_workspace": "#c5b0d5", "kv_cache": "#17becf",
    "prefill_workspace": "#637939", "allocator_overhead": "#c7c7c7", "cuda_context": "#636363"}


def _memory_terms(df):
    skip = {"est_allocated_bytes", "est_reserved_bytes", "est_total_bytes", "usable_bytes", "headroom_bytes",
            "measured_allocated_bytes", "measured_reserved_bytes"}
    return [c[: -len("_bytes")] for c in df.columns if c.endswith("_bytes") and c not in skip]


def _memory_breakdown(plt, df, out, name, title, measured=False):
    terms = [t for t in _memory_terms(df) if (df[t + "_bytes"].fillna(0) > 0).any()]
    labels = [(f"{m}: " if not str(x).startswith(str(m)) else "") + str(x) + (f" ({int(s)})" if not str(x).startswith(str(m)) else "")
              for m, x, s in zip(df["model"], df["label"], df["seq_len"])]
    gib = 2.0 ** 30
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(df) + 1.8))
    left = [0.0] * len(df)
    ys = list(range(len(df)))[::-1]
    for t in terms:
        v = [float(x) / gib if x == x else 0.0 for x in df[t + "_bytes"]]
        ax.barh(ys, v, left=left, color=MEMORY_TERM_COLOURS.get(t, colour(t)), edgecolor="white", linewidth=0.3,
                label=t, height=0.75)
        left = [a + b for a, b in zip(left, v)]
    ax.scatter(df["est_total_bytes"] / gib, ys, marker="D", s=22, color="white", edgecolors="black", zorder=5,
               label="lowbit peak (total)")
    if measured:
        ax.scatter(df["measured_allocated_bytes"] / gib, ys, marker="|", s=160, color="black", zorder=4,
                   label="measured allocated")
        ax.scatter(df["measured_reserved_bytes"] / gib, ys, marker="x", s=30, color="black", zorder=4,
                   label="measured reserved")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("GiB (worst GPU)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return save(fig, out, name)


def section_memory(df, out):
    """Memory model: breakdown per configuration, regenerated OOM tables, estimator vs measured."""
    plt = figure()
    gib = 2.0 ** 30
    md = ["## GPU memory", "",
          "lowbit memory: every term of the model (weights, constants, adapters, gradients, optimizer states, "
          "saved activations, workspaces, logits/loss buffers, allocator, CUDA context) per configuration, "
          "on the worst GPU; peak = the largest phase (F forward, L loss, B block backward, S step, P prefill). "
          "The bars stack every term, also terms of different phases that never coexist; the diamond marks "
          "lowbit's peak (total incl. allocator and CUDA context).", ""]
    df = df.reset_index(drop=True)
    has_measured = "measured_allocated_bytes" in df and df["measured_allocated_bytes"].notna().any()
    published = df[df["published"].astype(str).str.len() > 0] if "published" in df else df.iloc[0:0]
    if len(published):
        pub = published.copy()
        pub["GPUs"] = [f"{int(n)}×{str(g).upper()}" for n, g in zip(pub["gpus"], pub["gpu"])]
        pub["published"] = ["no OOM" if str(p) == "fits" else str(p) for p in pub["published"]]
        pub["lowbit"] = [("no OOM" if v != "OOM" else "OOM") + (" (paged)" if v == "fits-with-paging" else "")
                         for v in pub["verdict"]]
        pub["peak GiB"] = [f"{x / gib:.2f}" for x in pub["est_total_bytes"]]
        pub["headroom GiB"] = [f"{x / gib:.2f}" for x in pub["headroom_bytes"]]
        pub["agree"] = ["yes" if a else "**NO**" for a in pub["agree"]]
        n_ok = int(sum(1 for a in published["agree"] if a))
        md += ["### Published OOM tables, regenerated", "",
               f"Agreement: **{n_ok}/{len(pub)}** published results (stack column: which library behaviour is "
               "modelled).", "",
               md_table(pub, ["model", "GPUs", "label", "seq_len", "stack", "published", "lowbit", "peak GiB",
                              "headroom GiB", "agree"],
                        ["model", "GPUs", "method", "seq len", "stack", "published", "lowbit", "peak GiB",
                         "headroom GiB", "agree"]), ""]
        png = _memory_breakdown(plt, pub, out, "memory_breakdown_published.png",
                                "Memory breakdown, published configurations")
        md += [f"![memory breakdown, published configurations]({png})", ""]
    if has_measured:
        m = df[(df["status"] == "ok") & df["measured_allocated_bytes"].notna()].copy()
        m["err_alloc"] = 100 * (m["est_allocated_bytes"] - m["measured_allocated_bytes"]) / m["measured_allocated_bytes"]
        m["err_res"] = 100 * (m["est_reserved_bytes"] - m["measured_reserved_bytes"]) / m["measured_reserved_bytes"]
        for c, src in [("est alloc MiB", "est_allocated_bytes"), ("meas alloc MiB", "measured_allocated_bytes"),
                       ("est resv MiB", "est_reserved_bytes"), ("meas resv MiB", "measured_reserved_bytes")]:
            m[c] = [f"{x / 2 ** 20:.0f}" for x in m[src]]
        m["alloc err %"] = [f"{x:+.1f}" for x in m["err_alloc"]]
        m["resv err %"] = [f"{x:+.1f}" for x in m["err_res"]]
        ea, er = m["err_alloc"].abs(), m["err_res"].abs()
        md += ["### Estimator vs measured", "",
               f"{len(m)} measured configurations. Peak allocated (torch.cuda.max_memory_allocated): median |error| "
               f"**{ea.median():.1f} %**, worst **{ea.max():.1f} %**; peak reserved (max_memory_reserved): median "
               f"**{er.median():.1f} %**, worst **{er.max():.1f} %** (goal: median ≤ 5 %, worst ≤ 15 %).", ""]
        fig, ax = plt.subplots(figsize=(10, 0.3 * len(m) + 1.6))
        ys = list(range(len(m)))[::-1]
        ax.barh([y + 0.2 for y in ys], m["err_alloc"], height=0.4, color="#1f77b4", label="peak allocated")
        ax.barh([y - 0.2 for y in ys], m["err_res"], height=0.4, color="#ff7f0e", label="peak reserved")
        for x in (-15, -5, 5, 15):
            ax.axvline(x, color="#444" if abs(x) == 15 else "#999", lw=0.8, ls="--")
        ax.set_yticks(ys)
        ax.set_yticklabels(m["label"], fontsize=7)
        ax.set_xlabel("estimate − measured (% of measured)")
        ax.set_title("lowbit memory vs measured GPU memory")
        ax.legend(fontsize=8)
        md += [f"![estimator vs measured]({save(fig, out, 'memory_error.png')})", "",
               md_table(m, ["label", "est alloc MiB", "meas alloc MiB", "alloc err %", "est resv MiB", "meas resv MiB",
                            "resv err %", "peak_phase"],
                        ["configuration", "est alloc MiB", "meas alloc MiB", "alloc err %", "est resv MiB",
                         "meas resv MiB", "resv err %", "peak phase"]), ""]
        png = _memory_breakdown(plt, m, out, "memory_breakdown_measured.png",
                                "Memory breakdown vs measured (| allocated, × reserved)", measured=True)
        md += [f"![memory breakdown, measured configurations]({png})", ""]
    rest = df[~df.index.isin(published.index)]
    if has_measured:
        rest = rest[~((rest["status"] == "ok") & rest["measured_allocated_bytes"].notna())]
    if len(rest):
        png = _memory_breakdown(plt, rest, out, "memory_breakdown.png", "Memory breakdown")
        md += [f"![memory breakdown]({png})", ""]
    return md


def section_kernel_bench(df, out):
    plt = figure()
    gpu = ", ".join(sorted(set(df["gpu"]))) if "gpu" in df.columns else "?"
    copy = df[(df["op"] == "copy") & (df["format"] == "")]["gbps"]  # the ceiling (not the same-size copies)
    md = ["## GPU kernels", "",
          f"GPU: {gpu}. Times are medians per call; *graph* = calls captured in a CUDA graph (launch overhead "
          "removed), the basis of every comparison; *eager* = one host launch per call. % copy = bytes moved / "
          "the device-to-device copy rate measured in the same run"
          + (f" ({', '.join(f'{v:.0f}' for v in copy)} GB/s)." if len(copy) else "."), ""]
    g = df[df["mode"] == "graph"]
    # Elementwise: lowbit beside the best peer of the same op / format / dtype.
    # A peer that cannot be captured in a graph (bitsandbytes' quantize_4bit
    # synchronises with the host) is compared by its eager time, and marked so.
    import pandas as pd
    ew = df[df["op"].isin(["dequantize", "quantize"])]
    graph_keys = set(map(tuple, ew[ew["mode"] == "graph"][["op", "format", "dtype", "impl"]].values.tolist()))
    eager_only = ew[(ew["mode"] == "eager") & ~ew["impl"].str.startswith("lowbit")]
    eager_only = eager_only[[tuple(r) not in graph_keys for r in eager_only[["op", "format", "dtype", "impl"]].values.tolist()]]
    rows = []
    for (op, fmt_, dt), d in g[g["op"].isin(["dequantize", "quantize"])].groupby(["op", "format", "dtype"], sort=True):
        mine = d[d["impl"].isin(["lowbit", "lowbit-generic"])]  # the fast kernel, else the generic path
        if mine.empty or fmt_.endswith("@tensor"):  # per-tensor FP8 quantize: its own section, by size
            continue
        e = eager_only[(eager_only["op"] == op) & (eager_only["format"] == fmt_) & (eager_only["dtype"] == dt)].copy()
        e["impl"] = e["impl"] + " (eager only)"
        peers = pd.concat([d[~d["impl"].str.startswith("lowbit")], e]).sort_values("median_us")
        peer = peers.iloc[0] if len(peers) else None
        m = mine.iloc[0]
        generic = m["impl"] == "lowbit-generic"
        rows.append({"op": op, "format": fmt_ + (" (generic path)" if generic else ""), "dtype": dt,
                     "lowbit_us": round(m["median_us"], 1),
                     "pct_copy": round(m["pct_copy"], 1), "peer": peer["impl"] if peer is not None else "—",
                     "peer_us": f"{peer['median_us']:.1f}" if peer is not None else "—",
                     "speedup": f"{peer['median_us'] / m['median_us']:.2f}×" if peer is not None else "—"})
    if rows:
        t = pd.DataFrame(rows)
        md += ["### Blockwise quantize / dequantize", "",
               md_table(t, ["op", "format", "dtype", "lowbit_us", "pct_copy", "peer", "peer_us", "speedup"],
                        ["op", "format", "dtype", "lowbit µs", "% copy", "best peer", "peer µs", "peer / lowbit"]), ""]
    # 4-bit GEMV / GEMM against the 16-bit baseline and the 4-bit peers.
    gm = g[g["op"].isin(["gemm", "gemm4", "dequant_gemm"]) & (g["M"] > 0) & (g["M"] <= 64)]
    if not gm.empty:
        def pick(d, op, impl, fmt=None):  # bf16 activations; lowbit's nf4 column is nf4@64 alone
            x = d[(d["op"] == op) & (d["impl"] == impl) & (d["dtype"] == "bf16")]
            if fmt is not None:
                x = x[x["format"] == fmt]
            return x["median_us"].min() if len(x) else float("nan")
        rows = []
        for (k, n, m), d in gm.groupby(["K", "N", "M"], sort=True):
            base = pick(d, "gemm", "cublaslt")
            rows.append({"shape": f"{k}x{n}", "M": m, "cublaslt bf16": base, "torch bf16": pick(d, "gemm", "torch"),
                         "lowbit nf4": pick(d, "gemm4", "lowbit", "nf4@64"), "tinygemm int4": pick(d, "gemm4", "tinygemm"),
                         "bnb nf4": pick(d, "gemm4", "bnb"), "dequant+cuBLASLt": pick(d, "dequant_gemm", "lowbit+cublaslt")})
        import pandas as pd
        t = pd.DataFrame(rows)
        t["lowbit vs bf16"] = t["cublaslt bf16"] / t["lowbit nf4"]
        shown = t.copy()
        for c in shown.columns[2:]:
            shown[c] = [("—" if v != v else (f"{v:.2f}×" if c == "lowbit vs bf16" else f"{v:.1f}")) for v in shown[c]]
        md += ["### 4-bit weight × bf16 activation (µs, graph)", "",
               md_table(shown, list(shown.columns)), ""]
        impls = ["lowbit nf4", "tinygemm int4", "bnb nf4"]
        labels = [f"{r['shape'].replace('x', '×')}  M={r['M']}" for _, r in t.iterrows()]
        fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(t) + 2), 5.5))
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            ax.bar([i + (j - 1) * width for i in range(len(t))], t["cublaslt bf16"] / t[impl], width, label=impl,
                   color=PALETTE[j], edgecolor="black", linewidth=0.4)
        ax.axhline(1.0, color="#444", lw=1, ls="--", label="cuBLASLt bf16 (= 1)")
        ax.set_xticks(range(len(t)))
        ax.set_xticklabels(labels, fontsize=8, rotation=45, ha="right")
        ax.set_ylabel("speed-up over cuBLASLt bf16 (×, graph times)")
        ax.set_title(f"4-bit GEMV / small-batch GEMM vs the 16-bit baseline — {gpu}")
        ax.legend(fontsize=8)
        md += [f"![4-bit GEMV speed-up]({save(fig, out, 'gemv_speedup.png')})", ""]
    md += matmul_tables(df, copy)
    return md


def matmul_tables(df, copy):
    """Issue 11: int8 / LLM.int8 / FP8 matmuls (kernel-bench --ops matmul,fp8quant) beside cuBLASLt bf16 of the
    same run and the torch / bnb peers (peer_bench.py --ops matmul). Speed-up = the other's time / lowbit's."""
    import pandas as pd
    md = []
    mm = df[df["op"].isin(["matmul", "linear"])]
    if mm.empty:
        return md

    def pick(d, op, impl, fmt, mode="graph", frac=None):
        x = d[(d["op"] == op) & (d["impl"] == impl) & (d["format"] == fmt) & (d["mode"] == mode)]
        if frac is not None:
            x = x[(x["outlier_frac"] - frac).abs() < 1e-12]
        return x["median_us"].min() if len(x) else float("nan")

    def num(v):
        return "—" if v != v else f"{v:.1f}"

    def ratio(a, b):
        return "—" if a != a or b != b or b <= 0 else f"{a / b:.2f}×"

    cols = [("cuBLASLt bf16", "matmul", "cublaslt", "bf16"), ("torch bf16", "matmul", "torch", "bf16"),
            ("lowbit int8", "matmul", "lowbit", "int8"), ("torch._int_mm", "matmul", "torch._int_mm", "int8"),
            ("lowbit e4m3", "matmul", "lowbit", "e4m3fn"), ("torch._scaled_mm", "matmul", "torch._scaled_mm", "e4m3fn"),
            ("lowbit e5m2×e4m3", "matmul", "lowbit", "e5m2xe4m3fn"), ("int8@row layer", "linear", "lowbit", "int8@row"),
            ("e4m3 layer", "linear", "lowbit", "e4m3fn@tensor")]
    rows = []
    for (k, n, m), d in mm.groupby(["K", "N", "M"], sort=True):
        t = {c[0]: pick(d, *c[1:]) for c in cols}
        r = {"shape": f"{k}x{n}", "M": m, **{c: num(v) for c, v in t.items()},
             "int8 vs bf16": ratio(t["cuBLASLt bf16"], t["lowbit int8"]),
             "int8 vs _int_mm": ratio(t["torch._int_mm"], t["lowbit int8"]),
             "e4m3 vs _scaled_mm": ratio(t["torch._scaled_mm"], t["lowbit e4m3"])}
        rows.append(r)
    t = pd.DataFrame(rows)
    md += ["### int8 / FP8 matmuls (µs per call, graph)", "",
           "GEMMs on operands already in their format (int8 → int32, FP8 → bf16) and whole layers from bf16 "
           "activations; each shape's candidates interleaved round by round, median of the rounds' medians. "
           "Speed-up = the other's time / lowbit's.", "",
           md_table(t, list(t.columns)), ""]
    llm = mm[mm["format"] == "llm.int8"]
    if not llm.empty:
        rows = []
        for (k, n, m, f), d in llm.groupby(["K", "N", "M", "outlier_frac"], sort=True):
            a = df[(df["K"] == k) & (df["N"] == n) & (df["M"] == m)]
            lg, le = pick(d, "linear", "lowbit", "llm.int8", frac=f), pick(d, "linear", "lowbit", "llm.int8", "eager", f)
            bf, bnb = pick(a, "matmul", "cublaslt", "bf16"), pick(d, "linear", "bnb", "llm.int8", "eager", f)
            rows.append({"shape": f"{k}x{n}", "M": m, "outliers": f"{100 * f:g} %", "lowbit graph": num(lg),
                         "lowbit eager": num(le), "cuBLASLt bf16": num(bf), "bnb (eager)": num(bnb),
                         "vs bf16": ratio(bf, lg), "vs bnb": ratio(bnb, lg), "vs bnb, eager/eager": ratio(bnb, le)})
        t = pd.DataFrame(rows)
        md += ["### LLM.int8 layer (µs per call)", "",
               "Outlier columns planted in the activations (every 1/fraction-th column × 20), threshold 6. "
               "bitsandbytes (`bnb.matmul`) runs eagerly only: its outlier search synchronises with the host, so it "
               "cannot be captured in a CUDA graph.", "",
               md_table(t, list(t.columns)), ""]
    q = df[(df["op"] == "quantize") & (df["format"] == "e4m3fn@tensor") & (df["mode"] == "graph")]
    if not q.empty:
        c = copy.iloc[0] if len(copy) else float("nan")
        # A device-to-device copy of the same bytes, timed beside them (kernel-bench since session 16).
        same = df[(df["op"] == "copy") & (df["format"] == "e4m3fn@tensor") & (df["mode"] == "graph")]
        same_gbps = {int(r["elements"]): r["gbps"] for _, r in same.iterrows()}
        t = pd.DataFrame([{"scaling": "delayed" if r["impl"].endswith("delayed") else "current",
                           "elements": r["elements"], "µs": num(r["median_us"]), "GB/s": f"{r['gbps']:.0f}",
                           "% copy": num(100 * r["gbps"] / c),
                           "% same-size copy": num(100 * r["gbps"] / same_gbps[int(r["elements"])])
                           if int(r["elements"]) in same_gbps else "–"}
                          for _, r in q.sort_values(["impl", "elements"]).iterrows()])
        md += ["### FP8 quantize with amax, bf16 → e4m3fn per tensor (graph)", "",
               "% copy: against the 1 GiB copy ceiling; % same-size copy: against a device-to-device copy of the "
               "same bytes timed in the same rounds (a 50 MB copy does not reach the 1 GiB rate).", "",
               md_table(t, list(t.columns)), ""]
    return md


def section_generic(name, df):
    md = [f"## {name}", "", f"{len(df)} rows.", "", md_table(df, list(df.columns)), ""]
    return md


def provenance_md(prov):
    keys = ["file", "experiment", "command_line", "git_commit", "lowbit_version", "hostname", "cpu", "gpu",
            "gpu_driver", "cuda_version", "start_time", "end_time"]
    lines = ["## Provenance", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for p in prov:
        lines.append("| " + " | ".join(str(p.get(k, "")).replace("|", "\\|") for k in keys) + " |")
    return lines + [""]


SECTIONS = ["formats", "quant_error", "matmul_error", "memory", "memory_measured", "kernel_bench"]


def build(paths, out_dir, title=None):
    tables, prov = load(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values = tables.pop("_values", None)
    known = [t for t in SECTIONS if t in tables]
    if not known:
        raise ReportError(f"no known table in {', '.join(paths)} (found {sorted(tables)})")
    md = [f"# {title or 'lowbit report'}", ""]
    for name in known:
        df = tables[name]
        if name == "formats":
            md += section_formats(df, values, out)
        elif name == "quant_error":
            md += section_quant_error(df, out)
        else:
            renderer = globals().get(f"section_{name}")
            md += renderer(df, out) if renderer else section_generic(name, df)
    md += provenance_md(prov)
    (out / "index.md").write_text("\n".join(md).rstrip() + "\n")
    return out / "index.md"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="lowbit report", description="Markdown + PNG report from lowbit HDF5 results")
    ap.add_argument("results", nargs="+", help="HDF5 results files")
    ap.add_argument("-o", "--output", required=True, help="output directory (index.md + PNGs)")
    ap.add_argument("--title", help="report title")
    args = ap.parse_args(argv)
    try:
        index = build(args.results, args.output, args.title)
    except ReportError as e:
        print(f"lowbit report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
