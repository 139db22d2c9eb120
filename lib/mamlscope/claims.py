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
from .results import AllChecks, Check, ClaimResult, MatchesPaper


def _layers(d: Mapping, fmt: str = ".2f") -> str:
    return ", ".join(f"{k} {v:{fmt}}" for k, v in d.items())


def _accuracy(v: Mapping) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['ci95']:.1f}% ({v['n_tasks']} tasks)"


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str                       # one line, paraphrased from the source
    paper: str                           # the paper's value, as shown beside ours
    source: str                          # where the paper says it
    chapter: str = ""                    # the notebook that judges it ("" = no chapter yet)
    rule: AllChecks | MatchesPaper | None = None
    precondition: Check | None = None    # fails → inconclusive
    measured: Callable[[Mapping], str] | None = None  # values → the "measured" column

    def rule_text(self) -> str:
        text = self.rule.text() if self.rule is not None else "—"
        if self.precondition is not None:
            text = f"precondition {self.precondition.text()} (else inconclusive); " + text
        return text


_G1 = "02_early_layers_change_little"
_G3 = "03_inner_steps_vs_meta_steps"
_F = "01_maml_on_omniglot"

CLAIMS: dict[str, Claim] = {c.id: c for c in [
    # Goerttler & Obermayer — similarity of representations
    Claim("G1", "After fine-tuning on new tasks, early layers stay closer to the meta-initialisation's "
                "representations than later layers, at every stage of meta-training",
          paper="dissimilarity rises with depth at every checkpoint (Fig 1a, 50 tasks)",
          source="[G] §4, Fig 1a", chapter=_G1,
          rule=AllChecks((Check("ρ(depth, d) interval above 0 at checkpoint", "rho_lo", ">", 0, each=True),)),
          measured=lambda v: (f"ρ(depth, d) CI > 0 at {sum(x > 0 for x in v['rho_lo'])}/{len(v['rho_lo'])} "
                              f"checkpoints; mean ρ {min(v['rho']):.2f}–{max(v['rho']):.2f}; {v['n_tasks']} tasks")),
    Claim("G2", "The same depth ordering appears in plain supervised training on MNIST (RSA and CKA), "
                "so it is not specific to MAML",
          paper="RSA dissimilarity rises and CKA falls with depth; CKA higher in early layers (Fig 2)",
          source="[G] §4, Fig 2", chapter=_G1,
          rule=AllChecks((Check("RSA grows with depth", "rsa_rho_lo", ">", 0),
                          Check("CKA falls with depth", "cka_rho_hi", "<", 0),
                          Check("conv1: CKA similarity > RSA similarity", "conv1_cka", ">", "conv1_rsa_similarity"))),
          measured=lambda v: (f"RSA ρ {v['rsa_rho']:.2f} [{v['rsa_rho_lo']:.2f}, {v['rsa_rho_hi']:.2f}], "
                              f"CKA ρ {v['cka_rho']:.2f} [{v['cka_rho_lo']:.2f}, {v['cka_rho_hi']:.2f}]; conv1 CKA "
                              f"{v['conv1_cka']:.3f} vs 1−RSA {v['conv1_rsa_similarity']:.3f}; {v['seeds']} seeds")),
    Claim("G3", "The representation change caused by meta-training levels off at a small plateau: "
                "near zero in the first layers, larger (≈ 0.1) in the last",
          paper="≈ 0 (first layers), ≈ 0.1 (last layers), Δ = 1000 of 60,000 steps (Fig 1b)",
          source="[G] §4, Fig 1b", chapter=_G3,
          rule=AllChecks((Check("every layer settles", "second_half", "<=", "first_half"),
                          Check("conv1 plateau < last layer's", "plateau_first", "<", "plateau_last"),
                          Check("conv1 plateau near 0", "plateau_first", "<", 0.05))),
          measured=lambda v: (f"plateau conv1 {v['plateau_first']:.3f}, last layer {v['plateau_last']:.3f} "
                              f"(Δ = {v['delta']} steps)")),
    Claim("G4", "The inner loop, even a single step, changes representations more than meta-training "
                "does between checkpoints, in every layer",
          paper="inner-loop change larger in every layer, early ones included (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3,
          rule=AllChecks((Check("inner(1 step) / meta > 1", "ratio_1", ">", 1, each=True),)),
          measured=lambda v: "inner(1 step) / meta: " + _layers(v["ratio_1"], ".1f")),
    Claim("G5", "Most of the inner loop's change happens in its first step; further steps add little",
          paper="the first inner step does most of the change; 5 or 10 add little (Fig 3)",
          source="[G] §4, Fig 3", chapter=_G3,
          rule=AllChecks((Check("d(0→1) / d(0→10) > 0.5", "first_step_share", ">", 0.5, each=True),)),
          measured=lambda v: "d(0→1)/d(0→10): " + _layers(v["first_step_share"])),
    # Guiroy, Verma & Pal — objective landscapes
    Claim("L1", "Curvature at adapted meta-test solutions rises, then falls, and keeps falling after "
                "meta-overfitting: flatness does not track generalisation",
          paper="E‖H‖σ rises then falls; keeps falling after the accuracy peak (Figs 2–4)", source="[L] §5.1"),
    Claim("L2", "The mean cosine between meta-test adaptation directions tracks target accuracy; for a "
                "fine-tuned baseline the directions are near-orthogonal",
          paper="correlates with target accuracy; ≈ 0 for fine-tuning (Figs 5–6)", source="[L] §5.2"),
    Claim("L3", "With one inner step, the mean inner product of meta-test gradients at θ tracks "
                "generalisation", paper="correlates with generalisation (Fig 7)", source="[L] §5.3"),
    Claim("L4", "That gradient coherence also tracks generalisation in few-shot sinusoid regression",
          paper="correlates with −MSE (Fig 8)", source="[L] §5.3.1"),
    Claim("L5", "The mean inner product of penultimate features on meta-test data tracks generalisation, "
                "meta-overfitting included", paper="tracks generalisation (Figs 9–10)", source="[L] §6"),
    Claim("L6", "Penalising the angle between each task's update and the mean update raises Omniglot "
                "20-way 1-shot accuracy", paper="94.05% → 95.38% (5 runs, 600 tasks each)",
          source="[L] §7, Alg 1, Fig 11"),
    # Raghu et al. — rapid learning or feature reuse
    Claim("R1", "ANIL, which adapts only the head, matches MAML's few-shot accuracy",
          paper="Omniglot 20w1s 93.7 ± 0.7 vs 96.2 ± 0.5 (mean ± std, 3 seeds)", source="[R] Table 2"),
    Claim("R2", "ANIL is cheaper than MAML to train and to adapt",
          paper="≈ 1.7× faster training, ≈ 4.1× faster inference", source="[R]"),
    Claim("R3", "Adapting only the top layers at test time barely changes a MAML-trained network's "
                "accuracy (feature reuse)", paper="small drop when freezing the body", source="[R]"),
    Claim("R4", "The inner loop leaves the body's representations almost unchanged (CCA, CKA ≈ 1); "
                "only the head changes", paper="CCA/CKA ≈ 1 in the body", source="[R]"),
    Claim("R5", "NIL — no head, queries classified by cosine similarity to the support features — is "
                "about as accurate as MAML and ANIL", paper="about MAML's and ANIL's accuracy", source="[R] §4"),
    # Agarwal — what the features look like
    Claim("A1", "Filters, feature embeddings and units' preferred inputs show what a MAML-trained "
                "network learned, beside a supervised one",
          paper="qualitative figures", source="[A] §3.2"),
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


def judge(claim_id: str, values: Mapping, profile: str) -> ClaimResult:
    """Apply the registered rule of ``claim_id`` to the measured ``values`` (not written)."""
    c = claim(claim_id)
    if c.rule is None:
        raise ValueError(f"claim {claim_id} has no registered rule yet; add one in mamlscope.claims.")
    values = results.plain(dict(values))
    precondition = ""
    if c.precondition is not None:
        held = all(c.precondition.outcomes(values).values())
        precondition = f"{c.precondition.text()}: {'holds' if held else 'FAILS'}"
        if not held:
            return ClaimResult(c.id, c.chapter, profile, c.statement, c.measured(values) if c.measured else "",
                               c.paper, "inconclusive", c.rule_text(), values, {}, precondition)
    verdict, outcomes = c.rule.judge(values)
    measured = c.measured(values) if c.measured else ""
    return ClaimResult(c.id, c.chapter, profile, c.statement, measured, c.paper, verdict, c.rule_text(),
                       values, outcomes, precondition)


def record(claim_id: str, values: Mapping, profile: str, root=None) -> ClaimResult:
    """Judge ``claim_id`` on ``values`` with its registered rule and write the result for the
    scorecard (:func:`mamlscope.results.write`)."""
    return results.write(judge(claim_id, values, profile), root)


def verdict_table(records: list[ClaimResult]):
    """The table that ends a chapter: one row per claim (index), measured, paper, verdict."""
    import pandas as pd

    return pd.DataFrame([{"claim": r.claim, "measured": r.measured, "paper": r.paper, "verdict": r.verdict}
                         for r in records]).set_index("claim")
