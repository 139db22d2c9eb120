"""The chapters' papermill parameters, checked before any kernel starts.

A chapter declares its parameters in the cell tagged ``parameters``: a name, a type annotation
(``int``, ``Optional[int]``, ``str``, ``bool``, …), a default and a ``# description``
(``papermill --help-notebook``). :func:`check` validates what a user passes with ``-p`` against
those declarations and against :data:`MINIMUM` and :data:`CHOICES`, so that
``-p test_tasks=abc`` or ``-p test_tasks=-5`` is refused in a second, with a message that says
what is wrong and how to fix it, instead of failing in a cell half an hour into training.

    problems = check(declared, {"test_tasks": "abc"}, chapter="01_maml_on_omniglot")

Every ``int`` parameter a chapter declares must have a :data:`MINIMUM` (``tests/test_rerun.py``
enforces it), so that a new parameter cannot skip the range check.
"""
from __future__ import annotations

import ast
import re

from mamlscope.training.profiles import PROFILES

# The smallest value each integer parameter accepts (counts of tasks, seeds, steps, repeats).
MINIMUM: dict[str, int] = {
    "test_tasks": 2,          # a mean ± interval needs two tasks
    "train_steps": 1,
    "analysis_tasks": 2,
    "analysis_inputs": 4,
    "supervised_seeds": 2,    # an interval over seeds needs two
    "anil_seeds": 1,
    "timing_repeats": 1,
    "landscape_tasks": 2,
    "curvature_tasks": 1,
    "regulariser_seeds": 2,
    "features_seeds": 2,
    "features_pool": 10,
    "n_tasks": 1,
    "eval_task": 0,
    "n_ratio_tasks": 2,       # G4/G5's t intervals over tasks need two
    "seed_20w": 0,            # the 20-way MAML run's seed (0: the book's; 1: the replica)
}

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _profiles() -> list[str]:
    return list(PROFILES)


# String parameters with a fixed set of values: name → (check, what is valid).
CHOICES = {
    "profile": (lambda v: v in _profiles(), lambda: "one of " + ", ".join(_profiles())),
    "device": (lambda v: bool(DEVICE.match(v)), lambda: "auto, cpu, cuda or cuda:N"),
}


def _base_types(annotation: str) -> tuple[set[str], bool]:
    """``"Optional[int]"`` → ({"int"}, True); ``"int"`` → ({"int"}, False); ``"int | None"`` → ({"int"}, True)."""
    text = annotation.replace(" ", "")
    optional = False
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
    if m:
        text, optional = m.group(1), True
    m = re.fullmatch(r"(?:typing\.)?Union\[(.+)\]", text)
    names = set(m.group(1).split(",") if m else text.split("|"))
    if "None" in names or "NoneType" in names:
        optional = True
        names -= {"None", "NoneType"}
    return names, optional


def _type_name(value) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(type(value), type(value).__name__)


def type_problem(name: str, value, info: dict) -> str | None:
    """Why ``value`` does not fit the parameter's annotation, or None. A parameter whose default
    is ``None`` also accepts ``None`` (``null``)."""
    annotation = info.get("inferred_type_name") or "None"
    types, optional = _base_types(annotation)
    optional = optional or info.get("default") == "None"
    if value is None:
        return None if optional else f"{name} is {annotation} and cannot be null"
    fits = {"int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str)}
    known = [t for t in types if t in fits]
    if not known or any(fits[t] for t in known):
        return None
    return f"{name} is {annotation}; got {value!r} ({_type_name(value)})"


def value_problem(name: str, value) -> str | None:
    """Why ``value`` is outside the parameter's range or choices, or None."""
    if value is None:
        return None
    if name in MINIMUM and isinstance(value, int) and value < MINIMUM[name]:
        return f"{name}={value}: must be >= {MINIMUM[name]}"
    if name in CHOICES and isinstance(value, str):
        ok, valid = CHOICES[name]
        if not ok(value):
            return f"{name}={value!r}: use {valid()}"
    return None


def example(name: str, info: dict) -> str:
    """A valid ``-p`` for the parameter: its default, or a typical value when the default is None."""
    default = info.get("default", "None").strip("\"'")
    if default == "None":
        typical = {"_tasks": 100, "_seeds": 3, "_inputs": 500, "_pool": 500, "_steps": 1000}
        default = next((str(v) for end, v in typical.items() if name.endswith(end)),
                       str(MINIMUM.get(name, 1)))
    return f"-p {name}={default}"


def check(declared: dict, values: dict, chapter: str) -> list[str]:
    """Every problem with ``values`` (name → parsed value) for a chapter that declares
    ``declared`` (papermill's ``inspect_notebook``), one line each; empty when all is well."""
    problems = []
    for name, value in values.items():
        if name not in declared:
            problems.append(f"{chapter} has no parameter {name!r}; it takes "
                            f"{', '.join(declared)} (papermill --help-notebook book/{chapter}.ipynb)")
            continue
        info = declared[name]
        problem = type_problem(name, value, info) or value_problem(name, value)
        if problem:
            help_text = f" ({info['help']})" if info.get("help") else ""
            problems.append(f"{chapter}: {problem}{help_text}; e.g. {example(name, info)}")
    if not problems and {"n_tasks", "eval_task"} <= set(values) | set(declared):
        n = values.get("n_tasks", _default(declared, "n_tasks"))
        e = values.get("eval_task", _default(declared, "eval_task"))
        if isinstance(n, int) and isinstance(e, int) and e < n:
            problems.append(f"{chapter}: eval_task={e} is one of the n_tasks={n} compared tasks "
                            f"(0 … {n - 1}); the held-out task must not be: use eval_task >= {n}")
    if not problems and {"landscape_tasks", "curvature_tasks"} <= set(values):
        if values["curvature_tasks"] and values["landscape_tasks"] and \
                values["curvature_tasks"] > values["landscape_tasks"]:
            problems.append(f"{chapter}: curvature_tasks={values['curvature_tasks']} exceeds "
                            f"landscape_tasks={values['landscape_tasks']} (they are a subset of them)")
    return problems


def _default(declared: dict, name: str):
    try:
        return ast.literal_eval(declared[name]["default"])
    except (KeyError, ValueError, SyntaxError):
        return None
