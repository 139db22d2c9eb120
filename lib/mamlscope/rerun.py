"""Run the book's chapters through papermill at a chosen profile, then optionally build the HTML.

    python -m mamlscope.rerun                          # every chapter, profile cpu, in place
    python -m mamlscope.rerun 01_maml_on_omniglot -p profile=smoke -p test_tasks=50 \
        --output-dir /tmp/out                          # one chapter, elsewhere
    python -m mamlscope.rerun --profile paper --html   # the papers' settings, then jupyter-book

``-p name=value`` sets any parameter the chapter lists (``papermill --help-notebook
book/<chapter>.ipynb``); values are parsed as YAML (``3`` → int, ``null`` → None). Chapters are
the notebooks named in ``_toc.yml``, in order; summary pages (:data:`SUMMARY_PAGES`, the
scorecard) gather what the chapters recorded, so they run after them, with the parameters they
declare (``profile``). A chapter is executed from its source, ``book/<chapter>.md``
(:mod:`mamlscope.notebooks`); executing in place rewrites ``book/<chapter>.ipynb``, the outputs
the book shows; ``--output-dir`` leaves the committed notebooks alone.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import notebooks
from .paths import project_root
from .profiles import PROFILES

SUMMARY_PAGES = ("scorecard",)  # notebooks that read the chapters' results: executed last


def chapters(root: Path) -> list[str]:
    """Notebook chapters listed in ``_toc.yml``, in order (names without ``book/`` and suffix),
    summary pages excluded."""
    return [name for name in _notebooks(root) if name not in SUMMARY_PAGES]


def summary_pages(root: Path) -> list[str]:
    """The :data:`SUMMARY_PAGES` listed in ``_toc.yml``."""
    return [name for name in _notebooks(root) if name in SUMMARY_PAGES]


def _notebooks(root: Path) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return [Path(f).name for f in files if (root / f"{f}.md").is_file()]


def _parse_parameters(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"-p {pair!r}: use name=value, e.g. -p test_tasks=100")
        name, value = pair.split("=", 1)
        params[name.strip()] = yaml.safe_load(value)
    return params


def execute(chapter: str, parameters: dict, output_dir: Path | None, root: Path) -> Path:
    declared = notebooks.parameters(root, chapter)
    unknown = set(parameters) - set(declared)
    if unknown:
        raise SystemExit(f"{chapter}: unknown parameter(s) {sorted(unknown)}; "
                         f"this chapter takes {sorted(declared)}.")
    target = (output_dir or root / "book") / f"{chapter}.ipynb"
    return notebooks.execute(root, chapter, parameters, target)


def main(argv: list[str] | None = None) -> int:
    root = project_root() or Path.cwd()
    parser = argparse.ArgumentParser(prog="python -m mamlscope.rerun", description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter in _toc.yml)")
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: the chapter's, cpu)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output-dir", type=Path, default=None, help="write executed notebooks here instead of in place")
    parser.add_argument("--html", action="store_true", help="build _build/html with jupyter-book afterwards")
    args = parser.parse_args(argv)

    params = _parse_parameters(args.parameter)
    if args.profile is not None:
        if args.profile not in PROFILES:
            parser.error(f"unknown profile {args.profile!r}; valid profiles: {', '.join(PROFILES)}")
        params["profile"] = args.profile
    known, summaries = chapters(root), summary_pages(root)
    todo = args.chapters or known + summaries
    for name in todo:
        if name not in known + summaries:
            parser.error(f"unknown chapter {name!r}; chapters: {', '.join(known + summaries)}")
    todo = sorted(todo, key=lambda name: name in summaries)  # summary pages last
    for name in todo:
        start = time.perf_counter()
        page_params = params
        if name in summaries:  # they take only some parameters (profile)
            declared = set(notebooks.parameters(root, name))
            page_params = {k: v for k, v in params.items() if k in declared}
        out = execute(name, page_params, args.output_dir, root)
        print(f"{name}: executed in {time.perf_counter() - start:.0f} s → {out}", flush=True)
    if args.html:
        if args.output_dir:
            parser.error("--html builds the book from the notebooks in book/; drop --output-dir")
        subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(root)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
