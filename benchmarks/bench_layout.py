"""The 20-way MAML meta-step at one thread under layout and backend settings (issue 22's
critical path), interleaved in one process, as ratios against the default.

    .venv/bin/python benchmarks/bench_layout.py [--setting omniglot_20w1s] [--threads 1] [--rounds 15]

Variants, each on the same fixed meta-batches and the same θ:

* ``default`` — what training runs (NCHW, oneDNN as PyTorch enables it);
* ``channels_last`` — the model's conv weights and the inputs in ``torch.channels_last``;
* ``no_mkldnn`` — ``torch.backends.mkldnn`` disabled (PyTorch's native CPU convolutions);
* ``tasks_looped`` — the meta-batch's tasks one after another instead of one ``vmap``.

Each round times every variant once (in a rotating order), so that a slow moment of the
machine falls on all of them; the median over rounds is printed with its ratio to ``default``
and the largest difference of its meta-gradient from ``default``'s (0: the same numbers; a
variant that changes them would change every digit of the book). Run it on an idle machine.

Measured 2026-12-01 on the 2-core Intel Xeon at 1 thread, cpu profile 20-way (while two other
single-thread trainings ran, so the absolute times are inflated; the ratios are interleaved):
default 1024 ms, channels_last ×1.00 (meta-gradient differs by 1.1e-4), no_mkldnn ×1.64,
tasks_looped ×1.14. The default (one vmap over the meta-batch, NCHW, oneDNN on) is already the
fastest of these, so training keeps it.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from mamlscope.core.inner import query_loss
from mamlscope.training import profiles


@contextlib.contextmanager
def mkldnn(enabled: bool):
    old = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = old


def meta_gradient(model, batch, inner, looped: bool = False) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    if looped:
        losses = torch.cat([query_loss(model, batch[i:i + 1], inner)[0] for i in range(len(batch))])
    else:
        losses = query_loss(model, batch, inner)[0]
    losses.mean().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", default="omniglot_20w1s")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile).meta(args.setting)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = cfg.build_model()
    tasks = cfg.train_tasks()
    batches = [tasks.batch(range(i * cfg.meta_batch, (i + 1) * cfg.meta_batch)) for i in range(3)]
    inner = cfg.inner(train=True)
    with torch.random.fork_rng():  # the same θ, its conv weights stored channels-last
        torch.manual_seed(0)
        last = cfg.build_model().to(memory_format=torch.channels_last)

    def cl(b):
        return type(b)(b.x_support.contiguous(memory_format=torch.channels_last)
                       if b.x_support.dim() == 4 else b.x_support, b.y_support,
                       b.x_query, b.y_query)

    variants = {
        "default": lambda b: meta_gradient(model, b, inner),
        "channels_last": lambda b: meta_gradient(last, cl(b), inner),
        "no_mkldnn": lambda b: _with(mkldnn(False), meta_gradient, model, b, inner),
        "tasks_looped": lambda b: meta_gradient(model, b, inner, looped=True),
    }
    reference = variants["default"](batches[0])
    diffs = {k: (f(batches[0]) - reference).abs().max().item() for k, f in variants.items()}
    for f in variants.values():  # warm-up: oneDNN primitives are built on first use
        f(batches[1])
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            variants[k](batches[r % len(batches)])
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["default"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.profile} {args.setting} "
          f"(meta-batch {cfg.meta_batch}, {cfg.inner_steps} inner steps), {args.rounds} rounds")
    for k in names:
        m = statistics.median(times[k])
        print(f"{k:14s} {1000 * m:8.1f} ms/step   ×{m / base:5.2f} of default   "
              f"max |Δ meta-grad| = {diffs[k]:.1e}", flush=True)


def _with(ctx, f, *a):
    with ctx:
        return f(*a)


if __name__ == "__main__":
    main()
