"""Test set-up: the data root defaults to ../shared/data (this workplace) when MAML_DATA is unset;
training runs and results go to temporary folders so the user's cache is never touched."""
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if "MAML_DATA" not in os.environ:
    for candidate in (ROOT / "data", ROOT.parent / "shared" / "data"):
        if (candidate / "omniglot-py" / "images_background").is_dir():
            os.environ["MAML_DATA"] = str(candidate)
            break
os.environ.setdefault("MAMLSCOPE_PROGRESS", "0")


def _have_data() -> bool:
    return (Path(os.environ.get("MAML_DATA", ROOT / "data")) / "omniglot-py" / "images_background").is_dir()


requires_data = pytest.mark.skipif(not _have_data(), reason="Omniglot/MNIST not under MAML_DATA")


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    d = tmp_path / "results"
    monkeypatch.setenv("MAMLSCOPE_RESULTS", str(d))
    return d


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class CurveRun:
    """A stand-in for a trained run: its learning curve (step → accuracy on the fixed test tasks)
    and its configured steps, all that a claim's regime reads (claims.convergence)."""

    def __init__(self, curve: dict, steps: int | None = None):
        import types

        self.curve = curve
        self.config = types.SimpleNamespace(steps=steps or max(curve))

    def metrics(self):
        return [{"step": s, "test_score": v} for s, v in sorted(self.curve.items())]


# a model whose curve has levelled off, and one still rising by 2 points per 1,000 steps
LEVELLED = CurveRun({s: 0.9 + 0.0005 * ((s // 250) % 2) for s in range(0, 3001, 250)})
RISING = CurveRun({s: 0.6 + 0.00002 * s + 0.001 * ((s // 250) % 2) for s in range(0, 3001, 250)})
