"""The three scales at which the book runs (papermill parameter ``profile``).

* ``smoke`` — CI and nbval: every cell runs in seconds; the numbers mean nothing. Trained and
  measured in float64, so that what the chapters print is the same on every CPU, whatever its
  vector kernels or thread count (float32 results differ in the third decimal between machines).
* ``cpu``   — the default and what the built book shows: a 2-core laptop, whole book ≤ 90 min.
  Smaller nets (32 filters), smaller meta-batches, fewer steps and inner steps than the papers.
* ``paper`` — the papers' exact settings (Finn et al. 2017 App. A.1 and their released code's
  inner loss and network; Goerttler & Obermayer §4), hours on a GPU.
* ``long`` — ``cpu`` with the 20-way 1-shot model under Finn et al.'s recipe, trained until its
  curve levelled off (:func:`long_profile`; defined once the regime trial chose it).
* ``paper-dry`` — :func:`dry_run` of ``paper``: its configurations with every count cut (3 steps
  per run, a handful of tasks), so the whole book runs through the paper's code paths, at its
  shapes, in minutes on 2 CPU cores (CI does).

A chapter calls ``load(profile, **overrides)``. An override names a profile field
(``test_tasks=100``) or a field of one of its training configurations
(``omniglot_5w1s__steps=1000``, a double underscore because papermill parameters are Python
names). Unknown profiles and unknown fields are errors that list what is valid.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace

import torch

from mamlscope.core.meta import DTYPES, MetaConfig, SupervisedConfig


@dataclass(frozen=True)
class Profile:
    """The settings of one profile. Training configurations are shared by all chapters, so a
    run trained for one chapter is reused by the others (:mod:`mamlscope.core.runs`)."""

    name: str
    description: str
    test_tasks: int                      # fixed meta-test tasks for accuracy (paper: 600)
    analysis_tasks: int                  # meta-test tasks per representation measurement ([G] Fig 1a: 50)
    analysis_inputs: int                 # MNIST test images per RDM / CKA ([G] Fig 2)
    supervised_seeds: int                # independent supervised runs (error bars over seeds)
    omniglot_5w1s: MetaConfig            # Omniglot 5-way 1-shot, MAML ([F] Table 1)
    omniglot_20w1s: MetaConfig           # Omniglot 20-way 1-shot, MAML ([F], [G], [R])
    mnist_supervised: SupervisedConfig   # Conv4 on MNIST from a random init ([G] Fig 2)
    omniglot_20w5s: MetaConfig           # Omniglot 20-way 5-shot, MAML ([F], [R] Table 2)
    omniglot_supervised: SupervisedConfig  # Conv4 on the 1,200 training characters as classes ([R] Table 5)
    landscape_5w1s: MetaConfig           # [L] §5: 5-way 1-shot, 5 inner steps at 0.1, trained past meta-overfitting
    landscape_finetune: SupervisedConfig  # [L]'s fine-tune baseline, on the same training characters
    landscape_sinusoid: MetaConfig       # [L] §5.3.1: MLP 40-40, disjoint meta-train/meta-test ranges
    landscape_tasks: int                 # meta-test tasks per checkpoint for [L]'s signals ([L]: 500)
    curvature_tasks: int                 # of them, for E‖H‖σ ([L]: 60)
    regulariser_setting: MetaConfig      # [L] §7: plain vs regularised MAML ([L]: Omniglot 20-way 1-shot)
    features_supervised: SupervisedConfig  # [A] §3.1: the fully-connected MNIST baseline, as described
    features_maml: MetaConfig            # the same network meta-trained with MAML on MNIST few-shot tasks
    r1_settings: tuple = ("omniglot_20w1s",)  # settings of [R] Table 2 trained for R1 (MAML and ANIL)
    anil_seeds: int = 1                  # ANIL runs per R1 setting (seeds 0, 1, …; MAML: seed 0)
    dtype: str = "float32"               # of every training configuration (smoke: float64)
    compare_recipes: bool = False        # train the other inner-loop recipe in chapter 3 (else: its record)
    regulariser_gamma: float = 0.5       # γ of [L] Algorithm 1 (paper: 0.5)
    regulariser_seeds: int = 3           # seeds per arm (paper: 5)
    regulariser_sweep: tuple = (0.1, 1.0)  # further γ values, seed 0 only
    features_seeds: int = 3              # seeds of the [A] baseline (its accuracy's interval)
    features_pool: int = 1000            # held-out inputs embedded and searched for units' extremes
    timing_repeats: int = 20             # interleaved repeats per timing (R2's costs, L6's cost per meta-step)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value) and hasattr(value, "dtype"):
                object.__setattr__(self, f.name, replace(value, dtype=self.dtype))

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def meta(self, setting: str, algorithm: str = "maml") -> MetaConfig:
        """The configuration of ``setting`` (e.g. ``"omniglot_5w1s"``) trained with ``algorithm``."""
        base = getattr(self, setting)
        if not isinstance(base, MetaConfig):
            raise ValueError(f"{setting!r} is not a meta-learning setting of profile {self.name!r}.")
        return replace(base, algorithm=algorithm)


# Finn et al.'s recipe as released (cbfinn/maml): the inner loss is Σᵢℓᵢ/K ("sum/k", i.e. N times
# the mean: α = 0.4 at 5-way and 0.1 at 20-way are both a step of 2.0 on the mean loss) and their
# Omniglot network ("finn": spatial mean before an N(0, 1) head, Xavier convs, BatchNorm offsets).
_PAPER_5W = MetaConfig(n_way=5, k_shot=1, q_query=1, filters=64, inner_steps=1, inner_lr=0.4,
                       eval_inner_steps=3, meta_batch=32, meta_lr=1e-3, steps=60_000,
                       checkpoint_every=5_000, log_every=100, curve_tasks=100,
                       inner_reduction="sum/k", network="finn")
_PAPER_20W = MetaConfig(n_way=20, k_shot=1, q_query=1, filters=64, inner_steps=5, inner_lr=0.1,
                        eval_inner_steps=5, meta_batch=16, meta_lr=1e-3, steps=60_000,
                        checkpoint_every=1_000, log_every=100, curve_tasks=100,
                        inner_reduction="sum/k", network="finn")



def _sinusoid(**scale) -> MetaConfig:
    """[L] §5.3.1 on Finn et al.'s sinusoid recipe (MLP 40-40, K = 10, one inner step at 0.01,
    meta-batch 25), with amplitude and phase ranges split into disjoint meta-train and meta-test
    halves of Finn et al.'s A ∈ [0.1, 5], φ ∈ [0, π] ([L] does not give its ranges)."""
    return MetaConfig(dataset="sinusoid", k_shot=10, q_query=10, inner_steps=1, inner_lr=0.01, eval_inner_steps=1,
                      meta_batch=25, amplitude=(0.1, 2.55), phase=(0.0, math.pi / 2),
                      test_amplitude=(2.55, 5.0), test_phase=(math.pi / 2, math.pi), **scale)


# [A] §3.1: 5 epochs of mini-batches of 256 (235 per epoch over 60,000 images), Adam 1e-3, L2 0.01.
_AGARWAL = SupervisedConfig(dataset="mnist", arch="fc", batch_size=256, lr=1e-3, weight_decay=0.01,
                            sampling="epochs", steps=5 * 235, checkpoint_every=235, log_checkpoints=False,
                            log_every=47)


def _fc_maml(**scale) -> MetaConfig:
    """[A]'s network meta-trained on MNIST 5-way 1-shot tasks with the book's 5-way recipe."""
    return MetaConfig(arch="fc", dataset="mnist", n_way=5, k_shot=1, q_query=5, inner_steps=1, inner_lr=0.4,
                      eval_inner_steps=3, **scale)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI only: tiny nets and a few steps so that every cell runs; numbers are meaningless.",
        test_tasks=20,
        analysis_tasks=4,
        analysis_inputs=40,
        supervised_seeds=2,
        omniglot_5w1s=MetaConfig(n_way=5, filters=8, meta_batch=2, q_query=2, steps=12,
                                 checkpoint_every=6, log_every=3, curve_tasks=8),
        omniglot_20w1s=MetaConfig(n_way=20, filters=8, meta_batch=2, q_query=1, steps=6, inner_steps=5,
                                  inner_lr=0.1, eval_inner_steps=5, checkpoint_every=1,
                                  log_every=3, curve_tasks=4),
        mnist_supervised=SupervisedConfig(filters=8, batch_size=20, steps=10, checkpoint_every=5, log_every=5),
        omniglot_20w5s=MetaConfig(n_way=20, k_shot=5, filters=8, meta_batch=2, q_query=1, steps=4, inner_steps=5,
                                  inner_lr=0.1, eval_inner_steps=5, checkpoint_every=2, log_every=2, curve_tasks=4),
        omniglot_supervised=SupervisedConfig(dataset="omniglot", filters=8, batch_size=20, steps=10,
                                             checkpoint_every=5, log_every=5),
        landscape_5w1s=MetaConfig(n_way=5, filters=8, meta_batch=2, q_query=2, inner_steps=5, inner_lr=0.1,
                                  eval_inner_steps=5, steps=6, checkpoint_every=2, log_every=2, curve_tasks=4,
                                  train_characters=10, rotate=False),
        landscape_finetune=SupervisedConfig(dataset="omniglot", characters=10, filters=8, batch_size=16, steps=6,
                                            checkpoint_every=2, log_every=2),
        landscape_sinusoid=_sinusoid(steps=6, checkpoint_every=2, log_every=2, curve_tasks=4),
        landscape_tasks=8,
        curvature_tasks=4,
        regulariser_setting=MetaConfig(n_way=5, filters=8, meta_batch=2, q_query=2, inner_steps=5, inner_lr=0.1,
                                       eval_inner_steps=5, steps=4, checkpoint_every=2, log_every=2, curve_tasks=4),
        regulariser_sweep=(1.0,),
        features_supervised=replace(_AGARWAL, batch_size=64, steps=6, checkpoint_every=3, log_every=3),
        features_maml=_fc_maml(meta_batch=2, steps=6, checkpoint_every=3, log_every=3, curve_tasks=4),
        features_seeds=2,
        features_pool=120,
        r1_settings=("omniglot_20w1s", "omniglot_20w5s"),
        anil_seeds=2,
        dtype="float64",
        compare_recipes=True,
    ),
    "cpu": Profile(
        name="cpu",
        description=("2-core CPU, book ≤ 90 min: 32 filters, meta-batch 4–8, ≤ 5,000 meta-steps; "
                     "Finn et al.'s α on the mean loss: inner steps 5× (5-way), 20× (20-way) smaller."),
        test_tasks=600,
        analysis_tasks=50,
        analysis_inputs=500,
        supervised_seeds=5,
        omniglot_5w1s=MetaConfig(n_way=5, filters=32, meta_batch=8, q_query=5, inner_steps=1,
                                 inner_lr=0.4, eval_inner_steps=3, steps=5000, checkpoint_every=500),
        omniglot_20w1s=MetaConfig(n_way=20, filters=32, meta_batch=4, q_query=5, inner_steps=5,
                                  inner_lr=0.1, eval_inner_steps=5, steps=3000, checkpoint_every=250,
                                  inner_reduction="mean", network="book"),
        mnist_supervised=SupervisedConfig(filters=64, batch_size=100, steps=200, checkpoint_every=10),
        omniglot_20w5s=MetaConfig(n_way=20, k_shot=5, filters=32, meta_batch=4, q_query=5, inner_steps=5,
                                  inner_lr=0.1, eval_inner_steps=5, steps=3000, checkpoint_every=250,
                                  inner_reduction="mean", network="book"),
        omniglot_supervised=SupervisedConfig(dataset="omniglot", filters=32, batch_size=100, steps=3000,
                                             checkpoint_every=500, log_every=100),
        landscape_5w1s=MetaConfig(n_way=5, filters=32, meta_batch=4, q_query=5, inner_steps=5, inner_lr=0.1,
                                  eval_inner_steps=5, steps=1200, checkpoint_every=100,
                                  train_characters=10, rotate=False),
        landscape_finetune=SupervisedConfig(dataset="omniglot", characters=10, filters=32, batch_size=64,
                                            steps=1200, checkpoint_every=100, log_every=50),
        landscape_sinusoid=_sinusoid(steps=3000, checkpoint_every=250, log_every=50),
        landscape_tasks=200,
        curvature_tasks=60,
        regulariser_setting=MetaConfig(n_way=5, filters=32, meta_batch=4, q_query=5, inner_steps=5, inner_lr=0.1,
                                       eval_inner_steps=5, steps=500, checkpoint_every=100),
        regulariser_sweep=(0.001, 0.01, 0.1, 1.0),
        features_supervised=_AGARWAL,
        features_maml=_fc_maml(meta_batch=8, steps=3000, checkpoint_every=500),
        anil_seeds=3,
    ),
    "paper": Profile(
        name="paper",
        description=("The papers' settings: Finn et al. 2017 App. A.1 and code (64 filters, 60,000 "
                     "meta-steps, Σℓ/K inner loss); Goerttler & Obermayer §4 on MNIST. Hours on a GPU."),
        test_tasks=600,
        analysis_tasks=50,
        analysis_inputs=500,
        supervised_seeds=5,
        omniglot_5w1s=_PAPER_5W,
        omniglot_20w1s=_PAPER_20W,
        mnist_supervised=SupervisedConfig(filters=64, batch_size=100, steps=200, checkpoint_every=10),
        omniglot_20w5s=replace(_PAPER_20W, k_shot=5),
        omniglot_supervised=SupervisedConfig(dataset="omniglot", filters=64, batch_size=100, steps=30_000,
                                             checkpoint_every=1000, log_every=100),
        landscape_5w1s=replace(_PAPER_20W, n_way=5, steps=50_000, checkpoint_every=500, log_checkpoints=False),
        landscape_finetune=SupervisedConfig(dataset="omniglot", filters=64, batch_size=64, steps=2500,
                                            checkpoint_every=25, log_checkpoints=False, log_every=25),
        landscape_sinusoid=_sinusoid(steps=70_000, checkpoint_every=1000, log_checkpoints=False),
        landscape_tasks=500,
        curvature_tasks=60,
        regulariser_setting=_PAPER_20W,
        regulariser_seeds=5,
        features_supervised=_AGARWAL,
        features_maml=_fc_maml(meta_batch=32, steps=20_000, checkpoint_every=1000),
        r1_settings=("omniglot_20w1s", "omniglot_20w5s"),
        anil_seeds=3,
    ),
}


def dry_run(profile: Profile, steps: int = 3) -> Profile:
    """``profile`` with every count cut, so that the whole book executes at its shapes in minutes
    on a CPU: each training run ``steps`` steps with a checkpoint at every step, 4 learning-curve
    tasks per checkpoint, and the smoke profile's counts of test tasks, analysis tasks, inputs and
    seeds. Everything else (filters, ways, shots, queries, meta-batch, inner steps and step
    sizes, the inner loss and network, dtype, the settings trained) is ``profile``'s, so a rerun
    takes the code paths ``profile`` takes, and a shape, dtype or device error in one of them
    shows in minutes instead of hours into a GPU job. The numbers mean nothing."""
    def cut(cfg):
        if isinstance(cfg, MetaConfig):
            return replace(cfg, steps=steps, checkpoint_every=1, log_every=1, curve_tasks=min(cfg.curve_tasks, 4))
        if isinstance(cfg, SupervisedConfig):
            return replace(cfg, steps=steps, checkpoint_every=1, log_every=1)
        return cfg

    counts = {f.name: getattr(PROFILES["smoke"], f.name) for f in dataclasses.fields(Profile)
              if f.type in ("int", int) and f.name not in ("anil_seeds",)}
    counts["anil_seeds"] = min(profile.anil_seeds, 2)
    counts["timing_repeats"] = 2
    counts["test_tasks"] = 120  # more than one of evaluate's chunks of 100 tasks, as 600 are
    fields = {f.name: cut(getattr(profile, f.name)) for f in dataclasses.fields(profile)}
    fields.update(counts, name=f"{profile.name}-dry", description=(
        f"A dry run of the {profile.name} profile: its settings and shapes, every count cut ({steps} "
        f"steps per run, {counts['test_tasks']} test tasks); checks the code paths, numbers meaningless."))
    return Profile(**fields)


PROFILES["paper-dry"] = dry_run(PROFILES["paper"])


# -- the long regime: the 20-way claims near the papers' setting --------------------------------
#: Finn et al.'s 20-way 1-shot recipe at shapes a 2-core CPU affords (the regime trial's,
#: :mod:`mamlscope.studies.regime`), ordered from the paper's shape (1 query per class, meta-batch
#: 16, 64 filters) down.
REGIME_SHAPES = {
    "finn-queries": {"q_query": 1, "meta_batch": 16, "filters": 32},
    "cpu": {"q_query": 5, "meta_batch": 4, "filters": 32},
}
#: The shape the regime trial's rule chose (``book/results/long/studies/regime.json``).
LONG_SHAPE = "finn-queries"
#: The long run: that shape and its length T (set when ``regime fork`` makes it, once the trial's
#: curve has levelled off there); ``None`` until then.
LONG_RUN: dict | None = None
#: The long runs' checkpoints that are kept once forked and shipped: every ``LONG_EVERY`` steps, the
#: log-spaced early ones and the last (they checkpoint every 500 steps to resume, and log the
#: learning curve there; the chapters and the book's files need fewer).
LONG_EVERY = 2_500


def regime_config(shape: str, steps: int = 60_000, algorithm: str = "maml", seed: int = 0) -> MetaConfig:
    """The cpu profile's 20-way 1-shot setting under Finn et al.'s recipe (Σℓ/K inner loss, their
    network, 5 inner steps at α = 0.1), with ``shape``'s queries, meta-batch and filters,
    ``steps`` long, a checkpoint every 500 steps, trained with ``algorithm`` from ``seed``."""
    if shape not in REGIME_SHAPES:
        raise ValueError(f"shape={shape!r}; use one of {', '.join(REGIME_SHAPES)}.")
    return replace(PROFILES["cpu"].omniglot_20w1s, inner_reduction="sum/k", network="finn", steps=steps,
                   checkpoint_every=500, algorithm=algorithm, seed=seed, **REGIME_SHAPES[shape])


def long_profile(shape: str, steps: int) -> Profile:
    """The ``long`` profile: the cpu profile with its 20-way 1-shot model replaced by the regime
    trial's ``shape`` at ``steps`` (MAML; ANIL under the same recipe, seeds 0 and 1), so chapters
    1–4 and 7 read the 20-way claims off a model trained until its curve levelled off. Every
    other setting is the cpu profile's (the same cached runs). Named ``long`` at the chosen length
    (:data:`LONG_RUN`), ``long@STEPS`` at another (the budget study's shorter forks)."""
    cpu = PROFILES["cpu"]
    name = "long" if LONG_RUN == {"shape": shape, "steps": steps} else f"long@{steps}"
    return replace(cpu, name=name, omniglot_20w1s=regime_config(shape, steps), anil_seeds=2,
                   description=(f"cpu, with the 20-way 1-shot model under Finn et al.'s recipe (Σℓ/K, their "
                                f"network, α = 0.1) at {steps:,} steps, {REGIME_SHAPES[shape]['q_query']} "
                                f"query per class, meta-batch {REGIME_SHAPES[shape]['meta_batch']}, "
                                f"{REGIME_SHAPES[shape]['filters']} filters: trained until its curve levelled "
                                "off, read from shipped checkpoints"))


if LONG_RUN is not None:
    PROFILES["long"] = long_profile(**LONG_RUN)


def _valid_overrides(profile: Profile) -> list[str]:
    keys = []
    for f in dataclasses.fields(profile):
        value = getattr(profile, f.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{f.name}__{g.name}" for g in dataclasses.fields(value) if g.name != "dtype"]
        elif f.name not in ("name", "description"):
            keys.append(f.name)
    return keys


def known(name: str) -> bool:
    """Whether ``name`` is a profile :func:`load` gives (one of :data:`PROFILES` or ``long@STEPS``)."""
    try:
        load(name)
    except ValueError:
        return False
    return True


def load(name: str = "cpu", **overrides) -> Profile:
    """The profile ``name`` with ``overrides`` applied (``None`` values are ignored, so a
    notebook can pass its optional parameters straight through). ``long@STEPS`` is the long
    profile with its 20-way runs at STEPS (:func:`long_profile`)."""
    if name.startswith("long@"):
        steps = name.partition("@")[2]
        if not steps.isdigit() or int(steps) % 500:
            raise ValueError(f"profile {name!r}: long@STEPS takes a step the regime trial checkpointed "
                             "(a multiple of 500), e.g. long@10000.")
        return _with_overrides(long_profile(LONG_SHAPE, int(steps)), overrides)
    if name == "long" and name not in PROFILES:
        raise ValueError("the long profile's run is not chosen yet: the regime trial trains until its learning "
                         "curve levels off, then `python -m mamlscope regime fork SHAPE --at T` makes it and sets "
                         "profiles.LONG_RUN (README, 'The long regime').")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}.")
    return _with_overrides(PROFILES[name], overrides)


def _with_overrides(profile: Profile, overrides: dict) -> Profile:
    """``profile`` with ``overrides`` (``field`` or ``field__subfield``; ``None`` ignored) applied,
    after checking every key."""
    name = profile.name
    valid = _valid_overrides(profile)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r} for profile {name!r}; valid parameters: "
                             f"{', '.join(valid)}.")
        field, _, sub = key.partition("__")
        if sub:
            value = replace(getattr(profile, field), **{sub: value})
        profile = replace(profile, **{field: value})
    return profile


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'cpu' or 'auto'.")
    return dev


def alternative_recipe(cfg: MetaConfig) -> MetaConfig:
    """``cfg`` with the other inner-loop recipe: the mean loss on the book's network, or Finn et
    al.'s Σℓ/K on their network (same α, same scale)."""
    if cfg.inner_reduction == "mean":
        return replace(cfg, inner_reduction="sum/k", network="finn")
    return replace(cfg, inner_reduction="mean", network="book")
