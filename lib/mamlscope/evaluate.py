"""Accuracy over a fixed set of meta-test tasks, with a 95% confidence interval.

Following Finn et al.'s evaluation code, the score is the mean over tasks of the query accuracy
after adaptation, and the interval is ``1.96 · s / √n`` with ``s`` the standard deviation of the
per-task accuracies (here the sample standard deviation, ddof = 1).

The fixed test tasks are tasks ``0 … n−1`` of the test-split sampler with seed
:data:`TEST_SEED`, so every chapter and every run is scored on the same 600 tasks.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .data import SinusoidTasks, Task, omniglot_tasks
from .inner import InnerLoop, detached, query_loss_func

TEST_SEED = 20170309  # fixed: the arXiv date of MAML; never tied to a run's seed
N_TEST_TASKS = 600


@dataclass(frozen=True)
class Score:
    """Mean of per-task values with its 95% CI half-width, over ``n`` tasks."""

    mean: float
    ci95: float
    n: int

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}%"


def mean_ci95(values: torch.Tensor) -> Score:
    """``mean ± 1.96 · std(ddof=1) / √n`` of a 1-D tensor of per-task values."""
    v = values.detach().double().flatten()
    n = v.numel()
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value.")
    ci = 1.96 * v.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return Score(v.mean().item(), ci, n)


def test_task_sampler(dataset: str, n_way: int, k_shot: int, q_query: int, **sinusoid_ranges):
    """The sampler behind the fixed meta-test tasks of ``dataset``."""
    if dataset == "omniglot":
        return omniglot_tasks("test", n_way, k_shot, q_query, seed=TEST_SEED)
    if dataset == "sinusoid":
        return SinusoidTasks(k_shot=k_shot, q_query=q_query, seed=TEST_SEED, **sinusoid_ranges)
    raise ValueError(f"no meta-test tasks for dataset {dataset!r}; use 'omniglot' or 'sinusoid'.")


def fixed_test_tasks(dataset: str, n_way: int, k_shot: int, q_query: int,
                     n_tasks: int = N_TEST_TASKS, **sinusoid_ranges) -> Task:
    """Tasks ``0 … n_tasks−1`` of :func:`test_task_sampler`, stacked (leading task axis)."""
    return test_task_sampler(dataset, n_way, k_shot, q_query, **sinusoid_ranges).batch(range(n_tasks))


def per_task_scores(model, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy",
                    chunk: int = 100, params=None) -> torch.Tensor:
    """Query accuracy (or −MSE for regression) of each task after adaptation, ``(n_tasks,)``.

    Adapts from ``params`` (default: the model's own θ, detached). No graph to θ is kept, so the
    inner loop runs first-order, which gives the same adapted weights.
    """
    device = next(model.parameters()).device
    theta = detached(params or dict(model.named_parameters()))
    inner = replace(inner, first_order=True)
    out = []
    for start in range(0, len(tasks), chunk):
        sl = slice(start, start + chunk)
        batch = Task(tasks.x_support[sl], tasks.y_support[sl], tasks.x_query[sl], tasks.y_query[sl]).to(device)
        out.append(query_loss_func(model, theta, batch, inner, loss=loss)[1].detach().cpu())
    return torch.cat(out)


def evaluate(model, tasks: Task, inner: InnerLoop, **kwargs) -> Score:
    """Mean query accuracy ± 95% CI over ``tasks`` after ``inner`` adaptation."""
    return mean_ci95(per_task_scores(model, tasks, inner, **kwargs))


def nil_accuracy(model, tasks: Task, *, params=None, chunk: int = 100) -> torch.Tensor:
    """NIL ([R] §4): no inner loop, no head. Each query is classified by a softmax over its cosine
    similarities to the support examples' penultimate features, summed per class (the support
    labels weighted as in Matching Networks). Returns per-task accuracies ``(n_tasks,)``."""
    device = next(model.parameters()).device
    theta = detached(params or dict(model.named_parameters()))
    accs = []
    with torch.no_grad():
        for i in range(len(tasks)):
            t = tasks[i].to(device)
            n_way = int(t.y_support.max()) + 1

            def features(x):
                acts = functional_call(model, theta, (x,), {"return_activations": True})[1]
                return F.normalize(acts[model.layer_names[-2]].flatten(1), dim=1)

            sim = features(t.x_query) @ features(t.x_support).T            # (n_query, n_support)
            votes = sim.softmax(dim=1) @ F.one_hot(t.y_support, n_way).to(sim.dtype)
            accs.append((votes.argmax(1) == t.y_query).float().mean().cpu())
    return torch.stack(accs)


def run_score(run, n_tasks: int = N_TEST_TASKS, *, step: int | None = None, device="cpu") -> Score:
    """Accuracy ± 95% CI of a meta-training run's checkpoint (default: the last) over the first
    ``n_tasks`` fixed test tasks, with the run's own test-time inner loop. Cached in the run
    directory (``scores.json``), so chapters that share a run share its score."""
    from .meta import load_model  # meta imports this module

    cfg = run.config
    step = run.checkpoint_steps()[-1] if step is None else step
    key = f"step={step},tasks={n_tasks}"
    path = run.dir / "scores.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cache:
        model = load_model(run, step, device=device)
        score = evaluate(model, cfg.test_tasks(n_tasks), cfg.inner(train=False), loss=cfg.loss)
        cache[key] = {"mean": score.mean, "ci95": score.ci95, "n": score.n}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True))
        tmp.replace(path)
    return Score(**cache[key])
