"""The training runs each chapter needs, declared per profile, so that they can be listed (and
trained) before any notebook executes.

``chapter_runs(profile, chapter)`` returns the configurations a chapter passes to
:func:`mamlscope.meta.train`, in the order it trains them. The declarations mirror the chapters'
code; ``tests/test_nbval.py`` checks them against the run directories each chapter actually
creates when it executes at the smoke profile, so a chapter that starts training something else
fails its test until it is declared here.

    python -m mamlscope.plan --profile cpu [chapter …]   # every run, where it lives, cached or not
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Callable

from .profiles import Profile, alternative_recipe, load


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
    return out + [P.omniglot_supervised]


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


def plan(profile: Profile, chapters=None, root=None):
    """One row per distinct run the ``chapters`` (default: all) need, first use first: its
    directory name, the chapters that use it, its meta-steps (or supervised steps) and whether it
    is already trained in the cache."""
    import pandas as pd

    from .runs import Run, run_dir

    rows: dict[str, dict] = {}
    for chapter in chapters or list(CHAPTER_RUNS):
        for cfg in chapter_runs(profile, chapter):
            path = run_dir(cfg, root)
            row = rows.setdefault(path.name, {"run": path.name, "chapters": [], "steps": cfg.steps,
                                              "trained": (path / "final.json").is_file()})
            if chapter not in row["chapters"]:
                row["chapters"].append(chapter)
    frame = pd.DataFrame(list(rows.values()))
    if not frame.empty:
        frame["chapters"] = frame["chapters"].map(", ".join)
    return frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamlscope.plan",
                                     description="List the training runs the chapters need at a profile.")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("chapters", nargs="*")
    args = parser.parse_args(argv)
    frame = plan(load(args.profile), args.chapters or None)
    print(frame.to_string(index=False))
    print(f"\n{len(frame)} runs, {int(frame['trained'].sum())} already trained.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
