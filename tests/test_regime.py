"""The regime trial (mamlscope.studies.regime): chunks of a long run end at checkpoints and give the
uninterrupted run's weights; shipped checkpoints restore on another machine and are verified by
their SHA-256; the levelling rule and the choice follow the module's stated rule."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_data
from test_runs import TINY

from mamlscope.core import meta
from mamlscope.core.runs import Run
from mamlscope.studies import regime


@requires_data
def test_chunks_give_the_uninterrupted_weights(tmp_path):
    full = meta.train(TINY, root=tmp_path / "a")
    first = meta.attempt(TINY, until=3, root=tmp_path / "b")
    assert (first.start, first.trained) == (0, 3) and not first.run.finished
    assert first.run.checkpoint_steps() == [0, 3]
    rest = meta.attempt(TINY, until=6, root=tmp_path / "b")
    assert (rest.start, rest.trained) == (3, 3) and rest.run.finished
    for step in (3, 6):
        a, b = full.load_checkpoint(step)["model"], rest.run.load_checkpoint(step)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m for m in full.metrics() if "test_score" in m] == [m for m in rest.run.metrics() if "test_score" in m]


def test_a_chunk_must_end_at_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="checkpoints"):
        meta.attempt(TINY, until=4, root=tmp_path)
    assert not (tmp_path / "runs").exists()  # refused before any work


@requires_data
def test_ship_restore_verify(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "SHAPES", {"tiny": {}})
    monkeypatch.setattr(regime, "config", lambda shape, algorithm="maml", seed=0:
                        dataclasses.replace(TINY, algorithm=algorithm, seed=seed))
    meta.attempt(TINY, until=3, root=tmp_path / "here")
    shipped = tmp_path / "long" / "runs"  # laid out as a cache's runs/, as SHIPPED is
    monkeypatch.setattr(regime.profiles, "LONG_EVERY", 4)
    (target,) = regime.ship(root=tmp_path / "here", dest=shipped)
    assert sorted(p.name for p in (target / "ckpt").iterdir()) == ["step_0000000.pt", "step_0000003.pt"]
    assert regime.verify(shipped) == []

    # another machine: an empty cache resumes from the shipped checkpoint to the same weights
    assert regime.restore(root=tmp_path / "there", src=shipped) == [target.name]
    assert regime.restore(root=tmp_path / "there", src=shipped) == []  # nothing newer to copy
    done = meta.attempt(TINY, root=tmp_path / "there")
    assert done.start == 3 and done.run.finished
    full = meta.train(TINY, root=tmp_path / "full")
    a, b = full.load_checkpoint(6)["model"], Run(TINY, tmp_path / "there").load_checkpoint(6)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    # shipped on: the long grid's checkpoints (0, 4) and the newest (6) stay, the old newest (3) goes;
    # a cache that has the newest but lacks an earlier shipped checkpoint gets it, and only it
    meta.attempt(TINY, root=tmp_path / "here")
    (target,) = regime.ship(root=tmp_path / "here", dest=shipped)
    assert sorted(p.name for p in (target / "ckpt").iterdir()) == ["step_0000000.pt", "step_0000006.pt"]
    (tmp_path / "there" / "runs" / target.name / "ckpt" / "step_0000000.pt").unlink()
    log = (tmp_path / "there" / "runs" / target.name / "metrics.jsonl").read_text()
    assert regime.restore(root=tmp_path / "there", src=shipped) == [target.name]
    assert Run(TINY, tmp_path / "there").checkpoint_steps() == [0, 3, 6]
    assert (tmp_path / "there" / "runs" / target.name / "metrics.jsonl").read_text() == log
    # verify --retrain: from the second-newest shipped checkpoint (0) to the newest (6), bit for bit
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # its one thread: keep the test's
    assert regime.retrain_last(target.name, src=shipped) == {"run": target.name, "from": 0, "to": 6,
                                                             "largest_weight_difference": 0.0}

    (target / "ckpt" / "step_0000006.pt").write_bytes(b"changed")
    assert any("SHA-256" in p for p in regime.verify(shipped))


def test_levelling_rule_on_a_known_curve():
    f = {"a": 0.9, "b": 0.5, "tau": 2000.0}
    T = regime.levelled_step(f)
    rise = lambda t: f["b"] * (math.exp(-0.6 * t / f["tau"]) - math.exp(-t / f["tau"]))  # noqa: E731
    assert rise(T) <= regime.LEVEL < rise(T - 500)
    pts = {s: f["a"] - f["b"] * math.exp(-s / f["tau"]) for s in range(0, 8001, 500)}
    got = regime.fit(pts)
    assert got["a"] == pytest.approx(0.9, abs=1e-4) and got["tau"] == pytest.approx(2000, rel=1e-3)


def _per_task(model_shift, tasks=1000, seed=0, fixed=True):
    """Per-task accuracies at checkpoints 0, 500, …, 10,000: the same tasks at every checkpoint
    (``fixed``; each keeps its difficulty) or new ones drawn at each (20 queries each), the
    model's accuracy moved by ``model_shift(step)``."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0.6, 0.95, tasks)
    out = {}
    for step in range(0, 10_001, 500):
        if fixed:
            out[step] = np.clip(difficulty + model_shift(step), 0, 1)
        else:
            out[step] = rng.binomial(20, np.clip(rng.uniform(0.6, 0.95, tasks) + model_shift(step), 0, 1)) / 20
    return out


def test_scatter_tells_the_tasks_noise_from_the_models():
    # new tasks at every checkpoint, a flat model: the scatter is the tasks' error, which 10× the
    # tasks cuts by about √10; the window rise contains 0
    tasks_only = regime.scatter(_per_task(lambda s: 0.0, fixed=False), curve_tasks=100)
    few, many = tasks_only["100"], tasks_only["1000"]
    assert few["scatter"] == pytest.approx(few["task_se"], rel=0.5)
    assert many["scatter"] < few["scatter"] / 2 and many["lo"] <= 0 <= many["hi"]
    # the same tasks, a model that jumps ±1 point between checkpoints: more tasks do not help
    jumps = np.random.default_rng(1).normal(0, 0.01, 21)
    model = regime.scatter(_per_task(lambda s: jumps[s // 500]), curve_tasks=100)
    assert model["1000"]["scatter"] == pytest.approx(model["100"]["scatter"], rel=0.25)
    assert model["1000"]["scatter"] > 0.005
    # a steady rise of 5 points per 10,000 steps: 2 points over the protocol's window (the last
    # 40%), seen as a rise, not levelled off
    rising = regime.scatter(_per_task(lambda s: 0.05 * s / 10_000), curve_tasks=100)["1000"]
    assert rising["rise"] == pytest.approx(0.02, abs=0.002) and not rising["levelled"]


def test_choice_prefers_the_papers_shape_within_the_cap():
    rows = {"finn-queries": {"levelled_step": 20_000, "seconds_per_step": 0.7},
            "cpu": {"levelled_step": 15_000, "seconds_per_step": 0.25}}
    assert regime.choose(rows, cap_hours=10)["shape"] == "finn-queries"      # 3.9 h
    assert regime.choose(rows, cap_hours=2)["shape"] == "cpu"                # 1.0 h; 3.9 h is over
    over = regime.choose(rows, cap_hours=0.5)
    assert over == {"shape": "cpu", "within_cap": False, "also_book_recipe": True}


@requires_data
def test_supervised_runs_train_to_their_end(tmp_path):
    """The chunked meta-training loop leaves supervised training as it was."""
    cfg = meta.SupervisedConfig(filters=4, batch_size=8, steps=2, checkpoint_every=1, log_every=1)
    run = meta.train(cfg, root=tmp_path)
    assert run.finished and run.checkpoint_steps() == [0, 1, 2]
    with pytest.raises(ValueError, match="checkpoints"):
        meta.attempt(cfg, until=1, root=tmp_path / "b")


def test_the_record_waits_for_enough_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "SHAPES", {"tiny": {}})
    monkeypatch.setattr(regime, "config", lambda shape, algorithm="maml", seed=0:
                        dataclasses.replace(TINY, algorithm=algorithm, seed=seed))
    rec = regime.measure(root=tmp_path)  # nothing trained: no row, no choice made from nothing
    assert rec["rows"] == {} and rec["choice"]["shape"] is None and "checkpoints" in rec["choice"]["reason"]


def test_the_shipped_checkpoints_match_their_manifests():
    """CI checks the committed long-run files by their SHA-256 (retraining a chunk to compare the
    weights is a command: python -m mamlscope regime verify, then train from the previous one)."""
    shipped = Path(__file__).resolve().parents[1] / regime.SHIPPED
    manifests = sorted(shipped.glob("*/manifest.json"))
    assert manifests, f"no shipped run under {shipped}"
    assert regime.verify(shipped) == []
    for mf in manifests:
        m = json.loads(mf.read_text())
        assert m["run"].endswith(m["hash"][:12]) and m["threads"] == 1 and m["files"]
        assert any(name.startswith("ckpt/step_") for name in m["files"])


def test_an_accelerating_curve_has_no_level_to_predict():
    """The sigmoid's early part (rising faster and faster) drives the saturating fit to a = 100%:
    at its bound, the fit predicts nothing and the rule waits."""
    steps = range(1000, 6001, 500)
    early = {s: 0.25 + 0.7 / (1 + math.exp(-(s - 7000) / 1200)) for s in steps}
    f = regime.fit(early)
    assert f is not None and f["at_bound"]
    late = {s: 0.25 + 0.7 / (1 + math.exp(-(s - 2000) / 600)) for s in range(1000, 12001, 500)}
    g = regime.fit(late)
    assert g is not None and not g["at_bound"] and regime.levelled_step(g) < 12_000


@requires_data
def test_a_fork_of_the_long_run_is_the_shorter_run(tmp_path, monkeypatch):
    """The chosen shape at its own length is made from the trial's files: the log, scores and
    (of the checkpoints it keeps: the long grid's, the log-spaced ones, the last) the weights
    that training the shorter configuration from scratch writes; its last stretch retrains to
    the same weights."""
    trial = dataclasses.replace(TINY, steps=12, checkpoint_every=2, log_checkpoints=True)
    monkeypatch.setattr(regime, "SHAPES", {"tiny": {}})
    monkeypatch.setattr(regime, "config", lambda shape, algorithm="maml", seed=0:
                        dataclasses.replace(trial, algorithm=algorithm, seed=seed))
    monkeypatch.setattr(regime.profiles, "LONG_EVERY", 4)
    with pytest.raises(ValueError, match="has not reached step 8"):
        regime.fork("tiny", 8, root=tmp_path / "here")
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # check_fork's one thread: keep ours
    meta.attempt(trial, until=8, root=tmp_path / "here", backend=regime.BACKEND)
    forked = regime.fork("tiny", 8, root=tmp_path / "here")
    assert forked.finished and forked.config.steps == 8 and forked.hash != Run(trial, tmp_path / "here").hash
    scratch = meta.train(dataclasses.replace(trial, steps=8), root=tmp_path / "scratch")
    assert scratch.checkpoint_steps() == [0, 1, 2, 4, 5, 6, 8]
    assert forked.checkpoint_steps() == [0, 1, 2, 4, 5, 8]  # 6: not kept
    for step in forked.checkpoint_steps():
        a, b = scratch.load_checkpoint(step), forked.load_checkpoint(step)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    timing = "seconds_per_step"
    assert [{k: v for k, v in m.items() if k != timing} for m in scratch.metrics()] == \
        [{k: v for k, v in m.items() if k != timing} for m in forked.metrics()]
    assert json.loads((scratch.dir / "scores.json").read_text()) == json.loads((forked.dir / "scores.json").read_text())
    assert regime.check_fork("tiny", 8, root=tmp_path / "here") == 0.0
    assert torch.get_num_threads() == threads


def test_the_long_profile_names_the_forked_runs():
    """``long_profile(shape, T)``'s 20-way runs are exactly what ``regime fork`` makes from the
    trial (MAML and each ANIL seed, same hash), so its chapters read the shipped checkpoints and
    train nothing; every other setting is the cpu profile's."""
    from mamlscope.training import plan, profiles

    P = profiles.long_profile("finn-queries", 21_500)
    forked = [dataclasses.replace(regime.config("finn-queries", a, s), steps=21_500) for a, s in regime.VARIANTS]
    wanted = [P.meta("omniglot_20w1s")] + [dataclasses.replace(P.meta("omniglot_20w1s", "anil"), seed=s)
                                            for s in range(P.anil_seeds)]
    assert [Run(c, "/nonexistent").hash for c in wanted] == [Run(c, "/nonexistent").hash for c in forked]
    assert P.omniglot_5w1s == profiles.PROFILES["cpu"].omniglot_5w1s
    assert {Run(c, "/x").hash for c in plan.chapter_runs(P, "04_rapid_learning_or_feature_reuse")} >= \
        {Run(c, "/x").hash for c in forked}
    if "long" not in profiles.PROFILES:  # not chosen yet: a clear error, not a silent fallback
        with pytest.raises(ValueError, match="regime fork"):
            profiles.load("long")
    # long@STEPS: the same profile at a shorter fork (the budget study), checked before any work
    short = profiles.load("long@10000", anil_seeds=1)
    assert short.name == "long@10000" and short.meta("omniglot_20w1s").steps == 10_000 and short.anil_seeds == 1
    assert short.omniglot_20w1s == dataclasses.replace(P.omniglot_20w1s, steps=10_000)
    for bad in ("long@", "long@12345", "long@ten"):
        with pytest.raises(ValueError, match="multiple of 500"):
            profiles.load(bad)


def test_the_length_is_the_first_grid_step_where_the_protocol_sees_a_level():
    """Rule 4: from T* on, at multiples of LONG_EVERY, the first step whose curve passes the
    protocol's convergence precondition (95% upper end of the window rise ≤ 1 point); a curve
    still rising runs to the cap, and says so."""
    flat_after = {s: min(0.88, 0.5 + s / 40_000) + 0.002 * (-1) ** (s // 500) for s in range(0, 40_001, 500)}
    got = regime.length(flat_after, levelled_at=20_500, seconds_per_step=1.0)
    assert got["cap_step"] == 36_000 and got["why"] == "levelled off"
    assert got["T"] % 2_500 == 0 and got["T"] >= 22_500 and got["looks"][got["T"]]["hi"] <= 0.01
    assert all(not v["levelled"] for T, v in got["looks"].items() if T < got["T"])
    rising = {s: 0.3 + s / 100_000 for s in range(0, 40_001, 500)}
    capped = regime.length(rising, levelled_at=20_500, seconds_per_step=1.0)
    assert capped["T"] == 36_000 and capped["why"].startswith("the cap")
    early = regime.length({s: v for s, v in rising.items() if s <= 30_000}, levelled_at=20_500, seconds_per_step=1.0)
    assert early["T"] is None and early["why"] == "training on"


def test_the_lengths_power_falls_with_the_curves_noise():
    f = {"a": 0.88, "b": 0.73, "tau": 2900.0}
    quiet = regime.length_power(f, 0.001, 20_500, 31_000, draws=200)
    noisy = regime.length_power(f, 0.02, 20_500, 31_000, draws=200)
    assert quiet["any"] == 1.0 and quiet["looks"] == [22_500, 25_000, 27_500, 30_000, 31_000]
    assert noisy["any"] < 0.5 and noisy["at_cap"] <= noisy["any"]


def test_noise_refuses_fewer_tasks_than_the_curve_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    assert regime.main(["noise", "--tasks", "50"]) == 2
    assert "give more than the curve's own 100" in capsys.readouterr().err
