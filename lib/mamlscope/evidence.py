"""One claim's measurement, as the analyses hand it to the verdicts.

An analysis in :mod:`mamlscope.measure` returns an :class:`Evidence`; :func:`mamlscope.verdict.claims.record`
judges it with the claim's registered rule and :func:`mamlscope.verdict.claims.control_table` shows it
beside its controls. It sits on the ground floor so that both can use it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What was measured for one claim.

    ``values``: the measurement under the rule's keys. ``controls``: label → the same keys measured
    on each control; the first is the negative control the rule must reject, the others are shown
    beside it. ``seeds``: how many replicates and what they gave. ``run``: the trained run the values
    were read off (its regime is recorded), or None. ``columns`` (key → header), ``fmt`` and ``scale``:
    how :func:`~mamlscope.verdict.claims.control_table` shows it; ``label``: its own row's label there.
    ``envelope``: the rule must reject every control, so its negative control is their most favourable
    value check by check (:func:`~mamlscope.verdict.claims.null_envelope`). ``per_seed``: the key of per-seed values (seed → value) whose passing seeds
    :func:`~mamlscope.verdict.claims.record` counts with the claim's per-seed check, into ``seeds``
    (or beside them, under ``"per_seed"``). ``table`` and ``analysis``: what a chapter shows beside
    the verdict (not judged).
    """

    claim: str
    values: Mapping
    controls: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)
    seeds: Mapping = dataclasses.field(default_factory=dict)
    run: Any = None
    label: str = "measured"
    columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fmt: str = "{:+.1f}"
    scale: float = 100.0
    envelope: bool = False  # the negative control is the most favourable control, check by check
    per_seed: str = ""    # the per-seed values' key, from which record() counts the seeds that pass
    table: Any = None     # what the chapter shows of it: the measurement beside its controls
    analysis: Any = None  # the analysis it came from, for the figures and diagnostics beside it

    @property
    def null_values(self) -> Mapping | None:
        """The negative control's values (the first control), or None when the rule has none."""
        return next(iter(self.controls.values()), None)

    def rows(self) -> dict[str, Mapping]:
        """The measurement and its controls, label → values, in the order a table shows them."""
        return {self.label: self.values, **self.controls}


def one_run(note: str) -> dict:
    """The ``seeds`` of a claim measured on one trained run (or on no training at all)."""
    return {"n": 1, "note": note}


#: The seeds of a claim read off the book's 20-way MAML model.
ONE_20W_SEED = one_run("the book's one 20-way MAML seed: intervals are over its tasks; "
                       "seed 1: the replica study (replication)")
