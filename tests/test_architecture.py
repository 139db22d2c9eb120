"""The library's shape (README, "Where things live"): folders by role, each importing only the
folders below it, no import cycle at any level (import-linter's contracts in pyproject.toml),
and imports at the top of modules."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "mamlscope"
#: third-party packages a function may import where it uses them: heavy, and needed by few paths
LAZY = {"sklearn", "scipy", "torchvision", "PIL", "papermill", "jupytext", "nbformat", "distributed",
        "dask", "dask_jobqueue", "IPython", "tqdm", "psutil", "threadpoolctl", "nbclient", "jupyter_core"}


def test_the_import_contracts_hold():
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


def test_a_layer_that_imports_upward_breaks_the_contract(tmp_path):
    """The contract can fail: the same check on a copy of the library with core importing the verdicts."""
    lib = tmp_path / "lib"
    shutil.copytree(LIB, lib / "mamlscope", ignore=shutil.ignore_patterns("__pycache__"))
    models = lib / "mamlscope" / "core" / "models.py"
    models.write_text(models.read_text() + "\nfrom mamlscope.verdict import claims  # noqa\n")
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml")],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "mamlscope.core is not allowed to import mamlscope.verdict" in out.stdout


def test_imports_sit_at_the_top_of_modules():
    """An import inside a function is only for a heavy third-party package used by few paths."""
    inside = []
    for path in sorted(LIB.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] if not node.level else ["."]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] not in LAZY:
                        inside.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not inside, "\n".join(inside)
