"""The claim registry: every claim the book judges, with its rule, registered before measuring.

One :class:`Claim` per id of ``CLAIMS.md`` (G, L, R, A), then the base-protocol claims the book
adds (F: Finn et al.). A claim holds its one-line statement (paraphrased), the paper's value, its
source, the chapter that judges it, its verdict rule (:mod:`mamlscope.verdict.results`), an optional
precondition (failing → *inconclusive*), and how its measurement is written. Chapters show their
claims with :func:`table` before measuring and finish with :func:`record`; the scorecard reads the
same registry, so a statement or a rule lives in one place only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math as _math
from dataclasses import dataclass
from typing import Callable, Mapping

import pandas as pd

from mamlscope.evidence import Evidence
from mamlscope.measure import landscape
from mamlscope.stats import detectable, interval_power, overlap_power, t_interval, window_rise
from mamlscope.training.profiles import load
from mamlscope.verdict import attached, results
from mamlscope.verdict.results import AllChecks, Check, ClaimResult, MatchesPaper, Protocol, lookup


def _layers(d: Mapping, fmt: str = ".2f") -> str:
    return ", ".join(f"{k} {v:{fmt}}" for k, v in d.items())


def _points(v: Mapping, name: str, k: str) -> str:
    """``v[name][k]`` with its interval ``v[name_lo][k]``, ``v[name_hi][k]``, in signed points."""
    return f"{100 * v[name][k]:+.1f} [{100 * v[name + '_lo'][k]:+.1f}, {100 * v[name + '_hi'][k]:+.1f}]"


def _accuracy(v: Mapping) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['ci95']:.1f}% ({v['n_tasks']} tasks)"


def _error_vs(paper_mean: float) -> Callable[[Mapping], str]:
    """F1/F2: the accuracy, and its error rate as a multiple of the paper's."""
    return lambda v: (_accuracy(v) + f"; error rate {100 * (1 - v['mean']):.1f}%, "
                      f"{(1 - v['mean']) / (1 - paper_mean):.1f}× the paper's")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str                       # one line, paraphrased from the source
    paper: str                           # the paper's value, as shown beside ours
    source: str                          # where the paper says it
    chapter: str = ""                    # the notebook that judges it ("" = no chapter yet)
    rule: AllChecks | MatchesPaper | Protocol | None = None
    precondition: tuple[Check, ...] = ()  # any fails → inconclusive
    measured: Callable[[Mapping], str] | None = None  # values → the "measured" column
    depends_on: str = ""                 # the accuracy claim of the model it is measured on
    # power (CLAIMS.md protocol 3): decisive check key → the paper's effect on its estimate (the
    # smallest its statement implies, said in ``effect_text``), and the values' key of the sample
    paper_effect: Mapping[str, float] = dataclasses.field(default_factory=dict)
    effect_text: str = ""
    no_size_text: str = ""               # why a decisive check without a paper effect has none
    power_centre: Mapping[str, str] = dataclasses.field(default_factory=dict)  # check key → its centre's key
    sample: tuple[str, str] = ("", "")   # (values key of the sample size, its unit)
    power_fn: Callable[[Mapping], dict] | None = None  # values → {element: (power, sample text)} by simulation
    power_keys: tuple[str, ...] = ()     # the decisive checks (by key) power_fn speaks for (() = all)
    needs_converged: bool = False        # read off a trained model / states an accuracy: regime precondition
    about_inner_loop: bool = False       # about what the inner loop does: precondition "the inner loop is the paper's"
    exceeds: Check | None = None         # the measured interval wholly above the paper's level
    specific: bool = False               # the statement says the observation is specific to what the
    #                                      rule's near control removes: its control showing it → not reproduced
    setting: tuple[str, ...] = ()        # regime labels whose paper value the statement depends on:
    setting_why: str = ""                # precondition "the paper's setting", and why it matters

    def rule_text(self) -> str:
        text = self.rule.text() if self.rule is not None else "—"
        pre = [c.text() for c in self.precondition] + ([self.setting_text()] if self.setting else [])
        if pre:
            text = "precondition " + "; ".join(pre) + " (else inconclusive); " + text
        return text

    def setting_text(self) -> str:
        """The precondition "the paper's setting" in words ("" when the claim has none)."""
        return f"the paper's {' and '.join(self.setting)}" if self.setting else ""


_G1 = "02_early_layers_change_little"
_G3 = "03_inner_steps_vs_meta_steps"
_F = "01_maml_on_omniglot"
_R = "04_rapid_learning_or_feature_reuse"
_L = "05_objective_landscapes"
_L6 = "06_coherence_regulariser"
_A = "07_what_the_features_look_like"

# [L]'s argument looks past the point where accuracy turns down: without meta-overfitting there is
# nothing to look past. The drop is bias-corrected (mamlscope.measure.landscape.peak: a flat curve with the
# same noise shows a drop too) and must exceed a flat curve's 95% quantile. ``each`` value per run.
_META_OVERFITS = (Check("meta-overfitting: accuracy falls ≥ 1 point after its peak (bias-corrected)",
                        "overfit_drop", ">=", 0.01),
                  Check("… beyond a flat curve's drop (its 95% quantile)", "overfit_excess", ">", 0),
                  Check("≥ 5 uniform checkpoints from the peak on", "after_checkpoints", ">=", 5))
# [L]'s tracking claims are about the meta-overfitting its learners reached by long training on the
# full training set; the book induces it with a small one (CLAIMS.md, protocol 5: the paper's setting)
_L_SETTING = dict(setting=("training characters",),
                  setting_why="[L]'s meta-overfitting came after 50,000 steps on every training character; here "
                              "a 10-character training set induces it within 1,200 steps, another route to it")
_TRACK_CONTROL = ("the step counter and −support loss in place of the signal (same code, same checkpoints); "
                  "null_values: per key the more favourable of the two, so rejecting it rejects each")


def _tracks(what: str, target: str = "accuracy", each: bool = True) -> tuple[Check, ...]:
    """The decisive checks of a "signal tracks generalisation" claim, phase by phase on the
    uniform checkpoint grid: it must follow ``target`` down after the peak, and beat both
    controls over the whole run (paired bootstrap over checkpoints)."""
    return (Check(f"follows {target} down after its peak: ρ({what}, {target}) from the peak on, 95% CI above 0",
                  "rho_after_lo", ">", 0, each=each),
            Check(f"beats the step counter: ρ({what}, {target}) − ρ(step, {target}), 95% CI above 0",
                  "vs_step_lo", ">", 0, each=each),
            Check(f"beats the support loss: ρ({what}, {target}) − ρ(−support loss, {target}), 95% CI above 0",
                  "vs_support_lo", ">", 0, each=each))


_TRACK_KEYS = ("rho_after_lo", "vs_step_lo", "vs_support_lo")  # the keys of _tracks' checks


def _tracking_power(v: Mapping) -> dict:
    """Per run: the share of simulated perfect trackers that pass the "tracks" checks at the
    recorded noise (:func:`mamlscope.measure.landscape.tracking_power`, 100 draws), and how many times
    the test tasks per checkpoint would bring it to 80% (50 draws per factor)."""

    out = {}
    for run, series in v["series"].items():
        pw = landscape.tracking_power(series, 100)
        factor = next((k for k in (2, 4, 8, 16) if landscape.tracking_power(series, 50, task_factor=k) >= 0.8),
                      None) if pw < 0.8 else 1
        out[run] = (pw, f"about {factor}× the test tasks per checkpoint" if factor else
                    "no more than 16× the test tasks per checkpoint")
    return out


def _rise(what: str) -> tuple[Check, ...]:
    return (Check(f"rises with accuracy up to the peak: ρ({what}, accuracy) ≥ 0.5 (point estimate)",
                  "rho_up", ">=", 0.5, each=True),)


def _track_text(v: Mapping, label: str) -> str:
    """Per run: ρ up to / from the peak, and the margins over the two controls."""
    return "; ".join(
        f"{k}: ρ({label}, score) {v['rho_up'][k]:+.2f} up to the peak ({v['up_checkpoints'][k]} checkpoints), "
        f"{v['rho_after'][k]:+.2f} [{v['rho_after_lo'][k]:+.2f}, {v['rho_after_hi'][k]:+.2f}] from it on "
        f"({v['after_checkpoints'][k]}); − step counter's {v['vs_step'][k]:+.2f} [{v['vs_step_lo'][k]:+.2f}, "
        f"{v['vs_step_hi'][k]:+.2f}], − (−support loss)'s {v['vs_support'][k]:+.2f} "
        f"[{v['vs_support_lo'][k]:+.2f}, {v['vs_support_hi'][k]:+.2f}]" for k in v["rho_after"])


def _overfit_text(v: Mapping) -> str:
    return "; " + ", ".join(
        f"{k} accuracy peaks at step {v['peak_step'][k]} ({100 * v['peak_score'][k]:.1f}%), ends at "
        f"{100 * v['final_score'][k]:.1f}% (−{100 * v['overfit_raw_drop'][k]:.1f} points, "
        f"{100 * v['overfit_drop'][k]:.1f} bias-corrected)" for k in v["peak_step"])


def null_envelope(claim_id: str, values: Mapping, controls: Mapping[str, Mapping]) -> dict:
    """The null_values of a claim with several controls: ``values`` with every key a check of
    its rule reads replaced, element by element, by the controls' most favourable value (the
    largest for ``>``/``>=``, the smallest for ``<``/``<=``). A rule that rejects this envelope
    rejects each control; keys no control has keep their measured value."""

    rule = claim(claim_id).rule
    out = {k: x for k, x in values.items() if k not in ("controls",) and "series" not in k}
    for check in (*rule.decisive, *rule.secondary):
        have = [c[check.key] for c in controls.values() if check.key in c]
        if not have:
            continue
        pick = max if check.op in (">", ">=") else min

        def best(xs):
            xs = [x for x in xs if not _math.isnan(x)]
            return pick(xs) if xs else _math.nan
        if isinstance(have[0], Mapping):
            out[check.key] = {k: best([h[k] for h in have]) for k in have[0]}
        else:
            out[check.key] = best(have)
    return out


def _error_change(r: float) -> str:
    """A relative change of the error rate in words: "reduced by 8%" or "increased by 8%"."""
    return f"{'reduced' if r >= 0 else 'increased'} by {100 * abs(r):.0f}%"


def _l6_measured(v: Mapping) -> str:
    out = (f"{v['setting']}, γ = {v['gamma']}: regularised − plain {100 * v['diff']:+.2f} "
           f"[{100 * v['diff_lo']:+.2f}, {100 * v['diff_hi']:+.2f}] points over {v['seeds']} seeds (per seed: "
           + ", ".join(f"{100 * d:+.2f}" for d in v["diff_by_seed"].values())
           + f"; {v['n_tasks']} tasks each); error rate {_error_change(v['error_reduction'])}")
    if "rise" in v:
        out += "; rise over the last 40% of training: " + ", ".join(
            f"{arm} {100 * v['rise'][arm]:+.1f} [{100 * v['rise_lo'][arm]:+.1f}, {100 * v['rise_hi'][arm]:+.1f}]"
            for arm in v["rise"]) + " points"
    return out


# [A]: the claims about features are contrasts with controls measured by the same code on the
# same points (raw pixels, a random-init network), by a margin of 2 points of 5-NN accuracy.
_A_MARGIN = 0.02
AGARWAL_BASELINE = 0.9671  # [A] §3.1, one run: A1a's paper value


def _pts(v: Mapping, name: str) -> str:
    """``v[name]`` in signed points with its interval ``[v[name_lo], v[name_hi]]``."""
    return f"{100 * v[name]:+.1f} [{100 * v[name + '_lo']:+.1f}, {100 * v[name + '_hi']:+.1f}]"


def _per_seed(v: Mapping, key: str, label: str) -> str:
    """``"; <label>: +x, +y, …"`` (signed points per seed) when ``v`` has ``key``, else ""."""
    if key not in v:
        return ""
    return f"; {label}: " + ", ".join(f"{100 * d:+.1f}" for d in v[key].values())


def _beats_controls(what: str) -> tuple[Check, ...]:
    return (Check(f"{what} beats raw pixels: 95% CI of the paired 5-NN gain above +2 points",
                  "gain_raw_lo", ">", _A_MARGIN),
            Check(f"{what} beats a random-init network's: 95% CI of the paired 5-NN gain above +2 points",
                  "gain_random_lo", ">", _A_MARGIN))


def _features_pair(claim_id: str, statement: str, where: str, control: str, per_seed: bool, **extra) -> "Claim":
    """A1b/A1c: MAML's features against supervised ones, 5-NN accuracy on the same points:
    non-inferior by a 2-point margin, and better than both controls by 2 points (a random-init
    network in MAML's place must fail). ``per_seed``: also against each supervised seed."""
    secondary = (Check("non-inferior to each supervised seed: 95% CI of (MAML − that seed) above −2 points",
                       "seed_diff_lo", ">", -_A_MARGIN, each=True),) if per_seed else ()
    return Claim(claim_id, statement,
                 paper="MAML learns features broadly suited to many tasks ([F], quoted by [A] §1); not measured in [A]",
                 source="[A] §1, §4 (planned)", chapter=_A,
                 rule=Protocol(decisive=(Check("non-inferior: 95% CI of (MAML − supervised) 5-NN accuracy above "
                                               "−2 points", "diff_lo", ">", -_A_MARGIN),
                                         *_beats_controls("MAML's layer")),
                               secondary=secondary, control=control),
                 measured=lambda v: (f"{where}: 5-NN MAML {100 * v['maml']:.1f}%, supervised "
                                     f"{100 * v['supervised']:.1f}% (raw pixels {100 * v['raw']:.1f}%, random init "
                                     f"{100 * v['random']:.1f}%); MAML − supervised {_pts(v, 'diff')}, MAML − raw "
                                     f"pixels {_pts(v, 'gain_raw')}, MAML − random init {_pts(v, 'gain_random')} "
                                     f"points ({v['pool']} points, paired)"
                                     + _per_seed(v, "seed_diff", "per supervised seed")),
                 **extra)


def _a1_measured(v: Mapping) -> str:
    return (f"supervised FC, {v['pool']} held-out MNIST test images: 5-NN in 64-d {100 * v['sup_knn']:.1f}% "
            f"(raw pixels {100 * v['raw_knn']:.1f}%, random init {100 * v['random_knn']:.1f}%), gain over raw "
            f"pixels {_pts(v, 'gain_raw')}, over random init {_pts(v, 'gain_random')} points; t-SNE plane "
            f"{100 * v['sup_tsne']:.1f}% (raw pixels' {100 * v['raw_tsne']:.1f}%), gain {_pts(v, 'gain_raw_tsne')} "
            f"points; PCA plane {100 * v['sup_pca']:.1f}%"
            + _per_seed(v, "seed_gain_raw", "64-d gain over raw pixels per seed"))


def _a1a_measured(v: Mapping) -> str:
    d = v["mean"] - AGARWAL_BASELINE
    side = "above" if d > 0 else "below" if d < 0 else "at"
    return (f"{100 * v['mean']:.2f}% over {v['seeds']} seeds ("
            + ", ".join(f"{100 * a:.2f}" for a in v["by_seed"].values())
            + f"; 10,000 test images each): {side} the paper's 96.71% by {100 * abs(d):.2f} points (error rate "
              f"{100 * (1 - v['mean']):.2f}% vs 3.29%); 95% prediction interval for one more run "
              f"[{100 * v['pi_lo']:.2f}, {100 * v['pi_hi']:.2f}]%")


def _g1_measured(v: Mapping) -> str:
    n = len(v["rho_lo"])
    order = sum(x >= 0.7 for x in v["rho_lo"])
    beyond = sum(x > 0 for x in v["slope_diff_lo"])
    return (f"ρ(depth, d) CI lower bound ≥ 0.7 at {order}/{n} checkpoints (mean ρ "
            f"{min(v['rho']):.2f}–{max(v['rho']):.2f}; control's {min(v['rho_control']):.2f}–"
            f"{max(v['rho_control']):.2f}); log-depth slope above the control's at {beyond}/{n} "
            f"(difference {min(v['slope_diff']):+.2f} to {max(v['slope_diff']):+.2f}); "
            f"{v['metric']} RDMs, {v['n_tasks']} tasks")


def _g2_measured(v: Mapping) -> str:
    margin = ", ".join(f"{k} {v['early_margin'][k]:+.4f} (≥ {v['early_margin_lo'][k]:+.4f})"
                       for k in v["early_margin"])
    return (f"RSA ({v['metric']}) ρ {v['rsa_rho']:.2f} [{v['rsa_rho_lo']:.2f}, "
            f"{v['rsa_rho_hi']:.2f}] (control {v['rsa_rho_control']:.2f}); {v['kernel']} CKA ρ "
            f"{v['cka_rho']:.2f} [{v['cka_rho_lo']:.2f}, {v['cka_rho_hi']:.2f}] (control "
            f"{v['cka_rho_control']:.2f}); RSA log-depth slope − control's {v['slope_diff']:+.2f} "
            f"[{v['slope_diff_lo']:+.2f}, {v['slope_diff_hi']:+.2f}]; CKA − (1 − d): {margin}; "
            f"{v['n_seeds']} seeds")


def _collapse_text(v: Mapping) -> str:
    """G3: the learning curve's largest fall in the plateau window, when it is ≥ 2 points."""
    c = v.get("collapse") or {}
    if not c or c.get("drop", 0) < 0.02:
        return ""
    return (f"; in the window the learning curve falls {100 * c['from']:.0f}% → "
            f"{100 * c['to']:.0f}% at step {c['step']} (ends at {100 * c['final']:.0f}%)")


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    # Goerttler & Obermayer — similarity of representations
    Claim("G1", "After fine-tuning on new tasks, early layers stay closer to the meta-initialisation's "
                "representations than later layers, at every stage of meta-training",
          paper="dissimilarity rises with depth at every checkpoint (Fig 1a, 50 tasks)",
          source="[G] §4, Fig 1a", chapter=_G1, depends_on="F2", needs_converged=True,
          rule=Protocol(
              decisive=(Check("depth ordering at checkpoint: ρ(depth, d), 95% CI lower bound ≥ 0.7",
                              "rho_lo", ">=", 0.7, each=True),),
              control="θ_c moved at random by the inner loop's own per-tensor change norms on "
                      "each task (controls.matched_perturbation): same layer sizes of change, "
                      "random direction; null values: a second such draw in the inner loop's place",
              specific_to="the inner loop's directions (θ moved at random by the same per-layer amounts "
                          "shows the ordering too)",
              beyond=(Check("ordering beyond the control at checkpoint: log-depth slope of d, "
                            "inner loop − control, 95% t CI over tasks above 0",
                            "slope_diff_lo", ">", 0, each=True),)),
          measured=_g1_measured),
    Claim("G2", "The same depth ordering appears in plain supervised training on MNIST (RSA and CKA), "
                "so it is not specific to MAML",
          paper="RSA dissimilarity rises and CKA falls with depth; CKA higher in early layers (Fig 2)",
          source="[G] §4, Fig 2", chapter=_G1,
          rule=Protocol(
              decisive=(Check("RSA grows with depth (ρ's 95% CI lower bound over seeds ≥ 0.7)",
                              "rsa_rho_lo", ">=", 0.7),
                        Check("CKA falls with depth (ρ's 95% CI upper bound over seeds ≤ −0.7)",
                              "cka_rho_hi", "<=", -0.7)),
              secondary=(Check("CKA similarity above RSA's, 1 − d (conv1–3; 95% t CI lower bound of the "
                               "difference over seeds above 0)", "early_margin_lo", ">", 0, each=True),),
              control="the random init θ_0 moved at random by training's per-tensor distances "
                      "θ_T − θ_0 (controls.matched_perturbation), same MNIST images: a network "
                      "that travelled as far per layer without learning; null values: a second "
                      "such draw in the trained runs' place",
              specific_to="training (a network moved at random by the same per-layer distances shows "
                          "the ordering too)",
              beyond=(Check("ordering beyond the control: RSA log-depth slope, trained − control, "
                            "95% t CI over seeds above 0", "slope_diff_lo", ">", 0),)),
          measured=_g2_measured),
    Claim("G3", "The representation change caused by meta-training levels off at a small "
                "plateau: near zero in the first layers, larger (≈ 0.1) in the last "
                "pooling layers",
          paper="≈ 0 (first layers), ≈ 0.1 (last pooling layers: conv4 here), Δ = 1000 of "
                "60,000 steps (Fig 1b)",
          source="[G] §4, Fig 1b", chapter=_G3, depends_on="F2", needs_converged=True,
          precondition=(Check("conv4 has levelled off (its change over the second half "
                              "drifts ≤ 25%, medians of the halves)",
                              "drift_last", "<=", 0.25),),
          rule=Protocol(
              decisive=(Check("conv4 plateau ≥ 0.05 (≈ 0.1 within 2×)",
                              "plateau_last", ">=", 0.05),
                        Check("conv4 plateau ≤ 0.2 (≈ 0.1 within 2×)",
                              "plateau_last", "<=", 0.2),
                        Check("conv4 changes more under meta-training's steps than under "
                              "random steps of their sizes: log ratio per interval of the "
                              "second half, 95% t CI above 0",
                              "excess_last_lo", ">", 0)),
              control="each meta-training interval's change of θ replaced by a random "
                      "step of the same per-tensor norms, from the same θ_t, on the same "
                      "inputs (the contrast: against a second such draw)"),
          measured=lambda v: (
              f"plateau (median over the second half) conv1 {v['plateau_first']:.3f}, "
              f"{v['last_layer']} {v['plateau_last']:.3f}, {v['last_layer']} drift "
              f"{100 * v['drift_last']:.0f}%, log(change / random step's) "
              f"{v['excess_last']:+.2f} [{v['excess_last_lo']:+.2f}, "
              f"{v['excess_last_hi']:+.2f}] (Δ = {v['delta']} of {v['steps']} steps; "
              f"{v['metric']} RDMs)" + _collapse_text(v))),
    Claim("G4", "The inner loop, even a single step, changes representations more than "
                "meta-training does between checkpoints, in every layer, the early ones "
                "included",
          paper="inner-loop change larger in every layer, especially the early ones (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3, depends_on="F2", needs_converged=True, about_inner_loop=True,
          rule=Protocol(
              decisive=(Check("inner(1 step) / meta in conv1–3: 95% CI above 1",
                              "early_ratio_1_lo", ">", 1, each=True),),
              secondary=(Check("… and in conv4 and the head", "late_ratio_1_lo", ">", 1,
                               each=True),),
              control="the one-step change replaced by a random change of the same "
                      "per-tensor norms (θ_c + u, ‖u‖ = ‖θ_c⁽¹⁾ − θ_c‖ per tensor), the "
                      "same ratio",
              trivial="a random change of the inner step's size barely moves a layer's RDM (ratios near 0), "
                      "so rejecting it says only that the inner loop's change is not random"),
          measured=lambda v: ("inner(1 step) / meta: " + ", ".join(
              f"{k} {v['ratio_1'][k]:.2f} [{v['ratio_1_lo'][k]:.2f}, "
              f"{v['ratio_1_hi'][k]:.2f}]" for k in v["ratio_1"])
              + f" ({v['metric']} RDMs; t intervals over {v['n_tasks']} tasks, "
              "checkpoints fixed)")),
    Claim("G5", "Most of the inner loop's change happens in its first step; further steps "
                "add little",
          paper="the first inner step does most of the change; 5 or 10 add little (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3, depends_on="F2", needs_converged=True, about_inner_loop=True,
          precondition=(Check("trained with ≥ 5 inner steps", "train_inner_steps", ">=", 5),
                        Check("support loss after step 1 not saturated (≥ 5% of its "
                              "value before)", "support_loss_ratio_1", ">=", 0.05)),
          rule=Protocol(
              decisive=(Check("steps 2–10 add little: d(1→10) / d(0→1), 95% CI upper "
                              "bound < 0.5", "later_share_hi", "<", 0.5, each=True),),
              control="a step counter: θ moved along the straight line to its 10-step "
                      "adaptation, a tenth per step (uniform progress), the same ratio"),
          measured=lambda v: (
              "d(1→10) / d(0→1): " + ", ".join(
                  f"{k} {v['later_share'][k]:.2f} [{v['later_share_lo'][k]:.2f}, "
                  f"{v['later_share_hi'][k]:.2f}]" for k in v["later_share"])
              + f" ({v['n_tasks']} tasks); support loss after step 1: "
              f"{100 * v['support_loss_ratio_1']:.0f}% of before")),
    # Guiroy, Verma & Pal — objective landscapes
    Claim("L1", "Curvature at adapted meta-test solutions rises, then falls, and keeps falling after "
                "meta-overfitting: flatness does not track generalisation",
          paper="E‖H‖σ rises then falls; keeps falling after the accuracy peak; follows the support loss "
                "for fine-tuning (Figs 2–4)", source="[L] §5.1", chapter=_L,
          precondition=_META_OVERFITS, **_L_SETTING,
          rule=Protocol(
              decisive=(Check("flatness moves against accuracy after its peak: ρ(E‖H‖σ, accuracy) from the "
                              "peak on, 95% CI above 0 (flatter while accuracy falls)", "rho_after_lo", ">", 0,
                              each=True),),
              secondary=(Check("curvature rises: its maximum exceeds step 0's by > 2 SE", "rise_z", ">", 2, each=True),
                         Check("then falls: its maximum exceeds the last checkpoint's by > 2 SE", "fall_z", ">", 2,
                               each=True),
                         Check("fine-tune baseline: curvature follows the support loss better than a step counter "
                               "does, ρ difference 95% CI above 0", "finetune_vs_step_lo", ">", 0)),
              control="the error rate 1 − accuracy in place of E‖H‖σ (a signal that does track generalisation; "
                      "same code, same checkpoints)",
              trivial="1 − accuracy moves against accuracy by construction (ρ = −1), so the rule rejects it "
                      "whatever the data"),
          measured=lambda v: ("; ".join(
              f"{k}: ρ(E‖H‖σ, accuracy) {v['rho_up'][k]:+.2f} up to the peak, {v['rho_after'][k]:+.2f} "
              f"[{v['rho_after_lo'][k]:+.2f}, {v['rho_after_hi'][k]:+.2f}] from it on; E‖H‖σ peaks at step "
              f"{v['curvature_peak_step'][k]} (rise {v['rise_z'][k]:.1f} SE, fall {v['fall_z'][k]:.1f} SE)"
              for k in v["rise_z"])
              + f"; fine-tune ρ(E‖H‖σ, support loss) {v['finetune_rho']:+.2f} − step counter's "
                f"{v['finetune_vs_step']:+.2f} [{v['finetune_vs_step_lo']:+.2f}, {v['finetune_vs_step_hi']:+.2f}]"
              + _overfit_text(v))),
    Claim("L2", "The mean cosine between meta-test adaptation directions tracks target accuracy; for a "
                "fine-tuned baseline the directions are near-orthogonal",
          paper="correlates with target accuracy; ≈ 0 for fine-tuning (Figs 5–6)", source="[L] §5.2", chapter=_L,
          precondition=_META_OVERFITS, **_L_SETTING,
          rule=Protocol(
              decisive=_tracks("E[θ⃗ᵢᵀθ⃗ⱼ]") + (
                  Check("fine-tune less coherent than the meta-learner: mean cosine (meta-learner − fine-tune) "
                        "over trained checkpoints, 95% CI above 0", "meta_minus_finetune_lo", ">", 0, each=True),),
              secondary=_rise("E[θ⃗ᵢᵀθ⃗ⱼ]"), control=_TRACK_CONTROL),
          power_fn=_tracking_power, power_keys=_TRACK_KEYS,
          effect_text="a signal that tracks the true accuracy perfectly, through the recorded accuracy noise",
          measured=lambda v: (_track_text(v, "E[θ⃗ᵢᵀθ⃗ⱼ]") + "; mean cosine: fine-tune "
                              f"{v['finetune_traj']:.3f}, " + ", ".join(
                                  f"{k} {v['meta_traj'][k]:.3f} (− fine-tune {v['meta_minus_finetune'][k]:+.3f} "
                                  f"[{v['meta_minus_finetune_lo'][k]:+.3f}, {v['meta_minus_finetune_hi'][k]:+.3f}])"
                                  for k in v["meta_traj"]) + _overfit_text(v))),
    Claim("L3", "With one inner step, the mean inner product of meta-test gradients at θ tracks "
                "generalisation", paper="correlates with generalisation, more consistently than L2 (Fig 7)",
          source="[L] §5.3", chapter=_L, precondition=_META_OVERFITS, **_L_SETTING,
          rule=Protocol(decisive=_tracks("E[gᵢᵀgⱼ]"), secondary=_rise("E[gᵢᵀgⱼ]"), control=_TRACK_CONTROL),
          power_fn=_tracking_power,
          effect_text="a signal that tracks the true accuracy perfectly, through the recorded accuracy noise",
          measured=lambda v: (_track_text(v, "E[gᵢᵀgⱼ]") + _overfit_text(v) + (
              "; for comparison, 5 inner steps: " + ", ".join(
                  f"{k} {v['five_steps']['rho_after'][k]:+.2f} [{v['five_steps']['rho_after_lo'][k]:+.2f}, "
                  f"{v['five_steps']['rho_after_hi'][k]:+.2f}] from the peak on"
                  for k in v["five_steps"]["rho_after"]) if v.get("five_steps") else ""))),
    Claim("L4", "That gradient coherence also tracks generalisation in few-shot sinusoid regression",
          paper="correlates with −MSE (Fig 8)", source="[L] §5.3.1", chapter=_L,
          precondition=(Check("the meta-learner generalises: best meta-test MSE ≤ half of predicting 0",
                              "mse_best_ratio", "<=", 0.5),
                        Check("−MSE falls after its peak beyond a flat curve's drop (95% quantile)",
                              "overfit_excess", ">", 0),
                        Check("≥ 5 uniform checkpoints from the peak on", "after_checkpoints", ">=", 5)),
          rule=Protocol(decisive=_tracks("E[gᵢᵀgⱼ]", "−MSE"), control=_TRACK_CONTROL),
          measured=lambda v: (_track_text(v, "E[gᵢᵀgⱼ]").replace("score", "−MSE") + f"; meta-test MSE "
                              f"{v['mse_first']:.2f} at step 0, best {v['mse_best']:.2f}, last {v['mse_last']:.2f}; "
                              f"predicting 0: {v['mse_zero']:.2f}")),
    Claim("L5", "The mean inner product of penultimate features on meta-test data tracks generalisation, "
                "meta-overfitting included", paper="tracks generalisation, through meta-overfitting (Figs 9–10)",
          source="[L] §6", chapter=_L, precondition=_META_OVERFITS, **_L_SETTING,
          rule=Protocol(decisive=_tracks("E[hᵢᵀhⱼ]"), secondary=_rise("E[hᵢᵀhⱼ]"), control=_TRACK_CONTROL),
          power_fn=_tracking_power, power_keys=_TRACK_KEYS,
          effect_text="a signal that tracks the true accuracy perfectly, through the recorded accuracy noise",
          measured=lambda v: _track_text(v, "E[hᵢᵀhⱼ]") + _overfit_text(v)),
    Claim("L6", "Penalising the angle between each task's update and the mean update raises Omniglot "
                "20-way 1-shot accuracy", paper="94.05% → 95.38% (+1.33 points, 23% fewer errors; 5 runs, 600 tasks each)",
          source="[L] §7, Alg 1, Fig 11", chapter=_L6, setting=("ways",),
          setting_why="the claim is about 20-way 1-shot accuracy",
          precondition=(Check("≥ 3 seeds per arm", "seeds", ">=", 3),
                        Check("arm has levelled off: fitted rise of its held-out accuracy over the last 40% of "
                              "training, 95% upper bound ≤ [L]'s gain (1.33 points)", "rise_hi", "<=", 0.0133,
                              each=True)),
          rule=Protocol(
              decisive=(Check("improvement: 95% t interval over seeds of the paired (regularised − plain) "
                              "difference above 0", "diff_lo", ">", 0),),
              secondary=(Check("size: error rate reduced by ≥ 11.5% of itself (half of [L]'s 23%)",
                               "error_reduction", ">=", 0.115),),
              control="arm labels exchanged at random on each task of each seed (no regulariser effect; "
                      "task and seed difficulty kept)"),
          measured=_l6_measured),
    # Raghu et al. — rapid learning or feature reuse
    Claim("R1", "ANIL, which adapts only the head, matches MAML's few-shot accuracy",
          paper="Omniglot 20w1s: MAML 93.7 ± 0.7, ANIL 96.2 ± 0.5; 20w5s: 96.4 ± 0.1 vs 98.0 ± 0.3 "
                "(mean ± std over 3 seeds)",
          source="[R] Table 2", chapter=_R, depends_on="F2", needs_converged=True,
          paper_effect={"seed_diff_lo": 0.016}, sample=("n_tasks", "test tasks"),
          effect_text="[R] Table 2: ANIL − MAML +1.6 points at Omniglot 20-way 5-shot (98.0 vs 96.4), the "
                      "smaller of its two Omniglot gaps (+2.5 at 1-shot)",
          rule=Protocol(
              decisive=(Check("ANIL non-inferior to MAML: 95% CI of ANIL − MAML above −2 points, "
                              "every ANIL seed", "seed_diff_lo", ">", -0.02, each=True),),
              control="ANIL before meta-training (each ANIL seed's step-0 network, adapted by the same "
                      "test-time inner loop) against MAML, on the same tasks",
              trivial="an untrained ANIL is far below any trained model, so rejecting it shows only that "
                      "the rule needs a trained model"),
          measured=lambda v: "; ".join(
              f"{s}: ANIL {100 * v['anil'][s]:.1f}%, MAML {100 * v['maml'][s]:.1f}%, ANIL − MAML "
              f"{_points(v, 'diff', s)} points"
              for s in v["diff"]) + f" ({v['n_tasks']} tasks, paired; ANIL seed 0, one MAML seed); "
              + "every ANIL seed: " + ", ".join(f"{100 * d:+.1f}" for d in v["seed_diff"].values())
              + (f"; not run at this profile: {', '.join(v['not_run'])}" if v.get("not_run") else "")),
    Claim("R2", "ANIL is cheaper than MAML to train and to adapt",
          paper="≈ 1.7× faster per training step, ≈ 4.1× faster per adaptation", source="[R] §4",
          chapter=_R,
          rule=Protocol(
              decisive=(Check("training: MAML/ANIL seconds per meta-step, 95% CI above 1.1", "train_lo", ">", 1.1),
                        Check("adaptation: MAML/ANIL seconds per test-time adaptation, 95% CI above 1.1",
                              "adapt_lo", ">", 1.1)),
              control="MAML timed against a second MAML closure by the same interleaved timing "
                      "(ratio 1 by construction)"),
          measured=lambda v: (f"training {v['train']:.2f}× [{v['train_lo']:.2f}, {v['train_hi']:.2f}], "
                              f"adaptation {v['adapt']:.2f}× [{v['adapt_lo']:.2f}, {v['adapt_hi']:.2f}] "
                              f"({v['device']})")),
    Claim("R3", "Adapting only the top layers at test time barely changes a MAML-trained network's "
                "accuracy (feature reuse)",
          paper="MiniImageNet 5w1s: 46.9 (none frozen) → 46.3 (conv1–4 frozen); 5w5s: 63.1 → 61.0",
          source="[R] §3, Table 1", chapter=_R, depends_on="F2", needs_converged=True, about_inner_loop=True,
          rule=Protocol(
              decisive=(Check("head only (conv1–conv4 frozen, [R] Table 1) costs < 2 points: 95% CI of "
                              "(head only − all adapted) above −2 points", "head_only_diff_lo", ">", -0.02),),
              secondary=(Check("freezing fewer layers costs < 2 points (each row)", "partial_diff_lo", ">",
                               -0.02, each=True),),
              control="the same freezing table of θ at step 0 (the MAML run's random initialisation), "
                      "same tasks and inner loop"),
          paper_effect={"head_only_diff_lo": -0.006}, sample=("full.n_tasks", "test tasks"),
          effect_text="[R] Table 1's cost of freezing conv1–4, MiniImageNet 5-way 1-shot: −0.6 points "
                      "(46.9 → 46.3), the paper's only number for it",
          measured=lambda v: "frozen − all adapted: " + ", ".join(
              f"{k} {_points(v, 'freeze_diff', k)}" for k in v["freeze_diff"])
              + f" points (all adapted: {100 * v['full']['mean']:.1f}%)"),
    Claim("R4", "The inner loop leaves the body's representations almost unchanged (CCA, CKA ≈ 1); "
                "only the head changes",
          paper="conv layers: CCA > 0.9, CKA ≈ 1; head: CCA < 0.5 (Fig 2)", source="[R] §3.2, Fig 2",
          chapter=_R, depends_on="F2", needs_converged=True, about_inner_loop=True,
          paper_effect={"body_cka_lo": 0.99}, sample=("n_tasks", "test tasks"),
          effect_text="[R] Fig 2: the conv layers' CKA ≈ 1, read as 0.99 (the paper shows a figure, no "
                      "number)",
          rule=Protocol(
              decisive=(Check("body CKA ≥ 0.9, conv2 on (95% CI lower bound)", "body_cka_lo", ">=", 0.9,
                              each=True),
                        Check("body CCA ≥ 0.9, conv2 on (SVCCA, 95% CI lower bound)", "body_cca_lo", ">=", 0.9,
                              each=True),
                        Check("head changes: its SVCCA's excess over unrelated heads, (s − s₀)/(1 − s₀), "
                              "95% CI upper bound < 0.5", "head_excess_hi", "<", 0.5)),
              control="unrelated representations: the adapted network against a random-init network of "
                      "the same architecture on the same images (same examples and width); the head's "
                      "floor s₀ is a second random-init network's"),
          measured=lambda v: (f"body CKA {_layers(v['body_cka'], '.3f')}; body SVCCA {_layers(v['body_cca'], '.3f')} "
                              f"(conv1: CKA {v['conv1_cka']:.3f}, SVCCA {v['conv1_cca']:.3f}, not checked); "
                              f"head SVCCA {v['head_cca']:.3f}, unrelated heads {v['head_floor']:.3f}, excess "
                              f"{v['head_excess']:.2f} [{v['head_excess_lo']:.2f}, {v['head_excess_hi']:.2f}], "
                              f"head CKA {v['head_cka']:.3f}; {v['n_tasks']} tasks")),
    Claim("R5", "NIL — no head, queries classified by cosine similarity to the support features — is "
                "about as accurate as MAML and ANIL",
          paper="NIL after ANIL training, Omniglot 20w1s 96.7 ± 0.3 (ANIL 96.2 ± 0.5, MAML 93.7 ± 0.7)",
          source="[R] §4, Table 4", chapter=_R, depends_on="F2", needs_converged=True,
          rule=Protocol(
              decisive=(Check("NIL after ANIL training ([R] Table 4) within 2 points of ANIL with its head: "
                              "95% CI of (NIL − head) above −2 points", "nil_diff_lo.ANIL", ">", -0.02),),
              secondary=(Check("… also after MAML training", "nil_diff_lo.MAML", ">", -0.02),),
              control="NIL on a random-init body (the MAML run's step-0 network) against each trained "
                      "head, same tasks"),
          paper_effect={"nil_diff_lo.ANIL": 0.005},
          effect_text="[R] Table 4: NIL 96.7% against ANIL's head 96.2%, Omniglot 20-way 1-shot (+0.5 points)",
          measured=lambda v: "; ".join(
              f"{k}: NIL {100 * v['nil'][k]:.1f}%, with its head {100 * v['head'][k]:.1f}%, NIL − head "
              f"{_points(v, 'nil_diff', k)}"
              for k in v["nil_diff"]) + " points"),
    # Agarwal — what the features look like
    Claim("A1", "Filters, feature embeddings and units' preferred inputs show what a network learned; "
                "the supervised baseline's last hidden layer clusters by digit, also in a t-SNE plane",
          paper="t-SNE of the 64-d last hidden layer clusters by label (Fig 3); PCA (Fig 4); filters (Fig 2); "
                "units' extreme inputs (Fig 5)", source="[A] §3.2", chapter=_A,
          rule=Protocol(decisive=(*_beats_controls("the 64-d layer"),
                                  Check("its t-SNE plane beats raw pixels' t-SNE plane: 95% CI of the paired 5-NN "
                                        "gain above +2 points", "gain_raw_tsne_lo", ">", _A_MARGIN)),
                        secondary=(Check("every seed's 64-d layer beats raw pixels: 95% CI of its gain above "
                                         "+2 points", "seed_gain_raw_lo", ">", _A_MARGIN, each=True),),
                        control="the network before training (its random initial weights: seed 0's, and each "
                                "seed's in the per-seed check) in place of the trained one, same pool, 5-NN and "
                                "t-SNE; the gains' random-init reference is seed 1's initial weights"),
          measured=_a1_measured),
    Claim("A1a", "Agarwal's fully-connected baseline (784-256-128-64-64-10, BatchNorm, 5 epochs, Adam, L2 0.01) "
                 "reaches 96.71% on MNIST", paper="96.71% (one run)", source="[A] §3.1", chapter=_A,
          precondition=(Check("≥ 3 seeds", "seeds", ">=", 3),
                        Check("the seeds resolve half the paper's error rate: prediction interval's half-width "
                              "≤ 1.645 points", "pi_half", "<=", 0.01645)),
          # [A] states a level reached: one more run must be able to reach it (exceeding is no failure)
          rule=Protocol(decisive=(Check("one more run reaches the paper's 96.71%: our 95% prediction interval's "
                                        "upper end ≥ 96.71%", "pi_hi", ">=", AGARWAL_BASELINE),),
                        control="each seed's network at its random initialisation, test accuracy by the same "
                                "code, same prediction interval",
                        trivial="a random-init network (about 10%) is rejected by nearly 90 points; the claim "
                                "is a level reached, which no nearer null bounds"),
          measured=_a1a_measured,
          exceeds=Check("the prediction interval lies wholly above 96.71%", "pi_lo", ">", AGARWAL_BASELINE)),
    _features_pair("A1b", "With the same network and data, MAML's features separate the digits about as well as "
                          "supervised training's (the book's test of [F]'s 'broadly suited' features)",
                   "FC on MNIST test digits",
                   "MAML's own starting weights (a random init, seed 0) in place of its trained ones, same pool "
                   "and 5-NN; random-init reference: seed 1; raw pixels in MAML's place shown too",
                   per_seed=True),
    _features_pair("A1c", "On characters neither network was trained on, a MAML-trained Conv4's features separate "
                          "the classes about as well as a Conv4 trained on all training characters as classes",
                   "Conv4 on held-out Omniglot characters",
                   "MAML's own starting Conv4 (a random init, seed 0) in place of the trained one, same "
                   "characters and 5-NN; random-init reference: seed 1; raw pixels in MAML's place shown too",
                   per_seed=False, needs_converged=True, sample=("pool", "images"),
                   paper_effect={"diff_lo": 0.0},
                   effect_text="MAML's features exactly as good as supervised ones, the least 'about as well' implies"),
    Claim("A1d", "Central differences (Eq. 2) approximate the Hessian-vector product of MAML's meta-gradient",
          paper="proposed, not measured (Eq. 2)", source="[A] §4, Eq. 2", chapter=_A,
          rule=Protocol(decisive=(Check("float64: Hv relative error ≤ 1e-6 at the best ε", "f64_best", "<=", 1e-6),
                                  Check("float32: Hv relative error ≤ 1e-2 at the best ε", "f32_best", "<=", 1e-2)),
                        secondary=(Check("float32: meta-gradient relative error ≤ 1e-3 at that ε", "f32_meta",
                                         "<=", 1e-3),
                                   Check("… and ≤ 1/10 of the first-order approximation's (Hv dropped)",
                                         "f32_meta_ratio", "<=", 0.1)),
                        control="the first-order approximation (Hv ≈ 0) in place of Eq. 2's estimate, same θ, "
                                "task and relative-error code; a random vector of Hv's norm is shown too"),
          measured=lambda v: (f"best Hv relative error {v['f64_best']:.1e} at ε = {v['f64_eps']:.0e} (float64), "
                              f"{v['f32_best']:.1e} at ε = {v['f32_eps']:.0e} (float32; meta-gradient error "
                              f"{v['f32_meta']:.1e}, first-order's {v['f32_first_order_meta']:.1e})")),
    # Finn et al. — the base protocol the other claims build on
    Claim("F1", "MAML reaches Finn et al.'s accuracy on Omniglot 5-way 1-shot",
          paper="98.7 ± 0.4% (Finn et al. 2017)", source="[F] Table 1", chapter=_F,
          rule=MatchesPaper(0.987, 0.004, partly_error_ratio=1.5, one_sided=True), measured=_error_vs(0.987),
          needs_converged=True),
    Claim("F2", "MAML reaches Finn et al.'s accuracy on Omniglot 20-way 1-shot",
          paper="95.8 ± 0.3% (Finn et al. 2017; Raghu et al.'s rerun: 93.7 ± 0.7%)", source="[F] Table 1",
          chapter=_F, rule=MatchesPaper(0.958, 0.003, partly_error_ratio=1.5, one_sided=True),
          measured=_error_vs(0.958), needs_converged=True),
]}


# The positive controls of the rules whose claims carry no size inline (CLAIMS.md, protocol 3): the
# paper's effect on each decisive check's estimate, the smallest the statement implies; a check
# left out has no size in the paper, and its record gives the smallest true value it detects.
_NO_SIZE = "the paper gives no size for this (its record gives the smallest true value the check sees)"
_POSITIVE_CONTROLS = {
    "G1": dict(paper_effect={"rho_lo": 1.0}, sample=("n_tasks", "meta-test tasks"),
               effect_text="[G] Fig 1a: dissimilarity rises with depth at every checkpoint, a monotone ordering (ρ = 1)"),
    "G2": dict(paper_effect={"rsa_rho_lo": 1.0, "cka_rho_hi": -1.0}, sample=("n_seeds", "seeds"),
               effect_text="[G] Fig 2: RSA rises and CKA falls monotonically with depth (ρ = ±1)"),
    "G3": dict(paper_effect={"plateau_last": 0.1},
               effect_text="[G] Fig 1b: the last pooling layer's plateau ≈ 0.1",
               no_size_text="[G] gives no size for meta-training's change against random steps of its sizes"),
    "G4": dict(power_centre={"early_ratio_1_lo": "ratio_1"}, sample=("n_tasks", "meta-test tasks"),
               no_size_text="[G] Fig 3 shows the inner loop's change 'larger' in every layer without a ratio"),
    "G5": dict(sample=("n_tasks", "meta-test tasks"),
               no_size_text="[G] Fig 3 shows the first step doing 'most' of the change without a share"),
    "L1": dict(power_fn=_tracking_power, power_keys=("rho_after_lo",),
               effect_text="[L] Figs 2–4: E‖H‖σ keeps falling while accuracy falls after its peak; simulated "
                           "as a signal that follows the recorded accuracy curve exactly, through the recorded "
                           "per-checkpoint noise, and required to pass all three tracking checks (a lower bound "
                           "for this one)"),
    "L4": dict(power_fn=_tracking_power,
               effect_text="[L] Fig 8: coherence correlates with −MSE; simulated as a signal that follows the "
                           "recorded −MSE curve exactly, through the recorded per-checkpoint noise"),
    "L6": dict(paper_effect={"diff_lo": 0.0133}, sample=("seeds", "seeds"),
               effect_text="[L] Fig 11: +1.33 points (94.05% → 95.38%, 5 runs)"),
    "R2": dict(paper_effect={"train_lo": 1.7, "adapt_lo": 4.1},
               effect_text="[R] §4: ANIL ≈ 1.7× faster per training step and ≈ 4.1× per adaptation"),
    "R4": dict(no_size_text="[R] Fig 2 states the conv layers' CCA (> 0.9) and the head's (< 0.5) as levels, "
                            "not effects"),
    "A1": dict(no_size_text="[A] shows t-SNE clusters (Fig 3) without a separation score"),
    "A1a": dict(paper_effect={"pi_hi": AGARWAL_BASELINE}, power_centre={"pi_hi": "mean"}, sample=("seeds", "seeds"),
                effect_text="[A] §3.1: 96.71%, one run"),
    "A1b": dict(paper_effect={"diff_lo": 0.0}, sample=("pool", "images"),
                effect_text="MAML's features exactly as good as supervised ones, the least 'about as well' implies",
                no_size_text="[A] gives no size for the gains over raw pixels or a random network"),
    "A1c": dict(no_size_text="[A] gives no size for the gains over raw pixels or a random network"),
    "A1d": dict(paper_effect={"f64_best": 2.2e-16 ** (2 / 3), "f32_best": 1.19e-7 ** (2 / 3)},
                effect_text="a central difference's error at its best step, about ε_mach^(2/3): 3.7e-11 in "
                            "float64, 2.4e-5 in float32 (Eq. 2 states no accuracy)"),
}
CLAIMS.update({k: dataclasses.replace(CLAIMS[k], **v) for k, v in _POSITIVE_CONTROLS.items()})

# --------------------------------------------------------------------------------------------
# The regime a claim was measured in, beside the paper's (CLAIMS.md, verdict protocol 5)
# --------------------------------------------------------------------------------------------
# claim → the profile's setting whose runs it is measured on (its model)
SETTINGS = {"F1": "omniglot_5w1s", **{c: "omniglot_20w1s" for c in
            ("F2", "G1", "G3", "G4", "G5", "R1", "R2", "R3", "R4", "R5", "A1c")},
            "G2": "mnist_supervised", **{c: "landscape_5w1s" for c in ("L1", "L2", "L3", "L5")},
            "L4": "landscape_sinusoid", "L6": "regulariser_setting",
            **{c: "features_supervised" for c in ("A1", "A1a", "A1b")}, "A1d": "features_maml"}
_REGIME_FIELDS = {  # config field → how a reader reads it
    "dataset": "data", "n_way": "ways", "k_shot": "shots", "q_query": "queries per class",
    "train_characters": "training characters", "filters": "filters",
    "meta_batch": "meta-batch", "batch_size": "batch", "steps": "steps", "inner_steps": "inner steps (training)",
    "eval_inner_steps": "inner steps (testing)", "inner_lr": "inner step size α",
    "inner_reduction": "inner loss", "network": "network", "arch": "architecture"}


def _setting_row(cfg) -> dict:
    return {label: getattr(cfg, f) for f, label in _REGIME_FIELDS.items() if hasattr(cfg, f)}


def _departure(label: str, here, paper) -> str:
    if label == "steps":
        return f"{here:,} of the paper's {paper:,} steps"
    if label == "training characters":
        def chars(n):
            return f"{n:,}" if n else "all 1,200"
        return f"meta-trained on {chars(here)} characters (paper: {chars(paper)})"
    if label == "inner loss":
        return f"inner loss {here} (paper {paper}: " + ("the same α takes N× larger steps)" if paper == "sum/k" else ")")
    return f"{label} {here} (paper {paper})"


def regime(claim_id: str, profile: str) -> dict:
    """The regime ``claim_id`` was measured in at ``profile``: its model's setting beside the
    paper profile's, and every departure in words ({} for a claim without a model setting)."""

    field = SETTINGS.get(claim_id)
    if field is None:
        return {}
    here, paper = _setting_row(getattr(load(profile), field)), _setting_row(getattr(load("paper"), field))
    return {"setting": field, "here": here, "paper": paper,
            "departures": [_departure(k, here[k], paper[k]) for k in here if here[k] != paper.get(k)]}


LEVEL = 0.01  # a learning curve has levelled off: its fitted rise over the last 40% of training ≤ 1 point


def convergence(run) -> dict | None:
    """Has ``run``'s learning curve (its fixed test tasks, every checkpoint) levelled off? The
    fitted rise over the last 40% of training with its 95% interval (:func:`stats.window_rise`,
    the rule L6's precondition uses), and whether its upper end is ≤ :data:`LEVEL`; None for a run
    without a learning curve."""

    curve = {int(m["step"]): float(m["test_score"]) for m in run.metrics() if "test_score" in m}
    if len(curve) < 3:
        return None
    steps = run.config.steps
    r = window_rise({0: curve}, steps)
    return {"steps": steps, "window": [round(0.6 * steps), steps], "rise": r.rise, "rise_lo": r.lo,
            "rise_hi": r.hi, "levelled": bool(r.hi <= LEVEL), "best_step": max(curve, key=curve.get),
            "last": curve[max(curve)], "best": max(curve.values())}


def regime_with_run(claim_id: str, profile: str, run=None) -> dict:
    """:func:`regime`, with whether ``run`` (the claim's model) converged: levelled off, or trained
    for the paper's own number of steps."""
    out = regime(claim_id, profile)
    if run is not None and out:
        conv = convergence(run)
        if conv is not None:
            conv["paper_steps"] = out["paper"].get("steps")
            conv["at_paper_budget"] = run.config.steps >= out["paper"].get("steps", float("inf"))
            conv["holds"] = conv["levelled"] or conv["at_paper_budget"]
            out["converged"] = conv
    return out


def regime_reason(conv: Mapping) -> str:
    """Why a model does not count as converged, in words."""
    of = f" of the paper's {conv['paper_steps']:,}" if conv.get("paper_steps") else ""
    return (f"not converged: {conv['steps']:,}{of} steps, and the learning curve has not levelled off: its "
            f"fitted rise over steps {conv['window'][0]:,}–{conv['window'][1]:,} is {100 * conv['rise']:+.1f} "
            f"[{100 * conv['rise_lo']:+.1f}, {100 * conv['rise_hi']:+.1f}] points (levelled off: upper end "
            f"≤ {100 * LEVEL:g})")


_INNER = ("inner loss", "inner step size α", "inner steps (training)", "inner steps (testing)")


def inner_loop_reason(regime: Mapping) -> str:
    """"" when the regime's inner loop is the paper's (loss, step size, steps), else why not in words."""
    here, paper = regime.get("here", {}), regime.get("paper", {})
    differs = [k for k in _INNER if k in here and here[k] != paper.get(k)]
    if not differs:
        return ""
    names = {"mean": "the mean loss", "sum/k": "Σℓ/K"}
    parts = [_departure(k, here[k], paper[k]) for k in differs if k not in ("inner loss", "inner step size α")]
    if "inner loss" in differs or "inner step size α" in differs:
        def step(row):  # the inner step on the mean loss: Σℓ/K = N × mean
            return row["inner step size α"] * (row.get("ways", 1) if row["inner loss"] == "sum/k" else 1)
        ratio = step({**paper, "ways": here.get("ways", 1)}) / step(here)
        parts.insert(0, f"{names.get(here['inner loss'], here['inner loss'])} at α = {here['inner step size α']:g} "
                        f"(the paper's: {names.get(paper['inner loss'], paper['inner loss'])} at α = "
                        f"{paper['inner step size α']:g}, a step {ratio:g}× this one)")
    return "the inner loop is not the paper's: " + "; ".join(parts)


def _regime_value(row: Mapping, label: str):
    """``row[label]``, also under the label records written before 2026-12-07 carry."""
    old = {"training characters": "training characters (0: all 1,200)"}
    return row.get(label, row.get(old.get(label, label)))


def setting_departures(c: Claim, regime: Mapping) -> str:
    """How ``regime`` departs from the paper's in the setting labels ``c``'s statement depends on
    (``c.setting``), in words; "" when it does not."""
    here, paper = regime.get("here", {}), regime.get("paper", {})
    differs = [(k, _regime_value(here, k), _regime_value(paper, k)) for k in c.setting]
    return "; ".join(_departure(k, h, p) for k, h, p in differs if h is not None and p is not None and h != p)


def setting_reason(c: Claim, regime: Mapping) -> str:
    """"" when ``regime`` is the paper's in every setting label ``c``'s statement depends on
    (``c.setting``), else the precondition "the paper's setting" failing, in words."""
    differs = setting_departures(c, regime)
    if not differs:
        return ""
    return "not the paper's setting: " + differs + (f" ({c.setting_why})" if c.setting_why else "")


def claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise KeyError(f"unknown claim {claim_id!r}; registered claims: {', '.join(CLAIMS)}.")
    return CLAIMS[claim_id]


def of_chapter(chapter: str) -> list[Claim]:
    """The claims a chapter judges, in registry order."""
    return [c for c in CLAIMS.values() if c.chapter == chapter]


def _names(checks) -> str:
    return "; ".join(c.name for c in checks) or "—"


def rule_parts(c: Claim) -> dict[str, str]:
    """A claim's rule for readers, in words (no record keys): decisive checks, secondary
    checks, control and preconditions (the full text with the keys is in every record)."""
    r = c.rule
    if isinstance(r, Protocol):
        parts = {"decisive checks": _names(r.decisive), "secondary checks": _names(r.secondary),
                 "control": r.control + (f" (a trivial control: {r.trivial})" if r.trivial else "")}
    elif r is not None:
        parts = {"decisive checks": r.text(), "secondary checks": "—", "control": "—"}
    else:
        parts = {"decisive checks": "—", "secondary checks": "—", "control": "—"}
    parts["preconditions (else inconclusive)"] = "; ".join(
        [c.name for c in c.precondition] + ([c.setting_text()] if c.setting else [])) or "—"
    return parts


def table(chapter: str):
    """The claims of ``chapter`` with their rules in words: shown at the top of a chapter,
    before measuring."""
    return pd.DataFrame([{"id": c.id, "claim": c.statement, "paper": f"{c.paper} ({c.source})",
                          **rule_parts(c)} for c in of_chapter(chapter)]).set_index("id")


def _ends(key: str) -> str:
    """Which end of an interval a check's key reads: "_lo", "_hi", or "" (an exact value)."""
    return "_lo" if "_lo" in key else "_hi" if "_hi" in key else ""


def _check_power(c: Claim, check: Check, values: Mapping, other_runs=()) -> dict:
    """{name: power entry} of one decisive check, one entry per element of an ``each`` check.

    With a registered paper effect: ``power``, the share of measurements of that effect, at this
    interval's width and sample, that pass (:func:`stats.interval_power`), and ``needed``, the
    sample that would reach 0.8. Without one (the paper gives no size): ``power`` None and
    ``detectable``, the true value the check sees 80% of the time (:func:`stats.detectable`).
    ``excluded``: the whole interval fails the check (the data rule out every value the check
    would accept), which makes a failure a contradiction whatever the power. ``other_runs``: the
    values of other runs of the same model (another seed): their centres' spread joins the
    interval's noise, se² = se_tasks² + s²_between (``between_runs``, the runs' standard deviation),
    since for a claim about a trained model the run is the unit."""
    end = _ends(check.key)
    centre_key = c.power_centre.get(check.key) or (check.key.replace(end, "", 1) if end else check.key)
    ends, centres = lookup(values, check.key), lookup(values, centre_key)
    if check.each:
        ends, centres = results._elements(ends), results._elements(centres)
        pairs = {f"{check.name} [{k}]" if k else check.name: (k, centres[k], e) for k, e in ends.items()}
    else:
        pairs = {check.name: ("", float(centres), float(ends))}
    lenient = (end == "_hi" and check.op in (">", ">=")) or (end == "_lo" and check.op in ("<", "<="))
    n = int(lookup(values, c.sample[0])) if c.sample[0] else 1
    spread = _between_runs(check, centre_key, values, other_runs)
    out = {}
    for name, (element, centre, e) in pairs.items():
        half = abs(centre - e) if end else 0.0
        between = spread.get(element)
        if between is not None:
            half = _math.hypot(half, 1.96 * between)
        other = 2 * centre - e if end else e
        passes = lambda x: bool(results.OPS[check.op](x, float(check.threshold)))  # noqa: E731
        entry = {"excluded": not passes(other) and not passes(e), "n": n, "unit": c.sample[1]}
        if between is not None:
            entry.update(between_runs=between, runs=1 + len(other_runs))
        if check.key in c.paper_effect:
            pw = interval_power(c.paper_effect[check.key], float(check.threshold), half, check.op, n,
                                lenient=lenient)
            entry.update(power=pw.power, needed=pw.needed, effect=c.paper_effect[check.key],
                         effect_text=c.effect_text)
        else:
            entry.update(power=None, detectable=detectable(float(check.threshold), half, check.op, lenient=lenient),
                         effect_text=c.no_size_text or "the paper gives no size for this")
        out[name] = entry
    return out


def _between_runs(check: Check, centre_key: str, values: Mapping, other_runs) -> dict:
    """{element ("" for one value): the standard deviation of the estimate's centre over this run
    and ``other_runs``}; {} without other runs or where they lack the key."""
    if not other_runs:
        return {}
    try:
        runs = [lookup(v, centre_key) for v in (values, *other_runs)]
    except KeyError:
        return {}
    if check.each:
        per = [results._elements(r) for r in runs]
        return {k: float(pd.Series([p[k] for p in per]).std()) for k in per[0] if all(k in p for p in per)}
    return {"": float(pd.Series([float(r) for r in runs]).std())}


def _matches_power(rule: MatchesPaper, values: Mapping, other_runs=()) -> dict:
    """A :class:`MatchesPaper` rule's power: the chance that a measurement of the paper's own
    accuracy, with this interval's width (and the spread of ``other_runs``' accuracies), is
    called *reproduced*."""
    c, cp = float(lookup(values, "ci95")), rule.paper_ci95
    se = c / 1.96 if c > 0 else 1e-12
    means = [float(lookup(v, "mean")) for v in (values, *other_runs) if "mean" in v]
    between = float(pd.Series(means).std()) if len(means) > 1 else None
    if between is not None:
        se = _math.hypot(se, between)
    pw = overlap_power(se, c + cp, rule.one_sided)
    entry = {"power": pw, "needed": int(lookup(values, "n_tasks")), "excluded": False,
             "n": int(lookup(values, "n_tasks")), "unit": "test tasks", "effect": rule.paper_mean,
             "effect_text": "the paper's accuracy"}
    if between is not None:
        entry.update(between_runs=between, runs=len(means))
    return {rule.text().split(" → ")[0]: entry}


def power_of(c: Claim, values: Mapping, other_runs=()) -> dict:
    """The rule's positive control, per decisive check (and element): its power to see the
    paper's effect through this measurement's noise (:func:`_check_power`), or, where a
    simulation speaks for the check (``power_fn``), the share of simulated paper-sized effects
    that pass it."""

    rule = c.rule
    if isinstance(rule, MatchesPaper):
        return _matches_power(rule, values, other_runs)
    out = {}
    simulated = c.power_fn(values) if c.power_fn is not None else {}
    for check in getattr(rule, "decisive", ()):
        if simulated and (not c.power_keys or check.key in c.power_keys):
            for element, (pw, need) in simulated.items():
                out[f"{check.name} [{element}]"] = {"power": pw, "needed_text": need, "effect_text": c.effect_text,
                                                     "excluded": False}
            continue
        try:
            out.update(_check_power(c, check, values, other_runs))
        except KeyError:  # a check read off values without its interval's centre (a rule's own tests)
            continue
    return out


def _power_or_none(c: Claim, values: Mapping, other_runs=()) -> dict:
    """:func:`power_of`, or {} when the values lack what it reads (a failed precondition can leave
    the rule's keys unmeasured)."""
    try:
        return power_of(c, values, other_runs)
    except (KeyError, TypeError):
        return {}


def underpowered(power: Mapping, failed: list[str]) -> str:
    """The reason a failing decisive check says nothing, or "" when each failing check could have
    seen the paper's effect (power ≥ 0.8) or its whole interval fails (a contradiction)."""
    def weak(p):
        if p.get("excluded"):
            return False
        return p["power"] is None or p["power"] < 0.8

    weak_ones = [(name, power[name]) for name in failed if name in power and weak(power[name])]
    if not weak_ones:
        return ""
    name, p = weak_ones[0]
    if p["power"] is None:
        return (f"underpowered: the check \"{name}\" fails, but its interval still reaches values it would "
                f"accept, and {p['effect_text']}: it sees a true value of {p['detectable']:.3g} or beyond 80% "
                "of the time at this sample")
    if "needed_text" in p:
        return (f"underpowered: the check \"{name}\" passes the paper's effect ({p['effect_text']}) only "
                f"{100 * p['power']:.0f}% of the time at this sample; {p['needed_text']} would reach 80%")
    need = "no sample would" if p["needed"] == float("inf") else f"about {p['needed']:,.0f} {p['unit']} would"
    return (f"underpowered: the check \"{name}\" passes the paper's effect ({p['effect_text']}) only "
            f"{100 * p['power']:.0f}% of the time at this sample ({p['n']:,} {p['unit']}); {need} reach 80%")


def judge(claim_id: str, values: Mapping, profile: str, null_values: Mapping | None = None,
          seeds: Mapping | None = None, regime: Mapping | None = None, *, in_setting: bool = True,
          other_runs=()) -> ClaimResult:
    """Apply the registered rule of ``claim_id`` to the measured ``values`` (not written).

    A :class:`~mamlscope.verdict.results.Protocol` rule is also applied to ``null_values``, its negative
    control measured by the same code under the same keys (required). If the rule does not
    reject its control, the claim is *inconclusive*: the rule could not tell it from the null.
    ``regime`` (:func:`regime_with_run`): a claim that needs a converged model is *inconclusive*
    when its model had not levelled off (``regime=None`` judges the rule alone, for its tests). A failing decisive check whose power to see the paper's
    effect is below 0.8 gives *inconclusive (underpowered)*. A claim whose statement depends on
    the paper's setting (``Claim.setting``) measured outside it is *inconclusive*, with what the
    rule gives in the book's setting as a qualifier. ``seeds`` is recorded. ``other_runs``: the
    values of other runs of the model (recorded replicas), whose spread joins the power's noise."""
    c = claim(claim_id)
    outside = setting_reason(c, regime) if regime is not None and in_setting else ""
    if outside:
        inside = judge(claim_id, values, profile, null_values, seeds, regime, in_setting=False, other_runs=other_runs)
        said = [] if inside.verdict == "inconclusive" else [f"in the book's setting the rule gives: {inside.verdict}"]
        return dataclasses.replace(inside, verdict="inconclusive",
                                   precondition="; ".join(filter(None, [inside.precondition, outside])),
                                   qualifiers=[*inside.qualifiers, *said], reasons=[*inside.reasons, "outside setting"])
    if c.rule is None:
        raise ValueError(f"claim {claim_id} has no registered rule yet; add one in mamlscope.verdict.claims.")
    values = results.plain(dict(values))
    protocol = isinstance(c.rule, Protocol)
    if protocol and null_values is None:
        raise ValueError(f"claim {claim_id} is judged against its negative control ({c.rule.control}): pass "
                         "null_values, measured by the same code, under the rule's keys.")
    check_regime = regime is not None  # None: the rule alone (a rule's own tests); record() always passes one
    regime = results.plain(dict(regime or {}))
    if check_regime and c.needs_converged and "converged" not in regime:
        raise ValueError(f"claim {claim_id} is read off a trained model: pass its run (claims.record(…, run=…)) "
                         "so that its regime says whether the model converged.")
    extra = {"seeds": results.plain(dict(seeds or {})), "regime": regime}
    if protocol:
        null = results.plain(dict(null_values))
        extra.update(decisive=c.rule.decisive_names, control=c.rule.control, null_values=null,
                     null_verdict=c.rule.judge_control(null))
    measured = c.measured(values) if c.measured else ""
    precondition = ""
    reasons = []
    if c.precondition:
        outcomes = {}
        for check in c.precondition:
            outcomes.update(check.outcomes(values))
        precondition = "; ".join(f"{k}: {'holds' if ok else 'FAILS'}" for k, ok in outcomes.items())
        if not all(outcomes.values()):
            reasons.append("precondition")
    if check_regime and c.needs_converged:
        conv = regime["converged"]
        if not conv["holds"]:
            precondition = "; ".join(filter(None, [precondition, regime_reason(conv)]))
            reasons.append("not converged")
    if check_regime and c.about_inner_loop and inner_loop_reason(regime):
        precondition = "; ".join(filter(None, [precondition, inner_loop_reason(regime)]))
        reasons.append("inner loop")
    near = protocol and bool(c.rule.specific_to)
    qualifiers = []
    if near and c.rule.shown_by_control(null):
        qualifiers.append(f"not specific to {c.rule.specific_to}")
    if reasons:  # the rule's power is still recorded: what the measurement could have seen
        return ClaimResult(c.id, c.chapter, profile, c.statement, measured, c.paper, "inconclusive",
                           c.rule_text(), values, {}, precondition, power=_power_or_none(c, values, other_runs),
                           qualifiers=qualifiers, reasons=reasons, **extra)
    verdict, outcomes = c.rule.judge(values)
    if near:
        for check in c.rule.beyond:
            outcomes.update({f"(recorded) {k}": ok for k, ok in check.outcomes(values).items()})
    power = power_of(c, values, other_runs)
    if (isinstance(c.rule, MatchesPaper) and c.rule.one_sided and c.rule.exceeds(values)) or \
            (c.exceeds is not None and all(c.exceeds.outcomes(values).values())):
        qualifiers.append("exceeds the paper")
    split = element_split(outcomes, c.rule.decisive_names) if protocol else ""
    if split:
        qualifiers.append(split)
    if near and c.specific and qualifiers and verdict != results.VERDICTS[2]:
        verdict = results.VERDICTS[2]  # the claim is that the control lacks it: in the claim's own direction
        precondition = "; ".join(filter(None, [precondition, f"the control shows the observation too, and the "
                                               f"claim is that it is specific to {c.rule.specific_to}"]))
    elif near:
        pass  # a near control showing the observation is the qualifier above, not a failure
    elif protocol and extra["null_verdict"] != results.VERDICTS[2]:
        precondition = "; ".join(filter(None, [precondition, f"the rule does not reject its control "
                                               f"({c.rule.control}: {extra['null_verdict']})"]))
        verdict, reasons = "inconclusive", ["control not rejected"]
    elif verdict == results.VERDICTS[2] and protocol:
        failed = [k for k, ok in outcomes.items() if not ok
                  and any(k == d or k.startswith(d + " [") for d in c.rule.decisive_names)]
        weak = underpowered(power, failed)
        if weak:
            precondition = "; ".join(filter(None, [precondition, weak]))
            verdict, reasons = "inconclusive", ["underpowered"]
    return ClaimResult(c.id, c.chapter, profile, c.statement, measured, c.paper, verdict, c.rule_text(),
                       values, outcomes, precondition, power=power, qualifiers=qualifiers, reasons=reasons,
                       **extra)


def element_split(outcomes: Mapping[str, bool], decisive: list[str]) -> str:
    """"setting-dependent: …" when the decisive checks, judged per element (run, setting), all
    pass for some elements and not for others (L2: FOMAML passes, MAML fails); "" otherwise."""
    passed: dict[str, bool] = {}
    for key, ok in outcomes.items():
        name, _, element = key.rpartition(" [")
        if element and name in decisive:
            element = element[:-1]
            passed[element] = passed.get(element, True) and ok
    shared = all(ok for key, ok in outcomes.items() if key in decisive)
    good = [e for e, ok in passed.items() if ok and shared]
    bad = [e for e, ok in passed.items() if not (ok and shared)]
    if not good or not bad:
        return ""
    return (f"setting-dependent: every decisive check passes for {', '.join(good)}, "
            f"not for {', '.join(bad)}")


def recipe_split(block: Mapping) -> str:
    """"recipe-dependent: …" when the recipe study's models (:func:`mamlscope.verdict.attached.recipe_block`,
    judged by the rule alone, without the regime precondition) disagree; "" otherwise."""
    def name(label):  # "20w Σℓ/K, finn" → "20-way, Finn et al.'s recipe"
        ways, rest = label.split(" ", 1)
        return f"{ways[:-1]}-way, " + {"mean, book": "the book's recipe", "Σℓ/K, finn": "Finn et al.'s recipe",
                                       "mean, finn": "mean loss on Finn's network",
                                       "Σℓ/K, book": "Σℓ/K on the book's network"}.get(rest, rest)

    judged = {name(label): m["verdict"] for label, m in (block or {}).get("models", {}).items()
              if m["verdict"] in results.VERDICTS[:3]}
    holds = [lab for lab, v in judged.items() if v != results.VERDICTS[2]]
    fails = [lab for lab, v in judged.items() if v == results.VERDICTS[2]]
    if not holds or not fails:
        return ""
    return (f"setting-dependent in the recipe study (the rule alone, models not converged): holds at "
            f"{'; '.join(holds)}; not at {'; '.join(fails)}")


def record(evidence: Evidence, profile: str, root=None) -> ClaimResult:
    """Judge one claim's :class:`~mamlscope.evidence.Evidence` with its registered rule (its first
    control as the negative control, its run's regime) and write the result for the scorecard
    (:func:`mamlscope.verdict.results.write`), with what a recorded replica (another seed of the
    model, :mod:`mamlscope.studies.replicate`) and the recorded recipe study
    (:mod:`mamlscope.studies.recipe_claims`) say about it."""
    if not isinstance(evidence, Evidence):
        raise TypeError(f"record() takes an Evidence value, not {type(evidence).__name__}: "
                        "Evidence(claim, values, controls={label: values}, seeds=…, run=…)")
    claim_id, seeds = evidence.claim, dict(evidence.seeds)
    if evidence.per_seed:
        per = seeds_record(claim_id, evidence.values, evidence.per_seed)
        seeds = ({**seeds, "note": f"{seeds['note']}: {per['passing']}/{per['n']} pass", "per_seed": per}
                 if seeds else per)
    null = (null_envelope(claim_id, evidence.values, evidence.controls) if evidence.envelope
            else evidence.null_values)
    result = judge(claim_id, evidence.values, profile, null, seeds,
                   regime_with_run(claim_id, profile, evidence.run),
                   other_runs=attached.replica_values(claim_id, profile, root))
    recipe = attached.recipe_block(claim_id, profile, root)
    split = recipe_split(recipe)
    result = dataclasses.replace(result, replication=attached.replication(claim_id, result.verdict, profile, root),
                                 recipe=recipe, qualifiers=[*result.qualifiers, *([split] if split else [])])
    return results.write(result, root)


def seeds_record(claim_id: str, values: Mapping, name: str) -> dict:
    """A record's ``seeds`` from per-seed values ``values[name]`` (seed → value): their mean and
    t interval over seeds, and how many seeds pass the claim's registered per-seed check (the
    check reading ``name + "_lo"``, each seed's lower end)."""
    rule = claim(claim_id).rule
    check = next(c for c in (*rule.decisive, *rule.secondary) if c.key == f"{name}_lo")
    per = values[name]
    m, lo, hi = t_interval(list(per.values()))
    return {"n": len(per), "passing": sum(check.outcomes(values).values()), "values": dict(per),
            "mean": m, "lo": lo, "hi": hi, "passes": check.name}


def control_table(evidence: Evidence) -> pd.DataFrame:
    """The measurement beside its controls: one row per label (:meth:`Evidence.rows`), the
    evidence's ``columns`` (key → header; ``scale`` · value in ``fmt``, with its interval
    ``[key_lo, key_hi]`` where the values have one), and the registered rule's verdict on each
    row, which must reject every control."""
    rule = claim(evidence.claim).rule
    fmt, scale = evidence.fmt, evidence.scale

    def cell(v: Mapping, key: str) -> str:
        text = fmt.format(scale * float(v[key]))
        if f"{key}_lo" in v and f"{key}_hi" in v:
            lo, hi = (fmt.format(scale * float(v[f"{key}_{end}"])) for end in ("lo", "hi"))
            text += f" [{lo}, {hi}]"
        return text

    table = {label: {**{head: cell(v, key) for key, head in evidence.columns.items()},
                     "the rule's verdict": rule.judge(v)[0]} for label, v in evidence.rows().items()}
    return pd.DataFrame(table).T


def seeds_text(seeds: dict, replication: dict | None = None) -> str:
    """``"2/3"`` (seeds passing / seeds) from a record's ``seeds``; ``"1 (why)"`` for one seed
    with a note; "" when the record says nothing about seeds. With a ``replication``
    (:func:`mamlscope.verdict.attached.replication`): what each replica's seed gave, and whether it agrees."""
    text = ""
    if seeds and "n" in seeds:
        n = int(seeds["n"])
        if "passing" in seeds:
            text = f"{int(seeds['passing'])}/{n}"
        else:
            text = f"{n}" + (f" ({seeds['note']})" if seeds.get("note") else "")
    if replication:
        others = ", ".join(f"{k}: {v['verdict']}" for k, v in replication.items() if k != "agrees")
        agree = ("the same verdict" if replication.get("agrees")
                 else "a different verdict: a one-seed verdict")
        text = "; ".join(filter(None, [text, f"replica {others} ({agree})"]))
    return text


def verdict_table(records: list[ClaimResult], controls: bool = False):
    """The table that ends a chapter: one row per claim (index), measured, paper, verdict (with
    its qualifiers: not specific, exceeds the paper); with ``controls``, the rule's verdict on
    the control and the seeds (:func:`seeds_text`) beside."""
    rows = [{"claim": r.claim, "measured": r.measured, "paper": r.paper,
             "verdict": "; ".join([r.verdict, *r.qualifiers]),
             **({"control's verdict": r.null_verdict or "—", "seeds": seeds_text(r.seeds)} if controls else {})}
            for r in records]
    return pd.DataFrame(rows).set_index("claim")


def verdict_lines(records: list[ClaimResult], measured: bool = False) -> str:
    """One line per claim: its verdict, and the decisive checks (or, with ``measured``, what was
    measured), and the rule's verdict on its control."""
    if measured:
        return "\n".join(f"{r.claim} ({r.verdict}; its control: {r.null_verdict or '—'}) — {r.measured}"
                         for r in records)
    return "\n".join(f"{r.claim}: {r.verdict} (decisive: {'; '.join(r.decisive)}) — control: {r.null_verdict}"
                     for r in records)


def rejudge(profile: str, root=None) -> list[dict]:
    """Judge every recorded claim of ``profile`` again from its stored values (and its stored
    control values) with the rule registered now, as a reader can. One row per claim: the
    recorded verdict, the verdict now, and whether they, the rule's text and (for the book's own
    records) the power agree; a row that disagrees means a rule changed without its chapter
    being re-executed. Replicas' records are re-judged without their power, which their study
    recorded with the code of its day."""
    records = [("", r) for r in results.load_all(profile, root)]
    for d in sorted((results.results_root(root) / profile / "replicas").glob("seed*")):
        records += [(f" ({d.name})", results.ClaimResult(**json.loads(p.read_text())))
                    for p in sorted(d.glob("*.json")) if p.name != "replication.json"]
    rows = []
    for tag, r in records:
        row = {"claim": r.claim + tag, "recorded": r.verdict, "now": "", "same verdict": False, "same rule": False,
               "same power": True, "control": r.null_verdict or "—"}
        try:
            now = judge(r.claim, r.values, profile, null_values=r.null_values if r.control else None,
                        seeds=r.seeds, regime=r.regime,
                        other_runs=attached.replica_values(r.claim, profile, root) if not tag else ())
        except (KeyError, ValueError) as err:
            row["now"] = f"cannot judge: {err}"
        else:
            row.update(now=now.verdict, **{"same verdict": now.verdict == r.verdict,
                                          "same rule": now.rule == r.rule,
                                          "same power": bool(tag) or _same(results.plain(now.power), r.power)})
            if r.control:
                row["control"] = f"{r.null_verdict} → {now.null_verdict}"
        rows.append(row)
    return rows


def _same(a, b, tol: float = 1e-9) -> bool:
    """Nested values equal, numbers to ``tol`` (a record's JSON round trip)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same(a[k], b[k], tol) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == b or abs(float(a) - float(b)) <= tol * max(1.0, abs(float(a)))
    return a == b


def main(argv=None) -> int:
    """``python -m mamlscope claims rejudge [--profile cpu]``: re-judge the stored records."""

    parser = argparse.ArgumentParser(prog="python -m mamlscope claims")
    parser.add_argument("action", choices=["rejudge"], help="judge every stored record again from its values")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    rows = rejudge(args.profile)
    if not rows:
        print(f"no records for profile {args.profile!r} under {results.results_root() / args.profile}")
        return 1
    bad = [r for r in rows if not (r["same verdict"] and r["same rule"] and r["same power"])]
    for r in rows:
        differs = [what for what, same in (("verdict", r["same verdict"]), ("rule text", r["same rule"]),
                                           ("power", r["same power"])) if not same]
        flag = f"   ← differs ({', '.join(differs)})" if differs else ""
        print(f"{r['claim']:12s} recorded {r['recorded']:15s} now {r['now']:15s} control {r['control']}{flag}")
    print(f"\n{len(rows) - len(bad)} of {len(rows)} records of profile {args.profile} re-judge to their verdict "
          "and power under the rules registered now" + ("." if not bad else f"; {len(bad)} differ (re-execute their chapters)."))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
