"""The exact meta-step at one thread: the inner-loop backends against ``higher`` and a TorchOpt loop.

    .venv/bin/python benchmarks/bench_meta_step.py [--threads 1] [--steps 20] [--setting omniglot_20w1s]
        [--recipe finn]

One process, the same fixed batches, the backends interleaved step by step (so that a slow
minute of the machine hits all of them): ``func`` (``torch.func``, ``vmap`` over tasks),
``loop`` (``functional_call`` + ``torch.autograd.grad``, one task at a time), ``higher`` (the
reference) and, when ``torchopt`` is installed (a benchmark-only dependency: ``pip install
torchopt``), TorchOpt's ``MetaSGD`` loop after its Omniglot example. Each meta-gradient is first
checked against ``higher``'s (float tolerance). Prints the median milliseconds per meta-step and
every backend's ratio to ``higher`` and to TorchOpt. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from mamlscope.core import meta
from mamlscope.core.inner import BACKENDS, adapted_parameter_names, query_loss, support_loss_fn
from mamlscope.training import profiles


def torchopt_loss(model, tasks, inner, loss_fn):
    """TorchOpt's MAML pattern (its Omniglot example): MetaSGD on every parameter of the module,
    per task, the state restored after each. Where the book's inner loop leaves some parameters
    alone (BatchNorm's), this one adapts them too: more work, another meta-gradient."""
    import torchopt

    support = support_loss_fn("cross_entropy", inner.reduction)
    losses = []
    for i in range(len(tasks)):
        state = torchopt.extract_state_dict(model)
        opt = torchopt.MetaSGD(model, lr=inner.lr)
        for _ in range(inner.steps):
            opt.step(support(model(tasks.x_support[i]), tasks.y_support[i]))
        losses.append(loss_fn(model(tasks.x_query[i]), tasks.y_query[i]))
        torchopt.recover_state_dict(model, state)
    return torch.stack(losses)


def step_fn(backend, model, opt, inner):
    ce = torch.nn.functional.cross_entropy

    def step(batch):
        if backend == "torchopt":
            losses = torchopt_loss(model, batch, inner, ce)
        else:
            losses, _ = query_loss(model, batch, inner, backend=backend)
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        opt.step()
    return step


def meta_gradient(cfg, backend, batch, inner):
    model = fresh(cfg)
    losses = torchopt_loss(model, batch, inner, torch.nn.functional.cross_entropy) if backend == "torchopt" \
        else query_loss(model, batch, inner, backend=backend)[0]
    losses.mean().backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


def fresh(cfg):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return meta.init_model(cfg)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--setting", default="omniglot_20w1s")
    parser.add_argument("--recipe", choices=["book", "finn"], default="book",
                        help="finn: Σℓ/K inner loss on Finn et al.'s network (the regime trial's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile).meta(args.setting)
    if args.recipe == "finn":
        cfg = dataclasses.replace(cfg, inner_reduction="sum/k", network="finn")
    inner = cfg.inner(train=True)
    tasks = cfg.train_tasks()
    batches = [tasks.batch(range(i * cfg.meta_batch, (i + 1) * cfg.meta_batch)).to("cpu", meta.DTYPES[cfg.dtype])
               for i in range(5)]
    backends = list(BACKENDS)
    try:
        import torchopt  # noqa: F401
        backends.append("torchopt")
    except ImportError:
        print("torchopt not installed: its loop is not timed (pip install torchopt)")
    reference = meta_gradient(cfg, "higher", batches[0], inner)
    model = fresh(cfg)
    same_set = set(adapted_parameter_names(model, inner.adapt)) == {n for n, _ in model.named_parameters()}
    for b in list(backends):
        try:
            diff = (meta_gradient(cfg, b, batches[0], inner) - reference).abs().max().item()
        except RuntimeError as err:  # TorchOpt's MetaSGD on a network with unused parameters (Finn's BN)
            print(f"{b:9s} not timed: {err}")
            backends.remove(b)
            continue
        note = "" if b != "torchopt" or same_set else " (adapts BatchNorm's parameters too: not the same step)"
        print(f"{b:9s} max |meta-gradient − higher's| = {diff:.1e}{note}")
    steps = {}
    for b in backends:
        model = fresh(cfg)
        steps[b] = step_fn(b, model, torch.optim.Adam(model.parameters(), lr=cfg.meta_lr), inner)
    times = {b: [] for b in backends}
    for i in range(args.steps + 3):
        for b in backends:
            t0 = time.perf_counter()
            steps[b](batches[i % len(batches)])
            if i >= 3:  # warm-up: the first calls build oneDNN primitives
                times[b].append(time.perf_counter() - t0)
    med = {b: statistics.median(t) for b, t in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.profile} {args.setting} "
          f"({args.recipe} recipe), meta-batch {cfg.meta_batch}, {inner.steps} inner steps, {cfg.filters} filters")
    for b in backends:
        ratios = f"{med[b] / med['higher']:.2f}× higher's"
        if "torchopt" in med:
            ratios += f", {med[b] / med['torchopt']:.2f}× TorchOpt's"
        print(f"{b:9s} {1000 * med[b]:7.1f} ms/step   {ratios}")


if __name__ == "__main__":
    main()
