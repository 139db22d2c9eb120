"""Regenerate the nbval goldens: each chapter executed at the smoke profile (``make goldens``).

    python tools/make_goldens.py                        # every chapter of _toc.yml
    python tools/make_goldens.py 01_maml_on_omniglot    # only these
    python tools/make_goldens.py --check                # only report missing / stale goldens

A golden, ``tests/goldens/<chapter>.ipynb``, is the chapter's source ``book/<chapter>.md``
executed by papermill with ``profile="smoke"`` (float64, so its digits do not depend on the CPU),
exactly as ``tests/test_nbval.py`` re-executes it: in ``book/``, with a fresh cache
(``<tmp>/mamlscope-cache``; the resized Omniglot is shared from the real cache) and results
folder (``<tmp>/mamlscope-results``), ``MAMLSCOPE_PROGRESS=0``. Its metadata
``mamlscope_golden.source_sha256`` is :func:`mamlscope.publish.notebooks.code_hash` of the chapter (code
cells only: a prose fix does not stale a golden), so the tests can tell a golden that no longer
matches its chapter. What nbval does not compare is dropped, to keep the diff of a regeneration
down to real changes: images, the outputs of cells tagged ``nbval-ignore-output`` (timings),
papermill's timestamps and random cell id.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = ROOT / "tests" / "goldens"
PARAMETERS = {"profile": "smoke"}
KEY = "mamlscope_golden"
DROPPED_DATA = ("image/png", "image/jpeg", "image/svg+xml")  # nbval never compares them
FORBIDDEN = ("Kernel is running over TCP",)  # kernel start-up noise must not be an output
KERNEL_NOISE = ("Kernel is running over TCP without encryption", "KeyboardInterrupt caught in kernel")


def source_hash(chapter: str) -> str:
    """:func:`mamlscope.publish.notebooks.code_hash` of the chapter's source (its code cells)."""
    from mamlscope.publish import notebooks

    return notebooks.code_hash(notebooks.read_source(ROOT, chapter))


def golden_path(chapter: str) -> Path:
    return GOLDENS / f"{chapter}.ipynb"


def golden_problem(chapter: str) -> str | None:
    """Why the golden of ``chapter`` cannot be used (missing, stale), or None."""
    golden = golden_path(chapter)
    if not golden.is_file():
        return f"chapter {chapter} has no golden (tests/goldens/{chapter}.ipynb): run make goldens"
    stamp = json.loads(golden.read_text()).get("metadata", {}).get(KEY, {}).get("source_sha256")
    if stamp != source_hash(chapter):
        return f"golden for {chapter} is stale (its chapter's code cells changed): run make goldens"
    return None


def orphans(chapters: list[str]) -> list[Path]:
    """Goldens of notebooks that are no longer chapters."""
    return sorted(p for p in GOLDENS.glob("*.ipynb") if p.stem not in chapters)


def isolated_env(workdir: Path) -> dict[str, str]:
    """Environment of a golden's execution (and of its nbval check): fresh cache and results
    folders under ``workdir``, sharing only the resized-Omniglot cache."""
    from mamlscope.paths import cache_root

    shared = cache_root() / "omniglot28.pt"  # the user's cache, before we point elsewhere
    cache, results = workdir / "mamlscope-cache", workdir / "mamlscope-results"
    cache.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    if shared.is_file() and not (cache / shared.name).exists():
        os.symlink(shared, cache / shared.name)
    # one thread, as tests/test_nbval.py executes them (and as the book's kernels compute): a kernel
    # with every core's threads spins when the cores are shared, minutes instead of seconds
    env = dict(os.environ, MAMLSCOPE_CACHE=str(cache), MAMLSCOPE_RESULTS=str(results),
               MAMLSCOPE_PROGRESS="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if "MAML_DATA" not in env:  # like tests/conftest.py: data/, else the shared offline copy
        for candidate in (ROOT / "data", ROOT.parent / "shared" / "data"):
            if (candidate / "omniglot-py" / "images_background").is_dir():
                env["MAML_DATA"] = str(candidate)
                break
    return env


def clean(nb: dict, chapter: str, source_sha256: str) -> list[str]:
    """Strip what nbval ignores and what changes on every run; stamp the golden. Returns
    warnings (stderr outputs) worth a look."""
    notes = []
    for i, cell in enumerate(nb["cells"]):
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("papermill", None)
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            cell["id"] = "injected-parameters"  # papermill draws a new random id every time
        if "nbval-ignore-output" in tags:
            cell["outputs"] = []  # not compared; the timings would change the golden every time
        for out in cell.get("outputs", []):
            for mime in DROPPED_DATA:
                out.get("data", {}).pop(mime, None)
            text = json.dumps(out, ensure_ascii=False)
            for bad in FORBIDDEN:
                if bad in text:
                    raise SystemExit(f"{chapter}: cell {i} has {bad!r} in its outputs")
            if out.get("output_type") == "error":
                raise SystemExit(f"{chapter}: cell {i} raised {out.get('ename')}")
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                notes.append(f"{chapter}: cell {i} writes to stderr (compared by nbval): "
                             f"{''.join(out['text'])[:200]!r}")
    nb["metadata"].pop("papermill", None)
    nb["metadata"][KEY] = {
        "chapter": f"book/{chapter}.md",
        "source_sha256": source_sha256,
        "parameters": PARAMETERS,
        "made_with": {"python": ".".join(map(str, sys.version_info[:3])), "torch": version("torch")},
        "regenerate": "make goldens",
    }
    return notes


@contextmanager
def kernel_stderr_filtered():
    """The kernel writes to this process's stderr (file descriptor 2), never into the notebook:
    keep its lines, minus the start-up and shut-down noise of every kernel."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not any(noise in line for noise in KERNEL_NOISE):
                    print(line, file=sys.stderr)


def make_golden(chapter: str) -> list[str]:
    from mamlscope.publish import notebooks

    digest = source_hash(chapter)
    GOLDENS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"golden-{chapter}-") as tmp:
        saved = dict(os.environ)
        os.environ.update(isolated_env(Path(tmp)))
        try:
            out = Path(tmp) / f"{chapter}.ipynb"
            with kernel_stderr_filtered():
                notebooks.execute(ROOT, chapter, PARAMETERS, out, log_output=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        nb = json.loads(out.read_text())
    notes = clean(nb, chapter, digest)
    target = golden_path(chapter)
    tmp_target = target.with_suffix(".ipynb.tmp")
    tmp_target.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    tmp_target.replace(target)
    return notes


def main(argv=None) -> int:
    from mamlscope.publish.notebooks import chapters as toc_chapters

    known = toc_chapters(ROOT)
    parser = argparse.ArgumentParser(prog="tools/make_goldens.py", description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help=f"default: every chapter ({', '.join(known)})")
    parser.add_argument("--check", action="store_true", help="report missing or stale goldens; write nothing")
    args = parser.parse_args(argv)
    for name in args.chapters:
        if name not in known:
            parser.error(f"unknown chapter {name!r}; chapters: {', '.join(known)}")
    todo = args.chapters or known

    if args.check:
        problems = [p for p in map(golden_problem, todo) if p]
        problems += [f"golden {p.name} has no chapter: run make goldens" for p in orphans(known)]
        print("\n".join(problems) or f"{len(todo)} goldens up to date")
        return 1 if problems else 0

    failed, notes = [], []
    for name in todo:
        start = time.perf_counter()
        try:
            notes += make_golden(name)
        except Exception as exc:  # keep the other goldens coming; report at the end
            failed.append(name)
            print(f"{name}: FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", flush=True)
            continue
        print(f"{name}: golden written in {time.perf_counter() - start:.0f} s → "
              f"{golden_path(name).relative_to(ROOT)}", flush=True)
    if not args.chapters:
        for path in orphans(known):
            path.unlink()
            print(f"removed {path.relative_to(ROOT)} (no such chapter in _toc.yml)")
    for note in notes:
        print(f"note: {note}")
    if failed:
        print(f"goldens not written for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
