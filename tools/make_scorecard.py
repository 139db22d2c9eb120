"""Writes book/scorecard.ipynb (sources only; `make book` executes it after every chapter)."""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
md("""# Scorecard

Every claim this book re-runs, with the verdict its chapter computed from its own measurements.
Nothing on this page is typed by hand: each chapter ends by recording, per claim, what it
measured, what the paper reported and the verdict its stated rule gives
(`book/results/<profile>/<claim>.json`); this page gathers those records. The ids are those of
the claims list (G: Goerttler & Obermayer, L: Guiroy et al., R: Raghu et al., A: Agarwal), then
any further claim a chapter checks (F: Finn et al.'s base protocol). A claim that no chapter has
recorded yet is listed as *not yet run*.

The verdicts hold at the profile named below, whose settings are scaled down from the papers';
each chapter says how, and what it would take to settle a claim that does not reproduce."""),
code("""profile: str = "cpu"  # whose recorded verdicts to show: smoke, cpu or paper (book/results/<profile>/)""",
     metadata={"tags": ["parameters"]}),
code("""from IPython.display import Markdown, display
from mamlscope import scorecard

table = scorecard.scorecard(profile)
display(Markdown(scorecard.summary(table, profile)))
display(Markdown(scorecard.markdown_table(table)))""", metadata={"tags": ["hide-input"]}),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "book/scorecard.ipynb")
