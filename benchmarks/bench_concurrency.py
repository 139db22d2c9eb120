"""Is it faster to train two runs at once with 1 thread each, or one at a time with 2 threads?

    .venv/bin/python benchmarks/bench_concurrency.py [--profile cpu] [--steps 8] [--threads 2]

For each distinct kind of run in the profile's plan (one representative per name), the training
step is timed in separate processes, as Dask's workers run it:

* reference: one process with ``--threads`` threads, alone;
* concurrent: ``--threads`` processes with 1 thread each, the same run, started together.

Prints seconds per step both ways and the throughput ratio (concurrent ÷ reference; > 1 means
concurrency pays), then the ratio over the whole plan, weighted by each run's estimated
seconds at the reference. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _time_steps(name: str, profile: str, steps: int) -> float:
    """Seconds per training step of the plan's run ``name`` (after 2 warm-up steps)."""
    from dataclasses import replace

    from mamlscope.core.meta import estimate_seconds
    from mamlscope.training import plan, profiles

    item = next(it for it in plan.planned(profiles.load(profile)) if it.dir.name == name)
    cfg = replace(item.config, steps=steps, curve_tasks=0) if hasattr(item.config, "curve_tasks") \
        else replace(item.config, steps=steps)
    estimate_seconds(cfg, steps=1)  # warm-up (oneDNN primitives)
    return estimate_seconds(cfg, steps=steps) / steps


def _spawn(name, profile, steps, threads):
    import os

    cmd = [sys.executable, __file__, "--measure", name, "--profile", profile, "--steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _run(procs) -> list[float]:
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        import torch

        torch.set_num_threads(int(__import__("os").environ["OMP_NUM_THREADS"]))
        print(json.dumps(_time_steps(args.measure, args.profile, args.steps)))
        return 0

    import torch

    from mamlscope.core.meta import estimate_seconds
    from mamlscope.training import plan, profiles

    torch.set_num_threads(args.threads)
    items = plan.planned(profiles.load(args.profile))
    kinds = {}
    for it in items:
        kinds.setdefault(it.dir.name.rsplit("-", 1)[0], []).append(it)
    total_ref = total_conc = 0.0
    print(f"{'run':42s} {'ref s/step':>10s} {'conc s/step':>11s} {'ratio':>6s} {'weight min':>10s}")
    for kind, group in kinds.items():
        name = group[0].dir.name
        ref, = _run([_spawn(name, args.profile, args.steps, args.threads)])
        conc = _run([_spawn(name, args.profile, args.steps, 1) for _ in range(args.threads)])
        ratio = len(conc) * ref / (sum(conc) / len(conc))  # steps per second: n ÷ mean time vs 1 ÷ ref
        weight = sum(estimate_seconds(it.config) for it in group) / 60
        total_ref += weight
        total_conc += weight / ratio
        print(f"{name:42s} {ref:10.3f} {sum(conc) / len(conc):11.3f} {ratio:6.2f} {weight:10.1f}", flush=True)
    print(f"\nwhole plan ({len(items)} runs, {total_ref:.0f} min of estimated work at {args.threads} threads): "
          f"throughput ratio {total_ref / total_conc:.2f} (concurrent ÷ one at a time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
