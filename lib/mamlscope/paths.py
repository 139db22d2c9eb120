"""Where data, caches and results live, and what a record says it was computed on.

* data root   — ``$MAML_DATA``, else ``<project>/data``: the datasets in their standard layouts
  (``omniglot-py/images_background|images_evaluation``, ``MNIST/raw``). May be read-only.
* cache root  — ``$MAMLSCOPE_CACHE``, else ``<project>/.cache``: resized-image caches and
  training runs (``runs/<name>-<hash>/``). Shared by every chapter.

``<project>`` is the source checkout that holds this package (editable install); when the
package is installed elsewhere the defaults fall back to ``~/.cache/mamlscope``.
"""
from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import torch


def project_root() -> Path | None:
    """The checkout containing ``lib/mamlscope`` and ``pyproject.toml``, or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "lib").is_dir() else None


def _default(sub: str) -> Path:
    root = project_root()
    return root / sub if root is not None else Path.home() / ".cache" / "mamlscope" / sub.strip(".")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``root`` if given, else ``$MAML_DATA``, else ``<project>/data``."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get("MAML_DATA")
    return Path(env).expanduser().resolve() if env else _default("data")


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$MAMLSCOPE_CACHE``, else ``<project>/.cache``."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get("MAMLSCOPE_CACHE")
    return Path(env).expanduser().resolve() if env else _default(".cache")


def atomic_write(path: Path, write) -> None:
    """Write ``path`` all at once: ``write(tmp)`` fills a temporary file beside it, which then
    replaces ``path`` (``os.replace``); a failure leaves ``path`` as it was and no temporary."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def git_commit(length: int | None = None, missing: str = "unknown", cwd=None) -> str:
    """The checkout's commit (``git rev-parse --short[=length] HEAD``), or ``missing`` when there
    is no git or no checkout: what the records say they were computed at."""

    short = "--short" if length is None else f"--short={length}"
    try:
        out = subprocess.run(["git", "rev-parse", short, "HEAD"], cwd=cwd or project_root(), text=True,
                             capture_output=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError, TypeError):
        return missing
    return out or missing


def machine(device="cpu") -> str:
    """What a measurement ran on: the GPU's name, or the CPU's model and core count."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = "CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def provenance(device="cpu", commit_length: int | None = None) -> dict:
    """The machine, commit and date every stored record carries beside its numbers."""
    return {"machine": machine(device), "commit": git_commit(commit_length),
            "date": datetime.date.today().isoformat()}
