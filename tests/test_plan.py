"""mamlscope.plan: the runs each chapter declares (checked against what the chapters train in
tests/test_nbval.py), listed without executing a notebook."""
import pytest

from mamlscope import plan, profiles
from mamlscope.rerun import chapters
from mamlscope.runs import run_dir

from test_nbval import ROOT


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
    from mamlscope.runs.__main__ import main

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
