"""Run the book's chapters through papermill at a chosen profile, then optionally build the HTML.

    python -m mamlscope rerun                          # every chapter, profile cpu, into book/
    python -m mamlscope rerun 01_maml_on_omniglot -p test_tasks=50 --output-dir /tmp/out
    python -m mamlscope rerun --profile smoke --html   # → _build/smoke/: notebooks, records, HTML
    python -m mamlscope rerun --profile paper -p device=cuda --html   # the papers' settings

``-p name=value`` sets a parameter the chapters declare (``papermill --help-notebook
book/<chapter>.ipynb``); values are parsed as YAML (``3`` → int, ``null`` → None). Chapters are
the notebooks named in ``_toc.yml``, in order; summary pages (:data:`~mamlscope.publish.notebooks.SUMMARY_PAGES`, the
scorecard) gather what the chapters recorded, so they run after them, with the parameters they
declare. A chapter is executed from its source, ``book/<chapter>.md`` (:mod:`mamlscope.publish.notebooks`).

Nothing a reader has is damaged:

* **Everything is checked before any kernel starts**: the profile, the chapters, every
  parameter of every chapter to run (name, type from its annotation, range:
  :mod:`mamlscope.publish.parameters`), the device, the datasets and the options. The first line of the
  error says what is wrong and how to fix it.
* **Atomic**: each chapter executes into a temporary file that replaces its notebook only when
  every cell ran, and its claim records are copied into the results folder only then. A failed
  chapter's notebook is kept under ``<cache root>/failed/<profile>/``; the command says where.
* **Only the book's profile (cpu) writes into book/.** Another profile writes its notebooks and
  records under ``_build/<profile>/`` (or ``--output-dir``), unless ``--in-place`` asks for
  book/. ``--html`` then builds that folder's own book.
* **The same digits on any machine's core count**: every kernel computes with
  :data:`mamlscope.training.schedule.BOOK_THREADS` torch threads, as every run was trained.
* **Ctrl-C stops the kernel** and what it was training; training resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from mamlscope.core import data
from mamlscope.core.meta import estimate_seconds
from mamlscope.paths import atomic_write, cache_root, machine, project_root
from mamlscope.publish import execution_report, graph, notebooks, parameters as checks
from mamlscope.publish.notebooks import BOOK_PROFILE, SUMMARY_PAGES, chapters, kernel_environ, summary_pages
from mamlscope.training import plan, schedule
from mamlscope.training.profiles import PROFILES, load, resolve_device
from mamlscope.verdict.results import results_root


class UsageError(Exception):
    """Bad input, found before any work started; its message says how to fix it."""


def _parse_parameters(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"-p {pair!r}: use name=value, e.g. -p test_tasks=100")
        name, value = pair.split("=", 1)
        try:
            params[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"-p {pair!r}: the value is not valid YAML ({err.problem})") from None
    return params


@dataclass
class Job:
    """What a rerun will do, decided and checked before any kernel starts."""
    root: Path
    profile: str
    pages: list[str]                      # in execution order (summary pages last)
    parameters: dict[str, dict]           # page → its parameters
    notebook_dir: Path                    # where the executed notebooks go
    results_dir: Path                     # the results root its records go to
    in_book: bool                         # notebook_dir is book/
    html: bool = False
    notes: list[str] = field(default_factory=list)

    def execute_page(self, name: str) -> Path:
        """:func:`execute_page` of this job (what the execution graph's page tasks call)."""
        return execute_page(self, name)

    @property
    def failed_dir(self) -> Path:
        return cache_root() / "failed" / self.profile


#: Profiles whose executed chapters the book ships beside its own (``book/<profile>/``), with
#: their records beside the book's (``book/results/<profile>/``): the long regime's.
BESIDE_BOOK = ("long",)


def prepare(args, root: Path) -> Job:
    """Check everything the rerun needs, without starting a kernel; raise :class:`UsageError`."""

    params = _parse_parameters(args.parameter)
    profile = params.pop("profile", None)
    if args.profile is not None and profile is not None and profile != args.profile:
        raise UsageError(f"--profile {args.profile} and -p profile={profile} disagree: give one of them")
    profile = args.profile if args.profile is not None else (profile if profile is not None else BOOK_PROFILE)
    if profile not in PROFILES:
        try:
            load(profile)  # says why a profile that exists only once chosen (long) is not there yet
        except ValueError as err:
            raise UsageError(str(err)) from None

    known, summaries = chapters(root), summary_pages(root)
    unknown = [name for name in args.chapters if name not in known + summaries]
    if unknown:
        raise UsageError(f"unknown chapter(s) {', '.join(map(repr, unknown))}: chapters are "
                         f"{', '.join(known + summaries)}")
    named = bool(args.chapters)
    # the summary pages read every chapter's records: they follow any chapter that runs, so that
    # none is ever older than a record it shows
    named_chapters = [name for name in args.chapters if name in known]
    pages = list(dict.fromkeys(args.chapters + (summaries if named_chapters else []))) if named else known + summaries
    pages = sorted(pages, key=lambda name: name in summaries)

    if args.in_place and args.output_dir is not None:
        raise UsageError("--in-place and --output-dir disagree: give one of them")
    in_book = args.output_dir is None and (profile == BOOK_PROFILE or args.in_place)
    notes = []
    if in_book:
        notebook_dir = root / "book"

        results_dir = results_root()
    elif args.output_dir is None and profile in BESIDE_BOOK:
        notebook_dir = root / "book" / profile  # its chapters beside the book's, its records beside theirs
        results_dir = results_root()
    else:
        notebook_dir = (Path(args.output_dir) if args.output_dir is not None else root / "_build" / profile)
        notebook_dir = notebook_dir.expanduser().resolve()
        if notebook_dir == (root / "book").resolve():
            raise UsageError(f"--output-dir {args.output_dir} is book/ itself: use --in-place to write there")
        results_dir = notebook_dir / "results"
        if args.output_dir is None:
            notes.append(f"profile {profile} is not the book's ({BOOK_PROFILE}): notebooks and records go to "
                         f"{_shown(notebook_dir, root)}/ (--in-place writes into book/)")

    # every parameter of every page, checked against what that page declares
    declared = {name: notebooks.parameters(root, name) for name in pages}
    per_page = {name: {} for name in pages}
    problems = []
    for key, value in params.items():
        takers = [n for n in pages if key in declared[n]]
        content = [n for n in pages if n not in summaries]
        refusing = [n for n in content if key not in declared[n]] if named else []
        if not takers or refusing:
            where = refusing or pages
            offer = sorted({p for n in where for p in declared[n]} - {"profile"})
            others = [n for n in known if n not in where
                      and key in (declared.get(n) or notebooks.parameters(root, n))]
            hint = (f"; {', '.join(others)} take(s) it: name the chapter" if others else
                    f"; {'they take' if len(where) > 1 else 'it takes'} {', '.join(offer)}")
            problems.append(f"-p {key}: {', '.join(where)} {'have' if len(where) > 1 else 'has'} no "
                            f"parameter {key!r}{hint}")
            continue
        for n in takers:
            per_page[n][key] = value
        if not named and len(takers) < len(content):
            notes.append(f"-p {key} goes to {', '.join(takers)} (the chapters that take it)")
    for name in pages:
        problems += checks.check(declared[name], per_page[name], name)
        if "profile" in declared[name]:
            per_page[name]["profile"] = profile
    if problems:
        raise UsageError("\n".join(problems))

    devices = {v for p in per_page.values() for k, v in p.items() if k == "device"}
    for device in devices:
        try:
            resolve_device(device)
        except (ValueError, RuntimeError) as err:
            raise UsageError(f"-p device={device}: {err}") from None

    P = load(profile)
    datasets = {getattr(cfg, "dataset", "omniglot") for name in pages if name in plan.CHAPTER_RUNS
                for cfg in plan.chapter_runs(P, name)}
    try:
        data.check_available(datasets)
    except data.DataNotFoundError as err:
        lines = str(err).splitlines()
        raise UsageError("\n".join([lines[0]] + lines[1:])) from None
    return Job(root, profile, pages, per_page, notebook_dir, results_dir, in_book, args.html, notes)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def execute_page(job: Job, name: str) -> Path:
    """Execute one page atomically. Its kernel records into a staging copy of the results
    (``job.results_dir``'s, over the book's own: a chapter may read records, such as the recipe
    study); the records it wrote or changed reach ``job.results_dir`` only if every cell ran,
    each replaced atomically."""

    final = job.results_dir / job.profile
    with tempfile.TemporaryDirectory(prefix="mamlscope-results-") as tmp:
        staged = Path(tmp) / job.profile
        staged.mkdir(parents=True)
        for seed in (results_root() / job.profile, final):
            if seed.is_dir():
                shutil.copytree(seed, staged, dirs_exist_ok=True)
        before = {p: p.read_bytes() for p in staged.rglob("*") if p.is_file()}
        out = notebooks.execute(job.root, name, job.parameters[name], job.notebook_dir / f"{name}.ipynb",
                                failed_dir=job.failed_dir, env={"MAMLSCOPE_RESULTS": tmp, **kernel_environ()})
        for path in sorted(staged.rglob("*")):
            if path.is_file() and before.get(path) != path.read_bytes():
                target = final / path.relative_to(staged)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, lambda tmp_path, src=path: shutil.copyfile(src, tmp_path))
    return out


def run_graph(job: Job, args, root: Path) -> int:
    """``--train``: the runs and pages of ``job`` as one graph on a local Dask cluster
    (:mod:`mamlscope.publish.graph`); prints the predicted wall time first and the measured one last."""
    from distributed import Client

    threads = args.threads or schedule.BOOK_THREADS

    torch.set_num_threads(threads)  # the estimates are timed at the workers' thread count
    chapters_with_runs = [p for p in job.pages if p in plan.CHAPTER_RUNS]
    items = plan.planned(load(job.profile), chapters_with_runs) if chapters_with_runs else []
    todo = [it for it in items if it.status != "trained"]
    if todo:
        print(f"estimating {len(todo)} runs (a few timed steps each) …", flush=True)
    estimates = [estimate_seconds(it.config) * (1 - it.done / it.config.steps) if it.status != "trained" else 0.0
                 for it in items]
    workers = schedule.default_workers(threads) if args.workers == "auto" else int(args.workers)
    nodes = graph.build(job, items, estimates, SUMMARY_PAGES)
    alone = graph.predict(nodes, workers)
    predicted = graph.predict(nodes, workers, graph.CONTENTION)
    beside = (f" ({alone / 60:.1f} if tasks ran beside each other as fast as alone; the 2-core Xeon measured "
              f"{graph.CONTENTION:g}× slower)") if workers > 1 else ""
    print(f"the book: {len(todo)} runs to train and {len(job.pages)} pages on {workers} worker(s) × {threads} "
          f"thread(s); predicted {predicted / 60:.1f} min on this machine ({machine()}){beside}", flush=True)
    start = time.perf_counter()
    cluster = schedule.local_cluster(workers, threads, dashboard=args.dashboard)
    if args.dashboard:
        print(f"Dask dashboard: {cluster.dashboard_link}", flush=True)
    try:
        with Client(cluster) as client:
            report = graph.run(job, client, items, estimates, threads=threads, summary_pages=SUMMARY_PAGES,
                               workers=workers)
    finally:
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)  # "still alive … killing" at close
        cluster.close()
    minutes = (time.perf_counter() - start) / 60
    trained = sum(report["runs"].values()) / 60
    executed = sum(report["pages"].values()) / 60
    print(f"the book took {minutes:.1f} min (predicted {predicted / 60:.1f}): {trained:.1f} worker-min training "
          f"{len(report['runs'])} runs, {executed:.1f} worker-min executing {len(report['pages'])} pages", flush=True)
    for name, err in report["failed"].items():
        print(f"error: {err}", file=sys.stderr)
        if isinstance(err, notebooks.ChapterFailed):
            if err.failed is not None:
                print(f"  the failed notebook, with its traceback: {err.failed}", file=sys.stderr)
            print(f"  {_shown(job.notebook_dir / (name + '.ipynb'), root)} is unchanged, and so are its records",
                  file=sys.stderr)
    for name, why in report["skipped"].items():
        print(f"{name}: {why}", file=sys.stderr)
    if job.in_book and job.profile == BOOK_PROFILE and report["pages"]:
        page = execution_report.render_page(job.profile, root=root)
        atomic_write(root / "book" / "execution.md", lambda p: p.write_text(page))
        print("book/execution.md: the execution report, regenerated", flush=True)
    return 1 if report["failed"] or report["skipped"] else 0


def build_html(job: Job) -> Path:
    """The HTML book: of book/ when the notebooks went there, else of a copy of the book's
    sources holding the notebooks just executed (pages not executed come from book/)."""
    jb = str(Path(sys.executable).parent / "jupyter-book")
    if job.in_book:
        subprocess.run([jb, "build", str(job.root), "--warningiserror", "--keep-going"], check=True)
        return job.root / "_build" / "html" / "index.html"
    src = job.notebook_dir / "_book"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(job.root / "book", src / "book", ignore=shutil.ignore_patterns("results", ".*"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copyfile(job.root / name, src / name)
    for nb in job.notebook_dir.glob("*.ipynb"):
        shutil.copyfile(nb, src / "book" / nb.name)
    subprocess.run([jb, "build", str(src), "--keep-going"], check=True)
    return src / "_build" / "html" / "index.html"


def _interrupt(signum, frame):  # SIGTERM behaves as Ctrl-C: the kernel is stopped too
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    root = Path(root or project_root() or Path.cwd())
    parser = argparse.ArgumentParser(prog="python -m mamlscope rerun", description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter in _toc.yml)")
    parser.add_argument("--profile", default=None, help=f"smoke, cpu, paper or paper-dry (default: {BOOK_PROFILE})")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write the executed notebooks (and results/<profile>/) here instead")
    parser.add_argument("--in-place", action="store_true",
                        help=f"write into book/ even at a profile other than {BOOK_PROFILE}")
    parser.add_argument("--html", action="store_true",
                        help="build the HTML afterwards (of book/, or of the output folder's own copy)")
    parser.add_argument("--train", action="store_true",
                        help="the whole book as one graph on Dask: train the pages' missing runs and execute "
                             "each chapter as soon as its runs are trained (mamlscope.publish.graph)")
    parser.add_argument("--workers", default="auto",
                        help="with --train: concurrent runs and chapters (default auto: cores ÷ threads)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of every run and kernel (default: mamlscope.training.schedule.BOOK_THREADS, "
                             "the count the book's numbers were computed with)")
    parser.add_argument("--dashboard", default=None, metavar="ADDRESS",
                        help="with --train: serve Dask's dashboard at ADDRESS (127.0.0.1:8787 for this machine; "
                             "0.0.0.0:8787 opens it to the network). Default: none; the cluster listens on "
                             "127.0.0.1 only")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        print("error: --threads must be >= 1", file=sys.stderr)
        return 2
    if args.workers != "auto" and not (args.workers.isdigit() and int(args.workers) >= 1):
        print(f"error: --workers {args.workers!r}: give a number >= 1, or auto", file=sys.stderr)
        return 2
    try:
        job = prepare(args, root)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in job.notes:
        print(note, flush=True)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    name = None
    if args.train:
        try:
            code = run_graph(job, args, root)
        except KeyboardInterrupt:
            print("\ninterrupted: the chapters that were executing were left unchanged; training resumes from "
                  "its last checkpoint next time", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code or not job.html:
            return code
        try:
            print(f"HTML: {_shown(build_html(job), root)}", flush=True)
        except subprocess.CalledProcessError as err:
            print(f"error: the HTML build failed (exit {err.returncode}); the notebooks were written", file=sys.stderr)
            return 1
        return 0
    try:
        for name in job.pages:
            start = time.perf_counter()
            out = execute_page(job, name)
            seconds = time.perf_counter() - start
            graph.record_execution(job, name, seconds, schedule.BOOK_THREADS, workers=1)  # the report's entry
            print(f"{name}: executed in {seconds:.0f} s → {_shown(out, root)}", flush=True)
        name = None
        if job.html:
            index = build_html(job)
            print(f"HTML: {_shown(index, root)}", flush=True)
    except notebooks.ChapterFailed as err:
        where = _shown(job.notebook_dir / f"{err.chapter}.ipynb", root)
        print(f"error: {err}", file=sys.stderr)
        if err.failed is not None:
            print(f"  the failed notebook, with its traceback: {err.failed}", file=sys.stderr)
        print(f"  {where} is unchanged, and so are its records; chapters executed before it were kept",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if name is not None:
            print(f"\ninterrupted in {name}: its kernel was stopped; {_shown(job.notebook_dir / (name + '.ipynb'), root)} "
                  "is unchanged; a training run resumes from its last checkpoint next time", file=sys.stderr)
        return 130
    except subprocess.CalledProcessError as err:
        print(f"error: the HTML build failed (exit {err.returncode}); the notebooks were written", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
