"""The whole book as one graph on Dask: the runs, the chapters that need them, the summary pages.

    python -m mamlscope rerun --train --html     # what ``make book`` does

Each untrained run of the plan (:mod:`mamlscope.training.plan`) is a task; each chapter is a task that
depends on the runs it uses, and executes in its own kernel (:meth:`Job.execute_page <mamlscope.publish.rerun.Job.execute_page>`:
atomic, the committed notebook kept on failure) as soon as they are trained; the summary pages
(the scorecard) depend on every chapter. Every task holds the worker resource ``run=1``, so a
worker trains one run *or* executes one chapter at a time, with the same torch thread count
(:data:`mamlscope.training.schedule.BOOK_THREADS`): what a chapter prints does not depend on what else ran
beside it, nor on the number of workers.

Order: among the ready tasks the one with the longest path to the end of the book goes first
(its *rank*: its own estimated seconds plus the longest rank among the tasks that wait for it),
so the run that the most chapter time hangs on (the 20-way MAML run) starts first.
:func:`predict` simulates that list schedule on the workers to print the book's predicted wall time
before it starts.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mamlscope.paths import atomic_write, cache_root, git_commit, machine
from mamlscope.progress import progress_enabled
from mamlscope.publish.execution_report import update_panel
from mamlscope.publish.notebooks import BOOK_PROFILE
from mamlscope.training.schedule import TOPIC, Display, train_task

# Seconds a page took when no measurement of it exists (the summary pages take seconds).
DEFAULT_PAGE_SECONDS = 60.0

# How much longer a task takes beside another than alone, both at one thread. The estimates are
# timed alone; measured on the 2-core Intel Xeon (2026-12-01, the book from an empty cache): the
# 20-way MAML run took 32.2 min in the graph against 26.3 min alone, and the two workers did
# 148.3 worker-min where the estimates summed to 112 (1.2–1.4× per task). A property of the
# machine (shared cache, memory bandwidth), not of the code: another machine may differ.
CONTENTION = 1.3


@dataclass
class Node:
    key: str                     # Dask key: "train-<run>" or "page-<name>"
    kind: str                    # "run" or "page"
    name: str                    # the run's directory name, or the page's
    seconds: float               # estimated seconds on one worker
    deps: list = field(default_factory=list)   # keys this node waits for
    rank: float = 0.0


def page_seconds(job, name: str) -> float:
    """The estimated seconds of executing page ``name``: its last execution's wall time from the
    execution report (``<results>/<profile>/execution/<name>.json``, written by
    :func:`record_execution`), else (at the book's profile) papermill's duration in its committed
    notebook, else :data:`DEFAULT_PAGE_SECONDS`."""
    for folder in (job.results_dir, job.root / "book" / "results"):
        path = Path(folder) / job.profile / "execution" / f"{name}.json"
        if path.is_file():
            return float(json.loads(path.read_text())["seconds"])
    if job.profile != BOOK_PROFILE:
        return DEFAULT_PAGE_SECONDS
    try:
        nb = json.loads((job.root / "book" / f"{name}.ipynb").read_text())
        return float(nb["metadata"]["papermill"]["duration"])
    except (OSError, KeyError, TypeError, ValueError):
        return DEFAULT_PAGE_SECONDS


def build(job, items, estimates, summary_pages=()) -> list[Node]:
    """The graph of ``job``'s pages and the untrained runs among ``items`` (the plan's
    :class:`~mamlscope.training.plan.Planned`, ``estimates`` their seconds), ranked."""
    nodes: dict[str, Node] = {}
    chapter_deps: dict[str, list] = {}
    for it, est in zip(items, estimates):
        if it.status == "trained":
            continue
        key = f"train-{it.dir.name}"
        nodes[key] = Node(key, "run", it.dir.name, float(est))
        for chapter in it.chapters:
            chapter_deps.setdefault(chapter, []).append(key)
    chapters = [p for p in job.pages if p not in summary_pages]
    for name in chapters:
        key = f"page-{name}"
        nodes[key] = Node(key, "page", name, page_seconds(job, name), list(chapter_deps.get(name, [])))
    for name in job.pages:
        if name in summary_pages:
            key = f"page-{name}"
            nodes[key] = Node(key, "page", name, page_seconds(job, name), [f"page-{c}" for c in chapters])
    _rank(nodes)
    return list(nodes.values())


def _rank(nodes: dict[str, Node]) -> None:
    children: dict[str, list] = {k: [] for k in nodes}
    for n in nodes.values():
        for d in n.deps:
            children[d].append(n.key)
    done: dict[str, float] = {}

    def rank(key: str) -> float:
        if key not in done:
            done[key] = nodes[key].seconds + max((rank(c) for c in children[key]), default=0.0)
        return done[key]

    for key in nodes:
        nodes[key].rank = rank(key)


def predict(nodes: list[Node], workers: int, contention: float = 1.0) -> float:
    """Wall seconds of the list schedule of ``nodes`` on ``workers`` workers (highest rank of the
    ready tasks first, as Dask's priorities ask), from the nodes' estimates. With more than one
    worker each task is taken ``contention`` times longer (:data:`CONTENTION`): nearly always
    another runs beside it (the book's packing was 97%), so the tail alone is slightly overpriced."""
    if contention < 1:
        raise ValueError(f"contention={contention}: a task does not run faster beside another; use ≥ 1.")
    remaining = {n.key: n for n in nodes}
    finished: dict[str, float] = {}
    free = [0.0] * max(1, workers)
    now = 0.0
    running: list[tuple[float, str]] = []
    while remaining or running:
        ready = sorted((n for n in remaining.values() if all(d in finished for d in n.deps)),
                       key=lambda n: -n.rank)
        idle = [i for i, t in enumerate(free) if t <= now]
        for i, n in zip(idle, ready):
            start = max([now] + [finished[d] for d in n.deps])
            free[i] = start + n.seconds * (contention if len(free) > 1 else 1.0)
            running.append((free[i], n.key))
            del remaining[n.key]
        if not running:
            raise ValueError("the graph has a cycle or a dependency on no task")
        running.sort()
        end, key = running.pop(0)
        finished[key] = end
        now = end
    return max(finished.values(), default=0.0)


def page_task(job, name: str, *_deps) -> dict:
    """Execute page ``name`` of ``job`` (on a worker; ``_deps`` are the runs' results, which Dask
    hands over once they are trained)."""
    began = time.time()
    out = job.execute_page(name)
    return {"page": name, "out": str(out), "seconds": time.time() - began, "began": began, "ended": time.time()}


def record_execution(job, name: str, seconds: float, threads: int, workers: int) -> Path:
    """Write ``<results>/<profile>/execution/<name>.json``: when page ``name`` executed, how long
    it took, on what machine, commit and thread count (the book's execution report)."""

    commit = git_commit(missing="", cwd=job.root)
    entry = {"page": name, "profile": job.profile, "seconds": round(seconds, 1), "threads": threads,
             "workers": workers, "machine": machine(), "commit": commit,
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = Path(job.results_dir) / job.profile / "execution" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n"))
    if job.in_book:  # the chapter's "rerun this chapter" panel shows the time just measured

        update_panel(job.root, name, job.profile, job.results_dir)
    return path


def run(job, client, items, estimates, *, threads: int, device: str = "cpu", summary_pages=(),
        workers: int, progress: bool | None = None, out=None, root=None) -> dict:
    """Submit the graph of ``job`` to ``client`` and wait: runs train, chapters execute once their
    runs are trained, summary pages last. Prints one line per finished run and page. Returns
    ``{"pages": {name: seconds}, "runs": {name: seconds}, "failed": {name: error}, "skipped":
    {page: why}}``; a failed run or page does not stop the tasks that do not depend on it."""

    out = out or sys.stdout
    nodes = build(job, items, estimates, summary_pages)
    by_key = {n.key: n for n in nodes}
    runs = [(it, est) for it, est in zip(items, estimates) if it.status != "trained"]
    display = Display([(it.dir.name, it.done, it.config.steps, est) for it, est in runs], workers=workers,
                      threads=threads, enable=_progress(progress), out=out)
    latest: dict = {}
    client.subscribe_topic(TOPIC, lambda e: latest.__setitem__(e[1]["run"], (e[1]["done"], e[1]["total"])))
    cache = str(cache_root(root))
    futures = {}
    for it, _ in runs:
        key = f"train-{it.dir.name}"
        futures[key] = client.submit(train_task, it.config, cache, device, threads, key=key,
                                     resources={"run": 1}, priority=int(by_key[key].rank))
    for n in nodes:  # pages in job order: a page's dependencies are submitted before it
        if n.kind == "page":
            futures[n.key] = client.submit(page_task, job, n.name, *[futures[d] for d in n.deps], key=n.key,
                                           resources={"run": 1}, priority=int(n.rank), pure=False)
    names = {f: k for k, f in futures.items()}
    report = {"pages": {}, "runs": {}, "failed": {}, "skipped": {}}
    start = time.perf_counter()
    try:
        pending = set(futures.values())
        while pending:
            for fut in [f for f in pending if f.done()]:
                pending.discard(fut)
                node = by_key[names[fut]]
                if fut.status == "finished":
                    result = fut.result()
                    if node.kind == "run":
                        report["runs"][node.name] = result["seconds"]
                        display.finished(node.name, result)
                    else:
                        report["pages"][node.name] = result["seconds"]
                        record_execution(job, node.name, result["seconds"], threads, workers)
                        print(f"{node.name}: executed in {result['seconds']:.0f} s "
                              f"({(time.perf_counter() - start) / 60:.1f} min into the book)", file=out, flush=True)
                else:
                    err = fut.exception()
                    if node.kind == "run":
                        display.failed(node.name, err)
                        report["failed"][node.name] = err
                    elif any(by_key[d].name in report["failed"] for d in node.deps):
                        waited = [by_key[d].name for d in node.deps if by_key[d].name in report["failed"]]
                        report["skipped"][node.name] = f"not executed: {', '.join(waited)} failed"
                    else:
                        report["failed"][node.name] = err
            display.update(latest)
            time.sleep(0.2 if pending else 0)
    finally:
        client.unsubscribe_topic(TOPIC)
        display.close()
    return report


def _progress(progress):
    return progress_enabled(progress)
