"""Regression tests: each chapter, executed at the smoke profile, prints what its golden
(``tests/goldens/<chapter>.ipynb``, written by ``make goldens``) recorded — on any CPU.

nbval re-executes every golden in a fresh kernel (in ``book/``, with temporary cache and results
folders) and compares each cell's outputs with the golden's, after the substitutions of
``tests/nbval_sanitize.cfg`` (timings, paths, addresses, float digits beyond the third decimal).
Images and cells tagged ``nbval-ignore-output`` are not compared. A golden whose chapter's code
cells changed since it was made is stale and fails before anything runs.

The smoke profile computes in float64 and sums scores exactly, so the printed digits do not
depend on the CPU. Every golden is checked twice: in the machine's own environment (its vector
kernels; one thread, as the book's kernels), and in a
perturbed one that stands in for another CPU (:data:`PERTURBED`: the generic kernels instead of
AVX2/AVX-512, one thread instead of several), which changes float32 results in the third decimal.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import requires_data

from mamlscope.core.runs import run_dir
from mamlscope.publish.notebooks import chapters

pytestmark = pytest.mark.book  # executes chapters or builds the HTML: `make test-quick` skips it

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_goldens  # noqa: E402

CHAPTERS = chapters(ROOT)
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
PERTURBED = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Both pin the kernel's threads to the book's count, as the book's own kernels run: OpenMP threads
# spin when a core is shared, and a chapter with every core's threads beside a training took past
# its timeout on a loaded 2-core machine.
NATIVE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ENVIRONMENTS = {"native": NATIVE, "perturbed": PERTURBED}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_golden_exists_and_matches_its_chapter(chapter):
    problem = make_goldens.golden_problem(chapter)
    assert problem is None, problem


def test_no_golden_without_a_chapter():
    extra = [p.name for p in make_goldens.orphans(CHAPTERS)]
    assert not extra, f"goldens without a chapter in _toc.yml: {extra}: run make goldens"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_golden_is_clean(chapter):
    """Made at the smoke profile, without errors, timestamps or kernel start-up noise."""
    path = make_goldens.golden_path(chapter)
    if not path.is_file():
        pytest.skip("no golden (test_golden_exists_and_matches_its_chapter fails)")
    nb = json.loads(path.read_text())
    assert nb["metadata"][make_goldens.KEY]["parameters"] == {"profile": "smoke"}
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'profile = "smoke"' in "".join(injected[0]["source"])
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert outputs, "the golden has no outputs"
    assert all(o["output_type"] != "error" for o in outputs)
    text = json.dumps(outputs)
    assert "Kernel is running over TCP" not in text and "papermill" not in json.dumps(nb["metadata"])


def test_source_hash_covers_code_cells_only(tmp_path, monkeypatch):
    from mamlscope.publish import notebooks

    nb = {"metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Title"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["profile: str = 'cpu'"],
         "outputs": [], "execution_count": None},
    ]}
    digest = notebooks.code_hash(nb)
    executed = json.loads(json.dumps(nb))
    executed["cells"].insert(2, {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                                 "source": 'profile = "smoke"', "outputs": [], "execution_count": 2})
    executed["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    assert notebooks.code_hash(executed) == digest          # outputs and the injected cell: no
    prose = json.loads(json.dumps(nb))
    prose["cells"][0]["source"] = "# Another title"
    assert notebooks.code_hash(prose) == digest             # a prose fix: no
    code = json.loads(json.dumps(nb))
    code["cells"][1]["source"] = "profile: str = 'smoke'"
    assert notebooks.code_hash(code) != digest              # a code change: yes
    tags = json.loads(json.dumps(nb))
    tags["cells"][1]["metadata"]["tags"].append("nbval-ignore-output")
    assert notebooks.code_hash(tags) != digest              # a tag that changes what is compared: yes

    # stale and missing goldens are reported with the command that fixes them
    monkeypatch.setattr(make_goldens, "GOLDENS", tmp_path / "goldens")
    hashes = {"99_x": digest}
    monkeypatch.setattr(make_goldens, "source_hash", lambda chapter: hashes[chapter])
    assert make_goldens.golden_problem("99_x") == (
        "chapter 99_x has no golden (tests/goldens/99_x.ipynb): run make goldens")
    (tmp_path / "goldens").mkdir()
    make_goldens.clean(executed, "99_x", digest)
    (tmp_path / "goldens" / "99_x.ipynb").write_text(json.dumps(executed))
    assert make_goldens.golden_problem("99_x") is None
    hashes["99_x"] = notebooks.code_hash(code)
    assert make_goldens.golden_problem("99_x") == (
        "golden for 99_x is stale (its chapter's code cells changed): run make goldens")


def test_sanitizer():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE.read_text())

    def sanitize(s):
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    # float noise beyond the third decimal is forgiven; shown digits are compared exactly
    assert sanitize("loss 0.123456789, cka 0.98765") == sanitize("loss 0.12349, cka 0.9876") == \
        "loss 0.123, cka 0.987"
    assert sanitize("45.5 ± 6.9%") == "45.5 ± 6.9%" and sanitize("0.1240") != sanitize("0.1230")
    # timings, addresses, temporary folders and checkout paths
    assert sanitize("executed in 12 s; 0.31 s per step, 3.2 min, 4.1 it/s") == \
        "executed in <DURATION>; <DURATION> per step, <DURATION>, <RATE>"
    assert sanitize("12 meta-steps (20 tasks), 5 inner steps") == "12 meta-steps (20 tasks), 5 inner steps"
    assert sanitize("<Run at 0x7f3a1c2b9e50>") == "<Run at 0x<ADDR>>"
    assert sanitize("/tmp/pytest-of-ci/pytest-3/t0/mamlscope-cache/runs/x") == "<cache>/runs/x"
    assert sanitize("/home/ci/src/lib/mamlscope/meta.py:123: UserWarning") == \
        "<project>/lib/mamlscope/meta.py:<N>: UserWarning"
    # run directories keep their configuration hash: a changed hash is a changed configuration
    assert sanitize("maml-omniglot-5w1s-2f369691cd35") == "maml-omniglot-5w1s-2f369691cd35"


def run_nbval(golden: Path, workdir: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """``pytest --nbval`` on one golden, in a subprocess with its own cache and results."""
    env = make_goldens.isolated_env(workdir)
    env.update(extra_env or {})
    env.update(NBVAL_KERNEL_CWD=str(ROOT / "book"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
           str(SANITIZE), "-p", "no:cacheprovider", "-p", "nbval_book_cwd", "-q", "--color=no",
           str(golden)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@requires_data
@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_reproduces_its_golden(chapter, environment, tmp_path):
    problem = make_goldens.golden_problem(chapter)
    if problem:
        pytest.skip(f"{problem} (test_golden_exists_and_matches_its_chapter fails)")
    proc = run_nbval(make_goldens.golden_path(chapter), tmp_path, ENVIRONMENTS[environment])
    assert proc.returncode == 0, (
        f"{chapter} at the smoke profile ({environment} environment {ENVIRONMENTS[environment]}) no "
        f"longer prints what tests/goldens/{chapter}.ipynb recorded (if the change is intended: make "
        f"goldens):\n{proc.stdout[-12000:]}\n{proc.stderr[-3000:]}")
    # the runs it trained are the ones mamlscope.training.plan declares for it
    from mamlscope.training import plan, profiles

    trained = {p.name for p in (tmp_path / "mamlscope-cache" / "runs").iterdir()}
    declared = {run_dir(cfg).name for cfg in plan.chapter_runs(profiles.load("smoke"), chapter)}
    assert trained == declared, (f"{chapter} trained {sorted(trained - declared)} not declared in mamlscope.training.plan, "
                                 f"and did not train {sorted(declared - trained)} that it declares")
    # every chapter ends with verdicts recorded through mamlscope.verdict.results
    recorded = list((tmp_path / "mamlscope-results" / "smoke").glob("*.json"))
    assert recorded, f"{chapter} recorded no verdict"
    for path in recorded:
        assert json.loads(path.read_text())["verdict"] in ("reproduced", "partly", "not reproduced",
                                                           "inconclusive")
