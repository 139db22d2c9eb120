"""``python -m mamlscope <command> …``: the project's commands, each the ``main`` of one module.

    python -m mamlscope rerun [chapter …]        # execute chapters (publish.rerun)
    python -m mamlscope runs plan|train          # the training runs the chapters need (training.cli)
    python -m mamlscope claims rejudge           # judge the stored records again (verdict.claims)
    python -m mamlscope <command> --help         # each command's own options
"""
from __future__ import annotations

import importlib
import sys

#: command → (module whose ``main(argv)`` runs it, what it does)
COMMANDS = {
    "rerun": ("mamlscope.publish.rerun", "execute chapters at a profile, then optionally build the HTML"),
    "runs": ("mamlscope.training.cli", "list the training runs the chapters need, and train the missing ones"),
    "claims": ("mamlscope.verdict.claims", "judge every stored record again from its values"),
    "notebooks": ("mamlscope.publish.notebooks", "pair, check or carry a chapter's notebook and source"),
    "execution_report": ("mamlscope.publish.execution_report", "what executing the book took, per page and run"),
    "paper_scale": ("mamlscope.publish.paper_scale", "the paper profile's cost, from recorded estimates"),
    "recipes": ("mamlscope.studies.recipes", "the recipe study: the book's inner loop against Finn et al.'s"),
    "recipe_claims": ("mamlscope.studies.recipe_claims", "the inner-loop claims under both recipes"),
    "replicate": ("mamlscope.studies.replicate", "a second seed of the 20-way run, measured by the chapters"),
    "regime": ("mamlscope.studies.regime", "the long-regime trial: train, ship, record and verify its runs"),
    "budget": ("mamlscope.studies.budget", "the claims the budget may decide, judged at each long-run checkpoint"),
    "long_regime": ("mamlscope.studies.long_regime", "the book's page on the long regime, from its records"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return ("usage: python -m mamlscope <command> [options]\n\ncommands:\n"
            + "\n".join(f"  {name:{width}}  {text}" for name, (_, text) in COMMANDS.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"python -m mamlscope: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
