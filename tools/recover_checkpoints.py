"""Recover a regime-trial run's checkpoints that were trained but never shipped.

Until 2026-12-07 ``regime ship`` committed only each run's newest checkpoint, so a machine that
resumed the run from git lacks the earlier ones the ``long`` profile reads (its grid and the
log-spaced early steps). One that some commit shipped is restored from git history as it was.
Training is deterministic (a step's tasks come from its index), so a
missing checkpoint is retrained, in a scratch cache, from the nearest earlier checkpoint that
git history holds (or from the initialisation), through to the next one history holds, and the
weights there are compared with history's: the largest difference is 0.0 when it ran on the CPU
type that trained the run. Only then are the recovered files copied into the cache.

    .venv/bin/python tools/recover_checkpoints.py finn-queries --steps 0 1 2 5 10 20 50 100 200 2500
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time

import torch

from mamlscope.core import meta, runs
from mamlscope.paths import atomic_write, provenance
from mamlscope.studies import regime



def history(run: runs.Run) -> dict[int, str]:
    """{step: commit} of every checkpoint of ``run`` that a commit shipped."""
    folder = f"{regime.SHIPPED}/{run.dir.name}/ckpt/"
    out = subprocess.run(["git", "log", "--format=%H", "--name-status", "--", folder],
                         capture_output=True, text=True, check=True).stdout
    found, commit = {}, None
    for line in out.splitlines():
        if len(line) == 40 and " " not in line:
            commit = line
        elif line.startswith("A\t"):
            step = int(line.split("step_")[1][:7])
            found.setdefault(step, commit)
    return found


def blob(run: runs.Run, step: int, commit: str) -> bytes:
    """The bytes of ``run``'s checkpoint ``step`` as ``commit`` shipped it."""
    return subprocess.run(["git", "show", f"{commit}:{regime.SHIPPED}/{run.dir.name}/ckpt/step_{step:07d}.pt"],
                          capture_output=True, check=True).stdout


def from_history(run: runs.Run, step: int, commit: str) -> dict:
    return torch.load(io.BytesIO(blob(run, step, commit)), weights_only=True)


def recover(shape: str, wanted: list[int], algorithm: str = "maml", seed: int = 0) -> list[dict]:
    torch.set_num_threads(1)
    run = runs.Run(regime.config(shape, algorithm, seed))
    hist, have = history(run), set(run.checkpoint_steps())
    for s in sorted(set(wanted) & set(hist) - have):  # shipped once: the committed file, byte for byte
        data = blob(run, s, hist[s])
        atomic_write(run.checkpoint_path(s), lambda p, data=data: p.write_bytes(data))
        print(f"step {s:,}: restored from commit {hist[s][:7]}", flush=True)
    have = set(run.checkpoint_steps())
    missing = sorted(s for s in wanted if s not in have)
    segments = []
    while missing:
        s = missing[0]
        start = max([h for h in {*hist, *have} if h < s], default=None)
        check = min(h for h in {*hist, *have} if h > s)
        segments.append((start, check, [m for m in missing if (start or -1) < m < check]))
        missing = [m for m in missing if m > check]
    done = []
    for start, check, steps in segments:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="mamlscope-recover-") as tmp:
            scratch = runs.Run(run.config, tmp)
            if start is not None:
                state = run.load_checkpoint(start) if start in have else from_history(run, start, hist[start])
                scratch.save_checkpoint(start, {k: v for k, v in state.items() if k not in ("step", "run_hash")})
            meta.attempt(run.config, until=check, backend=regime.BACKEND, root=tmp)
            ref = run.load_checkpoint(check) if check in have else from_history(run, check, hist[check])
            mine = scratch.load_checkpoint(check)
            diff = max(float((ref["model"][k].double() - mine["model"][k].double()).abs().max()) for k in ref["model"])
            row = {"run": run.dir.name, "from": start if start is not None else "initialisation",
                   "to": check, "recovered": steps, "largest_weight_difference_at_to": diff,
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            if diff != 0.0:
                print(f"not copied: retraining did not reproduce step {check} bit for bit", file=sys.stderr)
            else:
                for s in steps:
                    state = scratch.load_checkpoint(s)
                    run.save_checkpoint(s, {k: v for k, v in state.items() if k not in ("step", "run_hash")})
            done.append(row)
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("shape", choices=list(regime.SHAPES))
    p.add_argument("--steps", type=int, nargs="+", required=True)
    p.add_argument("--algorithm", default="maml")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rows = recover(a.shape, a.steps, a.algorithm, a.seed)
    report = regime.RECOVERED
    old = json.loads(report.read_text()) if report.is_file() else {"segments": []}
    rec = {**provenance(), "threads": 1, "segments": old["segments"] + rows}
    atomic_write(report, lambda f: f.write_text(json.dumps(rec, indent=1) + "\n"))
    return 0 if all(r["largest_weight_difference_at_to"] == 0.0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
