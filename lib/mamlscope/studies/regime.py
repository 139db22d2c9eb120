"""The regime trial: which shape of Finn et al.'s 20-way 1-shot recipe to train long.

Ten claims rest on one 20-way 1-shot MAML model. The trial trains that setting under Finn et
al.'s recipe (Σℓ/K inner loss, their network, 5 inner steps at α = 0.1 for training and
testing, meta-learning rate 1e-3) at shapes a 2-core CPU can afford, each an ordinary cached run
whose configuration says 60,000 steps (the paper's), trained in chunks that end at a checkpoint
(``--until``) and resume anywhere. Each checkpoint is scored on the run's fixed test tasks.

**The rule, fixed before any curve was seen** (:func:`choose`):

1. *Levelled off at T* means the fitted curve rises by at most :data:`LEVEL` (1 point) over the
   last 40% of training, [0.6 T, T] — the window the protocol's L6 precondition uses.
2. Each shape's curve (checkpoints from step :data:`FIT_FROM` on) is fitted with a saturating
   exponential, acc(t) = a − b·exp(−t/τ); T* is the first step at which the fit has levelled
   off, with its accuracy there; its cost is T* × the shape's measured seconds per step (alone,
   one thread: ``regime time``). Added 2026-12-07, before any choice was made: a fit at a bound
   of its parameters (a = 100%, or τ at its limit) predicts nothing, since the curve is still
   accelerating; the rule waits for it, as it waits for a shape without enough checkpoints.
3. Choose the shape closest to the paper's (more queries/meta-batch like Finn's before fewer)
   whose T* costs at most :data:`CAP_HOURS` at one thread. If none fits the cap, choose the
   cheapest-to-level shape and also train the book's recipe long, saying which claims then
   lack the paper's inner step.
4. *The length* (added 2026-12-07, before the length was fixed; :func:`length`): the long
   chapters' records are judged by the protocol's convergence precondition, the 95% upper end
   of the linear rise over [0.6 T, T] ≤ 1 point on the run's own curve, which is stricter than
   the fit's point estimate of step 2. T is the first step from T* on, among the multiples of
   2,500 (few looks, so that noise has few chances to pass it), at which the chosen run's curve
   passes that precondition; if none does within the cap, T is the cap's step, and the records
   say that the model had not levelled off.

ANIL under the same recipe (R1, R5) trains beside the chosen shape the same way
(``--algorithm anil --seed 1``): the rule looks at MAML's curves only.

``python -m mamlscope regime train cpu --until 4000`` trains a chunk; ``fork cpu --at 31000`` makes
the chosen shape's run of that length from the trial's checkpoints (no training); ``ship`` copies each
trial run's checkpoints on the long profile's grid and its newest, log and manifest into
:data:`SHIPPED` (committed, so another machine resumes or reads them: ``restore``); ``record``
fits, applies the rule and writes the record.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mamlscope.core import evaluate, meta, runs
from mamlscope.paths import atomic_write, cache_root, project_root, provenance
from mamlscope.stats import window_rise
from mamlscope.training import profiles
from mamlscope.verdict import claims

PAPER_STEPS = 60_000
LEVEL = 0.01        # fitted rise over the last 40% of training, at most (fraction)
FIT_FROM = 1_000    # checkpoints before this step (the slow start) are not fitted
CAP_HOURS = 10.0    # one thread, the 2-core machine
BACKEND = "func"    # one backend for every chunk of a run, so a retrained chunk is bit-identical
SHAPES = profiles.REGIME_SHAPES
SHIPPED = Path("book/results/long/runs")
RECORD = Path("book/results/long/studies/regime.json")
#: Seconds per step measured alone at one thread (``regime time``): what the cost rule uses. The
#: training logs' own timings are not, since the trial's shapes train side by side.
TIMING = Path("book/results/long/studies/regime-timing.json")
#: Checkpoints retrained after the fact (``tools/recover_checkpoints.py``), with their check.
RECOVERED = Path("book/results/long/studies/recovered.json")
#: Where the learning curve's scatter comes from (``regime noise``): the test tasks or the model.
NOISE = Path("book/results/long/studies/curve-noise.json")


#: The trial runs of a shape: MAML (what the rule looks at) and ANIL under the same recipe.
VARIANTS = (("maml", 0), ("anil", 0), ("anil", 1))


def config(shape: str, algorithm: str = "maml", seed: int = 0) -> meta.MetaConfig:
    """The trial configuration of ``shape`` (:func:`mamlscope.training.profiles.regime_config`),
    configured for the paper's 60,000 steps; trained with ``algorithm`` from ``seed``."""
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r}; use one of {', '.join(SHAPES)}.")
    return profiles.regime_config(shape, PAPER_STEPS, algorithm, seed)


def _root() -> Path:
    return project_root() or Path.cwd()


# -- training in chunks that survive a stop ---------------------------------------------------
def train(shape: str, until: int, root=None, progress=None, algorithm: str = "maml", seed: int = 0) -> meta.Attempt:
    """Train ``shape``'s run (``algorithm``, ``seed``) up to checkpoint ``until`` at one thread,
    after restoring a newer shipped checkpoint if the cache has none."""
    torch.set_num_threads(1)
    restore(root)
    return meta.attempt(config(shape, algorithm, seed), until=until, backend=BACKEND, progress=progress, root=root)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_steps(run: runs.Run) -> list[int]:
    """The checkpoints of a trial run that are shipped: those on the long profile's grid
    (:data:`~mamlscope.training.profiles.LONG_EVERY`, the log-spaced early ones), the chosen
    length's (:data:`~mamlscope.training.profiles.LONG_RUN`) and the newest (to resume from)."""
    have = run.checkpoint_steps()
    if not have:
        return []
    grid = set(kept_steps(have[-1], run.config.log_checkpoints))
    keep = grid | {have[-1]} | ({profiles.LONG_RUN["steps"]} if profiles.LONG_RUN else set())
    return [s for s in have if s in keep]


def ship(shapes=None, root=None, dest: Path | None = None, variants=VARIANTS) -> list[Path]:
    """Copy each trial run's (of ``shapes`` × ``variants``, default all) configuration, log,
    scores and :func:`shipped_steps` checkpoints, with a manifest (hash, steps, machine, threads,
    seconds, SHA-256 of each file), into ``dest``. A shipped checkpoint no longer wanted (the
    previous newest) is removed; the others are copied only when new."""
    dest = Path(dest or _root() / SHIPPED)
    out = []
    for shape, (algorithm, seed) in ((sh, v) for sh in shapes or SHAPES for v in variants):
        run = runs.Run(config(shape, algorithm, seed), root)
        steps = shipped_steps(run)
        if not steps:
            continue
        target = dest / run.dir.name
        (target / "ckpt").mkdir(parents=True, exist_ok=True)
        names = ["config.json", "metrics.jsonl", "scores.json", "final.json", *(f"ckpt/step_{s:07d}.pt" for s in steps)]
        files = [n for n in names if (run.dir / n).is_file()]
        for old in (target / "ckpt").glob("step_*.pt"):
            if f"ckpt/{old.name}" not in files:
                old.unlink()
        for n in files:
            if not (n.startswith("ckpt/") and (target / n).is_file() and _sha256(target / n) == _sha256(run.dir / n)):
                shutil.copy2(run.dir / n, target / n)
        logged = [m for m in run.metrics() if "seconds_per_step" in m]
        recovered = _recovered(run.dir.name)
        manifest = {"run": run.dir.name, "hash": run.hash, "shape": shape, "algorithm": algorithm,
                    "seed": seed, "step": steps[-1], "checkpoints": steps,
                    "steps": run.config.steps, "finished": run.finished, "backend": BACKEND,
                    "threads": 1, **provenance(),
                    "train_seconds": round(sum(m["seconds_per_step"] * _window(m, logged) for m in logged), 1),
                    **({"recovered": recovered} if recovered else {}),
                    "files": {n: _sha256(target / n) for n in files}}
        atomic_write(target / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))
        out.append(target)
    return out


def _recovered(run_name: str) -> list[dict]:
    """The segments of ``run_name`` that ``tools/recover_checkpoints.py`` retrained (checkpoints
    trained before shipping kept them, recovered and checked against the next shipped one)."""
    path = _root() / RECOVERED
    rows = json.loads(path.read_text())["segments"] if path.is_file() else []
    return [r for r in rows if r["run"] == run_name]


def _window(record: dict, logged: list[dict]) -> int:
    """Steps a logged training record averages over (since the previous one)."""
    before = [m["step"] for m in logged if m["step"] < record["step"]]
    return record["step"] - (before[-1] if before else 0)


def verify(dest: Path | None = None) -> list[str]:
    """Problems with the shipped files (a SHA-256 that differs, a file missing); empty if none."""
    dest = Path(dest or _root() / SHIPPED)
    problems = []
    for mf in sorted(dest.glob("*/manifest.json")):
        manifest = json.loads(mf.read_text())
        for name, digest in manifest["files"].items():
            f = mf.parent / name
            if not f.is_file():
                problems.append(f"{f}: missing")
            elif _sha256(f) != digest:
                problems.append(f"{f}: SHA-256 differs from the manifest")
    return problems


def retrain_last(run_name: str, root=None, src: Path | None = None) -> dict:
    """Retrain the shipped run ``run_name`` from its second-newest shipped checkpoint to its
    newest, in a scratch cache, and compare the weights: 0.0 on the CPU type that trained it, a
    float-rounding size elsewhere (``regime verify --retrain``; minutes per 500 steps)."""
    src = Path(src or _root() / SHIPPED)
    manifest = json.loads((src / run_name / "manifest.json").read_text())
    cfg = config(manifest["shape"], manifest["algorithm"], manifest["seed"])
    steps = manifest.get("checkpoints") or [manifest["step"]]
    if len(steps) < 2:
        raise ValueError(f"{run_name}: one shipped checkpoint, nothing to retrain from")
    before, after = steps[-2], steps[-1]
    shipped = runs.Run(cfg, src.parent)  # the shipped folder is laid out as a cache's runs/
    with tempfile.TemporaryDirectory(prefix="mamlscope-verify-") as tmp:
        scratch = runs.Run(cfg, tmp)
        _copy_run(shipped, scratch, [before], before)
        torch.set_num_threads(1)
        meta.attempt(cfg, until=after, backend=BACKEND, root=tmp)
        a, b = shipped.load_checkpoint(after)["model"], scratch.load_checkpoint(after)["model"]
    return {"run": run_name, "from": before, "to": after,
            "largest_weight_difference": max(float((a[k].double() - b[k].double()).abs().max()) for k in a)}


def restore(root=None, src: Path | None = None) -> list[str]:
    """Copy shipped runs into the cache (another machine resumes a long run, or reads its
    checkpoints, from what was committed): every shipped checkpoint the cache lacks, and the log
    and scores when the shipped run is newer. Never overwrites a cached checkpoint."""
    src = Path(src or _root() / SHIPPED)
    restored = []
    for mf in sorted(src.glob("*/manifest.json")):
        manifest = json.loads(mf.read_text())
        target = cache_root(root) / "runs" / manifest["run"]
        have = runs.checkpoint_steps(target) if target.is_dir() else []
        newer = not have or have[-1] < manifest["step"]
        wanted = [n for n in manifest["files"] if (n.startswith("ckpt/") and not (target / n).is_file())
                  or (newer and not n.startswith("ckpt/"))]
        if not wanted:
            continue
        (target / "ckpt").mkdir(parents=True, exist_ok=True)
        for name in wanted:
            shutil.copy2(mf.parent / name, target / name)
        restored.append(manifest["run"])
    return restored


# -- the chosen run at its own length, from the trial's checkpoints ---------------------------
def kept_steps(last: int, log_spaced: bool = True) -> list[int]:
    """The checkpoints a run of ``last`` steps keeps once forked or shipped: every
    :data:`~mamlscope.training.profiles.LONG_EVERY` steps, the log-spaced early ones and the last
    (what the long profile's chapters read; the others only resume training)."""
    return meta.checkpoint_steps(last, profiles.LONG_EVERY, log_spaced)


def fork(shape: str, at: int, root=None, algorithm: str = "maml", seed: int = 0) -> runs.Run:
    """The run of ``shape``'s configuration (``algorithm``, ``seed``) with ``steps=at``, an ordinary
    cached run with its own hash (what the long profile at that length trains), made from the
    trial run's files up to step ``at`` instead of training it again. A step's tasks are drawn
    from the step's index and every checkpoint of the shorter run is one of the trial's, so its
    log, scores and checkpoints are the trial's up to ``at``. Of the checkpoints it keeps only
    :func:`kept_steps` (what is shipped); its log keeps the test score of every checkpoint, which
    the convergence precondition reads. :func:`check_fork` retrains its last stretch."""
    src = runs.Run(config(shape, algorithm, seed), root)
    cfg = dataclasses.replace(src.config, steps=at)
    wanted = [s for s in cfg.checkpoint_steps() if s in set(kept_steps(at, cfg.log_checkpoints))]
    missing = [s for s in wanted if s not in src.checkpoint_steps()]
    if at not in cfg.checkpoint_steps() or missing:
        flags = "" if (algorithm, seed) == ("maml", 0) else f" --algorithm {algorithm} --seed {seed}"
        raise ValueError(f"the {shape} trial run{flags} has not reached step {at:,} with every checkpoint it needs "
                         f"(missing {missing[:5]}); train it on: python -m mamlscope regime train {shape} "
                         f"--until {at}{flags}")
    dst = runs.Run(cfg, root)
    if dst.finished:
        return dst
    with dst.lock():
        kept = _copy_run(src, dst, wanted, at)
        scores = json.loads((src.dir / "scores.json").read_text())
        scores = {k: v for k, v in scores.items() if json.loads(k)["step"] <= at}
        atomic_write(dst.dir / "scores.json", lambda p: p.write_text(json.dumps(scores, indent=2, sort_keys=True)))
        final = next((m["test_score"] for m in reversed(kept) if "test_score" in m), None)
        dst.finish({"steps": at, "final_curve_score": final, "forked_from": src.dir.name,
                    "checkpoints_kept": f"every {profiles.LONG_EVERY:,} steps, the log-spaced early ones and the last",
                    "device": "cpu", "threads": 1, "torch": torch.__version__})
    return dst


def _copy_run(src: runs.Run, dst: runs.Run, steps, upto: int) -> list[dict]:
    """Copy ``src``'s checkpoints ``steps`` into ``dst`` (the same state, stamped with ``dst``'s
    hash) and its log up to step ``upto``; returns that log."""
    for step in steps:
        dst.save_checkpoint(step, {k: v for k, v in src.load_checkpoint(step).items()
                                   if k not in ("step", "run_hash")})
    kept = [m for m in src.metrics() if m.get("step", 0) <= upto]
    atomic_write(dst.metrics_path, lambda p: p.write_text("".join(json.dumps(m, sort_keys=True) + "\n"
                                                                  for m in kept)))
    return kept


def check_fork(shape: str, at: int, root=None, algorithm: str = "maml", seed: int = 0) -> float:
    """Retrain the forked run's last chunk (from its previous checkpoint to ``at``) under its own
    configuration, in a scratch cache, and return the largest weight difference to the fork's
    checkpoint ``at``: 0.0 on the CPU type that trained it, a float-rounding size elsewhere."""
    dst = fork(shape, at, root, algorithm, seed)
    steps = dst.checkpoint_steps()
    before = steps[steps.index(at) - 1]
    with tempfile.TemporaryDirectory(prefix="mamlscope-fork-") as tmp:
        scratch = runs.Run(dst.config, tmp)
        _copy_run(dst, scratch, [before], before)
        torch.set_num_threads(1)
        meta.attempt(dst.config, until=at, backend=BACKEND, root=tmp)
        a, b = dst.load_checkpoint(at)["model"], scratch.load_checkpoint(at)["model"]
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# -- the curves and the rule ------------------------------------------------------------------
def curve(run) -> dict[int, float]:
    """{step: accuracy on the run's fixed test tasks} from its log."""
    return {int(m["step"]): float(m["test_score"]) for m in run.metrics() if "test_score" in m}


def fit(points: dict[int, float]) -> dict | None:
    """Least-squares fit of acc(t) = a − b·exp(−t/τ) to the points at steps ≥ :data:`FIT_FROM`;
    None with fewer than 4 points or when it does not converge."""
    from scipy.optimize import curve_fit

    t = np.array([s for s in points if s >= FIT_FROM], dtype=float)
    y = np.array([points[int(s)] for s in t])
    if len(t) < 4:
        return None
    f = lambda t, a, b, tau: a - b * np.exp(-t / tau)  # noqa: E731
    try:
        (a, b, tau), _ = curve_fit(f, t, y, p0=(min(1.0, y.max() + 0.05), y.max() - y.min() + 0.05, t.max() / 2),
                                   bounds=([0, 0, 100], [1, 10, 1e6]), maxfev=20_000)
    except RuntimeError:
        return None
    at_bound = a >= 1 - 1e-6 or tau >= 1e6 - 1
    return {"a": float(a), "b": float(b), "tau": float(tau), "n": int(len(t)),
            "rmse": float(np.sqrt(np.mean((f(t, a, b, tau) - y) ** 2))), "at_bound": bool(at_bound)}


def levelled_step(f: dict, level: float = LEVEL) -> int:
    """First step T (a multiple of 500) at which the fit rises by ≤ ``level`` over [0.6 T, T]."""
    acc = lambda t: f["a"] - f["b"] * math.exp(-t / f["tau"])  # noqa: E731
    for T in range(500, 10 * PAPER_STEPS + 1, 500):
        if acc(T) - acc(0.6 * T) <= level:
            return T
    return math.inf


def looks(levelled_at: int, cap: int) -> list[int]:
    """Rule 4's looks: the multiples of ``LONG_EVERY`` from T* (``levelled_at``) on, up to the
    cap's step, and the cap's step."""
    every = profiles.LONG_EVERY
    first = -(-levelled_at // every) * every
    return [T for T in range(first, cap + 1, every) if T != cap] + [cap]


def _look(points: dict[int, float], T: int) -> dict:
    """The protocol's convergence precondition on the curve ``points`` up to ``T``."""
    r = window_rise({0: {s: v for s, v in points.items() if s <= T}}, T)
    return {"rise": r.rise, "lo": r.lo, "hi": r.hi, "levelled": bool(r.hi <= claims.LEVEL)}


def length(points: dict[int, float], levelled_at: int | None, seconds_per_step: float,
           cap_hours: float = CAP_HOURS) -> dict:
    """Rule 4 on a run's curve ``points``: the first of :func:`looks` whose curve up to it passes
    the protocol's convergence precondition (:func:`mamlscope.stats.window_rise`, upper end ≤
    :data:`mamlscope.verdict.claims.LEVEL`), or the cap's step (the last multiple of 500 within
    ``cap_hours``). ``T`` is None while neither is reached; ``looks`` gives each look's rise and
    interval."""
    cap = int(cap_hours * 3600 / seconds_per_step) // 500 * 500
    seen = {}
    for T in (t for t in (looks(levelled_at, cap) if levelled_at else []) if t in points):
        seen[T] = _look(points, T)
        if seen[T]["levelled"]:
            return {"T": T, "why": "levelled off", "cap_step": cap, "looks": seen}
    if cap in points:
        return {"T": cap, "why": "the cap (not levelled off)", "cap_step": cap, "looks": seen}
    return {"T": None, "why": "training on", "cap_step": cap, "looks": seen}


def length_power(f: dict, noise: float, levelled_at: int, cap: int, draws: int = 2000, seed: int = 0) -> dict:
    """How often rule 4 finds a level, if the curve is the fit ``f`` plus independent normal noise
    of ``noise`` (the residual SD of the curve about the fit) at every 500 steps: the share of
    ``draws`` simulated curves that pass at some look (``any``) and at the cap (``at_cap``)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(0, cap + 1, 500)
    mean = f["a"] - f["b"] * np.exp(-steps / f["tau"])
    at = looks(levelled_at, cap)
    hits = at_cap = 0
    for _ in range(draws):
        curve = dict(zip(steps.tolist(), (mean + rng.normal(0, noise, len(steps))).tolist()))
        passed = [_look(curve, T)["levelled"] for T in at]
        hits += any(passed)
        at_cap += passed[-1]
    return {"any": hits / draws, "at_cap": at_cap / draws, "noise": noise, "draws": draws, "looks": at}


def scatter(values: dict[int, np.ndarray], curve_tasks: int) -> dict:
    """Split a learning curve's scatter into the test tasks' and the model's: ``values`` holds
    each checkpoint's per-task accuracies on the same fixed tasks, the curve's own
    ``curve_tasks`` first. For the curve on the first ``curve_tasks`` and on all of them: the
    tasks' standard error of one checkpoint's mean (averaged over checkpoints), the residual SD
    of the checkpoint means about a quadratic in the step (the scatter a window's fit sees), and
    the protocol's window rise at the newest step (over its last 40%). Task sampling alone would shrink the scatter
    with the tasks' error; what stays at many tasks is the model's, from checkpoint to checkpoint."""
    steps = np.array(sorted(values), dtype=float)
    out = {}
    for n in (curve_tasks, min(len(v) for v in values.values())):
        means = np.array([np.mean(values[int(s)][:n]) for s in steps])
        se = float(np.mean([np.std(values[int(s)][:n], ddof=1) / math.sqrt(n) for s in steps]))
        resid = means - np.polyval(np.polyfit(steps, means, 2), steps)
        points = dict(zip(steps.astype(int).tolist(), means.tolist()))
        r = window_rise({0: points}, int(steps[-1]))
        out[str(n)] = {"tasks": n, "task_se": se, "scatter": float(np.std(resid, ddof=3)),
                       "rise": r.rise, "lo": r.lo, "hi": r.hi, "levelled": bool(r.hi <= claims.LEVEL), "curve": points}
    return out


def curve_noise(shape: str, n_tasks: int = 1000, root=None, algorithm: str = "maml", seed: int = 0) -> dict:
    """:func:`scatter` of the trial run's convergence window, [0.6 T, T] at its newest checkpoint
    T: each of its checkpoints there (every 500 steps: the local cache's, since only every
    2,500th is shipped) scored on the first ``n_tasks`` fixed test tasks. Computed without writing
    into the run, which may be training; the first 100 tasks must give the logged curve."""
    run = runs.Run(config(shape, algorithm, seed), root)
    cfg, pts = run.config, curve(run)
    if n_tasks <= cfg.curve_tasks:
        raise ValueError(f"--tasks {n_tasks}: give more than the curve's own {cfg.curve_tasks}")
    if not pts:
        raise ValueError(f"{run.dir.name} has no learning curve yet")
    last = max(pts)
    steps = [s for s in sorted(pts) if s >= 0.6 * last]
    missing = [s for s in steps if not run.checkpoint_path(s).is_file()]
    if missing:
        raise ValueError(f"{run.dir.name} lacks the checkpoints of steps {step_list(missing)} (the shipped runs keep "
                         f"every {profiles.LONG_EVERY:,}th): run it where the trial trained")
    tasks, inner = cfg.test_tasks(n_tasks), cfg.inner(train=False)
    values = {}
    for s in steps:
        v = evaluate.per_task_scores(run.load_model(s), tasks, inner, loss=cfg.loss).double().numpy()
        if abs(v[:cfg.curve_tasks].mean() - pts[s]) > 1e-6:
            raise RuntimeError(f"step {s}: the first {cfg.curve_tasks} tasks give {v[:cfg.curve_tasks].mean():.4f}, "
                               f"the log {pts[s]:.4f}: not the curve's tasks")
        values[s] = v
    return {"run": run.dir.name, "window": [steps[0], last], "by_tasks": scatter(values, cfg.curve_tasks),
            **provenance()}


def _write(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(rec, indent=1, default=float) + "\n"))


def step_list(steps: list[int]) -> str:
    """Steps for a reader: "2,500, 5,000, 7,500"."""
    return ", ".join(f"{s:,}" for s in steps)


def choose(rows: dict[str, dict], cap_hours: float = CAP_HOURS) -> dict:
    """The rule of the module docstring, on ``shape → {"levelled_step", "seconds_per_step"}``."""
    cost = {s: r["levelled_step"] * r["seconds_per_step"] / 3600 for s, r in rows.items()
            if r.get("levelled_step") is not None}
    within = [s for s in SHAPES if s in cost and cost[s] <= cap_hours]
    if within:
        return {"shape": within[0], "within_cap": True, "also_book_recipe": False}
    cheapest = min(cost, key=cost.get) if cost else None
    return {"shape": cheapest, "within_cap": False, "also_book_recipe": True}


def time_shapes(shapes=None, steps: int = 8, backend: str = BACKEND) -> dict:
    """Seconds per training step of each shape at one thread, timed by :func:`meta.estimate` (its
    median of ``steps`` steps after a warm-up), with the machine. Run it with nothing else running."""
    torch.set_num_threads(1)
    out = {**provenance(), "threads": 1, "backend": backend, "seconds_per_step": {}}
    for shape in shapes or SHAPES:
        est = meta.estimate(config(shape), backend=backend, steps=steps)
        out["seconds_per_step"][shape] = float(np.median(est.step_seconds))
    return out


def _timed() -> dict:
    path = _root() / TIMING
    return json.loads(path.read_text())["seconds_per_step"] if path.is_file() else {}


def measure(root=None) -> dict:
    """Each trained shape's curve, fit, predicted levelling step and its cost, and the choice."""
    rows = {}
    for shape in SHAPES:
        run = runs.Run(config(shape), root)
        pts = curve(run)
        if len(pts) < 2:
            continue
        logged = [m for m in run.metrics() if "seconds_per_step" in m]
        sps = _timed().get(shape) or (float(np.median([m["seconds_per_step"] for m in logged]))
                                          if logged else math.nan)
        f = fit(pts)
        T = levelled_step(f) if f and not f["at_bound"] else None
        rows[shape] = {"run": run.dir.name, **SHAPES[shape], "trained_steps": max(pts), "curve": pts,
                       "seconds_per_step": sps, "fit": f, "levelled_step": None if T in (None, math.inf) else T,
                       "accuracy_at_levelled": (f["a"] - f["b"] * math.exp(-T / f["tau"]))
                       if f and T not in (None, math.inf) else None}
    fitted = {k: r for k, r in rows.items() if r["fit"] is not None and not r["fit"]["at_bound"]}
    waiting = [k for k in SHAPES if k not in fitted]
    why = {k: "not yet the 4 checkpoints from step " f"{FIT_FROM:,} on that the fit needs" if not (rows.get(k) or {}).get("fit")
           else "its fit sits at a bound (the curve is still accelerating: no level to predict yet)" for k in waiting}
    choice = choose(fitted) if not waiting else {
        "shape": None, "reason": "; ".join(f"{k}: {w}" for k, w in why.items()) + " (the rule compares every shape)"}
    if choice.get("shape"):
        row = rows[choice["shape"]]
        choice["length"] = length(row["curve"], row["levelled_step"], row["seconds_per_step"])
        f, pts = row["fit"], row["curve"]
        resid = [v - (f["a"] - f["b"] * math.exp(-s / f["tau"])) for s, v in pts.items() if s >= 5 * FIT_FROM]
        choice["length"]["power"] = length_power(f, float(np.std(resid, ddof=3)), row["levelled_step"],
                                                 choice["length"]["cap_step"])
    return {"rows": rows, "choice": choice, "rule": __doc__.split("**The rule")[1].split("``python")[0].strip(),
            **provenance()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamlscope regime", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a chunk of a trial shape (one thread), ending at a checkpoint")
    t.add_argument("shape", choices=list(SHAPES))
    t.add_argument("--until", type=int, required=True, help="the checkpoint to stop at (a multiple of 500)")
    sh = sub.add_parser("ship", help="copy each trial run's newest checkpoint and log, with a manifest, into " + str(SHIPPED))
    sh.add_argument("shapes", nargs="*", help="default: all (" + ", ".join(SHAPES) + ")")
    sub.add_parser("restore", help="copy shipped checkpoints into the cache where it has none as new")
    vf = sub.add_parser("verify", help="check the shipped files' SHA-256 against their manifests")
    vf.add_argument("--retrain", action="store_true",
                    help="also retrain each run from its second-newest shipped checkpoint to its newest and "
                         "print the largest weight difference (minutes per 500 steps, one thread)")
    sub.add_parser("record", help="fit the curves, apply the rule, write " + str(RECORD))
    fk = sub.add_parser("fork", help="the shape's run at its own length (steps=AT), from the trial's checkpoints")
    fk.add_argument("shape", choices=list(SHAPES))
    fk.add_argument("--at", type=int, required=True, help="its length: a checkpoint the trial has reached")
    fk.add_argument("--check", action="store_true", help="also retrain its last chunk and compare the weights")
    for p in (t, sh, fk):
        p.add_argument("--algorithm", choices=sorted({a for a, _ in VARIANTS}), default=None,
                       help="the trial run of this algorithm (default maml; ship: every run)")
        p.add_argument("--seed", type=int, default=None, help="its seed (default 0)")
    nz = sub.add_parser("noise", help="score the chosen run's convergence window on more test tasks: how much "
                        "of its curve's scatter is the tasks' and how much the model's; write " + str(NOISE))
    nz.add_argument("--tasks", type=int, default=1000)
    tm = sub.add_parser("time", help="time each shape's step at one thread (alone), write " + str(TIMING))
    tm.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    variant = {"algorithm": args.algorithm or "maml", "seed": args.seed or 0} if "seed" in args else {}
    if variant and (variant["algorithm"], variant["seed"]) not in VARIANTS:
        parser.error(f"--algorithm {variant['algorithm']} --seed {variant['seed']}: the trial runs are "
                     + ", ".join(f"{a} seed {k}" for a, k in VARIANTS))
    if args.command == "train":
        a = train(args.shape, args.until, **variant)
        print(f"{a.run.dir.name}: steps {a.start} → {a.start + a.trained} in {a.seconds:.0f} s", flush=True)
    elif args.command == "ship":
        only = {"variants": [(variant["algorithm"], variant["seed"])]} if args.algorithm is not None or args.seed is not None else {}
        print("\n".join(str(p) for p in ship(args.shapes, **only)) or "nothing trained yet")
    elif args.command == "restore":
        print("\n".join(restore()) or "the cache is up to date")
    elif args.command == "verify":
        problems = verify()
        print("\n".join(problems) or "every shipped file matches its manifest")
        if args.retrain and not problems:
            for mf in sorted((_root() / SHIPPED).glob("*/manifest.json")):
                r = retrain_last(mf.parent.name)
                print(f"{r['run']}: steps {r['from']:,} → {r['to']:,} retrained: largest weight difference "
                      f"{r['largest_weight_difference']:.3g}", flush=True)
        return 1 if problems else 0
    elif args.command == "fork":
        try:
            run = fork(args.shape, args.at, **variant)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{run.dir.name}: {args.shape} at {args.at:,} steps, from the trial's checkpoints")
        if profiles.LONG_RUN != {"shape": args.shape, "steps": args.at}:
            print(f"the long profile names it once mamlscope/training/profiles.py sets "
                  f"LONG_RUN = {{'shape': '{args.shape}', 'steps': {args.at}}}")
        if args.check:
            diff = check_fork(args.shape, args.at, **variant)
            print(f"its last chunk retrained: largest weight difference {diff:.3g}")
    elif args.command == "time":
        rec = time_shapes(steps=args.steps)
        _write(_root() / TIMING, rec)
        print(json.dumps(rec["seconds_per_step"]), "→", TIMING)
    elif args.command == "noise":
        shape = json.loads((_root() / RECORD).read_text())["choice"]["shape"]
        try:
            rec = curve_noise(shape, args.tasks)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        _write(_root() / NOISE, rec)
        print(", ".join(f"{k} tasks: scatter {100 * v['scatter']:.2f} points, tasks' error {100 * v['task_se']:.2f}"
                        for k, v in rec["by_tasks"].items()), "→", NOISE)
    elif args.command == "record":
        rec = measure()
        _write(_root() / RECORD, rec)
        print(json.dumps(rec["choice"]), "→", RECORD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
