"""Verdict rules, and the claim records that the chapters write and the scorecard reads.

A *rule* turns measured values into a verdict. It is registered with its claim before anything is
measured (:mod:`mamlscope.verdict.claims`), so a chapter cannot pick its rule after seeing its numbers.
There is one implementation per kind of rule:

* :class:`AllChecks` — named comparisons ``value <op> threshold`` (:class:`Check`); *reproduced*
  when every one passes, *partly* when some do, *not reproduced* when none does.
* :class:`MatchesPaper` — an accuracy against the paper's: *reproduced* when the 95% intervals
  overlap, *partly* when the measured mean is at most a stated margin below, else *not reproduced*.
* :class:`Protocol` — the verdict protocol of ``CLAIMS.md``: decisive checks (one fails → *not
  reproduced*), secondary checks (→ *partly*), and a negative control, measured by the same code,
  which the rule must reject.

A claim may also carry a *precondition* (a :class:`Check`): when it fails, the claim cannot be
judged at this profile and the verdict is *inconclusive*, recorded with the reason.

Each judged claim is a small JSON file ``<results root>/<profile>/<claim>.json`` (results root:
``$MAMLSCOPE_RESULTS``, else ``<project>/book/results``), so the scorecard page can gather every
verdict of a profile without re-running anything.
"""
from __future__ import annotations

import json
import math
import operator
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from mamlscope.paths import project_root

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------
def lookup(values: Mapping, key: str):
    """``values["a"]["b"]`` for ``key="a.b"``; a clear error naming the missing key."""
    node = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"measured values have no {key!r} (a rule needs it); they have "
                           f"{sorted(values)}.")
        node = node[part]
    return node


def _elements(value) -> dict[str, float]:
    """A measured value as ``{label: number}``: a dict keeps its keys, a list is numbered."""
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {str(i): float(v) for i, v in enumerate(value)}
    return {"": float(value)}


@dataclass(frozen=True)
class Check:
    """One comparison stated before measuring: ``values[key] <op> threshold``.

    ``threshold`` is a number or the key of another measured value. A measured value that is a
    list or dict is compared element by element (against a number, or against the matching
    element of another list/dict). With ``each=True`` every element counts as a check of its own
    (e.g. "at every checkpoint"); otherwise the check passes only when every element passes.
    """

    name: str
    key: str
    op: str
    threshold: float | str
    each: bool = False

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op={self.op!r}; use one of {sorted(OPS)}.")

    def text(self) -> str:
        scope = " (each)" if self.each else ""
        return f"{self.name}: {self.key} {self.op} {self.threshold}{scope}"

    def outcomes(self, values: Mapping) -> dict[str, bool]:
        """``{label: passed}``: one entry, or one per element with ``each=True``."""
        left = _elements(lookup(values, self.key))
        if isinstance(self.threshold, str):
            right = _elements(lookup(values, self.threshold))
            if len(right) == 1 and len(left) > 1:
                right = {k: next(iter(right.values())) for k in left}
            if set(right) != set(left):
                raise ValueError(f"{self.name}: {self.key} and {self.threshold} have different elements "
                                 f"({sorted(left)} vs {sorted(right)}).")
        else:
            right = {k: float(self.threshold) for k in left}
        passed = {k: bool(OPS[self.op](left[k], right[k])) for k in left}
        if self.each:
            return {f"{self.name} [{k}]" if k else self.name: v for k, v in passed.items()}
        return {self.name: all(passed.values())}


def verdict_from_checks(passed: int, total: int) -> str:
    """All checks pass → reproduced; some → partly; none → not reproduced."""
    if total < 1 or not 0 <= passed <= total:
        raise ValueError(f"passed={passed}, total={total}: need 0 <= passed <= total, total >= 1.")
    return VERDICTS[0] if passed == total else VERDICTS[1] if passed > 0 else VERDICTS[2]


@dataclass(frozen=True)
class AllChecks:
    """*reproduced* when every check passes, *partly* when some do, *not reproduced* when none."""

    checks: tuple[Check, ...]

    def text(self) -> str:
        return "; ".join(c.text() for c in self.checks) + " — all pass → reproduced, some → partly, none → not reproduced"

    def judge(self, values: Mapping) -> tuple[str, dict[str, bool]]:
        outcomes = {}
        for c in self.checks:
            outcomes.update(c.outcomes(values))
        return verdict_from_checks(sum(outcomes.values()), len(outcomes)), outcomes


@dataclass(frozen=True)
class Protocol:
    """A rule under the verdict protocol (``CLAIMS.md``, "Verdict protocol").

    * ``decisive`` checks carry the claim: if any fails, *not reproduced*, whatever the others say.
    * ``secondary`` checks qualify it: all decisive pass and a secondary fails → *partly*; all
      pass → *reproduced*.
    * ``control`` names the negative control: the same quantity measured by the same code on
      something for which the claim should not hold (a random-init network, a step counter, raw
      pixels, unrelated heads …). :meth:`judge_control` applies the rule to the control's values,
      stored under the same keys, and the rule must reject them (neither *reproduced* nor
      *partly*); :func:`mamlscope.verdict.claims.judge` makes a claim whose rule passes its own control
      *inconclusive*, since the rule could not tell the claim from the null.
    """

    decisive: tuple[Check, ...]
    control: str
    secondary: tuple[Check, ...] = ()
    # A *near* control, one that keeps a cause of the observation (CLAIMS.md protocol 4) and removes
    # what ``specific_to`` names (e.g. "the inner loop's directions"). The control showing the
    # observation too is then a finding, the qualifier "not specific to <specific_to>", not a
    # failure; ``beyond`` checks compare the measurement with the control and are recorded only.
    specific_to: str = ""
    beyond: tuple[Check, ...] = ()
    # A control the rule rejects by a margin no real alternative would have (protocol 2): why, in
    # words, so that a reader does not count its rejection as evidence.
    trivial: str = ""

    def __post_init__(self):
        if not self.decisive:
            raise ValueError("a Protocol rule needs at least one decisive check (the one(s) carrying the claim).")
        if not self.control.strip():
            raise ValueError("a Protocol rule needs its negative control: what the null is, measured by the "
                             "same code (if you cannot say what it is, the rule is not ready).")

    @property
    def decisive_names(self) -> list[str]:
        return [c.name for c in self.decisive]

    def text(self) -> str:
        out = "decisive: " + "; ".join(c.text() for c in self.decisive)
        if self.secondary:
            out += " — secondary: " + "; ".join(c.text() for c in self.secondary)
        out += (" — a decisive check fails → not reproduced; all pass"
                + (", a secondary fails → partly" if self.secondary else "") + f" — control: {self.control}")
        if self.trivial:
            out += f" — a trivial control: {self.trivial}"
        if self.specific_to:
            out += (f" — the control showing the decisive observation too is a finding (\"not specific to "
                    f"{self.specific_to}\"), not a failure"
                    + ("; recorded beside it: " + "; ".join(c.text() for c in self.beyond) if self.beyond else ""))
        return out

    def shown_by_control(self, null_values: Mapping) -> bool:
        """Whether the control's values pass every decisive check (it shows the observation)."""
        decisive = {}
        for c in self.decisive:
            decisive.update(c.outcomes(null_values))
        return all(decisive.values())

    def judge(self, values: Mapping) -> tuple[str, dict[str, bool]]:
        decisive, secondary = {}, {}
        for c in self.decisive:
            decisive.update(c.outcomes(values))
        for c in self.secondary:
            secondary.update(c.outcomes(values))
        if not all(decisive.values()):
            verdict = VERDICTS[2]
        else:
            verdict = VERDICTS[0] if all(secondary.values()) else VERDICTS[1]
        return verdict, {**decisive, **secondary}

    def judge_control(self, null_values: Mapping) -> str:
        """The rule's verdict on the control's values; it must be *not reproduced*. A control
        value the rule reads that is NaN (not measurable, e.g. an interval over one unit) fails
        every comparison and would look rejected: the verdict is then *inconclusive*."""
        for c in (*self.decisive, *self.secondary):
            keys = [c.key] + ([c.threshold] if isinstance(c.threshold, str) else [])
            if any(math.isnan(x) for k in keys for x in _elements(lookup(null_values, k)).values()):
                return VERDICTS[3]
        return self.judge(null_values)[0]


@dataclass(frozen=True)
class MatchesPaper:
    """An accuracy against the paper's (fractions): *reproduced* when the 95% intervals overlap,
    ``|m − p| ≤ ci_m + ci_p``; *partly* when ``m ≥ p − partly_below``; else *not reproduced*.
    Measured values: ``mean`` and ``ci95``.

    Near 100% a fixed number of points is a large factor in errors (95.8% against 98.7% is 3.2
    times the paper's error rate), so with ``partly_error_ratio`` set the *partly* band is
    relative to the error rate instead: ``1 − m ≤ partly_error_ratio · (1 − p)``."""

    paper_mean: float
    paper_ci95: float
    partly_below: float = 0.03
    partly_error_ratio: float | None = None
    one_sided: bool = False  # the paper states a level reached: exceeding it is not a failure

    def _band(self) -> str:
        if self.partly_error_ratio is not None:
            return (f"error rate ≤ {self.partly_error_ratio:g}× the paper's "
                    f"({100 * (1 - self.paper_mean):.1f}%)")
        return f"≤ {100 * self.partly_below:g} points below"

    def _first(self) -> str:
        return ("our 95% CI reaches the paper's (upper end ≥ its lower end)" if self.one_sided
                else "95% CIs overlap")

    def text(self) -> str:
        if self.partly_error_ratio is not None:
            return (f"{self._first()} → reproduced; {self._band()}, i.e. accuracy ≥ "
                    f"{100 * (1 - self.partly_error_ratio * (1 - self.paper_mean)):.2f}% → partly; "
                    "else not reproduced")
        return (f"{self._first()} → reproduced; at most {100 * self.partly_below:g} points below the paper "
                "→ partly; else not reproduced")

    def exceeds(self, values: Mapping) -> bool:
        """Whether the measured interval lies wholly above the paper's."""
        m, c = float(lookup(values, "mean")), float(lookup(values, "ci95"))
        return m - c > self.paper_mean + self.paper_ci95

    def judge(self, values: Mapping) -> tuple[str, dict[str, bool]]:
        m, c = float(lookup(values, "mean")), float(lookup(values, "ci95"))
        if self.one_sided:
            overlap = m + c >= self.paper_mean - self.paper_ci95
        else:
            overlap = abs(m - self.paper_mean) <= c + self.paper_ci95
        if self.partly_error_ratio is not None:
            close = 1 - m <= self.partly_error_ratio * (1 - self.paper_mean)
        else:
            close = m >= self.paper_mean - self.partly_below
        outcomes = {self._first(): overlap, self._band(): close}
        verdict = VERDICTS[0] if overlap else VERDICTS[1] if close else VERDICTS[2]
        return verdict, outcomes


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
#: Why a verdict is *inconclusive*, as recorded in :attr:`ClaimResult.reasons`.
REASONS = ("precondition",          # a precondition of the claim's own rule fails
           "not converged",         # the model had not levelled off
           "inner loop",            # a claim about the inner loop, measured with another inner loop
           "outside setting",       # the paper's statement depends on a setting the book did not use
           "control not rejected",  # the rule cannot tell the claim from its negative control
           "underpowered")          # a failing decisive check could not have seen the paper's effect


@dataclass(frozen=True)
class ClaimResult:
    claim: str          # id, e.g. "G1"
    chapter: str        # notebook name, e.g. "01_maml_on_omniglot"
    profile: str
    statement: str      # the claim in one line
    measured: str       # what this book measured, as shown (with CI)
    paper: str          # what the paper reported
    verdict: str        # one of VERDICTS
    rule: str           # the registered rule, as text
    values: dict = field(default_factory=dict)  # the raw numbers behind `measured`
    checks: dict = field(default_factory=dict)  # each check of the rule: passed?
    precondition: str = ""                      # the precondition, and whether it held
    decisive: list = field(default_factory=list)     # names of the checks that carry the claim
    control: str = ""                                # the negative control (Protocol rules)
    null_values: dict = field(default_factory=dict)  # the control's values, under the rule's keys
    null_verdict: str = ""                           # the rule's verdict on them (must not pass)
    seeds: dict = field(default_factory=dict)        # {"n", "passing", "values"} where seeds replicate
    replication: dict = field(default_factory=dict)  # another seed's verdict (mamlscope.studies.replicate)
    recipe: dict = field(default_factory=dict)       # the verdict per inner-loop recipe (recipe_claims)
    regime: dict = field(default_factory=dict)       # the setting measured in, beside the paper's, and convergence
    power: dict = field(default_factory=dict)        # decisive check → share of the paper's effect it passes
    qualifiers: list = field(default_factory=list)   # what qualifies the verdict ("exceeds the paper", …)
    reasons: list = field(default_factory=list)      # why an inconclusive verdict is one: kinds of REASONS


def results_root(root=None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("MAMLSCOPE_RESULTS")
    if env:
        return Path(env)
    proj = project_root()
    return proj / "book" / "results" if proj is not None else Path.cwd() / "results"


def write(result: ClaimResult, root=None) -> ClaimResult:
    """Write one claim's result (replacing the same claim's earlier result for this profile)."""
    if result.verdict not in VERDICTS:
        raise ValueError(f"verdict={result.verdict!r}; use one of {VERDICTS}.")
    path = results_root(root) / result.profile / f"{result.claim}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return result


def load_all(profile: str, root=None) -> list[ClaimResult]:
    """Every recorded claim of ``profile``, sorted by claim id."""
    folder = results_root(root) / profile
    return [ClaimResult(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def plain(values):
    """Numbers as plain floats/ints (numpy and torch scalars and arrays are not JSON)."""
    if isinstance(values, Mapping):
        return {str(k): plain(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [plain(v) for v in values]
    if hasattr(values, "tolist"):
        return plain(values.tolist())
    if hasattr(values, "item"):
        return values.item()
    return values
