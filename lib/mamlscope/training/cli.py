"""``python -m mamlscope runs plan|train``: list the training runs the chapters need, and train
the missing ones concurrently (see :mod:`mamlscope.training.plan` and :mod:`mamlscope.training.schedule`).

    python -m mamlscope runs plan  --profile cpu [chapter …] [--estimate]
    python -m mamlscope runs train --profile cpu [chapter …] [--workers N] [--threads-per-worker T]
    python -m mamlscope runs train --profile paper --cluster slurm --workers 8 --gpus 1 \\
        --threads-per-worker 8 --memory 32GB --walltime 24:00:00 [--queue Q] [--job-script]
"""
from __future__ import annotations

import argparse
import sys

import psutil
import torch

from mamlscope.core.meta import estimate_seconds
from mamlscope.paths import machine
from mamlscope.training import plan as planning, schedule
from mamlscope.training.profiles import PROFILES, load, resolve_device
from mamlscope.training.schedule import KINDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mamlscope runs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "list the runs, their hash, settings, status and (--estimate) cost"),
                       ("train", "train the runs that are not trained yet, concurrently, on Dask")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("chapters", nargs="*", help="chapter names (default: every chapter)")
        p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
        p.add_argument("--threads-per-worker", type=int, default=None, metavar="T",
                       help="torch threads per training run (default: 1 locally, the count the cpu "
                            "profile's numbers were computed with; 8 on a cluster)")
        p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    plan, train = sub.choices["plan"], sub.choices["train"]
    plan.add_argument("--estimate", action="store_true",
                      help="time a few steps of each untrained run to estimate its minutes here")
    plan.add_argument("--record", metavar="PATH", default=None,
                      help="with --estimate: also write the estimates, with the machine, date and commit, "
                           "as JSON to PATH (the paper-scale page reads book/results/paper/cost-<device>.json)")
    train.add_argument("--workers", default="auto",
                       help="concurrent runs: a number, or auto (cores ÷ threads per worker locally; "
                            "required on a cluster)")
    train.add_argument("--cluster", default="local", choices=KINDS, help="where the workers run (default local)")
    train.add_argument("--no-estimate", action="store_true",
                       help="skip the timing probes; runs start in plan order instead of longest first")
    train.add_argument("--dashboard", default=None, metavar="ADDRESS",
                       help="serve Dask's dashboard at ADDRESS (127.0.0.1:8787 for this machine; 0.0.0.0:8787 "
                            "opens it to the network). Default: none; a local cluster listens on 127.0.0.1 only")
    g = train.add_argument_group("batch jobs (--cluster slurm|pbs|sge|lsf; one job per worker)")
    g.add_argument("--gpus", type=int, default=1, help="GPUs per job (default 1; 0 for none)")
    g.add_argument("--memory", default="32GB", help="memory per job (default 32GB)")
    g.add_argument("--walltime", default="24:00:00", help="time limit per job (default 24:00:00)")
    g.add_argument("--queue", default=None, help="partition / queue")
    g.add_argument("--account", default=None, help="account to charge")
    g.add_argument("--directive", action="append", default=[], metavar="LINE",
                   help="an extra scheduler directive, e.g. --directive=--constraint=a100 (repeatable)")
    g.add_argument("--job-script", action="store_true", help="print the job script that would be submitted, and exit")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; valid profiles: {', '.join(PROFILES)}")
    unknown = [c for c in args.chapters if c not in planning.CHAPTER_RUNS]
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; chapters: {', '.join(planning.CHAPTER_RUNS)}")
    profile, chapters = load(args.profile), args.chapters or None
    remote = getattr(args, "cluster", "local") != "local"
    threads = args.threads_per_worker or (8 if remote else schedule.BOOK_THREADS)
    if threads < 1:
        parser.error("--threads-per-worker must be >= 1")
    torch.set_num_threads(threads)  # the estimates are timed at the workers' thread count

    try:
        resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))

    if args.command == "plan":
        if args.record and not args.estimate:
            parser.error("--record needs --estimate (it records the estimated minutes)")
        busy = None
        if args.estimate:
            used = psutil.cpu_percent(interval=1.0)  # of all cores, over the last second
            if used > 40:
                busy = f"the machine is busy ({used:.0f}% of its {psutil.cpu_count()} cores in use before timing)"
                print(f"warning: {busy}: the estimates will be too high", file=sys.stderr, flush=True)
        frame = planning.plan(profile, chapters, estimate=args.estimate, device=args.device)
        shown = frame.assign(hash=frame["hash"].str[:12],
                             chapters=frame["chapters"].map(lambda c: ",".join(n[:2] for n in c.split(", "))))
        columns = ["run", "status", "steps"] + (["minutes", "spread"] if args.estimate else []) + ["chapters", "settings"]
        print(shown[columns].to_string(index=False, justify="left", float_format=lambda m: f"{m:.2f}",
                                       formatters={"settings": lambda s: f" {s}",
                                                   "run": lambda s: s.ljust(shown["run"].str.len().max())}))
        line = f"\n{len(frame)} runs at profile {args.profile}, {int(frame['trained'].sum())} trained"
        if args.estimate:
            total = frame["minutes"].sum()
            line += (f"; the rest ≈ {total:.0f} min ({total / 60:.1f} h) of work at {threads} thread(s) "
                     f"on {machine(args.device)} ({args.device})")
        print(line + ".")
        if args.estimate:
            per = planning.by_chapter(frame)
            print("by chapter (each run counted where first used): "
                  + ", ".join(f"{c[:2]} {m / 60:.1f} h" for c, m in per.items()))
            spread = frame["spread"].max()
            if args.record:
                path = planning.write_cost(args.record, frame, args.profile, args.device, threads, busy)
                print(f"recorded the estimates in {path}")
            if spread > 1.5 or busy:
                print(f"warning: timed steps of one run differ up to {spread:.1f}x"
                      f"{'; ' + busy if busy else ''}: something else is using this machine, so these "
                      "estimates are too high; re-run plan --estimate when it is idle", file=sys.stderr)
        return 0

    if remote:
        spec = schedule.JobSpec(args.cluster, threads, args.gpus, args.memory, args.walltime, args.queue,
                                args.account, args.directive, schedule.shared_env())
        cluster = schedule.jobqueue_cluster(spec, dashboard=args.dashboard)
        if args.job_script:
            print(cluster.job_script())
            cluster.close()
            return 0
        if args.workers == "auto":
            parser.error("--workers N is required with --cluster (one batch job per worker)")
    elif args.job_script:
        parser.error("--job-script needs --cluster slurm|pbs|sge|lsf")

    items = planning.planned(profile, chapters)
    todo = [it for it in items if it.status != "trained"]
    workers = schedule.default_workers(threads) if args.workers == "auto" else int(args.workers)
    workers = max(1, min(workers, len(todo) or 1))
    estimates = None
    if todo and not args.no_estimate and not remote:
        print(f"estimating {len(todo)} runs (a few timed steps each) …", flush=True)
        estimates = [estimate_seconds(it.config, device=args.device) * (1 - it.done / it.config.steps)
                     if it.status != "trained" else 0.0 for it in items]
    if not todo:
        print(f"all {len(items)} runs at profile {args.profile} are trained.")
        return 0

    from distributed import Client

    cluster = cluster if remote else schedule.local_cluster(workers, threads, dashboard=args.dashboard)
    if args.dashboard:
        print(f"Dask dashboard: {cluster.dashboard_link}", flush=True)
    try:
        if remote:
            cluster.scale(jobs=workers)
        with Client(cluster) as client:
            schedule.train_all(items, client, threads=threads, device=args.device, estimates=estimates,
                               workers=workers)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
