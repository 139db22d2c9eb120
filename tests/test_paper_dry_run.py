"""The paper profile's dry run: every chapter executed with the paper profile's configurations
(64 filters, meta-batch 16/32, 20-way 5-shot, Finn et al.'s network and Σℓ/K, float32) and every
count cut (``mamlscope.training.profiles.dry_run``), through ``python -m mamlscope rerun``, as a reader
with a GPU would run them. A shape, dtype or branch error that only the paper profile reaches
fails here in minutes instead of hours into a GPU job. The numbers are not looked at.
"""
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import requires_data

from mamlscope.core.meta import MetaConfig, SupervisedConfig
from mamlscope.publish import notebooks
from mamlscope.training import plan, profiles

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_goldens  # noqa: E402

SHAPES = ("n_way", "k_shot", "q_query", "filters", "inner_steps", "inner_lr", "eval_inner_steps", "meta_batch",
          "inner_reduction", "network", "dtype", "arch", "dataset", "algorithm", "batch_size", "coherence_penalty")


def test_the_dry_run_keeps_every_setting_of_the_paper_but_the_counts():
    paper, dry = profiles.PROFILES["paper"], profiles.PROFILES["paper-dry"]
    assert dry.name == "paper-dry" and dry.r1_settings == paper.r1_settings
    for chapter in plan.CHAPTER_RUNS:
        full = {(c.name, c.seed, getattr(c, "coherence_penalty", 0)): c for c in plan.chapter_runs(paper, chapter)}
        cut = {(c.name, c.seed, getattr(c, "coherence_penalty", 0)): c for c in plan.chapter_runs(dry, chapter)}
        assert {k[0] for k in cut} == {k[0] for k in full}, chapter   # every kind of run, fewer seeds
        assert set(cut) <= set(full), chapter
        for key, b in cut.items():
            a = full[key]
            for name in SHAPES:
                if hasattr(a, name):
                    assert getattr(a, name) == getattr(b, name), (chapter, key, name)
            assert b.steps <= 3 < a.steps
    for f in fields(paper):
        value = getattr(paper, f.name)
        if isinstance(value, (MetaConfig, SupervisedConfig)):
            assert getattr(dry, f.name).dtype == value.dtype == "float32"
    assert dry.test_tasks > 100  # more than one of evaluate's chunks, as the paper's 600


@requires_data
@pytest.mark.slow
def test_every_chapter_executes_at_the_paper_profiles_shapes(tmp_path):
    out = tmp_path / "out"
    env = make_goldens.isolated_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mamlscope", "rerun", "--profile", "paper-dry", "--output-dir",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-8000:]
    pages = notebooks.chapters(ROOT) + notebooks.summary_pages(ROOT)
    for name in pages:
        nb = json.loads((out / f"{name}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    recorded = {p.stem for p in (out / "results" / "paper-dry").glob("*.json")}
    from mamlscope.verdict import claims

    assert set(claims.CLAIMS) <= recorded, f"not recorded: {sorted(set(claims.CLAIMS) - recorded)}"
    assert not (Path(env["MAMLSCOPE_RESULTS"]) / "paper-dry").exists()  # records went to the output folder
