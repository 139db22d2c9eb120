"""The replica study: another seed of the 20-way MAML run, measured by the chapters' code."""
import dataclasses
import json
from pathlib import Path

import pytest
from conftest import LEVELLED

from mamlscope.evidence import Evidence
from mamlscope.publish import notebooks, scorecard
from mamlscope.studies import replicate
from mamlscope.verdict import attached, claims, results

ROOT = Path(__file__).resolve().parents[1]


def _write(folder: Path, claim_id: str, verdict: str, measured: str = "m") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    r = results.ClaimResult(claim_id, claims.CLAIMS[claim_id].chapter, "cpu", "s", measured, "p",
                            verdict, "rule")
    (folder / f"{claim_id}.json").write_text(json.dumps(dataclasses.asdict(r)))


def test_every_replicated_claim_is_measured_on_the_20_way_run_and_its_chapter_takes_the_seed():
    for c in attached.REPLICATED:
        assert c == "F2" or claims.CLAIMS[c].depends_on == "F2" or c == "A1c", c
    for page in replicate.chapters():
        params = notebooks.parameters(ROOT, page)
        assert "seed_20w" in params, f"{page} has no seed_20w parameter"
    assert replicate.chapters()[0] == "01_maml_on_omniglot"  # F2 first


def test_attach_says_whether_the_replica_agrees(results_dir):
    assert attached.replication("G4", "not reproduced", "cpu") == {}  # nothing recorded
    _write(attached.replica_root("cpu", 1), "G4", "reproduced", "ratio 1.2")
    got = attached.replication("G4", "not reproduced", "cpu")
    assert got == {"seed 1": {"verdict": "reproduced", "measured": "ratio 1.2"}, "agrees": False}
    assert attached.replication("G4", "reproduced", "cpu")["agrees"] is True
    assert attached.replication("L6", "reproduced", "cpu") == {}  # not measured on the 20-way run
    text = claims.seeds_text({"n": 1}, got)
    assert "seed 1: reproduced" in text and "one-seed verdict" in text


def test_a_recorded_claim_carries_the_replica_and_rejudge_covers_the_replica(results_dir):
    _write(attached.replica_root("cpu", 1), "F2", "reproduced")
    r = claims.record(Evidence("F2", {"mean": 0.5, "ci95": 0.01, "n_tasks": 600}, run=LEVELLED), "cpu")
    assert r.verdict == "not reproduced"  # 50% against Finn et al.'s 95.8%
    assert r.replication["seed 1"]["verdict"] == "reproduced"
    assert r.replication["agrees"] == (r.verdict == "reproduced")
    stored = json.loads((results_dir / "cpu" / "F2.json").read_text())
    assert stored["replication"] == r.replication
    rows = {row["claim"]: row for row in claims.rejudge("cpu")}
    assert "F2 (seed1)" in rows and "F2" in rows


def test_seed_zero_is_refused_before_any_work():
    with pytest.raises(ValueError, match="seed 0 is the book's own run"):
        replicate.run("cpu", seed=0)
