"""Chapters as Jupytext pairs: ``book/<chapter>.md`` (MyST Markdown) is the source people edit
and review; ``book/<chapter>.ipynb`` carries the outputs that the HTML shows and papermill writes.

* :func:`execute` runs a chapter *from its Markdown source* with papermill, so an edit to the
  ``.md`` is what runs; the cell papermill injects (tag ``injected-parameters``) is tagged
  ``remove-cell`` so the HTML does not show it (the parameters stay visible in the notebook).
* :func:`pair_problem` says whether the ``.ipynb`` still holds the ``.md``'s cells (the injected
  cell aside); :func:`sync` copies the ``.md``'s cells into the ``.ipynb`` and keeps the outputs
  of unchanged code cells (``jupytext --update``), which is what Jupyter does on save.
* :func:`code_hash` fingerprints the code cells only: the staleness stamp of a regression golden,
  so a prose fix does not stale it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

INJECTED = "injected-parameters"
HIDDEN_IN_HTML = "remove-cell"


def source_path(root: Path, chapter: str) -> Path:
    return Path(root) / "book" / f"{chapter}.md"


def notebook_path(root: Path, chapter: str) -> Path:
    return Path(root) / "book" / f"{chapter}.ipynb"


def read_source(root: Path, chapter: str):
    """The chapter's MyST source as an nbformat notebook (no outputs)."""
    import jupytext

    path = source_path(root, chapter)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: every chapter's source is book/<chapter>.md "
                                "(a Jupytext MyST notebook paired with its .ipynb).")
    return jupytext.read(path)


def _source(cell) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(type, source, tags)`` of every cell but the one papermill injects; sources stripped
    of trailing whitespace (the two formats differ only there)."""
    return [(c["cell_type"], _source(c).rstrip(), tuple(t for t in _tags(c) if t != HIDDEN_IN_HTML))
            for c in nb["cells"] if INJECTED not in _tags(c)]


def code_hash(nb) -> str:
    """SHA-256 of the code cells' sources and tags, in order (markdown and outputs excluded)."""
    code = [[src, list(tags)] for kind, src, tags in cells(nb) if kind == "code"]
    return hashlib.sha256(json.dumps(code, ensure_ascii=False).encode()).hexdigest()


def pair_problem(root: Path, chapter: str) -> str | None:
    """Why ``book/<chapter>.ipynb`` does not hold the cells of ``book/<chapter>.md``, or None."""
    nb_path = notebook_path(root, chapter)
    if not nb_path.is_file():
        return f"book/{chapter}.ipynb is missing: run make sync (or make book)"
    source = cells(read_source(root, chapter))
    paired = cells(json.loads(nb_path.read_text()))
    if source == paired:
        return None
    for i, (a, b) in enumerate(zip(source, paired)):
        if a != b:
            return (f"book/{chapter}.ipynb is out of sync with book/{chapter}.md from cell {i} "
                    f"({a[0]} {a[1][:60]!r} vs {b[0]} {b[1][:60]!r}): run make sync, then re-execute it")
    return (f"book/{chapter}.ipynb has {len(paired)} cells, book/{chapter}.md {len(source)}: "
            "run make sync, then re-execute it")


def sync(root: Path, chapter: str) -> None:
    """Put the ``.md``'s cells into the ``.ipynb``, keeping the outputs of code cells whose
    source is unchanged (``jupytext --update --to ipynb``)."""
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    nb = read_source(root, chapter)
    target = notebook_path(root, chapter)
    if target.is_file():
        old = jupytext.read(target)
        old.cells = [c for c in old.cells if INJECTED not in _tags(c)]
        nb = combine_inputs_with_outputs(nb, old, fmt="md:myst")
    jupytext.write(nb, target)


def parameters(root: Path, chapter: str) -> dict:
    """The chapter's parameters as papermill infers them from its source (name → details)."""
    import tempfile

    import nbformat
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{chapter}.ipynb"
        nbformat.write(read_source(root, chapter), path)
        return pm.inspect_notebook(str(path))


def execute(root: Path, chapter: str, parameters: dict, output: Path, **papermill_kwargs) -> Path:
    """Execute the chapter's ``.md`` source with papermill (kernel in ``book/``) into ``output``
    (an ``.ipynb``); the injected-parameters cell is hidden from the HTML. In a terminal,
    papermill's bar shows the chapter and the cell executing."""
    import nbformat
    import papermill as pm

    from .progress import progress_enabled

    nb = read_source(root, chapter)
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill_kwargs.setdefault("progress_bar", {"desc": chapter} if progress_enabled() else False)
    pm.execute_notebook(nb, str(output), parameters=parameters, cwd=str(Path(root) / "book"),
                        kernel_name="python3", **papermill_kwargs)
    executed = nbformat.read(output, as_version=4)
    for cell in executed.cells:
        tags = _tags(cell)
        if INJECTED in tags and HIDDEN_IN_HTML not in tags:
            cell.setdefault("metadata", {})["tags"] = tags + [HIDDEN_IN_HTML]
    nbformat.write(executed, output)
    return output


def main(argv=None) -> int:
    """``python -m mamlscope.notebooks {sync,check} [chapters]`` (``make sync``)."""
    import argparse

    from .paths import project_root
    from .rerun import chapters, summary_pages

    root = project_root() or Path.cwd()
    pages = chapters(root) + summary_pages(root)
    parser = argparse.ArgumentParser(prog="python -m mamlscope.notebooks")
    parser.add_argument("action", choices=["sync", "check"],
                        help="sync: copy each .md's cells into its .ipynb (outputs of unchanged code cells kept); "
                             "check: list the pairs out of sync")
    parser.add_argument("pages", nargs="*", help=f"default: all ({', '.join(pages)})")
    args = parser.parse_args(argv)
    problems = []
    for name in args.pages or pages:
        if args.action == "sync":
            sync(root, name)
        problem = pair_problem(root, name)
        if problem:
            problems.append(problem)
    print("\n".join(problems) or f"{len(args.pages or pages)} pairs in sync")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
