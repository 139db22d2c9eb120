"""Accuracy over a fixed set of meta-test tasks, with a 95% confidence interval.

Following Finn et al.'s evaluation code, the score is the mean over tasks of the query accuracy
after adaptation, and the interval is ``1.96 · s / √n`` with ``s`` the standard deviation of the
per-task accuracies (here the sample standard deviation, ddof = 1).

The fixed test tasks (:func:`mamlscope.core.data.fixed_test_tasks`) are the same for every chapter
and every run. Scores of a run are cached in its directory, keyed by everything that changes them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from mamlscope.core.data import N_TEST_TASKS, Task
from mamlscope.core.inner import InnerLoop, detached, query_loss_func
from mamlscope.paths import atomic_write
from mamlscope.stats import Score, mean_ci95  # noqa: F401 (evaluate.Score: the accuracy of a run)


def per_task_scores(model, tasks: Task, inner: InnerLoop, *, loss: str = "cross_entropy",
                    chunk: int = 100, params=None) -> torch.Tensor:
    """Query accuracy (or −MSE for regression) of each task after adaptation, ``(n_tasks,)``.

    Adapts from ``params`` (default: the model's own θ, detached). No graph to θ is kept, so the
    inner loop runs first-order, which gives the same adapted weights.
    """
    p = next(model.parameters())
    theta = detached(params or dict(model.named_parameters()))
    inner = replace(inner, first_order=True)
    out = []
    for start in range(0, len(tasks), chunk):
        sl = slice(start, start + chunk)
        batch = Task(tasks.x_support[sl], tasks.y_support[sl], tasks.x_query[sl], tasks.y_query[sl]).to(p.device, p.dtype)
        out.append(query_loss_func(model, theta, batch, inner, loss=loss)[1].detach().cpu())
    return torch.cat(out)


def evaluate(model, tasks: Task, inner: InnerLoop, **kwargs) -> Score:
    """Mean query accuracy ± 95% CI over ``tasks`` after ``inner`` adaptation."""
    return mean_ci95(per_task_scores(model, tasks, inner, **kwargs))


def nil_accuracy(model, tasks: Task, *, params=None, chunk: int = 100) -> torch.Tensor:
    """NIL ([R] §4): no inner loop, no head. Each query is classified by a softmax over its cosine
    similarities to the support examples' penultimate features, summed per class (the support
    labels weighted as in Matching Networks). Returns per-task accuracies ``(n_tasks,)``."""
    p = next(model.parameters())
    theta = detached(params or dict(model.named_parameters()))
    accs = []
    with torch.no_grad():
        for i in range(len(tasks)):
            t = tasks[i].to(p.device, p.dtype)
            n_way = int(t.y_support.max()) + 1

            def features(x):
                acts = functional_call(model, theta, (x,), {"return_activations": True})[1]
                return F.normalize(acts[model.layer_names[-2]].flatten(1), dim=1)

            sim = features(t.x_query) @ features(t.x_support).T            # (n_query, n_support)
            votes = sim.softmax(dim=1) @ F.one_hot(t.y_support, n_way).to(sim.dtype)
            accs.append((votes.argmax(1) == t.y_query).float().mean().cpu())
    return torch.stack(accs)


def score_key(step: int, n_tasks: int, inner: InnerLoop) -> str:
    """The cache key of a score: the checkpoint, the number of fixed test tasks and every field
    of the test-time inner loop (steps, step size, which parameters adapt, order, reduction)."""
    return json.dumps({"step": step, "tasks": n_tasks, "inner": asdict(inner)}, sort_keys=True)


def _cached_score(run, n_tasks: int, step: int | None, inner: InnerLoop | None, device, values: bool) -> dict:
    """The ``scores.json`` entry of a run's checkpoint (default: the last) on the first ``n_tasks``
    fixed test tasks with ``inner`` (default: the run's test-time inner loop), computed and
    written when missing — or, with ``values``, when it lacks the per-task values (entries
    written before they were stored hold the mean and CI only)."""
    cfg = run.config
    step = run.checkpoint_steps()[-1] if step is None else step
    inner = cfg.inner(train=False) if inner is None else inner
    key = score_key(step, n_tasks, inner)
    path = run.dir / "scores.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cache or (values and "values" not in cache[key]):
        model = run.load_model(step, device=device)
        per_task = per_task_scores(model, cfg.test_tasks(n_tasks), inner, loss=cfg.loss)
        return store_task_scores(run, step, inner, per_task)
    return cache[key]


def store_task_scores(run, step: int, inner: InnerLoop, per_task: torch.Tensor) -> dict:
    """Write the per-task scores ``per_task`` of checkpoint ``step`` on the first
    ``len(per_task)`` fixed test tasks, adapted with ``inner``, into the run's ``scores.json``
    (atomically: a temporary file, then a rename); returns the entry. They must be what
    :func:`per_task_scores` gives on ``run.config.test_tasks(len(per_task))`` with the run's loss:
    training stores its learning curve's scores this way, so analyses of its checkpoints on those
    tasks (:func:`run_task_scores`) read them instead of adapting again."""
    path = run.dir / "scores.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    score = mean_ci95(per_task)
    entry = {"mean": score.mean, "ci95": score.ci95, "n": score.n,
             "values": [float(v) for v in per_task.double().tolist()]}
    cache[score_key(step, len(per_task), inner)] = entry
    text = json.dumps(cache, indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return entry


def run_task_scores(run, n_tasks: int = N_TEST_TASKS, *, step: int | None = None,
                    inner: InnerLoop | None = None, device="cpu") -> torch.Tensor:
    """Per-task accuracies ``(n_tasks,)`` of a meta-training run's checkpoint (default: the last)
    on the first ``n_tasks`` fixed test tasks, adapted with ``inner`` (default: the run's own
    test-time inner loop): what paired comparisons between runs on the same tasks need. Cached in
    the run directory (``scores.json``, keyed by :func:`score_key`) with their mean and CI, so
    chapters that share a run share its scores."""
    entry = _cached_score(run, n_tasks, step, inner, device, values=True)
    return torch.tensor(entry["values"], dtype=torch.float64)


def run_score(run, n_tasks: int = N_TEST_TASKS, *, step: int | None = None,
              inner: InnerLoop | None = None, device="cpu") -> Score:
    """Accuracy ± 95% CI of a meta-training run's checkpoint (default: the last) over the first
    ``n_tasks`` fixed test tasks (:func:`run_task_scores`, cached)."""
    entry = _cached_score(run, n_tasks, step, inner, device, values=False)
    return Score(entry["mean"], entry["ci95"], entry["n"])
