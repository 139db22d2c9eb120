"""The training runs each chapter needs, declared per profile, so that they can be listed (and
trained) before any notebook executes.

``chapter_runs(profile, chapter)`` returns the configurations a chapter passes to
:func:`mamlscope.core.meta.train`, in the order it trains them. The declarations mirror the chapters'
code; ``tests/test_nbval.py`` checks them against the run directories each chapter actually
creates when it executes at the smoke profile, so a chapter that starts training something else
fails its test until it is declared here.

    python -m mamlscope runs plan --profile cpu [chapter …]   # every run, cached or not, its cost
    python -m mamlscope runs train --profile cpu [--workers N]  # train the missing ones (mamlscope.training.schedule)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from mamlscope.core.meta import estimate as timed
from mamlscope.core.runs import checkpoint_steps, config_hash, run_dir
from mamlscope.paths import atomic_write, provenance
from mamlscope.training.profiles import Profile, alternative_recipe


def swapped_sinusoid(cfg):
    """The sinusoid configuration with its meta-train and meta-test ranges exchanged (chapter 5)."""
    return replace(cfg, amplitude=cfg.test_amplitude, phase=cfg.test_phase,
                   test_amplitude=cfg.amplitude, test_phase=cfg.phase)


def _ch1(P: Profile) -> list:
    return [P.meta("omniglot_5w1s"), P.meta("omniglot_20w1s")]


def _ch2(P: Profile) -> list:
    return [P.meta("omniglot_20w1s")] + [replace(P.mnist_supervised, seed=s) for s in range(P.supervised_seeds)]


def _ch3(P: Profile) -> list:
    cfg = P.meta("omniglot_20w1s")
    return [cfg] + ([alternative_recipe(cfg)] if P.compare_recipes else [])


def _ch4(P: Profile) -> list:
    out = []
    for setting in P.r1_settings:
        out.append(P.meta(setting, "maml"))
        out += [replace(P.meta(setting, "anil"), seed=s) for s in range(P.anil_seeds)]
    # the 5-way MAML run (chapter 1's) for the head-only diagnostics
    return out + [P.omniglot_supervised, P.meta("omniglot_5w1s")]


def _ch5(P: Profile) -> list:
    base = P.landscape_5w1s
    return [base, P.meta("landscape_5w1s", "fomaml"), replace(base, inner_steps=1, eval_inner_steps=1),
            P.landscape_finetune, P.landscape_sinusoid, swapped_sinusoid(P.landscape_sinusoid)]


def _ch6(P: Profile) -> list:
    base = P.regulariser_setting
    arms = [base, replace(base, coherence_penalty=P.regulariser_gamma)]
    return ([replace(c, seed=s) for c in arms for s in range(P.regulariser_seeds)]
            + [replace(base, coherence_penalty=g) for g in P.regulariser_sweep])


def _ch7(P: Profile) -> list:
    return ([replace(P.features_supervised, seed=s) for s in range(P.features_seeds)]
            + [P.features_maml, P.meta("omniglot_20w1s"), P.omniglot_supervised])


CHAPTER_RUNS: dict[str, Callable[[Profile], list]] = {
    "01_maml_on_omniglot": _ch1,
    "02_early_layers_change_little": _ch2,
    "03_inner_steps_vs_meta_steps": _ch3,
    "04_rapid_learning_or_feature_reuse": _ch4,
    "05_objective_landscapes": _ch5,
    "06_coherence_regulariser": _ch6,
    "07_what_the_features_look_like": _ch7,
}


def chapter_runs(profile: Profile, chapter: str) -> list:
    """The configurations ``chapter`` trains at ``profile``."""
    if chapter not in CHAPTER_RUNS:
        raise ValueError(f"no runs declared for chapter {chapter!r}; chapters: {', '.join(CHAPTER_RUNS)}.")
    return CHAPTER_RUNS[chapter](profile)


@dataclass
class Planned:
    """One distinct run the chosen chapters need: its configuration, its directory, the chapters
    that use it (first use first), and how far it is trained (``done`` of ``config.steps``)."""
    config: object
    dir: Path
    chapters: list = field(default_factory=list)

    @property
    def done(self) -> int:
        """Steps trained so far: all when finished, else the newest checkpoint's step."""
        if (self.dir / "final.json").is_file():
            return self.config.steps

        steps = checkpoint_steps(self.dir)
        return steps[-1] if steps else 0

    @property
    def status(self) -> str:
        done = self.done
        return "trained" if done == self.config.steps else ("missing" if done == 0 else f"{done}/{self.config.steps}")


def planned(profile: Profile, chapters=None, root=None) -> list[Planned]:
    """The distinct runs the ``chapters`` (default: all) need at ``profile``, first use first."""

    runs: dict[Path, Planned] = {}
    for chapter in chapters or list(CHAPTER_RUNS):
        for cfg in chapter_runs(profile, chapter):
            path = run_dir(cfg, root)
            item = runs.setdefault(path, Planned(cfg, path))
            if chapter not in item.chapters:
                item.chapters.append(chapter)
    return list(runs.values())


def settings(config) -> str:
    """The fields of ``config`` that differ from its class's defaults, bookkeeping left out."""
    skip = {"checkpoint_every", "log_checkpoints", "log_every"}
    return " ".join(f"{f.name}={_short(getattr(config, f.name))}" for f in fields(config)
                    if f.name not in skip and getattr(config, f.name) != f.default)


def _short(value) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plan(profile: Profile, chapters=None, root=None, estimate: bool = False, device="cpu"):
    """One row per distinct run the ``chapters`` (default: all) need, first use first: its
    directory name and hash, the chapters that use it, its steps, whether it is trained
    (``trained``; ``missing``; or ``k/N`` steps checkpointed), its settings (fields that differ
    from the defaults) and, with ``estimate``, the minutes its untrained part would take here
    (:func:`mamlscope.core.meta.estimate`, at the current thread count, on ``device``) and the
    spread of its timed steps (slowest ÷ fastest: well above 1 on a busy machine)."""

    rows = []
    for item in planned(profile, chapters, root):
        cfg, done = item.config, item.done
        row = {"run": item.dir.name, "hash": config_hash(cfg), "chapters": ", ".join(item.chapters),
               "steps": cfg.steps, "status": item.status, "trained": done == cfg.steps,
               "settings": settings(cfg)}
        if estimate:
            left = 1 - done / cfg.steps
            est = timed(cfg, device=device) if left else None
            row["minutes"] = est.seconds * left / 60 if est else 0.0
            row["spread"] = est.spread if est else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def by_chapter(frame) -> dict[str, float]:
    """Estimated minutes per chapter, each run counted once, in the chapter that uses it first."""
    out: dict[str, float] = {}
    for chapters, minutes in zip(frame["chapters"], frame["minutes"]):
        first = chapters.split(", ")[0]
        out[first] = out.get(first, 0.0) + minutes
    return out


def write_cost(path, frame, profile: str, device: str, threads: int, busy: str | None = None) -> Path:
    """Write ``runs plan --estimate``'s frame (one row per run) as a cost record at ``path``."""
    runs = [{"run": r.run, "chapters": r.chapters.split(", "), "steps": int(r.steps),
             "minutes": round(float(r.minutes), 3), "spread": round(float(r.spread), 3), "settings": r.settings}
            for r in frame.itertuples(index=False)]
    record = {"profile": profile, "device": device, "threads": threads, **provenance(device), "busy": busy,
              "runs": runs}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n"))
    return path
