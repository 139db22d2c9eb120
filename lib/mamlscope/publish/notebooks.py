"""Chapters as Jupytext pairs: ``book/<chapter>.md`` (MyST Markdown) is the source people edit
and review; ``book/<chapter>.ipynb`` carries the outputs that the HTML shows and papermill writes.

* :func:`execute` runs a chapter *from its Markdown source* with papermill, so an edit to the
  ``.md`` is what runs; the cell papermill injects (tag ``injected-parameters``) is tagged
  ``remove-cell`` so the HTML does not show it (the parameters stay visible in the notebook).
  It is atomic: the output notebook is replaced only when every cell ran; a failed notebook is
  kept elsewhere (:class:`ChapterFailed` says where).
* :func:`pair_problem` says whether the ``.ipynb`` still holds the ``.md``'s cells (the injected
  cell aside); :func:`sync` copies the ``.md``'s cells into the ``.ipynb`` and keeps the outputs
  of unchanged code cells (``jupytext --update``), which is what Jupyter does on save.
* :func:`code_hash` fingerprints the code cells only: the staleness stamp of a regression golden,
  so a prose fix does not stale it.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
import yaml

from mamlscope.paths import atomic_write, cache_root, project_root
from mamlscope.progress import progress_enabled
from mamlscope.training.schedule import BOOK_THREADS

INJECTED = "injected-parameters"
HIDDEN_IN_HTML = "remove-cell"


SUMMARY_PAGES = ("scorecard",)  # notebooks that read the chapters' results: executed last
BOOK_PROFILE = "cpu"             # the profile whose numbers book/ shows


# -- the table of contents --------------------------------------------------------------------
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
    return [Path(f).name for f in files if _is_notebook(root / f"{f}.md")]


def _is_notebook(md: Path) -> bool:
    """A MyST notebook (front matter with a kernelspec), not a plain Markdown page."""
    if not md.is_file():
        return False
    text = md.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("\n---", 1)[0]


def chapter_title(chapter: str, book_dir=None) -> str:
    """The first ``# heading`` of ``<book>/<chapter>.ipynb``, else the chapter's name."""
    book = Path(book_dir) if book_dir is not None else (project_root() or Path.cwd()) / "book"
    try:
        nb = json.loads((book / f"{chapter}.ipynb").read_text())
    except (OSError, ValueError):
        return chapter
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            m = re.search(r"^#\s+(.+?)\s*$", source, flags=re.MULTILINE)
            if m:
                return m.group(1)
    return chapter


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


def carry(root: Path, chapter: str) -> None:
    """Carry the ``.md``'s prose and cell tags into the executed ``.ipynb`` in place, cell by
    cell, keeping every output and the execution's metadata (the injected parameters included):
    for edits that change no code, which need no re-execution. Refuses, changing nothing, when
    the cells do not line up or a code cell's source differs (then: sync, and re-execute)."""
    import nbformat

    source = read_source(root, chapter)
    path = notebook_path(root, chapter)
    nb = nbformat.read(path, as_version=4)
    executed = [c for c in nb.cells if INJECTED not in _tags(c)]
    if len(executed) != len(source.cells) or any(
            a.cell_type != b.cell_type or (a.cell_type == "code" and _source(a).rstrip() != _source(b).rstrip())
            for a, b in zip(executed, source.cells)):
        raise ValueError(f"book/{chapter}.ipynb and its .md differ in code or in cells: carry moves prose "
                         "and tags only; run make sync and re-execute the chapter")
    for old, new in zip(executed, source.cells):
        if old.cell_type == "code":
            hidden = [t for t in _tags(old) if t == HIDDEN_IN_HTML and t not in _tags(new)]
            old.metadata["tags"] = _tags(new) + hidden
        else:
            old.source = new.source

    atomic_write(path, lambda tmp: nbformat.write(nb, str(tmp)))


def parameters(root: Path, chapter: str) -> dict:
    """The chapter's parameters as papermill infers them from its source (name → details)."""

    import nbformat
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{chapter}.ipynb"
        nbformat.write(read_source(root, chapter), path)
        return pm.inspect_notebook(str(path))


class ChapterFailed(RuntimeError):
    """A chapter did not execute to its end. ``str()`` is one line: the chapter, the cell and the
    error; ``failed`` is where the partly executed notebook was kept (None if none was written)."""

    def __init__(self, chapter: str, reason: str, failed: Path | None):
        self.chapter, self.reason, self.failed = chapter, reason, failed
        super().__init__(f"{chapter} failed: {reason}")

    def __reduce__(self):  # picklable, so that a Dask worker can hand it back (mamlscope.publish.graph)
        return type(self), (self.chapter, self.reason, self.failed)


def _reason(err: BaseException) -> str:
    """One line for an execution error: the cell and the exception's last line."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        cell = getattr(err, "exec_count", None)
        where = f"in cell [{cell}]" if cell else "in a cell"
        return f"{where}: {ename}: {evalue}".rstrip(": ")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


@contextmanager
def _environ(env: dict | None):
    """``os.environ`` updated with ``env`` (None values unset) for the kernel started inside."""
    old = {k: os.environ.get(k) for k in env or {}}
    try:
        for k, v in (env or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kill_new_children(before: set[int], grace: float = 3.0) -> None:
    """Terminate the processes this one started since ``before`` (the kernel and whatever it
    started), then kill those still alive after ``grace`` seconds. The kernel runs in its own
    process group, so Ctrl-C in a terminal does not reach it."""

    me = psutil.Process()
    procs = [p for p in me.children(recursive=True) if p.pid not in before]
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


def _quiet_interrupted_cell() -> None:
    """After Ctrl-C, the interrupted cell's nbclient tasks stay on this thread's event loop; with
    the kernel stopped they end in ``DeadKernelError`` (or are dropped still pending) whenever the
    loop next runs or they are collected, and asyncio would print that as a traceback. Silence
    those two reports on this loop: the interruption is reported once, by the caller."""
    from jupyter_core.utils import ensure_event_loop
    from nbclient.exceptions import DeadKernelError

    loop = ensure_event_loop()
    previous = loop.get_exception_handler()

    def handler(loop, context):
        task = context.get("task") or context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if isinstance(context.get("exception"), DeadKernelError) or (
                context.get("exception") is None and "NotebookClient" in getattr(coro, "__qualname__", "")):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _hide_injected(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = _tags(cell)
        if INJECTED in tags and HIDDEN_IN_HTML not in tags:
            cell.setdefault("metadata", {})["tags"] = tags + [HIDDEN_IN_HTML]
    nbformat.write(nb, path)


def kernel_environ(threads: int | None = None) -> dict:
    """The thread counts of a chapter's kernel: :data:`mamlscope.training.schedule.BOOK_THREADS`, the
    count its runs were trained with, so that what a chapter measures (float32 sums) is the same
    on any core count."""

    n = str(threads or BOOK_THREADS)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def execute(root: Path, chapter: str, parameters: dict, output: Path, *, failed_dir: Path | None = None,
            env: dict | None = None, **papermill_kwargs) -> Path:
    """Execute the chapter's ``.md`` source with papermill (kernel in ``book/``, its environment
    updated with ``env``) and write the executed notebook to ``output`` (an ``.ipynb``), with the
    injected-parameters cell hidden from the HTML. In a terminal, papermill's bar shows the
    chapter and the cell executing.

    Atomic: the notebook is executed into a temporary file, which replaces ``output`` only when
    every cell ran. Otherwise ``output`` is left as it was (byte for byte), the partly executed
    notebook is kept as ``failed_dir/<chapter>.ipynb`` (default: ``<cache root>/failed``) and
    :class:`ChapterFailed` says where. Ctrl-C (``KeyboardInterrupt``) also stops the kernel and
    whatever it was training; a training run resumes from its last checkpoint next time."""
    import papermill as pm

    nb = read_source(root, chapter)
    output = Path(output)
    failed_dir = Path(failed_dir) if failed_dir is not None else cache_root() / "failed"
    papermill_kwargs.setdefault("progress_bar", {"desc": chapter} if progress_enabled() else False)
    papermill_kwargs.setdefault("log_output", False)
    # the kernel's own log: off (its warning about TCP on localhost, its note on interrupts)
    papermill_kwargs.setdefault("extra_arguments", ["--IPKernelApp.log_level=CRITICAL"])
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with tempfile.TemporaryDirectory(prefix=f"mamlscope-{chapter}-") as tmp:
        staged = Path(tmp) / f"{chapter}.ipynb"
        try:
            with _environ(env), _quiet_kernel_warnings():
                pm.execute_notebook(nb, str(staged), parameters=parameters, cwd=str(Path(root) / "book"),
                                    kernel_name="python3", **papermill_kwargs)
        except KeyboardInterrupt:
            _kill_new_children(before)
            _quiet_interrupted_cell()
            raise
        except Exception as err:
            _kill_new_children(before, grace=1.0)
            failed = None
            if staged.is_file():
                failed_dir.mkdir(parents=True, exist_ok=True)
                failed = failed_dir / f"{chapter}.ipynb"
                _hide_injected(staged)
                shutil.copyfile(staged, failed)
            raise ChapterFailed(chapter, _reason(err), failed) from err
        _hide_injected(staged)
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, lambda tmp_path: shutil.copyfile(staged, tmp_path))
    return output


@contextmanager
def _quiet_kernel_warnings():
    """papermill's, nbclient's and jupyter_client's log lines off: the error of a failed chapter
    is reported once, by :class:`ChapterFailed`, not as log lines and two chained tracebacks."""

    loggers = [logging.getLogger(n) for n in ("papermill", "traitlets", "jupyter_client", "nbclient")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def main(argv=None) -> int:
    """``python -m mamlscope notebooks {sync,carry,check} [chapters]`` (``make sync``)."""

    root = project_root() or Path.cwd()
    pages = chapters(root) + summary_pages(root)
    parser = argparse.ArgumentParser(prog="python -m mamlscope notebooks")
    parser.add_argument("action", choices=["sync", "carry", "check"],
                        help="sync: copy each .md's cells into its .ipynb (outputs of unchanged code cells kept); "
                             "carry: only prose and tags, in place, keeping every output and the execution's "
                             "metadata (no code changed, no re-execution needed); check: list the pairs out of sync")
    parser.add_argument("pages", nargs="*", help=f"default: all ({', '.join(pages)})")
    args = parser.parse_args(argv)
    problems = []
    for name in args.pages or pages:
        if args.action == "sync":
            sync(root, name)
        elif args.action == "carry":
            carry(root, name)
        problem = pair_problem(root, name)
        if problem:
            problems.append(problem)
    print("\n".join(problems) or f"{len(args.pages or pages)} pairs in sync")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
