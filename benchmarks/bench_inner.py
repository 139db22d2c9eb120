"""Meta-step time of the two inner-loop backends on the cpu profile's configurations.

    .venv/bin/python benchmarks/bench_inner.py [--steps 20] [--profile cpu]

A meta-step = sample nothing (the batch is fixed), adapt every task of the meta-batch, query loss,
backward to θ, Adam step. Both backends run in the same process on the same batches; the
meta-gradients are checked equal first. Prints the median seconds per step and the ratio
higher / torch.func. Run it on an idle machine: a concurrent process using the same cores makes
OpenMP threads spin and inflates every number.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mamlscope.core.inner import query_loss
from mamlscope.training import profiles


def time_meta_steps(cfg, backend: str, batches, steps: int) -> float:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = cfg.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    inner = cfg.inner(train=True)
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        losses, _ = query_loss(model, batches[i % len(batches)], inner, backend=backend)
        opt.zero_grad()
        losses.mean().backward()
        opt.step()
        if i >= 3:  # warm-up: first calls build oneDNN primitives
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def same_gradients(cfg, batch) -> float:
    grads = []
    for backend in ("func", "higher"):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = cfg.build_model()
        query_loss(model, batch, cfg.inner(), backend=backend)[0].mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    return (grads[0] - grads[1]).abs().max().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    P = profiles.load(args.profile)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, profile {P.name}")
    for setting in ("omniglot_5w1s", "omniglot_20w1s"):
        for algorithm in ("maml", "fomaml", "anil"):
            cfg = P.meta(setting, algorithm)
            tasks = cfg.train_tasks()
            batches = [tasks.batch(range(i * cfg.meta_batch, (i + 1) * cfg.meta_batch)) for i in range(5)]
            diff = same_gradients(cfg, batches[0])
            t_func = time_meta_steps(cfg, "func", batches, args.steps)
            t_higher = time_meta_steps(cfg, "higher", batches, args.steps)
            print(f"{setting:15s} {algorithm:7s} meta-batch {cfg.meta_batch:2d}, {cfg.inner_steps} inner step(s): "
                  f"torch.func {t_func * 1000:7.1f} ms/step   higher {t_higher * 1000:7.1f} ms/step   "
                  f"higher/func = {t_higher / t_func:4.2f}   max |Δ meta-grad| = {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
