"""mamlscope.training.plan: the runs each chapter declares (checked against what the chapters train in
tests/test_nbval.py), listed without executing a notebook."""
import pytest
from test_nbval import ROOT

from mamlscope import paths
from mamlscope.core.runs import run_dir
from mamlscope.publish.notebooks import chapters
from mamlscope.training import plan, profiles


def test_every_chapter_declares_its_runs():
    assert set(plan.CHAPTER_RUNS) == set(chapters(ROOT))
    with pytest.raises(ValueError, match="no runs declared for chapter 'nope'"):
        plan.chapter_runs(profiles.load("cpu"), "nope")


def test_plan_lists_each_run_once_with_every_chapter_that_uses_it(tmp_path):
    P = profiles.load("cpu")
    frame = plan.plan(P, root=tmp_path)
    assert frame["run"].is_unique and not frame["trained"].any()
    shared = run_dir(P.meta("omniglot_20w1s"), tmp_path).name
    row = frame.set_index("run").loc[shared]
    assert row["chapters"].split(", ") == ["01_maml_on_omniglot", "02_early_layers_change_little",
                                           "03_inner_steps_vs_meta_steps", "04_rapid_learning_or_feature_reuse",
                                           "07_what_the_features_look_like"]
    assert row["steps"] == 3000
    assert len(plan.plan(P, ["05_objective_landscapes"], root=tmp_path)) == 6
    (tmp_path / "runs" / shared).mkdir(parents=True)
    (tmp_path / "runs" / shared / "final.json").write_text("{}")
    assert plan.plan(P, root=tmp_path).set_index("run").loc[shared, "trained"]


def test_swapped_sinusoid_exchanges_the_ranges():
    s = profiles.load("cpu").landscape_sinusoid
    w = plan.swapped_sinusoid(s)
    assert (w.amplitude, w.phase, w.test_amplitude, w.test_phase) == (s.test_amplitude, s.test_phase, s.amplitude, s.phase)
    assert plan.swapped_sinusoid(w) == s


def test_cli_prints_the_plan(capsys, tmp_path, monkeypatch):
    from mamlscope.training.cli import main

    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path))
    assert main(["plan", "--profile", "smoke", "01_maml_on_omniglot", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "maml-omniglot-5w1s-" in out and "2 runs at profile smoke, 0 trained" in out
    assert "missing" in out and "n_way=20" in out and "minutes" in out
    with pytest.raises(SystemExit):
        main(["plan", "--profile", "nope"])
    with pytest.raises(SystemExit):
        main(["train", "--profile", "smoke", "no_such_chapter"])


def test_settings_and_status(tmp_path):
    P = profiles.load("smoke")
    item = plan.planned(P, ["06_coherence_regulariser"], root=tmp_path)[-1]
    assert "coherence_penalty=1" in plan.settings(item.config) and "log_every" not in plan.settings(item.config)
    assert (item.done, item.status) == (0, "missing")
    (item.dir / "ckpt").mkdir(parents=True)
    (item.dir / "ckpt" / "step_0000002.pt").write_bytes(b"")
    assert (item.done, item.status) == (2, f"2/{item.config.steps}")


def test_estimates_time_each_step_and_total_by_chapter(tmp_path):
    from mamlscope.core import meta

    cfg = profiles.load("smoke").omniglot_5w1s
    est = meta.estimate(cfg, steps=3)
    assert len(est.step_seconds) == 3 and est.spread >= 1 and est.seconds > est.eval_seconds > 0
    assert meta.Estimate(10.0, (1.0, 3.0), 0.0).spread == 3.0
    P = profiles.load("smoke")
    frame = plan.plan(P, ["01_maml_on_omniglot", "02_early_layers_change_little"], root=tmp_path, estimate=True)
    per = plan.by_chapter(frame)
    assert list(per) == ["01_maml_on_omniglot", "02_early_layers_change_little"]  # the 20-way run counts in 01
    assert sum(per.values()) == pytest.approx(frame["minutes"].sum())
    assert "cores" in paths.machine("cpu")


def test_plan_refuses_a_missing_gpu_before_timing(capsys):
    import torch

    from mamlscope.training.cli import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--profile", "paper", "--estimate", "--device", "cuda"])
    assert exit_.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
