"""Every chapter executes end to end at the smoke profile (papermill), into a temporary folder,
with its own cache and results folders, and records a verdict for each claim it names."""
import json
import os

import pytest

from mamlscope.paths import project_root
from mamlscope.rerun import chapters
from conftest import requires_data

ROOT = project_root()


@requires_data
@pytest.mark.parametrize("chapter", chapters(ROOT))
def test_chapter_runs_at_smoke_profile(chapter, tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MAMLSCOPE_CACHE", str(tmp_path / "cache"))
    # share the resized-Omniglot cache instead of rebuilding it in every test
    default_cache = ROOT / ".cache" / "omniglot28.pt"
    if default_cache.is_file():
        (tmp_path / "cache").mkdir()
        os.symlink(default_cache, tmp_path / "cache" / "omniglot28.pt")
    out = tmp_path / f"{chapter}.ipynb"
    pm.execute_notebook(str(ROOT / "book" / f"{chapter}.ipynb"), str(out), parameters={"profile": "smoke"},
                        cwd=str(ROOT / "book"), progress_bar=False, kernel_name="python3")
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    recorded = list((tmp_path / "results" / "smoke").glob("*.json"))
    assert recorded, "the chapter recorded no verdict"
    for path in recorded:
        assert json.loads(path.read_text())["verdict"] in ("reproduced", "partly", "not reproduced")
