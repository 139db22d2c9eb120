import math

import numpy as np
import torch
from conftest import requires_data

from mamlscope.core import data, evaluate
from mamlscope.core.data import Task
from mamlscope.core.inner import InnerLoop
from mamlscope.core.models import Conv4


def test_mean_ci95_formula():
    v = torch.tensor([0.2, 0.4, 0.9, 1.0, 0.6], dtype=torch.float64)
    s = evaluate.mean_ci95(v)
    assert math.isclose(s.mean, 0.62, rel_tol=1e-9)
    assert math.isclose(s.ci95, 1.96 * np.std(v.numpy().astype(float), ddof=1) / math.sqrt(5), rel_tol=1e-9)
    assert s.n == 5 and str(evaluate.Score(0.9512, 0.0031, 600)) == "95.1 ± 0.3%"


def test_mean_ci95_does_not_depend_on_summation_order():
    """Exactly rounded sums: a permutation of the values gives the same bits (a vectorised
    float sum generally does not, which moved printed digits between CPUs)."""
    g = torch.Generator().manual_seed(1)
    v = torch.rand(600, generator=g, dtype=torch.float64) * 1e3 + torch.rand(600, generator=g, dtype=torch.float64) * 1e-9
    s, t = evaluate.mean_ci95(v), evaluate.mean_ci95(v.flip(0)[torch.randperm(600, generator=g)])
    assert (s.mean, s.ci95) == (t.mean, t.ci95)


def test_score_cache_key_holds_everything_that_changes_a_score():
    base = evaluate.score_key(100, 600, InnerLoop(steps=3, lr=0.4))
    assert base == evaluate.score_key(100, 600, InnerLoop(steps=3, lr=0.4))
    for other in (evaluate.score_key(101, 600, InnerLoop(steps=3, lr=0.4)),
                  evaluate.score_key(100, 50, InnerLoop(steps=3, lr=0.4)),
                  evaluate.score_key(100, 600, InnerLoop(steps=5, lr=0.4)),
                  evaluate.score_key(100, 600, InnerLoop(steps=3, lr=0.1)),
                  evaluate.score_key(100, 600, InnerLoop(steps=3, lr=0.4, adapt="head")),
                  evaluate.score_key(100, 600, InnerLoop(steps=3, lr=0.4, first_order=True))):
        assert other != base


@requires_data
def test_fixed_test_tasks_do_not_depend_on_anything_else():
    a = data.fixed_test_tasks("omniglot", 5, 1, 2, n_tasks=3)
    b = data.fixed_test_tasks("omniglot", 5, 1, 2, n_tasks=5)
    assert torch.equal(a.x_query, b.x_query[:3])


def test_per_task_scores_chunking_is_invisible():
    torch.manual_seed(0)
    model = Conv4(n_way=2, filters=4, image_size=8)
    g = torch.Generator().manual_seed(0)
    tasks = Task(torch.randn(5, 2, 1, 8, 8, generator=g), torch.tensor([[0, 1]] * 5),
                 torch.randn(5, 4, 1, 8, 8, generator=g), torch.tensor([[0, 0, 1, 1]] * 5))
    inner = InnerLoop(steps=2, lr=0.5)
    torch.testing.assert_close(evaluate.per_task_scores(model, tasks, inner, chunk=2),
                               evaluate.per_task_scores(model, tasks, inner, chunk=100))


def test_nil_classifies_copies_of_the_support_set():
    torch.manual_seed(0)
    model = Conv4(n_way=3, filters=8, image_size=8)
    x = torch.randn(4, 3, 1, 8, 8)
    y = torch.tensor([[0, 1, 2]] * 4)
    tasks = Task(x, y, x.clone(), y.clone())  # each query is a support example
    acc = evaluate.nil_accuracy(model, tasks)
    assert acc.shape == (4,) and acc.min() == 1.0
    flipped = Task(x, y, x.clone(), (y + 1) % 3)
    assert evaluate.nil_accuracy(model, flipped).max() == 0.0


@requires_data
def test_run_task_scores_are_cached_with_their_mean(tmp_path, monkeypatch):
    """Per-task values come back from the cache unchanged, agree with run_score, and an entry
    cached before values were stored (mean and CI only) is completed, not trusted blindly."""
    import dataclasses
    import json

    from mamlscope.core import evaluate, meta

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    cfg = meta.MetaConfig(n_way=3, filters=4, meta_batch=2, q_query=1, steps=2, checkpoint_every=2,
                          log_every=1, curve_tasks=3, log_checkpoints=False)
    run = meta.train(cfg)
    v = evaluate.run_task_scores(run, 5)
    s = evaluate.run_score(run, 5)
    assert v.shape == (5,) and s == evaluate.mean_ci95(v)
    path = run.dir / "scores.json"
    cache = json.loads(path.read_text())
    key = evaluate.score_key(2, 5, cfg.inner(False))
    assert cache[key]["values"] == v.tolist()
    del cache[key]["values"]
    path.write_text(json.dumps(cache))
    assert evaluate.run_score(run, 5) == s                       # old entries still give their score
    assert torch.equal(evaluate.run_task_scores(run, 5), v)      # and are completed on demand
    other = evaluate.run_task_scores(run, 5, inner=dataclasses.replace(cfg.inner(False), adapt="head"))
    five = [k for k in json.loads(path.read_text()) if json.loads(k)["tasks"] == 5]
    assert len(five) == 2 and other.shape == (5,)


@requires_data
def test_training_stores_its_learning_curves_per_task_scores(tmp_path, monkeypatch):
    """Every checkpoint's curve scores are in the run's score cache, equal to adapting again from
    the saved checkpoint (bit for bit), so analyses over checkpoints read them instead."""
    import json

    from mamlscope.core import evaluate, meta

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    cfg = meta.MetaConfig(n_way=3, filters=4, meta_batch=2, q_query=1, steps=4, checkpoint_every=2,
                          log_every=1, curve_tasks=3, log_checkpoints=False)
    run = meta.train(cfg)
    cache = json.loads((run.dir / "scores.json").read_text())
    assert len(cache) == len(run.checkpoint_steps()) == 3
    for step in run.checkpoint_steps():
        again = evaluate.per_task_scores(run.load_model(step), cfg.test_tasks(3), cfg.inner(False))
        stored = cache[evaluate.score_key(step, 3, cfg.inner(False))]["values"]
        assert stored == again.double().tolist()
        assert torch.equal(evaluate.run_task_scores(run, 3, step=step).float(), again)
    curve = [m["test_score"] for m in run.metrics() if "test_score" in m]
    assert curve == [cache[evaluate.score_key(s, 3, cfg.inner(False))]["mean"]
                     for s in run.checkpoint_steps()]
