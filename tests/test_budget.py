"""The budget study (mamlscope.studies.budget): which steps the long run's variants reached, a
clear refusal before any work for a step they did not, and the claim × step table read back
from stored records."""
import dataclasses
import json

import pytest
from conftest import requires_data
from test_runs import TINY

from mamlscope.core import meta
from mamlscope.studies import budget, regime
from mamlscope.verdict.results import ClaimResult


@requires_data
def test_the_steps_every_variant_reached(tmp_path, monkeypatch):
    monkeypatch.setattr(regime, "config", lambda shape, algorithm="maml", seed=0:
                        dataclasses.replace(TINY, algorithm=algorithm, seed=seed))
    monkeypatch.setattr(budget.profiles, "LONG_EVERY", 3)
    assert budget.reached(root=tmp_path) == []
    for (algorithm, seed), until in zip(regime.VARIANTS, (6, 6, 3)):
        meta.attempt(dataclasses.replace(TINY, algorithm=algorithm, seed=seed), until=until, root=tmp_path)
    assert budget.reached(root=tmp_path) == [3]  # ANIL seed 1 has not reached step 6
    monkeypatch.setattr(budget, "reached", lambda shape=None, root=None: [3])
    with pytest.raises(ValueError, match=r"steps \[6\]"):
        budget.run([6])


def test_the_table_reads_each_steps_records(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(tmp_path))
    base = dict(claim="R3", chapter="04_rapid_learning_or_feature_reuse", profile="long@5000", statement="s",
                measured="m", paper="p", rule="r")
    for step, verdict, reasons in ((5000, "inconclusive", ["not converged"]), (20000, "reproduced", [])):
        d = tmp_path / "long" / "budget" / f"step{step:06d}"
        d.mkdir(parents=True)
        rec = dataclasses.asdict(ClaimResult(verdict=verdict, reasons=reasons, **base))
        (d / "R3.json").write_text(json.dumps(rec))
    t = budget.table()
    assert list(t.index) == ["R3"] and list(t.columns) == [5000, 20000]
    assert t.loc["R3", 5000] == "inconclusive (not reached at this budget)"
    assert t.loc["R3", 20000] == "reproduced (holds)"


def test_the_rule_alone_is_judged_again_from_each_records_values(tmp_path, monkeypatch):
    """Without the regime preconditions: the claim's own rule on the stored values (F2: the
    paper's 95.8% inside or below the interval)."""
    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(tmp_path))
    from mamlscope.verdict import claims

    for step, (mean, ci95) in ((5000, (0.80, 0.01)), (20000, (0.955, 0.01))):
        d = tmp_path / "long" / "budget" / f"step{step:06d}"
        d.mkdir(parents=True)
        values = {"mean": mean, "ci95": ci95, "n_tasks": 600}
        rec = claims.judge("F2", values, f"long@{step}")
        (d / "F2.json").write_text(json.dumps(dataclasses.asdict(rec)))
    alone = budget.table(rule_alone=True)
    assert alone.loc["F2", 5000] == "not reproduced" and alone.loc["F2", 20000] == "reproduced"


def test_the_long_regime_page_is_what_the_records_give():
    """book/long_regime.md is generated from the committed records (regenerate it after a ship,
    a regime record or a budget run: python -m mamlscope long_regime --write book/long_regime.md)."""
    from pathlib import Path

    from mamlscope.studies import long_regime

    root = Path(__file__).resolve().parents[1]
    assert (root / "book" / "long_regime.md").read_text() == long_regime.page(root)
    assert "book/long_regime" in (root / "_toc.yml").read_text()


def test_the_page_joins_the_steps_with_one_verdict():
    import pandas as pd

    from mamlscope.studies import long_regime
    frame = pd.DataFrame({2500: ["a", "x"], 5000: ["a", None], 7500: ["b", "x"], 10000: ["a", "x"]}, index=["C1", "C2"])
    assert long_regime._by_step(frame) == [
        ["C1", "steps 2,500–5,000: a; step 7,500: b; step 10,000: a"],
        ["C2", "step 2,500: x; step 5,000: not judged; steps 7,500–10,000: x"]]


def test_the_page_says_which_runs_train_on_from_the_manifests():
    from mamlscope.studies import long_regime
    man = {("maml", 0): {"step": 18_000}, ("anil", 0): {"step": 31_000}, ("anil", 1): {"step": 30_000}}
    assert long_regime._training(man, 31_000) == ("; ANIL, seed 0 has reached the cap (31,000 steps); "
                                                  "MAML and ANIL, seed 1 train on")
    assert long_regime._training({("maml", 0): {"step": 500}}, None) == "; MAML trains on"
