"""The paper-scale page is generated from recorded cost estimates, and is not stale."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mamlscope.publish import paper_scale
from mamlscope.training import plan
from mamlscope.training.cli import main as runs_main

ROOT = Path(__file__).resolve().parents[1]


def _frame():
    return pd.DataFrame([
        {"run": "maml-omniglot-5w1s-aaaaaaaaaaaa", "chapters": "01_maml_on_omniglot, 04_rapid_learning_or_feature_reuse",
         "steps": 60000, "minutes": 600.0, "spread": 1.1, "settings": "n_way=5"},
        {"run": "maml-omniglot-20w1s-bbbbbbbbbbbb", "chapters": "01_maml_on_omniglot", "steps": 60000,
         "minutes": 1800.0, "spread": 1.3, "settings": "n_way=20"},
        {"run": "supervised-mnist-cccccccccccc", "chapters": "02_early_layers_change_little", "steps": 200,
         "minutes": 0.5, "spread": 1.0, "settings": ""},
    ])


def test_the_committed_page_is_what_the_records_give():
    assert (ROOT / "book" / "paper_scale.md").read_text() == paper_scale.page(ROOT)
    assert "book/paper_scale" in (ROOT / "_toc.yml").read_text()


def test_a_recorded_device_gets_hours_per_chapter_and_an_unrecorded_one_says_so(tmp_path):
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("results"))
    path = plan.write_cost(paper_scale.cost_path("cpu", tmp_path), _frame(), "paper", "cpu", 2)
    record = json.loads(path.read_text())
    assert record["threads"] == 2 and record["runs"][0]["chapters"][1] == "04_rapid_learning_or_feature_reuse"
    chapters = paper_scale.by_chapter(record)
    assert chapters["01_maml_on_omniglot"]["runs"] == 2 and chapters["01_maml_on_omniglot"]["hours"] == 40.0
    text = paper_scale.page(tmp_path)
    assert "| 1. {doc}`MAML on Omniglot <01_maml_on_omniglot>` | 2 | 40.0 | maml-omniglot-20w1s (30.0) |" in text
    assert "| **all** | 3 | **40.0** | |" in text  # 2,400.5 min
    assert "30.0 s" not in text and "min" not in text.split("| chapter |")[1].split("**all**")[0]
    assert "| 0.01 |" in text  # chapter 2: 0.5 min, in hours like every other row, not "0.0"
    gpu = text.split("### On a GPU")[1]
    assert "Not measured yet" in gpu and "No GPU was available" in gpu and "--device cuda" in text
    assert "differed by up to 1.30×" in text


def test_the_check_fails_on_a_stale_page(tmp_path, capsys):
    stale = tmp_path / "paper_scale.md"
    stale.write_text("old\n")
    assert paper_scale.main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err


def test_record_needs_estimate(capsys):
    with pytest.raises(SystemExit):
        runs_main(["plan", "--profile", "smoke", "--record", "/tmp/x.json"])
    assert "--record needs --estimate" in capsys.readouterr().err
