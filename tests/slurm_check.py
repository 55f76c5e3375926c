#!/usr/bin/env python3
"""Sweeps on a real Slurm: starts a single-node Slurm on 127.0.0.1
(scripts/slurm/local-cluster), submits a 4-task quant-error array plus the
merge job through scripts/slurm/submit, and asserts that the merged table
equals a single-process run of the same config row for row and value for
value. Then cancels one task of a second array, resubmits it alone and checks
the merge again. Every daemon it started is stopped by pid, also on failure.

Usage: slurm_check.py path/to/lowbit          (exit 77: slurm/munge missing)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

LOWBIT = Path(sys.argv[1]).resolve()
ROOT = Path(os.environ.get("LOWBIT_SOURCE_DIR", Path(__file__).resolve().parents[1]))
CLUSTER = ROOT / "scripts" / "slurm" / "local-cluster"
SUBMIT = ROOT / "scripts" / "slurm" / "submit"
TIMEOUT_S = 240

CONFIG = """\
# A small sweep: 3 formats x 2 distributions x 2 seeds = 12 cells.
formats = e4m3fn,nf4@64,int8@row
dist = normal
dist = student-t:nu=3
samples = 65536
seed = 7,8
"""


def run(cmd, env, **kw):
    return subprocess.run([str(c) for c in cmd], env=env, text=True, capture_output=True, **kw)


def wait_for(job_ids, env, what):
    """Polls squeue until none of job_ids is pending or running (bounded)."""
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        out = run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T"], env)
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(1)
    raise SystemExit(f"FAIL: {what} did not finish within {TIMEOUT_S} s")


def table(path):
    with h5py.File(path, "r") as f:
        t = f["quant_error"][:]
    keys = [n for n in ("format", "dist", "samples", "seed") if n in t.dtype.names]
    order = np.lexsort([t[k] for k in reversed(keys)])
    return t[order]


def assert_equal_tables(merged, single, what):
    a, b = table(merged), table(single)
    assert a.dtype.names == b.dtype.names, f"{what}: columns differ: {a.dtype.names} vs {b.dtype.names}"
    assert len(a) == len(b), f"{what}: {len(a)} rows merged vs {len(b)} single-process"
    for name in a.dtype.names:
        if a.dtype[name].kind == "f":
            ok = np.array_equal(a[name], b[name], equal_nan=True)
        else:
            ok = np.array_equal(a[name], b[name])
        assert ok, f"{what}: column {name} differs between the merged shards and one process"
    print(f"{what}: merged table equals the single-process run ({len(a)} rows x {len(a.dtype.names)} columns)")


def submit(cfg, out, env, *extra):
    res = run([sys.executable, SUBMIT, "--config", cfg, "--tasks", "4", "--out", out, "--lowbit", LOWBIT, *extra], env)
    if res.returncode != 0:
        raise SystemExit(f"FAIL: submit: {res.stderr.strip()}")
    ids = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("ids:")][0]
    return ids


def main():
    if not all(shutil.which(t) for t in ("munged", "slurmctld", "slurmd", "sbatch")):
        print("skipped: slurm-wlm / munge not installed")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="lowbit-slurm-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ)
        state = tmp / "cluster"
        started = run([CLUSTER, "start", state], env)
        try:
            if started.returncode != 0:
                raise SystemExit(f"FAIL: could not start the local Slurm: {started.stderr}")
            env["SLURM_CONF"] = str(state / "slurm.conf")
            cfg = tmp / "sweep.cfg"
            cfg.write_text(CONFIG)

            single = tmp / "single.h5"
            res = run([LOWBIT, "quant-error", "--config", cfg, "--quiet", "-o", single], env)
            assert res.returncode == 0, f"single-process run failed: {res.stderr}"
            with h5py.File(single, "r") as f:  # the resolved configuration and the grid's hash travel with the results
                resolved = f.attrs["resolved_config"]
                resolved = resolved.decode() if isinstance(resolved, bytes) else resolved
                assert "formats = e4m3fn,nf4@64,int8@row" in resolved and "samples = 65536" in resolved, resolved
                assert len(str(f.attrs["grid_hash"])) == 16, f.attrs["grid_hash"]

            # 1. A 4-task array plus the dependent merge job.
            ids = submit(cfg, tmp / "sweep1", env)
            wait_for(ids, env, "array + merge")
            merged = tmp / "sweep1" / "merged.h5"
            assert merged.exists(), f"merge job wrote no {merged}: {(tmp / 'sweep1' / 'logs').glob('*')}"
            assert_equal_tables(merged, single, "4-task array")

            # 2. Cancel task 2 of a second array, resubmit it alone, merge again.
            ids = submit(cfg, tmp / "sweep2", env)
            run(["scancel", f"{ids[0]}_2"], env)
            wait_for(ids, env, "array with a cancelled task")
            part2 = tmp / "sweep2" / "parts" / "part-2.h5"
            merged2 = tmp / "sweep2" / "merged.h5"
            if part2.exists():  # task 2 finished before the cancel arrived
                print("note: task 2 completed before scancel; resubmission must then be a no-op")
            else:
                assert not merged2.exists(), "merge ran although a task had been cancelled"
            ids = submit(cfg, tmp / "sweep2", env, "--array", "2")
            wait_for(ids, env, "resubmitted task 2 + merge")
            assert part2.exists(), "resubmitted task 2 wrote no part file"
            assert_equal_tables(merged2, single, "array repaired by resubmitting task 2")
        finally:
            run([CLUSTER, "stop", state], env)
    print("slurm check passed")


if __name__ == "__main__":
    main()
