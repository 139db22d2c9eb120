"""Train the runs the chapters need, concurrently, on Dask distributed.

    python -m mamlscope runs train --profile cpu                      # this machine, workers for its cores
    python -m mamlscope runs train --profile paper --cluster slurm \\
        --workers 8 --gpus 1 --threads-per-worker 8 --walltime 24:00:00 --memory 32GB

A ``LocalCluster`` trains on this machine; ``dask-jobqueue`` submits one batch job per worker to
SLURM, PBS, SGE or LSF (``--job-script`` prints the script it would submit). Each worker trains
one run at a time (the worker resource ``run=1``), with ``torch`` pinned to
``--threads-per-worker`` threads; the longest runs start first (priority: the plan's estimate).

What makes this safe does not depend on the engine but on the runs (:mod:`mamlscope.core.runs`):

* a run is trained by one process at a time — its lock is held while training, so a duplicate
  request (a second ``train``, a notebook asking for the same run) waits and then finds it done;
* checkpoints are written atomically into the (shared) run directory; when a worker dies, Dask
  reschedules its task (up to ``distributed.scheduler.allowed-failures`` times) and the run
  resumes from its newest checkpoint, giving the uninterrupted result;
* a run's result is a function of its configuration and the thread count, so it equals the
  sequential result at the same thread count (``final.json`` records the count).

Progress: workers report ``(step, total)`` at most once a second as Dask events (topic
:data:`TOPIC`); in a terminal the client shows one bar per training run and one for the whole
plan, weighted by the estimated cost, with an ETA; otherwise it prints a line per finished run.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass, field

import torch

from mamlscope.core.meta import attempt
from mamlscope.core.runs import run_dir
from mamlscope.paths import cache_root, data_root
from mamlscope.progress import progress_enabled

TOPIC = "mamlscope-train"
KINDS = ("local", "slurm", "pbs", "sge", "lsf")
GPU_DIRECTIVES = {"slurm": "--gres=gpu:{n}", "pbs": "-l ngpus={n}", "sge": "-l gpu={n}", "lsf": '-gpu "num={n}"'}


# -- on the worker ------------------------------------------------------------------------------
def train_task(config, root: str, device: str, threads: int) -> dict:
    """Train (or resume, or find finished) the run of ``config`` with ``threads`` torch threads;
    what it did, as a dict. Runs on a Dask worker, or anywhere."""

    torch.set_num_threads(threads)
    name = run_dir(config, root).name
    began = time.time()
    a = attempt(config, device=device, progress=False, root=root, on_step=_reporter(name))
    return {"run": name, "start": a.start, "trained": a.trained, "seconds": a.seconds, "threads": threads,
            "pid": os.getpid(), "began": began, "ended": time.time()}


def _reporter(name: str, every: float = 1.0):
    """``on_step`` that logs ``{"run", "done", "total"}`` as a Dask event at most every
    ``every`` seconds (and at the last step); a no-op outside a Dask worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [-every]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= every:
            last[0] = now
            worker.log_event(TOPIC, {"run": name, "done": done, "total": total})

    return report


# The torch threads of every local run and chapter kernel. A float32 result depends on the
# thread count (the order of its sums), not on how many runs train at once, so fixing it per run
# makes the book's digits the same on a 2-core and a 16-core machine; more cores mean more
# concurrent runs (``default_workers``), not other numbers.
BOOK_THREADS = 1


# -- clusters -------------------------------------------------------------------------------------
def default_workers(threads: int = 1) -> int:
    """Workers for this machine: its usable cores divided by the threads each worker uses."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // threads)


def worker_environ(threads: int) -> dict:
    """The environment Dask's nanny sets before starting a worker process
    (``distributed.nanny.pre-spawn-environ``): the thread counts, and *not* Dask's default
    ``MALLOC_TRIM_THRESHOLD_=65536``. That setting turns off glibc's adaptive mmap threshold, so
    every large tensor is a fresh mmap: measured here, a 20-way MAML step took 1.01 s instead of
    0.38 s (1 thread)."""
    n = str(threads)
    return {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


# Everything a local cluster opens listens on the loopback interface only: the scheduler, the
# workers, their nannies. The dashboard is off unless asked for (``--dashboard ADDRESS``).
LOOPBACK = "127.0.0.1"


def local_cluster(workers: int, threads: int = 1, dashboard: str | None = None):
    """``workers`` processes on this machine, each running one task at a time with ``threads``
    threads, reachable from this machine only. ``dashboard``: the address Dask's dashboard
    listens on (``"127.0.0.1:8787"``; ``"0.0.0.0:8787"`` opens it to the network, to watch a
    remote build); None: no dashboard."""
    import dask
    from distributed import LocalCluster

    # Dask's statistical profiler samples every worker thread's stack every 10 ms for the
    # dashboard; measured here, it is half of an idle worker's own CPU (1.0 → 0.55 s per 30 s).
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ(threads),
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host=LOOPBACK,
                            resources={"run": 1}, dashboard_address=dashboard)


@dataclass
class JobSpec:
    """What each batch job (one worker) asks the queueing system for."""
    kind: str = "slurm"
    threads: int = 8             # CPU cores per job; torch uses as many threads
    gpus: int = 1                # GPUs per job (0: none)
    memory: str = "32GB"
    walltime: str = "24:00:00"
    queue: str | None = None     # partition (SLURM) / queue
    account: str | None = None
    directives: list = field(default_factory=list)  # extra scheduler lines, e.g. "--constraint=a100"
    env: dict = field(default_factory=dict)         # exported before the worker starts


def jobqueue_cluster(spec: JobSpec, dashboard: str | None = None):
    """A dask-jobqueue cluster whose jobs each run one worker with ``spec.threads`` cores and
    ``spec.gpus`` GPUs. Nothing is submitted until it is scaled; ``.job_script()`` shows the
    script. ``MAML_DATA`` and ``MAMLSCOPE_CACHE`` must name paths on a shared filesystem."""
    import dask_jobqueue

    if spec.kind not in GPU_DIRECTIVES:
        raise ValueError(f"unknown cluster {spec.kind!r}; use one of {', '.join(KINDS)}.")
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster,
           "sge": dask_jobqueue.SGECluster, "lsf": dask_jobqueue.LSFCluster}[spec.kind]
    directives = ([GPU_DIRECTIVES[spec.kind].format(n=spec.gpus)] if spec.gpus else []) + list(spec.directives)
    # the remote nanny reads its Dask configuration from the environment (a dict, parsed by Dask)
    environ = ", ".join(f'"{k}": ' + ("None" if v is None else f'"{v}"') for k, v in worker_environ(spec.threads).items())
    env = {**spec.env, "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": "{" + environ + "}"}
    return cls(cores=spec.threads, processes=1, memory=spec.memory, walltime=spec.walltime,
               queue=spec.queue, account=spec.account, job_extra_directives=directives,
               job_script_prologue=[f"export {k}={shlex.quote(str(v))}" for k, v in env.items()],
               worker_extra_args=["--resources", "run=1"],
               # the batch jobs' workers connect back to the scheduler, so it listens on the
               # interface dask-jobqueue picks (reachable from the compute nodes); no dashboard
               scheduler_options={"dashboard_address": dashboard})


def shared_env(root=None) -> dict:
    """The data and cache roots, resolved, for workers started elsewhere."""
    return {"MAML_DATA": str(data_root()), "MAMLSCOPE_CACHE": str(cache_root(root))}


# -- on the client ----------------------------------------------------------------------------
def train_all(items, client, *, threads: int, device: str = "cpu", root=None, estimates=None,
              workers: int | None = None, progress: bool | None = None, out=None) -> list[dict]:
    """Train the :class:`mamlscope.training.plan.Planned` runs in ``items`` that are not trained yet, on
    ``client``'s workers, longest first (``estimates``: seconds of each run's untrained part,
    same order; default: its steps); returns
    what each task did, in ``items``' order. Raises :class:`RuntimeError` naming the runs that
    failed, after the others have finished."""
    root = str(cache_root(root))
    estimates = list(estimates) if estimates is not None else [float(it.config.steps) for it in items]
    todo = [(it, est) for it, est in zip(items, estimates) if it.status != "trained"]
    display = Display([(it.dir.name, it.done, it.config.steps, est) for it, est in todo],
                      workers=workers or len(client.scheduler_info()["workers"]), threads=threads,
                      enable=progress_enabled(progress), out=out)
    latest: dict[str, tuple[int, int]] = {}
    client.subscribe_topic(TOPIC, lambda event: latest.__setitem__(event[1]["run"], (event[1]["done"], event[1]["total"])))
    futures = [client.submit(train_task, it.config, root, device, threads, key=f"train-{it.dir.name}",
                             resources={"run": 1}, priority=int(est)) for it, est in todo]
    results, failed = {}, {}
    try:
        pending = dict(zip(futures, (it.dir.name for it, _ in todo)))
        while pending:
            for fut in [f for f in pending if f.done()]:
                name = pending.pop(fut)
                if fut.status == "finished":
                    results[name] = fut.result()
                    display.finished(name, results[name])
                else:
                    failed[name] = fut.exception()
                    display.failed(name, failed[name])
            display.update(latest)
            time.sleep(0.2 if pending else 0)
    finally:
        client.unsubscribe_topic(TOPIC)
        display.close()
    if failed:
        raise RuntimeError("these runs failed (fix the cause, then run the command again; "
                           "finished runs are kept, interrupted ones resume):\n"
                           + "\n".join(f"  {name}: {type(e).__name__}: {e}" for name, e in failed.items()))
    return [results[it.dir.name] for it, _ in todo]


class Display:
    """Progress of a plan: tqdm bars in a terminal, one line per finished run otherwise."""

    def __init__(self, runs, *, workers: int, threads: int, enable: bool, out=None):
        self.runs = {name: (done, total, est) for name, done, total, est in runs}
        self.enable, self.out, self.count = enable, out or sys.stdout, 0
        self.start = time.perf_counter()
        head = (f"training {len(runs)} runs on {workers} worker(s) × {threads} thread(s)"
                + ("" if runs else ": nothing to do"))
        print(head, file=self.out, flush=True)
        self.bars, self.total = {}, None
        if enable and runs:
            from tqdm import tqdm

            self.tqdm = tqdm
            self.total = tqdm(total=max(sum(est for _, _, est in self.runs.values()), 1e-9), position=0,
                              desc=f"{len(runs)} runs", file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                              bar_format="{desc}: {percentage:3.0f}% of the estimated work|{bar}| "
                                         "{elapsed} elapsed, ETA {remaining}")
            self.credit = {}

    def _advance(self, name: str, done: int) -> None:
        """Credit the overall bar with the estimated seconds of the steps ``name`` has done."""
        d0, total, est = self.runs[name]
        credit = est * (done - d0) / max(total - d0, 1)
        self.total.update(credit - self.credit.get(name, 0.0))
        self.credit[name] = credit

    def update(self, latest: dict) -> None:
        if self.total is None:
            return
        for name, (done, total) in list(latest.items()):
            if name not in self.runs:
                continue
            if name not in self.bars and done < total:
                self.bars[name] = self.tqdm(total=total, initial=done, desc=name, unit="step", leave=False,
                                            file=sys.stderr, dynamic_ncols=True)
            bar = self.bars.get(name)
            if bar is not None:
                bar.update(done - bar.n)
            self._advance(name, done)

    def finished(self, name: str, result: dict) -> None:
        total = self.runs[name][1]
        what = (f"trained steps {result['start']}→{total} in {_duration(result['seconds'])}"
                if result["trained"] else "already trained (by another process)")
        self._end(name, what)
        if self.total is not None:
            self._advance(name, total)

    def failed(self, name: str, error: BaseException) -> None:
        self._end(name, f"FAILED ({type(error).__name__}: {error})")

    def _end(self, name: str, what: str) -> None:
        """Close ``name``'s bar and print its line above the bars (or plainly)."""
        self.count += 1
        line = f"[{self.count}/{len(self.runs)}] {name}: {what}"
        bar = self.bars.pop(name, None)
        if bar is not None:
            bar.close()
        if self.total is not None:
            self.tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self.total is not None:
            self.total.close()
        if self.runs:
            print(f"{self.count} of {len(self.runs)} runs done in {_duration(time.perf_counter() - self.start)}",
                  file=self.out, flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
