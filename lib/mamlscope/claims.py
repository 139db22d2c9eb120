"""The claim registry: every claim the book judges, with its rule, registered before measuring.

One :class:`Claim` per id of ``CLAIMS.md`` (G, L, R, A), then the base-protocol claims the book
adds (F: Finn et al.). A claim holds its one-line statement (paraphrased), the paper's value, its
source, the chapter that judges it, its verdict rule (:mod:`mamlscope.results`), an optional
precondition (failing → *inconclusive*), and how its measurement is written. Chapters show their
claims with :func:`table` before measuring and finish with :func:`record`; the scorecard reads the
same registry, so a statement or a rule lives in one place only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from . import results
from .results import AllChecks, Check, ClaimResult, MatchesPaper, Protocol


def _layers(d: Mapping, fmt: str = ".2f") -> str:
    return ", ".join(f"{k} {v:{fmt}}" for k, v in d.items())


def _points(v: Mapping, name: str, k: str) -> str:
    """``v[name][k]`` with its interval ``v[name_lo][k]``, ``v[name_hi][k]``, in signed points."""
    return f"{100 * v[name][k]:+.1f} [{100 * v[name + '_lo'][k]:+.1f}, {100 * v[name + '_hi'][k]:+.1f}]"


def _accuracy(v: Mapping) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['ci95']:.1f}% ({v['n_tasks']} tasks)"


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

    def rule_text(self) -> str:
        text = self.rule.text() if self.rule is not None else "—"
        if self.precondition:
            text = "precondition " + "; ".join(c.text() for c in self.precondition) + " (else inconclusive); " + text
        return text


_G1 = "02_early_layers_change_little"
_G3 = "03_inner_steps_vs_meta_steps"
_F = "01_maml_on_omniglot"
_R = "04_rapid_learning_or_feature_reuse"
_L = "05_objective_landscapes"
_L6 = "06_coherence_regulariser"
_A = "07_what_the_features_look_like"

# [L]'s flatness argument looks past the point where accuracy turns down: without meta-overfitting
# there is nothing to look past (mamlscope.landscape.peak locates the peak).
_META_OVERFITS = (Check("meta-overfitting: accuracy falls ≥ 1 point after its peak", "overfit_drop", ">=", 0.01),
                  Check("… by more than 2 SE", "overfit_z", ">", 2))


def _rhos(v: Mapping, name: str, label: str) -> str:
    """``label`` per run: ρ [lo, hi]."""
    return f"{label}: " + ", ".join(f"{k} {v[name][k]:+.2f} [{v[name + '_lo'][k]:+.2f}, {v[name + '_hi'][k]:+.2f}]"
                                    for k in v[name])


def _overfit_text(v: Mapping) -> str:
    return (f"; accuracy peaks at step {v['peak_step']} ({100 * v['peak_score']:.1f}%), ends at "
            f"{100 * v['final_score']:.1f}% (−{100 * v['overfit_drop']:.1f} points, {v['overfit_z']:.1f} SE)")

def _features_pair(claim_id: str, statement: str, where: str) -> "Claim":
    """A1b/A1c: MAML's features against supervised ones, 5-NN accuracy on the same points, with
    the book's non-inferiority rule (a 2-point margin)."""
    return Claim(claim_id, statement,
                 paper="MAML learns features broadly suited to many tasks ([F], quoted by [A] §1); not measured in [A]",
                 source="[A] §1, §4 (planned)", chapter=_A,
                 rule=AllChecks((Check("non-inferior: 95% CI of (MAML − supervised) 5-NN accuracy above −2 points",
                                       "diff_lo", ">", -0.02),)),
                 measured=lambda v: (f"{where}: 5-NN MAML {100 * v['maml']:.1f}%, supervised "
                                     f"{100 * v['supervised']:.1f}%, MAML − supervised {100 * v['diff']:+.1f} "
                                     f"[{100 * v['diff_lo']:+.1f}, {100 * v['diff_hi']:+.1f}] points "
                                     f"({v['pool']} points, paired)"))


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    # Goerttler & Obermayer — similarity of representations
    Claim("G1", "After fine-tuning on new tasks, early layers stay closer to the meta-initialisation's "
                "representations than later layers, at every stage of meta-training",
          paper="dissimilarity rises with depth at every checkpoint (Fig 1a, 50 tasks)",
          source="[G] §4, Fig 1a", chapter=_G1, depends_on="F2",
          rule=AllChecks((Check("strong depth ordering at checkpoint (ρ's 95% CI lower bound ≥ 0.7)",
                                "rho_lo", ">=", 0.7, each=True),)),
          measured=lambda v: (f"ρ(depth, d) CI lower bound ≥ 0.7 at {sum(x >= 0.7 for x in v['rho_lo'])}/"
                              f"{len(v['rho_lo'])} checkpoints; mean ρ {min(v['rho']):.2f}–{max(v['rho']):.2f} "
                              f"({v['metric']} RDMs; Euclidean: {min(v['rho_euclidean']):.2f}–"
                              f"{max(v['rho_euclidean']):.2f}); {v['n_tasks']} tasks")),
    Claim("G2", "The same depth ordering appears in plain supervised training on MNIST (RSA and CKA), "
                "so it is not specific to MAML",
          paper="RSA dissimilarity rises and CKA falls with depth; CKA higher in early layers (Fig 2)",
          source="[G] §4, Fig 2", chapter=_G1,
          rule=AllChecks((Check("RSA grows with depth (ρ's CI lower bound ≥ 0.7)", "rsa_rho_lo", ">=", 0.7),
                          Check("CKA falls with depth (ρ's CI upper bound ≤ −0.7)", "cka_rho_hi", "<=", -0.7),
                          Check("CKA > 1 − RSA (conv1–3, each seed)", "early_cka", ">", "early_rsa_similarity",
                                each=True))),
          measured=lambda v: (f"RSA ρ {v['rsa_rho']:.2f} [{v['rsa_rho_lo']:.2f}, {v['rsa_rho_hi']:.2f}], "
                              f"{v['kernel']} CKA ρ {v['cka_rho']:.2f} [{v['cka_rho_lo']:.2f}, {v['cka_rho_hi']:.2f}]; "
                              f"CKA > 1 − RSA in {sum(v['early_cka'][k] > v['early_rsa_similarity'][k] for k in v['early_cka'])}"
                              f"/{len(v['early_cka'])} (seed, layer) pairs of conv1–3; {v['seeds']} seeds")),
    Claim("G3", "The representation change caused by meta-training levels off at a small plateau: "
                "near zero in the first layers, larger (≈ 0.1) in the last pooling layers",
          paper="≈ 0 (first layers), ≈ 0.1 (last pooling layers: conv4 here), Δ = 1000 of 60,000 steps (Fig 1b)",
          source="[G] §4, Fig 1b", chapter=_G3, depends_on="F2",
          rule=AllChecks((Check("conv1 plateau < conv4's", "plateau_first", "<", "plateau_last"),
                          Check("conv1 plateau near 0 (< 0.05)", "plateau_first", "<", 0.05),
                          Check("conv4 plateau ≥ 0.05 (0.1 within 2×)", "plateau_last", ">=", 0.05),
                          Check("conv4 plateau ≤ 0.2 (0.1 within 2×)", "plateau_last", "<=", 0.2),
                          Check("conv4 has levelled off (fitted change over the second half ≤ 25%)",
                                "drift_last", "<=", 0.25))),
          measured=lambda v: (f"plateau conv1 {v['plateau_first']:.3f}, {v['last_layer']} {v['plateau_last']:.3f}, "
                              f"{v['last_layer']} drift {100 * v['drift_last']:.0f}% (Δ = {v['delta']} of "
                              f"{v['steps']} steps; {v['metric']} RDMs)")),
    Claim("G4", "The inner loop, even a single step, changes representations more than meta-training "
                "does between checkpoints, in every layer, the early ones included",
          paper="inner-loop change larger in every layer, especially the early ones (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3, depends_on="F2",
          rule=AllChecks((Check("inner(1 step) / meta: 95% CI above 1", "early_ratio_1_lo", ">", 1, each=True),)),
          measured=lambda v: ("inner(1 step) / meta: " + ", ".join(
              f"{k} {v['ratio_1'][k]:.2f} [{v['ratio_1_lo'][k]:.2f}, {v['ratio_1_hi'][k]:.2f}]"
              for k in v["early_ratio_1_lo"]) + f" ({v['metric']} RDMs)")),
    Claim("G5", "Most of the inner loop's change happens in its first step; further steps add little",
          paper="the first inner step does most of the change; 5 or 10 add little (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3, depends_on="F2",
          precondition=(Check("trained with ≥ 5 inner steps", "train_inner_steps", ">=", 5),
                        Check("support loss after step 1 not saturated (≥ 5% of its value before)",
                              "support_loss_ratio_1", ">=", 0.05)),
          rule=AllChecks((Check("d(0→1) / d(0→10) > 0.5", "first_step_share", ">", 0.5, each=True),)),
          measured=lambda v: ("d(0→1)/d(0→10): " + _layers(v["first_step_share"])
                              + f"; support loss after step 1: {100 * v['support_loss_ratio_1']:.0f}% of before")),
    # Guiroy, Verma & Pal — objective landscapes
    Claim("L1", "Curvature at adapted meta-test solutions rises, then falls, and keeps falling after "
                "meta-overfitting: flatness does not track generalisation",
          paper="E‖H‖σ rises then falls; keeps falling after the accuracy peak; follows the support loss "
                "for fine-tuning (Figs 2–4)", source="[L] §5.1", chapter=_L,
          precondition=_META_OVERFITS,
          rule=AllChecks((Check("curvature rises: its maximum exceeds step 0's by > 2 SE", "rise_z", ">", 2, each=True),
                          Check("then falls: its maximum exceeds the last checkpoint's by > 2 SE", "fall_z", ">", 2,
                                each=True),
                          Check("keeps falling after the accuracy peak: ρ(step, E‖H‖σ) ≤ −0.5 from the peak on",
                                "after_peak_rho", "<=", -0.5, each=True),
                          Check("fine-tune baseline: curvature follows the support loss, ρ ≥ 0.5 over checkpoints",
                                "finetune_rho", ">=", 0.5))),
          measured=lambda v: ("; ".join(
              f"{k}: E‖H‖σ peaks at step {v['curvature_peak_step'][k]} (rise {v['rise_z'][k]:.1f} SE, fall "
              f"{v['fall_z'][k]:.1f} SE), accuracy at step {v['accuracy_peak_step'][k]}, ρ(step, E‖H‖σ) after "
              f"it {v['after_peak_rho'][k]:+.2f}" for k in v["rise_z"])
              + f"; fine-tune ρ(E‖H‖σ, support loss) {v['finetune_rho']:+.2f} [{v['finetune_rho_lo']:+.2f}, "
                f"{v['finetune_rho_hi']:+.2f}]" + _overfit_text(v))),
    Claim("L2", "The mean cosine between meta-test adaptation directions tracks target accuracy; for a "
                "fine-tuned baseline the directions are near-orthogonal",
          paper="correlates with target accuracy; ≈ 0 for fine-tuning (Figs 5–6)", source="[L] §5.2", chapter=_L,
          rule=AllChecks((Check("tracks accuracy: ρ(E[θ⃗ᵢᵀθ⃗ⱼ], accuracy) over checkpoints, 95% CI above 0",
                                "traj_rho_lo", ">", 0, each=True),
                          Check("fine-tune baseline near-orthogonal: mean cosine over its trained checkpoints < 0.1",
                                "finetune_traj", "<", 0.1))),
          measured=lambda v: (_rhos(v, "traj_rho", "ρ(E[θ⃗ᵢᵀθ⃗ⱼ], accuracy)")
                              + f"; mean cosine: fine-tune {v['finetune_traj']:.3f}, MAML {v['meta_traj']:.3f}")),
    Claim("L3", "With one inner step, the mean inner product of meta-test gradients at θ tracks "
                "generalisation", paper="correlates with generalisation, more consistently than L2 (Fig 7)",
          source="[L] §5.3", chapter=_L,
          rule=AllChecks((Check("tracks accuracy: ρ(E[gᵢᵀgⱼ], accuracy) over checkpoints, 95% CI above 0",
                                "grad_rho_lo", ">", 0, each=True),)),
          measured=lambda v: (_rhos(v, "grad_rho", "ρ(E[gᵢᵀgⱼ], accuracy)") + "; for comparison "
                              + _rhos(v, "traj_rho", "ρ(E[θ⃗ᵢᵀθ⃗ⱼ], accuracy)"))),
    Claim("L4", "That gradient coherence also tracks generalisation in few-shot sinusoid regression",
          paper="correlates with −MSE (Fig 8)", source="[L] §5.3.1", chapter=_L,
          rule=AllChecks((Check("tracks −MSE: ρ(E[gᵢᵀgⱼ], −MSE) over checkpoints, 95% CI above 0",
                                "grad_rho_lo", ">", 0),)),
          measured=lambda v: (f"ρ(E[gᵢᵀgⱼ], −MSE) {v['grad_rho']:+.2f} [{v['grad_rho_lo']:+.2f}, "
                              f"{v['grad_rho_hi']:+.2f}] over {v['checkpoints']} checkpoints; meta-test MSE "
                              f"{v['mse_first']:.2f} at step 0, best {v['mse_best']:.2f}, last {v['mse_last']:.2f}")),
    Claim("L5", "The mean inner product of penultimate features on meta-test data tracks generalisation, "
                "meta-overfitting included", paper="tracks generalisation, through meta-overfitting (Figs 9–10)",
          source="[L] §6", chapter=_L, precondition=_META_OVERFITS,
          rule=AllChecks((Check("tracks accuracy: ρ(E[hᵢᵀhⱼ], accuracy) over all checkpoints, 95% CI above 0",
                                "rep_rho_lo", ">", 0),
                          Check("through meta-overfitting: the same from the accuracy peak on, 95% CI above 0",
                                "rep_after_rho_lo", ">", 0))),
          measured=lambda v: (f"ρ(E[hᵢᵀhⱼ], accuracy) {v['rep_rho']:+.2f} [{v['rep_rho_lo']:+.2f}, "
                              f"{v['rep_rho_hi']:+.2f}] over all checkpoints, {v['rep_after_rho']:+.2f} "
                              f"[{v['rep_after_rho_lo']:+.2f}, {v['rep_after_rho_hi']:+.2f}] from the peak on"
                              + _overfit_text(v))),
    Claim("L6", "Penalising the angle between each task's update and the mean update raises Omniglot "
                "20-way 1-shot accuracy", paper="94.05% → 95.38% (+1.33 points, 23% fewer errors; 5 runs, 600 tasks each)",
          source="[L] §7, Alg 1, Fig 11", chapter=_L6,
          precondition=(Check("≥ 3 seeds per arm", "seeds", ">=", 3),),
          rule=AllChecks((Check("improvement: 95% t interval over seeds of (regularised − plain) above 0",
                                "diff_lo", ">", 0),
                          Check("size: error rate reduced by ≥ 11.5% of itself (half of [L]'s 23%)",
                                "error_reduction", ">=", 0.115))),
          measured=lambda v: (f"{v['setting']}, γ = {v['gamma']}: regularised − plain {100 * v['diff']:+.2f} "
                              f"[{100 * v['diff_lo']:+.2f}, {100 * v['diff_hi']:+.2f}] points over {v['seeds']} seeds "
                              f"(per seed: " + ", ".join(f"{100 * d:+.2f}" for d in v["diff_by_seed"].values())
                              + f"; {v['n_tasks']} tasks each); error rate reduced by {100 * v['error_reduction']:.0f}%")),
    # Raghu et al. — rapid learning or feature reuse
    Claim("R1", "ANIL, which adapts only the head, matches MAML's few-shot accuracy",
          paper="Omniglot 20w1s: MAML 93.7 ± 0.7, ANIL 96.2 ± 0.5; 20w5s: 96.4 ± 0.1 vs 98.0 ± 0.3 "
                "(mean ± std over 3 seeds)",
          source="[R] Table 2", chapter=_R, depends_on="F2",
          rule=AllChecks((Check("ANIL non-inferior to MAML: 95% CI of ANIL − MAML above −2 points",
                                "diff_lo", ">", -0.02, each=True),)),
          measured=lambda v: "; ".join(
              f"{s}: ANIL {100 * v['anil'][s]:.1f}%, MAML {100 * v['maml'][s]:.1f}%, ANIL − MAML "
              f"{_points(v, 'diff', s)} points"
              for s in v["diff"]) + f" ({v['n_tasks']} tasks, paired; seed 0 of each)"
              + (f"; not run at this profile: {', '.join(v['not_run'])}" if v.get("not_run") else "")),
    Claim("R2", "ANIL is cheaper than MAML to train and to adapt",
          paper="≈ 1.7× faster per training step, ≈ 4.1× faster per adaptation", source="[R] §4",
          chapter=_R,
          rule=AllChecks((Check("training: MAML/ANIL seconds per meta-step, 95% CI above 1", "train_lo", ">", 1),
                          Check("adaptation: MAML/ANIL seconds per test-time adaptation, 95% CI above 1",
                                "adapt_lo", ">", 1))),
          measured=lambda v: (f"training {v['train']:.2f}× [{v['train_lo']:.2f}, {v['train_hi']:.2f}], "
                              f"adaptation {v['adapt']:.2f}× [{v['adapt_lo']:.2f}, {v['adapt_hi']:.2f}] "
                              f"({v['device']})")),
    Claim("R3", "Adapting only the top layers at test time barely changes a MAML-trained network's "
                "accuracy (feature reuse)",
          paper="MiniImageNet 5w1s: 46.9 (none frozen) → 46.3 (conv1–4 frozen); 5w5s: 63.1 → 61.0",
          source="[R] §3, Table 1", chapter=_R, depends_on="F2",
          rule=AllChecks((Check("frozen layers cost < 2 points: 95% CI of (frozen − all adapted) above −2 points",
                                "freeze_diff_lo", ">", -0.02, each=True),)),
          measured=lambda v: "frozen − all adapted: " + ", ".join(
              f"{k} {_points(v, 'freeze_diff', k)}" for k in v["freeze_diff"])
              + f" points (all adapted: {100 * v['full']['mean']:.1f}%)"),
    Claim("R4", "The inner loop leaves the body's representations almost unchanged (CCA, CKA ≈ 1); "
                "only the head changes",
          paper="conv layers: CCA > 0.9, CKA ≈ 1; head: CCA < 0.5 (Fig 2)", source="[R] §3.2, Fig 2",
          chapter=_R, depends_on="F2",
          rule=AllChecks((Check("body CKA ≥ 0.9 (95% CI lower bound)", "body_cka_lo", ">=", 0.9, each=True),
                          Check("body CCA ≥ 0.9 (SVCCA, 95% CI lower bound)", "body_cca_lo", ">=", 0.9, each=True),
                          Check("head CCA < 0.5 (SVCCA, 95% CI upper bound)", "head_cca_hi", "<", 0.5))),
          measured=lambda v: (f"body CKA {_layers(v['body_cka'], '.3f')}; body SVCCA {_layers(v['body_cca'], '.3f')}; "
                              f"head SVCCA {v['head_cca']:.3f} (upper bound {v['head_cca_hi']:.3f}), "
                              f"head CKA {v['head_cka']:.3f}; {v['n_tasks']} tasks")),
    Claim("R5", "NIL — no head, queries classified by cosine similarity to the support features — is "
                "about as accurate as MAML and ANIL",
          paper="NIL after ANIL training, Omniglot 20w1s 96.7 ± 0.3 (ANIL 96.2 ± 0.5, MAML 93.7 ± 0.7)",
          source="[R] §4, Table 4", chapter=_R, depends_on="F2",
          rule=AllChecks((Check("NIL within 2 points of the trained head: 95% CI of (NIL − head) above −2 points",
                                "nil_diff_lo", ">", -0.02, each=True),)),
          measured=lambda v: "; ".join(
              f"{k}: NIL {100 * v['nil'][k]:.1f}%, with its head {100 * v['head'][k]:.1f}%, NIL − head "
              f"{_points(v, 'nil_diff', k)}"
              for k in v["nil_diff"]) + " points"),
    # Agarwal — what the features look like
    Claim("A1", "Filters, feature embeddings and units' preferred inputs show what a network learned; "
                "the supervised baseline's last hidden layer clusters by digit, also in a t-SNE plane",
          paper="t-SNE of the 64-d last hidden layer clusters by label (Fig 3); PCA (Fig 4); filters (Fig 2); "
                "units' extreme inputs (Fig 5)", source="[A] §3.2", chapter=_A,
          rule=AllChecks((Check("the 64-d layer separates the digits: 5-NN accuracy, 95% CI lower bound ≥ 90%",
                                "sup_knn_lo", ">=", 0.9),
                          Check("so does its t-SNE plane: 5-NN accuracy there, 95% CI lower bound ≥ 90%",
                                "sup_tsne_lo", ">=", 0.9))),
          measured=lambda v: (f"supervised FC, {v['pool']} held-out MNIST test images: 5-NN {100 * v['sup_knn']:.1f}% "
                              f"(lower bound {100 * v['sup_knn_lo']:.1f}) in 64-d, {100 * v['sup_tsne']:.1f}% "
                              f"(lower bound {100 * v['sup_tsne_lo']:.1f}) in the t-SNE plane, "
                              f"{100 * v['sup_pca']:.1f}% in the PCA plane")),
    Claim("A1a", "Agarwal's fully-connected baseline (784-256-128-64-64-10, BatchNorm, 5 epochs, Adam, L2 0.01) "
                 "reaches 96.71% on MNIST", paper="96.71% (one run)", source="[A] §3.1", chapter=_A,
          rule=MatchesPaper(0.9671, 0.0, partly_below=0.01),
          measured=lambda v: (f"{100 * v['mean']:.2f} ± {100 * v['ci95']:.2f}% over {v['seeds']} seeds (t interval; "
                              f"10,000 test images each)")),
    _features_pair("A1b", "With the same network and data, MAML's features separate the digits about as well as "
                          "supervised training's (the book's test of [F]'s 'broadly suited' features)",
                   "FC on MNIST test digits"),
    _features_pair("A1c", "On characters neither network was trained on, a MAML-trained Conv4's features separate "
                          "the classes about as well as a Conv4 trained on all training characters as classes",
                   "Conv4 on held-out Omniglot characters"),
    Claim("A1d", "Central differences (Eq. 2) approximate the Hessian-vector product of MAML's meta-gradient",
          paper="proposed, not measured (Eq. 2)", source="[A] §4, Eq. 2", chapter=_A,
          rule=AllChecks((Check("float64: Hv relative error ≤ 1e-6 at the best ε", "f64_best", "<=", 1e-6),
                          Check("float32: Hv relative error ≤ 1e-2 at the best ε", "f32_best", "<=", 1e-2),
                          Check("float32: meta-gradient relative error ≤ 1e-3 at that ε", "f32_meta", "<=", 1e-3))),
          measured=lambda v: (f"best Hv relative error {v['f64_best']:.1e} at ε = {v['f64_eps']:.0e} (float64), "
                              f"{v['f32_best']:.1e} at ε = {v['f32_eps']:.0e} (float32; meta-gradient error "
                              f"{v['f32_meta']:.1e})")),
    # Finn et al. — the base protocol the other claims build on
    Claim("F1", "MAML reaches Finn et al.'s accuracy on Omniglot 5-way 1-shot",
          paper="98.7 ± 0.4% (Finn et al. 2017)", source="[F] Table 1", chapter=_F,
          rule=MatchesPaper(0.987, 0.004, partly_below=0.03), measured=_accuracy),
    Claim("F2", "MAML reaches Finn et al.'s accuracy on Omniglot 20-way 1-shot",
          paper="95.8 ± 0.3% (Finn et al. 2017; Raghu et al.'s rerun: 93.7 ± 0.7%)", source="[F] Table 1",
          chapter=_F, rule=MatchesPaper(0.958, 0.003, partly_below=0.03), measured=_accuracy),
]}


def claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise KeyError(f"unknown claim {claim_id!r}; registered claims: {', '.join(CLAIMS)}.")
    return CLAIMS[claim_id]


def of_chapter(chapter: str) -> list[Claim]:
    """The claims a chapter judges, in registry order."""
    return [c for c in CLAIMS.values() if c.chapter == chapter]


def table(chapter: str):
    """The claims of ``chapter`` with their rules: shown at the top of a chapter, before measuring."""
    import pandas as pd

    return pd.DataFrame([{"id": c.id, "claim": c.statement, "paper": c.paper, "source": c.source,
                          "rule (registered before measuring)": c.rule_text()}
                         for c in of_chapter(chapter)]).set_index("id")


def judge(claim_id: str, values: Mapping, profile: str, null_values: Mapping | None = None,
          seeds: Mapping | None = None) -> ClaimResult:
    """Apply the registered rule of ``claim_id`` to the measured ``values`` (not written).

    A :class:`~mamlscope.results.Protocol` rule is also applied to ``null_values``, its negative
    control measured by the same code under the same keys (required). If the rule does not
    reject its control, the claim is *inconclusive*: the rule could not tell it from the null.
    ``seeds`` (``{"n", "passing", "values"}``, :func:`mamlscope.stats.over_seeds`) is recorded."""
    c = claim(claim_id)
    if c.rule is None:
        raise ValueError(f"claim {claim_id} has no registered rule yet; add one in mamlscope.claims.")
    values = results.plain(dict(values))
    protocol = isinstance(c.rule, Protocol)
    if protocol and null_values is None:
        raise ValueError(f"claim {claim_id} is judged against its negative control ({c.rule.control}): pass "
                         "null_values, measured by the same code, under the rule's keys.")
    extra = {"seeds": results.plain(dict(seeds or {}))}
    if protocol:
        null = results.plain(dict(null_values))
        extra.update(decisive=c.rule.decisive_names, control=c.rule.control, null_values=null,
                     null_verdict=c.rule.judge_control(null))
    measured = c.measured(values) if c.measured else ""
    precondition = ""
    if c.precondition:
        outcomes = {}
        for check in c.precondition:
            outcomes.update(check.outcomes(values))
        held = all(outcomes.values())
        precondition = "; ".join(f"{k}: {'holds' if ok else 'FAILS'}" for k, ok in outcomes.items())
        if not held:
            return ClaimResult(c.id, c.chapter, profile, c.statement, measured, c.paper, "inconclusive",
                               c.rule_text(), values, {}, precondition, **extra)
    verdict, outcomes = c.rule.judge(values)
    if protocol and extra["null_verdict"] in results.VERDICTS[:2]:
        precondition = "; ".join(filter(None, [precondition, f"the rule does not reject its control "
                                               f"({c.rule.control}: {extra['null_verdict']})"]))
        verdict = "inconclusive"
    return ClaimResult(c.id, c.chapter, profile, c.statement, measured, c.paper, verdict, c.rule_text(),
                       values, outcomes, precondition, **extra)


def record(claim_id: str, values: Mapping, profile: str, root=None, null_values: Mapping | None = None,
           seeds: Mapping | None = None) -> ClaimResult:
    """Judge ``claim_id`` on ``values`` (and its control on ``null_values``) with its registered
    rule and write the result for the scorecard (:func:`mamlscope.results.write`)."""
    return results.write(judge(claim_id, values, profile, null_values, seeds), root)


def verdict_table(records: list[ClaimResult]):
    """The table that ends a chapter: one row per claim (index), measured, paper, verdict."""
    import pandas as pd

    return pd.DataFrame([{"claim": r.claim, "measured": r.measured, "paper": r.paper, "verdict": r.verdict}
                         for r in records]).set_index("claim")


def rejudge(profile: str, root=None) -> list[dict]:
    """Judge every recorded claim of ``profile`` again from its stored values (and its stored
    control values) with the rule registered now, as a reader can. One row per claim: the
    recorded verdict, the verdict now, and whether they and the rule's text agree; a row that
    disagrees means a rule changed without its chapter being re-executed."""
    rows = []
    for r in results.load_all(profile, root):
        row = {"claim": r.claim, "recorded": r.verdict, "now": "", "same verdict": False, "same rule": False,
               "control": r.null_verdict or "—"}
        try:
            now = judge(r.claim, r.values, profile, null_values=r.null_values if r.control else None,
                        seeds=r.seeds)
        except (KeyError, ValueError) as err:
            row["now"] = f"cannot judge: {err}"
        else:
            row.update(now=now.verdict, **{"same verdict": now.verdict == r.verdict,
                                          "same rule": now.rule == r.rule})
            if r.control:
                row["control"] = f"{r.null_verdict} → {now.null_verdict}"
        rows.append(row)
    return rows


def main(argv=None) -> int:
    """``python -m mamlscope.claims rejudge [--profile cpu]``: re-judge the stored records."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mamlscope.claims")
    parser.add_argument("action", choices=["rejudge"], help="judge every stored record again from its values")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    rows = rejudge(args.profile)
    if not rows:
        print(f"no records for profile {args.profile!r} under {results.results_root() / args.profile}")
        return 1
    bad = [r for r in rows if not (r["same verdict"] and r["same rule"])]
    for r in rows:
        differs = [what for what, same in (("verdict", r["same verdict"]), ("rule text", r["same rule"])) if not same]
        flag = f"   ← differs ({', '.join(differs)})" if differs else ""
        print(f"{r['claim']:4s} recorded {r['recorded']:15s} now {r['now']:15s} control {r['control']}{flag}")
    print(f"\n{len(rows) - len(bad)} of {len(rows)} records of profile {args.profile} re-judge to their verdict "
          "under the rules registered now" + ("." if not bad else f"; {len(bad)} differ (re-execute their chapters)."))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
