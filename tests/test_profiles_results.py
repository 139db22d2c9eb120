import json

import pytest
import torch

from mamlscope import profiles, results


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'laptop'; valid profiles: smoke, cpu, paper"):
        profiles.load("laptop")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter 'stepz'.*test_tasks.*omniglot_5w1s__steps"):
        profiles.load("cpu", stepz=3)


def test_overrides_apply_and_none_is_ignored():
    p = profiles.load("cpu", test_tasks=50, omniglot_5w1s__steps=7, omniglot_20w1s__filters=None)
    assert p.test_tasks == 50 and p.omniglot_5w1s.steps == 7
    assert p.omniglot_20w1s == profiles.PROFILES["cpu"].omniglot_20w1s
    assert p.meta("omniglot_5w1s", "anil").inner().adapt == "head"
    with pytest.raises(ValueError, match="not a meta-learning setting"):
        p.meta("mnist_supervised")


def test_paper_profile_has_the_papers_settings():
    p = profiles.load("paper")
    g = p.omniglot_20w1s  # Goerttler & Obermayer §4, Finn et al. App. A.1
    assert (g.n_way, g.k_shot, g.filters, g.steps, g.meta_batch, g.inner_steps, g.inner_lr, g.meta_lr) == \
           (20, 1, 64, 60_000, 16, 5, 0.1, 1e-3)
    f = p.omniglot_5w1s
    assert (f.filters, f.meta_batch, f.inner_steps, f.eval_inner_steps, f.inner_lr) == (64, 32, 1, 3, 0.4)
    assert (p.mnist_supervised.batch_size, p.mnist_supervised.steps) == (100, 200)
    assert p.test_tasks == 600


def test_device_choice():
    assert profiles.resolve_device("cpu").type == "cpu"
    assert profiles.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            profiles.resolve_device("cuda")


def test_results_roundtrip(results_dir):
    r = results.record("F1", chapter="01", profile="smoke", statement="s", measured="95.0 ± 1.0%",
                       paper="98.7 ± 0.4%", verdict="partly", rule="r", values={"acc": torch.tensor(0.95)})
    assert json.loads((results_dir / "smoke" / "F1.json").read_text())["values"]["acc"] == pytest.approx(0.95)
    assert results.load_all("smoke") == [r]
    with pytest.raises(ValueError, match="verdict='maybe'"):
        results.record("F1", chapter="01", profile="smoke", statement="s", measured="m", paper="p",
                       verdict="maybe", rule="r")


def test_verdict_from_checks():
    assert results.verdict_from_checks(3, 3) == "reproduced"
    assert results.verdict_from_checks(1, 3) == "partly"
    assert results.verdict_from_checks(0, 3) == "not reproduced"
    with pytest.raises(ValueError):
        results.verdict_from_checks(4, 3)


def test_verdict_table(results_dir):
    a = results.record("F1", chapter="01", profile="smoke", statement="s", measured="m1", paper="p1",
                       verdict="partly", rule="r")
    b = results.record("F2", chapter="01", profile="smoke", statement="s", measured="m2", paper="p2",
                       verdict="reproduced", rule="r")
    table = results.verdict_table([a, b])
    assert list(table.index) == ["F1", "F2"] and list(table.columns) == ["measured", "paper", "verdict"]
    assert table.loc["F2", "verdict"] == "reproduced"
